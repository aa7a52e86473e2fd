//! A job event's data as the tracker reads it: member by member.
//!
//! The data is not parsed into a `serde_json::Value`: a perf profile of
//! `saltbridge run` draining 300 B returns into a blackhole (issue 13) found
//! 34% of the pipeline task in that parse and 15% more in malloc around it.
//! [`JobData`] keeps the raw text of the few top-level members the tracker
//! reads ([`crate::event::partial::raw_members`], one scan, nothing
//! allocated) and parses a value only when it is read: a return's `return`
//! only for a state run of a job the tracker follows, or a `find_job` answer.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::partial::raw_members;
use crate::event::Event;

/// The top-level members of an event's data that the tracker reads.
const KEYS: [&str; 15] = [
    "jid", "id", "fun", "fun_args", "arg", "minions", "missing", "tgt", "tgt_type", "user",
    "_stamp", "success", "retcode", "return", "cmd",
];

/// The data of a job event (an object), read member by member: the parsed
/// data when a stage already parsed it, else the raw text of [`KEYS`].
// 248 bytes on the stack, one per job event: boxing the raw members would
// allocate per event, which this module is there to avoid.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
pub(super) enum JobData<'a> {
    Parsed(&'a Map<String, Value>),
    Raw([Option<&'a RawValue>; KEYS.len()]),
}

impl<'a> JobData<'a> {
    /// `ev`'s data, or `None` when it is not an object.
    pub fn of(ev: &'a Event) -> Option<JobData<'a>> {
        match ev.data_if_parsed() {
            Some(whole) => whole.as_object().map(JobData::Parsed),
            None => raw_members(ev.data_json(), &KEYS).map(JobData::Raw),
        }
    }

    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        let JobData::Raw(members) = self else {
            return None;
        };
        let i = KEYS.iter().position(|k| *k == key);
        debug_assert!(i.is_some(), "{key} is not in classify::KEYS");
        members[i?]
    }

    /// Whether the data has member `key`.
    pub fn has(&self, key: &str) -> bool {
        match self {
            JobData::Parsed(m) => m.contains_key(key),
            JobData::Raw(_) => self.raw(key).is_some(),
        }
    }

    /// Member `key`, parsed.
    pub fn value(&self, key: &str) -> Option<Cow<'a, Value>> {
        match self {
            JobData::Parsed(m) => m.get(key).map(Cow::Borrowed),
            JobData::Raw(_) => serde_json::from_str(self.raw(key)?.get())
                .ok()
                .map(Cow::Owned),
        }
    }

    /// Member `key`, or `null`.
    pub fn owned(&self, key: &str) -> Value {
        self.value(key).map_or(Value::Null, Cow::into_owned)
    }

    /// Member `key` if it is a string (borrowed unless it has escapes).
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        match self {
            JobData::Parsed(m) => m.get(key).and_then(Value::as_str).map(Cow::Borrowed),
            JobData::Raw(_) => {
                let raw = self.raw(key)?.get();
                match serde_json::from_str::<&'a str>(raw) {
                    Ok(s) => Some(Cow::Borrowed(s)),
                    Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
                }
            }
        }
    }

    /// Member `key` if it is a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.value(key).and_then(|v| v.as_bool())
    }

    /// Member `key` if it is an integer that fits an `i64`.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.value(key).and_then(|v| v.as_i64())
    }
}
