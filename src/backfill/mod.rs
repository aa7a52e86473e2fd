//! Backfill from the master's job cache: what the bus lost during a gap.
//!
//! Salt keeps no backlog on its bus (a reader that is away misses what was
//! published meanwhile), but the master's local job cache keeps every job's
//! load and every minion's first return (`salt/returners/local_cache.py`;
//! the layout is in [`cache`]). After a gap (the source's
//! `saltbridge/bus/gap` marker after a reconnect or a master restart, and at
//! start-up the time since the last run read its last event) the pipeline
//! asks [`Backfill::after_gap`] for the jobs whose start or returns fall in
//! the gap: their returns are rebuilt ([`rebuild`]) and routed like bus
//! returns, marked `backfilled` in their provenance, and their loads open
//! (and the returns close) their jobs in the tracker, so their summaries are
//! right. Before a job summary says a minion did not return, the cache is
//! asked too ([`Backfill::returns_of`]).
//!
//! A return written up to [`SLACK`] before the gap began is delivered
//! again: the bus copy and the rebuilt one have the same idempotency key
//! (a return's key is its tag), so a receiver that deduplicates on the key
//! keeps one. Reading is all in [`cache::LocalJobCache`]; this module only
//! decides, with the times passed in. A master whose `master_job_cache` is
//! not `local_cache` has no local cache to read: that is logged once and
//! the bridge goes on without backfill.
//!
//! A return whose event Salt trimmed (`VALUE_TRIMMED`) is completed from
//! the cache for the routes that ask (`complete_trimmed`): [`trimmed`]
//! holds it until the master has written its `return.p`.

pub mod cache;
pub mod rebuild;
#[cfg(test)]
mod tests;
pub mod trimmed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::event::{Event, Provenance};
pub use cache::{CachedJob, CachedReturn, JobCacheRead, LocalJobCache};
pub use trimmed::{TrimmedConfig, TrimmedCounts, TrimmedHold};

/// How far before a gap's start returns are backfilled too: the marker's
/// `disconnected_at` is when the reader noticed, not when the last byte came.
pub const SLACK: Duration = Duration::from_secs(2);

/// `backfill:` of a routes file; see docs/topologies.md.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Off: gaps are marked, nothing is read from the job cache.
    pub enabled: bool,
    /// The master's `cachedir`; default: the Salt master config's (the
    /// `source:` or `masters.master_config`), else Salt's default.
    pub cachedir: Option<PathBuf>,
    /// The master's `hash_type`, which names the job folders (default sha256).
    pub hash_type: String,
    /// Largest cache file read (a load, a minion list, a return); a larger
    /// one is counted as bad and skipped.
    #[serde(deserialize_with = "crate::byte_size::deserialize_nonzero_usize")]
    pub max_file_bytes: usize,
    /// Most jobs backfilled after one gap (the newest are kept).
    pub max_jobs: usize,
    /// How trimmed returns wait for the cache (routes with `complete_trimmed`).
    pub trimmed: TrimmedConfig,
    /// The master config's `master_job_cache` (filled in by `config`).
    #[serde(skip)]
    pub master_job_cache: Option<String>,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig {
            enabled: true,
            cachedir: None,
            hash_type: "sha256".into(),
            max_file_bytes: 64 << 20,
            max_jobs: 10_000,
            trimmed: TrimmedConfig::default(),
            master_job_cache: None,
        }
    }
}

/// The backfill's counters (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillCounts {
    /// Returns rebuilt from the cache and routed: lost in a gap, or found
    /// before a summary said a minion did not return.
    pub returns: u64,
    /// Cache files skipped as unreadable, not msgpack or too large.
    pub bad_files: u64,
    /// Trimmed returns of `complete_trimmed` routes.
    pub trimmed: TrimmedCounts,
}

/// What the backfill hands the pipeline after a gap, in order.
#[derive(Debug)]
pub enum Step {
    /// A job's announcement: for the job tracker only.
    Announce(Event),
    /// A return: `route` when the bus lost it (written during the gap);
    /// otherwise for the tracker only (the bus delivered it before).
    Return { event: Event, route: bool },
}

/// The backfill of one bridge: its master's job cache and its provenance,
/// and the trimmed returns waiting for that cache, each with a `T` (the
/// pipeline's: the routes that wait for it).
pub struct Backfill<T = ()> {
    cfg: BackfillConfig,
    cache: Box<dyn JobCacheRead>,
    provenance: Arc<Provenance>,
    source: Arc<str>,
    delivered: u64,
    trimmed: TrimmedHold<T>,
}

impl<T> std::fmt::Debug for Backfill<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backfill")
            .field("cfg", &self.cfg)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl<T> Backfill<T> {
    /// The backfill for a master `master` whose job cache `cfg` names, or
    /// `None` (logged once) when it is off, or the master uses another job
    /// cache, or no `cachedir` is known.
    pub fn for_master(cfg: BackfillConfig, master: Option<Arc<str>>) -> Option<Backfill<T>> {
        if !cfg.enabled {
            return None;
        }
        if let Some(other) = cfg
            .master_job_cache
            .as_deref()
            .filter(|c| *c != "local_cache")
        {
            tracing::warn!(master_job_cache = other,
                "backfill: the master keeps its jobs in `{other}`, not the local job cache; gaps are marked but not backfilled");
            return None;
        }
        let Some(dir) = cfg.cachedir.clone() else {
            tracing::info!("backfill: no master cachedir known (set backfill.cachedir or masters.master_config); gaps are marked but not backfilled");
            return None;
        };
        let cache = LocalJobCache::new(&dir, &cfg.hash_type, cfg.max_file_bytes as u64);
        tracing::info!(cachedir = %dir.display(), "backfill: gaps are filled from the master's job cache");
        Some(Backfill::new(cfg, Box::new(cache), master))
    }

    /// With any cache reader (tests pass a fake).
    pub fn new(
        cfg: BackfillConfig,
        cache: Box<dyn JobCacheRead>,
        master: Option<Arc<str>>,
    ) -> Backfill<T> {
        let provenance = Arc::new(Provenance {
            master,
            backfilled: true,
            ..Provenance::default()
        });
        Backfill {
            trimmed: TrimmedHold::new(cfg.trimmed.clone()),
            cfg,
            cache,
            provenance,
            source: Arc::from("job-cache"),
            delivered: 0,
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> BackfillCounts {
        BackfillCounts {
            returns: self.delivered,
            bad_files: self.cache.bad_files(),
            trimmed: self.trimmed.counts(),
        }
    }

    /// A trimmed return ([`trimmed::trimmed_return`]) with what waits for
    /// it: held until the cache has its `return.p` (see [`TrimmedHold`]).
    /// Returns what can go on now.
    pub fn hold_trimmed(&mut self, event: Event, with: T, now: Instant) -> Vec<(Event, T)> {
        self.trimmed.push(event, with, now, self.cache.as_mut())
    }

    /// The held trimmed returns whose look-up is due: completed, or given up.
    pub fn tick_trimmed(&mut self, now: Instant) -> Vec<(Event, T)> {
        if self.trimmed.next_deadline().is_none_or(|d| d > now) {
            return Vec::new();
        }
        self.trimmed.tick(now, self.cache.as_mut())
    }

    /// When [`tick_trimmed`](Self::tick_trimmed) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.trimmed.next_deadline()
    }

    /// End of input or shutdown: every held trimmed return goes.
    pub fn flush_trimmed(&mut self) -> Vec<(Event, T)> {
        self.trimmed.flush(self.cache.as_mut())
    }

    /// Trimmed returns held now.
    pub fn held(&self) -> usize {
        self.trimmed.held()
    }

    /// The jobs of the gap from `from` to `to` (wall-clock times): a job is
    /// in it when it was published in it or a return of it was written in
    /// it. Every cached return of such a job goes to the tracker; those
    /// written in the gap are routed.
    pub fn after_gap(&mut self, from: SystemTime, to: SystemTime) -> Vec<Step> {
        let since = from.checked_sub(SLACK).unwrap_or(from);
        let within = |t: SystemTime| t >= since && t <= to;
        let mut steps = Vec::new();
        for job in self.cache.jobs_changed_since(since, self.cfg.max_jobs) {
            let started = rebuild::jid_time(&job.jid).is_some_and(within);
            let lost = job.returns.iter().any(|r| within(r.written));
            if !started && !lost {
                continue;
            }
            if let Some(ev) = rebuild::announcement(&job, &self.provenance, &self.source) {
                steps.push(Step::Announce(ev));
            }
            let mut returns: Vec<&CachedReturn> = job.returns.iter().collect();
            returns.sort_by_key(|r| r.written);
            for r in returns {
                let route = within(r.written);
                self.delivered += u64::from(route);
                let event = rebuild::return_event(&job, r, &self.provenance, &self.source);
                steps.push(Step::Return { event, route });
            }
        }
        steps
    }

    /// The cached returns of `minions` for job `jid` (the tracker is about
    /// to say they did not return), to be routed.
    pub fn returns_of(&mut self, jid: &str, minions: &[String]) -> Vec<Event> {
        let Some(job) = self.cache.job(jid) else {
            return Vec::new();
        };
        let wanted: std::collections::HashSet<&str> = minions.iter().map(String::as_str).collect();
        let found: Vec<Event> = job
            .returns
            .iter()
            .filter(|r| wanted.contains(r.minion.as_str()))
            .map(|r| rebuild::return_event(&job, r, &self.provenance, &self.source))
            .collect();
        self.delivered += found.len() as u64;
        found
    }
}
