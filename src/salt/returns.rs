//! What saltbridge needs to know about Salt's job returns (the job
//! tracker's summaries, the chat presets and the template filters): how to read a state run's results, how to show a function's
//! arguments, and how to cut long text without breaking characters.
//!
//! A state run returns a map of `<module>_|-<id>_|-<name>_|-<function>` to
//! `{result, comment, changes, __id__, __run_num__, ...}`. `result` is
//! `false` for a failed state and `null` for one that would change under
//! `test=True`. The job's `success` can be `true` while states failed, so
//! the presets read the states themselves.

use serde::Serialize;
use serde_json::Value;

/// One state of a state run's return.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateResult {
    /// The state's ID (`__id__`, or the ID part of the key).
    pub id: String,
    /// The state's `name` argument.
    pub name: String,
    /// `module.function`, e.g. `test.fail_without_changes`.
    pub function: String,
    /// `true`, `false` (failed) or `null` (would change, `test=True`).
    pub result: Option<bool>,
    pub comment: String,
    /// `changes` is not empty.
    pub changed: bool,
    /// The SLS file the state came from.
    pub sls: Option<String>,
    /// Order of execution (`__run_num__`).
    pub run_num: u64,
}

/// Counts over a state run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub changed: usize,
    /// `result: null`: would change (test mode).
    pub pending: usize,
}

impl StateCounts {
    pub fn of(states: &[StateResult]) -> StateCounts {
        let mut c = StateCounts {
            total: states.len(),
            ..StateCounts::default()
        };
        for s in states {
            match s.result {
                Some(true) => c.succeeded += 1,
                Some(false) => c.failed += 1,
                None => c.pending += 1,
            }
            if s.changed {
                c.changed += 1;
            }
        }
        c
    }

    /// `2 states: 1 failed, 1 succeeded (1 changed)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.failed > 0 {
            parts.push(format!("{} failed", self.failed));
        }
        if self.succeeded > 0 {
            parts.push(format!("{} succeeded", self.succeeded));
        }
        if self.pending > 0 {
            parts.push(format!("{} would change (test)", self.pending));
        }
        let noun = if self.total == 1 { "state" } else { "states" };
        let mut s = format!("{} {noun}", self.total);
        if !parts.is_empty() {
            s.push_str(": ");
            s.push_str(&parts.join(", "));
        }
        s.push_str(&format!(" ({} changed)", self.changed));
        s
    }
}

/// The states of a state run's `return`, in execution order, or `None` when
/// `ret` is not a map of state results (a render error is a list of strings).
pub fn state_results(ret: &Value) -> Option<Vec<StateResult>> {
    let map = ret.as_object()?;
    if map.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map {
        let obj = v.as_object()?;
        if !obj.contains_key("result") {
            return None;
        }
        let mut parts = key.split("_|-");
        let module = parts.next().unwrap_or("");
        let key_id = parts.next().unwrap_or(key);
        let key_name = parts.next().unwrap_or(key_id);
        let fun = parts.next().unwrap_or("");
        let function = if fun.is_empty() {
            module.to_owned()
        } else {
            format!("{module}.{fun}")
        };
        out.push(StateResult {
            id: str_of(obj.get("__id__")).unwrap_or_else(|| key_id.to_owned()),
            name: str_of(obj.get("name")).unwrap_or_else(|| key_name.to_owned()),
            function,
            result: obj.get("result").and_then(Value::as_bool),
            comment: comment_text(obj.get("comment")),
            changed: match obj.get("changes") {
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Null) | None => false,
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::String(s)) => !s.is_empty(),
                Some(_) => true,
            },
            sls: str_of(obj.get("__sls__")),
            run_num: obj
                .get("__run_num__")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX),
        });
    }
    out.sort_by_key(|s| s.run_num);
    Some(out)
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A state's comment: Salt gives a string, sometimes a list of strings.
fn comment_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// True for functions whose return is a map of state results.
pub fn is_state_fun(fun: &str) -> bool {
    fun.starts_with("state.")
}

/// Shows a job's arguments the way one would type them after the function:
/// `failing`, `'exit 3'`, `test=True`.
pub fn format_args(args: &Value) -> String {
    let Some(items) = args.as_array() else {
        return match args {
            Value::Null => String::new(),
            other => compact(other),
        };
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => out.push(quote_arg(s)),
            Value::Object(map) if map.get("__kwarg__") == Some(&Value::Bool(true)) => {
                for (k, v) in map {
                    if k == "__kwarg__" {
                        continue;
                    }
                    let v = match v {
                        Value::String(s) => quote_arg(s),
                        Value::Bool(true) => "True".to_owned(),
                        Value::Bool(false) => "False".to_owned(),
                        other => compact(other),
                    };
                    out.push(format!("{k}={v}"));
                }
            }
            other => out.push(compact(other)),
        }
    }
    out.join(" ")
}

fn quote_arg(s: &str) -> String {
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
    {
        format!("'{}'", s.replace('\'', "'\\''"))
    } else {
        s.to_owned()
    }
}

/// Compact JSON text of a value.
pub fn compact(v: &Value) -> String {
    v.to_string()
}

/// A return value as text: strings as they are, other values as compact JSON.
pub fn return_text(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "(no output)".to_owned(),
        Value::String(s) => s.clone(),
        other => compact(other),
    }
}

/// `s` cut to at most `max` characters, with `…` marking a cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(1);
    let mut out: String = s.chars().take(keep).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_failing_state_run() {
        let ret = json!({
            "test_|-ok_state_|-ok_state_|-succeed_with_changes": {"name": "ok_state", "changes": {"testing": {"old": "a", "new": "b"}}, "result": true, "comment": "Success!", "__run_num__": 0, "__id__": "ok_state"},
            "test_|-bad_state_|-bad_state_|-fail_without_changes": {"name": "bad_state", "changes": {}, "result": false, "comment": "Failure!", "__run_num__": 1, "__id__": "bad_state", "__sls__": "failing"}
        });
        let states = state_results(&ret).unwrap();
        assert_eq!(states[1].id, "bad_state");
        assert_eq!(states[1].function, "test.fail_without_changes");
        assert_eq!(states[1].result, Some(false));
        assert_eq!(states[1].comment, "Failure!");
        let c = StateCounts::of(&states);
        assert_eq!((c.total, c.failed, c.changed, c.succeeded), (2, 1, 1, 1));
        assert_eq!(c.describe(), "2 states: 1 failed, 1 succeeded (1 changed)");
        assert!(state_results(&json!(["Rendering SLS failed"])).is_none());
        assert!(state_results(&json!({"a": 1})).is_none());
    }

    #[test]
    fn formats_arguments() {
        assert_eq!(format_args(&json!(["exit 3"])), "'exit 3'");
        assert_eq!(
            format_args(&json!(["failing", {"__kwarg__": true, "test": true}])),
            "failing test=True"
        );
        assert_eq!(format_args(&json!([])), "");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
