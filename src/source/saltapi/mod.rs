//! `saltapi:https://HOST:8000`: a master's event bus read remotely, through
//! salt-api's `/events` server-sent-event stream, with no shell on the master.
//!
//! Facts this follows, measured on 3006.29, 3008.2 and 3008.4 with
//! rest_cherrypy (`salt/netapi/rest_cherrypy/app.py`, `Events.GET`; the same
//! wire format as rest_tornado's `EventsSaltAPIHandler`):
//! - the token goes in the `X-Auth-Token` header; `/events` answers 400 to
//!   any query parameter (`?token=` included) on these versions;
//! - the stream is `retry: 400`, then `tag:`/`data:` blocks whose data is
//!   `{"data": ..., "tag": ...}`, the same pairs as the bus (`sse`, `wire`);
//! - there are no `id:` lines, `Last-Event-ID` is ignored and nothing is
//!   kept: what is published while no stream is open is lost, so every
//!   reconnect sends a `saltbridge/bus/gap` marker (as the other live
//!   sources do); the master's job cache is not reachable from here, so no
//!   backfill follows;
//! - no heartbeats: a quiet bus is silence, so only silence in the middle
//!   of an event times out (`stall_timeout`);
//! - a token expires (`token_expire`) and dies with a salt-api restart
//!   (`auth`); an expired stream ends after its next event.
//!
//! Framing is the pure `sse` parser, the event is built by `wire`, and this
//! file is the I/O: connect, read, reconnect with backoff.

mod auth;
pub mod settings;
pub mod sse;
pub mod wire;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::reconnect::{Backoff, Lost};
use super::{EventSender, ReaderOptions, SourceError};
use crate::shutdown::Shutdown;
use auth::{error_text, Auth, Failure};
pub use settings::{Credentials, SaltApiSettings, Secret};
use sse::{SseItem, SseParser};

/// Why one stream ended.
enum StreamEnd {
    Shutdown,
    ReceiverGone,
    Lost(String),
    Fatal(String),
}

/// How long a connect may take (TCP, TLS and the response headers, which
/// salt-api sends at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads `saltapi:URL` until shutdown, reconnecting as needed; returns an
/// error only for what retrying cannot fix (refused credentials).
pub async fn run(
    url: String,
    settings: SaltApiSettings,
    opts: ReaderOptions,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    let fatal = |m: String| {
        tracing::error!(source = %format!("saltapi:{url}"), "{m}");
        SourceError::SaltApi(m)
    };
    let (credentials, ca_file) = settings
        .resolve(|k| std::env::var(k).ok())
        .map_err(|e| fatal(format!("saltapi:{url}: {e}")))?;
    let client = client(ca_file.as_deref()).map_err(&fatal)?;
    let mut auth = Auth::new(url.clone(), credentials);
    let mut backoff = Backoff::new(&opts);
    let mut server_retry = Duration::ZERO;
    let mut lost: Option<Lost> = None;
    let mut failures = 0u64;
    loop {
        let attempt = tokio::select! {
            biased;
            _ = shutdown.wait() => return Ok(()),
            r = open(&client, &url, &mut auth) => r,
        };
        let response = match attempt {
            Ok(r) => r,
            Err(Failure::Fatal(m)) => return Err(fatal(m)),
            Err(Failure::Retry(m)) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(source = %sender.source(), error = %m,
                        "cannot open salt-api's event stream; retrying");
                } else {
                    tracing::debug!(source = %sender.source(), error = %m, failures, "salt-api connect failed");
                }
                let delay = backoff.next_delay().max(server_retry);
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return Ok(()),
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        failures = 0;
        backoff.reset();
        sender.stats().connects.fetch_add(1, Ordering::Relaxed);
        sender.stats().set_connected(true);
        match lost.take() {
            Some(gap) => {
                if gap.report(&mut sender).await.is_err() {
                    return Ok(());
                }
            }
            None => tracing::info!(source = %sender.source(), "reading salt-api's event stream"),
        }
        let end = read(
            response,
            &opts,
            &mut sender,
            &mut shutdown,
            (&client, &mut auth),
            &mut server_retry,
        )
        .await;
        sender.stats().set_connected(false);
        match end {
            StreamEnd::Shutdown | StreamEnd::ReceiverGone => return Ok(()),
            StreamEnd::Fatal(m) => return Err(fatal(m)),
            StreamEnd::Lost(reason) => {
                tracing::warn!(source = %sender.source(), %reason, "salt-api's event stream ended; reconnecting");
                lost = Some(Lost::now(reason));
            }
        }
    }
}

/// The HTTP client: TLS verified (against `ca_file` alone when it is set),
/// no redirects (rest_tornado redirects an unauthenticated request to
/// `/login`; that is a refusal here), TCP keepalive for a silent stream.
fn client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("saltbridge/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("saltapi.ca_file: cannot read {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                format!(
                    "saltapi.ca_file: {} holds no PEM certificate",
                    path.display()
                )
            })?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("saltapi: cannot build the HTTP client: {e}"))
}

/// `GET /events` with a token; logs in again once when it is refused.
async fn open(
    client: &reqwest::Client,
    base: &str,
    auth: &mut Auth,
) -> Result<reqwest::Response, Failure> {
    let url = format!("{base}/events");
    for attempt in 0..2 {
        let token = auth.header(client, Instant::now()).await?;
        let get = client
            .get(&url)
            .header("X-Auth-Token", token)
            .header(ACCEPT, "text/event-stream")
            .send();
        let response = tokio::time::timeout(CONNECT_TIMEOUT, get)
            .await
            .map_err(|_| Failure::Retry(format!("GET {url}: no answer in {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| Failure::Retry(format!("GET {url}: {}", error_text(&e))))?;
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            let is_sse = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !is_sse {
                return Err(Failure::Fatal(format!(
                    "GET {url}: HTTP {status} is not an event stream: is this salt-api?"
                )));
            }
            return Ok(response);
        }
        // 401: the token expired or salt-api restarted; 302: rest_tornado's way.
        if code == 401 || status.is_redirection() {
            if auth.can_login() && attempt == 0 {
                tracing::info!(url = %url, "salt-api refused the token (HTTP {code}); logging in again");
                auth.forget();
                continue;
            }
            return Err(auth.refused(code));
        }
        if status.is_server_error() || code == 429 || code == 408 {
            return Err(Failure::Retry(format!("GET {url}: HTTP {status}")));
        }
        return Err(Failure::Fatal(format!(
            "GET {url}: HTTP {status}: is this salt-api (rest_cherrypy or rest_tornado)?"
        )));
    }
    Err(auth.refused(401))
}

/// Reads one stream until it ends; renews the token when it is due, so
/// that the reconnect after the stream's end has a fresh one.
async fn read(
    mut response: reqwest::Response,
    opts: &ReaderOptions,
    sender: &mut EventSender,
    shutdown: &mut Shutdown,
    (client, auth): (&reqwest::Client, &mut Auth),
    server_retry: &mut Duration,
) -> StreamEnd {
    let mut parser = SseParser::new(opts.max_frame);
    let mut items = Vec::new();
    let mut renew_at = auth.renew_at();
    loop {
        let chunk = tokio::select! {
            biased;
            _ = shutdown.wait() => return StreamEnd::Shutdown,
            c = response.chunk() => c,
            _ = stall(parser.mid_block(), opts.stall_timeout) => {
                return StreamEnd::Lost(format!(
                    "salt-api sent no byte for {} in the middle of an event",
                    humantime::format_duration(opts.stall_timeout)
                ));
            }
            _ = until(renew_at) => {
                auth.forget();
                match auth.header(client, Instant::now()).await {
                    Ok(_) => renew_at = auth.renew_at(),
                    Err(Failure::Fatal(m)) => return StreamEnd::Fatal(m),
                    Err(Failure::Retry(m)) => {
                        tracing::warn!(error = %m, "renewing the salt-api token failed; trying again in 10s");
                        renew_at = Some(Instant::now() + Duration::from_secs(10));
                    }
                }
                continue;
            }
        };
        let end = match chunk {
            Ok(Some(bytes)) => {
                sender
                    .stats()
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                parser.push(&bytes, &mut items);
                None
            }
            Ok(None) => {
                parser.finish(&mut items);
                Some("salt-api ended the stream".to_owned())
            }
            Err(e) => {
                parser.finish(&mut items);
                Some(format!("read error: {}", error_text(&e)))
            }
        };
        for item in items.drain(..) {
            if pass_on(item, sender, server_retry).await.is_err() {
                return StreamEnd::ReceiverGone;
            }
        }
        if let Some(reason) = end {
            return StreamEnd::Lost(reason);
        }
    }
}

/// Sends an event on, or counts and logs a refused block.
async fn pass_on(
    item: SseItem,
    sender: &mut EventSender,
    server_retry: &mut Duration,
) -> Result<(), super::ReceiverGone> {
    let (offset, len, error) = match item {
        SseItem::Retry(ms) => {
            *server_retry = Duration::from_millis(ms.min(60_000));
            return Ok(());
        }
        SseItem::Data { offset, len, data } => {
            match wire::to_event(&data, sender.source().clone(), SystemTime::now()) {
                Ok(ev) => {
                    sender.stats().events.fetch_add(1, Ordering::Relaxed);
                    return sender.send(ev).await;
                }
                Err(e) => (offset, len, e.to_string()),
            }
        }
        SseItem::Refused {
            offset,
            len,
            reason,
        } => (offset, len, reason.to_string()),
    };
    let stats = sender.stats();
    stats.malformed.fetch_add(1, Ordering::Relaxed);
    stats.malformed_bytes.fetch_add(len, Ordering::Relaxed);
    tracing::warn!(source = %sender.source(), offset, len, %error,
        "skipped a malformed event in salt-api's stream; reading goes on");
    Ok(())
}

/// Completes after `timeout` when `mid_block`, else never (for `select!`).
async fn stall(mid_block: bool, timeout: Duration) {
    if mid_block {
        tokio::time::sleep(timeout).await
    } else {
        std::future::pending().await
    }
}

/// Completes at `at`, or never.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
