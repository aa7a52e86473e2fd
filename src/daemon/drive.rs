//! The one loop that feeds a [`Pipeline`]: events from a source, the
//! pipeline's own deadlines, reloaded configurations, a stop signal, and a
//! beat for housekeeping. `run`, `explain` and `demo` all drive their
//! pipeline with it and differ only in what they do with the outcomes
//! (a [`Consumer`]).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::backfill::BackfillCounts;
use crate::config::Config;
use crate::event::Event;
use crate::jobs::JobCounts;
use crate::journal::Position;
use crate::pipeline::{Outcome, Pipeline};
use crate::route::RouteTable;
use crate::source::EventReceiver;

/// What a caller does with what the pipeline decided.
pub trait Consumer {
    /// The outcomes of one step: an event read, a deadline passed.
    fn outcomes(&mut self, outcomes: Vec<Outcome>) -> impl Future<Output = anyhow::Result<()>>;

    /// The source has nothing waiting: a good time to write out what was taken.
    fn idle(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// An event is about to go into the pipeline.
    fn reading(&mut self, _event: &Event) {}

    /// At the top of every turn of the loop (the daemon's heartbeat).
    fn beat(&mut self) {}

    /// About once a second.
    fn housekeeping(&mut self) {}

    /// After each step's outcomes: the journal position after the events
    /// taken (for a journaled source), and how many events the twin filter
    /// still holds (they are not in any spool yet).
    fn progress(&mut self, _at: Option<Position>, _held: usize) {}

    /// The job tracker's counters after each step (cheap: a copy).
    fn job_counts(&mut self, _counts: JobCounts) {}
    /// The twin filter's count of refused `__peer_id` claims, after each step.
    fn peer_claims_refused(&mut self, _refused: u64) {}
    /// The backfill's counters after each step (a pipeline with a backfill).
    fn backfill_counts(&mut self, _counts: BackfillCounts) {}

    /// A reloaded configuration is about to replace the pipeline's `current` routes.
    fn reloading(&mut self, _current: &RouteTable, _new: &Config) {}

    /// Whether the pipeline's deadlines follow the clock. The demo replays
    /// recorded sessions at full speed and releases what is held at their
    /// end instead.
    fn follows_clock(&self) -> bool {
        true
    }

    /// Most events one step takes, [`BATCH`] unless the consumer must see
    /// each event's outcomes apart (the demo shows every event read with
    /// what it set off, so it takes one at a time).
    fn batch_size(&self) -> usize {
        BATCH
    }
}

/// How [`drive`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The input ended.
    Drained,
    /// The stop signal came.
    Stopped,
}

/// How often the loop wakes with nothing to do, so that a heartbeat shows
/// it turns (`metrics::heartbeat`).
const BEAT_EVERY: Duration = crate::metrics::heartbeat::BEAT_EVERY;

/// Feeds `pipeline` until the events end or `stop` completes. What is
/// still held in the pipeline is left for the caller to flush.
pub async fn drive(
    pipeline: &mut Pipeline,
    events: &mut EventReceiver,
    mut reloads: Option<mpsc::Receiver<Config>>,
    stop: impl Future<Output = ()>,
    consumer: &mut impl Consumer,
) -> anyhow::Result<End> {
    tokio::pin!(stop);
    let mut beat = tokio::time::interval(BEAT_EVERY);
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let clock = consumer.follows_clock();
    loop {
        consumer.beat();
        let deadline = pipeline.next_deadline().filter(|_| clock);
        let outcomes = tokio::select! {
            _ = &mut stop => return Ok(End::Stopped),
            ev = events.recv() => match ev {
                Some(ev) => take_batch(ev, events, pipeline, consumer),
                None => return Ok(End::Drained),
            },
            _ = sleep_until(deadline) => pipeline.tick(Instant::now()),
            _ = beat.tick() => continue,
            Some(new) = recv_opt(&mut reloads) => {
                consumer.reloading(pipeline.table(), &new);
                pipeline.reload(new);
                continue;
            }
            _ = housekeeping.tick() => {
                consumer.housekeeping();
                continue;
            }
        };
        consumer.job_counts(pipeline.job_tracker().counts());
        consumer.peer_claims_refused(pipeline.twin_filter().refused_peer_claims());
        if let Some(counts) = pipeline.backfill_counts() {
            consumer.backfill_counts(counts);
        }
        consumer.outcomes(outcomes).await?;
        consumer.progress(events.take_position(), pipeline.held());
        // One write per burst: once the source has nothing waiting.
        if events.is_empty() {
            consumer.idle()?;
        }
    }
}

/// Most events one turn of the loop takes: one `select!`, one hand-over to
/// the consumer and one journal position per batch instead of per event.
/// Small enough that deadlines and the stop signal wait little, and that
/// the outcomes' vector (about 300 B an outcome) stays under glibc's 64 KiB
/// at which a free consolidates the heap: with 256 a batch, perf showed
/// `malloc_consolidate` and the vector's growth at 15% of a capture run.
const BATCH: usize = 64;

/// Pushes `first` and whatever else is waiting (up to the consumer's
/// [`batch_size`](Consumer::batch_size)) into the pipeline; their
/// outcomes, in order.
fn take_batch(
    first: Event,
    events: &mut EventReceiver,
    pipeline: &mut Pipeline,
    consumer: &mut impl Consumer,
) -> Vec<Outcome> {
    let now = Instant::now();
    // Room for a job summary or two beside every event, without growing.
    let mut out = Vec::with_capacity(2 * BATCH);
    consumer.reading(&first);
    pipeline.push_into(first, now, &mut out);
    for _ in 1..consumer.batch_size() {
        let Ok(ev) = events.try_recv() else { break };
        consumer.reading(&ev);
        pipeline.push_into(ev, now, &mut out);
    }
    out
}

/// Sleeps until `deadline`, or forever when there is none (for `select!`).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Receives from `rx`, or waits forever when there is no channel (for `select!`).
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
