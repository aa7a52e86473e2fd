//! Delivery: the queue in front of each sink, and what happens when a send
//! fails.
//!
//! Each sink gets its own bounded queue and its own worker. The router only
//! *offers* events to a queue and never waits on it, so a slow or dead sink
//! stalls neither the router nor the other sinks. What overflows a queue is
//! counted and logged (a later release puts a disk spool there). The worker
//! sends batches with a concurrency limit; a retryable failure is tried again
//! with capped exponential backoff and full jitter (a server's Retry-After
//! wins); a rejected batch, one that fails for longer than
//! `retry.give_up_after`, and anything still queued when saltbridge is told
//! to stop go to the dead-letter file. Nothing accepted is dropped silently.

pub mod dead_letter;
pub mod retry;
mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::sink::{Outgoing, SendError};
pub use dead_letter::DeadLetters;
pub use retry::RetryPolicy;
pub use worker::{start, WorkerOptions};

/// Something that can send a batch: a sink, or a fake one in tests.
pub trait Deliver: Send + Sync + 'static {
    fn send(&self, batch: &[Outgoing]) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Delivery settings every sink accepts beside its own (`queue`, `retry`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Events held in memory for this sink; beyond it they are dropped and counted.
    pub queue: usize,
    pub retry: RetryPolicy,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            queue: 100_000,
            retry: RetryPolicy::default(),
        }
    }
}

/// Keys of a sink's settings that belong to delivery rather than the sink.
pub const DELIVERY_KEYS: &[&str] = &["queue", "retry"];

impl DeliverySettings {
    /// Takes `queue` and `retry` out of a sink's settings.
    pub fn split_from(sink_settings: &mut serde_json::Value) -> Result<DeliverySettings, String> {
        let mut mine = serde_json::Map::new();
        if let Some(obj) = sink_settings.as_object_mut() {
            for k in DELIVERY_KEYS {
                if let Some(v) = obj.remove(*k) {
                    mine.insert((*k).to_owned(), v);
                }
            }
        }
        let value = serde_json::Value::Object(mine);
        serde_path_to_error::deserialize(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }
}

/// How a worker groups events into one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_events: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

/// Counters per sink, read by `status`, `/metrics` and the end-of-run summary.
#[derive(Debug)]
pub struct SinkStats {
    /// Events in the sink's spool not yet settled (delivered or dead-lettered).
    pub queued: AtomicU64,
    /// Bytes those events take in the spool.
    pub queued_bytes: AtomicU64,
    /// Events written to the spool.
    pub accepted: AtomicU64,
    pub delivered: AtomicU64,
    /// Sends that failed (each attempt), whether retried or not.
    pub failures: AtomicU64,
    /// Sends that failed and were tried again.
    pub retries: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Dropped by the spool's `when_full` policy (the disk bound was reached).
    pub overflowed: AtomicU64,
    /// Dead-lettered because saltbridge stopped before delivering them.
    pub not_delivered: AtomicU64,
    /// Seconds from reading an event off the bus to the sink's acknowledgement.
    pub latency: Histogram,
}

/// Latency buckets: 0.5 ms to ~33 s, doubling.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 17))
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            queued: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            not_delivered: AtomicU64::new(0),
            latency: latency_histogram(),
        }
    }
}

impl SinkStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The router's end of a sink's queue.
#[derive(Debug, Clone)]
pub struct SinkQueue {
    name: Arc<str>,
    tx: mpsc::Sender<Outgoing>,
    stats: Arc<SinkStats>,
}

impl SinkQueue {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }

    /// Hands `o` to the sink without waiting; false (counted, logged) when
    /// the queue is full or the sink has stopped.
    pub fn offer(&self, o: Outgoing) -> bool {
        match self.tx.try_send(o) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                let n = self.stats.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => {
                            "its queue is full (the sink is slower than the bus or down)"
                        }
                        mpsc::error::TrySendError::Closed(_) => "it has stopped",
                    };
                    tracing::error!(sink = %self.name, dropped_total = n, "event not queued for sink: {why}");
                }
                false
            }
        }
    }
}

/// A started sink worker.
pub struct SinkHandle {
    pub queue: SinkQueue,
    pub task: tokio::task::JoinHandle<()>,
}

#[cfg(test)]
mod tests;
