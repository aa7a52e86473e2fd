//! One sink's worker: takes batches from the sink's spool, sends them with
//! a concurrency limit, retries, and settles every batch as delivered or
//! dead-lettered. Only a settled batch leaves the spool.
//!
//! Two ways to end. When the spool is closed (a file source reached its
//! end) the worker sends everything and waits for every send to settle.
//! When told to stop (SIGTERM), it starts nothing new, gives in-flight sends
//! until `stop_deadline`, and leaves whatever has not settled in the spool:
//! the next start sends it (perhaps again, with the same idempotency key).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Batching, DeadLetters, Deliver, DeliverySettings, SinkHandle, SinkStats, SpoolHandle};
use crate::outgoing::Outgoing;
use crate::shutdown::Shutdown;
use crate::sink::{Outcome, SendError};
use crate::spool::{self, Batch, SpoolError, SpoolReader};

struct Ctx<S> {
    name: Arc<str>,
    sink: Arc<S>,
    settings: DeliverySettings,
    dead: DeadLetters,
    stats: Arc<SinkStats>,
}

/// How one sink's worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub settings: DeliverySettings,
    /// Sends in flight at once.
    pub concurrency: usize,
    pub batching: Option<Batching>,
    /// After stop, how long in-flight sends may take.
    pub stop_deadline: Duration,
    /// Spool Salt's msgpack bytes too (a sink that sends them).
    pub keep_raw: bool,
    /// Start each send from the worker's one task, in spool order, and
    /// await its outcome apart (`Deliver::start`; Kafka).
    pub in_order: bool,
}

/// Opens the spool of sink `name` in `spool_dir` and starts its worker.
pub fn start<S: Deliver>(
    name: &str,
    sink: Arc<S>,
    opts: WorkerOptions,
    spool_dir: &Path,
    dead: DeadLetters,
    stop: Shutdown,
) -> Result<SinkHandle, SpoolError> {
    let stats = Arc::new(SinkStats::default());
    let (writer, reader) = spool::open(
        spool_dir,
        opts.settings.spool.clone(),
        opts.keep_raw,
        stats.clone(),
    )?;
    let name: Arc<str> = Arc::from(name);
    let ctx = Arc::new(Ctx {
        name: name.clone(),
        sink,
        settings: opts.settings.clone(),
        dead,
        stats: stats.clone(),
    });
    let task = tokio::spawn(run(ctx, reader, opts, stop));
    Ok(SinkHandle {
        spool: SpoolHandle {
            name,
            writer: Mutex::new(Some(writer)),
            stats,
        },
        task,
    })
}

async fn run<S: Deliver>(
    ctx: Arc<Ctx<S>>,
    mut reader: SpoolReader,
    opts: WorkerOptions,
    mut stop: Shutdown,
) {
    let stop_deadline = opts.stop_deadline;
    let (max_events, max_bytes, max_wait) = match opts.batching {
        Some(b) => (b.max_events, b.max_bytes, b.max_wait),
        None => (1, usize::MAX, Duration::ZERO),
    };
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut sends = JoinSet::new();
    let mut stopped = false;
    loop {
        while sends.try_join_next().is_some() {}
        // Take a permit first, so a batch is only read when it can be sent.
        let permit = tokio::select! {
            biased;
            _ = stop.wait() => { stopped = true; break }
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let batch = tokio::select! {
            biased;
            _ = stop.wait() => { stopped = true; break }
            b = reader.next_batch(max_events, max_bytes, max_wait) => match b {
                Some(b) => b,
                None => break,
            },
        };
        // In order: handed to the sink here, one batch after another.
        let started = if opts.in_order {
            tokio::select! {
                biased;
                // Unsettled: stays in the spool.
                _ = stop.wait() => { stopped = true; break }
                o = ctx.sink.start(&batch.items) => Some(o),
            }
        } else {
            None
        };
        let ctx2 = ctx.clone();
        let stop2 = stop.clone();
        sends.spawn(async move {
            deliver(&ctx2, batch, started, stop2).await;
            drop(permit);
        });
    }
    if stopped {
        let deadline = Instant::now() + stop_deadline;
        while !sends.is_empty() {
            if tokio::time::timeout_at(deadline.into(), sends.join_next())
                .await
                .is_err()
            {
                break;
            }
        }
        let unsettled = sends.len();
        sends.abort_all();
        if unsettled > 0 {
            tracing::warn!(sink = %ctx.name, batches = unsettled, "saltbridge stopped while sending: these stay in the spool and are sent again at the next start (they may have been delivered)");
        }
    } else {
        while sends.join_next().await.is_some() {}
    }
    // What the sink itself still buffers (Kafka: librdkafka's queue).
    let sink = Arc::clone(&ctx.sink);
    let _ = tokio::task::spawn_blocking(move || sink.close(stop_deadline)).await;
    reader.checkpoint();
    let left = SinkStats::get(&ctx.stats.queued);
    ctx.stats.not_delivered.store(left, Ordering::Relaxed);
}

/// How sending some events ended.
enum Settled {
    Delivered,
    /// Rejected by the sink (`rejected`) or given up on: dead letters.
    Dead {
        status: Option<u16>,
        reason: String,
        rejected: bool,
    },
    /// Stop came first: the events stay in the spool.
    Stopped,
}

/// Sends `batch` until it is delivered, rejected or given up on (then it
/// is settled), or until stop (then it stays in the spool). A batch the
/// sink rejects is sent again one event at a time, so that one bad event
/// (a tag too long for a header) takes no other down.
async fn deliver<S: Deliver>(ctx: &Ctx<S>, batch: Batch, started: Option<Outcome>, stop: Shutdown) {
    match send(ctx, &batch.items, started, stop.clone()).await {
        Settled::Delivered => {
            delivered(ctx, &batch.items);
            batch.settle();
        }
        Settled::Stopped => {}
        Settled::Dead {
            rejected: true,
            reason,
            ..
        } if batch.items.len() > 1 => {
            tracing::warn!(sink = %ctx.name, events = batch.items.len(), %reason, "sink rejected a batch: sending its events one by one");
            let mut all_written = true;
            for o in &batch.items {
                let one = std::slice::from_ref(o);
                match send(ctx, one, None, stop.clone()).await {
                    Settled::Delivered => delivered(ctx, one),
                    // Stays in the spool; what was delivered goes again, with its key.
                    Settled::Stopped => return,
                    Settled::Dead { status, reason, .. } => {
                        all_written &= write_dead(ctx, one, status, &reason);
                    }
                }
            }
            if all_written {
                batch.settle();
            }
        }
        Settled::Dead { status, reason, .. } => {
            if write_dead(ctx, &batch.items, status, &reason) {
                batch.settle();
            }
        }
    }
}

fn delivered<S>(ctx: &Ctx<S>, items: &[Outgoing]) {
    ctx.stats
        .delivered
        .fetch_add(items.len() as u64, Ordering::Relaxed);
    let now = std::time::SystemTime::now();
    for o in items {
        ctx.stats.latency.observe(spool::age(&o.event, now));
    }
}

/// Sends `items` as one, retrying, until it settles or stop comes. The
/// first attempt's outcome is `started`'s, when the worker started it.
async fn send<S: Deliver>(
    ctx: &Ctx<S>,
    items: &[Outgoing],
    mut first: Option<Outcome>,
    mut stop: Shutdown,
) -> Settled {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = match first.take() {
            Some(outcome) => outcome.await,
            None => ctx.sink.send(items).await,
        };
        match result {
            Ok(()) => return Settled::Delivered,
            Err(SendError::Reject { reason, status }) => {
                ctx.stats.failures.fetch_add(1, Ordering::Relaxed);
                if items.len() == 1 {
                    tracing::warn!(sink = %ctx.name, events = items.len(), ?status, %reason, "sink rejected events: dead-lettered");
                }
                return Settled::Dead {
                    status,
                    reason,
                    rejected: true,
                };
            }
            Err(SendError::Retry {
                reason,
                status,
                retry_after,
            }) => {
                ctx.stats.failures.fetch_add(1, Ordering::Relaxed);
                let policy = &ctx.settings.retry;
                if started.elapsed() >= policy.give_up_after {
                    let why = format!(
                        "gave up after {attempt} attempts in {:?}: {reason}",
                        started.elapsed()
                    );
                    tracing::error!(sink = %ctx.name, events = items.len(), %why, "dead-lettered");
                    return Settled::Dead {
                        status,
                        reason: why,
                        rejected: false,
                    };
                }
                ctx.stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = policy.delay(attempt, retry_after, rand::random::<f64>());
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::warn!(sink = %ctx.name, attempt, ?status, %reason, delay_ms = delay.as_millis() as u64, "send failed; retrying");
                }
                tokio::select! {
                    biased;
                    // Stays in the spool for the next start.
                    _ = stop.wait() => return Settled::Stopped,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Writes `items` to the dead-letter file; false if the file cannot be
/// written: the batch then stays in the spool, to be tried again at the
/// next start rather than lost.
fn write_dead<S>(ctx: &Ctx<S>, items: &[Outgoing], status: Option<u16>, error: &str) -> bool {
    match ctx.dead.write(&ctx.name, items, status, error) {
        Ok(()) => {
            ctx.stats
                .dead_lettered
                .fetch_add(items.len() as u64, Ordering::Relaxed);
            true
        }
        Err(e) => {
            tracing::error!(sink = %ctx.name, file = %ctx.dead.path().display(), error = %e,
                events = items.len(), "cannot write the dead-letter file: the events stay in the spool until the next start");
            false
        }
    }
}
