//! The router's end of a spool: appends records and makes them readable.
//!
//! `append` writes into a buffer and never waits for the disk: the router
//! calls `flush` once per burst of events, which hands the burst to the
//! kernel (one write) and wakes the reader. At the disk bound the
//! `when_full` policy decides what is dropped, and the drop is counted.

use std::fs::File;
use std::io::{self, BufWriter, Write};
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

/// Appends events to one sink's spool.
pub struct SpoolWriter {
    shared: Arc<Shared>,
    file: BufWriter<File>,
    /// Bytes in the current segment.
    cur_bytes: u64,
    buf: Vec<u8>,
    keep_raw: bool,
    dirty: bool,
}

impl SpoolWriter {
    pub(super) fn new(shared: Arc<Shared>, keep_raw: bool) -> io::Result<Self> {
        let seg_max = segment_limit(&shared);
        let mut st = shared.lock();
        let reuse = st
            .segments
            .back()
            .filter(|s| s.bytes < seg_max)
            .map(|s| (s.path.clone(), s.bytes));
        let (file, cur_bytes) = match reuse {
            Some((path, bytes)) => (File::options().append(true).open(path)?, bytes),
            None => (new_segment(&shared, &mut st)?, 0),
        };
        drop(st);
        track_for_sync(&shared, &file);
        Ok(SpoolWriter {
            shared,
            file: BufWriter::with_capacity(256 << 10, file),
            cur_bytes,
            buf: Vec::with_capacity(4096),
            keep_raw,
            dirty: false,
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
        if self.cur_bytes > 0 && self.cur_bytes + n > segment_limit(&self.shared) {
            self.roll(&mut st)?;
        }
        self.file.write_all(&self.buf)?;
        self.cur_bytes += n;
        self.dirty = true;
        st.written += 1;
        st.bytes += n;
        if let Some(s) = st.segments.back_mut() {
            s.records += 1;
            s.bytes += n;
        }
        let stats = &self.shared.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats
            .queued
            .store(st.written - st.committed, Ordering::Relaxed);
        stats.queued_bytes.store(st.bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Hands what was appended to the kernel (and to the disk, with
    /// `fsync: always`) and wakes the reader.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.flush()?;
        if self.shared.settings.fsync == Fsync::Always {
            self.file.get_ref().sync_data()?;
        }
        self.dirty = false;
        let mut st = self.shared.lock();
        st.flushed = st.written;
        drop(st);
        self.shared.readable.notify_one();
        Ok(())
    }

    /// Flushes and tells the reader no more is coming.
    pub fn close(mut self) -> io::Result<()> {
        let res = self.flush();
        self.shared.lock().closed = true;
        self.shared.readable.notify_one();
        res
    }

    /// Writes the settled mark to disk if it moved (called every second,
    /// so that an idle spool's `ack` is current).
    pub fn checkpoint(&self) {
        let mut st = self.shared.lock();
        self.shared.write_ack(&mut st);
    }

    /// The spool's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.shared.dir
    }

    fn roll(&mut self, st: &mut State) -> io::Result<()> {
        self.file.flush()?;
        if self.shared.settings.fsync == Fsync::Always {
            self.file.get_ref().sync_data()?;
        }
        let file = new_segment(&self.shared, st)?;
        track_for_sync(&self.shared, &file);
        self.file = BufWriter::with_capacity(256 << 10, file);
        self.cur_bytes = 0;
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
        path,
    });
    Ok(file)
}

fn track_for_sync(shared: &Shared, file: &File) {
    if !matches!(shared.settings.fsync, Fsync::Every(_)) {
        return;
    }
    if let Ok(f) = file.try_clone() {
        shared
            .to_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(f));
    }
}
