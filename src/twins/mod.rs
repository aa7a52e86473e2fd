//! The twin filter: one event per fact, although Salt fires two for some.
//!
//! For a few facts Salt fires a legacy event ("old dup event" in its source)
//! next to the namespaced one: a bare-jid `{"minions"}` event and `new_job`
//! beside `salt/job/<jid>/new`, a bare-jid return beside
//! `salt/job/<jid>/ret/<id>`, `<module>.<function>` beside
//! `salt/job/<jid>/sub/<id>/error/<fun>` for each failed state, and
//! `minion_start` beside `salt/minion/<id>/start` (see [`TwinKind`]).
//! Delivering both would make a webhook fire twice for one job. The
//! namespaced event is always kept: its tag says what it is, and on releases
//! that no longer fire the legacy event it is the only one.
//!
//! Twins usually arrive milliseconds apart, the legacy one first, but a
//! reader may connect (or reconnect) between them, and a master with several
//! workers may reorder them. So a legacy event is *held* for a bounded window
//! waiting for its twin: if the twin comes, the legacy event is dropped; if
//! not, it is released late. A namespaced event always passes at once, and
//! its key is remembered for the window so that a legacy twin arriving after
//! it is dropped. Pairing is one to one, so two facts with equal keys (the
//! same return resent, the same state failing identically on two minions)
//! never cancel each other. One `salt/job/<jid>/new` is the twin of two
//! legacy events on 0.17 .. 2014.7 (bare jid and `new_job`); if it never
//! comes, `new_job` alone is released. Memory is bounded by a cap on entries
//! and on held bytes; reaching it releases the oldest held event, never loses
//! it.
//!
//! Released legacy events come out late, after events that arrived behind
//! them, so a consumer must not rely on bus order across a legacy tag.
//!
//! One more family is not Salt's legacy but a cluster's: every master of a
//! Salt cluster (3007+) republishes each peer's events on its own bus with
//! `__peer_id` added, so a bridge per master would deliver each event once
//! per master. A peer copy is dropped at once as a `cluster_peer` twin (its
//! twin is the original on the peer's bus, which the peer's bridge routes);
//! the pipeline still shows it to the job tracker. `origin` says which
//! claims of `__peer_id` are believed, and every event leaves the filter
//! with its master set ([`crate::event::Provenance`]).
//!
//! A master of masters fires each event a syndic relays twice, under its
//! tag and as `syndic/<syndic id>/<tag>`: one goes on, with the syndic's id
//! (`syndic`), before the legacy pairing, which pairs relayed events only
//! with events relayed by the same syndic.
//!
//! The filter is pure: the caller passes the time in, and calls
//! [`TwinFilter::tick`] at [`TwinFilter::next_deadline`].

mod classify;
mod config;
mod filter;
mod masters;
mod origin;
mod syndic;
#[cfg(test)]
mod tests;

pub use config::TwinConfig;
pub use filter::TwinFilter;
pub use masters::MastersConfig;
pub use origin::MasterIdentity;
pub use syndic::{original_of, SyndicKeep, SYNDIC_TAG_PREFIX};

use crate::Event;

/// A kind of twin pair, named after its legacy event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TwinKind {
    /// A bare jid tag with `{"minions": [...]}`, twin of `salt/job/<jid>/new`
    /// (every release up to 3007.x; gone in 3008). Keyed by jid.
    BareJidNew = 0,
    /// `new_job`, twin of `salt/job/<jid>/new` (0.17 .. 2014.7). Keyed by jid.
    NewJob = 1,
    /// A bare jid tag with a job return, twin of `salt/job/<jid>/ret/<id>`
    /// (0.17 .. 2014.7). Keyed by jid and minion id.
    BareJidRet = 2,
    /// `<module>.<function>` with a failed state's result, twin of
    /// `salt/job/<jid>/sub/<id>/error/<fun>` (all releases). Keyed by the
    /// state (see `classify`).
    StateFailure = 3,
    /// `minion_start`, twin of `salt/minion/<id>/start` (all releases, while
    /// `enable_legacy_startup_events` is on). Keyed by minion id.
    MinionStart = 4,
    /// A master cluster's copy of a peer's event (`__peer_id` in its data,
    /// 3007+), twin of the original on the peer's bus. Dropped at once;
    /// off keeps peer copies (a bridge on one master of a cluster alone).
    ClusterPeer = 5,
    /// An event a minion fired itself (`cmd: _minion_event`: its start,
    /// `event.send`; and beacons, known by their `salt/beacon/` tag) on a master that is not the one named by
    /// `masters.minion_events`: a minion of several masters (`master: [a,
    /// b]`) sends each to every master, and the designated master's bridge
    /// routes it. Inert unless `masters.minion_events` names another master.
    OtherMaster = 6,
    /// On a master of masters (`order_masters`), the copy of an event a
    /// syndic relayed that does not go on: `syndic/<id>/<tag>` with
    /// `keep_original` (the default), the `<tag>` event with `keep_syndic`
    /// (see `syndic`). Keyed by the original tag and the data without
    /// `_stamp`. Inert unless the master is a master of masters.
    Syndic = 7,
}

impl TwinKind {
    pub const ALL: [TwinKind; 8] = [
        TwinKind::BareJidNew,
        TwinKind::NewJob,
        TwinKind::BareJidRet,
        TwinKind::StateFailure,
        TwinKind::MinionStart,
        TwinKind::ClusterPeer,
        TwinKind::OtherMaster,
        TwinKind::Syndic,
    ];

    /// The snake_case name, as in configuration files.
    pub const fn name(self) -> &'static str {
        match self {
            TwinKind::BareJidNew => "bare_jid_new",
            TwinKind::NewJob => "new_job",
            TwinKind::BareJidRet => "bare_jid_ret",
            TwinKind::StateFailure => "state_failure",
            TwinKind::MinionStart => "minion_start",
            TwinKind::ClusterPeer => "cluster_peer",
            TwinKind::OtherMaster => "other_master",
            TwinKind::Syndic => "syndic",
        }
    }

    /// The kind whose [`TwinKind::name`] is `name`.
    pub fn from_name(name: &str) -> Option<TwinKind> {
        TwinKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for TwinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What became of an event.
#[derive(Debug)]
pub enum TwinVerdict {
    /// Goes on: namespaced events, unrelated events, legacy events released
    /// because their twin did not come in time.
    Pass(Event),
    /// A legacy event whose namespaced twin (tag `twin_of`) was kept.
    Dropped {
        event: Event,
        kind: TwinKind,
        twin_of: String,
    },
}

impl TwinVerdict {
    /// The event either way.
    pub fn event(&self) -> &Event {
        match self {
            TwinVerdict::Pass(e) | TwinVerdict::Dropped { event: e, .. } => e,
        }
    }

    /// The event if it goes on.
    pub fn into_pass(self) -> Option<Event> {
        match self {
            TwinVerdict::Pass(e) => Some(e),
            TwinVerdict::Dropped { .. } => None,
        }
    }
}
