//! One spooled event on disk: `[len u32][crc32 u32][payload]`, little
//! endian, the CRC over the payload so that a torn or corrupt record is
//! recognised rather than delivered.
//!
//! Payload (version 1): received-at (µs since the epoch, u64), route and
//! source (u16-length strings), tag and data JSON text (u32-length), and
//! Salt's msgpack data (u32-length, empty when the sink does not use it).
//! Version 2 (written since issue 14) adds the event's provenance after
//! these: the publishing master and the relaying syndic (u16-length
//! strings, empty when unknown) and one flags byte (1 = a cluster peer's
//! copy, 2 = backfilled from the job cache). Version 1 records still read.
//! The idempotency key is not stored: it is a hash of tag and data, so a
//! redelivered event carries the same key by construction.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::event::{Event, JsonText, Provenance, RawBody};
use crate::outgoing::Outgoing;

/// Length and CRC in front of every payload.
pub const HEADER: usize = 8;
const VERSION: u8 = 2;
const VERSION_1: u8 = 1;
/// A record longer than this is corruption, not an event.
pub const MAX_RECORD: usize = 256 << 20;

/// Payload of a tombstone: the record that stands, after recovery, for a
/// corrupt one, so that the records after it keep their sequence numbers.
const TOMBSTONE: [u8; 1] = [0];

/// Appends a tombstone record to `out`.
pub fn encode_tombstone(out: &mut Vec<u8>) {
    out.extend_from_slice(&(TOMBSTONE.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&TOMBSTONE).to_le_bytes());
    out.extend_from_slice(&TOMBSTONE);
}

/// Whether a valid record's payload is a tombstone.
pub fn is_tombstone(payload: &[u8]) -> bool {
    payload == TOMBSTONE
}

/// Whether `bytes` start with a whole record that checks out (its CRC
/// matches, and a version-1 payload's fields fill it exactly); its length.
/// Cheap checks come first: recovery calls this at every offset of a
/// damaged stretch.
pub fn check_at(bytes: &[u8]) -> Option<usize> {
    let head = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(HEADER..HEADER + len)?;
    let shaped = is_tombstone(payload) || {
        let mut c = Cursor(payload);
        let version = c.take(1).map(|v| v[0]);
        matches!(version, Some(VERSION | VERSION_1))
            && c.take(8).is_some()
            && c.short().is_some()
            && c.short().is_some()
            && c.long().is_some()
            && c.long().is_some()
            && c.long().is_some()
            && (version == Some(VERSION_1)
                || (c.short().is_some() && c.short().is_some() && c.take(1).is_some()))
            && c.0.is_empty()
    };
    (shaped && crc32fast::hash(payload) == crc).then_some(HEADER + len)
}

/// Appends `o` as one record to `out`.
pub fn encode(out: &mut Vec<u8>, o: &Outgoing, keep_raw: bool) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let ev = &o.event;
    out.push(VERSION);
    let micros = ev
        .received_at()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    out.extend_from_slice(&micros.to_le_bytes());
    put_short(out, o.route.as_bytes());
    put_short(out, ev.source().as_bytes());
    put_long(out, ev.tag().as_bytes());
    put_long(out, ev.data_json().as_bytes());
    match ev.raw().filter(|_| keep_raw) {
        Some(raw) => put_long(out, raw.msgpack_data()),
        None => put_long(out, &[]),
    }
    let p = ev.provenance();
    put_short(out, p.master.as_deref().unwrap_or_default().as_bytes());
    put_short(out, p.syndic.as_deref().unwrap_or_default().as_bytes());
    out.push(u8::from(p.peer) | (u8::from(p.backfilled) << 1));
    let payload = &out[start + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_short(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_long(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// What reading one record found.
#[derive(Debug)]
pub enum NextRecord {
    /// A whole, valid record of `len` bytes (header included).
    Record(Vec<u8>, usize),
    /// Clean end of file.
    End,
    /// A torn or corrupt record: `why`.
    Bad(&'static str),
}

/// Reads the next record's payload from `r`.
pub fn read_one(r: &mut impl Read) -> io::Result<NextRecord> {
    let mut head = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match r.read(&mut head[got..])? {
            0 if got == 0 => return Ok(NextRecord::End),
            0 => return Ok(NextRecord::Bad("the file ends inside a record header")),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_RECORD {
        return Ok(NextRecord::Bad("impossible record length"));
    }
    let mut payload = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match r.read(&mut payload[got..])? {
            0 => return Ok(NextRecord::Bad("the file ends inside a record")),
            n => got += n,
        }
    }
    if crc32fast::hash(&payload) != crc {
        return Ok(NextRecord::Bad("checksum mismatch"));
    }
    Ok(NextRecord::Record(payload, HEADER + len))
}

/// Turns a valid payload back into the event and route it was.
pub fn decode(payload: &[u8], sources: &mut SourceNames) -> Option<Outgoing> {
    let mut c = Cursor(payload);
    let version = c.take(1)?[0];
    if version != VERSION && version != VERSION_1 {
        return None;
    }
    let micros = u64::from_le_bytes(c.take(8)?.try_into().ok()?);
    let route = sources.get(std::str::from_utf8(c.short()?).ok()?);
    let source = sources.get(std::str::from_utf8(c.short()?).ok()?);
    let tag = std::str::from_utf8(c.long()?).ok()?.to_owned();
    let data = std::str::from_utf8(c.long()?).ok()?.to_owned();
    let raw = c.long()?;
    let raw = (!raw.is_empty()).then(|| {
        let mut body = Vec::with_capacity(tag.len() + 2 + raw.len());
        body.extend_from_slice(tag.as_bytes());
        body.extend_from_slice(b"\n\n");
        body.extend_from_slice(raw);
        RawBody {
            body: Bytes::from(body),
            data_offset: tag.len() + 2,
        }
    });
    let at = UNIX_EPOCH + Duration::from_micros(micros);
    // The CRC vouches that this is the JSON text the decoder wrote.
    let mut ev = Event::new(tag, JsonText::trusted(data), at, source, raw);
    if version == VERSION {
        let name = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .filter(|s| !s.is_empty())
                .map(Arc::from)
        };
        let master = name(c.short()?);
        let syndic = name(c.short()?);
        let flags = c.take(1)?[0];
        *ev.provenance_mut() = Provenance {
            master,
            syndic,
            peer: flags & 1 != 0,
            backfilled: flags & 2 != 0,
        };
    }
    Some(Outgoing::new(ev, route))
}

/// Shares one `Arc<str>` per source or route name among decoded events
/// (the first 64 names seen; others get their own).
#[derive(Default)]
pub struct SourceNames(Vec<Arc<str>>);

impl SourceNames {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.iter().find(|a| &***a == s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.0.len() < 64 {
            self.0.push(a.clone());
        }
        a
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn short(&mut self) -> Option<&'a [u8]> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        self.take(n)
    }
    fn long(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(n)
    }
}

/// Seconds from when an event was read to `now`, for the latency
/// histogram (a batch reads the clock once).
pub fn age(ev: &Event, now: SystemTime) -> f64 {
    now.duration_since(ev.received_at())
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_key_route_source_time_and_raw() {
        let raw = RawBody {
            body: Bytes::from_static(b"t/1\n\n\x81\xa1a\x01"),
            data_offset: 5,
        };
        let ev = Event::new(
            "t/1".into(),
            JsonText::trusted(r#"{"a":1}"#.into()),
            UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            Arc::from("ipc:/x"),
            Some(raw),
        );
        let o = Outgoing::new(ev, "route-a");
        let mut buf = Vec::new();
        encode(&mut buf, &o, true);
        let NextRecord::Record(p, n) = read_one(&mut &buf[..]).unwrap() else {
            panic!("not a record")
        };
        assert_eq!(n, buf.len());
        let back = decode(&p, &mut SourceNames::default()).unwrap();
        assert_eq!(back.key(), o.key());
        assert_eq!(&*back.route, "route-a");
        assert_eq!(back.event.source(), "ipc:/x");
        assert_eq!(back.event.received_at(), o.event.received_at());
        assert_eq!(back.event.raw().unwrap().msgpack_data(), b"\x81\xa1a\x01");
        assert_eq!(back.event.data(), &json!({"a": 1}));
    }

    #[test]
    fn provenance_round_trips_and_version_1_still_reads() {
        let mut ev = Event::synthetic("t", json!({"n": 1}), Arc::from("s"));
        *ev.provenance_mut() = Provenance {
            master: Some(Arc::from("m2")),
            peer: true,
            syndic: Some(Arc::from("syn")),
            backfilled: true,
        };
        let o = Outgoing::new(ev, "r");
        let mut buf = Vec::new();
        encode(&mut buf, &o, false);
        assert_eq!(check_at(&buf), Some(buf.len()));
        let NextRecord::Record(p, _) = read_one(&mut &buf[..]).unwrap() else {
            panic!("not a record")
        };
        let back = decode(&p, &mut SourceNames::default()).unwrap();
        assert_eq!(back.event.provenance(), o.event.provenance());
        // A version-1 record: the same payload without the provenance.
        let mut v1 = p[..p.len() - (2 + 2) - (2 + 3) - 1].to_vec();
        v1[0] = VERSION_1;
        let mut rec = Vec::new();
        rec.extend_from_slice(&(v1.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(&v1).to_le_bytes());
        rec.extend_from_slice(&v1);
        assert_eq!(check_at(&rec), Some(rec.len()));
        let old = decode(&v1, &mut SourceNames::default()).unwrap();
        assert_eq!(old.event.provenance(), &Provenance::default());
        assert_eq!(old.key(), o.key());
    }

    #[test]
    fn torn_and_corrupt_records_are_recognised() {
        let o = Outgoing::new(Event::synthetic("t", json!({"n": 1}), Arc::from("s")), "r");
        let mut buf = Vec::new();
        encode(&mut buf, &o, false);
        for cut in 1..buf.len() {
            assert!(
                matches!(read_one(&mut &buf[..cut]).unwrap(), NextRecord::Bad(_)),
                "cut {cut}"
            );
        }
        let mut flipped = buf.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert!(matches!(
            read_one(&mut &flipped[..]).unwrap(),
            NextRecord::Bad("checksum mismatch")
        ));
        assert!(matches!(read_one(&mut &[][..]).unwrap(), NextRecord::End));
    }
}
