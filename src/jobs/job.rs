//! One open job and what is known of each of its minions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::data::JobData;
use super::digest::ReturnDigest;
use crate::event::Provenance;

/// What a `find_job` poll last said about a minion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FindJob {
    /// Asked, never answered.
    NoAnswer,
    /// Answered with the job's data: still running it.
    Running,
    /// Answered `{}`: no longer running it.
    NotRunning,
}

/// One minion of a job.
#[derive(Debug, Default)]
pub(super) struct MinionState {
    /// Listed in `missing` when the job was published: known absent.
    pub missing: bool,
    pub ret: Option<ReturnDigest>,
    pub find_job: Option<FindJob>,
}

/// One open job.
#[derive(Debug)]
pub(super) struct Job {
    pub jid: Box<str>,
    /// A runner job (`salt/run/<jid>/...`): no minions, one return.
    pub runner: bool,
    pub source: Arc<str>,
    /// The announcement's: the master that published the job.
    pub provenance: Arc<Provenance>,
    pub fun: String,
    pub arg: Value,
    pub tgt: Value,
    pub tgt_type: Value,
    pub user: Value,
    /// `_stamp` of the announcement.
    pub start: Option<String>,
    pub minions: BTreeMap<String, MinionState>,
    /// Syndics that relayed the job to their minions (a master of masters
    /// lists a syndic's id among the job's minions; it never returns).
    pub syndics: BTreeSet<String>,
    /// A runner job's return.
    pub runner_ret: Option<ReturnDigest>,
    pub find_job_polls: u32,
    /// Expected minions that have neither returned nor are missing.
    pub(super) pending: usize,
    /// Estimated memory, charged against the byte budgets (`max_job_bytes`, `max_tracked_bytes` in [`JobConfig`](super::JobConfig)).
    pub(super) bytes: usize,
    pub(super) seq: u64,
    pub(super) deadline: Instant,
}

impl Job {
    /// Moves the job's deadline to `until` if that is later, in the
    /// tracker's deadline order too.
    pub(super) fn extend_deadline(
        &mut self,
        deadlines: &mut BTreeSet<(Instant, u64)>,
        until: Instant,
    ) {
        if until > self.deadline {
            deadlines.remove(&(self.deadline, self.seq));
            self.deadline = until;
            deadlines.insert((until, self.seq));
        }
    }

    /// Fills what is still unknown (`fun`, `arg`, `tgt`, `tgt_type`,
    /// `user`) from an announcement's data; what is known stays.
    pub(super) fn add_details(&mut self, data: &JobData<'_>) {
        if self.fun.is_empty() {
            if let Some(fun) = data.str("fun") {
                self.fun = fun.into_owned();
            }
        }
        for (field, key) in [
            (&mut self.arg, "arg"),
            (&mut self.tgt, "tgt"),
            (&mut self.tgt_type, "tgt_type"),
            (&mut self.user, "user"),
        ] {
            if field.is_null() {
                *field = data.owned(key);
            }
        }
    }

    /// Every minion expected to return has.
    pub(super) fn all_returned(&self) -> bool {
        self.pending == 0
    }

    /// The minion `id`, added as expected (not yet returned) if it is new.
    pub(super) fn expect(&mut self, id: &str) -> &mut MinionState {
        if !self.minions.contains_key(id) {
            self.pending += 1;
        }
        self.minions.entry(id.to_owned()).or_default()
    }

    /// Records minion `id`'s return, unless it already returned.
    pub(super) fn record_return(&mut self, id: &str, digest: impl FnOnce() -> ReturnDigest) {
        match self.minions.get_mut(id) {
            Some(m) if m.ret.is_some() => {}
            Some(m) => {
                if !m.missing {
                    self.pending -= 1;
                }
                m.ret = Some(digest());
            }
            // Not targeted, yet it returned (a syndic's minion): counted, never awaited.
            None => {
                let m = MinionState {
                    ret: Some(digest()),
                    ..MinionState::default()
                };
                self.minions.insert(id.to_owned(), m);
            }
        }
    }

    /// Syndic `id` relayed the job: it is no minion to wait for (Salt's
    /// CLI does not report syndics as unresponsive either).
    pub(super) fn relayed_by(&mut self, id: &str) {
        if !self.syndics.insert(id.to_owned()) {
            return;
        }
        if self.minions.get(id).is_some_and(|m| m.ret.is_none()) {
            if let Some(m) = self.minions.remove(id) {
                if !m.missing {
                    self.pending -= 1;
                }
            }
        }
    }

    /// Marks minion `id` as known absent: it is not awaited.
    pub(super) fn set_missing(&mut self, id: &str) {
        let was_expected = self.minions.contains_key(id);
        let m = self.minions.entry(id.to_owned()).or_default();
        if !m.missing && m.ret.is_none() {
            m.missing = true;
            if was_expected {
                self.pending -= 1;
            }
        }
    }
}
