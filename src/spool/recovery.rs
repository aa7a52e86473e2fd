//! Rebuilding a spool from its files after a stop, a crash or damage.
//!
//! A record that does not check out costs that record only (issue 12,
//! finding 4: one flipped byte used to cut its segment there and lose the
//! 500 events after it, logged as a torn tail). The walk over a segment
//! resynchronises at the next offset where a whole record checks out (its
//! CRC and, for a version-1 payload, its field lengths); the damaged stretch
//! in between is one lost record (more when the segment after it says so),
//! logged at ERROR with file and offset and counted in
//! `saltbridge_spool_corrupt_records_total`. The segment is then rewritten
//! with a tombstone record in place of each lost one, so the records after
//! it keep their sequence numbers (the `ack` file and the next segment's
//! name count on them) and the damage is reported once, not at every start.
//!
//! Only a damaged stretch at the very end of the last segment, with no
//! record after it, is taken for a write that `kill -9` tore: it is cut off
//! and logged at WARN. A segment shorter than the next one's name says (a
//! missing middle segment, or a cut file) and segments that overlap are
//! logged at ERROR and counted too.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::record::{self, read_one, NextRecord};
use super::segment::Segment;

/// One record's place in a segment file, or a damaged stretch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub offset: usize,
    pub len: usize,
    /// `None` for a record that checks out; why it does not otherwise.
    pub damage: Option<&'static str>,
    /// For a damaged stretch: whether its own length field spans it exactly,
    /// so that it is certainly one record.
    pub one_record: bool,
}

/// Cuts `bytes` (a whole segment file) into records and damaged stretches.
pub fn slots(bytes: &[u8]) -> Vec<Slot> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if let Some(len) = record::check_at(&bytes[at..]) {
            out.push(Slot {
                offset: at,
                len,
                damage: None,
                one_record: true,
            });
            at += len;
            continue;
        }
        let why = match read_one(&mut &bytes[at..]) {
            Ok(NextRecord::Bad(why)) => why,
            _ => "a record of an unknown version",
        };
        let next = (at + 1..bytes.len())
            .find(|&p| record::check_at(&bytes[p..]).is_some())
            .unwrap_or(bytes.len());
        let claimed = bytes
            .get(at..at + 4)
            .map(|h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
        out.push(Slot {
            offset: at,
            len: next - at,
            damage: Some(why),
            one_record: claimed.is_some_and(|l| at + record::HEADER + l == next),
        });
        at = next;
    }
    out
}

/// Checks every segment in `files` (oldest first), repairs what is damaged
/// and returns the segments and the number of records lost.
pub fn recover_segments(files: Vec<(u64, PathBuf)>) -> io::Result<(VecDeque<Segment>, u64)> {
    let mut segments = VecDeque::new();
    let mut lost = 0u64;
    let firsts: Vec<u64> = files.iter().map(|(f, _)| *f).collect();
    for (i, (first, path)) in files.into_iter().enumerate() {
        let next_first = firsts.get(i + 1).copied();
        let (seg, n) = recover_one(first, path, next_first)?;
        lost += n;
        segments.push_back(seg);
    }
    Ok((segments, lost))
}

/// One segment; `next_first` is the next segment's first number, `None`
/// for the last segment.
fn recover_one(first: u64, path: PathBuf, next_first: Option<u64>) -> io::Result<(Segment, u64)> {
    let bytes = std::fs::read(&path)?;
    let mut slots = slots(&bytes);
    let mut cut = None;
    if next_first.is_none() && slots.last().is_some_and(|s| s.damage.is_some()) {
        if let Some(torn) = slots.pop() {
            tracing::warn!(file = %path.display(), offset = torn.offset, bytes = torn.len, why = torn.damage.unwrap_or_default(),
                "spool: cutting off a torn record at the end: saltbridge was stopped while writing it");
            cut = Some(torn.offset);
        }
    }
    // Records each slot stands for: a damaged one is at least one record.
    let mut counts: Vec<u64> = vec![1; slots.len()];
    let mut lost: u64 = 0;
    for s in slots.iter().filter(|s| s.damage.is_some()) {
        lost += 1;
        tracing::error!(file = %path.display(), offset = s.offset, bytes = s.len, why = s.damage.unwrap_or_default(),
            "spool: a corrupt record was skipped; the records after it are kept");
    }
    let mut records: u64 = counts.iter().sum();
    if let Some(next) = next_first {
        let expected = next.saturating_sub(first);
        if records < expected {
            let missing = expected - records;
            // A damaged stretch whose length field is gone may have held them.
            match slots
                .iter()
                .position(|s| s.damage.is_some() && !s.one_record)
            {
                Some(i) => counts[i] += missing,
                None => {
                    tracing::error!(file = %path.display(), records = missing, next_segment = next,
                        "spool: records are missing after this segment (a cut file, or a missing segment)");
                }
            }
            lost += missing;
            records = expected;
        } else if records > expected {
            let overlap = records - expected;
            tracing::error!(file = %path.display(), records = overlap, next_segment = next,
                "spool: this segment overlaps the next one; the next one's first records cannot be read");
            lost += overlap;
        }
    }
    let damaged = slots.iter().any(|s| s.damage.is_some());
    let size = if damaged {
        rewrite(&path, &bytes, &slots, &counts)?
    } else {
        let keep = cut.unwrap_or(bytes.len());
        if keep < bytes.len() {
            File::options()
                .write(true)
                .open(&path)?
                .set_len(keep as u64)?;
        }
        keep as u64
    };
    let seg = Segment {
        first,
        records,
        bytes: size,
        path: path.into(),
    };
    Ok((seg, lost))
}

/// Rewrites a damaged segment: its good records, and a tombstone for each
/// lost one. Written beside it and renamed over it, so a crash leaves one
/// or the other.
fn rewrite(path: &Path, bytes: &[u8], slots: &[Slot], counts: &[u64]) -> io::Result<u64> {
    let mut out = Vec::with_capacity(bytes.len());
    for (s, &n) in slots.iter().zip(counts) {
        match s.damage {
            None => out.extend_from_slice(&bytes[s.offset..s.offset + s.len]),
            Some(_) => (0..n).for_each(|_| record::encode_tombstone(&mut out)),
        }
    }
    let tmp = path.with_extension("seg.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&out)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    Ok(out.len() as u64)
}
