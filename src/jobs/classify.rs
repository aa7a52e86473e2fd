//! What a bus event means to the job tracker, from its tag and data.
//!
//! Every release's forms are read: `salt/job/<jid>/new` (all releases since
//! 2014.7), `new_job` and bare-jid returns (0.17 .. 2014.7), the bare-jid
//! `{"minions"}` announcement (up to 3007), and runner jobs. The twin filter
//! normally drops the legacy forms; when it releases one because its twin
//! never came, the tracker still understands it, and a repeated fact (the
//! same return twice) changes nothing. `saltutil.find_job` jobs are never
//! tracked themselves: they are the master's polls about another job.
//!
//! The data is read member by member: see [`JobData`].

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::data::JobData;
use crate::event::Event;
use crate::salt::jid::is_bare_jid;

const FIND_JOB: &str = "saltutil.find_job";

/// One event, as the tracker sees it.
#[derive(Debug)]
pub(super) enum JobEvent<'a> {
    /// A minion job was published: its data has `minions` (and usually
    /// `missing`, `fun`, `arg`, `tgt`, `tgt_type`, `user`).
    Announced { jid: String, data: JobData<'a> },
    /// Minion `id` returned job `jid`.
    Returned {
        jid: String,
        id: Cow<'a, str>,
        data: JobData<'a>,
    },
    /// The master asked `minions` whether they still run job `target`.
    FindJobAsked {
        target: String,
        minions: Vec<String>,
    },
    /// Minion `id` answered a `find_job` poll about job `target`.
    FindJobAnswered {
        target: String,
        id: Cow<'a, str>,
        running: bool,
    },
    /// A runner job started on the master.
    RunnerStarted { jid: String, data: JobData<'a> },
    /// A runner job ended.
    RunnerReturned { jid: String, data: JobData<'a> },
    /// A job event a minion fired itself (`cmd: _minion_event`): ignored
    /// (see `limits`).
    FiredByMinion,
    /// Nothing the tracker follows.
    Other,
}

/// Reads `ev`. The data is read only for tags that can be job events.
pub(super) fn classify(ev: &Event) -> JobEvent<'_> {
    let tag = ev.tag();
    if ev.is_own() {
        return JobEvent::Other;
    }
    enum Shape<'t> {
        New,
        Ret(&'t str),
        RunNew(&'t str),
        RunRet(&'t str),
        BareJid,
    }
    let (jid_from_tag, shape) = if let Some(rest) = tag.strip_prefix("salt/job/") {
        match rest.split_once('/') {
            Some((jid, "new")) if !jid.is_empty() => (jid, Shape::New),
            Some((jid, tail)) if !jid.is_empty() => match tail.strip_prefix("ret/") {
                Some(id) if !id.is_empty() && !id.contains('/') => (jid, Shape::Ret(id)),
                _ => return JobEvent::Other,
            },
            _ => return JobEvent::Other,
        }
    } else if let Some(rest) = tag.strip_prefix("salt/run/") {
        match rest.split_once('/') {
            Some((jid, "new")) if !jid.is_empty() => (jid, Shape::RunNew(jid)),
            Some((jid, "ret")) if !jid.is_empty() => (jid, Shape::RunRet(jid)),
            _ => return JobEvent::Other,
        }
    } else if tag == "new_job" {
        ("", Shape::New)
    } else if is_bare_jid(tag) {
        (tag, Shape::BareJid)
    } else {
        return JobEvent::Other;
    };
    let Some(data) = JobData::of(ev) else {
        return JobEvent::Other;
    };
    let jid = || {
        if jid_from_tag.is_empty() {
            data.value("jid").as_deref().and_then(jid_text)
        } else {
            Some(jid_from_tag.to_owned())
        }
    };
    let event = match shape {
        Shape::RunNew(jid) => JobEvent::RunnerStarted {
            jid: jid.to_owned(),
            data,
        },
        Shape::RunRet(jid) => JobEvent::RunnerReturned {
            jid: jid.to_owned(),
            data,
        },
        Shape::New => announced(jid(), data),
        Shape::Ret(id) => returned(jid(), Cow::Borrowed(id), data),
        Shape::BareJid => {
            if data.has("return") {
                match data.str("id") {
                    Some(id) if !id.is_empty() => returned(jid(), id, data),
                    _ => JobEvent::Other,
                }
            } else if data.has("minions") {
                announced(jid(), data)
            } else {
                JobEvent::Other
            }
        }
    };
    if !matches!(event, JobEvent::Other) && ev.fired_by_minion() {
        // Only the master announces and ends jobs (see `limits`).
        return JobEvent::FiredByMinion;
    }
    event
}

fn announced(jid: Option<String>, data: JobData<'_>) -> JobEvent<'_> {
    let Some(jid) = jid else {
        return JobEvent::Other;
    };
    if data.str("fun").as_deref() == Some(FIND_JOB) {
        let Some(target) = first_arg(data.value("arg").as_deref()) else {
            return JobEvent::Other;
        };
        let minions = strings(data.value("minions").as_deref())
            .into_iter()
            .map(str::to_owned)
            .collect();
        return JobEvent::FindJobAsked { target, minions };
    }
    if !data.has("minions") {
        return JobEvent::Other;
    }
    JobEvent::Announced { jid, data }
}

fn returned<'a>(jid: Option<String>, id: Cow<'a, str>, data: JobData<'a>) -> JobEvent<'a> {
    let Some(jid) = jid else {
        return JobEvent::Other;
    };
    if data.str("fun").as_deref() == Some(FIND_JOB) {
        let ret = data.value("return").unwrap_or(Cow::Owned(Value::Null));
        let target = first_arg(data.value("fun_args").as_deref())
            .or_else(|| ret.get("jid").and_then(jid_text))
            .or_else(|| first_arg(data.value("arg").as_deref()));
        let Some(target) = target else {
            return JobEvent::Other;
        };
        return JobEvent::FindJobAnswered {
            target,
            id,
            running: still_running(&ret),
        };
    }
    JobEvent::Returned { jid, id, data }
}

/// A `find_job` answer says the job still runs when it is the job's data,
/// as Salt's CLI reads it: `{}` (or a nested empty `return`) means the
/// minion no longer runs it; a string is an error.
fn still_running(ret: &Value) -> bool {
    match ret {
        Value::Object(m) => !m.is_empty() && m.get("return") != Some(&Value::Object(Map::new())),
        _ => false,
    }
}

/// The first argument as a jid (a find_job's `arg` is `[jid]`).
fn first_arg(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Array(items) => items.first().and_then(jid_text),
        other => jid_text(other),
    }
}

/// The strings of a list (minion ids).
pub(super) fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A jid as text: Salt's are strings, user-supplied ones may be integers.
pub(super) fn jid_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && !s.contains('/') => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}
