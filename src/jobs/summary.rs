//! What a job summary says: the digest kept of each return, and the JSON
//! of the `saltbridge/job/<jid>/summary` event (documented in
//! `docs/jobs.md`).
//!
//! A return is reduced to what the summary shows when it arrives, so an open
//! job holds a few hundred bytes per minion whatever the minions returned.
//! A minion succeeded when Salt does not say `success: false`, its `retcode`
//! is 0 (or absent), and, for a state run, no state failed and the run
//! rendered: a state run can say `success: true` while states failed.

use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::digest::ReturnDigest;
use super::job::{FindJob, Job};

/// Why a job was summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closed {
    /// Every expected minion returned (a runner: its return came).
    Returned,
    /// The deadline passed; the silent minions did not return.
    Timeout,
    /// `max_jobs` jobs were open and this was the oldest.
    Evicted,
    /// Shutdown or end of input.
    Shutdown,
}

impl Closed {
    fn name(self) -> &'static str {
        match self {
            Closed::Returned => "returned",
            Closed::Timeout => "timeout",
            Closed::Evicted => "evicted",
            Closed::Shutdown => "shutdown",
        }
    }

    /// Summaries made before the job was decided.
    fn incomplete(self) -> bool {
        matches!(self, Closed::Evicted | Closed::Shutdown)
    }
}

/// The summary event's data for `job`.
// Over 80 lines: one JSON object field by field, in the order docs/jobs.md lists them.
pub(super) fn build(job: &Job, closed: Closed) -> Value {
    let start = job.start.as_deref().and_then(parse_stamp);
    let mut end: Option<(SystemTime, &str)> = None;
    let mut minions = Map::new();
    let (mut returned, mut succeeded, mut failed) = (0usize, 0usize, 0usize);
    let mut failed_ids = Vec::new();
    let mut silent_ids = Vec::new();
    for (id, m) in &job.minions {
        let mut entry = Map::new();
        entry.insert("returned".into(), m.ret.is_some().into());
        match &m.ret {
            Some(r) => {
                later(&mut end, r.stamp.as_deref());
                returned += 1;
                if r.success {
                    succeeded += 1;
                } else {
                    failed += 1;
                    failed_ids.push(Value::from(id.as_str()));
                }
                entry.insert("success".into(), r.success.into());
                entry.insert("retcode".into(), r.retcode.into());
                entry.insert("duration".into(), seconds(start, r.stamp.as_deref()));
                describe_return(r, &mut entry);
            }
            None => {
                silent_ids.push(Value::from(id.as_str()));
                entry.insert("success".into(), Value::Null);
                entry.insert("retcode".into(), Value::Null);
                entry.insert("duration".into(), Value::Null);
            }
        }
        if m.missing {
            entry.insert("missing".into(), true.into());
        }
        let find_job = m.find_job.map(|f| match f {
            FindJob::NoAnswer => "no_answer",
            FindJob::Running => "running",
            FindJob::NotRunning => "not_running",
        });
        entry.insert("find_job".into(), find_job.into());
        minions.insert(id.clone(), Value::Object(entry));
    }
    let did_not_return = silent_ids.len();
    let mut out = Map::new();
    out.insert("jid".into(), (*job.jid).into());
    let kind = if job.runner { "runner" } else { "job" };
    out.insert("kind".into(), kind.into());
    out.insert("fun".into(), job.fun.clone().into());
    out.insert("arg".into(), job.arg.clone());
    out.insert("tgt".into(), job.tgt.clone());
    out.insert("tgt_type".into(), job.tgt_type.clone());
    out.insert("user".into(), job.user.clone());
    if let Some(r) = &job.runner_ret {
        later(&mut end, r.stamp.as_deref());
    }
    let end_stamp = end.map(|(_, s)| s);
    out.insert("start".into(), job.start.clone().into());
    out.insert("end".into(), end_stamp.into());
    out.insert("duration".into(), seconds(start, end_stamp));
    out.insert("closed".into(), closed.name().into());
    out.insert("incomplete".into(), closed.incomplete().into());
    let success = if job.runner {
        job.runner_ret.as_ref().map(|r| r.success)
    } else {
        Some(failed == 0 && did_not_return == 0)
    };
    out.insert("success".into(), success.into());
    out.insert(
        "counts".into(),
        json!({
            "targeted": job.minions.len(),
            "returned": returned,
            "succeeded": succeeded,
            "failed": failed,
            "did_not_return": did_not_return,
        }),
    );
    out.insert("failed_minions".into(), Value::Array(failed_ids));
    out.insert("did_not_return_minions".into(), Value::Array(silent_ids));
    out.insert("find_job_polls".into(), job.find_job_polls.into());
    if let Some(r) = &job.runner_ret {
        let mut entry = Map::new();
        describe_return(r, &mut entry);
        if !entry.is_empty() {
            out.insert("runner".into(), Value::Object(entry));
        }
    }
    out.insert("minions".into(), Value::Object(minions));
    Value::Object(out)
}

/// Keeps in `end` the latest of it and `stamp`.
fn later<'a>(end: &mut Option<(SystemTime, &'a str)>, stamp: Option<&'a str>) {
    if let Some(t) = stamp.and_then(|s| parse_stamp(s).map(|t| (t, s))) {
        if end.is_none_or(|(e, _)| t.0 > e) {
            *end = Some(t);
        }
    }
}

/// The state digest and render errors of a return, when there are any.
fn describe_return(r: &ReturnDigest, entry: &mut Map<String, Value>) {
    if let Some(s) = &r.states {
        entry.insert("states".into(), s.to_json());
        entry.insert("failed_states".into(), s.failed.clone().into());
        entry.insert("changed_states".into(), s.changed.clone().into());
    }
    if !r.errors.is_empty() {
        entry.insert("errors".into(), r.errors.clone().into());
    }
}

/// Seconds (to the millisecond) from `start` to the stamp `end`.
fn seconds(start: Option<SystemTime>, end: Option<&str>) -> Value {
    let (Some(start), Some(end)) = (start, end.and_then(parse_stamp)) else {
        return Value::Null;
    };
    let d = end.duration_since(start).unwrap_or(Duration::ZERO);
    let ms = d.as_millis() as f64;
    json!(ms / 1000.0)
}

/// A Salt `_stamp`: ISO 8601 in UTC, with `+00:00` on 3008 and without a
/// zone on older releases.
pub(super) fn parse_stamp(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix("+00:00").unwrap_or(s);
    let s = s.strip_suffix('Z').unwrap_or(s);
    humantime::parse_rfc3339_weak(s).ok()
}
