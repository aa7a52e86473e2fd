//! The webhook rows' receiver: the library's (`saltbridge::receiver`, the
//! one the tests and the demo use), told to count rather than record, with
//! an observer that counts the events it is sent (a batch by its
//! `X-Saltbridge-Batch-Size`), notes when the sentinel arrives, records
//! bus-to-receiver latency from `bench_sent_us`, and can play a dead sink
//! (503) for the outage measurement.
//!
//! It runs on its own single-threaded tokio runtime so that it costs one
//! core at most, as a real receiver elsewhere would cost nothing here.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderMap;
use saltbridge::receiver::{self, Mode};

use super::loadgen::{now_us, SENTINEL_TAG};

/// What the receiver saw; shared with the bench.
#[derive(Default)]
pub struct Seen {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    /// Answer 503 to everything (a sink outage).
    pub down: AtomicBool,
    /// Record latencies (off outside the measured phase).
    pub timing: AtomicBool,
    pub latencies_us: Mutex<Vec<u64>>,
    pub sentinel_at: Mutex<Option<Instant>>,
}

impl Seen {
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    pub fn sentinel_at(&self) -> Option<Instant> {
        *self.sentinel_at.lock().expect("lock")
    }

    pub fn reset(&self) {
        self.events.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
        self.timing.store(false, Ordering::Relaxed);
        self.latencies_us.lock().expect("lock").clear();
        *self.sentinel_at.lock().expect("lock") = None;
    }
}

/// A running receiver; it lives as long as the bench.
pub struct Receiver {
    inner: receiver::Receiver,
    pub seen: Arc<Seen>,
    _runtime: std::thread::JoinHandle<()>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let seen = Arc::new(Seen::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let started = receiver::Receiver::start().await;
                let _ = tx.send(started);
                // Serve for as long as the bench runs.
                std::future::pending::<()>().await;
            });
        });
        let inner = rx
            .recv()
            .expect("receiver thread")
            .expect("bind 127.0.0.1:0");
        inner.set_keep_requests(false);
        let state = seen.clone();
        inner.on_request(move |headers, body| observe(&state, headers, body));
        Receiver {
            inner,
            seen,
            _runtime: runtime,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.inner.url(&format!("/{path}"))
    }
}

/// Counts what arrived; answers 503 while `down`.
fn observe(seen: &Seen, headers: &HeaderMap, body: &[u8]) -> Option<Mode> {
    if seen.down.load(Ordering::Relaxed) {
        return Some(Mode::status(503));
    }
    let sentinel = headers
        .get("x-saltbridge-tag")
        .is_some_and(|t| t.as_bytes() == SENTINEL_TAG.as_bytes())
        || (headers.get("x-saltbridge-tag").is_none()
            && memchr::memmem::find(body, SENTINEL_TAG.as_bytes()).is_some());
    if sentinel {
        seen.sentinel_at
            .lock()
            .expect("lock")
            .get_or_insert_with(Instant::now);
        return None;
    }
    let n = headers
        .get("x-saltbridge-batch-size")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1);
    if seen.timing.load(Ordering::Relaxed) {
        let now = now_us();
        let mut lat = seen.latencies_us.lock().expect("lock");
        for at in memchr::memmem::find_iter(body, b"\"bench_sent_us\":") {
            let digits = body[at + 16..]
                .iter()
                .skip_while(|b| **b == b' ')
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
            lat.push(now.saturating_sub(digits));
        }
    }
    seen.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    seen.events.fetch_add(n, Ordering::Relaxed);
    None
}
