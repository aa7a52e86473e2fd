//! The source reader's end: one record, one `write`, per read.
//!
//! The write goes to the page cache (with `fsync: always`, to the disk),
//! and that is all the reader waits for. At `max_bytes`, history (what is
//! behind the durable cursor) is deleted first, oldest segment first; only
//! then does `when_full` give something up, and counts it: `drop_newest`
//! refuses the read (and the next record written says how much was
//! refused, so the decoder knows the stream has a hole), `drop_oldest`
//! deletes the oldest segment although it is not all decoded.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use super::record::{self, LOST};
use super::{Fsync, Segment, Shared, State, WhenFull};

/// Why an append wrote nothing (counted in the stats either way).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the journal is full ({max_bytes} bytes of undecoded bus data) and its policy is drop_newest")]
    Full { max_bytes: u64 },
    #[error("cannot write the journal: {0}")]
    Io(#[from] io::Error),
}

/// Appends records; there is one per journal.
pub struct JournalWriter {
    shared: Arc<Shared>,
    file: File,
    buf: Vec<u8>,
    /// Refused since the last record written: (bus bytes, reads).
    refused: (u64, u64),
}

impl JournalWriter {
    pub(super) fn new(shared: Arc<Shared>) -> io::Result<JournalWriter> {
        let file = {
            let mut st = shared.lock();
            let limit = shared.settings.segment_bytes();
            match st.segments.back().filter(|s| s.bytes < limit) {
                Some(s) => File::options().append(true).open(&s.path)?,
                None => new_segment(&shared, &mut st)?,
            }
        };
        track_for_sync(&shared, &file);
        Ok(JournalWriter {
            shared,
            file,
            buf: Vec::with_capacity(256 << 10),
            refused: (0, 0),
        })
    }

    /// Appends one record of `kind` read at `at`; readable when this returns.
    pub fn append(&mut self, kind: u8, at: SystemTime, payload: &[u8]) -> Result<(), AppendError> {
        self.buf.clear();
        if self.refused != (0, 0) {
            let mut lost = [0u8; 16];
            lost[..8].copy_from_slice(&self.refused.0.to_le_bytes());
            lost[8..].copy_from_slice(&self.refused.1.to_le_bytes());
            record::encode(&mut self.buf, LOST, at, &lost);
        }
        record::encode(&mut self.buf, kind, at, payload);
        let n = self.buf.len() as u64;
        let shared = self.shared.clone();
        let mut st = shared.lock();
        if !self.make_room(&mut st, n)? {
            drop(st);
            return Err(self.refuse(payload.len() as u64));
        }
        let cur = st.segments.back().map_or(0, |s| s.bytes);
        if cur > 0 && cur + n > shared.settings.segment_bytes() {
            self.roll(&mut st)?;
        }
        if let Err(e) = self.write(&mut st) {
            drop(st);
            self.refuse(payload.len() as u64);
            return Err(AppendError::Io(e));
        }
        self.refused = (0, 0);
        let micros = record::micros(at);
        st.end += n;
        st.bytes += n;
        if let Some(s) = st.segments.back_mut() {
            s.bytes += n;
            s.newest = s.newest.max(micros);
        }
        shared.publish(&st);
        drop(st);
        shared.stats.appended_bytes.fetch_add(n, Ordering::Relaxed);
        shared.appended.notify_one();
        Ok(())
    }

    /// Writes `buf` at the end of the current segment; on failure cuts it
    /// back so that no half record stays in front of later ones.
    fn write(&mut self, st: &mut State) -> io::Result<()> {
        let mut res = self.file.write_all(&self.buf);
        if res.is_ok() && self.shared.settings.fsync == Fsync::Always {
            res = self.file.sync_data();
        }
        if res.is_err() {
            let keep = st.segments.back().map_or(0, |s| s.bytes);
            if self.file.set_len(keep).is_err() {
                // Cannot cut: the next record starts a new segment.
                let _ = self.roll(st);
            }
        }
        res
    }

    fn refuse(&mut self, bytes: u64) -> AppendError {
        let stats = &self.shared.stats;
        stats.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
        let reads = stats.dropped_reads.fetch_add(1, Ordering::Relaxed) + 1;
        self.refused.0 += bytes;
        self.refused.1 += 1;
        if reads.is_power_of_two() {
            tracing::error!(dir = %self.shared.dir.display(), dropped_reads = reads,
                dropped_bytes = super::JournalStats::get(&stats.dropped_bytes),
                "journal full (when_full: drop_newest): bus bytes read are dropped, counted; the pipeline is behind the bus by the whole journal");
        }
        AppendError::Full {
            max_bytes: self.shared.settings.max_bytes,
        }
    }

    /// Makes room for `n` bytes: history first, then `drop_oldest`.
    /// False when `drop_newest` must refuse.
    fn make_room(&mut self, st: &mut State, n: u64) -> io::Result<bool> {
        let shared = self.shared.clone();
        let s = &shared.settings;
        while st.bytes + n > s.max_bytes {
            let Some(front) = st.segments.front().cloned().filter(|f| f.bytes > 0) else {
                break;
            };
            let history = front.end() <= st.durable;
            if !history && s.when_full == WhenFull::DropNewest {
                return Ok(false);
            }
            if st.segments.len() == 1 {
                // The only segment is the one being written: start another.
                self.roll(st)?;
            }
            self.shared.drop_front(st);
            let unread = front.end().saturating_sub(st.read.max(front.base));
            if !history && unread > 0 {
                self.shared
                    .stats
                    .dropped_bytes
                    .fetch_add(unread, Ordering::Relaxed);
                tracing::error!(file = %front.path.display(), bytes = unread,
                    "journal full (when_full: drop_oldest): deleted its oldest segment before it was decoded");
            }
            st.durable = st.durable.max(front.end());
        }
        // A record larger than the whole bound still goes into an empty journal.
        Ok(st.bytes + n <= s.max_bytes || st.bytes == 0)
    }

    fn roll(&mut self, st: &mut State) -> io::Result<()> {
        let file = new_segment(&self.shared, st)?;
        track_for_sync(&self.shared, &file);
        self.file = file;
        Ok(())
    }
}

fn new_segment(shared: &Shared, st: &mut State) -> io::Result<File> {
    let path = shared.dir.join(super::file_name(st.end));
    // 0600: the journal holds event data.
    let file =
        std::os::unix::fs::OpenOptionsExt::mode(File::options().create(true).append(true), 0o600)
            .open(&path)?;
    file.set_len(0)?;
    if st.segments.back().is_some_and(|s| s.base == st.end) {
        st.segments.pop_back();
    }
    st.segments.push_back(Segment {
        base: st.end,
        bytes: 0,
        newest: record::micros(SystemTime::now()),
        path: path.into(),
    });
    Ok(file)
}

fn track_for_sync(shared: &Shared, file: &File) {
    shared.to_sync.track(shared.settings.fsync, file);
}
