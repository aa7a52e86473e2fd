//! Reading one byte-stream connection (unix socket, TCP, or a capture file)
//! into events.
//!
//! The loop only reads, decodes and hands on: decoding runs far faster than
//! any master publishes, and [`EventSender`] never waits for a live source,
//! so the socket is drained continuously.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{EventSender, ReaderOptions};
use crate::decode::{Decoded, StreamDecoder};
use crate::shutdown::Shutdown;

/// Read buffer growth step; a frame larger than this simply grows the buffer.
const READ_CHUNK: usize = 256 * 1024;

/// Why a connection's read loop ended.
#[derive(Debug)]
pub(crate) enum StreamEnd {
    Eof,
    Error(std::io::Error),
    Shutdown,
    ReceiverGone,
}

/// Reads `stream` until EOF, an error, shutdown, or the receiver going away.
pub(crate) async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    opts: &ReaderOptions,
    sender: &mut EventSender,
    shutdown: &mut Shutdown,
) -> StreamEnd {
    let mut decoder = StreamDecoder::new(sender.source().clone(), opts.max_frame);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        // Bytes left in the buffer after decoding are an unfinished frame.
        let mid_frame = !buf.is_empty();
        let read = tokio::select! {
            biased;
            _ = shutdown.wait() => return StreamEnd::Shutdown,
            r = stream.read_buf(&mut buf) => r,
            _ = stall(mid_frame, opts.stall_timeout) => {
                return StreamEnd::Error(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the peer sent no byte for {} in the middle of a frame ({} bytes of it read)",
                        humantime::format_duration(opts.stall_timeout),
                        buf.len()
                    ),
                ))
            }
        };
        let now = SystemTime::now();
        match read {
            Ok(0) => {
                while let Some(item) = decoder.finish(&mut buf, now) {
                    if handle(item, sender).await.is_err() {
                        return StreamEnd::ReceiverGone;
                    }
                }
                return StreamEnd::Eof;
            }
            Ok(n) => {
                sender.stats().bytes.fetch_add(n as u64, Ordering::Relaxed);
                while let Some(item) = decoder.decode(&mut buf, now) {
                    if handle(item, sender).await.is_err() {
                        return StreamEnd::ReceiverGone;
                    }
                }
            }
            Err(e) => return StreamEnd::Error(e),
        }
    }
}

/// Completes after `timeout` when `mid_frame`, else never (for `select!`).
async fn stall(mid_frame: bool, timeout: std::time::Duration) {
    if mid_frame {
        tokio::time::sleep(timeout).await
    } else {
        std::future::pending().await
    }
}

/// Passes an event on, or counts and logs (once) a malformed run.
pub(crate) async fn handle(
    item: Decoded,
    sender: &mut EventSender,
) -> Result<(), super::ReceiverGone> {
    match item {
        Decoded::Event(ev) => {
            sender.stats().events.fetch_add(1, Ordering::Relaxed);
            sender.send(ev).await
        }
        Decoded::Malformed { offset, len, error } => {
            let stats = sender.stats();
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            stats
                .malformed_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
            tracing::warn!(
                source = %sender.source(),
                offset,
                len,
                %error,
                "skipped malformed bytes on the bus; reading goes on"
            );
            Ok(())
        }
    }
}
