// Over 500 lines only with its tests: the framing decoder itself is about 370 lines.
//! Cutting the bus byte stream into frames, with no I/O.
//!
//! The unix and TCP bus carry msgpack maps `{"head": {}, "body": <bin|str>}`
//! back to back (2016.3 .. 3006.25, 3007, 3008), or each behind a 4-byte
//! big-endian length (3006.26 .. 3006.30). A connection starts on a frame
//! boundary, so the first byte tells which: `0x00` is a length prefix, a map
//! marker (`0x80..=0x8f`, `0xde`, `0xdf`) a bare map.
//!
//! **Malformed input.** The body of a frame (`tag\n\n<msgpack data>`) is
//! written by whoever fired the event, and any minion can fire one, with bin
//! values that hold complete fake frames. So a frame whose extent is known is
//! skipped *whole* when it is refused, for whatever reason (its data nests too
//! deep, it is larger than `max_frame`, its body does not decode, the byte
//! after it starts no frame): its extent is the end of its envelope, or at
//! least the end of its body as the envelope's bin header gives it, and the
//! bytes of a refused frame larger than the buffer are dropped as they arrive
//! rather than buffered. Only bytes that do not parse as an envelope at all
//! (up to its body's bin header) are *resynchronised*: the decoder drops bytes
//! until the next place that looks like a frame start, `0x82 0xa4 "head"` or
//! `0x82 0xa4 "body"` (the two-key map Salt always packs; Python 2 dicts may put
//! `body` first), preceded by a plausible length on a length-prefixed stream.
//! An envelope with any other key or number of keys is not an envelope, so
//! garbage that opens a map around the next real `head` is counted, not merged.
//! So scanning never starts inside a body the decoder has parsed, and a fake
//! frame inside an event's data is never emitted (issue 12, finding 1). The
//! price: a corrupt length (a flipped bit, which the unix socket never makes)
//! costs the frames it covers, not just its own.
//! Each skipped run is reported once, as one [`Frame::Malformed`] with its
//! stream offset and length. A length that claims more than `max_frame` bytes
//! is malformed; a smaller corrupt length makes the decoder wait for that many
//! bytes before it can tell, which is why `max_frame` should stay near the
//! master's `max_event_size`.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;

use super::body::BodyError;
use super::msgpack::{Cursor, Head, MsgpackError};

/// Default bound on one frame: 16 times Salt's default `max_event_size`.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// How frames are delimited on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    BareMap,
    LengthPrefixed,
}

/// One result of [`FrameDecoder::decode_with`]: `T` is what the caller's
/// check made of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<T = ()> {
    /// A frame's body (`tag\n\n<msgpack>`), where the frame started, and the
    /// checked value.
    Body { offset: u64, body: Bytes, value: T },
    /// `len` bytes from `offset` were skipped.
    Malformed {
        offset: u64,
        len: usize,
        reason: FrameError,
    },
}

/// Why bytes were skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("byte 0x{0:02x} starts neither a bare map nor a length prefix")]
    UnknownStart(u8),
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("not a {{head, body}} envelope: {0}")]
    BadEnvelope(&'static str),
    #[error("envelope: {0}")]
    Msgpack(MsgpackError),
    #[error("length prefix says {prefix} bytes, the envelope used {used}")]
    LengthMismatch { prefix: usize, used: usize },
    #[error("frame is followed by byte 0x{0:02x}, which starts no frame")]
    NoFrameAfter(u8),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("body: {0}")]
    Body(#[from] BodyError),
}

#[derive(Debug)]
struct Skip {
    offset: u64,
    len: usize,
    reason: FrameError,
    /// Bytes of a refused frame still to drop before scanning resumes.
    discard: u64,
}

/// How far the envelope at the front of a buffer parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Through its body's bin header: the frame covers this many bytes.
    Frame(usize),
    /// The bytes end before the body's bin header.
    NeedMore,
    /// Not an envelope: scanning may resume at the next byte.
    NotAFrame,
}

/// Stateful frame cutter for one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    framing: Option<Framing>,
    /// Stream offset of the first byte still in the caller's buffer.
    offset: u64,
    max_frame: usize,
    skipping: Option<Skip>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            framing: None,
            offset: 0,
            max_frame,
            skipping: None,
        }
    }

    /// The framing detected so far, if any byte has been seen.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Takes the next frame off the front of `buf`, or returns `None` when
    /// `buf` holds no complete frame yet. Call again until it returns `None`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        self.decode_with(buf, |_| Ok(()))
    }

    /// Like [`decode`](Self::decode), but a frame is taken only if `check`
    /// accepts its body. A rejected frame is skipped whole (see the module
    /// documentation): its body is the sender's, and may hold fake frames.
    pub fn decode_with<T>(
        &mut self,
        buf: &mut BytesMut,
        mut check: impl FnMut(&[u8]) -> Result<T, BodyError>,
    ) -> Option<Frame<T>> {
        loop {
            if self.skipping.is_some() {
                return self.continue_skip(buf);
            }
            let first = *buf.first()?;
            let framing = match self.framing {
                Some(f) => f,
                None => match first {
                    0x00 => *self.framing.insert(Framing::LengthPrefixed),
                    0x80..=0x8f | 0xde | 0xdf => *self.framing.insert(Framing::BareMap),
                    b => {
                        self.start_skip(buf, 1, FrameError::UnknownStart(b));
                        continue;
                    }
                },
            };
            let found = match framing {
                Framing::LengthPrefixed => self.prefixed(buf)?,
                Framing::BareMap => match envelope(buf, self.max_frame) {
                    Err(FrameError::Msgpack(MsgpackError::Truncated { .. }))
                        if buf.len() <= self.max_frame + 64 =>
                    {
                        return None
                    }
                    other => other,
                },
            };
            let checked = found.and_then(|(body, used)| {
                self.check_boundary(buf, used)?;
                let value = check(&buf[body.clone()])?;
                Ok((body, used, value))
            });
            match checked {
                Ok((body, used, value)) => return Some(self.take_body(buf, used, body, value)),
                // A frame refused for its size may not have shown enough
                // of its envelope yet to tell its extent (a few dozen bytes).
                Err(reason) => match self.extent(buf, false) {
                    Some(extent) => self.start_skip(buf, extent, reason),
                    None => return None,
                },
            }
        }
    }

    /// How many bytes from the front of `buf` belong to the frame there, by
    /// its envelope (at least 1); `None` when more bytes are needed to tell
    /// (never when `at_end`).
    fn extent(&self, buf: &[u8], at_end: bool) -> Option<usize> {
        let skip = match self.framing {
            Some(Framing::LengthPrefixed) => 4,
            _ => 0,
        };
        let reach = match buf.get(skip..) {
            Some(rest) if buf.len() >= skip => reach(rest),
            _ => Reach::NeedMore,
        };
        match reach {
            Reach::Frame(n) => Some((skip + n).max(1)),
            Reach::NotAFrame => Some(1),
            // Cut before its body: no sender's bytes in it, scan them.
            Reach::NeedMore if at_end => Some(1),
            // Waiting is bounded: an envelope's header is a few dozen bytes.
            Reach::NeedMore if buf.len() > self.max_frame.saturating_add(64) => Some(1),
            Reach::NeedMore => None,
        }
    }

    /// Call at end of stream, repeatedly until it returns `None`: nothing more
    /// will arrive, so a partial frame is malformed; the decoder resynchronises
    /// past it and still yields any whole frames behind it.
    pub fn finish_with<T>(
        &mut self,
        buf: &mut BytesMut,
        mut check: impl FnMut(&[u8]) -> Result<T, BodyError>,
    ) -> Option<Frame<T>> {
        if self.skipping.is_none() {
            if let Some(frame) = self.decode_with(buf, &mut check) {
                return Some(frame);
            }
            if buf.is_empty() && self.skipping.is_none() {
                return None;
            }
            if self.skipping.is_none() {
                // A partial frame: everything its envelope claims is its own.
                let extent = self.extent(buf, true).unwrap_or(buf.len());
                self.start_skip(buf, extent, FrameError::Truncated);
            }
        }
        // The rest of a refused frame will never come.
        let discard = self
            .skipping
            .as_ref()
            .map_or(0, |s| s.discard.min(buf.len() as u64) as usize);
        self.advance(buf, discard);
        let n = if self.skipping.as_ref().is_some_and(|s| s.discard > 0) {
            buf.len()
        } else {
            next_frame_start(buf, self.framing, self.max_frame).unwrap_or(buf.len())
        };
        self.advance(buf, n);
        let mut s = self.skipping.take()?;
        s.len += discard + n;
        Some(Frame::Malformed {
            offset: s.offset,
            len: s.len,
            reason: s.reason,
        })
    }

    /// [`finish_with`](Self::finish_with) without a body check.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        self.finish_with(buf, |_| Ok(()))
    }

    /// A corrupt length can make a frame end in the middle of the next one.
    /// When the byte after a frame is already here and starts no frame, and a
    /// frame start lies inside this frame, the frame is rejected; garbage
    /// after a sound frame costs only the garbage.
    fn check_boundary(&self, buf: &[u8], used: usize) -> Result<(), FrameError> {
        let next = buf.get(used).copied();
        let plausible = match (next, self.framing) {
            (None, _) | (_, None) => true,
            (Some(b), Some(Framing::BareMap)) => matches!(b, 0x80..=0x8f | 0xde | 0xdf),
            (Some(b), Some(Framing::LengthPrefixed)) => b == 0 || self.max_frame >= 1 << 24,
        };
        match next {
            Some(b)
                if !plausible
                    && next_frame_start(
                        &buf[1..(used + PATTERN_LEN + 4).min(buf.len())],
                        self.framing,
                        self.max_frame,
                    )
                    .is_some_and(|i| i + 1 < used) =>
            {
                Err(FrameError::NoFrameAfter(b))
            }
            _ => Ok(()),
        }
    }

    /// A length-prefixed frame: `None` until it is all in `buf`.
    #[allow(clippy::type_complexity)]
    fn prefixed(&self, buf: &[u8]) -> Option<Result<(Range<usize>, usize), FrameError>> {
        let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max_frame {
            return Some(Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            }));
        }
        let frame = buf.get(4..4 + len)?;
        Some(match envelope(frame, self.max_frame) {
            Ok((body, used)) if used == len => Ok(((body.start + 4)..(body.end + 4), 4 + len)),
            Ok((_, used)) => Err(FrameError::LengthMismatch { prefix: len, used }),
            Err(e) => Err(e),
        })
    }

    fn take_body<T>(
        &mut self,
        buf: &mut BytesMut,
        used: usize,
        body: Range<usize>,
        value: T,
    ) -> Frame<T> {
        let offset = self.offset;
        self.offset += used as u64;
        let frame = buf.split_to(used).freeze();
        Frame::Body {
            offset,
            body: frame.slice(body),
            value,
        }
    }

    fn advance(&mut self, buf: &mut BytesMut, n: usize) {
        buf.advance(n);
        self.offset += n as u64;
    }

    /// Skips the first `extent` bytes of the stream, those not yet read
    /// included.
    fn start_skip(&mut self, buf: &mut BytesMut, extent: usize, reason: FrameError) {
        // The framing is detected again at the next frame start: a stream
        // that began with garbage may have been read with the wrong one.
        self.framing = None;
        let n = extent.clamp(1, buf.len().max(1)).min(buf.len());
        self.skipping = Some(Skip {
            offset: self.offset,
            len: n,
            reason,
            discard: (extent.max(1) - n) as u64,
        });
        self.advance(buf, n);
    }

    fn continue_skip<T>(&mut self, buf: &mut BytesMut) -> Option<Frame<T>> {
        let discard = self.skipping.as_ref().map_or(0, |s| s.discard);
        if discard > 0 {
            let n = discard.min(buf.len() as u64) as usize;
            self.advance(buf, n);
            let skip = self.skipping.as_mut()?;
            skip.len += n;
            skip.discard -= n as u64;
            if skip.discard > 0 {
                return None;
            }
        }
        let found = next_frame_start(buf, self.framing, self.max_frame);
        let n = found.unwrap_or_else(|| buf.len().saturating_sub(PATTERN_LEN + 4));
        self.advance(buf, n);
        let skip = self.skipping.as_mut()?;
        skip.len += n;
        found?;
        let s = self.skipping.take()?;
        Some(Frame::Malformed {
            offset: s.offset,
            len: s.len,
            reason: s.reason,
        })
    }
}

const PATTERN_LEN: usize = 6;

/// Salt packs every envelope as exactly `{"head": .., "body": ..}`
/// (`salt/transport/frame.py`, `frame_msg`). Any other key is refused: bytes
/// in front of a real frame can otherwise open a map whose first key swallows
/// that frame's `head`, and make garbage plus a real body pass as one frame.
const ENVELOPE_KEYS: usize = 2;

/// Index of the next plausible frame start in `buf`, if any.
fn next_frame_start(buf: &[u8], framing: Option<Framing>, max_frame: usize) -> Option<usize> {
    let finder = memmem::Finder::new(b"\x82\xa4");
    let mut from = 0;
    while let Some(i) = finder.find(&buf[from..]).map(|i| i + from) {
        from = i + 1;
        let name = buf.get(i + 2..i + PATTERN_LEN)?;
        if name != b"head" && name != b"body" {
            continue;
        }
        // A length prefix is believed when it equals the envelope's size
        // (or, while the envelope is still incomplete, when it is plausible).
        let prefixed_at = i.checked_sub(4).filter(|&p| {
            let len = u32::from_be_bytes([buf[p], buf[p + 1], buf[p + 2], buf[p + 3]]) as usize;
            match envelope(&buf[i..], max_frame) {
                Ok((_, used)) => used == len,
                Err(FrameError::Msgpack(MsgpackError::Truncated { .. })) => {
                    buf[p] == 0 && len <= max_frame
                }
                Err(_) => false,
            }
        });
        match framing {
            Some(Framing::BareMap) => return Some(i),
            Some(Framing::LengthPrefixed) => {
                if let Some(p) = prefixed_at {
                    return Some(p);
                }
            }
            None => return Some(prefixed_at.unwrap_or(i)),
        }
    }
    None
}

/// How much of `bytes` the envelope at its start covers: through its body
/// when the body's bin header parsed (and through its other keys when they
/// parse too), whether or not the body's bytes are all here.
fn reach(bytes: &[u8]) -> Reach {
    let mut c = Cursor::new(bytes);
    let fail = |e: MsgpackError| match e {
        MsgpackError::Truncated { .. } => Reach::NeedMore,
        _ => Reach::NotAFrame,
    };
    match c.head() {
        Ok(Head::Map(ENVELOPE_KEYS)) => {}
        Ok(_) => return Reach::NotAFrame,
        Err(e) => return fail(e),
    };
    let mut body_end = None;
    for _ in 0..ENVELOPE_KEYS {
        let step = (|| -> Result<Option<Reach>, MsgpackError> {
            let Head::Str(k) = c.head()? else {
                return Ok(Some(Reach::NotAFrame));
            };
            match c.take(k)? {
                b"head" => {
                    c.skip_value()?;
                    return Ok(None);
                }
                b"body" => {}
                _ => return Ok(Some(Reach::NotAFrame)),
            }
            let (Head::Bin(len) | Head::Str(len)) = c.head()? else {
                return Ok(Some(Reach::NotAFrame));
            };
            body_end = Some(c.pos().saturating_add(len));
            c.take(len)?;
            Ok(None)
        })();
        match (step, body_end) {
            (Ok(None), _) => {}
            (_, Some(end)) => return Reach::Frame(end),
            (Ok(Some(r)), None) => return r,
            (Err(e), None) => return fail(e),
        }
    }
    match body_end {
        Some(end) => Reach::Frame(end.max(c.pos())),
        None => Reach::NotAFrame,
    }
}

/// Parses a `{head, body}` envelope at the start of `bytes`; returns the range
/// of the body payload and the bytes the whole map used.
fn envelope(bytes: &[u8], max_frame: usize) -> Result<(Range<usize>, usize), FrameError> {
    let mut c = Cursor::new(bytes);
    match c.head().map_err(FrameError::Msgpack)? {
        Head::Map(ENVELOPE_KEYS) => {}
        _ => return Err(FrameError::BadEnvelope("not a two-key map")),
    };
    let mut body = None;
    for _ in 0..ENVELOPE_KEYS {
        let key = match c.head().map_err(FrameError::Msgpack)? {
            Head::Str(k) => c.take(k).map_err(FrameError::Msgpack)?,
            _ => return Err(FrameError::BadEnvelope("key is not a string")),
        };
        if key == b"body" {
            let len = match c.head().map_err(FrameError::Msgpack)? {
                Head::Bin(len) | Head::Str(len) => len,
                _ => return Err(FrameError::BadEnvelope("body is not bytes")),
            };
            if len > max_frame {
                return Err(FrameError::TooLarge {
                    len,
                    max: max_frame,
                });
            }
            let start = c.pos();
            c.take(len).map_err(FrameError::Msgpack)?;
            body = Some(start..start + len);
        } else if key == b"head" {
            c.skip_value().map_err(FrameError::Msgpack)?;
        } else {
            return Err(FrameError::BadEnvelope("key is neither head nor body"));
        }
    }
    let body = body.ok_or(FrameError::BadEnvelope("no body"))?;
    Ok((body, c.pos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(body: &[u8]) -> Vec<u8> {
        let mut f = vec![
            0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y',
        ];
        f.push(0xc4);
        f.push(body.len() as u8);
        f.extend_from_slice(body);
        f
    }

    fn prefixed(body: &[u8]) -> Vec<u8> {
        let map = bare(body);
        let mut f = (map.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&map);
        f
    }

    fn run(stream: &[u8]) -> Vec<Frame> {
        let mut d = FrameDecoder::default();
        let mut buf = BytesMut::from(stream);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf) {
            out.push(f);
        }
        while let Some(f) = d.finish(&mut buf) {
            out.push(f);
        }
        out
    }

    #[test]
    fn detects_both_framings() {
        for (stream, framing) in [
            ([bare(b"a"), bare(b"b")].concat(), Framing::BareMap),
            (
                [prefixed(b"a"), prefixed(b"b")].concat(),
                Framing::LengthPrefixed,
            ),
        ] {
            let mut d = FrameDecoder::default();
            let mut buf = BytesMut::from(&stream[..]);
            let a = d.decode(&mut buf).unwrap();
            assert!(matches!(a, Frame::Body { offset: 0, ref body, .. } if body == "a"));
            assert!(
                matches!(d.decode(&mut buf), Some(Frame::Body { ref body, .. }) if body == "b")
            );
            assert_eq!(d.framing(), Some(framing));
            assert_eq!(d.decode(&mut buf), None);
        }
    }

    #[test]
    fn garbage_at_the_start_does_not_fix_the_wrong_framing() {
        // Zeros look like a length prefix; the frames behind them are bare maps.
        let stream = [vec![0u8; 5], bare(b"a"), bare(b"b")].concat();
        let frames = run(&stream);
        let bodies: Vec<&Bytes> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Body { body, .. } => Some(body),
                _ => None,
            })
            .collect();
        assert_eq!(bodies, vec!["a", "b"], "{frames:?}");
        // And the other way round: garbage, then length-prefixed frames.
        let stream = [vec![0x91, 0x01], prefixed(b"a"), prefixed(b"b")].concat();
        let frames = run(&stream);
        let bodies: Vec<&Bytes> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::Body { body, .. } => Some(body),
                _ => None,
            })
            .collect();
        assert_eq!(bodies, vec!["a", "b"], "{frames:?}");
    }

    #[test]
    fn garbage_that_opens_a_map_around_the_next_head_is_counted_not_merged() {
        // 0x82 0xac: a two-key map whose first key is a 12-byte string, six
        // garbage bytes and the first six bytes of the real frame (its
        // `0x82 0xa4 "head"`). The real `{}` and body would then complete it;
        // the envelope's keys are checked, so the garbage is a skipped run.
        let garbage = [0x82, 0xac, 0, 0, 0, 0, 0, 0];
        let frames = run(&[&garbage[..], &bare(b"a"), &bare(b"b")].concat());
        assert!(
            matches!(
                frames[0],
                Frame::Malformed {
                    offset: 0,
                    len: 8,
                    ..
                }
            ),
            "{frames:?}"
        );
        assert!(matches!(&frames[1], Frame::Body { body, .. } if body == "a"));
        assert!(matches!(&frames[2], Frame::Body { body, .. } if body == "b"));
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn python2_str_body_and_body_first_maps() {
        // Python 2 masters pack the body as str, and their dicts may put "body" first.
        let mut f = vec![0x82, 0xa4, b'b', b'o', b'd', b'y', 0xd9, 1, b'x'];
        f.extend_from_slice(&[0xa4, b'h', b'e', b'a', b'd', 0x80]);
        let stream = [f.clone(), f].concat();
        let frames = run(&stream);
        assert_eq!(frames.len(), 2);
        assert!(frames
            .iter()
            .all(|fr| matches!(fr, Frame::Body { body, .. } if body == "x")));
    }

    #[test]
    fn garbage_between_frames_is_one_malformed_run() {
        let stream = [bare(b"a"), b"\x01garbage\xff".to_vec(), bare(b"b")].concat();
        let frames = run(&stream);
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert!(matches!(
            frames[1],
            Frame::Malformed {
                offset: 15,
                len: 9,
                ..
            }
        ));
        assert!(matches!(frames[2], Frame::Body { ref body, .. } if body == "b"));
    }

    #[test]
    fn bad_prefixed_frame_is_skipped_up_to_the_next_frame() {
        let mut bad = prefixed(b"x");
        bad[4] = 0x91; // an array, not a map
        let stream = [bad.clone(), prefixed(b"b")].concat();
        let frames = run(&stream);
        assert!(
            matches!(frames[0], Frame::Malformed { offset: 0, len, .. } if len == bad.len()),
            "{frames:?}"
        );
        assert!(matches!(frames[1], Frame::Body { ref body, .. } if body == "b"));
    }

    #[test]
    fn truncated_tail_is_reported_at_finish() {
        let full = bare(b"abc");
        let frames = run(&full[..full.len() - 1]);
        assert_eq!(
            frames,
            vec![Frame::Malformed {
                offset: 0,
                len: full.len() - 1,
                reason: FrameError::Truncated
            }]
        );
    }

    fn run_checked(stream: &[u8], max_frame: usize, chunk: usize) -> Vec<Frame<String>> {
        let check = |b: &[u8]| {
            crate::decode::body::decode_body(b, crate::decode::BodyStyle::Bus).map(|d| d.tag)
        };
        let mut d = FrameDecoder::new(max_frame);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in stream.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(f) = d.decode_with(&mut buf, check) {
                frames.push(f);
            }
        }
        while let Some(f) = d.finish_with(&mut buf, check) {
            frames.push(f);
        }
        frames
    }

    fn tags(frames: &[Frame<String>]) -> Vec<&str> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Body { value, .. } => Some(value.as_str()),
                _ => None,
            })
            .collect()
    }

    /// A minion's event whose data holds `fake` in a bin value and then a
    /// list nested `depth` deep.
    fn hostile(fake: &[u8], depth: usize) -> Vec<u8> {
        let mut body = b"minion/event\n\n\x82\xa1x".to_vec();
        body.push(0xc5);
        body.extend_from_slice(&(fake.len() as u16).to_be_bytes());
        body.extend_from_slice(fake);
        body.extend_from_slice(b"\xa1d");
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0xc0);
        body
    }

    fn bare16(body: &[u8]) -> Vec<u8> {
        let mut f = vec![
            0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y', 0xc5,
        ];
        f.extend_from_slice(&(body.len() as u16).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn prefixed16(body: &[u8]) -> Vec<u8> {
        let map = bare16(body);
        [(map.len() as u32).to_be_bytes().to_vec(), map].concat()
    }

    /// `evil` between two honest frames, fed in pieces of several sizes:
    /// the honest frames come out, and `evil` as one malformed frame of its
    /// whole length whose reason passes `why`; nothing from inside it.
    fn assert_skipped_whole(
        frame: fn(&[u8]) -> Vec<u8>,
        evil: &[u8],
        max_frame: usize,
        why: fn(&FrameError) -> bool,
    ) {
        let stream = [
            frame(b"first\n\n\x80"),
            evil.to_vec(),
            frame(b"next\n\n\x80"),
        ]
        .concat();
        for chunk in [1, 7, 50, stream.len()] {
            let frames = run_checked(&stream, max_frame, chunk);
            assert_eq!(tags(&frames), vec!["first", "next"], "{frames:?}");
            assert!(
                matches!(&frames[1], Frame::Malformed { len, reason, .. } if *len == evil.len() && why(reason)),
                "{frames:?}"
            );
        }
    }

    #[test]
    fn a_refused_frame_is_skipped_whole_and_never_yields_the_frame_inside_it() {
        // Issue 12, finding 1: the fake frame in the bin value was emitted.
        let forged = b"salt/job/1/ret/victim\n\n\x81\xa2id\xa6victim";
        for frame in [bare16 as fn(&[u8]) -> Vec<u8>, prefixed16] {
            let evil = frame(&hostile(&frame(forged), 300));
            assert_skipped_whole(frame, &evil, DEFAULT_MAX_FRAME, |_| true);
        }
    }

    #[test]
    fn an_oversized_frame_is_dropped_as_it_arrives_and_never_yields_the_frame_inside_it() {
        let forged = b"salt/job/1/ret/victim\n\n\x80";
        for frame in [bare16 as fn(&[u8]) -> Vec<u8>, prefixed16] {
            let evil = frame(&hostile(&[frame(forged), vec![b'x'; 400]].concat(), 0));
            let too_large = |r: &FrameError| matches!(r, FrameError::TooLarge { .. });
            assert_skipped_whole(frame, &evil, 256, too_large);
        }
    }

    #[test]
    fn a_frame_cut_by_the_end_of_the_stream_never_yields_the_frame_inside_it() {
        let forged = b"salt/job/1/ret/victim\n\n\x80";
        for frame in [bare16 as fn(&[u8]) -> Vec<u8>, prefixed16] {
            let evil = frame(&hostile(&[frame(forged), vec![b'x'; 40]].concat(), 0));
            let cut = &evil[..evil.len() - 20];
            let frames = run_checked(cut, DEFAULT_MAX_FRAME, cut.len());
            assert_eq!(
                frames,
                vec![Frame::Malformed {
                    offset: 0,
                    len: cut.len(),
                    reason: FrameError::Truncated
                }]
            );
        }
    }

    #[test]
    fn a_cut_frame_costs_what_its_length_covers() {
        // The cut frame's length swallows the start of the next one. Its
        // extent is believed (a body is never scanned for frames), so the
        // next frame goes with it; frames after that are decoded again.
        let cut = bare(b"tag/a\n\n\xa6abcdef");
        let stream = [
            &cut[..cut.len() - 3],
            &bare(b"tag/b\n\n\x80")[..],
            &bare(b"tag/c\n\n\x80")[..],
        ]
        .concat();
        let frames = run_checked(&stream, DEFAULT_MAX_FRAME, stream.len());
        assert_eq!(tags(&frames), vec!["tag/c"], "{frames:?}");
        assert!(matches!(&frames[0], Frame::Malformed { offset: 0, .. }));
    }

    #[test]
    fn an_oversized_length_costs_what_it_claims() {
        let mut big = vec![
            0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y',
        ];
        big.extend_from_slice(&[0xc6, 0x00, 0x00, 0x01, 0x00]);
        big.extend_from_slice(&[b'z'; 256]);
        let stream = [big.clone(), bare(b"b")].concat();
        let frames = {
            let mut d = FrameDecoder::new(64);
            let mut buf = BytesMut::from(&stream[..]);
            let mut out = Vec::new();
            while let Some(f) = d.decode(&mut buf) {
                out.push(f);
            }
            while let Some(f) = d.finish(&mut buf) {
                out.push(f);
            }
            out
        };
        assert!(
            matches!(frames[0], Frame::Malformed { len, reason: FrameError::TooLarge { .. }, .. } if len == big.len()),
            "{frames:?}"
        );
        assert!(matches!(frames[1], Frame::Body { ref body, .. } if body == "b"));
    }
}
