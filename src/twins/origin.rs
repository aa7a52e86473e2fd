//! Which master published an event: the bridge's own, or a cluster peer.
//!
//! A cluster peer's copy carries `__peer_id` as its last data member (see
//! `event::peer`). A minion can write `__peer_id` into its own event's data
//! (`event.send`, a raw `_minion_event` load, a batch of `events`), so the
//! claim is believed only when it looks exactly like what the cluster
//! writes: a non-empty string, the data's last member (the origin's
//! `fire_event` stamps `_stamp` before the copy gets its `__peer_id`), not
//! this master's own id, and one of the cluster's peers when they are known
//! (`cluster_peers` of the master config). Any other claim is *refused*:
//! the event is this master's own, routed as any other, and counted.
//!
//! What a forged claim can still do, and why that is acceptable: a minion
//! that knows a peer's id and writes `_stamp` before `__peer_id` makes its
//! own event look like a peer copy, so it is not routed on its master (and
//! the real copy on the peer, whose `__peer_id` Salt overwrites with the
//! true origin, is a peer copy there). It suppresses only its own event,
//! which it could simply not have sent. It cannot suppress any other event:
//! the decision is per event and stateless, a peer copy never enters the
//! twin pairing (so it cannot pair with a real legacy event), and the job
//! tracker ignores job events a minion fired (`cmd: _minion_event`; the
//! batch path cannot fire `salt/job/` tags, `MINION_EVENT_BLACKLIST`).

use std::sync::Arc;

use crate::event::peer;
use crate::Event;

/// This bridge's master: its id and, when known, its cluster peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterIdentity {
    /// The master's `id` (`--master-id`, `masters.id`, the master config, or
    /// `<hostname>_master` as Salt defaults it).
    pub id: Option<Arc<str>>,
    /// `cluster_peers`; empty when unknown (then any other id is believed).
    pub peers: Vec<Arc<str>>,
    /// `masters.minion_events`: the one master whose bridge routes the
    /// events minions fire themselves (multi-master); `None`: every bridge.
    pub minion_events: Option<Arc<str>>,
    /// A master of masters (`order_masters`): syndics relay events to it.
    pub order_masters: bool,
}

/// The master an event came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Origin {
    /// Published by this master.
    Local,
    /// A cluster copy of an event published by this peer.
    Peer(Arc<str>),
    /// Claims a peer (`__peer_id`) that the rules above refuse: local.
    Refused,
}

impl MasterIdentity {
    /// Whether events minions fire themselves are another master's bridge's
    /// to route (`masters.minion_events` names another master).
    pub(super) fn minion_events_elsewhere(&self) -> bool {
        self.minion_events
            .as_deref()
            .is_some_and(|m| self.id.as_deref() != Some(m))
    }

    /// Where `ev` was published.
    pub(super) fn origin(&self, ev: &Event) -> Origin {
        let Some(claim) = peer::claim(ev.data_json()) else {
            return Origin::Local;
        };
        let Some(id) = claim.id.filter(|_| claim.last) else {
            return Origin::Refused;
        };
        if self.id.as_deref() == Some(id.as_str()) {
            return Origin::Refused;
        }
        if self.peers.is_empty() {
            return Origin::Peer(Arc::from(id));
        }
        match self.peers.iter().find(|p| ***p == *id) {
            Some(p) => Origin::Peer(p.clone()),
            None => Origin::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::JsonText;
    use std::time::SystemTime;

    fn ev(data: &str) -> Event {
        Event::new(
            "my/tag".into(),
            JsonText::trusted(data.into()),
            SystemTime::now(),
            Arc::from("t"),
            None,
        )
    }

    #[test]
    fn only_a_claim_shaped_as_the_cluster_writes_it_is_believed() {
        let known = MasterIdentity {
            id: Some(Arc::from("m1")),
            peers: vec![Arc::from("m2")],
            minion_events: None,
            order_masters: false,
        };
        let unknown = MasterIdentity {
            id: Some(Arc::from("m1")),
            peers: vec![],
            minion_events: None,
            order_masters: false,
        };
        let cases = [
            (r#"{"x":1,"_stamp":"s"}"#, Origin::Local, Origin::Local),
            (
                r#"{"_stamp":"s","__peer_id":"m2"}"#,
                Origin::Peer("m2".into()),
                Origin::Peer("m2".into()),
            ),
            // Not last: a minion's own data.
            (
                r#"{"__peer_id":"m2","_stamp":"s"}"#,
                Origin::Refused,
                Origin::Refused,
            ),
            // Not a peer of this cluster.
            (
                r#"{"_stamp":"s","__peer_id":"m9"}"#,
                Origin::Refused,
                Origin::Peer("m9".into()),
            ),
            // This master itself.
            (
                r#"{"_stamp":"s","__peer_id":"m1"}"#,
                Origin::Refused,
                Origin::Refused,
            ),
            (
                r#"{"_stamp":"s","__peer_id":""}"#,
                Origin::Refused,
                Origin::Refused,
            ),
            (
                r#"{"_stamp":"s","__peer_id":["m2"]}"#,
                Origin::Refused,
                Origin::Refused,
            ),
            // Nested inside a minion's event.send data: not a claim at all.
            (
                r#"{"cmd":"_minion_event","data":{"__peer_id":"m2"},"_stamp":"s"}"#,
                Origin::Local,
                Origin::Local,
            ),
        ];
        for (data, with_peers, without) in cases {
            assert_eq!(known.origin(&ev(data)), with_peers, "{data}");
            assert_eq!(unknown.origin(&ev(data)), without, "{data}");
        }
    }
}
