//! Reading the journal back, record by record, in order: the decoder tails
//! it (waiting for appends), `replay` and `tail --journal` read its history.
//!
//! A hole is reported, never skipped silently: a `drop_newest` refusal (the
//! writer's own record), a segment deleted before it was read
//! (`drop_oldest`), or a record that does not check out, which costs the
//! rest of its segment (counted in `saltbridge_journal_corrupt_records_total`).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use super::record::{self, HEADER, LOST};
use super::{Segment, Shared};

/// One record as appended.
#[derive(Debug)]
pub struct Record {
    /// Its offset, and the offset after it.
    pub pos: u64,
    pub end: u64,
    pub kind: u8,
    /// When it was read from the bus.
    pub at: SystemTime,
    pub payload: Vec<u8>,
}

/// What the next step of reading found.
#[derive(Debug)]
pub enum Item {
    Record(Record),
    /// Bus bytes that are not in the journal before the next record: `bytes`
    /// of them, in `reads` refused reads (0 when deleted or damaged).
    Lost {
        bytes: u64,
        reads: u64,
    },
}

/// Reads records in order from a position.
pub struct JournalReader {
    shared: Arc<Shared>,
    pos: u64,
    /// Waits for appends at the end (the decoder), or ends there (history).
    tail: bool,
    /// The open segment's base, its reader, and the offset it is at.
    file: Option<(u64, BufReader<File>, u64)>,
}

impl JournalReader {
    pub(super) fn new(shared: Arc<Shared>, pos: u64, tail: bool) -> JournalReader {
        JournalReader {
            shared,
            pos,
            tail,
            file: None,
        }
    }

    /// The offset of the next record.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether everything appended so far has been read.
    pub fn caught_up(&self) -> bool {
        self.pos >= self.shared.lock().end
    }

    /// The next item; waits for an append when tailing. `None` only at the
    /// end of a history reader.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.try_next() {
                return Some(item);
            }
            if !self.tail {
                return None;
            }
            // `notify_one` keeps a permit, so an append since `try_next` is not missed.
            self.shared.appended.notified().await;
        }
    }

    /// The next item if one is there.
    pub fn try_next(&mut self) -> Option<Item> {
        let seg = {
            let mut st = self.shared.lock();
            if self.pos >= st.end {
                return None;
            }
            let found = st
                .segments
                .iter()
                .find(|s| s.base <= self.pos && self.pos < s.end())
                .cloned();
            match found {
                Some(s) => s,
                None => {
                    // Deleted before it was read: skip to the next segment there is.
                    let next = st
                        .segments
                        .iter()
                        .find(|s| s.base > self.pos)
                        .map_or(st.end, |s| s.base);
                    let bytes = next - self.pos;
                    self.pos = next;
                    st.read = next;
                    self.file = None;
                    return Some(Item::Lost { bytes, reads: 0 });
                }
            }
        };
        let item = match self.read_at(&seg) {
            Some(item) => item,
            None => self.damaged(&seg),
        };
        self.shared.lock().read = self.pos;
        Some(item)
    }

    /// Reads the record at `pos` in `seg`; `None` when it does not check out.
    fn read_at(&mut self, seg: &Segment) -> Option<Item> {
        let pos = self.pos;
        let reusable = self
            .file
            .as_ref()
            .is_some_and(|(base, _, at)| *base == seg.base && *at == pos);
        if !reusable {
            let mut f = File::open(&seg.path).ok()?;
            f.seek(SeekFrom::Start(pos - seg.base)).ok()?;
            self.file = Some((seg.base, BufReader::with_capacity(256 << 10, f), pos));
        }
        let (_, r, at) = self.file.as_mut()?;
        let mut h = [0u8; HEADER];
        r.read_exact(&mut h).ok()?;
        let (len, crc) = record::header(&h)?;
        if pos + (HEADER + len) as u64 > seg.end() {
            return None;
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).ok()?;
        let (kind, micros) = record::body(&body, crc)?;
        let end = pos + (HEADER + len) as u64;
        *at = end;
        self.pos = end;
        body.drain(..record::META);
        if kind == LOST && body.len() == 16 {
            let bytes = u64::from_le_bytes(body[..8].try_into().ok()?);
            let reads = u64::from_le_bytes(body[8..].try_into().ok()?);
            return Some(Item::Lost { bytes, reads });
        }
        Some(Item::Record(Record {
            pos,
            end,
            kind,
            at: record::time(micros),
            payload: body,
        }))
    }

    /// A record that does not check out costs the rest of its segment.
    fn damaged(&mut self, seg: &Segment) -> Item {
        let stats = &self.shared.stats;
        let total = stats.corrupt_records.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = seg.end().saturating_sub(self.pos);
        tracing::error!(file = %seg.path.display(), offset = self.pos - seg.base, bytes, corrupt_total = total,
            "journal: a record does not check out; the rest of its segment is skipped");
        self.pos = seg.end();
        self.file = None;
        Item::Lost { bytes, reads: 0 }
    }
}
