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
pub mod dlq;
pub mod retry;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::outgoing::Outgoing;
use crate::sink::{Batching, Deliver};
pub use crate::sink_stats::SinkStats;
use crate::spool::{AppendError, SpoolSettings, SpoolWriter};
pub use dead_letter::DeadLetters;
pub use retry::RetryPolicy;
pub use worker::{start, WorkerOptions};

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

/// The router's end of a sink's spool.
pub struct SpoolHandle {
    name: Arc<str>,
    writer: Mutex<Option<SpoolWriter>>,
    stats: Arc<SinkStats>,
}

impl SpoolHandle {
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
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = guard.as_mut() {
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

impl Drop for SpoolHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// A started sink worker.
pub struct SinkHandle {
    pub spool: SpoolHandle,
    pub task: tokio::task::JoinHandle<()>,
}

#[cfg(test)]
mod tests;
