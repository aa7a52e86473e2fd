//! Counters per sink, written by the spool and the delivery worker and read
//! by `status`, `/metrics` and the end-of-run summary. It imports none of them.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

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
