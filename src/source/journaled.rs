//! A live source behind the journal (issue 13): the reader task only reads
//! the socket and appends each read to the journal, raw; a second task
//! (`journal_decode`) decodes the journal into the channel to the pipeline.
//!
//! So the reader waits on nothing but its own disk, and a pipeline that
//! falls behind (a burst, a CPU-starved host) costs journal bytes, not
//! events: what the old in-memory channel dropped when full (52% of a
//! 200,000-event burst) now waits on disk. Each connection is a run of
//! records: `CONNECT`, `BYTES` (one per read), `END`; a gap marker after a
//! reconnect is a `MARKER` record, so it keeps its place in bus order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::reconnect::Outlet;
use super::stream::StreamEnd;
use super::{ReaderOptions, ReceiverGone, SourceStats};
use crate::journal::JournalWriter;
use crate::shutdown::Shutdown;

/// Record kinds (the journal leaves them to its user).
pub(crate) const CONNECT: u8 = 1;
pub(crate) const BYTES: u8 = 2;
pub(crate) const END: u8 = 3;
/// `tag \0 json`.
pub(crate) const MARKER: u8 = 4;

/// Read buffer: one read is at most this much, and one record.
const READ_CHUNK: usize = 256 * 1024;

/// What the decoder tells the reader: whether the stream, as far as it was
/// written, ends inside a frame (for the stall timeout).
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub mid_frame: AtomicBool,
}

/// The reader's end: appends to the journal.
pub(crate) struct JournalOutlet {
    pub writer: JournalWriter,
    pub stats: Arc<SourceStats>,
    pub source: Arc<str>,
    pub tail: Arc<Tail>,
}

impl JournalOutlet {
    /// Appends; a refusal at the bound is counted by the journal itself.
    fn append(&mut self, kind: u8, payload: &[u8]) {
        if let Err(e) = self.writer.append(kind, SystemTime::now(), payload) {
            tracing::debug!(error = %e, "journal append refused");
        }
    }
}

impl Outlet for JournalOutlet {
    fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }

    fn source(&self) -> &Arc<str> {
        &self.source
    }

    async fn marker(&mut self, tag: &str, data: Value) -> Result<(), ReceiverGone> {
        let mut payload = Vec::from(tag.as_bytes());
        payload.push(0);
        payload.extend_from_slice(data.to_string().as_bytes());
        self.append(MARKER, &payload);
        Ok(())
    }

    async fn connection<S: AsyncRead + Unpin>(
        &mut self,
        mut stream: S,
        opts: &ReaderOptions,
        shutdown: &mut Shutdown,
    ) -> StreamEnd {
        let source = self.source.clone();
        self.append(CONNECT, source.as_bytes());
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let end = loop {
            buf.clear();
            let read = tokio::select! {
                biased;
                _ = shutdown.wait() => break StreamEnd::Shutdown,
                r = stream.read_buf(&mut buf) => r,
                _ = tokio::time::sleep(opts.stall_timeout) => {
                    // A quiet bus between frames is never timed out.
                    if !self.tail.mid_frame.load(Ordering::Relaxed) {
                        continue;
                    }
                    break StreamEnd::Error(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "the peer sent no byte for {} in the middle of a frame",
                            humantime::format_duration(opts.stall_timeout),
                        ),
                    ));
                }
            };
            match read {
                Ok(0) => break StreamEnd::Eof,
                Ok(n) => {
                    self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    self.append(BYTES, &buf);
                }
                Err(e) => break StreamEnd::Error(e),
            }
        };
        self.append(END, &[]);
        end
    }
}
