//! One sink's worker: takes batches off its queue, sends them with a
//! concurrency limit, retries, and settles every event as delivered or
//! dead-lettered.
//!
//! Two ways to end. When the queue is closed (a file source reached its
//! end) the worker drains it and waits for every send to settle. When told
//! to stop (SIGTERM), it dead-letters what is still queued, gives in-flight
//! sends until `stop_deadline`, and dead-letters whatever has not settled
//! by then, marked as possibly delivered.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::{Batching, DeadLetters, Deliver, DeliverySettings, SinkHandle, SinkQueue, SinkStats};
use crate::shutdown::Shutdown;
use crate::sink::{Outgoing, SendError};

/// Batches being sent, by id, so that a stop can account for them.
type InFlight = Arc<Mutex<HashMap<u64, Vec<Outgoing>>>>;

struct Ctx<S> {
    name: Arc<str>,
    sink: Arc<S>,
    settings: DeliverySettings,
    dead: DeadLetters,
    stats: Arc<SinkStats>,
    in_flight: InFlight,
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
}

/// Starts the worker of sink `name`.
pub fn start<S: Deliver>(
    name: &str,
    sink: Arc<S>,
    opts: WorkerOptions,
    dead: DeadLetters,
    stop: Shutdown,
) -> SinkHandle {
    let WorkerOptions {
        settings,
        concurrency,
        batching,
        stop_deadline,
    } = opts;
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let stats = Arc::new(SinkStats::default());
    let name: Arc<str> = Arc::from(name);
    let ctx = Arc::new(Ctx {
        name: name.clone(),
        sink,
        settings,
        dead,
        stats: stats.clone(),
        in_flight: Arc::default(),
    });
    let task = tokio::spawn(run(
        ctx,
        rx,
        concurrency.max(1),
        batching,
        stop,
        stop_deadline,
    ));
    SinkHandle {
        queue: SinkQueue { name, tx, stats },
        task,
    }
}

async fn run<S: Deliver>(
    ctx: Arc<Ctx<S>>,
    mut rx: mpsc::Receiver<Outgoing>,
    concurrency: usize,
    batching: Option<Batching>,
    mut stop: Shutdown,
    stop_deadline: Duration,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut sends = JoinSet::new();
    let mut next_id = 0u64;
    let mut stopped = false;
    loop {
        while sends.try_join_next().is_some() {}
        let first = tokio::select! {
            biased;
            _ = stop.wait() => { stopped = true; break }
            o = rx.recv() => match o { Some(o) => o, None => break },
        };
        let mut batch = vec![first];
        if let Some(b) = batching {
            stopped = gather(&mut rx, &mut batch, b, &mut stop).await;
        }
        ctx.stats
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        let permit = tokio::select! {
            biased;
            _ = stop.wait() => { stopped = true; None }
            p = permits.clone().acquire_owned() => p.ok(),
        };
        let Some(permit) = permit else {
            settle_unsent(
                &ctx,
                &batch,
                "saltbridge stopped before this event was sent",
            );
            break;
        };
        next_id += 1;
        let id = next_id;
        lock(&ctx.in_flight).insert(id, batch.clone());
        let ctx2 = ctx.clone();
        let stop2 = stop.clone();
        sends.spawn(async move {
            deliver(&ctx2, &batch, stop2).await;
            lock(&ctx2.in_flight).remove(&id);
            drop(permit);
        });
        if stopped {
            break;
        }
    }
    if stopped || stop.is_triggered() {
        // Whatever is still queued will not be sent.
        rx.close();
        let mut rest = Vec::new();
        while let Ok(o) = rx.try_recv() {
            rest.push(o);
        }
        ctx.stats
            .queued
            .fetch_sub(rest.len() as u64, Ordering::Relaxed);
        settle_unsent(&ctx, &rest, "saltbridge stopped before this event was sent");
        let deadline = Instant::now() + stop_deadline;
        while !sends.is_empty() {
            match tokio::time::timeout_at(deadline.into(), sends.join_next()).await {
                Ok(_) => {}
                Err(_) => break,
            }
        }
        sends.abort_all();
        let unsettled: Vec<Outgoing> = lock(&ctx.in_flight).drain().flat_map(|(_, b)| b).collect();
        settle_unsent(
            &ctx,
            &unsettled,
            "saltbridge stopped while this event was being sent: it may have been delivered",
        );
    } else {
        while sends.join_next().await.is_some() {}
    }
}

/// Adds queued events to `batch` until a bound is reached or `max_wait`
/// passes; returns true if stop was signalled meanwhile.
async fn gather(
    rx: &mut mpsc::Receiver<Outgoing>,
    batch: &mut Vec<Outgoing>,
    b: Batching,
    stop: &mut Shutdown,
) -> bool {
    let deadline = tokio::time::Instant::now() + b.max_wait;
    let mut bytes: usize = batch.iter().map(size_of_event).sum();
    // What is already queued joins at once; only then wait up to max_wait.
    while batch.len() < b.max_events && bytes < b.max_bytes {
        match rx.try_recv() {
            Ok(o) => {
                bytes += size_of_event(&o);
                batch.push(o);
            }
            Err(_) => break,
        }
    }
    if b.max_wait.is_zero() {
        return false;
    }
    while batch.len() < b.max_events && bytes < b.max_bytes {
        let next = tokio::select! {
            biased;
            _ = stop.wait() => return true,
            _ = tokio::time::sleep_until(deadline) => return false,
            o = rx.recv() => o,
        };
        match next {
            Some(o) => {
                bytes += size_of_event(&o);
                batch.push(o);
            }
            None => return false,
        }
    }
    false
}

fn size_of_event(o: &Outgoing) -> usize {
    o.event.tag().len() + o.event.data_json().len() + 32
}

/// Sends `batch` until it is delivered, rejected, given up on, or stop.
async fn deliver<S: Deliver>(ctx: &Ctx<S>, batch: &[Outgoing], mut stop: Shutdown) {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match ctx.sink.send(batch).await {
            Ok(()) => {
                ctx.stats
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(SendError::Reject { reason, status }) => {
                tracing::warn!(sink = %ctx.name, events = batch.len(), ?status, %reason, "sink rejected events: dead-lettered");
                dead_letter(ctx, batch, status, &reason);
                return;
            }
            Err(SendError::Retry {
                reason,
                status,
                retry_after,
            }) => {
                let policy = &ctx.settings.retry;
                if started.elapsed() >= policy.give_up_after {
                    let why = format!(
                        "gave up after {attempt} attempts in {:?}: {reason}",
                        started.elapsed()
                    );
                    tracing::error!(sink = %ctx.name, events = batch.len(), %why, "dead-lettered");
                    dead_letter(ctx, batch, status, &why);
                    return;
                }
                ctx.stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = policy.delay(attempt, retry_after, rand::random::<f64>());
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::warn!(sink = %ctx.name, attempt, ?status, %reason, delay_ms = delay.as_millis() as u64, "send failed; retrying");
                }
                tokio::select! {
                    biased;
                    _ = stop.wait() => {
                        settle_unsent(ctx, batch, &format!("saltbridge stopped while retrying (last error: {reason})"));
                        return;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

fn dead_letter<S>(ctx: &Ctx<S>, batch: &[Outgoing], status: Option<u16>, error: &str) {
    if batch.is_empty() {
        return;
    }
    ctx.stats
        .dead_lettered
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    if let Err(e) = ctx.dead.write(&ctx.name, batch, status, error) {
        tracing::error!(sink = %ctx.name, file = %ctx.dead.path().display(), error = %e,
            events = batch.len(), "cannot write the dead-letter file: these events are lost");
    }
}

fn settle_unsent<S>(ctx: &Ctx<S>, batch: &[Outgoing], why: &str) {
    if batch.is_empty() {
        return;
    }
    ctx.stats
        .not_delivered
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    tracing::warn!(sink = %ctx.name, events = batch.len(), file = %ctx.dead.path().display(), "{why}: dead-lettered");
    dead_letter(ctx, batch, None, why);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
