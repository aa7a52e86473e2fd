//! The job tracker: one `saltbridge/job/<jid>/summary` event per Salt job.
//!
//! Salt fires one return event per minion and nothing at all for a minion
//! that never answers: the CLI prints "Minion did not return" itself, after
//! polling the minions with `saltutil.find_job`. A chat channel or a CMDB
//! wants one message per job that says who succeeded, who failed and who
//! stayed silent. The tracker follows every job from its announcement
//! (`salt/job/<jid>/new`, or `new_job` and the bare-jid `{"minions"}` event
//! of older masters) through its returns (`salt/job/<jid>/ret/<id>` or a
//! bare-jid return) and the `saltutil.find_job` polls about it, and runner
//! jobs from `salt/run/<jid>/new` to `salt/run/<jid>/ret`.
//!
//! A job is summarised when every expected minion has returned, or at its
//! deadline, which follows Salt's CLI (`salt/client/__init__.py`,
//! `get_iter_returns`): the CLI waits `timeout`, asks the silent minions
//! with `find_job`, waits `gather_job_timeout` for their answers and gives
//! up unless one says it still runs the job. So a job's deadline is its start
//! plus `timeout + gather_job_timeout` (or a per-function `wait`), and a
//! minion answering that it still runs the job keeps it open for another
//! `gather_job_timeout + max(timeout, gather_job_timeout)`: the CLI's next
//! poll comes after `gather_job_timeout` and is itself awaited that long.
//!
//! Memory is bounded: at most `max_jobs` jobs are open; beyond it the oldest
//! is summarised early and marked incomplete, as are the jobs still open at
//! [`JobTracker::flush`]. Per minion only a digest of its return is kept.
//!
//! The tracker is pure, like the twin filter: the caller passes the time in
//! and calls [`JobTracker::tick`] at [`JobTracker::next_deadline`]. The
//! summary's own times (`start`, `end`, durations) come from the events'
//! `_stamp`s, so a replayed capture gives the same summary as the live bus.
//! The summary data is documented in `docs/jobs.md`.

mod classify;
mod config;
mod data;
mod digest;
mod job;
pub mod limits;
mod summary;
#[cfg(test)]
mod tests;
mod tracker;

pub use config::JobConfig;
pub use tracker::{JobCounts, JobTracker};

/// Tag prefix of the summaries; the full tag is `saltbridge/job/<jid>/summary`.
pub const SUMMARY_TAG_PREFIX: &str = "saltbridge/job/";

/// The tag of the summary of job `jid`.
pub fn summary_tag(jid: &str) -> String {
    format!("{SUMMARY_TAG_PREFIX}{jid}/summary")
}
