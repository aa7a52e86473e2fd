//! What an event a minion fired itself leaves out of its idempotency key:
//! the master's `_stamp`.
//!
//! A minion of several hot masters (`master: [a, b]`) sends each event it
//! fires itself (`event.send`, `event.fire_master`, its start events) to
//! every master, and each master fires the minion's whole load on its bus
//! (`_minion_event`, `salt/daemons/masterapi.py`), stamped with its own
//! `_stamp`. Measured on two 3008.4 masters (docs/topologies.md,
//! multi-master): the two copies of an `event.send` differ in `_stamp`
//! alone; the load's `ts` (whole seconds, set when the minion sends it,
//! `salt/channel/client.py`) and `data` (with the job's `__pub_jid`) are
//! the same. Without `_stamp` in the key, the copies share one key, and a
//! receiver that deduplicates by key keeps one.
//!
//! The trade-off: two events a minion fires with the same tag and the same
//! data within the same second (same `ts`) now share a key too, and such a
//! receiver keeps one of them. An `event.send` run as a job or by
//! `salt-call` carries its job id (`__pub_jid`), so only a bare
//! `event.fire_master` repeated within a second is affected. Beacons are
//! not: the master fires a beacon's data without the load (`events` of the
//! load), with no `cmd` and no `ts`; without `_stamp` every identical
//! repeat of a beacon would share a key for ever, so a beacon keeps its
//! `_stamp` in its key.

use std::borrow::Cow;

use super::partial::{raw_members, without_members};

/// Whether `data_json` is the load of an event a minion fired itself: its
/// top-level `cmd` is `"_minion_event"` (see [`Event::fired_by_minion`]).
/// The text is scanned first; only a candidate's `cmd` is read.
///
/// [`Event::fired_by_minion`]: super::Event::fired_by_minion
pub(crate) fn fired_by_minion(data_json: &str) -> bool {
    if !data_json.contains("\"_minion_event\"") {
        return false;
    }
    let Some([Some(cmd)]) = raw_members(data_json, &["cmd"]) else {
        return false;
    };
    serde_json::from_str::<&str>(cmd.get()).ok() == Some("_minion_event")
}

/// `data_json` without its top-level `_stamp` when a minion fired it
/// ([`fired_by_minion`]); borrowed otherwise.
pub(crate) fn without_minion_stamp(data_json: &str) -> Cow<'_, str> {
    if !data_json.contains("\"_stamp\"") || !fired_by_minion(data_json) {
        return Cow::Borrowed(data_json);
    }
    without_members(data_json, &["_stamp"])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::event::{Event, JsonText};

    fn key(tag: &str, data: &str) -> String {
        let text = JsonText::trusted(data.into());
        Event::new(tag.into(), text, SystemTime::now(), Arc::from("x"), None).idempotency_key()
    }

    /// The two copies of `salt hh-minion event.send my/tag '{"x": 1}'` on
    /// two hot 3008.4 masters, as their buses carried them.
    const ON_M1: &str = r#"{"id":"hh-minion","cmd":"_minion_event","pretag":null,"data":{"__pub_fun":"event.send","__pub_jid":"20261202010630007713","x":1},"tag":"my/tag","ts":1796173590,"_stamp":"2026-12-02T01:06:30.250433+00:00"}"#;
    const ON_M2: &str = r#"{"id":"hh-minion","cmd":"_minion_event","pretag":null,"data":{"__pub_fun":"event.send","__pub_jid":"20261202010630007713","x":1},"tag":"my/tag","ts":1796173590,"_stamp":"2026-12-02T01:06:30.261244+00:00"}"#;

    #[test]
    fn both_masters_copies_of_a_minion_fired_event_share_a_key() {
        assert_eq!(key("my/tag", ON_M1), key("my/tag", ON_M2));
        assert!(!without_minion_stamp(ON_M1).contains("_stamp"));
        // Another second of the minion's clock is another event.
        let later = ON_M2.replace("1796173590", "1796173591");
        assert_ne!(key("my/tag", ON_M1), key("my/tag", &later));
        // So is another job's event.send.
        let other_job = ON_M2.replace("007713", "007714");
        assert_ne!(key("my/tag", ON_M1), key("my/tag", &other_job));
    }

    #[test]
    fn events_the_master_fires_keep_their_stamp_in_the_key() {
        // A beacon (no `cmd`), and a master's event, and a nested claim.
        for data in [
            r#"{"data":{"time":"01:07AM"},"id":"hh-minion","_stamp":"2026-12-02T01:07:03.634494+00:00"}"#,
            r#"{"x":{"cmd":"_minion_event"},"_stamp":"2026-12-02T01:07:03.634494+00:00"}"#,
            r#"{"cmd":"_return","_stamp":"2026-12-02T01:07:03.634494+00:00"}"#,
        ] {
            assert!(matches!(without_minion_stamp(data), Cow::Borrowed(_)));
            let other = data.replace(".634494", ".634495");
            assert_ne!(
                key("salt/beacon/hh-minion/status/", data),
                key("salt/beacon/hh-minion/status/", &other)
            );
        }
    }
}
