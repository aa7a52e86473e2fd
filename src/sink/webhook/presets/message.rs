//! A chat message in the abstract: what the four presets say about an event,
//! before each one dresses it in its platform's JSON (see `chat.rs`).
//!
//! Four kinds of events get their own message:
//!
//! - a job return (`salt/job/<jid>/ret/<id>`, `salt/run/<jid>/ret`): the
//!   minion, function, arguments, success and retcode, and for a state run
//!   the state counts and the failed states with their comments (a state
//!   run can say `success: true` while states failed, so the states decide);
//! - a state failure (`salt/job/<jid>/sub/<id>/error/<fun>`): the state and
//!   its comment;
//! - a job summary (`saltbridge/job/<jid>/summary`), one message per job:
//!   how many minions succeeded, failed or did not return, which, and the
//!   failed states (a runner job: whether it succeeded);
//! - anything else: the tag and the data as compact JSON.
//!
//! Lengths are bounded here (items per list, characters per comment), so
//! every message stays well inside each platform's size limits.

use serde_json::{Map, Value};

use crate::outgoing::Outgoing;
use crate::salt::returns::{
    compact, format_args, is_state_fun, return_text, state_results, truncate, StateCounts,
};

const MAX_STATE_ITEMS: usize = 10;
const MAX_MINION_ITEMS: usize = 20;
const MAX_COMMENT: usize = 300;
const MAX_FACT: usize = 300;
const MAX_CODE: usize = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed,
    Warning,
    Info,
}

impl Status {
    pub fn emoji(self) -> &'static str {
        match self {
            Status::Ok => "✅",
            Status::Failed => "❌",
            Status::Warning => "⚠️",
            Status::Info => "ℹ️",
        }
    }
}

/// What a preset says about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub status: Status,
    /// Plain text, without the status emoji.
    pub title: String,
    /// Label and value, shown as a two-column list.
    pub facts: Vec<(String, String)>,
    pub sections: Vec<Section>,
    /// Verbatim text (a return value, an event's data), shown monospaced.
    pub code: Option<Code>,
    /// `saltbridge · <tag> · route <route> · key <key>`.
    pub footer: String,
}

/// A heading and a list, such as the failed states.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub heading: String,
    pub items: Vec<Item>,
    /// Items left out to keep the message short.
    pub more: usize,
}

/// `label` (a state ID or a minion id, shown as code) and what to say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub label: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub heading: String,
    pub text: String,
}

impl Message {
    fn new(status: Status, title: String, o: &Outgoing) -> Message {
        Message {
            status,
            title,
            facts: Vec::new(),
            sections: Vec::new(),
            code: None,
            footer: format!(
                "saltbridge · {} · route {} · key {}",
                o.event.tag(),
                o.route,
                o.key()
            ),
        }
    }

    fn fact(&mut self, label: &str, value: impl AsRef<str>) {
        let value = value.as_ref();
        if !value.is_empty() {
            self.facts
                .push((label.to_owned(), truncate(value, MAX_FACT)));
        }
    }

    /// The title with its status emoji.
    pub fn headline(&self) -> String {
        format!("{} {}", self.status.emoji(), self.title)
    }
}

/// True for the job summary events saltbridge emits.
pub fn is_summary_tag(tag: &str) -> bool {
    tag.starts_with("saltbridge/job/") && tag.ends_with("/summary")
}

/// The message for one event.
pub fn build(o: &Outgoing) -> Message {
    let tag = o.event.tag();
    let data = o.event.data();
    let empty = Map::new();
    let obj = data.as_object().unwrap_or(&empty);
    if is_summary_tag(tag) {
        return summary(o, obj);
    }
    if obj.contains_key("__id__") && obj.contains_key("result") {
        return state_failure(o, obj);
    }
    if obj.get("fun").is_some_and(Value::is_string) && obj.contains_key("return") {
        return job_return(o, obj);
    }
    other(o, data)
}

fn text(obj: &Map<String, Value>, key: &str) -> String {
    match obj.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => compact(v),
    }
}

// Over 80 lines: one message, section by section, as the chat presets show a return.
fn job_return(o: &Outgoing, d: &Map<String, Value>) -> Message {
    let fun = text(d, "fun");
    let minion = text(d, "id");
    let success = d.get("success").and_then(Value::as_bool);
    let retcode = d.get("retcode").and_then(Value::as_i64);
    let ret = d.get("return").unwrap_or(&Value::Null);
    let states = if is_state_fun(&fun) {
        state_results(ret)
    } else {
        None
    };
    let counts = states.as_deref().map(StateCounts::of);
    let failed = success == Some(false)
        || retcode.is_some_and(|r| r != 0)
        || counts.is_some_and(|c| c.failed > 0);
    let where_ = if minion.is_empty() {
        "the master".to_owned()
    } else {
        minion.clone()
    };
    let (status, verb) = if failed {
        (Status::Failed, "failed")
    } else {
        (Status::Ok, "succeeded")
    };
    let mut m = Message::new(status, format!("{fun} {verb} on {where_}"), o);
    m.fact("Minion", &minion);
    m.fact("Function", &fun);
    let args = d.get("fun_args").or_else(|| d.get("arg"));
    m.fact("Arguments", args.map(format_args).unwrap_or_default());
    let mut result = verb.to_owned();
    let mut why = Vec::new();
    if let Some(s) = success {
        why.push(format!("success: {s}"));
    }
    if let Some(r) = retcode {
        why.push(format!("retcode: {r}"));
    }
    if !why.is_empty() {
        result.push_str(&format!(" ({})", why.join(", ")));
    }
    m.fact("Result", result);
    if let Some(c) = counts {
        m.fact("States", c.describe());
    }
    m.fact("Job", text(d, "jid"));
    m.fact("User", text(d, "user"));

    match (&states, ret) {
        (Some(states), _) => {
            let failed: Vec<_> = states.iter().filter(|s| s.result == Some(false)).collect();
            if !failed.is_empty() {
                m.sections.push(section(
                    format!("Failed states ({} of {})", failed.len(), states.len()),
                    failed.iter().map(|s| Item {
                        label: s.id.clone(),
                        text: state_line(&s.function, &s.name, &s.id, &s.comment),
                    }),
                    MAX_STATE_ITEMS,
                ));
            } else {
                let changed: Vec<_> = states.iter().filter(|s| s.changed).collect();
                if !changed.is_empty() {
                    m.sections.push(section(
                        format!("Changed states ({} of {})", changed.len(), states.len()),
                        changed.iter().map(|s| Item {
                            label: s.id.clone(),
                            text: state_line(&s.function, &s.name, &s.id, &s.comment),
                        }),
                        MAX_STATE_ITEMS,
                    ));
                }
            }
        }
        (None, Value::Array(errors)) if is_state_fun(&fun) => {
            m.sections.push(section(
                format!("Errors ({})", errors.len()),
                errors.iter().map(|e| Item {
                    label: String::new(),
                    text: truncate(&return_text(e), MAX_COMMENT),
                }),
                MAX_STATE_ITEMS,
            ));
        }
        (None, ret) => {
            m.code = Some(Code {
                heading: "Return".to_owned(),
                text: truncate(&return_text(ret), MAX_CODE),
            });
        }
    }
    m
}

/// `test.fail_without_changes: Failure!`, with the state's name when it is
/// not its ID (`file.managed /etc/motd: ...`).
fn state_line(function: &str, name: &str, id: &str, comment: &str) -> String {
    let mut s = function.to_owned();
    if name != id && !name.is_empty() {
        s.push(' ');
        s.push_str(name);
    }
    let comment = comment.trim();
    if !comment.is_empty() {
        s.push_str(": ");
        s.push_str(&truncate(comment, MAX_COMMENT));
    }
    s
}

fn section(heading: String, items: impl Iterator<Item = Item>, max: usize) -> Section {
    let all: Vec<Item> = items.collect();
    let more = all.len().saturating_sub(max);
    Section {
        heading,
        items: all.into_iter().take(max).collect(),
        more,
    }
}

/// `salt/job/<jid>/sub/<id>/error/<fun>` (and its legacy twin): one failed state.
fn state_failure(o: &Outgoing, d: &Map<String, Value>) -> Message {
    let state = text(d, "__id__");
    let minion = text(d, "id");
    let mut fun = text(d, "fun");
    if fun.is_empty() {
        fun = o
            .event
            .tag()
            .rsplit_once("/error/")
            .map(|(_, f)| f.to_owned())
            .unwrap_or_default();
    }
    let failed = d.get("result") == Some(&Value::Bool(false));
    let status = if failed { Status::Failed } else { Status::Info };
    let verb = if failed { "failed" } else { "reported" };
    let mut title = format!("state {state} {verb}");
    if !minion.is_empty() {
        title.push_str(&format!(" on {minion}"));
    }
    let mut m = Message::new(status, title, o);
    m.fact("Minion", &minion);
    m.fact("Function", &fun);
    m.fact("State", &state);
    m.fact("SLS", text(d, "__sls__"));
    m.fact("Comment", truncate(&text(d, "comment"), MAX_COMMENT));
    if let Some(r) = d.get("retcode").and_then(Value::as_i64) {
        m.fact("Retcode", r.to_string());
    }
    m.fact("Job", text(d, "jid"));
    m
}

/// `saltbridge/job/<jid>/summary`: one message per job.
// Over 80 lines: one message, section by section, as the chat presets show a job summary.
fn summary(o: &Outgoing, d: &Map<String, Value>) -> Message {
    if d.get("kind").and_then(Value::as_str) == Some("runner") {
        return runner_summary(o, d);
    }
    let fun = text(d, "fun");
    let tgt = text(d, "tgt");
    let empty = Map::new();
    let minions = d
        .get("minions")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut failed_ids = Vec::new();
    let mut silent_ids = Vec::new();
    let mut failed_states = Vec::new();
    let mut succeeded = 0usize;
    for (id, m) in minions {
        for st in m
            .get("failed_states")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
        {
            let line = state_line(
                &text(st, "function"),
                &text(st, "name"),
                &text(st, "id"),
                &text(st, "comment"),
            );
            failed_states.push(Item {
                label: text(st, "id"),
                text: format!("on {id}: {line}"),
            });
        }
        let returned = m.get("returned").and_then(Value::as_bool).unwrap_or(true);
        let success = m.get("success").and_then(Value::as_bool);
        let retcode = m.get("retcode").and_then(Value::as_i64);
        if !returned {
            silent_ids.push(id.clone());
        } else if success == Some(false) || retcode.is_some_and(|r| r != 0) {
            failed_ids.push((id.clone(), retcode));
        } else {
            succeeded += 1;
        }
    }
    let counts = d.get("counts").and_then(Value::as_object);
    let count = |key: &str, computed: usize| {
        counts
            .and_then(|c| c.get(key))
            .and_then(Value::as_u64)
            .map_or(computed, |n| n as usize)
    };
    let failed = count("failed", failed_ids.len());
    let silent = count("did_not_return", silent_ids.len());
    let succeeded = count("succeeded", succeeded);
    let returned = count("returned", succeeded + failed);
    let targeted = returned + silent;
    let minions_word = |n: usize| if n == 1 { "minion" } else { "minions" };

    let (status, outcome) = if failed > 0 {
        let mut s = format!("{failed} of {targeted} {} failed", minions_word(targeted));
        if silent > 0 {
            s.push_str(&format!(", {silent} did not return"));
        }
        (Status::Failed, s)
    } else if silent > 0 {
        (
            Status::Warning,
            format!(
                "{silent} of {targeted} {} did not return",
                minions_word(targeted)
            ),
        )
    } else {
        (
            Status::Ok,
            format!(
                "{succeeded} of {targeted} {} succeeded",
                minions_word(targeted)
            ),
        )
    };
    let on = if tgt.is_empty() {
        String::new()
    } else {
        format!(" on {tgt}")
    };
    let mut m = Message::new(status, format!("{fun}{on}: {outcome}"), o);
    m.fact("Function", &fun);
    m.fact(
        "Arguments",
        d.get("arg").map(format_args).unwrap_or_default(),
    );
    let tgt_type = text(d, "tgt_type");
    if tgt_type.is_empty() || tgt_type == "glob" {
        m.fact("Target", &tgt);
    } else {
        m.fact("Target", format!("{tgt} ({tgt_type})"));
    }
    m.fact(
        "Minions",
        format!(
            "{targeted} targeted: {succeeded} succeeded, {failed} failed, {silent} did not return"
        ),
    );
    m.fact("Job", text(d, "jid"));
    m.fact("User", text(d, "user"));
    if d.get("incomplete") == Some(&Value::Bool(true)) {
        m.fact(
            "Note",
            "incomplete: saltbridge stopped following the job before it ended",
        );
    }
    if !failed_ids.is_empty() {
        m.sections.push(section(
            format!("Failed ({})", failed_ids.len()),
            failed_ids.into_iter().map(|(id, rc)| Item {
                label: id,
                text: rc.map(|r| format!("retcode {r}")).unwrap_or_default(),
            }),
            MAX_MINION_ITEMS,
        ));
    }
    if !failed_states.is_empty() {
        m.sections.push(section(
            format!("Failed states ({})", failed_states.len()),
            failed_states.into_iter(),
            MAX_STATE_ITEMS,
        ));
    }
    if !silent_ids.is_empty() {
        m.sections.push(section(
            format!("Did not return ({})", silent_ids.len()),
            silent_ids.into_iter().map(|id| Item {
                label: id,
                text: String::new(),
            }),
            MAX_MINION_ITEMS,
        ));
    }
    m
}

/// The summary of a runner job: it ran on the master, so no minion counts.
fn runner_summary(o: &Outgoing, d: &Map<String, Value>) -> Message {
    let fun = text(d, "fun");
    let (status, verb) = match d.get("success").and_then(Value::as_bool) {
        Some(true) => (Status::Ok, "succeeded"),
        Some(false) => (Status::Failed, "failed"),
        None => (Status::Warning, "did not finish"),
    };
    let mut m = Message::new(status, format!("{fun} {verb} on the master"), o);
    m.fact("Function", &fun);
    m.fact(
        "Arguments",
        d.get("arg").map(format_args).unwrap_or_default(),
    );
    m.fact("Job", text(d, "jid"));
    m.fact("User", text(d, "user"));
    m
}

fn other(o: &Outgoing, data: &Value) -> Message {
    let mut m = Message::new(Status::Info, o.event.tag().to_owned(), o);
    if let Some(obj) = data.as_object() {
        m.fact("Minion", text(obj, "id"));
    }
    m.code = Some(Code {
        heading: "Data".to_owned(),
        text: truncate(&compact(data), MAX_CODE),
    });
    m
}
