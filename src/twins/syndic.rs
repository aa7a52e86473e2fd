//! Syndic twins: a master of masters fires every event a syndic relays twice.
//!
//! A `salt-syndic` reads its own master's bus and sends the master of
//! masters (MoM) every event without `retcode` in batches, with `pretag:
//! syndic/<syndic id>` (`Syndic._process_event`, `salt/minion.py`). The
//! MoM's `_minion_event` (`salt/daemons/masterapi.py`) fires each one under
//! its original tag (an "old dup event" in Salt's code) and as
//! `syndic/<syndic id>/<tag>`, with the same data dict (`fire_event` sets
//! `_stamp` on it each time). Recorded on Salt 3006.29
//! (`tests/fixtures/syndic/`): the original comes first, its copy 0.4 to
//! 1.5 ms later, and the two differ in `_stamp` alone; nothing in the
//! original says it was relayed. Salt 3008.4's source fires the copy first,
//! and an original that `MINION_EVENT_BLACKLIST` refuses (`salt/job/*/new`
//! and the like) only as the copy (its `salt-syndic` hangs at start here, so
//! that order is read, not recorded). Returns are not relayed this way: the
//! MoM's `_syndic_return` fires them once, as ordinary
//! `salt/job/<jid>/ret/<minion>` events with `retcode`.
//!
//! So on a master of masters every event that a syndic could have relayed
//! (not blacklisted, no top-level `retcode`) is held until its copy comes
//! (typically a millisecond) or `window` ends (the MoM's own events, which
//! no copy follows: they go on that much later). The pair is keyed by the
//! original tag and the data without what `fire_event` adds (`_stamp`, the
//! trace context), one to one in arrival order. `syndic:` chooses the copy
//! that goes on, `keep_original` (the default) or `keep_syndic`; either way
//! it carries the syndic's id ([`crate::event::Provenance::syndic`]). A copy
//! whose original never comes (blacklisted, or the window passed) goes on
//! under its `syndic/` tag, with the syndic's id.
//!
//! What a minion can forge: any minion can send a `_minion_event` batch with
//! a `pretag` of its choosing, so it can fire `syndic/<any id>/<tag>` with
//! any data. Such a copy pairs only with an event whose tag and data (but
//! `_stamp`) are equal: the minion's own, or one it can reproduce exactly
//! (a `salt/auth` of a key it knows). With `keep_original` that event goes
//! on, labelled with the forged syndic id; with `keep_syndic` it goes on as
//! the forged copy. Nothing is lost either way: one copy of the fact goes on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::classify::FIRE_EVENT_KEYS;
use crate::event::{peer, JsonText};
use crate::Event;

/// Tags of relayed copies start with this (`Syndic.pretag`).
pub const SYNDIC_TAG_PREFIX: &str = "syndic/";

/// Which copy of a relayed event goes on (`twins.syndic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyndicKeep {
    /// The event under its original tag, with the syndic's id as metadata.
    #[default]
    Original,
    /// The `syndic/<id>/<tag>` copy.
    Syndic,
}

/// `syndic/<id>/<tag>`: the syndic's id and where `<tag>` starts. Salt
/// refuses ids containing `/` (`salt.utils.verify.valid_id`).
pub(super) fn relayed(tag: &str) -> Option<(&str, usize)> {
    let rest = tag.strip_prefix(SYNDIC_TAG_PREFIX)?;
    let (id, original) = rest.split_once('/')?;
    (!id.is_empty() && !original.is_empty()).then_some((id, tag.len() - original.len()))
}

/// The original tag of an event the syndic named in its provenance
/// relayed as `syndic/<id>/<tag>`; `None` for any other event.
pub(super) fn original_tag(ev: &Event) -> Option<&str> {
    let syndic = ev.provenance().syndic.as_deref()?;
    let (id, at) = relayed(ev.tag())?;
    (id == syndic).then(|| &ev.tag()[at..])
}

/// A syndic's copy that goes on (`keep_syndic`, or one whose original
/// never came), under its original tag: the same fact, for the job
/// tracker, which reads jobs by their tags. `None` for any other event.
pub fn original_of(ev: &Event) -> Option<Event> {
    let tag = original_tag(ev)?;
    let mut e = Event::new(
        tag.to_owned(),
        JsonText::trusted(ev.data_json().to_owned()),
        ev.received_at(),
        Arc::from(ev.source()),
        None,
    );
    e.set_provenance(Arc::new(ev.provenance().clone()));
    Some(e)
}

/// `MINION_EVENT_BLACKLIST` (`salt/daemons/masterapi.py`, 3006.29 and
/// 3008.4) as (prefix, suffix) of Python's `fnmatch` patterns, where `*`
/// also matches `/`. The MoM never fires these under their original tag.
const BLACKLIST: [(&str, &str); 8] = [
    ("salt/job/", "/publish"),
    ("salt/job/", "/new"),
    ("salt/job/", "/return"),
    ("salt/cloud/", ""),
    ("salt/run/", ""),
    ("salt/cluster/", ""),
    ("salt/wheel/", "/new"),
    ("salt/wheel/", "/return"),
];

/// What `valid_minion_tag` refuses.
pub(super) fn blacklisted(tag: &str) -> bool {
    tag == "salt/key"
        || BLACKLIST
            .iter()
            .any(|(p, s)| tag.len() >= p.len() + s.len() && tag.starts_with(p) && tag.ends_with(s))
}

/// Whether `ev` may be the original of a relayed event: a syndic forwards
/// events without `retcode` (Python's `"retcode" not in data`), and the
/// MoM fires the original only if its tag is not blacklisted.
pub(super) fn may_be_relayed(ev: &Event) -> bool {
    if blacklisted(ev.tag()) {
        return false;
    }
    if !ev.data_json().contains("retcode") {
        return true;
    }
    match ev.data() {
        Value::Object(o) => !o.contains_key("retcode"),
        Value::String(s) => !s.contains("retcode"),
        Value::Array(a) => !a.iter().any(|v| v == "retcode"),
        _ => true,
    }
}

/// The pair's key: the original tag, and a 128-bit hash of the data
/// without the members `fire_event` adds.
pub(super) fn pair_key(original_tag: &str, data_json: &str) -> Box<str> {
    let data = peer::without_members(data_json, &FIRE_EVENT_KEYS);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(data.as_bytes());
    format!("{original_tag}\u{1f}{:032x}", h.digest128()).into_boxed_str()
}

/// What the pairing says of an event.
#[derive(Debug)]
pub(super) enum Out {
    /// Goes on to the legacy twin step.
    Next(Event),
    /// The copy that does not go on, twin of the event tagged `twin_of`.
    Dropped { event: Event, twin_of: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Original,
    Copy,
}

#[derive(Debug)]
struct Entry {
    key: Box<str>,
    /// The syndic of a copy.
    syndic: Option<Arc<str>>,
    tag: String,
    /// `None`: a copy that already went on (`keep_syndic`), remembered.
    event: Option<Event>,
    deadline: Instant,
    bytes: usize,
}

/// Held originals and copies, by arrival, and their keys; see the module docs.
#[derive(Debug)]
pub(super) struct SyndicPairs {
    keep: SyndicKeep,
    window: Duration,
    max_entries: usize,
    max_held_bytes: usize,
    next_seq: u64,
    entries: BTreeMap<u64, Entry>,
    waiting: HashMap<Box<str>, (Side, VecDeque<u64>)>,
    held: usize,
    held_bytes: usize,
    pub released: u64,
    pub evicted: u64,
}

impl SyndicPairs {
    pub fn new(
        keep: SyndicKeep,
        window: Duration,
        max_entries: usize,
        max_held_bytes: usize,
    ) -> Self {
        SyndicPairs {
            keep,
            window,
            max_entries,
            max_held_bytes,
            next_seq: 0,
            entries: BTreeMap::new(),
            waiting: HashMap::new(),
            held: 0,
            held_bytes: 0,
            released: 0,
            evicted: 0,
        }
    }

    /// Events held now.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.first_key_value().map(|(_, e)| e.deadline)
    }

    /// An event that may be a relayed original.
    pub fn original(&mut self, ev: Event, now: Instant, out: &mut Vec<Out>) {
        let key = pair_key(ev.tag(), ev.data_json());
        if let Some(copy) = self.take(&key, Side::Copy) {
            let mut ev = ev;
            ev.provenance_mut().syndic = copy.syndic;
            match copy.event {
                // keep_original, the copy came first (3008).
                Some(copy_ev) => {
                    out.push(Out::Dropped {
                        event: copy_ev,
                        twin_of: ev.tag().to_owned(),
                    });
                    out.push(Out::Next(ev));
                }
                // keep_syndic: the copy already went on.
                None => out.push(Out::Dropped {
                    event: ev,
                    twin_of: copy.tag,
                }),
            }
            return;
        }
        let tag = ev.tag().to_owned();
        self.hold(Side::Original, key, None, tag, Some(ev), now);
        self.enforce_caps(out);
    }

    /// `syndic/<syndic>/<tag>`, the original tag starting at `at`.
    pub fn copy(
        &mut self,
        mut ev: Event,
        syndic: Arc<str>,
        at: usize,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        ev.provenance_mut().syndic = Some(syndic.clone());
        let original_tag = &ev.tag()[at..];
        if blacklisted(original_tag) {
            // No original will come.
            out.push(Out::Next(ev));
            return;
        }
        let key = pair_key(original_tag, ev.data_json());
        if let Some(original) = self.take(&key, Side::Original) {
            let Some(mut orig) = original.event else {
                return out.push(Out::Next(ev));
            };
            orig.provenance_mut().syndic = Some(syndic);
            let (kept, dropped) = match self.keep {
                SyndicKeep::Original => (orig, ev),
                SyndicKeep::Syndic => (ev, orig),
            };
            out.push(Out::Dropped {
                event: dropped,
                twin_of: kept.tag().to_owned(),
            });
            out.push(Out::Next(kept));
            return;
        }
        let tag = ev.tag().to_owned();
        match self.keep {
            SyndicKeep::Original => self.hold(Side::Copy, key, Some(syndic), tag, Some(ev), now),
            SyndicKeep::Syndic => {
                self.hold(Side::Copy, key, Some(syndic), tag, None, now);
                out.push(Out::Next(ev));
            }
        }
        self.enforce_caps(out);
    }

    /// Releases held events whose window ended; forgets remembered copies.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Out>) {
        while let Some((&seq, e)) = self.entries.first_key_value() {
            if e.deadline > now {
                break;
            }
            self.release(seq, out);
        }
    }

    /// Releases everything, in arrival order.
    pub fn flush(&mut self, out: &mut Vec<Out>) {
        while let Some((&seq, _)) = self.entries.first_key_value() {
            self.release(seq, out);
        }
    }

    fn release(&mut self, seq: u64, out: &mut Vec<Out>) {
        let Some(e) = self.remove(seq) else {
            return;
        };
        if let Some(ev) = e.event {
            self.released += 1;
            out.push(Out::Next(ev));
        }
    }

    fn hold(
        &mut self,
        side: Side,
        key: Box<str>,
        syndic: Option<Arc<str>>,
        tag: String,
        event: Option<Event>,
        now: Instant,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = event.as_ref().map_or(0, event_bytes);
        if event.is_some() {
            self.held += 1;
            self.held_bytes += bytes;
        }
        let q = self
            .waiting
            .entry(key.clone())
            .or_insert_with(|| (side, VecDeque::new()));
        if q.0 != side {
            // Unreachable: a key waits on one side only (the other pairs).
            q.1.clear();
            q.0 = side;
        }
        q.1.push_back(seq);
        let deadline = now.checked_add(self.window).unwrap_or(now);
        self.entries.insert(
            seq,
            Entry {
                key,
                syndic,
                tag,
                event,
                deadline,
                bytes,
            },
        );
    }

    /// The oldest entry under `key` if it waits on `side`.
    fn take(&mut self, key: &str, side: Side) -> Option<Entry> {
        let (s, q) = self.waiting.get_mut(key)?;
        if *s != side {
            return None;
        }
        let seq = q.front().copied()?;
        self.remove(seq)
    }

    fn remove(&mut self, seq: u64) -> Option<Entry> {
        let e = self.entries.remove(&seq)?;
        if e.event.is_some() {
            self.held -= 1;
            self.held_bytes -= e.bytes;
        }
        if let Some((_, q)) = self.waiting.get_mut(&e.key) {
            if q.front() == Some(&seq) {
                q.pop_front();
            } else {
                q.retain(|&s| s != seq);
            }
            if q.is_empty() {
                self.waiting.remove(&e.key);
            }
        }
        Some(e)
    }

    fn enforce_caps(&mut self, out: &mut Vec<Out>) {
        while self.held_bytes > self.max_held_bytes || self.entries.len() > self.max_entries {
            let Some((&seq, _)) = self.entries.first_key_value() else {
                break;
            };
            self.evicted += 1;
            self.release(seq, out);
        }
    }
}

/// What a held event costs, roughly: its text and the bus bytes it keeps.
pub(super) fn event_bytes(ev: &Event) -> usize {
    ev.tag().len() + ev.data_json().len() + ev.raw().map_or(0, |r| r.body.len())
}
