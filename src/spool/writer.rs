//! The router's end of a spool: appends records and makes them readable.
//!
//! `append` writes into a buffer and never waits for the disk: the router
//! calls `flush` once per burst of events, which hands the burst to the
//! kernel (one write) and wakes the reader. At the disk bound the
//! `when_full` policy decides what is dropped, and the drop is counted.
//!
//! An event counts as `accepted` only once its record is written: handed to
//! the kernel, or with `fsync: always` synced to the disk (issue 12, finding
//! 5: with a full disk, 256 KiB of "accepted" events sat in a buffer that
//! `kill -9` lost). A write that fails (ENOSPC, EIO) drops the records of
//! the burst, counts them as dropped, logs it and cuts the file back to its
//! last whole record, so a half-written burst never sits in front of later
//! records.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{record, segment, Fsync, Segment, Shared, State, WhenFull};
use crate::outgoing::Outgoing;

/// Why an event was not spooled.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the spool is full ({max_bytes} bytes) and its policy is drop_newest")]
    Full { max_bytes: u64 },
    #[error("cannot write the spool: {0}")]
    Io(#[from] io::Error),
}

/// Records buffered before they are written without waiting for `flush`.
const MAX_PENDING: usize = 256 << 10;

/// Appends events to one sink's spool.
pub struct SpoolWriter {
    shared: Arc<Shared>,
    file: File,
    /// Bytes in the current segment, the pending records included.
    cur_bytes: u64,
    /// Records appended since the last write, and how many.
    pending: Vec<u8>,
    pending_records: u64,
    /// A failed write could not be cut back: the next record starts a new segment.
    must_roll: bool,
    /// Records were appended since the last [`checkpoint`](Self::checkpoint).
    appended: bool,
    buf: Vec<u8>,
    keep_raw: bool,
}

impl SpoolWriter {
    pub(super) fn new(shared: Arc<Shared>, keep_raw: bool) -> io::Result<Self> {
        let seg_max = segment_limit(&shared);
        let mut st = shared.lock();
        let reuse = st
            .segments
            .back()
            .filter(|s| s.bytes < seg_max && s.end() == st.written)
            .map(|s| (s.path.clone(), s.bytes));
        let (file, cur_bytes) = match reuse {
            Some((path, bytes)) => (File::options().append(true).open(path)?, bytes),
            None => (new_segment(&shared, &mut st)?, 0),
        };
        drop(st);
        track_for_sync(&shared, &file);
        Ok(SpoolWriter {
            shared,
            file,
            cur_bytes,
            pending: Vec::with_capacity(MAX_PENDING),
            pending_records: 0,
            must_roll: false,
            appended: false,
            buf: Vec::with_capacity(4096),
            keep_raw,
        })
    }

    /// Spools `o`; readable after the next [`flush`](Self::flush).
    pub fn append(&mut self, o: &Outgoing) -> Result<(), AppendError> {
        self.buf.clear();
        record::encode(&mut self.buf, o, self.keep_raw);
        let n = self.buf.len() as u64;
        let max_bytes = self.shared.settings.max_bytes;
        let shared = self.shared.clone();
        let mut st = shared.lock();
        if st.bytes + n > max_bytes && !make_room(&shared, &mut st, n) {
            self.shared.stats.overflowed.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::Full { max_bytes });
        }
        if self.must_roll
            || (self.cur_bytes > 0 && self.cur_bytes + n > segment_limit(&self.shared))
        {
            self.roll(&mut st)?;
        }
        self.pending.extend_from_slice(&self.buf);
        self.pending_records += 1;
        self.appended = true;
        self.cur_bytes += n;
        st.written += 1;
        st.bytes += n;
        if let Some(s) = st.segments.back_mut() {
            s.records += 1;
            s.bytes += n;
        }
        let stats = &self.shared.stats;
        stats
            .queued
            .store(st.written - st.committed, Ordering::Relaxed);
        stats.queued_bytes.store(st.bytes, Ordering::Relaxed);
        if self.pending.len() >= MAX_PENDING {
            self.write_pending(&mut st)?;
        }
        Ok(())
    }

    /// Hands what was appended to the kernel (and to the disk, with
    /// `fsync: always`) and wakes the reader.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let mut st = shared.lock();
        let res = self.write_pending(&mut st);
        drop(st);
        self.shared.readable.notify_one();
        res
    }

    /// Writes the pending records; only then are they accepted and readable.
    /// On failure they are dropped, counted and cut off the file.
    fn write_pending(&mut self, st: &mut State) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut res = self.file.write_all(&self.pending);
        if res.is_ok() && self.shared.settings.fsync == Fsync::Always {
            res = self.file.sync_data();
        }
        let (n, bytes) = (self.pending_records, self.pending.len() as u64);
        self.pending.clear();
        self.pending_records = 0;
        let stats = &self.shared.stats;
        match res {
            Ok(()) => {
                stats.accepted.fetch_add(n, Ordering::Relaxed);
                st.flushed = st.written;
                Ok(())
            }
            Err(e) => {
                self.cur_bytes -= bytes;
                st.written -= n;
                st.bytes -= bytes;
                if let Some(s) = st.segments.back_mut() {
                    s.records -= n;
                    s.bytes -= bytes;
                }
                if let Err(cut) = self.file.set_len(self.cur_bytes) {
                    tracing::error!(dir = %self.shared.dir.display(), error = %cut, "spool: cannot cut a failed write off its segment; starting a new one");
                    self.must_roll = true;
                }
                let dropped = stats.overflowed.fetch_add(n, Ordering::Relaxed) + n;
                stats
                    .queued
                    .store(st.written - st.committed, Ordering::Relaxed);
                stats.queued_bytes.store(st.bytes, Ordering::Relaxed);
                tracing::error!(dir = %self.shared.dir.display(), events = n, dropped_total = dropped, error = %e,
                    "spool: cannot write; these events are dropped, not accepted");
                Err(e)
            }
        }
    }

    /// Flushes and tells the reader no more is coming.
    pub fn close(mut self) -> io::Result<()> {
        let res = self.flush();
        self.shared.lock().closed = true;
        self.shared.readable.notify_one();
        res
    }

    /// Writes the settled mark to disk if it moved, and lets go of
    /// delivered data once the writer is idle (called every second, so
    /// that an idle spool's `ack` is current and holds no event data).
    pub fn checkpoint(&mut self) {
        let shared = self.shared.clone();
        let mut st = shared.lock();
        shared.write_ack(&mut st);
        if !std::mem::take(&mut self.appended) {
            self.release_settled(&mut st);
        }
    }

    /// When every record written is settled and nothing was appended for a
    /// checkpoint period, the current segment is emptied and replaced by a
    /// new empty one (issue 12: a delivered last segment stayed on disk, with
    /// its event data, until the next segment started). The old one is
    /// truncated before it is deleted, so its space goes even while the
    /// reader still has it open.
    fn release_settled(&mut self, st: &mut State) {
        if self.cur_bytes == 0 || !self.pending.is_empty() || st.committed < st.written {
            return;
        }
        let Some(old) = st.segments.back().map(|s| s.path.clone()) else {
            return;
        };
        if let Err(e) = self.roll(st) {
            tracing::warn!(dir = %self.shared.dir.display(), error = %e, "spool: cannot start a new segment after a delivered one");
            return;
        }
        if let Err(e) = File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_len(0))
        {
            tracing::warn!(file = %old.display(), error = %e, "spool: cannot truncate a delivered segment");
        }
        self.shared.drop_settled(st);
    }

    /// The spool's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.shared.dir
    }

    fn roll(&mut self, st: &mut State) -> io::Result<()> {
        self.write_pending(st)?;
        let file = new_segment(&self.shared, st)?;
        track_for_sync(&self.shared, &file);
        self.file = file;
        self.cur_bytes = 0;
        self.must_roll = false;
        Ok(())
    }
}

/// With `drop_oldest`, deletes whole segments from the front until `n`
/// more bytes fit; counts the events that were never handed to the sink.
fn make_room(shared: &Shared, st: &mut State, n: u64) -> bool {
    if shared.settings.when_full != WhenFull::DropOldest {
        return false;
    }
    let max_bytes = shared.settings.max_bytes;
    while st.bytes + n > max_bytes && st.segments.len() > 1 {
        let Some(s) = st.segments.pop_front() else {
            break;
        };
        let unsent = s.end().saturating_sub(st.read.max(s.first));
        shared.stats.overflowed.fetch_add(unsent, Ordering::Relaxed);
        if unsent > 0 {
            tracing::warn!(dir = %shared.dir.display(), events = unsent, "spool full: dropped its oldest segment (when_full: drop_oldest)");
        }
        st.read = st.read.max(s.end());
        st.bytes -= s.bytes;
        super::remove(&s.path);
        shared.advance(st);
    }
    st.bytes + n <= max_bytes
}

/// Segments are at most a quarter of the bound, so `drop_oldest` always
/// has a whole segment to give up.
fn segment_limit(shared: &Shared) -> u64 {
    let s = &shared.settings;
    s.segment_bytes.min(s.max_bytes / 4).max(1)
}

fn new_segment(shared: &Shared, st: &mut State) -> io::Result<File> {
    let path = shared.dir.join(segment::file_name(st.written));
    // 0600: segments hold event data (issue 12).
    let file =
        std::os::unix::fs::OpenOptionsExt::mode(File::options().create(true).append(true), 0o600)
            .open(&path)?;
    file.set_len(0)?;
    st.segments.push_back(Segment {
        first: st.written,
        records: 0,
        bytes: 0,
        path: path.into(),
    });
    Ok(file)
}

fn track_for_sync(shared: &Shared, file: &File) {
    shared.to_sync.track(shared.settings.fsync, file);
}
