//! Streaming msgpack-to-JSON transcoding, with a lossless JSON form for the
//! msgpack types that JSON lacks.
//!
//! Salt packs event data with msgpack; every later stage and every sink wants
//! JSON. Writing JSON text straight from the msgpack bytes, without building a
//! tree in between, is what makes decoding run at hundreds of MB/s. A
//! hand-written walker (rather than `serde-transcode`) is what lets us choose
//! the JSON form of bin, non-UTF-8 str and ext values: serde's data model has
//! no hook for them. The forms are documented in `docs/event-json.md`:
//!
//! | msgpack                          | JSON                                         |
//! |----------------------------------|----------------------------------------------|
//! | str, valid UTF-8                 | string                                       |
//! | str, not UTF-8 (Python 2 raw)    | `{"__str__": "<base64 of the bytes>"}`       |
//! | bin 8/16/32                      | `{"__bin__": "<base64>"}`                    |
//! | ext 78 (Salt datetime)           | `"2026-11-26T13:56:46.966284"` (ISO 8601)    |
//! | ext 79 (Salt constant)           | `{"__const__": name, "value": value}`        |
//! | any other ext, or a bad 78/79    | `{"__ext__": type, "data": "<base64>"}`      |
//! | int (any width)                  | number, all digits kept                      |
//! | float NaN / +inf / -inf          | `"NaN"` / `"Infinity"` / `"-Infinity"`       |
//! | non-string map key               | its JSON text as a string (`1` -> `"1"`)     |
//!
//! Map key order is kept as on the bus; the string `VALUE_TRIMMED` is an
//! ordinary string and passes through untouched.

use base64::Engine as _;

use super::msgpack::{Cursor, Head, MsgpackError, MAX_DEPTH};
use crate::event::json::write_str;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Transcodes exactly one msgpack value from the start of `input`, appending
/// its JSON text to `out`. Returns how many input bytes the value used.
///
/// On error `out` may hold a partial value; callers discard it.
pub fn transcode(input: &[u8], out: &mut Vec<u8>) -> Result<usize, MsgpackError> {
    let mut c = Cursor::new(input);
    value(&mut c, out, Depth::default())?;
    Ok(c.pos())
}

/// Whether JSON `text` nests at most [`MAX_DEPTH`] arrays and objects deep:
/// the same limit for JSON read from a file (the `jsonl:` source) as for
/// msgpack from the bus. `text` need not be valid JSON; only brackets outside
/// strings are counted.
pub fn within_depth(text: &str) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in text.as_bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Non-string keys nested inside non-string keys, at most (Python allows
/// only tuples as such keys; two levels cover every real case).
const MAX_KEY_NESTING: u8 = 2;

/// How deep the transcoder is: containers, and keys within keys.
#[derive(Debug, Clone, Copy, Default)]
struct Depth {
    nesting: usize,
    keys: u8,
}

impl Depth {
    fn deeper(self) -> Depth {
        Depth {
            nesting: self.nesting + 1,
            ..self
        }
    }
}

fn value(c: &mut Cursor<'_>, out: &mut Vec<u8>, depth: Depth) -> Result<(), MsgpackError> {
    let at = c.pos();
    let head = c.head()?;
    // Every head below but nil, bool, numbers and UTF-8 str may write a JSON
    // container (`[..]`, `{..}`, `{"__bin__": ..}`): one more level.
    let container = matches!(
        head,
        Head::Array(_) | Head::Map(_) | Head::Bin(_) | Head::Ext(..) | Head::Str(_)
    );
    if container && depth.nesting >= MAX_DEPTH {
        let plain_str = match head {
            Head::Str(n) => {
                let mut peek = c.clone();
                peek.take(n)
                    .is_ok_and(|b| simdutf8::basic::from_utf8(b).is_ok())
            }
            _ => false,
        };
        if !plain_str {
            return Err(MsgpackError::TooDeep { at });
        }
    }
    match head {
        Head::Nil => out.extend_from_slice(b"null"),
        Head::Bool(true) => out.extend_from_slice(b"true"),
        Head::Bool(false) => out.extend_from_slice(b"false"),
        Head::Uint(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Head::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Head::F32(f) => float(out, f64::from(f), Some(f)),
        Head::F64(f) => float(out, f, None),
        Head::Str(n) => {
            let bytes = c.take(n)?;
            match simdutf8::basic::from_utf8(bytes) {
                Ok(s) => write_str(out, s),
                Err(_) => tagged_b64(out, "__str__", bytes),
            }
        }
        Head::Bin(n) => tagged_b64(out, "__bin__", c.take(n)?),
        Head::Ext(kind, n) => ext(out, kind, c.take(n)?, depth),
        Head::Array(n) => {
            out.push(b'[');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                value(c, out, depth.deeper())?;
            }
            out.push(b']');
        }
        Head::Map(n) => {
            out.push(b'{');
            for i in 0..n {
                if i > 0 {
                    out.push(b',');
                }
                key(c, out, depth.deeper())?;
                out.push(b':');
                value(c, out, depth.deeper())?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// JSON object keys must be strings: a UTF-8 str key is written as is, any
/// other key as the JSON text of its value, as Python's `json` does for
/// numbers, booleans and None.
fn key(c: &mut Cursor<'_>, out: &mut Vec<u8>, depth: Depth) -> Result<(), MsgpackError> {
    let mut peek = c.clone();
    if let Head::Str(n) = peek.head()? {
        if let Ok(s) = simdutf8::basic::from_utf8(peek.take(n)?) {
            write_str(out, s);
            *c = peek;
            return Ok(());
        }
    }
    // Each level of key-inside-key escapes the quotes of the level below,
    // doubling its size: bound it so that hostile input cannot blow up.
    if depth.keys >= MAX_KEY_NESTING {
        return Err(MsgpackError::TooDeep { at: c.pos() });
    }
    let mut text = Vec::new();
    value(
        c,
        &mut text,
        Depth {
            keys: depth.keys + 1,
            ..depth
        },
    )?;
    // The transcoder only ever writes UTF-8.
    write_str(out, &String::from_utf8_lossy(&text));
    Ok(())
}

fn float(out: &mut Vec<u8>, f: f64, single: Option<f32>) {
    if f.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else if let Some(s) = single {
        // Shortest text that round-trips the f32, not its widened f64 digits.
        out.extend_from_slice(ryu::Buffer::new().format_finite(s).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    }
}

fn ext(out: &mut Vec<u8>, kind: i8, payload: &[u8], depth: Depth) {
    match kind {
        78 => {
            if let Some(iso) = salt_datetime(payload) {
                write_str(out, &iso);
                return;
            }
        }
        79 => {
            let mark = out.len();
            if salt_constant(out, payload, depth).is_ok() {
                return;
            }
            out.truncate(mark);
        }
        _ => {}
    }
    out.extend_from_slice(b"{\"__ext__\":");
    out.extend_from_slice(itoa::Buffer::new().format(kind).as_bytes());
    out.extend_from_slice(b",\"data\":\"");
    let mut s = String::new();
    B64.encode_string(payload, &mut s);
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\"}");
}

/// Salt packs datetimes as ext 78 holding `strftime("%Y%m%dT%H:%M:%S.%f")`.
fn salt_datetime(p: &[u8]) -> Option<String> {
    let digits =
        |r: std::ops::Range<usize>| p.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let ok = p.len() == 24
        && digits(0..8)
        && p[8] == b'T'
        && digits(9..11)
        && p[11] == b':'
        && digits(12..14)
        && p[14] == b':'
        && digits(15..17)
        && p[17] == b'.'
        && digits(18..24);
    if !ok {
        return None;
    }
    let s = std::str::from_utf8(p).ok()?;
    Some(format!("{}-{}-{}{}", &s[0..4], &s[4..6], &s[6..8], &s[8..]))
}

/// Salt packs its `_Constant` objects as ext 79 holding msgpack `[name, value]`.
fn salt_constant(out: &mut Vec<u8>, payload: &[u8], depth: Depth) -> Result<(), MsgpackError> {
    let mut c = Cursor::new(payload);
    if c.head()? != Head::Array(2) {
        return Err(MsgpackError::Truncated { at: 0 });
    }
    out.extend_from_slice(b"{\"__const__\":");
    value(&mut c, out, depth.deeper())?;
    out.extend_from_slice(b",\"value\":");
    value(&mut c, out, depth.deeper())?;
    out.push(b'}');
    if c.remaining() != 0 {
        return Err(MsgpackError::Truncated { at: c.pos() });
    }
    Ok(())
}

fn tagged_b64(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":\"");
    let mut s = String::with_capacity(bytes.len() * 4 / 3 + 4);
    B64.encode_string(bytes, &mut s);
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn to_json(bytes: &[u8]) -> Value {
        let mut out = Vec::new();
        let used = transcode(bytes, &mut out).unwrap();
        assert_eq!(used, bytes.len());
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn scalars_and_containers() {
        // {"a": [1, -1, true, null, 1.5], "b": "x\n\"y"}
        let bytes = [
            0x82, 0xa1, b'a', 0x95, 0x01, 0xff, 0xc3, 0xc0, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
            0xa1, b'b', 0xa4, b'x', b'\n', b'"', b'y',
        ];
        assert_eq!(
            to_json(&bytes),
            json!({"a": [1, -1, true, null, 1.5], "b": "x\n\"y"})
        );
    }

    #[test]
    fn u64_max_keeps_every_digit() {
        let mut bytes = vec![0xcf];
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut out = Vec::new();
        transcode(&bytes, &mut out).unwrap();
        assert_eq!(out, b"18446744073709551615");
    }

    #[test]
    fn bin_and_non_utf8_str_are_tagged_base64() {
        assert_eq!(
            to_json(&[0xc4, 0x02, 0xff, 0x00]),
            json!({"__bin__": "/wA="})
        );
        assert_eq!(to_json(&[0xa2, 0xff, 0xfe]), json!({"__str__": "//4="}));
    }

    #[test]
    fn salt_datetime_ext78_becomes_iso8601() {
        let text = b"20261126T13:56:46.966284";
        let mut bytes = vec![0xc7, text.len() as u8, 78];
        bytes.extend_from_slice(text);
        assert_eq!(to_json(&bytes), json!("2026-11-26T13:56:46.966284"));
    }

    #[test]
    fn salt_constant_ext79_and_unknown_ext() {
        // ext 79 holding ["NOT_SET", nil]
        let payload = [0x92, 0xa7, b'N', b'O', b'T', b'_', b'S', b'E', b'T', 0xc0];
        let mut bytes = vec![0xc7, payload.len() as u8, 79];
        bytes.extend_from_slice(&payload);
        assert_eq!(
            to_json(&bytes),
            json!({"__const__": "NOT_SET", "value": null})
        );
        assert_eq!(
            to_json(&[0xd4, 5, 0xab]),
            json!({"__ext__": 5, "data": "qw=="})
        );
    }

    #[test]
    fn non_string_keys_become_their_json_text() {
        // {1: "a", nil: "b"}
        let bytes = [0x82, 0x01, 0xa1, b'a', 0xc0, 0xa1, b'b'];
        assert_eq!(to_json(&bytes), json!({"1": "a", "null": "b"}));
    }

    #[test]
    fn keys_within_keys_are_bounded() {
        // {[{[{[1]: 1}]: 1}]: 1}: arrays as keys, three levels deep.
        let two = [0x81, 0x91, 0x81, 0x91, 0x01, 0x01, 0x01];
        assert!(transcode(&two, &mut Vec::new()).is_ok());
        let mut deep = vec![0x81, 0x91];
        deep.extend_from_slice(&two);
        deep.push(0x01);
        assert!(matches!(
            transcode(&deep, &mut Vec::new()),
            Err(MsgpackError::TooDeep { .. })
        ));
    }

    #[test]
    fn non_finite_floats_are_strings() {
        let mut bytes = vec![0x93, 0xcb];
        bytes.extend_from_slice(&f64::NAN.to_be_bytes());
        bytes.push(0xcb);
        bytes.extend_from_slice(&f64::INFINITY.to_be_bytes());
        bytes.push(0xca);
        bytes.extend_from_slice(&f32::NEG_INFINITY.to_be_bytes());
        assert_eq!(to_json(&bytes), json!(["NaN", "Infinity", "-Infinity"]));
    }

    #[test]
    fn hostile_nesting_is_an_error_not_a_stack_overflow() {
        let bytes = vec![0x91; 100_000];
        let mut out = Vec::new();
        assert!(matches!(
            transcode(&bytes, &mut out),
            Err(MsgpackError::TooDeep { .. })
        ));
    }
}
