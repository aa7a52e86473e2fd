//! What a master cluster adds to an event it copies from a peer.
//!
//! In a Salt cluster (3007+, `cluster_id`, `cluster_peers`) every event one
//! master publishes is sent to each peer, which republishes it on its own
//! bus with the original tag and one key added to the data: `__peer_id`,
//! the origin master's id. The key is set by
//! `MasterPubServerChannel.extract_cluster_event` (`salt/channel/server.py`,
//! 3008.4) on the dict decoded from the origin's bus, so it is the *last*
//! member of the data, after the `_stamp` the origin's `fire_event` added;
//! measured on a 2-master 3008.4 cluster, the copy differs from the original
//! by that key alone (`/work/shared/salt/topologies.md`, section 1).
//!
//! A minion can put `__peer_id` into its own event (`event.send`, or a raw
//! `_minion_event` load), anywhere in the data. So a claimed peer id is a
//! claim; the twin filter decides whether to believe it (see
//! `twins::origin`). This module only reads the claim and computes the data
//! without it, for an idempotency key that is the same on every master.

use std::borrow::Cow;

use super::partial::object_members;
pub use super::partial::without_members;

/// The key a cluster adds to a peer's event.
pub const PEER_ID_KEY: &str = "__peer_id";

/// A top-level `__peer_id` found in an event's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerClaim {
    /// Its value, when a non-empty string.
    pub id: Option<String>,
    /// Whether it is the data's last member, where a cluster puts it.
    pub last: bool,
}

/// The top-level `__peer_id` of a JSON object text, if there is one.
pub fn claim(data_json: &str) -> Option<PeerClaim> {
    if !data_json.contains(PEER_ID_KEY) {
        return None;
    }
    let members = object_members(data_json)?;
    let at = members.iter().rposition(|(k, _)| k == PEER_ID_KEY)?;
    let id = serde_json::from_str::<String>(members[at].1.get())
        .ok()
        .filter(|s| !s.is_empty());
    Some(PeerClaim {
        id,
        last: at + 1 == members.len(),
    })
}

/// `data_json` without its top-level `__peer_id` member: for the text the
/// decoder wrote, byte for byte the origin master's text. Borrowed when
/// there is no such member.
pub fn without_peer_id(data_json: &str) -> Cow<'_, str> {
    without_members(data_json, &[PEER_ID_KEY])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_copy_is_the_original_plus_a_last_member() {
        let original =
            r#"{"fun":"test.ping","return":true,"_stamp":"2026-12-01T18:00:00.000001+00:00"}"#;
        let copy = r#"{"fun":"test.ping","return":true,"_stamp":"2026-12-01T18:00:00.000001+00:00","__peer_id":"127.0.0.2"}"#;
        assert_eq!(without_peer_id(copy), original);
        assert!(matches!(without_peer_id(original), Cow::Borrowed(_)));
        let c = claim(copy).unwrap();
        assert_eq!(c.id.as_deref(), Some("127.0.0.2"));
        assert!(c.last);
        assert_eq!(claim(original), None);
    }

    #[test]
    fn a_claim_elsewhere_or_nested_is_told_apart() {
        let first = r#"{"__peer_id":"m2","x":1,"_stamp":"s"}"#;
        assert_eq!(
            claim(first),
            Some(PeerClaim {
                id: Some("m2".into()),
                last: false
            })
        );
        assert_eq!(without_peer_id(first), r#"{"x":1,"_stamp":"s"}"#);
        let nested = r#"{"data":{"__peer_id":"m2"},"_stamp":"s"}"#;
        assert_eq!(claim(nested), None);
        assert_eq!(without_peer_id(nested), nested);
        let not_string = r#"{"_stamp":"s","__peer_id":7}"#;
        assert_eq!(claim(not_string).unwrap().id, None);
        assert_eq!(claim(r#"["__peer_id"]"#), None);
        assert_eq!(without_peer_id("\"__peer_id\""), "\"__peer_id\"");
    }

    #[test]
    fn members_are_cut_by_name_and_the_rest_kept_in_order() {
        let relayed = r#"{"id":"m","tag":"my/tag","data":{"_stamp":"in"},"cmd":"_minion_event","_stamp":"a"}"#;
        let cut = without_members(relayed, &["_stamp", "traceparent"]);
        assert_eq!(
            cut,
            r#"{"id":"m","tag":"my/tag","data":{"_stamp":"in"},"cmd":"_minion_event"}"#
        );
        let other = relayed.replace("\"a\"", "\"b\"");
        assert_eq!(cut, without_members(&other, &["_stamp"]));
        assert!(matches!(
            without_members(r#"{"x":1}"#, &["_stamp"]),
            Cow::Borrowed(_)
        ));
        assert_eq!(without_members("\"_stamp\"", &["_stamp"]), "\"_stamp\"");
    }

    #[test]
    fn escapes_survive_the_rebuild() {
        let copy = "{\"a\\n\\\"b\":\"\\u00e9\\t\",\"__peer_id\":\"p\"}";
        assert_eq!(without_peer_id(copy), "{\"a\\n\\\"b\":\"\\u00e9\\t\"}");
    }
}
