//! Delivery: the queue in front of each sink, and what happens when a send
//! fails.
//!
//! Each sink gets its own spool on disk (`crate::spool`) and its own worker.
//! The router appends events to a spool and never waits on the sink, so a
//! slow or dead sink stalls neither the router nor the other sinks, and
//! costs disk rather than data. The worker reads batches from the spool and
//! sends them with a concurrency limit; a retryable failure is tried again
//! with capped exponential backoff and full jitter (a server's Retry-After
//! wins); a rejected batch and one that fails for longer than
//! `retry.give_up_after` go to the dead-letter file. What is still spooled
//! when saltbridge stops stays on disk and is sent after the next start.
//! Nothing accepted is dropped silently.

pub mod dead_letter;
pub mod retry;
mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use serde::Deserialize;

use crate::sink::{Outgoing, SendError};
use crate::spool::{AppendError, SpoolSettings, SpoolWriter};
pub use dead_letter::DeadLetters;
pub use retry::RetryPolicy;
pub use worker::{start, WorkerOptions};

/// Something that can send a batch: a sink, or a fake one in tests.
pub trait Deliver: Send + Sync + 'static {
    fn send(&self, batch: &[Outgoing]) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Delivery settings every sink accepts beside its own (`spool`, `retry`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// The sink's spool on disk: its bound, what is dropped at the bound, fsync.
    pub spool: SpoolSettings,
    pub retry: RetryPolicy,
}

/// Keys of a sink's settings that belong to delivery rather than the sink.
pub const DELIVERY_KEYS: &[&str] = &["spool", "retry"];

impl DeliverySettings {
    /// Takes `spool` and `retry` out of a sink's settings.
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
    /// Spool records found corrupt and skipped (each is a lost event).
    pub corrupt_records: AtomicU64,
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
            corrupt_records: AtomicU64::new(0),
            latency: latency_histogram(),
        }
    }
}

impl SinkStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The router's end of a sink's spool.
pub struct SinkQueue {
    name: Arc<str>,
    writer: Mutex<Option<SpoolWriter>>,
    stats: Arc<SinkStats>,
}

impl SinkQueue {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stats(&self) -> &Arc<SinkStats> {
        &self.stats
    }

    /// Spools `o` without waiting on the sink; false (counted, logged)
    /// when the spool is full or cannot be written. Readable by the sink
    /// after the next [`flush`](Self::flush).
    pub fn offer(&self, o: Outgoing) -> bool {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = guard.as_mut() else {
            return false;
        };
        match w.append(&o) {
            Ok(()) => true,
            Err(e) => {
                let n = match e {
                    AppendError::Full { .. } => SinkStats::get(&self.stats.overflowed),
                    AppendError::Io(_) => self.stats.overflowed.fetch_add(1, Ordering::Relaxed) + 1,
                };
                if n.is_power_of_two() {
                    tracing::error!(sink = %self.name, dropped_total = n, "event not spooled for sink: {e}");
                }
                false
            }
        }
    }

    /// Hands what was offered since the last flush to the sink's worker.
    pub fn flush(&self) {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = guard.as_mut() {
            if let Err(e) = w.flush() {
                tracing::error!(sink = %self.name, error = %e, "cannot write the sink's spool");
            }
        }
    }

    /// Queues dead letters that `saltbridge dlq replay` left in the inbox.
    pub fn import_replayed(&self) -> usize {
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().map_or(0, crate::spool::inbox::import)
    }

    /// Housekeeping, once a second: replayed dead letters in, the
    /// settled mark out to disk.
    pub fn tick(&self) {
        self.import_replayed();
        let guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = guard.as_ref() {
            w.checkpoint();
        }
    }

    /// No more events: the worker finishes what is spooled, then ends.
    pub fn close(&self) {
        let w = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = w {
            if let Err(e) = w.close() {
                tracing::error!(sink = %self.name, error = %e, "cannot write the sink's spool");
            }
        }
    }
}

impl Drop for SinkQueue {
    fn drop(&mut self) {
        self.close();
    }
}

/// A started sink worker.
pub struct SinkHandle {
    pub queue: SinkQueue,
    pub task: tokio::task::JoinHandle<()>,
}

#[cfg(test)]
mod tests;
