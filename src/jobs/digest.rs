//! The digest kept of each return: what the summary shows, reduced when
//! the return arrives, so an open job holds a few hundred bytes per minion
//! whatever the minions returned.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::data::JobData;

use crate::salt::returns::{
    is_state_fun, return_text, state_results, truncate, StateCounts, StateResult,
};

/// Failed or changed states listed per minion; the rest are counted.
const MAX_STATES: usize = 20;
/// Render errors listed per minion.
const MAX_ERRORS: usize = 10;
/// Characters kept of a comment or an error.
const MAX_TEXT: usize = 300;

/// What is kept of one return.
#[derive(Debug, Clone)]
pub(super) struct ReturnDigest {
    /// saltbridge's verdict (see the module documentation).
    pub success: bool,
    /// Salt's `retcode`, if any.
    pub retcode: Option<i64>,
    /// Salt's `_stamp` of the return.
    pub stamp: Option<String>,
    pub states: Option<StateDigest>,
    /// A state run that did not render: Salt's messages.
    pub errors: Vec<String>,
}

/// A state run's counts and its failed and changed states.
#[derive(Debug, Clone)]
pub(super) struct StateDigest {
    pub counts: StateCounts,
    pub failed: Vec<Value>,
    pub changed: Vec<Value>,
}

impl ReturnDigest {
    /// Digests a return's data; `fun` is the job's function (the return's
    /// own `fun` when the job's is unknown).
    pub fn of(data: &JobData<'_>, fun: &str) -> ReturnDigest {
        let own_fun;
        let fun = match fun {
            "" => {
                own_fun = data.str("fun");
                own_fun.as_deref().unwrap_or_default()
            }
            f => f,
        };
        let salt_success = data.bool("success");
        let retcode = data.i64("retcode");
        let mut states = None;
        let mut errors = Vec::new();
        // Only a state run's return is read (and so parsed).
        if is_state_fun(fun) {
            let ret = data.value("return").unwrap_or(Cow::Owned(Value::Null));
            match (state_results(&ret), &*ret) {
                (Some(results), _) => states = Some(StateDigest::of(&results)),
                (None, Value::Array(items)) => {
                    errors = items
                        .iter()
                        .take(MAX_ERRORS)
                        .map(|e| truncate(&return_text(e), MAX_TEXT))
                        .collect();
                }
                _ => {}
            }
        }
        let states_failed = states.as_ref().is_some_and(|s| s.counts.failed > 0);
        ReturnDigest {
            success: salt_success != Some(false)
                && retcode.unwrap_or(0) == 0
                && !states_failed
                && errors.is_empty(),
            retcode,
            stamp: data.str("_stamp").map(Cow::into_owned),
            states,
            errors,
        }
    }
}

impl StateDigest {
    fn of(results: &[StateResult]) -> StateDigest {
        let note = |s: &&StateResult| {
            json!({
                "id": s.id,
                "function": s.function,
                "name": s.name,
                "comment": truncate(s.comment.trim(), MAX_TEXT),
            })
        };
        StateDigest {
            counts: StateCounts::of(results),
            failed: results
                .iter()
                .filter(|s| s.result == Some(false))
                .take(MAX_STATES)
                .map(|s| note(&s))
                .collect(),
            changed: results
                .iter()
                .filter(|s| s.changed)
                .take(MAX_STATES)
                .map(|s| note(&s))
                .collect(),
        }
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "total": self.counts.total,
            "succeeded": self.counts.succeeded,
            "failed": self.counts.failed,
            "changed": self.counts.changed,
            "pending": self.counts.pending,
        })
    }
}
