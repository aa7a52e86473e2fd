//! The tracker's state: open jobs by jid, ordered by start (for eviction)
//! and by deadline (for [`JobTracker::tick`]), and the jids recently
//! summarised, so that a late legacy twin of an announcement does not open
//! the job again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use super::classify::{classify, strings, JobEvent};
use super::digest::ReturnDigest;
use super::job::{FindJob, Job};
use super::summary::{self, Closed};
use super::{summary_tag, JobConfig};
use crate::event::Event;

/// Follows jobs and emits their summaries; see the module documentation.
///
/// Contract: `now` should not go backwards; if it does, the latest time
/// seen is used instead.
#[derive(Debug)]
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
}

impl JobTracker {
    pub fn new(cfg: JobConfig) -> Self {
        JobTracker {
            cfg,
            clock: None,
            next_seq: 0,
            jobs: HashMap::new(),
            by_seq: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            closed: VecDeque::new(),
            closed_set: HashSet::new(),
            summarised: 0,
            evicted: 0,
        }
    }

    /// New settings (a reloaded routes file). Open jobs keep their deadlines.
    pub fn reconfigure(&mut self, cfg: JobConfig) {
        self.cfg = cfg;
    }

    /// Looks at one event in bus order; returns the summaries it completes
    /// (and those of jobs whose deadline passed, or evicted at the cap).
    pub fn push(&mut self, ev: &Event, now: Instant) -> Vec<Event> {
        let now = self.advance(now);
        let mut out = Vec::new();
        self.expire(now, &mut out);
        if !self.cfg.enabled {
            return out;
        }
        match classify(ev) {
            JobEvent::Announced { jid, data } => self.announce(jid, data, ev, now, &mut out),
            JobEvent::Returned { jid, id, data } => {
                let Some(job) = self.jobs.get_mut(jid.as_str()) else {
                    return out;
                };
                let fun = std::mem::take(&mut job.fun);
                job.record_return(id, || ReturnDigest::of(data, &fun));
                job.fun = fun;
                if job.all_returned() {
                    out.push(self.close(&jid, Closed::Returned));
                }
            }
            JobEvent::FindJobAsked { target, minions } => {
                let until = later(now, self.cfg.gather_job_timeout);
                let Some(job) = self.jobs.get_mut(target.as_str()) else {
                    return out;
                };
                job.find_job_polls += 1;
                for id in minions {
                    // The last answer stands until a new one comes.
                    if let Some(m) = job.minions.get_mut(id) {
                        if m.ret.is_none() && m.find_job.is_none() {
                            m.find_job = Some(FindJob::NoAnswer);
                        }
                    }
                }
                // The CLI awaits the answers `gather_job_timeout` long.
                extend(&mut self.deadlines, job, until);
            }
            JobEvent::FindJobAnswered {
                target,
                id,
                running,
            } => {
                let until = later(now, self.cfg.running_grace());
                let Some(job) = self.jobs.get_mut(target.as_str()) else {
                    return out;
                };
                // Salt's CLI adds a minion that says it runs the job; one
                // that was not targeted and does not run it is no concern.
                if !running && !job.minions.contains_key(id) {
                    return out;
                }
                let m = job.expect(id);
                if m.ret.is_none() {
                    m.find_job = Some(if running {
                        FindJob::Running
                    } else {
                        FindJob::NotRunning
                    });
                    if running {
                        extend(&mut self.deadlines, job, until);
                    }
                }
            }
            JobEvent::RunnerStarted { jid, data } => {
                if !self.jobs.contains_key(jid.as_str()) && !self.closed_set.contains(jid.as_str())
                {
                    let job = self.open(jid, true, data, ev, now, &mut out);
                    job.arg = data.get("fun_args").cloned().unwrap_or(Value::Null);
                }
            }
            JobEvent::RunnerReturned { jid, data } => {
                if let Some(job) = self.jobs.get_mut(jid.as_str()) {
                    job.runner_ret = Some(ReturnDigest::of(data, &job.fun));
                    out.push(self.close(&jid, Closed::Returned));
                }
            }
            JobEvent::Other => {}
        }
        out
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

    /// Jobs summarised early because `max_jobs` were open; non-zero means
    /// the cap is too small for the job rate.
    pub fn evicted(&self) -> u64 {
        self.evicted
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
        data: &Map<String, Value>,
        ev: &Event,
        now: Instant,
        out: &mut Vec<Event>,
    ) {
        if self.closed_set.contains(jid.as_str()) {
            return;
        }
        if !self.jobs.contains_key(jid.as_str()) {
            self.open(jid.clone(), false, data, ev, now, out);
        }
        let Some(job) = self.jobs.get_mut(jid.as_str()) else {
            return;
        };
        // A second announcement (a legacy twin released late) only adds.
        if job.fun.is_empty() {
            if let Some(fun) = data.get("fun").and_then(Value::as_str) {
                job.fun = fun.to_owned();
            }
        }
        for (field, key) in [
            (&mut job.arg, "arg"),
            (&mut job.tgt, "tgt"),
            (&mut job.tgt_type, "tgt_type"),
            (&mut job.user, "user"),
        ] {
            if field.is_null() {
                *field = data.get(key).cloned().unwrap_or(Value::Null);
            }
        }
        for id in strings(data.get("minions")) {
            job.expect(id);
        }
        for id in strings(data.get("missing")) {
            job.set_missing(id);
        }
        if job.all_returned() {
            // Nothing to wait for (no minion matched, or all are missing).
            out.push(self.close(&jid, Closed::Returned));
        }
    }

    /// Opens a job, evicting the oldest at the cap.
    fn open(
        &mut self,
        jid: String,
        runner: bool,
        data: &Map<String, Value>,
        ev: &Event,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> &mut Job {
        while self.jobs.len() >= self.cfg.max_jobs.max(1) {
            let Some(oldest) = self.by_seq.values().next().cloned() else {
                break;
            };
            self.evicted += 1;
            out.push(self.close(&oldest, Closed::Evicted));
        }
        let fun = data
            .get("fun")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
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
            fun,
            arg: Value::Null,
            tgt: Value::Null,
            tgt_type: Value::Null,
            user: data.get("user").cloned().unwrap_or(Value::Null),
            start: data
                .get("_stamp")
                .and_then(Value::as_str)
                .map(str::to_owned),
            minions: BTreeMap::new(),
            runner_ret: None,
            find_job_polls: 0,
            pending: 0,
            seq,
            deadline,
        };
        self.jobs.entry(jid).or_insert(job)
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
        self.remember_closed(job.jid.clone());
        self.summarised += 1;
        let data = summary::build(&job, closed);
        Event::synthetic(summary_tag(jid), data, job.source.clone())
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

/// Moves `job`'s deadline to `until` if that is later.
fn extend(deadlines: &mut BTreeSet<(Instant, u64)>, job: &mut Job, until: Instant) {
    if until > job.deadline {
        deadlines.remove(&(job.deadline, job.seq));
        job.deadline = until;
        deadlines.insert((until, job.seq));
    }
}

/// `now + d`, or `now` if that overflows.
fn later(now: Instant, d: std::time::Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}
