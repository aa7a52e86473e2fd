//! Which side of a twin pair an event is on, and the key that pairs it.
//!
//! The tag decides first, without touching the data: almost every tag on a
//! busy master is neither a legacy duplicate nor the twin of one, and those
//! pass after a few byte comparisons. Only the few shapes listed in
//! [`Shape`] go on, and of those only the legacy ones and the state-failure
//! sub events have their data parsed, to check that they really look like
//! what Salt fires (a user may send `my.tag` or a 20-digit tag too).
//!
//! Where the keys come from (Salt 3008.4 and 3006.29 source, and the captures):
//! - `salt/job/<jid>/new` and its twins: the jid, in the namespaced tag, in
//!   the legacy tag (bare jid) or in `data.jid` (`new_job`).
//! - `salt/job/<jid>/ret/<id>` and the bare-jid return: jid and minion id,
//!   from the tag, or from the bare tag and `data.id`. Both are fired with the
//!   same `load` dict, one after the other (`masterapi.RemoteFuncs._return`).
//! - `salt/minion/<id>/start` and `minion_start`: the minion id (tag or
//!   `data.id`). The data's text and `ts` differ: `time.asctime()` is called
//!   once per event and may cross a second.
//! - A failed state: the legacy event carries neither jid nor minion id, only
//!   the state's result dict. `SaltEvent._fire_ret_load_specific_fun` fires
//!   that dict under `<module>.<function>`, then adds `jid, id, success,
//!   return: "Error: <module>.<function>", fun, user` to the same dict and
//!   fires it again. The key is the legacy tag (recovered from `return` on the
//!   namespaced side) plus the state's small identifying scalars, see
//!   [`STATE_KEY_FIELDS`]. They survive `max_event_size` trimming, which
//!   replaces large values first, and tracing fields, which the key ignores.

use std::hash::{Hash, Hasher};

use serde_json::{Map, Value};

use super::TwinKind;
use crate::salt::jid::is_bare_jid;
use crate::Event;

/// What an event is to the twin filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// Neither a legacy duplicate nor the twin of one: passes at once.
    Unrelated,
    /// A legacy duplicate of `kind`, paired by `key` with its namespaced twin.
    Legacy { kind: TwinKind, key: Box<str> },
    /// A namespaced event: the twin of legacy events of each of `kinds`, all
    /// paired by the same `key`.
    Namespaced {
        kinds: &'static [TwinKind],
        key: Box<str>,
    },
}

/// Tag shapes that can be one side of a twin pair. Anything else is unrelated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape<'a> {
    /// A Salt jid as a whole tag: the legacy `new` or `ret` duplicate.
    BareJid,
    /// `new_job`.
    NewJob,
    /// `minion_start`.
    MinionStart,
    /// `<module>.<function>` without `/`: maybe a failed state's legacy event.
    StateTag,
    /// `salt/job/<jid>/new`.
    JobNew {
        jid: &'a str,
    },
    /// `salt/job/<jid>/ret/<id>`.
    JobRet {
        jid: &'a str,
        id: &'a str,
    },
    /// `salt/job/<jid>/sub/<id>/error/<fun>`.
    JobSubError,
    /// `salt/minion/<id>/start`.
    MinionStartNs {
        id: &'a str,
    },
    Other,
}

/// The fields of a state result that identify one failed state run. Both twins
/// are the same Python dict, so each field is either in both or in neither.
/// `start_time` (microseconds, minion clock) and `duration` tell apart the same
/// state failing on many minions at once; where they collide the events are
/// interchangeable anyway, since pairing is one to one.
pub(super) const STATE_KEY_FIELDS: [&str; 7] = [
    "__id__",
    "__run_num__",
    "__sls__",
    "name",
    "start_time",
    "duration",
    "retcode",
];

/// Keys `SaltEvent.fire_event` itself adds to any data: `_stamp`, the
/// OpenTelemetry carrier (3008) and `proxy_target` (sub-proxies).
pub(super) const FIRE_EVENT_KEYS: [&str; 4] =
    ["_stamp", "traceparent", "tracestate", "proxy_target"];

/// A key field longer than this (as JSON) is replaced by its hash, so a
/// pathological state `name` cannot make keys large.
const MAX_KEY_FIELD: usize = 128;

/// The event's role. A legacy event whose kind `enabled` says is off is
/// [`Role::Unrelated`]; a namespaced event lists all its kinds (the filter
/// skips those that are off). Data is parsed only when the tag's shape
/// requires it and the kind that needs it is on.
pub(super) fn role(ev: &Event, enabled: impl Fn(TwinKind) -> bool) -> Role {
    role_at(ev.tag(), ev, enabled)
}

/// [`role`] of `ev` as if it were tagged `tag` (a syndic's copy, by its original tag).
pub(super) fn role_at(tag: &str, ev: &Event, enabled: impl Fn(TwinKind) -> bool) -> Role {
    use TwinKind::*;
    match shape(tag) {
        Shape::Other => Role::Unrelated,
        Shape::JobNew { jid } => namespaced(&[BareJidNew, NewJob], jid),
        Shape::JobRet { jid, id } => namespaced(&[BareJidRet], ret_key(jid, id)),
        Shape::MinionStartNs { id } => namespaced(&[MinionStart], id),
        Shape::JobSubError if enabled(StateFailure) => {
            let Some(obj) = ev.data().as_object() else {
                return Role::Unrelated;
            };
            let state_tag = obj
                .get("return")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("Error: "));
            match state_tag {
                Some(state_tag) => namespaced(&[StateFailure], state_key(state_tag, obj)),
                None => Role::Unrelated,
            }
        }
        Shape::BareJid if enabled(BareJidNew) || enabled(BareJidRet) => {
            let Some(obj) = ev.data().as_object() else {
                return Role::Unrelated;
            };
            if let Some(id) = return_id(obj, tag).filter(|_| enabled(BareJidRet)) {
                legacy(BareJidRet, ret_key(tag, id))
            } else if enabled(BareJidNew) && is_minions_only(obj) {
                legacy(BareJidNew, tag)
            } else {
                Role::Unrelated
            }
        }
        Shape::NewJob if enabled(NewJob) => match ev.data().get("jid").and_then(jid_text) {
            Some(jid) => legacy(NewJob, jid),
            None => Role::Unrelated,
        },
        Shape::MinionStart if enabled(MinionStart) => {
            match ev.data().get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => legacy(MinionStart, id),
                _ => Role::Unrelated,
            }
        }
        Shape::StateTag if enabled(StateFailure) => match ev.data().as_object() {
            Some(obj) if is_failed_state(obj) => legacy(StateFailure, state_key(tag, obj)),
            _ => Role::Unrelated,
        },
        Shape::JobSubError
        | Shape::BareJid
        | Shape::NewJob
        | Shape::MinionStart
        | Shape::StateTag => Role::Unrelated,
    }
}

impl Role {
    /// The role of an event relayed by syndic `syndic`: its key is the
    /// syndic's, so it pairs only with events that syndic relayed.
    pub(super) fn relayed_by(self, syndic: &str) -> Role {
        let mark = |key: Box<str>| format!("{syndic}\u{1f}{key}").into_boxed_str();
        match self {
            Role::Unrelated => Role::Unrelated,
            Role::Legacy { kind, key } => Role::Legacy {
                kind,
                key: mark(key),
            },
            Role::Namespaced { kinds, key } => Role::Namespaced {
                kinds,
                key: mark(key),
            },
        }
    }
}

fn legacy(kind: TwinKind, key: impl Into<Box<str>>) -> Role {
    Role::Legacy {
        kind,
        key: key.into(),
    }
}

fn namespaced(kinds: &'static [TwinKind], key: impl Into<Box<str>>) -> Role {
    Role::Namespaced {
        kinds,
        key: key.into(),
    }
}

/// The tag's shape, from the tag alone.
pub(super) fn shape(tag: &str) -> Shape<'_> {
    if let Some(rest) = tag.strip_prefix("salt/") {
        if let Some(rest) = rest.strip_prefix("job/") {
            return job_shape(rest);
        }
        if let Some(id) = rest
            .strip_prefix("minion/")
            .and_then(|r| r.strip_suffix("/start"))
        {
            // Salt refuses minion ids containing `/` (`salt.utils.verify.valid_id`).
            if !id.is_empty() && !id.contains('/') {
                return Shape::MinionStartNs { id };
            }
        }
        return Shape::Other;
    }
    match tag {
        "new_job" => Shape::NewJob,
        "minion_start" => Shape::MinionStart,
        _ if is_bare_jid(tag) => Shape::BareJid,
        _ if is_state_tag(tag) => Shape::StateTag,
        _ => Shape::Other,
    }
}

/// `rest` is the tag after `salt/job/`.
fn job_shape(rest: &str) -> Shape<'_> {
    let Some((jid, tail)) = rest.split_once('/') else {
        return Shape::Other;
    };
    if jid.is_empty() {
        return Shape::Other;
    }
    if tail == "new" {
        return Shape::JobNew { jid };
    }
    if let Some(id) = tail.strip_prefix("ret/") {
        if !id.is_empty() {
            return Shape::JobRet { jid, id };
        }
    }
    if let Some((id, fun)) = tail
        .strip_prefix("sub/")
        .and_then(|s| s.split_once("/error/"))
    {
        if !id.is_empty() && !fun.is_empty() {
            return Shape::JobSubError;
        }
    }
    Shape::Other
}

/// `<module>.<function>`: the first and last part of a state's key
/// (`test_|-bad_state_|-bad_state_|-fail_without_changes` gives
/// `test.fail_without_changes`), both Python identifiers.
pub(super) fn is_state_tag(tag: &str) -> bool {
    fn ident(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    }
    match tag.split_once('.') {
        Some((module, function)) => ident(module) && ident(function),
        None => false,
    }
}

/// The minion id of a job return fired under its bare jid: `id`, `return`
/// and a `jid` equal to the tag, as `masterapi.RemoteFuncs._return` fires
/// the load.
fn return_id<'a>(obj: &'a Map<String, Value>, tag: &str) -> Option<&'a str> {
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())?;
    let same_jid = obj.get("jid").and_then(jid_text).as_deref() == Some(tag);
    (same_jid && obj.contains_key("return")).then_some(id)
}

/// `{"minions": [...]}` as `_prep_pub` fires it, plus what `fire_event` adds.
fn is_minions_only(obj: &Map<String, Value>) -> bool {
    obj.contains_key("minions")
        && obj
            .keys()
            .all(|k| k == "minions" || FIRE_EVENT_KEYS.contains(&k.as_str()))
}

/// A state result that `_fire_ret_load_specific_fun` fires: `result` is
/// `false` (it tests `is False`) and the state ran (`__run_num__` is set on
/// every result `salt.state.State` makes, requisite failures included).
fn is_failed_state(obj: &Map<String, Value>) -> bool {
    obj.get("result") == Some(&Value::Bool(false))
        && obj.get("__run_num__").is_some_and(Value::is_number)
}

/// A jid as text: Salt's are strings, user-supplied ones may be integers.
fn jid_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// Neither jids nor minion ids contain `/`.
fn ret_key(jid: &str, id: &str) -> String {
    let mut k = String::with_capacity(jid.len() + 1 + id.len());
    k.push_str(jid);
    k.push('/');
    k.push_str(id);
    k
}

/// `state_tag` then each of [`STATE_KEY_FIELDS`] as JSON (`-` when absent),
/// separated by U+001F, which JSON text never contains unescaped.
pub(super) fn state_key(state_tag: &str, obj: &Map<String, Value>) -> String {
    let mut k = String::with_capacity(state_tag.len() + 96);
    k.push_str(state_tag);
    for field in STATE_KEY_FIELDS {
        k.push('\u{1f}');
        match obj.get(field) {
            None => k.push('-'),
            Some(v) => {
                let json = v.to_string();
                if json.len() <= MAX_KEY_FIELD {
                    k.push_str(&json);
                } else {
                    // SipHash with fixed keys: the same value hashes the same
                    // for both twins within this process, which is all we need.
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    json.hash(&mut h);
                    k.push_str(&format!("#{:016x}", h.finish()));
                }
            }
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_from_the_tag_alone() {
        let cases: &[(&str, Shape)] = &[
            ("20261126141257294921", Shape::BareJid),
            ("20261126141257294921_4242", Shape::BareJid),
            ("2026112614125729492", Shape::Other),
            ("202611261412572949211", Shape::Other),
            ("20261126141257294921_", Shape::Other),
            ("20261126141257294921_x", Shape::Other),
            ("new_job", Shape::NewJob),
            ("minion_start", Shape::MinionStart),
            ("test.fail_without_changes", Shape::StateTag),
            ("my.tag", Shape::StateTag),
            ("a.b.c", Shape::Other),
            (".x", Shape::Other),
            ("my tag.x", Shape::Other),
            ("my/tag.x", Shape::Other),
            ("salt/job/J/new", Shape::JobNew { jid: "J" }),
            (
                "salt/job/J/ret/web-01",
                Shape::JobRet {
                    jid: "J",
                    id: "web-01",
                },
            ),
            ("salt/job/J/ret/", Shape::Other),
            ("salt/job//new", Shape::Other),
            ("salt/job/J/publish", Shape::Other),
            ("salt/job/J/sub/web-01/error/state.sls", Shape::JobSubError),
            ("salt/job/J/sub/web-01/error/", Shape::Other),
            ("salt/job/J/prog/web-01/0", Shape::Other),
            (
                "salt/minion/web-01/start",
                Shape::MinionStartNs { id: "web-01" },
            ),
            ("salt/minion//start", Shape::Other),
            ("salt/minion/a/b/start", Shape::Other),
            ("salt/run/J/new", Shape::Other),
            ("salt/auth", Shape::Other),
            ("minion/refresh/web-01", Shape::Other),
            ("", Shape::Other),
        ];
        for (tag, want) in cases {
            assert_eq!(shape(tag), *want, "{tag:?}");
        }
    }

    #[test]
    fn state_key_is_the_same_for_both_twins_and_ignores_added_fields() {
        let legacy = serde_json::json!({
            "name": "bad_state", "changes": {}, "result": false, "comment": "Failure!",
            "__sls__": "failing", "__run_num__": 1, "start_time": "13:58:07.831275",
            "duration": 0.805, "__id__": "bad_state", "retcode": 2, "_stamp": "a"
        });
        let mut ns = legacy.clone();
        let o = ns.as_object_mut().unwrap();
        o.insert("_stamp".into(), "b".into());
        o.insert("traceparent".into(), "00-x".into());
        for (k, v) in [("jid", "J"), ("id", "m"), ("return", "Error: test.x")] {
            o.insert(k.into(), v.into());
        }
        let a = state_key("test.x", legacy.as_object().unwrap());
        assert_eq!(a, state_key("test.x", ns.as_object().unwrap()));
        assert_ne!(a, state_key("test.y", ns.as_object().unwrap()));
        let mut later = legacy.clone();
        later["start_time"] = "13:58:07.831276".into();
        assert_ne!(a, state_key("test.x", later.as_object().unwrap()));
        let mut long = legacy.clone();
        long["name"] = "x".repeat(10_000).into();
        let k = state_key("test.x", long.as_object().unwrap());
        assert!(k.len() < 200, "{k}");
        assert_eq!(k, state_key("test.x", long.as_object().unwrap()));
    }
}
