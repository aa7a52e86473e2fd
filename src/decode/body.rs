//! One event body: split the tag from the data and transcode the data.
//!
//! Every Salt release sends an event body as `tag + "\n\n" + msgpack(data)`,
//! except the ZeroMQ-era masters (0.17 .. 2014.7), which right-padded a tag of
//! 20 characters or fewer with `|` and sent no separator. Salt's own reader
//! tells them apart by byte 20: a msgpack map marker (>= 0x80) there means the
//! first 20 bytes are the padded tag. That rule is applied only to ZeroMQ
//! messages ([`BodyStyle::Zmq`]); on the unix/TCP bus a tag with a non-ASCII
//! character at byte 20 would otherwise be cut.

use memchr::memmem;

use super::json::transcode;
use super::msgpack::MsgpackError;

/// Where a body came from, which decides how its tag is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStyle {
    /// Unix socket or TCP bus (2016.3 and later): always `tag\n\n<msgpack>`.
    Bus,
    /// ZeroMQ message (2014-2015 masters): Salt's byte-20 rule first.
    Zmq,
}

/// Salt's `TAGEND`.
const TAGEND: &[u8] = b"\n\n";
/// Length of a padded tag in the 0.17 .. 2014.7 style.
const PADDED_TAG_LEN: usize = 20;

/// A body split and transcoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBody {
    pub tag: String,
    /// The data as JSON text (see `docs/event-json.md`).
    pub data: String,
    /// Where the msgpack data starts inside the body.
    pub data_offset: usize,
}

/// Why a body could not be decoded. Offsets are within the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("no \"\\n\\n\" between tag and data")]
    NoSeparator,
    #[error("event data: {0}")]
    Data(MsgpackError),
    #[error("{extra} stray bytes after the event data")]
    TrailingBytes { extra: usize },
}

/// Splits `body` into tag and data and transcodes the data to JSON.
pub fn decode_body(body: &[u8], style: BodyStyle) -> Result<DecodedBody, BodyError> {
    let (tag, data_offset) = split(body, style)?;
    let data = &body[data_offset..];
    let mut json = Vec::with_capacity(data.len() + data.len() / 4 + 16);
    let used = transcode(data, &mut json).map_err(|e| BodyError::Data(shift(e, data_offset)))?;
    if used != data.len() {
        return Err(BodyError::TrailingBytes {
            extra: data.len() - used,
        });
    }
    debug_assert!(std::str::from_utf8(&json).is_ok());
    // SAFETY: the transcoder writes only UTF-8: ASCII punctuation, digits and
    // base64, and string contents it has validated (see `json::write_str`).
    // Validating again cost 8% of decode time.
    let data = unsafe { String::from_utf8_unchecked(json) };
    Ok(DecodedBody {
        tag: tag_text(tag),
        data,
        data_offset,
    })
}

/// Returns the tag bytes and where the data starts.
pub fn split(body: &[u8], style: BodyStyle) -> Result<(&[u8], usize), BodyError> {
    if style == BodyStyle::Zmq && body.len() > PADDED_TAG_LEN && body[PADDED_TAG_LEN] >= 0x80 {
        let tag = &body[..PADDED_TAG_LEN];
        let end = tag.iter().rposition(|&b| b != b'|').map_or(0, |i| i + 1);
        return Ok((&tag[..end], PADDED_TAG_LEN));
    }
    match memmem::find(body, TAGEND) {
        Some(i) => Ok((&body[..i], i + TAGEND.len())),
        None => Err(BodyError::NoSeparator),
    }
}

/// Tags are UTF-8 in every release; a stray non-UTF-8 byte (Python 2) is
/// replaced with U+FFFD here, while the event's raw bytes keep the original.
fn tag_text(tag: &[u8]) -> String {
    match simdutf8::basic::from_utf8(tag) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(tag).into_owned(),
    }
}

fn shift(e: MsgpackError, by: usize) -> MsgpackError {
    match e {
        MsgpackError::Truncated { at } => MsgpackError::Truncated { at: at + by },
        MsgpackError::InvalidMarker { at, byte } => {
            MsgpackError::InvalidMarker { at: at + by, byte }
        }
        MsgpackError::TooDeep { at } => MsgpackError::TooDeep { at: at + by },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_separator_only() {
        // data is the msgpack string "a\n\nb"
        let body = b"my/tag\n\n\xa4a\n\nb";
        let d = decode_body(body, BodyStyle::Bus).unwrap();
        assert_eq!(d.tag, "my/tag");
        assert_eq!(d.data, r#""a\n\nb""#);
        assert_eq!(d.data_offset, 8);
    }

    #[test]
    fn padded_zmq_tag_uses_the_byte_20_rule() {
        let mut body = b"new_job|||||||||||||".to_vec();
        body.extend_from_slice(&[0x81, 0xa1, b'x', 0x01]);
        let d = decode_body(&body, BodyStyle::Zmq).unwrap();
        assert_eq!(d.tag, "new_job");
        assert_eq!(d.data, r#"{"x":1}"#);
        // On the unix bus the same bytes have no separator: an error, not a guess.
        assert_eq!(
            decode_body(&body, BodyStyle::Bus),
            Err(BodyError::NoSeparator)
        );
    }

    #[test]
    fn a_20_digit_jid_has_neither_padding_nor_separator() {
        let mut body = b"20150227111546144547".to_vec();
        body.extend_from_slice(&[0x80]);
        let d = decode_body(&body, BodyStyle::Zmq).unwrap();
        assert_eq!(d.tag, "20150227111546144547");
        assert_eq!(d.data, "{}");
    }

    #[test]
    fn trailing_bytes_and_bad_data_are_errors() {
        assert_eq!(
            decode_body(b"t\n\n\x80\x80", BodyStyle::Bus),
            Err(BodyError::TrailingBytes { extra: 1 })
        );
        assert!(matches!(
            decode_body(b"t\n\n\x82\xa1", BodyStyle::Bus),
            Err(BodyError::Data(MsgpackError::Truncated { .. }))
        ));
    }
}
