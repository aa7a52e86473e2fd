//! A bounds-checked cursor over msgpack bytes.
//!
//! Every read checks the remaining length first and reports
//! [`MsgpackError::Truncated`] instead of panicking, so the framing layer can
//! tell "wait for more bytes" from "this frame is garbage". Nesting is capped
//! at [`MAX_DEPTH`] so that a hostile stream of `0x91 0x91 0x91 ...` cannot
//! overflow the stack. Markers are classified by `rmp::Marker`.

use rmp::Marker;

/// Deepest nesting of JSON arrays and objects that event data may have, as
/// decoded (msgpack arrays and maps, and the objects that stand for bin, ext
/// and non-UTF-8 str values: `[[1]]` is 2 deep). The one depth limit of the
/// program (issue 12, finding 6): it is applied when decoding, every source
/// included, and it is well below serde_json's own limit (127 nested
/// containers), so that what was decoded can also be parsed by routes and
/// templates, and wrapped in a spool record or a dead letter (a few levels
/// more) and read back. Salt data is rarely deeper than 20.
pub const MAX_DEPTH: usize = 96;

/// Why a msgpack value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    /// The bytes end before the value does; `at` is where the missing part starts.
    #[error("truncated msgpack value at byte {at}")]
    Truncated { at: usize },
    /// Byte 0xc1 is never used by msgpack.
    #[error("invalid msgpack marker 0x{byte:02x} at byte {at}")]
    InvalidMarker { at: usize, byte: u8 },
    /// Arrays or maps nested deeper than [`MAX_DEPTH`].
    #[error("msgpack nesting deeper than {MAX_DEPTH} at byte {at}")]
    TooDeep { at: usize },
}

/// A read position over a byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// The length-carrying part of a marker, decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    Nil,
    Bool(bool),
    Uint(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    /// msgpack str (Python 2 "raw"); the payload follows.
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    /// Extension type and payload length.
    Ext(i8, usize),
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn truncated(&self) -> MsgpackError {
        MsgpackError::Truncated { at: self.pos }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        if self.remaining() < n {
            return Err(self.truncated());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, MsgpackError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, MsgpackError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, MsgpackError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads one marker and the length or scalar that follows it.
    pub fn head(&mut self) -> Result<Head, MsgpackError> {
        let at = self.pos;
        let byte = self.u8()?;
        let len32 = |c: &mut Self| c.u32().map(|n| n as usize);
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(n) => Head::Uint(u64::from(n)),
            Marker::FixNeg(n) => Head::Int(i64::from(n)),
            Marker::Null => Head::Nil,
            Marker::True => Head::Bool(true),
            Marker::False => Head::Bool(false),
            Marker::U8 => Head::Uint(u64::from(self.u8()?)),
            Marker::U16 => Head::Uint(u64::from(self.u16()?)),
            Marker::U32 => Head::Uint(u64::from(self.u32()?)),
            Marker::U64 => Head::Uint(self.u64()?),
            Marker::I8 => Head::Int(i64::from(self.u8()? as i8)),
            Marker::I16 => Head::Int(i64::from(self.u16()? as i16)),
            Marker::I32 => Head::Int(i64::from(self.u32()? as i32)),
            Marker::I64 => Head::Int(self.u64()? as i64),
            Marker::F32 => Head::F32(f32::from_bits(self.u32()?)),
            Marker::F64 => Head::F64(f64::from_bits(self.u64()?)),
            Marker::FixStr(n) => Head::Str(usize::from(n)),
            Marker::Str8 => Head::Str(usize::from(self.u8()?)),
            Marker::Str16 => Head::Str(usize::from(self.u16()?)),
            Marker::Str32 => Head::Str(len32(self)?),
            Marker::Bin8 => Head::Bin(usize::from(self.u8()?)),
            Marker::Bin16 => Head::Bin(usize::from(self.u16()?)),
            Marker::Bin32 => Head::Bin(len32(self)?),
            Marker::FixArray(n) => Head::Array(usize::from(n)),
            Marker::Array16 => Head::Array(usize::from(self.u16()?)),
            Marker::Array32 => Head::Array(len32(self)?),
            Marker::FixMap(n) => Head::Map(usize::from(n)),
            Marker::Map16 => Head::Map(usize::from(self.u16()?)),
            Marker::Map32 => Head::Map(len32(self)?),
            Marker::FixExt1 => Head::Ext(self.u8()? as i8, 1),
            Marker::FixExt2 => Head::Ext(self.u8()? as i8, 2),
            Marker::FixExt4 => Head::Ext(self.u8()? as i8, 4),
            Marker::FixExt8 => Head::Ext(self.u8()? as i8, 8),
            Marker::FixExt16 => Head::Ext(self.u8()? as i8, 16),
            Marker::Ext8 => {
                let n = usize::from(self.u8()?);
                Head::Ext(self.u8()? as i8, n)
            }
            Marker::Ext16 => {
                let n = usize::from(self.u16()?);
                Head::Ext(self.u8()? as i8, n)
            }
            Marker::Ext32 => {
                let n = len32(self)?;
                Head::Ext(self.u8()? as i8, n)
            }
            Marker::Reserved => return Err(MsgpackError::InvalidMarker { at, byte }),
        })
    }

    /// Skips one whole value, however nested, without allocating.
    pub fn skip_value(&mut self) -> Result<(), MsgpackError> {
        // An explicit count of values still to skip replaces recursion:
        // no depth limit is needed and hostile nesting costs no stack.
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.head()? {
                Head::Str(n) | Head::Bin(n) | Head::Ext(_, n) => {
                    self.take(n)?;
                }
                Head::Array(n) => pending += n as u64,
                Head::Map(n) => pending += 2 * n as u64,
                _ => {}
            }
            // A claimed element count larger than the bytes left is truncation.
            if pending > self.remaining() as u64 {
                return Err(MsgpackError::Truncated { at: self.buf.len() });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_value_measures_nested_values() {
        // {"a": [1, "xy", {}]} followed by a trailing byte
        let bytes = [0x81, 0xa1, b'a', 0x93, 0x01, 0xa2, b'x', b'y', 0x80, 0xc0];
        let mut c = Cursor::new(&bytes);
        c.skip_value().unwrap();
        assert_eq!(c.pos(), 9);
    }

    #[test]
    fn skip_value_reports_truncation_not_panic() {
        let bytes = [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01];
        let mut c = Cursor::new(&bytes);
        assert!(matches!(
            c.skip_value(),
            Err(MsgpackError::Truncated { .. })
        ));
    }

    #[test]
    fn reserved_marker_is_an_error() {
        let mut c = Cursor::new(&[0xc1]);
        assert_eq!(
            c.head(),
            Err(MsgpackError::InvalidMarker { at: 0, byte: 0xc1 })
        );
    }
}
