//! Connecting to a master, and coming back after it goes away.
//!
//! A master that is not up yet is waited for; after EOF, ECONNREFUSED or
//! ENOENT the source reconnects with capped exponential backoff. Salt keeps no
//! backlog, so whatever was published while disconnected is gone: after every
//! reconnect a `saltbridge/bus/gap` marker says so, with the interval.
//!
//! The first failed connect is logged plainly at warn, naming the address
//! tried and what to check, because it is usually the first thing a new user
//! sees; later failures are logged at debug, with a reminder at info once a
//! minute, so a master that is down for hours does not flood the log.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::io::AsyncRead;

use super::stream::{read_stream, StreamEnd};
use super::{EventSender, ReaderOptions, ReceiverGone, SourceStats, GAP_TAG};
use crate::shutdown::Shutdown;

/// Where a connection's bytes go: decoded into the channel (an
/// [`EventSender`]), or raw into the journal (`journaled::JournalOutlet`).
pub(crate) trait Outlet {
    fn stats(&self) -> &Arc<SourceStats>;
    fn source(&self) -> &Arc<str>;
    /// Sends a marker event made by saltbridge (a gap).
    fn marker(&mut self, tag: &str, data: Value) -> impl Future<Output = Result<(), ReceiverGone>>;
    /// Reads one connection until it ends.
    fn connection<S: AsyncRead + Unpin>(
        &mut self,
        stream: S,
        opts: &ReaderOptions,
        shutdown: &mut Shutdown,
    ) -> impl Future<Output = StreamEnd>;
}

impl Outlet for EventSender {
    fn stats(&self) -> &Arc<SourceStats> {
        EventSender::stats(self)
    }

    fn source(&self) -> &Arc<str> {
        EventSender::source(self)
    }

    async fn marker(&mut self, tag: &str, data: Value) -> Result<(), ReceiverGone> {
        self.send_marker(tag, data).await
    }

    async fn connection<S: AsyncRead + Unpin>(
        &mut self,
        stream: S,
        opts: &ReaderOptions,
        shutdown: &mut Shutdown,
    ) -> StreamEnd {
        read_stream(stream, opts, self, shutdown).await
    }
}

/// Capped exponential backoff.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(opts: &ReaderOptions) -> Self {
        Backoff {
            initial: opts.backoff_initial,
            max: opts.backoff_max,
            next: opts.backoff_initial,
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// When and why the connection was lost.
#[derive(Debug)]
pub(crate) struct Lost {
    at: SystemTime,
    since: Instant,
    reason: String,
}

impl Lost {
    pub(crate) fn now(reason: impl Into<String>) -> Self {
        Lost {
            at: SystemTime::now(),
            since: Instant::now(),
            reason: reason.into(),
        }
    }

    /// Counts the gap and sends its marker.
    pub(crate) async fn report(self, sender: &mut impl Outlet) -> Result<(), ReceiverGone> {
        let secs = self.since.elapsed().as_secs_f64();
        let stats = sender.stats();
        stats.gaps.fetch_add(1, Ordering::Relaxed);
        stats
            .gap_millis
            .fetch_add((secs * 1000.0) as u64, Ordering::Relaxed);
        tracing::warn!(source = %sender.source(), seconds = secs, reason = %self.reason,
            "reconnected to the event bus; events published meanwhile are lost (gap marker sent)");
        let data = json!({
            "source": &**sender.source(),
            "reason": self.reason,
            "disconnected_at": humantime::format_rfc3339_micros(self.at).to_string(),
            "reconnected_at": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "seconds": secs,
        });
        sender.marker(GAP_TAG, data).await
    }
}

/// How often a master that stays unreachable is mentioned again at info.
const STILL_DOWN_EVERY: Duration = Duration::from_secs(60);

/// A hint for the operator about a failed connect: what to check.
pub(crate) fn connect_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            "is salt-master running? if its sock_dir is not the default, try \
             --source ipc:/etc/salt/master to read it from the master config; see README Troubleshooting"
        }
        std::io::ErrorKind::ConnectionRefused => {
            "nothing is listening: is salt-master running? see README Troubleshooting"
        }
        std::io::ErrorKind::PermissionDenied => {
            "this user cannot open the socket: run saltbridge as the master's user, or in a group \
             with read access to the socket; see README Troubleshooting"
        }
        _ => {
            "is salt-master running? does this user have read access to the socket? \
             see README Troubleshooting"
        }
    }
}

/// Connects with `connect`, reads until the connection ends, and repeats
/// until shutdown or until the receiver goes away. `address` (the socket
/// path, or host:port) is what the logs say was tried.
// Over 80 lines: the whole connect/read/back-off cycle in one loop, so its states are visible together.
pub(crate) async fn run_reconnecting<S, F, Fut, O>(
    address: &str,
    mut connect: F,
    opts: &ReaderOptions,
    sender: &mut O,
    shutdown: &mut Shutdown,
) where
    O: Outlet,
    S: AsyncRead + Unpin,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<S>>,
{
    let mut backoff = Backoff::new(opts);
    let mut lost: Option<Lost> = None;
    let mut failures = 0u64;
    let mut first_failure = Instant::now();
    let mut last_reminder = Instant::now();
    loop {
        let attempt = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            r = connect() => r,
        };
        let stream = match attempt {
            Ok(s) => s,
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    first_failure = Instant::now();
                    last_reminder = first_failure;
                    tracing::warn!(
                        "cannot connect to the Salt master's event bus at {address}: {e} ({}); retrying",
                        connect_hint(&e)
                    );
                } else if last_reminder.elapsed() >= STILL_DOWN_EVERY {
                    last_reminder = Instant::now();
                    tracing::info!(
                        "still cannot connect to the Salt master's event bus at {address} after {failures} attempts in {}s: {e}; retrying",
                        first_failure.elapsed().as_secs()
                    );
                } else {
                    tracing::debug!(address, error = %e, failures, "connect failed");
                }
                let delay = backoff.next_delay();
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        sender.stats().connects.fetch_add(1, Ordering::Relaxed);
        sender.stats().set_connected(true);
        match lost.take() {
            Some(gap) => {
                if gap.report(sender).await.is_err() {
                    return;
                }
            }
            None if failures > 0 => tracing::info!(
                "connected to the master's event bus at {address} (after {failures} failed attempts in {:.1}s)",
                first_failure.elapsed().as_secs_f64()
            ),
            None => tracing::info!("connected to the master's event bus at {address}"),
        }
        failures = 0;
        backoff.reset();
        let end = sender.connection(stream, opts, shutdown).await;
        sender.stats().set_connected(false);
        match end {
            StreamEnd::Shutdown | StreamEnd::ReceiverGone => return,
            StreamEnd::Eof => {
                tracing::warn!(source = %sender.source(), "the master closed the event bus (EOF); reconnecting");
                lost = Some(Lost::now("eof"));
            }
            StreamEnd::Error(e) => {
                tracing::warn!(source = %sender.source(), error = %e, "event bus read failed; reconnecting");
                lost = Some(Lost::now(format!("read error: {e}")));
            }
        }
    }
}
