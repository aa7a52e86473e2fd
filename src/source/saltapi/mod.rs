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
//! Framing is the pure `sse` parser, the event is built by `wire`; `auth`
//! logs in, `connect` opens the stream, `stream` reads it (and hands over
//! to a new one when the token is renewed), and this file reconnects with
//! backoff and reports the gaps.

mod auth;
mod connect;
pub mod settings;
pub mod sse;
mod stream;
pub mod wire;

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::reconnect::{Backoff, Lost};
use super::{EventSender, ReaderOptions, SourceError};
use crate::shutdown::Shutdown;
use auth::{Auth, Failure};
use connect::{client, open};
pub use settings::{Credentials, SaltApiSettings, Secret};
use stream::{read, StreamEnd};

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
            (&client, &url, &mut auth),
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
