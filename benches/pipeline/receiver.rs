//! A loopback HTTP receiver for the webhook rows: counts the events it is
//! sent (a batch by its `X-Saltbridge-Batch-Size`), notes when the sentinel
//! arrives, records bus-to-receiver latency from `bench_sent_us`, and can
//! play a dead sink (503) for the outage measurement.
//!
//! It runs on its own single-threaded tokio runtime so that it costs one
//! core at most, as a real receiver elsewhere would cost nothing here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;

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
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    _runtime: std::thread::JoinHandle<()>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let seen = Arc::new(Seen::default());
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let state = seen.clone();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let app = Router::new().fallback(receive).with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        Receiver {
            addr,
            seen,
            _runtime: runtime,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

async fn receive(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if seen.down.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let sentinel = headers
        .get("x-saltbridge-tag")
        .is_some_and(|t| t.as_bytes() == SENTINEL_TAG.as_bytes())
        || (headers.get("x-saltbridge-tag").is_none()
            && memchr::memmem::find(&body, SENTINEL_TAG.as_bytes()).is_some());
    if sentinel {
        seen.sentinel_at
            .lock()
            .expect("lock")
            .get_or_insert_with(Instant::now);
        return StatusCode::OK;
    }
    let n = headers
        .get("x-saltbridge-batch-size")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(1);
    if seen.timing.load(Ordering::Relaxed) {
        let now = now_us();
        let mut lat = seen.latencies_us.lock().expect("lock");
        for at in memchr::memmem::find_iter(&body, b"\"bench_sent_us\":") {
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
    StatusCode::OK
}
