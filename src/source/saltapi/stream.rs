//! Reading an open `/events` stream, and handing over to a new one when
//! the token is renewed, without a gap.
//!
//! salt-api checks the token between events: once it has expired, the
//! stream delivers one more event and ends (measured with `token_expire:
//! 20` on 3006.29 and 3008.4). So when the token is due for renewal, a new
//! stream is opened with the new token while the old one still runs; the
//! old one's events go on as before, the new one's are held; when the old
//! one ends, the held events that the old one already delivered (the same
//! tag and data text, `_stamp` included) are dropped and the rest go on.
//! Everything published before the new stream subscribed is on the old
//! one, everything after on the new one, so nothing is lost or doubled.
//! The hold is bounded in bytes; past it the old stream is dropped at once.
//!
//! The new stream has subscribed once its first line comes: salt-api's
//! `Events.GET` (`rest_cherrypy/app.py`, `listen`) subscribes to the bus,
//! then writes `retry: 400`; the response headers come before that. A quiet
//! master can keep an expired old stream open past the new token's own
//! renewal; then the new stream, once subscribed, replaces the old one (it
//! has held everything since it subscribed), and only then is the next
//! stream opened. A subscribed new stream is never replaced by one that may
//! not have subscribed yet: under load (salt-api starved of CPU beside a
//! build) that lost the events between the old stream's end and the
//! newest stream's subscription.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::auth::{error_text, Auth, Failure};
use super::connect::open;
use super::sse::{SseItem, SseParser};
use super::wire;
use crate::event::Event;
use crate::shutdown::Shutdown;
use crate::source::{EventSender, ReaderOptions, ReceiverGone};

/// The most event bytes held from the new stream during a handover.
const MAX_HANDOVER_BYTES: usize = 64 << 20;
/// How soon a failed renewal is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(10);
/// How soon a renewal that waits for the new stream to subscribe looks again.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// Why a stream ended.
pub(super) enum StreamEnd {
    Shutdown,
    ReceiverGone,
    Lost(String),
    Fatal(String),
}

/// One open stream and its parser.
struct Conn {
    response: reqwest::Response,
    parser: SseParser,
}

impl Conn {
    /// Reads the next chunk into `items`; `Some(reason)` when the stream ended.
    async fn next(&mut self, items: &mut Vec<SseItem>, sender: &EventSender) -> Option<String> {
        match self.response.chunk().await {
            Ok(Some(bytes)) => {
                let stats = sender.stats();
                stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                self.parser.push(&bytes, items);
                None
            }
            Ok(None) => {
                self.parser.finish(items);
                Some("salt-api ended the stream".to_owned())
            }
            Err(e) => {
                self.parser.finish(items);
                Some(format!("read error: {}", error_text(&e)))
            }
        }
    }
}

/// The new stream while the old one still runs.
struct Handover {
    next: Conn,
    /// The new stream has sent its first line, so it has subscribed.
    subscribed: bool,
    /// Events the old stream delivered since: hash of (tag, data) to count.
    delivered: HashMap<u64, u32>,
    held: VecDeque<Event>,
    held_bytes: usize,
    hasher: RandomState,
}

impl Handover {
    fn key(&self, ev: &Event) -> u64 {
        self.hasher.hash_one((ev.tag(), ev.data_json()))
    }

    /// Sends on the held events the old stream did not deliver, and puts the
    /// new stream in `cur`'s place.
    async fn finish(
        mut self,
        sender: &mut EventSender,
        cur: &mut Conn,
    ) -> Result<(), ReceiverGone> {
        let (mut doubled, mut sent) = (0u64, 0u64);
        while let Some(ev) = self.held.pop_front() {
            let key = self.key(&ev);
            if let Some(n) = self.delivered.get_mut(&key).filter(|n| **n > 0) {
                *n -= 1;
                doubled += 1;
                continue;
            }
            sent += 1;
            forward(ev, sender).await?;
        }
        tracing::info!(source = %sender.source(), doubled, new = sent,
            "switched to the stream of the renewed salt-api token");
        *cur = self.next;
        Ok(())
    }
}

/// What happened while reading.
enum Step {
    Shutdown,
    Current(Option<String>),
    Next(Option<String>),
    Stalled,
    Renew,
}

/// Reads the stream `first` until it ends, renewing the token when due.
// Over 80 lines: both streams of a handover and their steps in one loop, so its states are visible together.
pub(super) async fn read(
    first: reqwest::Response,
    opts: &ReaderOptions,
    sender: &mut EventSender,
    shutdown: &mut Shutdown,
    (client, base, auth): (&reqwest::Client, &str, &mut Auth),
    server_retry: &mut Duration,
) -> StreamEnd {
    let mut cur = Conn {
        response: first,
        parser: SseParser::new(opts.max_frame),
    };
    let mut handover: Option<Handover> = None;
    let mut renew_at = auth.renew_at();
    let (mut items, mut next_items) = (Vec::new(), Vec::new());
    loop {
        let mid_block = cur.parser.mid_block();
        let step = tokio::select! {
            biased;
            _ = shutdown.wait() => Step::Shutdown,
            end = cur.next(&mut items, sender) => Step::Current(end),
            end = next_of(handover.as_mut(), &mut next_items, sender) => Step::Next(end),
            _ = stall(mid_block, opts.stall_timeout) => Step::Stalled,
            _ = until(renew_at) => Step::Renew,
        };
        match step {
            Step::Shutdown => return StreamEnd::Shutdown,
            Step::Stalled => {
                return StreamEnd::Lost(format!(
                    "salt-api sent no byte for {} in the middle of an event",
                    humantime::format_duration(opts.stall_timeout)
                ))
            }
            Step::Current(end) => {
                for item in items.drain(..) {
                    let Some(ev) = decode(item, sender, server_retry) else {
                        continue;
                    };
                    if let Some(h) = handover.as_mut() {
                        let key = h.key(&ev);
                        *h.delivered.entry(key).or_default() += 1;
                    }
                    if forward(ev, sender).await.is_err() {
                        return StreamEnd::ReceiverGone;
                    }
                }
                let Some(reason) = end else { continue };
                match handover.take() {
                    Some(h) => {
                        if !h.subscribed {
                            tracing::warn!(source = %sender.source(),
                                "the old salt-api stream ended before the renewed token's stream \
                                 had subscribed; events in between may be missing");
                        }
                        if h.finish(sender, &mut cur).await.is_err() {
                            return StreamEnd::ReceiverGone;
                        }
                    }
                    None => return StreamEnd::Lost(reason),
                }
            }
            Step::Next(end) => {
                let Some(h) = handover.as_mut() else { continue };
                h.subscribed |= !next_items.is_empty();
                for item in next_items.drain(..) {
                    if let Some(ev) = decode(item, sender, server_retry) {
                        h.held_bytes += ev.heap_bytes();
                        h.held.push_back(ev);
                    }
                }
                if let Some(reason) = end {
                    // The old stream still has everything: try again later.
                    tracing::warn!(source = %sender.source(), %reason,
                        "the renewed token's stream ended before the handover; keeping the old one");
                    handover = None;
                    renew_at = Some(Instant::now() + RENEW_RETRY);
                } else if h.held_bytes > MAX_HANDOVER_BYTES {
                    let Some(h) = handover.take() else { continue };
                    if h.finish(sender, &mut cur).await.is_err() {
                        return StreamEnd::ReceiverGone;
                    }
                }
            }
            Step::Renew => {
                match handover.take() {
                    // The old stream outlived the new token's renewal time
                    // (no event came to end it): the new one has held all
                    // since it subscribed, so it takes over now.
                    Some(h) if h.subscribed => {
                        let taken_over = h.finish(sender, &mut cur).await;
                        if taken_over.is_err() {
                            return StreamEnd::ReceiverGone;
                        }
                    }
                    Some(h) => {
                        handover = Some(h);
                        renew_at = Some(Instant::now() + SUBSCRIBE_WAIT);
                        continue;
                    }
                    None => {}
                }
                auth.forget();
                match open(client, base, auth).await {
                    Ok(response) => {
                        handover = Some(Handover {
                            next: Conn {
                                response,
                                parser: SseParser::new(opts.max_frame),
                            },
                            subscribed: false,
                            delivered: HashMap::new(),
                            held: VecDeque::new(),
                            held_bytes: 0,
                            hasher: RandomState::new(),
                        });
                        renew_at = auth.renew_at();
                    }
                    Err(Failure::Fatal(m)) => return StreamEnd::Fatal(m),
                    Err(Failure::Retry(m)) => {
                        tracing::warn!(source = %sender.source(), error = %m,
                            "renewing the salt-api token failed; trying again in {RENEW_RETRY:?}");
                        renew_at = Some(Instant::now() + RENEW_RETRY);
                    }
                }
            }
        }
    }
}

/// The next chunk of the handover's new stream, or never without one.
async fn next_of(
    handover: Option<&mut Handover>,
    items: &mut Vec<SseItem>,
    sender: &EventSender,
) -> Option<String> {
    match handover {
        Some(h) => h.next.next(items, sender).await,
        None => std::future::pending().await,
    }
}

/// The event in `item`; a refused block is counted and logged instead.
fn decode(item: SseItem, sender: &EventSender, server_retry: &mut Duration) -> Option<Event> {
    let (offset, len, error) = match item {
        SseItem::Retry(ms) => {
            *server_retry = Duration::from_millis(ms.min(60_000));
            return None;
        }
        SseItem::Data { offset, len, data } => {
            match wire::to_event(&data, sender.source().clone(), SystemTime::now()) {
                Ok(ev) => return Some(ev),
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
    None
}

async fn forward(ev: Event, sender: &mut EventSender) -> Result<(), ReceiverGone> {
    sender.stats().events.fetch_add(1, Ordering::Relaxed);
    sender.send(ev).await
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
