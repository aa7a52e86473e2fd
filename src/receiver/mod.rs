//! A webhook receiver: a real HTTP server (axum on tokio) on 127.0.0.1 and a
//! free port that records every request (method, path, query, headers,
//! body) and answers as scripted. One receiver serves three users, so that
//! what they see of a webhook sink is the same:
//! - `saltbridge demo`, which points its webhook sinks at one in the same
//!   process and prints what a CMDB or a chat service would receive;
//! - the integration tests (`tests/support`), which script outages, slow
//!   answers, `Retry-After` and connection resets, and assert on requests;
//! - the pipeline benchmark (`benches/pipeline`), which only counts
//!   ([`Receiver::set_keep_requests`]) and observes ([`Receiver::on_request`]).
//!
//! ```ignore
//! let rx = Receiver::start().await?;
//! rx.set_mode(Mode::status(500));                       // every path
//! rx.set_path_mode("/slow", Mode::slow(Duration::from_secs(5)));
//! rx.push_once(Mode::reset());                          // the next request only
//! let url = rx.url("/hook");
//! // ... send to url ...
//! let got = rx.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(got[0].header("x-saltbridge-key"), Some(key));
//! ```
//!
//! Which answer a request gets: the observer's ([`Receiver::on_request`]) if
//! it gives one, else the oldest one-shot mode (`push_once`), else the mode of
//! its path (`set_path_mode`), else the default (`set_mode`, initially
//! `Mode::ok()`). A request is recorded before it is answered, so once a
//! client has its answer, its request is in [`Receiver::requests`].
//!
//! `Mode::reset()` reads the whole request, records it, and then closes the
//! TCP connection with a RST (SO_LINGER 0) before a single byte of response
//! is written (see `listener`). `stop()` closes the listener (new
//! connections are refused) and resets open ones at their next use;
//! `resume()` listens again on the same port.

mod listener;
mod mode;

pub use mode::{Answer, Mode, Recorded, Reply};

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use listener::{ConnHandle, KillListener};

/// Sees every request (headers, body) before it is answered; may answer it
/// itself (`Some`) instead of the scripted mode.
pub type Observer = dyn Fn(&HeaderMap, &[u8]) -> Option<Mode> + Send + Sync;

struct Script {
    default: Mode,
    by_path: HashMap<String, Mode>,
    once: VecDeque<Mode>,
    requests: Vec<Recorded>,
    /// How many requests arrived (recorded or not) since start or `clear`.
    arrived: usize,
    /// How many of `requests` `take()` has returned.
    taken: usize,
    keep_bodies: bool,
    keep_requests: bool,
    observer: Option<Arc<Observer>>,
}

struct Shared {
    script: Mutex<Script>,
    count: watch::Sender<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        // A panicking test thread must not hide the requests from the others.
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiver; dropping it stops the server.
pub struct Receiver {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<Server>>,
}

/// One listening period (from start or `resume` to `stop`).
struct Server {
    task: JoinHandle<()>,
    /// Set by `stop()`: this period's connections are reset at their next use.
    stopped: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts on 127.0.0.1 and a free port, answering `Mode::ok()`. Needs a
    /// tokio runtime (the server is a task on it).
    pub async fn start() -> io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (count, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                default: Mode::ok(),
                by_path: HashMap::new(),
                once: VecDeque::new(),
                requests: Vec::new(),
                arrived: 0,
                taken: 0,
                keep_bodies: true,
                keep_requests: true,
                observer: None,
            }),
            count,
        });
        let server = spawn_server(listener, shared.clone());
        Ok(Receiver {
            shared,
            addr,
            server: Mutex::new(Some(server)),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing `/`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port><path>`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The answer for every path without its own mode.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().default = mode;
    }

    /// The answer for requests to exactly `path` (no query).
    pub fn set_path_mode(&self, path: &str, mode: Mode) {
        self.shared.lock().by_path.insert(path.to_owned(), mode);
    }

    /// An answer for the next request only (queued in order, any path).
    pub fn push_once(&self, mode: Mode) {
        self.shared.lock().once.push_back(mode);
    }

    /// Keep request bodies (default) or only their length.
    pub fn set_keep_bodies(&self, keep: bool) {
        self.shared.lock().keep_bodies = keep;
    }

    /// Keep requests (default) or only count them (`count()`, `wait_for`
    /// still work; `requests()` stays empty): for benchmarks.
    pub fn set_keep_requests(&self, keep: bool) {
        self.shared.lock().keep_requests = keep;
    }

    /// Calls `observer` on every request before it is answered (replacing
    /// any earlier one). It runs under the receiver's lock: keep it short.
    pub fn on_request(
        &self,
        observer: impl Fn(&HeaderMap, &[u8]) -> Option<Mode> + Send + Sync + 'static,
    ) {
        self.shared.lock().observer = Some(Arc::new(observer));
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// The requests recorded since the last `take` (or start, or `clear`).
    pub fn take(&self) -> Vec<Recorded> {
        let mut s = self.shared.lock();
        let from = s.taken.min(s.requests.len());
        s.taken = s.requests.len();
        s.requests[from..].to_vec()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Forgets the recorded requests (the count goes back to 0).
    pub fn clear(&self) {
        let mut s = self.shared.lock();
        s.requests.clear();
        s.arrived = 0;
        s.taken = 0;
        self.shared.count.send_replace(0);
    }

    /// Waits until at least `n` requests arrived and returns them all.
    ///
    /// # Panics
    /// After `timeout`, with what did arrive (an assertion for tests; see
    /// [`try_wait_for`](Self::try_wait_for)).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        match self.try_wait_for(n, timeout).await {
            Some(r) => r,
            None => panic!(
                "expected {n} requests within {timeout:?}, got {}: {:#?}",
                self.count(),
                self.requests()
            ),
        }
    }

    /// Like `wait_for`, but `None` on timeout.
    pub async fn try_wait_for(&self, n: usize, timeout: Duration) -> Option<Vec<Recorded>> {
        let mut rx = self.shared.count.subscribe();
        let ok = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n)).await;
        match ok {
            Ok(Ok(_)) => Some(self.requests()),
            _ => None,
        }
    }

    /// Stops listening: new connections are refused, open ones are reset
    /// when next used. Recorded requests stay.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(server) = server {
            server.stopped.store(true, Ordering::SeqCst);
            server.task.abort();
            let _ = server.task.await;
        }
    }

    /// Listens again on the same port after `stop()`.
    pub async fn resume(&self) -> io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        let server = spawn_server(listener, self.shared.clone());
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
        Ok(())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            server.stopped.store(true, Ordering::SeqCst);
            server.task.abort();
        }
    }
}

fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> Server {
    let stopped = Arc::new(AtomicBool::new(false));
    let listener = KillListener {
        inner: listener,
        stopped: stopped.clone(),
    };
    let app = Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::disable())
        .with_state(shared);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnHandle>(),
        )
        .await
        {
            tracing::error!(error = %e, "the webhook receiver stopped");
        }
    });
    Server { task, stopped }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<ConnHandle>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = record(&shared, &method, &uri, &headers, &body);
    match mode {
        Mode::Reset => {
            // The response below is never written: the stream fails first.
            conn.kill.store(true, Ordering::SeqCst);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Mode::Reply(r) => {
            if !r.delay.is_zero() {
                tokio::time::sleep(r.delay).await;
            }
            let mut builder = Response::builder().status(r.status);
            for (k, v) in &r.headers {
                builder = builder.header(k, v);
            }
            builder
                .body(axum::body::Body::from(r.body))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// Picks the answer, records the request, and wakes `wait_for`.
fn record(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Mode {
    let path = uri.path().to_owned();
    let mut s = shared.lock();
    let observed = s.observer.as_ref().and_then(|o| o(headers, body));
    let mode = match observed {
        Some(m) => m,
        None => match s.once.pop_front() {
            Some(m) => m,
            None => s.by_path.get(&path).unwrap_or(&s.default).clone(),
        },
    };
    s.arrived += 1;
    if s.keep_requests {
        let keep = s.keep_bodies;
        s.requests.push(Recorded {
            method: method.to_string(),
            path,
            query: uri.query().map(str::to_owned),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: if keep { body.to_vec() } else { Vec::new() },
            body_len: body.len(),
            at: Instant::now(),
            answer: match &mode {
                Mode::Reply(r) => Answer::Status(r.status),
                Mode::Reset => Answer::Reset,
            },
        });
    }
    let n = s.arrived;
    drop(s);
    shared.count.send_replace(n);
    mode
}
