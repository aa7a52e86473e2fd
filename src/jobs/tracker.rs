//! The tracker's state: open jobs by jid, ordered by start (for eviction)
//! and by deadline (for [`JobTracker::tick`]), and the jids recently
//! summarised, so that a late legacy twin of an announcement does not open
//! the job again.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::classify::{classify, strings, JobEvent};
use super::data::JobData;
use super::digest::ReturnDigest;
use super::job::{FindJob, Job};
use super::limits;
use super::summary::{self, Closed};
use super::{summary_tag, JobConfig};
use crate::event::Event;

/// The tracker's counters at one moment ([`JobTracker::counts`]); each is
/// described at its accessor on [`JobTracker`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JobCounts {
    pub open_jobs: u64,
    pub summarised: u64,
    pub evicted: u64,
    pub refused_jobs: u64,
    pub refused_minions: u64,
    pub minion_fired: u64,
    pub tracked_bytes: u64,
}

/// Follows jobs and emits their summaries; see the module documentation.
///
/// Contract: `now` should not go backwards; if it does, the latest time
/// seen is used instead.
#[derive(Debug, Default)]
pub struct JobTracker {
    cfg: JobConfig,
    clock: Option<Instant>,
    next_seq: u64,
    jobs: HashMap<Box<str>, Job>,
    by_seq: BTreeMap<u64, Box<str>>,
    deadlines: BTreeSet<(Instant, u64)>,
    closed: VecDeque<Box<str>>,
    closed_set: HashSet<Box<str>>,
    summarised: u64,
    evicted: u64,
    /// Sum of the open jobs' `bytes`.
    tracked_bytes: usize,
    refused_jobs: u64,
    refused_minions: u64,
    minion_fired: u64,
}

impl JobTracker {
    pub fn new(cfg: JobConfig) -> Self {
        JobTracker {
            cfg,
            ..JobTracker::default()
        }
    }

    /// New settings (a reloaded routes file). Open jobs keep their deadlines,
    /// and are kept even if they now exceed new byte budgets.
    pub fn reconfigure(&mut self, cfg: JobConfig) {
        self.cfg = cfg;
    }

    /// Looks at one event in bus order; returns the summaries it completes
    /// (and those of jobs whose deadline passed, or evicted at the cap).
    pub fn push(&mut self, ev: &Event, now: Instant) -> Vec<Event> {
        let now = self.advance(now);
        let mut out = Vec::new();
        self.expire(now, &mut out);
        self.observe(ev, now, &mut out);
        out
    }

    /// Like [`push`](Self::push), but no deadline is acted on first: for
    /// returns found in the job cache for a job about to time out
    /// ([`due_silent`](Self::due_silent)).
    pub fn push_backfilled(&mut self, ev: &Event, now: Instant) -> Vec<Event> {
        let now = self.advance(now);
        let mut out = Vec::new();
        self.observe(ev, now, &mut out);
        out
    }

    /// The jobs whose deadline has passed at `now` (the next `tick` or
    /// `push` summarises them) with the minions that would be reported as
    /// not returned: what the job cache is asked about first.
    pub fn due_silent(&self, now: Instant) -> Vec<(String, Vec<String>)> {
        let mut due = Vec::new();
        for &(at, seq) in &self.deadlines {
            if at > now {
                break;
            }
            let Some(job) = self.by_seq.get(&seq).and_then(|j| self.jobs.get(j)) else {
                continue;
            };
            let silent: Vec<String> = job
                .minions
                .iter()
                .filter(|(_, m)| m.ret.is_none() && !m.missing)
                .map(|(id, _)| id.clone())
                .collect();
            if !silent.is_empty() && !job.runner {
                due.push((job.jid.to_string(), silent));
            }
        }
        due
    }

    /// Whether job `jid` is open.
    pub fn is_open(&self, jid: &str) -> bool {
        self.jobs.contains_key(jid)
    }

    // Over 80 lines: one match over the kinds of job event, each arm short and in bus order.
    fn observe(&mut self, ev: &Event, now: Instant, out: &mut Vec<Event>) {
        if !self.cfg.enabled {
            return;
        }
        match classify(ev) {
            JobEvent::FiredByMinion => self.minion_fired += 1,
            JobEvent::Announced { jid, data } => self.announce(jid, &data, ev, now, out),
            JobEvent::Returned { jid, id, data } => {
                let id = id.as_ref();
                let Some(job) = self.jobs.get_mut(jid.as_str()) else {
                    return;
                };
                if job.minions.get(id).is_some_and(|m| m.ret.is_some()) {
                    return;
                }
                let digest = ReturnDigest::of(&data, &job.fun);
                // An expected minion's entry is paid for; its digest is not.
                let paid = match job.minions.contains_key(id) {
                    true => limits::minion_bytes(id, None),
                    false => 0,
                };
                let cost = limits::minion_bytes(id, Some(&digest)) - paid;
                if !limits::admit(&self.cfg, &mut self.tracked_bytes, job, cost) {
                    self.refuse_minion(&jid, id);
                    return;
                }
                let Some(job) = self.jobs.get_mut(jid.as_str()) else {
                    return;
                };
                job.record_return(id, || digest);
                if job.all_returned() {
                    out.push(self.close(&jid, Closed::Returned));
                }
            }
            JobEvent::FindJobAsked { target, minions } => {
                let until = later(now, self.cfg.gather_job_timeout);
                let Some(job) = self.jobs.get_mut(target.as_str()) else {
                    return;
                };
                job.find_job_polls += 1;
                for id in minions {
                    // The last answer stands until a new one comes.
                    if let Some(m) = job.minions.get_mut(&id) {
                        if m.ret.is_none() && m.find_job.is_none() {
                            m.find_job = Some(FindJob::NoAnswer);
                        }
                    }
                }
                // The CLI awaits the answers `gather_job_timeout` long.
                job.extend_deadline(&mut self.deadlines, until);
            }
            JobEvent::FindJobAnswered {
                target,
                id,
                running,
            } => {
                let id = id.as_ref();
                let until = later(now, self.cfg.running_grace());
                let Some(job) = self.jobs.get_mut(target.as_str()) else {
                    return;
                };
                // Salt's CLI adds a minion that says it runs the job; one
                // that was not targeted and does not run it is no concern.
                if !job.minions.contains_key(id) {
                    if !running {
                        return;
                    }
                    let cost = limits::minion_bytes(id, None);
                    if !limits::admit(&self.cfg, &mut self.tracked_bytes, job, cost) {
                        self.refuse_minion(&target, id);
                        return;
                    }
                }
                let Some(job) = self.jobs.get_mut(target.as_str()) else {
                    return;
                };
                let m = job.expect(id);
                if m.ret.is_none() {
                    m.find_job = Some(if running {
                        FindJob::Running
                    } else {
                        FindJob::NotRunning
                    });
                    if running {
                        job.extend_deadline(&mut self.deadlines, until);
                    }
                }
            }
            JobEvent::RunnerStarted { jid, data } => {
                if !self.jobs.contains_key(jid.as_str()) && !self.closed_set.contains(jid.as_str())
                {
                    let cost = limits::job_bytes(ev, 0);
                    if let Some(job) = self.open(jid, true, &data, ev, now, cost, out) {
                        job.arg = data.owned("fun_args");
                    }
                }
            }
            JobEvent::RunnerReturned { jid, data } => {
                if let Some(job) = self.jobs.get_mut(jid.as_str()) {
                    job.runner_ret = Some(ReturnDigest::of(&data, &job.fun));
                    out.push(self.close(&jid, Closed::Returned));
                }
            }
            JobEvent::Other => {}
        }
    }

    /// Summarises the jobs whose deadline passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Event> {
        let now = self.advance(now);
        let mut out = Vec::new();
        self.expire(now, &mut out);
        out
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// End of input or shutdown: summarises every open job, marked
    /// incomplete, oldest first.
    pub fn flush(&mut self) -> Vec<Event> {
        let jids: Vec<Box<str>> = self.by_seq.values().cloned().collect();
        jids.iter()
            .map(|jid| self.close(jid, Closed::Shutdown))
            .collect()
    }

    /// Jobs open now.
    pub fn open_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Summaries emitted so far.
    pub fn summarised(&self) -> u64 {
        self.summarised
    }

    /// Jobs summarised early because `max_jobs` were open or the open jobs
    /// reached `max_tracked_bytes`; non-zero means a cap is too small for
    /// the job rate (or someone floods the bus with announcements).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Announcements refused because the job alone would pass `max_job_bytes`.
    pub fn refused_jobs(&self) -> u64 {
        self.refused_jobs
    }

    /// Minion entries (returns, `find_job` answers, minions added by a second
    /// announcement) refused because a byte budget was reached.
    pub fn refused_minions(&self) -> u64 {
        self.refused_minions
    }

    /// Job events a minion fired (`cmd: _minion_event`), ignored.
    pub fn minion_fired(&self) -> u64 {
        self.minion_fired
    }

    /// Estimated bytes held by the open jobs.
    pub fn tracked_bytes(&self) -> usize {
        self.tracked_bytes
    }

    /// All the counters above at once, for metrics and the run summary.
    pub fn counts(&self) -> JobCounts {
        JobCounts {
            open_jobs: self.jobs.len() as u64,
            summarised: self.summarised,
            evicted: self.evicted,
            refused_jobs: self.refused_jobs,
            refused_minions: self.refused_minions,
            minion_fired: self.minion_fired,
            tracked_bytes: self.tracked_bytes as u64,
        }
    }

    fn refuse_minion(&mut self, jid: &str, id: &str) {
        self.refused_minions += 1;
        if self.refused_minions.is_power_of_two() {
            tracing::warn!(
                jid,
                minion = id,
                refused = self.refused_minions,
                max_job_bytes = self.cfg.max_job_bytes,
                max_tracked_bytes = self.cfg.max_tracked_bytes,
                "job tracker: a minion entry was refused at the byte budget"
            );
        }
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.clock.map_or(now, |c| c.max(now));
        self.clock = Some(now);
        now
    }

    fn expire(&mut self, now: Instant, out: &mut Vec<Event>) {
        while let Some(&(at, seq)) = self.deadlines.first() {
            if at > now {
                break;
            }
            match self.by_seq.get(&seq).cloned() {
                Some(jid) => out.push(self.close(&jid, Closed::Timeout)),
                None => {
                    self.deadlines.remove(&(at, seq));
                }
            }
        }
    }

    fn announce(
        &mut self,
        jid: String,
        data: &JobData<'_>,
        ev: &Event,
        now: Instant,
        out: &mut Vec<Event>,
    ) {
        if self.closed_set.contains(jid.as_str()) {
            return;
        }
        let minions = data.value("minions");
        let minions = strings(minions.as_deref());
        let listed = minions.len();
        let opened = !self.jobs.contains_key(jid.as_str());
        if opened {
            let cost = limits::job_bytes(ev, listed);
            if cost > self.cfg.max_job_bytes {
                self.refused_jobs += 1;
                tracing::warn!(%jid, minions = listed, bytes = cost, max_job_bytes = self.cfg.max_job_bytes,
                    refused = self.refused_jobs, "job tracker: an announcement is larger than max_job_bytes; the job is not tracked");
                return;
            }
            self.open(jid.clone(), false, data, ev, now, cost, out);
        }
        let Some(job) = self.jobs.get_mut(jid.as_str()) else {
            return;
        };
        // A second announcement (a legacy twin released late) only adds.
        job.add_details(data);
        // A syndic's relayed announcement (a master of masters): its
        // minions are the job's, the syndic itself is not.
        if let Some(syndic) = ev.provenance().syndic.as_deref() {
            job.relayed_by(syndic);
        }
        let missing = data.value("missing");
        let listed = limits::Listed {
            minions,
            missing: strings(missing.as_deref()),
            paid: opened,
        };
        let refused = limits::enlist(&self.cfg, &mut self.tracked_bytes, job, listed);
        if refused > 0 {
            self.refused_minions += refused;
            tracing::warn!(%jid, refused, "job tracker: minions of a repeated announcement were refused at the byte budget");
        }
        let Some(job) = self.jobs.get_mut(jid.as_str()) else {
            return;
        };
        // Nothing to wait for (all are missing, or returned). No minion at
        // all: a master of masters (`order_masters`) publishes a job that
        // matches none of its own minions with `minions: []` (a plain
        // master does not publish it): its syndics' minions may return.
        let any = !job.minions.is_empty() || !job.syndics.is_empty();
        if job.all_returned() && any {
            out.push(self.close(&jid, Closed::Returned));
        }
    }

    /// Opens a job that costs `bytes`, evicting the oldest at the caps.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        jid: String,
        runner: bool,
        data: &JobData<'_>,
        ev: &Event,
        now: Instant,
        bytes: usize,
        out: &mut Vec<Event>,
    ) -> Option<&mut Job> {
        while self.jobs.len() >= self.cfg.max_jobs.max(1)
            || (!self.jobs.is_empty()
                && self.tracked_bytes.saturating_add(bytes) > self.cfg.max_tracked_bytes)
        {
            let Some(oldest) = self.by_seq.values().next().cloned() else {
                break;
            };
            self.evicted += 1;
            out.push(self.close(&oldest, Closed::Evicted));
        }
        if self.tracked_bytes.saturating_add(bytes) > self.cfg.max_tracked_bytes {
            self.refused_jobs += 1;
            tracing::warn!(%jid, bytes, max_tracked_bytes = self.cfg.max_tracked_bytes,
                "job tracker: a job is larger than max_tracked_bytes; it is not tracked");
            return None;
        }
        self.tracked_bytes += bytes;
        let fun = data.str("fun").unwrap_or_default().into_owned();
        let seq = self.next_seq;
        self.next_seq += 1;
        let deadline = now.checked_add(self.cfg.wait_for(&fun)).unwrap_or(now);
        let jid: Box<str> = jid.into();
        self.by_seq.insert(seq, jid.clone());
        self.deadlines.insert((deadline, seq));
        let job = Job {
            jid: jid.clone(),
            runner,
            source: Arc::from(ev.source()),
            provenance: Arc::new(ev.provenance().clone()),
            fun,
            arg: Value::Null,
            tgt: Value::Null,
            tgt_type: Value::Null,
            user: data.owned("user"),
            start: data.str("_stamp").map(Cow::into_owned),
            minions: BTreeMap::new(),
            syndics: Default::default(),
            runner_ret: None,
            find_job_polls: 0,
            pending: 0,
            bytes,
            seq,
            deadline,
        };
        Some(self.jobs.entry(jid).or_insert(job))
    }

    /// Removes job `jid` and returns its summary event.
    fn close(&mut self, jid: &str, closed: Closed) -> Event {
        let job = self.jobs.remove(jid);
        let Some(job) = job else {
            // Unreachable: callers pass open jids. An empty summary beats a panic.
            return Event::synthetic(summary_tag(jid), Value::Null, Arc::from("saltbridge"));
        };
        self.by_seq.remove(&job.seq);
        self.deadlines.remove(&(job.deadline, job.seq));
        self.tracked_bytes = self.tracked_bytes.saturating_sub(job.bytes);
        self.remember_closed(job.jid.clone());
        self.summarised += 1;
        let data = summary::build(&job, closed);
        let mut summary = Event::synthetic(summary_tag(jid), data, job.source.clone());
        // A summary comes from the master that published the job.
        summary.set_provenance(job.provenance);
        summary
    }

    fn remember_closed(&mut self, jid: Box<str>) {
        if self.closed_set.insert(jid.clone()) {
            self.closed.push_back(jid);
        }
        while self.closed.len() > self.cfg.max_jobs.max(1) {
            if let Some(old) = self.closed.pop_front() {
                self.closed_set.remove(&old);
            }
        }
    }
}

/// `now + d`, or `now` if that overflows.
fn later(now: Instant, d: std::time::Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}
