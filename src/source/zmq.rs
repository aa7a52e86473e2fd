//! ZeroMQ SUB for 2014-2015 masters (`zmq:ipc://...` or `zmq:tcp://...`).
//!
//! Those masters bound a ZeroMQ PUB socket at `ipc://<sock_dir>/master_event_pub.ipc`
//! and sent one message per event. saltbridge subscribes to everything (`""`)
//! and decodes each message with Salt's byte-20 rule (see `decode::body`).
//! The pure-Rust `zeromq` crate speaks ZMTP 3 (libzmq 3.x and later).
//!
//! A disconnect is noticed through the socket monitor; the socket is then
//! rebuilt with the same backoff and gap marker as the stream sources.
//! Malformed messages are logged with their message number as the offset.
//! The crate never talks to the master directly: see `zmq_guard` for how
//! `--max-frame` bounds what it reads.

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use zeromq::{Socket, SocketEvent, SocketOptions, SocketRecv, SubSocket};

use super::reconnect::{connect_hint, Backoff, Lost};
use super::stream::handle;
use super::zmq_guard::Relay;
use super::{EventSender, ReaderOptions, SourceError};
use crate::decode::{decode_message, BodyStyle, Decoded, FrameError};
use crate::shutdown::Shutdown;

/// Reads the ZeroMQ PUB at `endpoint` until shutdown, reconnecting as needed.
// Over 80 lines: the whole connect/read/back-off cycle in one loop, as in reconnect.rs.
pub async fn run(
    endpoint: String,
    opts: ReaderOptions,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    let mut backoff = Backoff::new(&opts);
    let mut lost: Option<Lost> = None;
    let mut failures = 0u64;
    let mut message_no = 0u64;
    loop {
        let mut options = SocketOptions::default();
        options.connect_timeout(Duration::from_secs(1));
        let mut socket = SubSocket::with_options(options);
        let mut monitor = socket.monitor();
        let mut relay = None;
        let connected = tokio::select! {
            biased;
            _ = shutdown.wait() => return Ok(()),
            r = connect(&mut socket, &endpoint, opts.max_frame, &mut relay) => r,
        };
        if let Err(e) = connected {
            // A frame refused during the handshake fails the connect.
            if report_refusal(relay.as_ref(), message_no, opts.max_frame, &mut sender)
                .await
                .is_err()
            {
                return Ok(());
            }
            failures += 1;
            if failures == 1 {
                let hint = match &e {
                    zeromq::ZmqError::Network(io) => connect_hint(io),
                    _ => "will keep retrying",
                };
                tracing::warn!(source = %sender.source(), error = %e, hint,
                    "cannot connect to the master's ZeroMQ event bus; retrying");
            }
            tokio::select! {
                biased;
                _ = shutdown.wait() => return Ok(()),
                _ = tokio::time::sleep(backoff.next_delay()) => continue,
            }
        }
        failures = 0;
        backoff.reset();
        sender
            .stats()
            .connects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sender.stats().set_connected(true);
        match lost.take() {
            Some(gap) => {
                if gap.report(&mut sender).await.is_err() {
                    return Ok(());
                }
            }
            None => {
                tracing::info!(source = %sender.source(), "connected to the master's ZeroMQ event bus")
            }
        }
        let reason = loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => return Ok(()),
                ev = monitor.next() => match ev {
                    Some(SocketEvent::Disconnected(_)) | None => break "peer disconnected".to_owned(),
                    Some(_) => {}
                },
                msg = socket.recv() => match msg {
                    Ok(msg) => {
                        message_no += 1;
                        let body = join_frames(msg);
                        sender.stats().bytes.fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        let len = body.len();
                        let item = match decode_message(body, BodyStyle::Zmq, sender.source().clone(), SystemTime::now()) {
                            Ok(ev) => Decoded::Event(ev),
                            Err(e) => Decoded::Malformed { offset: message_no, len, error: e.into() },
                        };
                        if handle(item, &mut sender).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) => break format!("receive error: {e}"),
                },
            }
        };
        if report_refusal(relay.as_ref(), message_no, opts.max_frame, &mut sender)
            .await
            .is_err()
        {
            return Ok(());
        }
        drop(socket);
        drop(relay);
        sender.stats().set_connected(false);
        tracing::warn!(source = %sender.source(), %reason, "lost the ZeroMQ event bus; reconnecting");
        lost = Some(Lost::now(reason));
    }
}

/// Counts and logs the frame the relay refused, if it did, as a malformed
/// message after message `message_no`.
async fn report_refusal(
    relay: Option<&Relay>,
    message_no: u64,
    max_frame: usize,
    sender: &mut EventSender,
) -> Result<(), super::ReceiverGone> {
    let Some(len) = relay.and_then(Relay::refused) else {
        return Ok(());
    };
    let error = FrameError::TooLarge {
        len: usize::try_from(len).unwrap_or(usize::MAX),
        max: max_frame,
    };
    let item = Decoded::Malformed {
        offset: message_no + 1,
        len: 0,
        error: error.into(),
    };
    handle(item, sender).await
}

async fn connect(
    socket: &mut SubSocket,
    endpoint: &str,
    max_frame: usize,
    relay: &mut Option<Relay>,
) -> zeromq::ZmqResult<()> {
    let r = relay.insert(Relay::start(endpoint, max_frame).await?);
    socket.connect(r.endpoint()).await?;
    socket.subscribe("").await
}

/// Salt sends one frame per event; should a multi-part message arrive, its
/// frames are joined rather than any being dropped.
fn join_frames(msg: zeromq::ZmqMessage) -> Bytes {
    let mut frames = msg.into_vecdeque();
    if frames.len() == 1 {
        return frames.pop_front().unwrap_or_default();
    }
    let mut body = BytesMut::with_capacity(frames.iter().map(|f| f.len()).sum());
    for f in frames {
        body.extend_from_slice(&f);
    }
    body.freeze()
}
