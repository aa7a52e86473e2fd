//! One journal record on disk: `[len u32][crc32 u32][kind u8][at u64][payload]`,
//! little endian; `len` counts kind, time and payload, the CRC covers them.
//! `at` is when the bytes were read, in microseconds since the epoch.
//! Kind 0 is the journal's own: a record saying how much the bound refused
//! just before it ([`LOST`]); the other kinds belong to the writer's user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length and CRC.
pub const HEADER: usize = 8;
/// Kind and time, in front of every payload.
pub const META: usize = 9;
/// A record longer than this is damage, not data (a read is at most a few MiB).
pub const MAX_RECORD: usize = 64 << 20;
/// The journal's own kind: `[bytes u64][reads u64]` refused at the bound.
pub const LOST: u8 = 0;

pub fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub fn time(micros: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros)
}

/// Appends one record to `out`; returns its length.
pub fn encode(out: &mut Vec<u8>, kind: u8, at: SystemTime, payload: &[u8]) -> usize {
    let start = out.len();
    let len = (META + payload.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&micros(at).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// A header read back: the body length and its CRC; `None` when impossible.
pub fn header(h: &[u8; HEADER]) -> Option<(usize, u32)> {
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    (META..=MAX_RECORD).contains(&len).then_some((len, crc))
}

/// Kind, time and payload of a body whose CRC is `crc`; `None` when it does not check out.
pub fn body(b: &[u8], crc: u32) -> Option<(u8, u64)> {
    if b.len() < META || crc32fast::hash(b) != crc {
        return None;
    }
    let at = u64::from_le_bytes(b[1..META].try_into().ok()?);
    Some((b[0], at))
}

/// The length of the whole record at the front of `bytes` if it checks out.
pub fn check_at(bytes: &[u8]) -> Option<usize> {
    let h: &[u8; HEADER] = bytes.get(..HEADER)?.try_into().ok()?;
    let (len, crc) = header(h)?;
    body(bytes.get(HEADER..HEADER + len)?, crc).map(|_| HEADER + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_checks_out_and_a_torn_or_flipped_one_does_not() {
        let mut buf = Vec::new();
        let at = time(1_700_000_000_000_001);
        let n = encode(&mut buf, 2, at, b"hello");
        assert_eq!(check_at(&buf), Some(n));
        for cut in 0..buf.len() {
            assert_eq!(check_at(&buf[..cut]), None, "cut {cut}");
        }
        let mut bad = buf.clone();
        bad[n - 1] ^= 1;
        assert_eq!(check_at(&bad), None);
        let h: [u8; HEADER] = buf[..HEADER].try_into().unwrap();
        let (len, crc) = header(&h).unwrap();
        assert_eq!(body(&buf[HEADER..HEADER + len], crc), Some((2, micros(at))));
    }
}
