//! The main loop's sign of life, for `/healthz`.
//!
//! The loop bumps it on every turn and on a 1 s tick; the health endpoint
//! says unhealthy when the last bump is older than [`STALE_AFTER`]. A wedged
//! main loop (a stage stuck in a busy loop, a deadlock) thus shows up even
//! though the HTTP server, on its own task, still answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How old the last beat may be before `/healthz` says 503.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// How often the main loop beats when no event comes.
pub const BEAT_EVERY: Duration = Duration::from_secs(1);

/// Milliseconds since `start` at the last beat.
#[derive(Debug)]
pub struct Heartbeat {
    start: Instant,
    last_millis: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            start: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }
}

impl Heartbeat {
    /// Records that the main loop is alive now.
    pub fn beat(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_millis.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    pub fn is_stale(&self) -> bool {
        self.age() > STALE_AFTER
    }
}
