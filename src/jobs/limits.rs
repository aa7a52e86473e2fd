//! What the tracker may hold, in bytes, and whose announcements it believes.
//!
//! Any minion can fire any tag (issue 12, finding 3): 20 `salt/job/<jid>/new`
//! events listing 100,000 minions each took the daemon to 1.5 GB. So every
//! job and every minion entry is charged an estimate of the memory it takes
//! (its strings plus a fixed overhead for the map nodes and the state), and
//! two budgets bound them (routes file `jobs.max_job_bytes` and
//! `jobs.max_tracked_bytes`): [`DEFAULT_MAX_JOB_BYTES`] per job and
//! [`DEFAULT_MAX_TRACKED_BYTES`] for all open jobs together. An announcement
//! over the per-job budget is refused (counted, logged, no summary); one that
//! does not fit the total evicts the oldest jobs, as `max_jobs` does; a
//! minion entry that would overflow either budget is refused and counted.
//!
//! Only the master announces and ends jobs. Salt's `_minion_event` handler
//! (`salt/daemons/masterapi.py`) fires a minion's `event.send` with the whole
//! request as data, `cmd: "_minion_event"` included; such an event never opens
//! or closes a job. Masters without the fix for CVE-2025-22239 (3006.12,
//! 3007.4) also fire a minion's batched events (`load["events"]`) with data
//! of the minion's choosing, which the bus cannot tell from the master's own:
//! the byte budgets are what bound those.

use serde_json::Value;

use super::digest::ReturnDigest;
use super::job::Job;
use super::JobConfig;
use crate::event::Event;

/// Default of `jobs.max_job_bytes` ([`JobConfig::max_job_bytes`]): about
/// 130,000 minions of a 23-character id in one job.
pub const DEFAULT_MAX_JOB_BYTES: usize = 192 << 20;

/// Default of `jobs.max_tracked_bytes` ([`JobConfig::max_tracked_bytes`]):
/// all open jobs together.
pub const DEFAULT_MAX_TRACKED_BYTES: usize = 256 << 20;

/// Estimated cost of a job besides its data and minions (the job, its
/// entries in the tracker's maps and its deadline).
pub const JOB_OVERHEAD: usize = 512;

/// Estimated cost of one minion entry besides its id: a B-tree slot, the
/// `String`, the minion's state, and its part of the job's summary, which is
/// built while the job is still held. Measured (`tests/tracker_memory.rs`,
/// 800,000 minions of a 23-character id): RSS grew 410 bytes a minion while
/// the jobs were open and 1,430 once every summary was built (each lists
/// every minion as a JSON object). The estimate covers that peak.
pub const MINION_OVERHEAD: usize = 1_408;

/// Copies of a minion id at that peak: the entry's key, the summary's key,
/// the list of those that did not return (or failed), and both in the JSON.
const ID_COPIES: usize = 5;

/// Estimated bytes of a job opened by the announcement `ev`: its data (arg,
/// tgt and the minion list, whose ids the summary copies) and an entry per
/// listed minion.
pub(super) fn job_bytes(ev: &Event, minions: usize) -> usize {
    JOB_OVERHEAD
        .saturating_add(ev.data_json().len().saturating_mul(ID_COPIES))
        .saturating_add(minions.saturating_mul(MINION_OVERHEAD))
}

/// Estimated bytes of minion `id`'s entry, with its return digest if any.
pub(super) fn minion_bytes(id: &str, digest: Option<&ReturnDigest>) -> usize {
    MINION_OVERHEAD + ID_COPIES * id.len() + digest.map_or(0, digest_bytes)
}

fn digest_bytes(d: &ReturnDigest) -> usize {
    let values = |v: &[Value]| v.iter().map(value_bytes).sum::<usize>();
    let states = d
        .states
        .as_ref()
        .map_or(0, |s| 64 + values(&s.failed) + values(&s.changed));
    64 + d.stamp.as_ref().map_or(0, String::len)
        + d.errors.iter().map(|e| 24 + e.len()).sum::<usize>()
        + states
}

fn value_bytes(v: &Value) -> usize {
    serde_json::to_string(v).map_or(64, |s| 32 + s.len())
}

/// Charges `cost` more bytes to `job` if both budgets allow it.
pub(super) fn admit(limits: &JobConfig, tracked: &mut usize, job: &mut Job, cost: usize) -> bool {
    let job_after = job.bytes.saturating_add(cost);
    let total_after = tracked.saturating_add(cost);
    if job_after > limits.max_job_bytes || total_after > limits.max_tracked_bytes {
        return false;
    }
    job.bytes = job_after;
    *tracked = total_after;
    true
}

/// The minions an announcement lists, to enlist in a job.
pub(super) struct Listed<'a> {
    pub minions: Vec<&'a str>,
    pub missing: Vec<&'a str>,
    /// The announcement that opened the job paid for its minions already;
    /// a later one (a legacy twin released late) pays for new ones.
    pub paid: bool,
}

/// Adds the listed minions to `job` (expected, or known missing), each new
/// one charged against the byte budgets; returns how many were refused.
/// A syndic listed among the minions (a master of masters) is not one.
pub(super) fn enlist(
    cfg: &JobConfig,
    tracked: &mut usize,
    job: &mut Job,
    listed: Listed<'_>,
) -> u64 {
    let mut refused = 0u64;
    for id in listed.minions {
        if job.syndics.contains(id) {
            continue;
        }
        if !listed.paid && !job.minions.contains_key(id) {
            let cost = minion_bytes(id, None);
            if !admit(cfg, tracked, job, cost) {
                refused += 1;
                continue;
            }
        }
        job.expect(id);
    }
    for id in listed.missing {
        let paid = listed.paid || job.minions.contains_key(id);
        if paid || admit(cfg, tracked, job, minion_bytes(id, None)) {
            job.set_missing(id);
        } else {
            refused += 1;
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use serde_json::{json, Value};

    use super::*;
    use crate::jobs::{JobConfig, JobTracker};

    fn ev(tag: &str, data: Value) -> Event {
        Event::synthetic(tag, data, Arc::from("ipc:/test"))
    }

    fn announce(jid: &str, minions: usize) -> Event {
        let ids: Vec<String> = (0..minions).map(|i| format!("minion-{i:06}")).collect();
        ev(
            &format!("salt/job/{jid}/new"),
            json!({"jid": jid, "fun": "test.ping", "arg": [], "tgt": "*", "tgt_type": "glob",
                   "user": "root", "minions": ids, "missing": []}),
        )
    }

    fn budgets(max_job_bytes: usize, max_tracked_bytes: usize) -> JobConfig {
        JobConfig {
            max_job_bytes,
            max_tracked_bytes,
            ..JobConfig::default()
        }
    }

    fn ret(jid: &str, id: &str, cmd: &str) -> Event {
        ev(
            &format!("salt/job/{jid}/ret/{id}"),
            json!({"cmd": cmd, "jid": jid, "id": id, "fun": "test.ping", "return": true,
                   "retcode": 0, "success": true}),
        )
    }

    #[test]
    fn a_minion_fired_announcement_never_opens_a_job() {
        let mut t = JobTracker::new(JobConfig::default());
        let t0 = Instant::now();
        // What `event.send('salt/job/1/new', {...})` puts on the bus.
        let forged = ev(
            "salt/job/1/new",
            json!({"cmd": "_minion_event", "id": "evil", "tag": "salt/job/1/new",
                   "minions": ["a", "b"], "fun": "test.ping", "data": {}}),
        );
        assert!(t.push(&forged, t0).is_empty());
        assert_eq!((t.open_jobs(), t.minion_fired()), (0, 1));
    }

    #[test]
    fn a_minion_fired_return_never_closes_a_job() {
        let mut t = JobTracker::new(JobConfig::default());
        let t0 = Instant::now();
        t.push(&announce("1", 1), t0);
        assert!(t
            .push(&ret("1", "minion-000000", "_minion_event"), t0)
            .is_empty());
        assert_eq!((t.open_jobs(), t.minion_fired()), (1, 1));
        let out = t.push(&ret("1", "minion-000000", "_return"), t0);
        assert_eq!(out.len(), 1, "the real return closes it");
    }

    #[test]
    fn an_announcement_over_the_job_budget_is_refused_and_counted() {
        let mut t = JobTracker::new(budgets(256 << 10, 1 << 20));
        let t0 = Instant::now();
        assert!(t.push(&announce("1", 5_000), t0).is_empty());
        assert_eq!(
            (t.open_jobs(), t.refused_jobs(), t.tracked_bytes()),
            (0, 1, 0)
        );
        t.push(&announce("2", 100), t0);
        assert_eq!(t.open_jobs(), 1);
    }

    #[test]
    fn announcements_flooding_the_bus_stay_within_the_total_budget() {
        // Issue 12, finding 3, scaled down: 20 announcements of 1,000 minions.
        let limits = budgets(4 << 20, 4 << 20);
        let mut t = JobTracker::new(limits.clone());
        let t0 = Instant::now();
        for jid in 0..20 {
            t.push(&announce(&jid.to_string(), 1_000), t0);
            assert!(t.tracked_bytes() <= limits.max_tracked_bytes);
        }
        assert!(t.evicted() > 0);
        assert!(t.open_jobs() < 20);
        t.flush();
        assert_eq!(t.tracked_bytes(), 0, "closing a job gives its bytes back");
    }

    #[test]
    fn returns_of_untargeted_minions_stay_within_the_budget() {
        let limits = budgets(32 << 10, 1 << 20);
        let mut t = JobTracker::new(limits.clone());
        let t0 = Instant::now();
        t.push(&announce("1", 1), t0);
        for i in 0..2_000 {
            t.push(&ret("1", &format!("syndic-minion-{i}"), "_return"), t0);
        }
        assert!(t.tracked_bytes() <= limits.max_job_bytes);
        assert!(t.refused_minions() > 0);
        assert_eq!(t.open_jobs(), 1);
    }

    #[test]
    fn a_reload_applies_new_budgets() {
        let mut t = JobTracker::new(JobConfig::default());
        let t0 = Instant::now();
        t.push(&announce("1", 5_000), t0);
        assert_eq!((t.open_jobs(), t.refused_jobs()), (1, 0));
        t.reconfigure(budgets(64 << 10, 1 << 20));
        assert_eq!(t.open_jobs(), 1, "an open job over the new budget is kept");
        t.push(&announce("2", 5_000), t0);
        assert_eq!((t.open_jobs(), t.counts().refused_jobs), (1, 1));
    }
}
