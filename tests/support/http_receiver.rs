//! A real HTTP server on loopback for sink, delivery and benchmark tests:
//! it records every request and answers as told.
//!
//! ```ignore
//! let rx = Receiver::start().await;
//! rx.set_mode(Mode::status(500));                       // every path
//! rx.set_path_mode("/slow", Mode::slow(Duration::from_secs(5)));
//! rx.push_once(Mode::reset());                          // the next request only
//! let url = rx.url("/hook");
//! // ... send to url ...
//! let got = rx.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(got[0].header("x-saltbridge-key"), Some(key));
//! ```
//!
//! Which answer a request gets: the oldest one-shot mode (`push_once`) if
//! any, else the mode of its path (`set_path_mode`), else the default
//! (`set_mode`, initially `Mode::ok()`).
//!
//! It is axum on a tokio `TcpListener` bound to 127.0.0.1:0, behind a thin
//! listener wrapper that can kill a connection: `Mode::reset()` reads the
//! whole request, records it, and then closes the TCP connection with a RST
//! (SO_LINGER 0) before a single byte of response is written, which is what
//! a crashing server or a middlebox looks like to the client. `stop()` closes
//! the listener (new connections are refused) and resets open ones at their
//! next use; `resume()` listens again on the same port.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the receiver answers a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// An HTTP response, after `delay`.
    Reply(Reply),
    /// Read the request, then reset the connection without any response.
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Mode {
    /// 200 with body `ok`.
    pub fn ok() -> Mode {
        Mode::status(200)
    }

    /// `code` with a short text body (`ok` for 2xx, `status <code>` otherwise).
    pub fn status(code: u16) -> Mode {
        let body = if (200..300).contains(&code) {
            "ok".to_owned()
        } else {
            format!("status {code}")
        };
        Mode::Reply(Reply {
            status: code,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        })
    }

    /// `code` with a JSON body.
    pub fn json(code: u16, body: serde_json::Value) -> Mode {
        Mode::status(code)
            .with_body(body.to_string())
            .with_header("content-type", "application/json")
    }

    /// `code` (429 or 503) with `Retry-After: <secs>`.
    pub fn retry_after_secs(code: u16, secs: u64) -> Mode {
        Mode::status(code).with_header("retry-after", &secs.to_string())
    }

    /// `code` with `Retry-After: <HTTP-date>`.
    pub fn retry_after_date(code: u16, at: SystemTime) -> Mode {
        Mode::status(code).with_header("retry-after", &httpdate::fmt_http_date(at))
    }

    /// 200, after `delay` (for timeout tests).
    pub fn slow(delay: Duration) -> Mode {
        Mode::ok().with_delay(delay)
    }

    /// Reset the connection instead of answering.
    pub fn reset() -> Mode {
        Mode::Reset
    }

    pub fn with_delay(self, delay: Duration) -> Mode {
        self.map_reply(|r| r.delay = delay)
    }

    pub fn with_header(self, name: &str, value: &str) -> Mode {
        self.map_reply(|r| r.headers.push((name.to_owned(), value.to_owned())))
    }

    pub fn with_body(self, body: impl Into<String>) -> Mode {
        let body = body.into();
        self.map_reply(|r| r.body = body)
    }

    fn map_reply(self, f: impl FnOnce(&mut Reply)) -> Mode {
        match self {
            Mode::Reply(mut r) => {
                f(&mut r);
                Mode::Reply(r)
            }
            Mode::Reset => Mode::Reset,
        }
    }
}

/// What the receiver did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Reset,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Empty when bodies are not kept (`set_keep_bodies(false)`).
    pub body: Vec<u8>,
    pub body_len: usize,
    pub at: Instant,
    pub answer: Answer,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_str()))
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        let url = reqwest::Url::parse(&format!("http://x/?{q}")).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

struct Script {
    default: Mode,
    by_path: HashMap<String, Mode>,
    once: VecDeque<Mode>,
    requests: Vec<Recorded>,
    keep_bodies: bool,
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
    /// Starts on 127.0.0.1 and a free port, answering `Mode::ok()`.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let (count, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                default: Mode::ok(),
                by_path: HashMap::new(),
                once: VecDeque::new(),
                requests: Vec::new(),
                keep_bodies: true,
            }),
            count,
        });
        let server = spawn_server(listener, shared.clone());
        Receiver {
            shared,
            addr,
            server: Mutex::new(Some(server)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// Keep request bodies (default) or only their length (benchmarks).
    pub fn set_keep_bodies(&self, keep: bool) {
        self.shared.lock().keep_bodies = keep;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Forgets the recorded requests (the count goes back to 0).
    pub fn clear(&self) {
        let mut s = self.shared.lock();
        s.requests.clear();
        self.shared.count.send_replace(0);
    }

    /// Waits until at least `n` requests arrived and returns them all;
    /// panics after `timeout`.
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
    pub async fn resume(&self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("bind the same port again");
        let server = spawn_server(listener, self.shared.clone());
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(server);
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
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ConnHandle>(),
        )
        .await;
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
    let path = uri.path().to_owned();
    let mode = {
        let mut s = shared.lock();
        let mode = match s.once.pop_front() {
            Some(m) => m,
            None => s.by_path.get(&path).unwrap_or(&s.default).clone(),
        };
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
        let n = s.requests.len();
        drop(s);
        shared.count.send_replace(n);
        mode
    };
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

/// A TCP listener whose connections can be killed with a RST.
struct KillListener {
    inner: TcpListener,
    stopped: Arc<AtomicBool>,
}

impl Listener for KillListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = KillableStream {
                        inner: stream,
                        kill: Arc::new(AtomicBool::new(false)),
                        stopped: self.stopped.clone(),
                    };
                    return (io, addr);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Per-connection handle given to the handler: setting `kill` resets the
/// connection at its next read or write.
#[derive(Clone)]
struct ConnHandle {
    kill: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, KillListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, KillListener>) -> Self {
        ConnHandle {
            kill: stream.io().kill.clone(),
        }
    }
}

struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

impl KillableStream {
    /// When killed: make the close a RST and fail the I/O, so hyper drops us.
    fn killed(&self) -> Option<io::Error> {
        if self.kill.load(Ordering::SeqCst) || self.stopped.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            Some(io::Error::from(io::ErrorKind::ConnectionReset))
        } else {
            None
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
