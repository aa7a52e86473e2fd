//! The twin filter's state: held legacy events and remembered namespaced
//! keys, each indexed by (kind, key) and ordered by arrival, so expiry and
//! eviction always take the oldest and pairing is one to one.
//! (Over 500 lines: one state machine; its syndic step's own state is in `syndic`.)

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::classify::{self, Role};
use super::origin::{MasterIdentity, Origin};
use super::syndic::{self, SyndicPairs};
use super::{TwinConfig, TwinKind, TwinVerdict};
use crate::event::Provenance;
use crate::Event;

/// Beacons reach every master of a minion too, but carry no `cmd`: the
/// master fires each of a beacon load's `events` with its own data only
/// (`_minion_event`, `salt/daemons/masterapi.py`), so they are known by tag.
const BEACON_TAG_PREFIX: &str = "salt/beacon/";

const KINDS: usize = TwinKind::ALL.len();

/// A legacy event waiting for its twin.
#[derive(Debug)]
struct Held {
    event: Event,
    kind: TwinKind,
    key: Box<str>,
    deadline: Instant,
    bytes: usize,
}

/// A namespaced event's key, remembered for a legacy twin that may follow.
#[derive(Debug)]
struct Seen {
    kind: TwinKind,
    key: Box<str>,
    twin_tag: Box<str>,
    deadline: Instant,
}

/// The entries waiting under one key, oldest first. They are all on one side:
/// an event meeting an entry of the other side pairs with it instead.
#[derive(Debug)]
struct Waiting {
    legacy: bool,
    seqs: VecDeque<u64>,
}

type Slot = (TwinKind, Box<str>);

/// Drops legacy twins; see the module documentation.
///
/// Contract: `now` passed to [`push`](TwinFilter::push) and
/// [`tick`](TwinFilter::tick) should not go backwards; if it does, the
/// latest time seen is used instead.
#[derive(Debug)]
pub struct TwinFilter {
    enabled: [bool; KINDS],
    master: MasterIdentity,
    /// The provenance of this master's own events, shared by all of them.
    local: Arc<Provenance>,
    refused_peer_claims: u64,
    window: Duration,
    max_entries: usize,
    max_held_bytes: usize,
    clock: Option<Instant>,
    next_seq: u64,
    /// By arrival (sequence number), hence also by deadline.
    held: BTreeMap<u64, Held>,
    seen: BTreeMap<u64, Seen>,
    waiting: HashMap<Slot, Waiting>,
    held_bytes: usize,
    dropped: [u64; KINDS],
    released: [u64; KINDS],
    evicted: u64,
    /// Relayed events and their copies (a master of masters).
    syndic: SyndicPairs,
    /// A `syndic/` copy was seen on a master not known as a master of masters.
    warned_syndic: bool,
}

/// Longest window honoured, so that `Instant + window` cannot overflow.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl TwinFilter {
    pub fn new(cfg: TwinConfig) -> Self {
        let mut enabled = [false; KINDS];
        for k in &cfg.enabled {
            enabled[k.index()] = true;
        }
        let window = cfg.window.min(MAX_WINDOW);
        TwinFilter {
            syndic: SyndicPairs::new(cfg.syndic, window, cfg.max_entries, cfg.max_held_bytes),
            warned_syndic: false,
            enabled,
            master: MasterIdentity::default(),
            local: Arc::default(),
            refused_peer_claims: 0,
            window,
            max_entries: cfg.max_entries,
            max_held_bytes: cfg.max_held_bytes,
            clock: None,
            next_seq: 0,
            held: BTreeMap::new(),
            seen: BTreeMap::new(),
            waiting: HashMap::new(),
            held_bytes: 0,
            dropped: [0; KINDS],
            released: [0; KINDS],
            evicted: 0,
        }
    }

    /// Tells the filter which master it runs beside: events leave it with
    /// their master set, and peer copies are recognised against it.
    pub fn with_master(mut self, master: MasterIdentity) -> Self {
        self.local = Arc::new(Provenance {
            master: master.id.clone(),
            ..Provenance::default()
        });
        self.master = master;
        self
    }

    /// Whether twins of `kind` are filtered.
    pub fn is_enabled(&self, kind: TwinKind) -> bool {
        self.enabled[kind.index()]
    }

    /// Events that claimed a peer (`__peer_id`) the filter did not believe
    /// (see `twins::origin`); they were taken as this master's own.
    pub fn refused_peer_claims(&self) -> u64 {
        self.refused_peer_claims
    }

    /// Takes one event in bus order; returns zero or more verdicts (held
    /// legacy events come out later). Releases expired holds first, so a twin
    /// arriving at or after a hold's deadline no longer pairs with it.
    pub fn push(&mut self, ev: Event, now: Instant) -> Vec<TwinVerdict> {
        let mut out = Vec::new();
        self.push_into(ev, now, &mut out);
        out
    }

    /// [`push`](TwinFilter::push), appending to `out` (no allocation for the
    /// common single verdict once `out` has capacity).
    pub fn push_into(&mut self, mut ev: Event, now: Instant, out: &mut Vec<TwinVerdict>) {
        let now = self.advance(now);
        self.expire(now, out);
        if ev.is_own() {
            out.push(TwinVerdict::Pass(ev));
            return;
        }
        if self.mark_origin(&mut ev) && self.enabled[TwinKind::ClusterPeer.index()] {
            self.dropped[TwinKind::ClusterPeer.index()] += 1;
            let twin_of = ev.tag().to_owned();
            out.push(TwinVerdict::Dropped {
                event: ev,
                kind: TwinKind::ClusterPeer,
                twin_of,
            });
            return;
        }
        if self.enabled[TwinKind::OtherMaster.index()]
            && self.master.minion_events_elsewhere()
            && (ev.fired_by_minion() || ev.tag().starts_with(BEACON_TAG_PREFIX))
        {
            self.dropped[TwinKind::OtherMaster.index()] += 1;
            let twin_of = ev.tag().to_owned();
            out.push(TwinVerdict::Dropped {
                event: ev,
                kind: TwinKind::OtherMaster,
                twin_of,
            });
            return;
        }
        self.relay(ev, now, out);
    }

    /// Pairs an event a syndic may have relayed with its copy (a master of
    /// masters), then [`step`](Self::step).
    fn relay(&mut self, ev: Event, now: Instant, out: &mut Vec<TwinVerdict>) {
        if !self.enabled[TwinKind::Syndic.index()] {
            return self.step(ev, now, out);
        }
        // The id is shared by the copy's provenance: one allocation, for relayed events only.
        let copy = syndic::relayed(ev.tag()).map(|(id, at)| (Arc::<str>::from(id), at));
        if !self.master.order_masters {
            if copy.is_some() && !self.warned_syndic {
                self.warned_syndic = true;
                tracing::warn!(tag = ?ev.tag(), "a syndic's relayed event on a master not known as a master of masters: \
                    set `order_masters: True` in its config or `masters.order_masters: true`, else each relayed event is delivered twice");
            }
            return self.step(ev, now, out);
        }
        let mut pairs = Vec::new();
        match copy {
            Some((id, at)) => self.syndic.copy(ev, id, at, now, &mut pairs),
            None if syndic::may_be_relayed(&ev) => self.syndic.original(ev, now, &mut pairs),
            None => return self.step(ev, now, out),
        }
        self.after_syndic(pairs, now, out);
    }

    fn after_syndic(&mut self, pairs: Vec<syndic::Out>, now: Instant, out: &mut Vec<TwinVerdict>) {
        for p in pairs {
            match p {
                syndic::Out::Next(ev) => self.step(ev, now, out),
                syndic::Out::Dropped { event, twin_of } => {
                    self.dropped[TwinKind::Syndic.index()] += 1;
                    out.push(TwinVerdict::Dropped {
                        event,
                        kind: TwinKind::Syndic,
                        twin_of,
                    });
                }
            }
        }
    }

    /// The legacy pairing. An event a syndic relayed pairs only with events
    /// relayed by the same syndic, by its original tag: the syndic master's
    /// legacy twins are relayed too, and its `salt/job/<jid>/new` is not
    /// (blacklisted), so its bare-jid announcement must not pair with this
    /// master's own `salt/job/<jid>/new`.
    fn step(&mut self, ev: Event, now: Instant, out: &mut Vec<TwinVerdict>) {
        let enabled = self.enabled;
        let on = |k: TwinKind| enabled[k.index()];
        let role = match ev.provenance().syndic.clone() {
            Some(s) => {
                let tag = syndic::original_tag(&ev).unwrap_or(ev.tag());
                classify::role_at(tag, &ev, on).relayed_by(&s)
            }
            None => classify::role(&ev, on),
        };
        match role {
            Role::Unrelated => out.push(TwinVerdict::Pass(ev)),
            Role::Legacy { kind, key } => {
                self.legacy(ev, kind, key, now, out);
                self.enforce_caps(out);
            }
            Role::Namespaced { kinds, key } => {
                self.namespaced(&ev, kinds, key, now, out);
                // Anything evicted is older than `ev`: it goes out first.
                self.enforce_caps(out);
                out.push(TwinVerdict::Pass(ev));
            }
        }
    }

    /// Releases held legacy events whose window expired.
    pub fn tick(&mut self, now: Instant) -> Vec<TwinVerdict> {
        let now = self.advance(now);
        let mut out = Vec::new();
        self.expire(now, &mut out);
        out
    }

    /// When the next tick is due (earliest hold expiry), if anything is held.
    pub fn next_deadline(&self) -> Option<Instant> {
        let legacy = self.held.first_key_value().map(|(_, h)| h.deadline);
        match (legacy, self.syndic.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// End of input: releases everything still held (their twin never came),
    /// in arrival order, and forgets every remembered key.
    pub fn flush(&mut self) -> Vec<TwinVerdict> {
        let mut out = Vec::with_capacity(self.held.len());
        let mut pairs = Vec::new();
        self.syndic.flush(&mut pairs);
        if let Some(now) = self.clock {
            self.after_syndic(pairs, now, &mut out);
        }
        while let Some((&seq, _)) = self.held.first_key_value() {
            self.release(seq, &mut out);
        }
        self.seen.clear();
        self.waiting.clear();
        out
    }

    /// Legacy events of `kind` dropped because their twin was kept.
    pub fn dropped(&self, kind: TwinKind) -> u64 {
        self.dropped[kind.index()]
    }

    /// Legacy events of `kind` passed on without their twin (window expired,
    /// evicted at the cap, or flushed).
    pub fn released(&self, kind: TwinKind) -> u64 {
        match kind {
            TwinKind::Syndic => self.syndic.released,
            _ => self.released[kind.index()],
        }
    }

    /// Entries pushed out early by `max_entries` or `max_held_bytes`; non-zero
    /// means the caps are too small for the event rate.
    pub fn evicted(&self) -> u64 {
        self.evicted + self.syndic.evicted
    }

    /// Events held now: legacy events waiting for their twin, and on a
    /// master of masters events waiting for a syndic's copy.
    pub fn held(&self) -> usize {
        self.held.len() + self.syndic.held()
    }

    /// Namespaced keys remembered now (until their window ends).
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Sets the master `ev` was published on; true for a peer copy.
    fn mark_origin(&mut self, ev: &mut Event) -> bool {
        let origin = self.master.origin(ev);
        match origin {
            Origin::Peer(id) => {
                let p = ev.provenance_mut();
                p.master = Some(id);
                p.peer = true;
                true
            }
            Origin::Local | Origin::Refused => {
                if origin == Origin::Refused {
                    self.refused_peer_claims += 1;
                }
                if ev.provenance().syndic.is_none() && !ev.provenance().backfilled {
                    ev.set_provenance(self.local.clone());
                } else {
                    let p = ev.provenance_mut();
                    p.master = self.master.id.clone();
                    p.peer = false;
                }
                false
            }
        }
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.clock.map_or(now, |c| c.max(now));
        self.clock = Some(now);
        now
    }

    fn deadline(&self, now: Instant) -> Instant {
        now.checked_add(self.window).unwrap_or(now)
    }

    fn legacy(
        &mut self,
        event: Event,
        kind: TwinKind,
        key: Box<str>,
        now: Instant,
        out: &mut Vec<TwinVerdict>,
    ) {
        let slot = (kind, key);
        if let Some(seq) = self.take_waiting(&slot, false) {
            if let Some(seen) = self.seen.remove(&seq) {
                self.dropped[kind.index()] += 1;
                out.push(TwinVerdict::Dropped {
                    event,
                    kind,
                    twin_of: seen.twin_tag.into(),
                });
                return;
            }
        }
        let seq = self.wait(slot.clone(), true);
        let bytes = syndic::event_bytes(&event);
        self.held_bytes += bytes;
        let deadline = self.deadline(now);
        self.held.insert(
            seq,
            Held {
                event,
                kind,
                key: slot.1,
                deadline,
                bytes,
            },
        );
    }

    /// Pairs `event` with held legacy events, or remembers its key; the
    /// caller passes it on.
    fn namespaced(
        &mut self,
        event: &Event,
        kinds: &[TwinKind],
        key: Box<str>,
        now: Instant,
        out: &mut Vec<TwinVerdict>,
    ) {
        let enabled = self.enabled;
        for &kind in kinds.iter().filter(|k| enabled[k.index()]) {
            let slot = (kind, key.clone());
            if let Some(seq) = self.take_waiting(&slot, true) {
                if self.drop_held(seq, event.tag(), out) {
                    continue;
                }
            }
            let seq = self.wait(slot.clone(), false);
            let deadline = self.deadline(now);
            self.seen.insert(
                seq,
                Seen {
                    kind,
                    key: slot.1,
                    twin_tag: event.tag().into(),
                    deadline,
                },
            );
        }
    }

    /// Takes the oldest entry under `slot` if it is on the `legacy` side.
    fn take_waiting(&mut self, slot: &Slot, legacy: bool) -> Option<u64> {
        let w = self.waiting.get_mut(slot)?;
        if w.legacy != legacy {
            return None;
        }
        let seq = w.seqs.pop_front();
        if w.seqs.is_empty() {
            self.waiting.remove(slot);
        }
        seq
    }

    /// Queues a new entry under `slot` and returns its sequence number.
    fn wait(&mut self, slot: Slot, legacy: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting
            .entry(slot)
            .or_insert_with(|| Waiting {
                legacy,
                seqs: VecDeque::new(),
            })
            .seqs
            .push_back(seq);
        seq
    }

    /// Removes `seq` from its slot's queue (an expired or evicted entry).
    fn unlink(&mut self, slot: &Slot, seq: u64) {
        if let Some(w) = self.waiting.get_mut(slot) {
            // Entries leave in arrival order, so `seq` is almost always first.
            if w.seqs.front() == Some(&seq) {
                w.seqs.pop_front();
            } else {
                w.seqs.retain(|&s| s != seq);
            }
            if w.seqs.is_empty() {
                self.waiting.remove(slot);
            }
        }
    }

    /// Passes on a held event whose twin did not come. `new_job` carries all
    /// that the bare-jid `{"minions"}` event does, so when both wait for a
    /// `salt/job/<jid>/new` that never comes (a reader disconnected between
    /// them, on 0.17 .. 2014.7), `new_job` alone goes on: one event per fact.
    fn release(&mut self, seq: u64, out: &mut Vec<TwinVerdict>) {
        let Some(h) = self.held.remove(&seq) else {
            return;
        };
        self.held_bytes -= h.bytes;
        let slot = (h.kind, h.key);
        self.unlink(&slot, seq);
        let (kind, key) = slot;
        let new_job = (TwinKind::NewJob, key);
        if kind == TwinKind::BareJidNew && self.is_held(&new_job) {
            self.dropped[kind.index()] += 1;
            out.push(TwinVerdict::Dropped {
                event: h.event,
                kind,
                twin_of: "new_job".to_owned(),
            });
            return;
        }
        self.released[kind.index()] += 1;
        out.push(TwinVerdict::Pass(h.event));
        if kind == TwinKind::NewJob {
            let bare = (TwinKind::BareJidNew, new_job.1);
            if let Some(seq) = self.take_waiting(&bare, true) {
                self.drop_held(seq, "new_job", out);
            }
        }
    }

    fn is_held(&self, slot: &Slot) -> bool {
        self.waiting.get(slot).is_some_and(|w| w.legacy)
    }

    /// Drops the held event `seq` (already taken off its slot's queue).
    fn drop_held(&mut self, seq: u64, twin_of: &str, out: &mut Vec<TwinVerdict>) -> bool {
        let Some(h) = self.held.remove(&seq) else {
            return false;
        };
        self.held_bytes -= h.bytes;
        self.dropped[h.kind.index()] += 1;
        out.push(TwinVerdict::Dropped {
            event: h.event,
            kind: h.kind,
            twin_of: twin_of.to_owned(),
        });
        true
    }

    fn forget(&mut self, seq: u64) {
        if let Some(s) = self.seen.remove(&seq) {
            self.unlink(&(s.kind, s.key), seq);
        }
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<TwinVerdict>) {
        // First: an original released here may still pair with a
        // namespaced key remembered below.
        let mut pairs = Vec::new();
        self.syndic.expire(now, &mut pairs);
        self.after_syndic(pairs, now, out);
        while let Some((&seq, h)) = self.held.first_key_value() {
            if h.deadline > now {
                break;
            }
            self.release(seq, out);
        }
        while let Some((&seq, s)) = self.seen.first_key_value() {
            if s.deadline > now {
                break;
            }
            self.forget(seq);
        }
    }

    fn enforce_caps(&mut self, out: &mut Vec<TwinVerdict>) {
        while self.held_bytes > self.max_held_bytes {
            let Some((&seq, _)) = self.held.first_key_value() else {
                break;
            };
            self.evicted += 1;
            self.release(seq, out);
        }
        while self.held.len() + self.seen.len() > self.max_entries {
            let oldest_held = self.held.first_key_value().map(|(&s, _)| s);
            let oldest_seen = self.seen.first_key_value().map(|(&s, _)| s);
            match (oldest_held, oldest_seen) {
                (Some(h), Some(s)) if s < h => self.forget(s),
                (Some(h), _) => self.release(h, out),
                (None, Some(s)) => self.forget(s),
                (None, None) => break,
            }
            self.evicted += 1;
        }
    }
}
