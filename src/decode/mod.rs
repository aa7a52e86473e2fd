//! Bytes to [`Event`]s, as pure functions: no I/O and no clock in here.
//!
//! [`StreamDecoder`] turns the byte stream of one unix/TCP bus connection into
//! events; [`decode_message`] turns one ZeroMQ message (2014-2015 masters)
//! into an event. Anything malformed comes out as a [`Decoded::Malformed`]
//! item with its stream offset, never as a panic or a stalled stream; the
//! sources count and log those.

pub mod body;
pub mod framing;
pub mod json;
pub mod msgpack;

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::event::{Event, JsonText, RawBody};
pub use body::{BodyError, BodyStyle};
pub use framing::{Frame, FrameDecoder, FrameError, Framing, DEFAULT_MAX_FRAME};

/// What a decoder produced from the bytes it was given.
#[derive(Debug)]
pub enum Decoded {
    Event(Event),
    /// `len` bytes at stream offset `offset` could not be decoded and were skipped.
    Malformed {
        offset: u64,
        len: usize,
        error: DecodeError,
    },
}

/// Why bytes were skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    #[error("body: {0}")]
    Body(#[from] BodyError),
}

/// Decodes one connection's byte stream (bare maps or length-prefixed).
#[derive(Debug)]
pub struct StreamDecoder {
    frames: FrameDecoder,
    source: Arc<str>,
}

impl StreamDecoder {
    pub fn new(source: Arc<str>, max_frame: usize) -> Self {
        StreamDecoder {
            frames: FrameDecoder::new(max_frame),
            source,
        }
    }

    /// The framing seen on this connection so far.
    pub fn framing(&self) -> Option<Framing> {
        self.frames.framing()
    }

    /// Takes the next item off the front of `buf`; `None` means "need more bytes".
    /// `now` becomes the receive time of an event.
    pub fn decode(&mut self, buf: &mut BytesMut, now: SystemTime) -> Option<Decoded> {
        let frame = self
            .frames
            .decode_with(buf, |b| body::decode_body(b, BodyStyle::Bus))?;
        Some(self.item(frame, now))
    }

    /// Call at end of stream, until it returns `None`: reports a trailing
    /// partial frame and decodes any whole frame after it.
    pub fn finish(&mut self, buf: &mut BytesMut, now: SystemTime) -> Option<Decoded> {
        let frame = self
            .frames
            .finish_with(buf, |b| body::decode_body(b, BodyStyle::Bus))?;
        Some(self.item(frame, now))
    }

    fn item(&self, frame: Frame<body::DecodedBody>, now: SystemTime) -> Decoded {
        match frame {
            Frame::Body { body, value, .. } => {
                Decoded::Event(event(body, value, self.source.clone(), now))
            }
            Frame::Malformed {
                offset,
                len,
                reason,
            } => Decoded::Malformed {
                offset,
                len,
                error: reason.into(),
            },
        }
    }
}

fn event(body: Bytes, d: body::DecodedBody, source: Arc<str>, now: SystemTime) -> Event {
    Event::new(
        d.tag,
        JsonText::trusted(d.data),
        now,
        source,
        Some(RawBody {
            body,
            data_offset: d.data_offset,
        }),
    )
}

/// Decodes one event body (one ZeroMQ message, or one frame's body).
pub fn decode_message(
    body: Bytes,
    style: BodyStyle,
    source: Arc<str>,
    now: SystemTime,
) -> Result<Event, BodyError> {
    let d = body::decode_body(&body, style)?;
    Ok(event(body, d, source, now))
}

/// Decodes a whole captured stream at once: the events and the malformed runs.
/// Used by the `capture:` source's tests and the benchmarks.
pub fn decode_all(bytes: &[u8], source: Arc<str>) -> Vec<Decoded> {
    let mut dec = StreamDecoder::new(source, DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::from(bytes);
    let now = SystemTime::UNIX_EPOCH;
    let mut out = Vec::new();
    while let Some(item) = dec.decode(&mut buf, now) {
        out.push(item);
    }
    while let Some(item) = dec.finish(&mut buf, now) {
        out.push(item);
    }
    out
}
