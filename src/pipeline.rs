//! The in-process chain of the deciding stages: twins -> job tracker -> routes.
//!
//! `run`, `explain` and `test` drive it event by event; it holds no I/O. A
//! hot reload swaps the route table between two events, never during one.
//! Every event that passes the twin filter is shown to the job tracker
//! before routing (so the tracker sees the `saltutil.find_job` polls that
//! `drop.find_job` keeps from the routes), and the job summaries it emits
//! are routed right after the event that completed them, like any event.
//! A cluster peer's copy (a `cluster_peer` twin) is shown to the job tracker
//! but not routed, and so is the summary of a job a peer published: each
//! master's bridge routes what its master published. A syndic's relayed
//! copy that goes on (`twins.syndic: keep_syndic`) is shown to the tracker
//! under its original tag (`twins::original_of`): the same fact.
//! With a [`Backfill`] (the daemon's), a gap marker is followed by the
//! returns the job cache has from the gap (`backfill`), and a job about to
//! be summarised with silent minions asks the cache about them first.
//! A job return Salt trimmed (`VALUE_TRIMMED`) that a route with
//! `complete_trimmed` matched goes to those routes' sinks from the
//! [`TrimmedHold`], completed from the job cache once `return.p` is written
//! (or as it came); the other routes' sinks get it at once.

use std::time::{Instant, SystemTime};

use crate::backfill::{trimmed, Backfill, BackfillCounts, Step};
use crate::config::Config;
use crate::event::Event;
use crate::jobs::JobTracker;
use crate::route::{RouteTable, Routing};
use crate::twins::{original_of, TwinFilter, TwinKind, TwinVerdict};

/// What became of one event.
#[derive(Debug)]
pub enum Outcome {
    /// Dropped as a Salt twin of the event tagged `twin_of`.
    Twin {
        event: Event,
        kind: TwinKind,
        twin_of: String,
    },
    /// Passed the twin filter (or is a job summary) and was routed.
    Routed { event: Event, routing: Routing },
}

/// Twin filter, then job tracker, then route table.
pub struct Pipeline {
    twins: TwinFilter,
    jobs: JobTracker,
    table: RouteTable,
    explain: bool,
    /// The job cache, and the trimmed returns that wait for it with the
    /// routes that complete them.
    backfill: Option<Backfill<Routing>>,
    /// Some route has `complete_trimmed`.
    completes_trimmed: bool,
}

impl Pipeline {
    /// The stages as `config` sets them up (its source and sinks are not
    /// the pipeline's). `explain` makes routing record which pattern and
    /// predicates matched.
    pub fn new(config: Config, explain: bool) -> Self {
        Pipeline {
            twins: TwinFilter::new(config.twins).with_master(config.masters.identity()),
            jobs: JobTracker::new(config.jobs),
            completes_trimmed: config.routes.completes_trimmed(),
            table: config.routes,
            explain,
            backfill: None,
        }
    }

    /// Fills gaps from the master's job cache (the daemon's pipeline).
    pub fn with_backfill(mut self, backfill: Option<Backfill<Routing>>) -> Self {
        self.backfill = backfill;
        self
    }

    pub fn backfill(&self) -> Option<&Backfill<Routing>> {
        self.backfill.as_ref()
    }

    /// The backfill's counters, when there is a backfill.
    pub fn backfill_counts(&self) -> Option<BackfillCounts> {
        self.backfill.as_ref().map(Backfill::counts)
    }

    /// Events held, not yet in any outcome: by the twin filter and by the
    /// trimmed returns' hold.
    pub fn held(&self) -> usize {
        self.twins.held() + self.backfill.as_ref().map_or(0, Backfill::held)
    }

    /// Takes one event in bus order.
    pub fn push(&mut self, ev: Event, now: Instant) -> Vec<Outcome> {
        let mut out = Vec::new();
        self.push_into(ev, now, &mut out);
        out
    }

    /// [`push`](Self::push), its outcomes appended to `out` (a batch of
    /// events shares one vector).
    pub fn push_into(&mut self, ev: Event, now: Instant, out: &mut Vec<Outcome>) {
        // Here and not only in `tick`: the tracker's `push` summarises the
        // jobs whose deadline passed, so the cache must be asked first. It
        // costs one look at the earliest deadline.
        self.check_silent(now, out);
        let verdicts = self.twins.push(ev, now);
        self.route_all(verdicts, now, out);
    }

    /// Releases legacy events whose twin did not come in time, and
    /// summarises the jobs whose deadline passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Outcome> {
        let verdicts = self.twins.tick(now);
        let mut out = Vec::new();
        self.route_all(verdicts, now, &mut out);
        self.release_trimmed(now, &mut out);
        self.check_silent(now, &mut out);
        let summaries = self.jobs.tick(now);
        self.route_summaries(summaries, now, &mut out);
        out
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.twins.next_deadline(),
            self.jobs.next_deadline(),
            self.backfill.as_ref().and_then(Backfill::next_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// End of input or shutdown: releases everything held, and summarises
    /// the jobs still open, marked incomplete.
    pub fn flush(&mut self, now: Instant) -> Vec<Outcome> {
        let verdicts = self.twins.flush();
        let mut out = Vec::new();
        self.route_all(verdicts, now, &mut out);
        if let Some(backfill) = self.backfill.as_mut() {
            out.extend(backfill.flush_trimmed().into_iter().map(routed));
        }
        let summaries = self.jobs.flush();
        self.route_summaries(summaries, now, &mut out);
        out
    }

    /// Swaps in a reloaded configuration's routes and `jobs:`; the twin
    /// filter and the open jobs keep their state, new jobs get the new
    /// `jobs:` settings.
    pub fn reload(&mut self, config: Config) {
        self.jobs.reconfigure(config.jobs);
        self.completes_trimmed = config.routes.completes_trimmed();
        self.table = config.routes;
    }

    pub fn job_tracker(&self) -> &JobTracker {
        &self.jobs
    }

    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    pub fn twin_filter(&self) -> &TwinFilter {
        &self.twins
    }

    fn route_all(&mut self, verdicts: Vec<TwinVerdict>, now: Instant, out: &mut Vec<Outcome>) {
        out.reserve(verdicts.len());
        for v in verdicts {
            match v {
                TwinVerdict::Pass(event) => {
                    // A syndic's copy tells the tracker its original's fact.
                    let summaries = match original_of(&event) {
                        Some(original) => self.jobs.push(&original, now),
                        None => self.jobs.push(&event, now),
                    };
                    let gap = gap_interval(&event);
                    let mut routing = self.table.route(&event, now, self.explain);
                    if !self.hold_trimmed(&event, &mut routing, now, out) {
                        out.push(Outcome::Routed { event, routing });
                    }
                    self.route_summaries(summaries, now, out);
                    if let Some((from, to)) = gap {
                        self.fill_gap(from, to, now, out);
                    }
                }
                TwinVerdict::Dropped {
                    event,
                    kind,
                    twin_of,
                } => {
                    // A peer's copy is not routed here, but a return that
                    // landed on the peer completes this master's job.
                    let summaries = match kind {
                        TwinKind::ClusterPeer => self.jobs.push(&event, now),
                        _ => Vec::new(),
                    };
                    out.push(Outcome::Twin {
                        event,
                        kind,
                        twin_of,
                    });
                    self.route_summaries(summaries, now, out);
                }
            }
        }
    }

    /// A trimmed return that a `complete_trimmed` route matched: that part
    /// of `routing` waits in the hold for the job cache. True when nothing
    /// of `routing` is left to send now.
    fn hold_trimmed(
        &mut self,
        event: &Event,
        routing: &mut Routing,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> bool {
        if !self.completes_trimmed {
            return false;
        }
        let Some(backfill) = self.backfill.as_mut() else {
            return false;
        };
        if trimmed::trimmed_return(event).is_none() {
            return false;
        }
        let Some(later) = self.table.split_completing(routing) else {
            return false;
        };
        let released = backfill.hold_trimmed(event.clone(), later, now);
        out.extend(released.into_iter().map(routed));
        routing.matches.is_empty() && routing.sinks.is_empty()
    }

    /// Trimmed returns whose look-up is due: completed, or given up.
    fn release_trimmed(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        if let Some(backfill) = self.backfill.as_mut() {
            out.extend(backfill.tick_trimmed(now).into_iter().map(routed));
        }
    }

    /// The jobs of the gap from `from` to `to` from the job cache: their
    /// announcements to the job tracker, their returns to the tracker and,
    /// those the bus lost, to the routes. At start-up the daemon calls this
    /// for the time since its last run; after a reconnect the gap marker does.
    pub fn fill_gap(
        &mut self,
        from: SystemTime,
        to: SystemTime,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) {
        let Some(backfill) = self.backfill.as_mut() else {
            return;
        };
        let steps = backfill.after_gap(from, to);
        let routed = steps
            .iter()
            .filter(|s| matches!(s, Step::Return { route: true, .. }))
            .count();
        if routed > 0 {
            tracing::info!(
                returns = routed,
                "backfill: delivering returns the bus lost during a gap, from the job cache"
            );
        }
        for step in steps {
            match step {
                Step::Announce(event) => {
                    let summaries = self.jobs.push(&event, now);
                    self.route_summaries(summaries, now, out);
                }
                Step::Return { event, route } => {
                    let summaries = self.jobs.push(&event, now);
                    if route {
                        let routing = self.table.route(&event, now, self.explain);
                        out.push(Outcome::Routed { event, routing });
                    }
                    self.route_summaries(summaries, now, out);
                }
            }
        }
    }

    /// Before jobs are summarised with minions that did not return, asks
    /// the job cache for those minions' returns: one found is routed
    /// (backfilled) and counted in the summary.
    fn check_silent(&mut self, now: Instant, out: &mut Vec<Outcome>) {
        let Some(backfill) = self.backfill.as_mut() else {
            return;
        };
        if self.jobs.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        let found: Vec<Event> = self
            .jobs
            .due_silent(now)
            .iter()
            .flat_map(|(jid, silent)| backfill.returns_of(jid, silent))
            .collect();
        for event in found {
            let summaries = self.jobs.push_backfilled(&event, now);
            let routing = self.table.route(&event, now, self.explain);
            out.push(Outcome::Routed { event, routing });
            self.route_summaries(summaries, now, out);
        }
    }

    /// Routes job summaries; the summary of a job a peer published is the
    /// peer's bridge's to send, so it is dropped as a `cluster_peer` twin.
    fn route_summaries(&mut self, summaries: Vec<Event>, now: Instant, out: &mut Vec<Outcome>) {
        for event in summaries {
            if event.provenance().peer && self.twins.is_enabled(TwinKind::ClusterPeer) {
                let twin_of = event.tag().to_owned();
                out.push(Outcome::Twin {
                    event,
                    kind: TwinKind::ClusterPeer,
                    twin_of,
                });
                continue;
            }
            let routing = self.table.route(&event, now, self.explain);
            out.push(Outcome::Routed { event, routing });
        }
    }
}

fn routed((event, routing): (Event, Routing)) -> Outcome {
    Outcome::Routed { event, routing }
}

/// The interval of a gap marker (`saltbridge/bus/gap`): `disconnected_at`
/// to `reconnected_at`.
fn gap_interval(event: &Event) -> Option<(SystemTime, SystemTime)> {
    if event.tag() != crate::source::GAP_TAG {
        return None;
    }
    let at = |k: &str| {
        let s = event.data().get(k)?.as_str()?;
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
    };
    Some((at("disconnected_at")?, at("reconnected_at")?))
}
