//! Completing a trimmed return from the job cache (a route's
//! `complete_trimmed: true`): a pure stage, the clock passed in.
//!
//! A master fires no event larger than its `max_event_size` (1 MiB by
//! default): `salt.utils.event.SaltEvent.pack` replaces the largest values
//! with the string `VALUE_TRIMMED` (`salt/utils/dicttrim.py`), the `return`
//! of a large return first. The job cache keeps the whole return
//! (`<jid dir>/<minion>/return.p`), but the master writes it *after* it
//! fires the event (`salt.utils.job.store_job`: `fire_event`, then the
//! returner), a few milliseconds later. So a trimmed return is looked up
//! when it is pushed (a bridge that lags the bus finds the file at once),
//! and else held and looked up again on a doubling delay ([`FIRST_RETRY`],
//! at most [`MAX_RETRY`] apart) until `wait` has passed. Found, it goes on
//! with `return`, `retcode` and `success` from the cache; never found (a
//! master with `nocache`, a cache cleaned meanwhile, an unreadable file),
//! it goes on as it came, counted. The hold is bounded in events and bytes:
//! past either, the oldest held event goes on as it came.
//!
//! `T` is what the caller keeps with each event (the pipeline: where the
//! routes that asked for completion send it).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::cache::{CachedReturn, JobCacheRead};
use crate::event::{Event, JsonText};

/// What Salt puts in place of a value it trimmed.
pub const TRIMMED: &str = "VALUE_TRIMMED";

/// The first look-up after the one at push.
pub const FIRST_RETRY: Duration = Duration::from_millis(25);
/// The longest time between two look-ups.
pub const MAX_RETRY: Duration = Duration::from_secs(1);

/// `backfill.trimmed` of a routes file; see docs/routes.md.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrimmedConfig {
    /// How long a trimmed return waits for its `return.p`.
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Most trimmed returns held at once.
    pub max_events: usize,
    /// Most bytes of trimmed returns held at once.
    #[serde(deserialize_with = "crate::byte_size::deserialize_nonzero_usize")]
    pub max_bytes: usize,
}

impl Default for TrimmedConfig {
    fn default() -> Self {
        TrimmedConfig {
            wait: Duration::from_secs(5),
            max_events: 1_000,
            max_bytes: 64 << 20,
        }
    }
}

/// A job return (`salt/job/<jid>/ret/<id>`, fired by the master, read on
/// the bus) in which Salt trimmed a value: `(jid, minion)`.
pub fn trimmed_return(ev: &Event) -> Option<(&str, &str)> {
    // The tag first: the text scans below run for job returns only.
    let (jid, minion) = return_of(ev.tag())?;
    let data = ev.data_json();
    if !data.contains(TRIMMED) || ev.provenance().backfilled || data.contains("\"_minion_event\"") {
        return None;
    }
    Some((jid, minion))
}

/// `(jid, minion)` of a `salt/job/<jid>/ret/<minion>` tag, both plain.
fn return_of(tag: &str) -> Option<(&str, &str)> {
    let rest = tag.strip_prefix("salt/job/")?;
    let (jid, minion) = rest.split_once("/ret/")?;
    super::cache::is_job_and_minion(jid, minion).then_some((jid, minion))
}

/// `ev` with `return`, `retcode` and `success` from the cached return.
pub fn completed(ev: &Event, cached: &CachedReturn) -> Event {
    let mut data = ev.data().clone();
    if let Value::Object(map) = &mut data {
        for key in ["return", "retcode", "success"] {
            if let Some(v) = cached.data.get(key) {
                map.insert(key.into(), v.clone());
            }
        }
    }
    let mut out = Event::new(
        ev.tag().to_owned(),
        JsonText::from(&data),
        ev.received_at(),
        std::sync::Arc::from(ev.source()),
        None,
    );
    out.set_provenance(std::sync::Arc::new(ev.provenance().clone()));
    out
}

/// Counts of the hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimmedCounts {
    /// Trimmed returns completed from the cache.
    pub completed: u64,
    /// Trimmed returns sent as they came (not found in time, or the hold was full).
    pub sent_trimmed: u64,
}

struct Held<T> {
    event: Event,
    with: T,
    give_up: Instant,
    next_try: Instant,
    delay: Duration,
}

/// The trimmed returns waiting for their `return.p`.
pub struct TrimmedHold<T> {
    cfg: TrimmedConfig,
    held: VecDeque<Held<T>>,
    bytes: usize,
    counts: TrimmedCounts,
}

impl<T> TrimmedHold<T> {
    pub fn new(cfg: TrimmedConfig) -> Self {
        TrimmedHold {
            cfg,
            held: VecDeque::new(),
            bytes: 0,
            counts: TrimmedCounts::default(),
        }
    }

    /// Takes a trimmed return ([`trimmed_return`]); what can go on now:
    /// it completed, or older events the bounds push out as they came.
    pub fn push(
        &mut self,
        event: Event,
        with: T,
        now: Instant,
        cache: &mut dyn JobCacheRead,
    ) -> Vec<(Event, T)> {
        if let Some(done) = self.look_up(&event, cache) {
            self.counts.completed += 1;
            return vec![(done, with)];
        }
        self.bytes += event.heap_bytes();
        self.held.push_back(Held {
            event,
            with,
            give_up: now + self.cfg.wait,
            next_try: now + FIRST_RETRY,
            delay: FIRST_RETRY,
        });
        let mut out = Vec::new();
        while self.held.len() > self.cfg.max_events.max(1) || self.bytes > self.cfg.max_bytes {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            self.release_as_is(h, &mut out);
        }
        out
    }

    /// Looks up what is due; what can go on.
    pub fn tick(&mut self, now: Instant, cache: &mut dyn JobCacheRead) -> Vec<(Event, T)> {
        let mut out = Vec::new();
        let mut kept = VecDeque::with_capacity(self.held.len());
        while let Some(mut h) = self.held.pop_front() {
            if h.next_try > now {
                kept.push_back(h);
                continue;
            }
            if let Some(done) = self.look_up(&h.event, cache) {
                self.release_completed(h, done, &mut out);
            } else if now >= h.give_up {
                self.release_as_is(h, &mut out);
            } else {
                h.delay = (h.delay * 2).min(MAX_RETRY);
                h.next_try = (now + h.delay).min(h.give_up);
                kept.push_back(h);
            }
        }
        self.held = kept;
        out
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.iter().map(|h| h.next_try).min()
    }

    /// End of input or shutdown: one last look-up each, and everything goes.
    pub fn flush(&mut self, cache: &mut dyn JobCacheRead) -> Vec<(Event, T)> {
        let mut out = Vec::new();
        while let Some(h) = self.held.pop_front() {
            match self.look_up(&h.event, cache) {
                Some(done) => self.release_completed(h, done, &mut out),
                None => self.release_as_is(h, &mut out),
            }
        }
        out
    }

    /// Events held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn counts(&self) -> TrimmedCounts {
        self.counts
    }

    fn look_up(&self, event: &Event, cache: &mut dyn JobCacheRead) -> Option<Event> {
        // Held events are trimmed returns already: the tag names the return.
        let (jid, minion) = return_of(event.tag())?;
        let cached = cache.find_return(jid, minion)?;
        Some(completed(event, &cached))
    }

    /// `h`, completed from the cache as `done`.
    fn release_completed(&mut self, h: Held<T>, done: Event, out: &mut Vec<(Event, T)>) {
        self.bytes -= h.event.heap_bytes();
        self.counts.completed += 1;
        out.push((done, h.with));
    }

    fn release_as_is(&mut self, h: Held<T>, out: &mut Vec<(Event, T)>) {
        self.bytes -= h.event.heap_bytes();
        self.counts.sent_trimmed += 1;
        tracing::info!(tag = h.event.tag(),
            "complete_trimmed: the job cache has no return for this trimmed event; it goes on with VALUE_TRIMMED");
        out.push((h.event, h.with));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use serde_json::{json, Map};

    use super::*;
    use crate::backfill::cache::CachedJob;

    /// A cache whose `return.p` for job 1 appears at the `appears_at`-th look-up.
    struct Later {
        lookups: usize,
        appears_at: usize,
    }

    impl JobCacheRead for Later {
        fn jobs_changed_since(&mut self, _: SystemTime, _: usize) -> Vec<CachedJob> {
            Vec::new()
        }
        fn job(&mut self, _: &str) -> Option<CachedJob> {
            None
        }
        fn bad_files(&self) -> u64 {
            0
        }
        fn find_return(&mut self, jid: &str, minion: &str) -> Option<CachedReturn> {
            self.lookups += 1;
            let mut data = Map::new();
            data.insert("return".into(), json!("x".repeat(2000)));
            data.insert("retcode".into(), json!(0));
            data.insert("success".into(), json!(true));
            (self.lookups >= self.appears_at && jid == JID && minion == "a").then(|| CachedReturn {
                minion: minion.into(),
                data,
                written: SystemTime::now(),
            })
        }
    }

    const JID: &str = "20261202010630007713";

    fn trimmed(minion: &str) -> Event {
        let data = json!({"cmd": "_return", "id": minion, "jid": JID, "fun": "cmd.run",
            "return": TRIMMED, "retcode": 0, "success": true, "_stamp": "s"});
        Event::synthetic(format!("salt/job/{JID}/ret/{minion}"), data, Arc::from("x"))
    }

    #[test]
    fn only_a_job_return_the_master_trimmed_is_completed() {
        assert_eq!(trimmed_return(&trimmed("a")), Some((JID, "a")));
        let whole = Event::synthetic(
            format!("salt/job/{JID}/ret/a"),
            json!({"return": 1}),
            Arc::from("x"),
        );
        assert_eq!(trimmed_return(&whole), None);
        let fired = json!({"cmd": "_minion_event", "data": TRIMMED});
        let fired = Event::synthetic(format!("salt/job/{JID}/ret/a"), fired, Arc::from("x"));
        assert_eq!(trimmed_return(&fired), None);
        let up = Event::synthetic(
            format!("salt/job/{JID}/ret/.."),
            json!({"r": TRIMMED}),
            Arc::from("x"),
        );
        assert_eq!(trimmed_return(&up), None);
        let other = Event::synthetic("my/tag", json!({"r": TRIMMED}), Arc::from("x"));
        assert_eq!(trimmed_return(&other), None);
    }

    #[test]
    fn a_return_written_after_its_event_is_found_by_a_later_look_up() {
        let t0 = Instant::now();
        let mut hold = TrimmedHold::new(TrimmedConfig::default());
        let mut cache = Later {
            lookups: 0,
            appears_at: 3,
        };
        assert!(hold.push(trimmed("a"), 7, t0, &mut cache).is_empty());
        assert_eq!(hold.held(), 1);
        let first = hold.next_deadline().unwrap();
        assert_eq!(first, t0 + FIRST_RETRY);
        assert!(hold
            .tick(first - Duration::from_millis(1), &mut cache)
            .is_empty());
        assert!(hold.tick(first, &mut cache).is_empty());
        let second = hold.next_deadline().unwrap();
        assert_eq!(second, first + FIRST_RETRY * 2);
        let out = hold.tick(second, &mut cache);
        assert_eq!(out.len(), 1);
        let (ev, with) = &out[0];
        assert_eq!(*with, 7);
        assert_eq!(ev.data()["return"], json!("x".repeat(2000)));
        assert_eq!(ev.data()["fun"], "cmd.run");
        assert_eq!(ev.idempotency_key(), trimmed("a").idempotency_key());
        assert_eq!(hold.held(), 0);
        assert_eq!(hold.next_deadline(), None);
        assert_eq!(
            hold.counts(),
            TrimmedCounts {
                completed: 1,
                sent_trimmed: 0
            }
        );
        // Already written when it is read: completed at push.
        let mut written = Later {
            lookups: 0,
            appears_at: 1,
        };
        assert_eq!(hold.push(trimmed("a"), 8, t0, &mut written).len(), 1);
        assert_eq!(hold.counts().completed, 2);
    }

    #[test]
    fn a_return_never_written_goes_on_as_it_came_after_the_wait() {
        let t0 = Instant::now();
        let cfg = TrimmedConfig {
            wait: Duration::from_secs(5),
            ..TrimmedConfig::default()
        };
        let mut hold = TrimmedHold::new(cfg);
        let mut cache = Later {
            lookups: 0,
            appears_at: usize::MAX,
        };
        assert!(hold.push(trimmed("b"), (), t0, &mut cache).is_empty());
        let mut now = t0;
        let mut out = Vec::new();
        while let Some(d) = hold.next_deadline() {
            assert!(d > now && d <= t0 + Duration::from_secs(5));
            now = d;
            out.extend(hold.tick(now, &mut cache));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.data()["return"], TRIMMED);
        assert_eq!(
            hold.counts(),
            TrimmedCounts {
                completed: 0,
                sent_trimmed: 1
            }
        );
        // Doubling from 25 ms, at most 1 s apart: a handful of look-ups in 5 s.
        assert!(cache.lookups < 15, "{}", cache.lookups);
    }

    #[test]
    fn the_hold_is_bounded_in_events_and_bytes_and_flushes_everything() {
        let t0 = Instant::now();
        let cfg = TrimmedConfig {
            max_events: 2,
            ..TrimmedConfig::default()
        };
        let mut hold = TrimmedHold::new(cfg);
        let mut cache = Later {
            lookups: 0,
            appears_at: usize::MAX,
        };
        for n in 0..3 {
            let out = hold.push(trimmed("b"), n, t0, &mut cache);
            // The third pushes the first out, as it came.
            assert_eq!(
                out.iter().map(|o| o.1).collect::<Vec<_>>(),
                if n == 2 { vec![0] } else { vec![] }
            );
        }
        let bytes = trimmed("b").heap_bytes();
        let cfg = TrimmedConfig {
            max_bytes: bytes * 2 - 1,
            ..TrimmedConfig::default()
        };
        let mut small = TrimmedHold::new(cfg);
        assert!(small.push(trimmed("b"), 0, t0, &mut cache).is_empty());
        assert_eq!(small.push(trimmed("b"), 1, t0, &mut cache).len(), 1);
        assert_eq!(small.held(), 1);
        // At the end, one last look-up each, and nothing is held.
        let mut now_written = Later {
            lookups: 0,
            appears_at: 1,
        };
        let out = hold.flush(&mut now_written);
        assert_eq!(out.len(), 2);
        assert_eq!(hold.held(), 0);
        assert_eq!(
            hold.counts(),
            TrimmedCounts {
                completed: 0,
                sent_trimmed: 3
            }
        );
    }
}
