//! The sink's end of a spool: hands out batches in spool order and takes
//! them back as settled.
//!
//! Records are read from the segment files (the page cache, in practice)
//! into a small buffer kept across calls, so a `next_batch` cancelled by a
//! `select!` loses nothing. A batch covers a contiguous run of sequence
//! numbers; the spool's `committed` mark moves past it only when it and
//! every batch before it are settled.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::record::{self, NextRecord, SourceNames};
use super::recovery;
use super::{Segment, Shared};
use crate::outgoing::Outgoing;

/// A run of spooled events handed to the sink.
pub struct Batch {
    pub items: Vec<Outgoing>,
    first: u64,
    shared: Arc<Shared>,
}

impl Batch {
    /// Done with these events (delivered or dead-lettered): the spool may
    /// forget them. A batch dropped without `settle` stays in the spool
    /// and is sent again after a restart.
    pub fn settle(self) {
        self.shared.settle(self.first);
    }
}

/// Reads one sink's spool.
pub struct SpoolReader {
    shared: Arc<Shared>,
    /// The open segment: its first sequence number and the reader.
    file: Option<(u64, BufReader<File>)>,
    /// The segment of `file` as last looked up (the writer may have added
    /// records to it since).
    seg: Option<Segment>,
    /// Sequence number of the next record in `file`.
    file_seq: u64,
    pending: VecDeque<(u64, Outgoing, usize)>,
    pending_bytes: usize,
    sources: SourceNames,
}

/// How much one `fill` reads at most while the state is unlocked.
const READ_AHEAD: usize = 4096;

impl SpoolReader {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        let file_seq = shared.lock().read;
        SpoolReader {
            shared,
            file: None,
            seg: None,
            file_seq,
            pending: VecDeque::new(),
            pending_bytes: 0,
            sources: SourceNames::default(),
        }
    }

    /// Writes the settled mark to disk now (at shutdown; otherwise it is
    /// written at most every 100 ms as batches settle).
    pub fn checkpoint(&self) {
        let mut st = self.shared.lock();
        self.shared.write_ack(&mut st);
    }

    /// The next batch: at most `max_events` events and about `max_bytes`,
    /// waiting up to `max_wait` for it to fill once it has one event.
    /// `None` when the writer has closed and everything was handed out.
    pub async fn next_batch(
        &mut self,
        max_events: usize,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Option<Batch> {
        let max_events = max_events.max(1);
        let mut deadline = None;
        loop {
            let (flushed, closed) = self.fill(max_events);
            let full = self.pending.len() >= max_events || self.pending_bytes >= max_bytes;
            let waited = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if !self.pending.is_empty() && (full || max_wait.is_zero() || waited) {
                return Some(self.take(max_events, max_bytes));
            }
            if self.pending.is_empty() && closed && self.file_seq >= flushed {
                return None;
            }
            let notified = self.shared.readable.notified();
            if self.pending.is_empty() {
                notified.await;
            } else {
                let d = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + max_wait);
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(d) => {}
                }
            }
        }
    }

    fn take(&mut self, max_events: usize, max_bytes: usize) -> Batch {
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut end = 0;
        while let Some(n) = self.pending.front().map(|p| p.2) {
            if !items.is_empty() && (items.len() >= max_events || bytes + n > max_bytes) {
                break;
            }
            let Some((seq, o, _)) = self.pending.pop_front() else {
                break;
            };
            bytes += n;
            self.pending_bytes -= n;
            end = seq + 1;
            items.push(o);
        }
        let mut st = self.shared.lock();
        let first = st.read;
        st.read = end.max(first);
        let end = st.read;
        st.outstanding.insert(first, end);
        Batch {
            items,
            first,
            shared: self.shared.clone(),
        }
    }

    /// Reads flushed records into `pending`; returns (flushed, closed).
    fn fill(&mut self, want: usize) -> (u64, bool) {
        let (flushed, closed, read) = {
            let st = self.shared.lock();
            (st.flushed, st.closed, st.read)
        };
        // drop_oldest may have moved the read mark past what we hold.
        while self.pending.front().is_some_and(|(s, _, _)| *s < read) {
            if let Some((_, _, n)) = self.pending.pop_front() {
                self.pending_bytes -= n;
            }
        }
        if self.file_seq < read {
            self.file_seq = read;
            self.file = None;
        }
        let mut budget = READ_AHEAD;
        while self.pending.len() < want.max(READ_AHEAD / 4) && self.file_seq < flushed && budget > 0
        {
            budget -= 1;
            // The spool's state is locked to find a segment only when the
            // open one has no more known records: once a batch, not once
            // a record (issue 13).
            if !self.positioned() {
                let Some(seg) = self.segment_for(self.file_seq) else {
                    // Nothing left on disk for this number (a dropped segment).
                    self.file_seq = flushed;
                    self.file = None;
                    break;
                };
                if seg.first > self.file_seq {
                    self.file_seq = seg.first;
                    self.file = None;
                }
                if self.file_seq >= seg.end() && self.file_seq < flushed {
                    // Past this segment's last record: the next segment is newer.
                    self.file = None;
                    self.file_seq = seg.end().max(self.file_seq + 1);
                    continue;
                }
                if !self.open_at(&seg) {
                    self.skip_segment(&seg, "cannot open it");
                    continue;
                }
                self.seg = Some(seg);
            }
            let Some((_, r)) = self.file.as_mut() else {
                break;
            };
            let next = record::read_one(r);
            if let Ok(NextRecord::Record(payload, n)) = next {
                let seq = self.file_seq;
                self.file_seq += 1;
                if record::is_tombstone(&payload) {
                    // A record lost to damage, counted when it was found.
                    continue;
                }
                match record::decode(&payload, &mut self.sources) {
                    Some(o) => {
                        self.pending_bytes += n;
                        self.pending.push_back((seq, o, n));
                    }
                    None => {
                        tracing::error!(dir = %self.shared.dir.display(), seq, "spool: a record of an unknown version was skipped")
                    }
                }
                continue;
            }
            let Some(seg) = self.seg.clone() else {
                break;
            };
            match next {
                Ok(NextRecord::Record(..)) => {}
                Ok(NextRecord::End) => self.skip_segment(&seg, "it ends early"),
                Ok(NextRecord::Bad(why)) => self.skip_damage(&seg, why),
                Err(e) => {
                    tracing::error!(dir = %self.shared.dir.display(), error = %e, "spool: read error");
                    self.skip_segment(&seg, "read error");
                }
            }
        }
        (flushed, closed)
    }

    /// The open file is `seg`'s and `file_seq` is one of its known records.
    fn positioned(&self) -> bool {
        match (&self.file, &self.seg) {
            (Some((first, _)), Some(seg)) => {
                *first == seg.first && seg.first <= self.file_seq && self.file_seq < seg.end()
            }
            _ => false,
        }
    }

    /// The segment holding `seq`, or the first one after it.
    fn segment_for(&self, seq: u64) -> Option<Segment> {
        let st = self.shared.lock();
        st.segments
            .iter()
            .find(|s| seq < s.end() || s.first > seq)
            .cloned()
            .or_else(|| st.segments.back().filter(|s| s.first <= seq).cloned())
    }

    /// Makes `file` the reader of `seg`, positioned at `file_seq`.
    fn open_at(&mut self, seg: &Segment) -> bool {
        if self.file.as_ref().is_some_and(|(f, _)| *f == seg.first) {
            return true;
        }
        let Ok(file) = File::open(&seg.path) else {
            return false;
        };
        let mut r = BufReader::with_capacity(256 << 10, file);
        if r.seek(SeekFrom::Start(0)).is_err() {
            return false;
        }
        for _ in seg.first..self.file_seq {
            if !matches!(record::read_one(&mut r), Ok(NextRecord::Record(..))) {
                // Damage on the way: find the record by walking the file.
                return self.open_at_slot(seg, self.file_seq);
            }
        }
        self.file = Some((seg.first, r));
        true
    }

    /// Opens `seg` at record `seq`, damaged stretches counted as one record.
    fn open_at_slot(&mut self, seg: &Segment, seq: u64) -> bool {
        let Ok(bytes) = std::fs::read(&seg.path) else {
            return false;
        };
        let slots = recovery::slots(&bytes);
        let Some(slot) = usize::try_from(seq - seg.first)
            .ok()
            .and_then(|i| slots.get(i))
        else {
            return false;
        };
        let Ok(file) = File::open(&seg.path) else {
            return false;
        };
        let mut r = BufReader::with_capacity(256 << 10, file);
        if r.seek(SeekFrom::Start(slot.offset as u64)).is_err() {
            return false;
        }
        self.file = Some((seg.first, r));
        true
    }

    /// A record that went bad after the spool was opened: it costs that
    /// record only (see `recovery.rs`), counted and logged.
    fn skip_damage(&mut self, seg: &Segment, why: &str) {
        let stats = &self.shared.stats;
        let total = stats.corrupt_records.fetch_add(1, Ordering::Relaxed) + 1;
        let offset = self
            .file
            .as_mut()
            .and_then(|(_, r)| r.stream_position().ok());
        tracing::error!(file = %seg.path.display(), offset, seq = self.file_seq, corrupt_total = total,
            "spool: a corrupt record ({why}) was skipped; the records after it are kept");
        self.file_seq += 1;
        self.file = None;
        if self.file_seq < seg.end() && !self.open_at_slot(seg, self.file_seq) {
            self.skip_segment(seg, "cannot find the record after a corrupt one");
        }
    }

    fn skip_segment(&mut self, seg: &Segment, why: &str) {
        let lost = seg.end().saturating_sub(self.file_seq);
        tracing::error!(file = %seg.path.display(), events = lost, "spool: cannot read the rest of this segment ({why}); skipped");
        self.file = None;
        self.file_seq = seg.end().max(self.file_seq + 1);
    }
}
