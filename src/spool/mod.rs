//! The spool: a durable queue on disk in front of each sink.
//!
//! The router appends every event meant for a sink to that sink's spool
//! and goes on; the sink's worker reads from it and marks events settled
//! (delivered, or written to the dead-letter file). So a sink that is down
//! or slow costs disk, not data, and never makes the bus reader wait.
//!
//! A spool is a directory of checksummed segment files (`segment.rs`,
//! `record.rs`) and an `ack` file holding the first sequence number not yet
//! settled. A restart, even after `kill -9`, resumes from `ack`: events
//! settled after the last `ack` write are delivered again (at-least-once,
//! with the same idempotency key). A torn record at the tail is cut off; a
//! corrupt one elsewhere costs that record only and is counted
//! (`recovery.rs`). We wrote our own
//! log rather than use an embedded store because a FIFO of append-once
//! records needs no index, compaction or transactions: sequential writes,
//! sequential reads and whole-file deletes are all it does.

pub mod config;
pub mod inbox;
mod reader;
mod record;
mod recovery;
mod segment;
mod writer;

use crate::fsync::{sync_every, SyncList};
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use config::{Fsync, SpoolSettings, WhenFull};
pub use reader::{Batch, SpoolReader};
pub use record::age;
use segment::Segment;
pub use writer::{AppendError, SpoolWriter};

use crate::sink_stats::SinkStats;

/// A spool that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spool {dir} is in use by another saltbridge (it holds {dir}/LOCK); two cannot share a state directory")]
    Locked { dir: PathBuf },
}

/// Held (an OS file lock) by the saltbridge that has the spool open.
const LOCK_FILE: &str = "LOCK";

/// Whether a saltbridge has the spool in `dir` open (holds its lock).
pub fn in_use(dir: &Path) -> bool {
    let Ok(f) = File::options().write(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Bookkeeping shared by the writer, the reader and the settling sends.
struct State {
    segments: VecDeque<Segment>,
    /// Next sequence number to write.
    written: u64,
    /// Records below this are in the file and may be read.
    flushed: u64,
    /// Next record the reader hands out.
    read: u64,
    /// Every record below this is settled.
    committed: u64,
    /// Batches handed out and not settled: first -> end.
    outstanding: BTreeMap<u64, u64>,
    bytes: u64,
    /// The writer is gone: the reader ends once it has read everything.
    closed: bool,
    /// `committed` as last written to the ack file.
    ack_written: u64,
    ack_at: Instant,
}

struct Shared {
    dir: PathBuf,
    settings: SpoolSettings,
    state: Mutex<State>,
    readable: tokio::sync::Notify,
    stats: Arc<SinkStats>,
    /// Files the background fsync must sync (the current segment and any just sealed).
    to_sync: SyncList,
    _lock: File,
}

/// Opens (or creates) the spool in `dir`: recovers what a previous run
/// left, and returns the two ends.
pub fn open(
    dir: &Path,
    settings: SpoolSettings,
    keep_raw: bool,
    stats: Arc<SinkStats>,
) -> Result<(SpoolWriter, SpoolReader), SpoolError> {
    let io_err = |source| SpoolError::Io {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io_err)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(SpoolError::Locked {
                dir: dir.to_owned(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
    }
    let (state, corrupt) = recover(dir).map_err(io_err)?;
    stats.corrupt_records.fetch_add(corrupt, Ordering::Relaxed);
    stats
        .queued
        .store(state.written - state.committed, Ordering::Relaxed);
    stats.queued_bytes.store(state.bytes, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        dir: dir.to_owned(),
        settings,
        state: Mutex::new(state),
        readable: tokio::sync::Notify::new(),
        stats,
        to_sync: SyncList::default(),
        _lock: lock,
    });
    let writer = SpoolWriter::new(shared.clone(), keep_raw).map_err(io_err)?;
    if let Fsync::Every(period) = shared.settings.fsync {
        tokio::spawn(sync_every(
            Arc::downgrade(&shared),
            |s: &Shared| &s.to_sync,
            period,
            "spool",
        ));
    }
    Ok((writer, SpoolReader::new(shared)))
}

/// Rebuilds the state from the files: segments checked record by record,
/// damage repaired and counted, a torn tail cut off, settled segments
/// deleted. Also returns the records found lost.
fn recover(dir: &Path) -> io::Result<(State, u64)> {
    let committed_on_disk = read_ack(dir);
    let files = segment::list(dir)?;
    let (mut segments, corrupt) = recovery::recover_segments(files)?;
    let start = segments.front().map_or(0, |s| s.first);
    let mut written = segments.back().map_or(committed_on_disk, |s| s.end());
    if committed_on_disk > written {
        // Numbering new events below the ack would mark them settled unsent.
        tracing::error!(dir = %dir.display(), ack = committed_on_disk, end = written,
            "spool: the ack file is beyond the last record (segments are missing); new events are numbered from the ack");
        written = committed_on_disk;
    }
    let committed = committed_on_disk.clamp(start.min(written), written);
    while segments.len() > 1 && segments.front().is_some_and(|s| s.end() <= committed) {
        if let Some(s) = segments.pop_front() {
            remove(&s.path);
        }
    }
    let bytes = segments.iter().map(|s| s.bytes).sum();
    let state = State {
        segments,
        written,
        flushed: written,
        read: committed,
        committed,
        outstanding: BTreeMap::new(),
        bytes,
        closed: false,
        ack_written: committed,
        ack_at: Instant::now(),
    };
    Ok((state, corrupt))
}

fn read_ack(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("ack"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "spool: cannot delete a settled segment");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the batch that starts at `first` settled; advances `committed`, deletes
    /// what is wholly settled, and writes `ack` now and then.
    fn settle(&self, first: u64) {
        let mut st = self.lock();
        st.outstanding.remove(&first);
        self.advance(&mut st);
        if st.ack_at.elapsed() >= Duration::from_millis(100) {
            self.write_ack(&mut st);
        }
    }

    fn advance(&self, st: &mut State) {
        let committed = st.outstanding.keys().next().copied().unwrap_or(st.read);
        if committed <= st.committed {
            return;
        }
        st.committed = committed;
        self.drop_settled(st);
        self.stats
            .queued
            .store(st.written - st.committed, Ordering::Relaxed);
    }

    /// Deletes the segments before the last that are wholly settled.
    fn drop_settled(&self, st: &mut State) {
        while st.segments.len() > 1 && st.segments.front().is_some_and(|s| s.end() <= st.committed)
        {
            if let Some(s) = st.segments.pop_front() {
                st.bytes -= s.bytes;
                remove(&s.path);
            }
        }
        self.stats.queued_bytes.store(st.bytes, Ordering::Relaxed);
    }

    fn write_ack(&self, st: &mut State) {
        st.ack_at = Instant::now();
        if st.ack_written == st.committed && self.dir.join("ack").exists() {
            return;
        }
        let tmp = self.dir.join("ack.tmp");
        let res = (|| {
            std::fs::write(&tmp, format!("{}\n", st.committed))?;
            if self.settings.fsync == Fsync::Always {
                File::open(&tmp)?.sync_data()?;
            }
            std::fs::rename(&tmp, self.dir.join("ack"))
        })();
        match res {
            Ok(()) => st.ack_written = st.committed,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "spool: cannot write the ack file (settled events may be sent again after a restart)")
            }
        }
    }
}

#[cfg(test)]
mod tests;
