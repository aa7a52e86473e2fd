//! The one event type every stage shares.
//!
//! An [`Event`] is what Salt's own listener yields, `{tag, data}`, plus what
//! saltbridge knows about it: when it was read, from which source, and the
//! bus bytes it came from. The data is kept as JSON text, written once by the
//! decoder (see `docs/event-json.md` for how msgpack maps to JSON); a stage
//! that needs to look inside asks [`Event::data`], which parses it at most once.

pub mod json;
mod key;
pub mod partial;
pub mod peer;
pub mod trace;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::Value;

use json::write_str;

/// Tags saltbridge itself emits start with this prefix.
pub const OWN_TAG_PREFIX: &str = "saltbridge/";

/// One event from the bus (or one saltbridge made, such as a gap marker).
#[derive(Debug, Clone)]
pub struct Event {
    tag: String,
    data: JsonText,
    received_at: SystemTime,
    source: Arc<str>,
    raw: Option<RawBody>,
    /// Shared: every event of this master carries the same one.
    provenance: Option<Arc<Provenance>>,
    parsed: OnceLock<Value>,
}

/// Where an event comes from beyond the bus it was read on: the master
/// that published it, the syndic that relayed it, whether saltbridge
/// rebuilt it from the job cache. Set by the twin filter (masters and
/// syndics) and the backfill; kept in the spool; shown to every sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The id of the master that published the event: the bridge's own
    /// master, or the origin of a cluster peer copy (`__peer_id`).
    pub master: Option<Arc<str>>,
    /// A cluster peer copy: published by `master`, another master of the cluster.
    pub peer: bool,
    /// The syndic that relayed the event to this master of masters.
    pub syndic: Option<Arc<str>>,
    /// Rebuilt from the master's job cache after a gap, not read on the bus.
    pub backfilled: bool,
}

/// Valid JSON text. Only the decoder, `serde_json` and this module make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(Box<str>);

impl JsonText {
    /// Wraps text the caller guarantees is one valid JSON value.
    pub(crate) fn trusted(text: String) -> Self {
        JsonText(text.into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&Value> for JsonText {
    fn from(v: &Value) -> Self {
        JsonText(v.to_string().into_boxed_str())
    }
}

/// The bus body an event was decoded from, untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody {
    /// `tag + "\n\n" + msgpack(data)` as Salt sent it (the padded form on old masters).
    pub body: Bytes,
    /// Where the msgpack data starts in `body`.
    pub data_offset: usize,
}

impl RawBody {
    /// The msgpack-encoded data, for sinks that want Salt's own encoding.
    pub fn msgpack_data(&self) -> &[u8] {
        &self.body[self.data_offset..]
    }
}

impl Event {
    /// An event whose data is already JSON text.
    pub fn new(
        tag: String,
        data: JsonText,
        received_at: SystemTime,
        source: Arc<str>,
        raw: Option<RawBody>,
    ) -> Self {
        Event {
            tag,
            data,
            received_at,
            source,
            raw,
            provenance: None,
            parsed: OnceLock::new(),
        }
    }

    /// An event made by saltbridge itself (gap markers, summaries).
    pub fn synthetic(tag: impl Into<String>, data: Value, source: Arc<str>) -> Self {
        let text = JsonText::from(&data);
        let ev = Event::new(tag.into(), text, SystemTime::now(), source, None);
        let _ = ev.parsed.set(data);
        ev
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The data as JSON text, exactly as decoded.
    pub fn data_json(&self) -> &str {
        self.data.as_str()
    }

    /// The data as a JSON value, parsed on first use.
    pub fn data(&self) -> &Value {
        self.parsed.get_or_init(|| {
            // JsonText is valid JSON by construction; Null is unreachable.
            serde_json::from_str(self.data.as_str()).unwrap_or(Value::Null)
        })
    }

    /// The data as a JSON value if some stage already parsed it.
    pub fn data_if_parsed(&self) -> Option<&Value> {
        self.parsed.get()
    }

    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// The source spec the event was read from (`ipc:/...`), or `saltbridge`.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn raw(&self) -> Option<&RawBody> {
        self.raw.as_ref()
    }

    /// Which master published it, which syndic relayed it, and whether it
    /// was backfilled.
    pub fn provenance(&self) -> &Provenance {
        static UNKNOWN: Provenance = Provenance {
            master: None,
            peer: false,
            syndic: None,
            backfilled: false,
        };
        self.provenance.as_deref().unwrap_or(&UNKNOWN)
    }

    /// Sets where the event comes from (shared with other events).
    pub fn set_provenance(&mut self, p: Arc<Provenance>) {
        self.provenance = Some(p);
    }

    /// Changes this event's provenance alone.
    pub fn provenance_mut(&mut self) -> &mut Provenance {
        Arc::make_mut(self.provenance.get_or_insert_with(Default::default))
    }

    /// The id of the master that published the event, if known.
    pub fn master(&self) -> Option<&str> {
        self.provenance().master.as_deref()
    }

    /// Bytes this event holds on the heap, roughly: its tag, its JSON text
    /// and the bus bytes it keeps, plus a fixed overhead. What bounds the
    /// channel between the source and the pipeline in bytes.
    pub fn heap_bytes(&self) -> usize {
        const OVERHEAD: usize = 128;
        OVERHEAD
            + self.tag.len()
            + self.data.as_str().len()
            + self.raw.as_ref().map_or(0, |r| r.body.len())
    }

    /// A stable key for this event, the same every time the same bus event
    /// is delivered (after a retry, a replay or a restart), so consumers can
    /// drop the duplicates that at-least-once delivery allows. It is the
    /// 128-bit XXH3 hash of the tag and the data's JSON text, as 32 hex
    /// digits. Salt stamps every event (`_stamp`, microseconds), so two
    /// distinct events do not share a key. Top-level `traceparent` and
    /// `tracestate` are left out of the data, and so is a top-level
    /// `__peer_id`, so a cluster peer's copy of an event has the original's
    /// key on every master ([`peer::without_peer_id`]).
    ///
    /// A minion's return to a job (`salt/job/<jid>/ret/<id>`, fired by the
    /// master) is keyed by its tag alone: Salt keeps one return per job and
    /// minion (the job cache drops a second one, `local_cache.returner`),
    /// and a return rebuilt from the job cache after a gap (`backfill`),
    /// which has no `_stamp` of the bus, gets the key the bus event had.
    /// An event a minion fired itself (`cmd: _minion_event`) under such a
    /// tag keeps the whole-data key, so it cannot take a real return's key.
    /// Such an event (under any tag) is keyed without its `_stamp`: each
    /// hot master of a multi-master minion stamps its own copy ([`key`]).
    pub fn idempotency_key(&self) -> String {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(self.tag.as_bytes());
        h.update(&[0]);
        if self.is_job_return() {
            h.update(b"return");
        } else {
            h.update(Self::key_data(self.data.as_str()).as_bytes());
        }
        json::hex(&h.digest128().to_be_bytes())
    }

    /// `salt/job/<jid>/ret/<id>`, not fired by a minion: a return as the
    /// master publishes it.
    fn is_job_return(&self) -> bool {
        let Some(rest) = self.tag.strip_prefix("salt/job/") else {
            return false;
        };
        let Some((jid, tail)) = rest.split_once('/') else {
            return false;
        };
        let returned = !jid.is_empty()
            && tail
                .strip_prefix("ret/")
                .is_some_and(|id| !id.is_empty() && !id.contains('/'));
        returned && !self.fired_by_minion()
    }

    /// Whether a minion fired this event itself: Salt's `_minion_event`
    /// handler (`salt/daemons/masterapi.py`) publishes a minion's
    /// `event.send`, its start and its beacons with the minion's whole load
    /// as data, `cmd: "_minion_event"` included; the master's own events
    /// (job announcements and returns among them) never carry it. Only the
    /// top-level `cmd` is read (`key::fired_by_minion`). The one test for
    /// this: the job tracker ignores job tags a minion fired, the twin
    /// filter's `other_master` drops them, and the idempotency key needs it.
    pub fn fired_by_minion(&self) -> bool {
        key::fired_by_minion(self.data.as_str())
    }

    /// The data text the idempotency key hashes: without the trace context
    /// members (`trace`), so the same fact under another span keeps its key.
    /// An event a minion fired itself is hashed without its `_stamp`, so
    /// that every hot master's copy has one key ([`key`]).
    fn key_data(data_json: &str) -> std::borrow::Cow<'_, str> {
        let without_peer = peer::without_peer_id(data_json);
        let without_trace = match trace::without_trace_members(&without_peer) {
            Some(cut) => std::borrow::Cow::Owned(cut),
            None => without_peer,
        };
        match key::without_minion_stamp(&without_trace) {
            std::borrow::Cow::Owned(cut) => std::borrow::Cow::Owned(cut),
            std::borrow::Cow::Borrowed(_) => without_trace,
        }
    }

    /// True for events saltbridge made itself.
    pub fn is_own(&self) -> bool {
        self.tag.starts_with(OWN_TAG_PREFIX)
    }

    /// Appends `{"tag":...,"data":...}` to `out`, the form of `tail --format json`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"tag\":");
        write_str(out, &self.tag);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.as_str().as_bytes());
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex128_is_the_formatters_lower_hex() {
        for v in [
            0u128,
            1,
            0xdead_beef,
            u128::MAX,
            1 << 127,
            0x0123_4567_89ab_cdef << 40,
        ] {
            assert_eq!(super::json::hex(&v.to_be_bytes()), format!("{v:032x}"));
        }
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn idempotency_key_is_stable_and_distinct() {
        let a = Event::synthetic(
            "salt/job/1/ret/a",
            json!({"_stamp": "2026-11-26T13:56:47.121718"}),
            Arc::from("x"),
        );
        let same = Event::new(
            "salt/job/1/ret/a".into(),
            JsonText::trusted(r#"{"_stamp":"2026-11-26T13:56:47.121718"}"#.into()),
            SystemTime::now(),
            Arc::from("another source"),
            None,
        );
        assert_eq!(a.idempotency_key(), same.idempotency_key());
        assert_eq!(a.idempotency_key().len(), 32);
        let other = Event::synthetic(
            "salt/job/1/ret/a",
            json!({"_stamp": "2026-11-26T13:56:47.121719"}),
            Arc::from("x"),
        );
        // A return is keyed by its tag: the same return rebuilt from the
        // job cache (no bus `_stamp`) has the bus event's key.
        assert_eq!(a.idempotency_key(), other.idempotency_key());
        let not_a_return = |stamp: &str| {
            Event::synthetic("my/tag", json!({"_stamp": stamp}), Arc::from("x")).idempotency_key()
        };
        assert_ne!(not_a_return("1"), not_a_return("2"));
        // A minion's own event is keyed without `_stamp` (see `key`), by
        // its data, `ts` included.
        let fired = |ts: u64| {
            let d = json!({"cmd": "_minion_event", "ts": ts, "_stamp": "s"});
            Event::synthetic("salt/job/1/ret/a", d, Arc::from("x")).idempotency_key()
        };
        assert_ne!(fired(1), fired(2));
        assert_ne!(fired(1), a.idempotency_key());
        let other_tag = Event::synthetic(
            "salt/job/1/ret/b",
            json!({"_stamp": "2026-11-26T13:56:47.121718"}),
            Arc::from("x"),
        );
        assert_ne!(a.idempotency_key(), other_tag.idempotency_key());
    }

    #[test]
    fn fired_by_minion_is_the_top_level_cmd_only() {
        let e = |d: Value| Event::synthetic("salt/job/1/ret/a", d, Arc::from("x"));
        assert!(e(json!({"cmd": "_minion_event", "id": "a"})).fired_by_minion());
        // A return whose value merely mentions it is a return, keyed by its tag.
        let ret = |v: &str| e(json!({"cmd": "_return", "return": v, "_stamp": v}));
        assert!(!ret("_minion_event").fired_by_minion());
        assert_eq!(
            ret("_minion_event").idempotency_key(),
            ret("other").idempotency_key()
        );
        assert!(!e(json!({"data": {"cmd": "_minion_event"}})).fired_by_minion());
        assert!(!e(json!(["cmd", "_minion_event"])).fired_by_minion());
    }

    #[test]
    fn a_peer_copy_has_the_original_key() {
        let text = |t: &str| JsonText::trusted(t.into());
        let at = SystemTime::now();
        let original = Event::new(
            "my/tag".into(),
            text(r#"{"x":1,"_stamp":"s"}"#),
            at,
            Arc::from("a"),
            None,
        );
        let copy = Event::new(
            "my/tag".into(),
            text(r#"{"x":1,"_stamp":"s","__peer_id":"m1"}"#),
            at,
            Arc::from("b"),
            None,
        );
        assert_eq!(original.idempotency_key(), copy.idempotency_key());
    }

    #[test]
    fn write_json_is_tag_and_data() {
        let ev = Event::synthetic("a/\"b\"", json!({"x": [1, 2]}), Arc::from("test"));
        let mut out = Vec::new();
        ev.write_json(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v, json!({"tag": "a/\"b\"", "data": {"x": [1, 2]}}));
        assert_eq!(ev.data()["x"][1], json!(2));
    }
}
