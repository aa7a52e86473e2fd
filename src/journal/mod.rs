//! The bus journal: what the source reader read, raw, on disk, before
//! anything else looks at it.
//!
//! A live bus has no replay (Salt's publisher keeps nothing), and a Salt
//! 3008 master disconnects a reader that falls behind, so the reader may
//! wait for nothing but its own disk. Before the journal it handed decoded
//! events to an in-memory channel and dropped them when it was full: a
//! burst of 200,000 events lost 52% of them (issue 13). Now the reader
//! appends each read, as one record of raw bytes, to a segment file here
//! (one `write` per `read`) and reads on; decoding, twins, jobs, routes and
//! the sinks' spools follow from the journal at their own pace.
//!
//! Positions are byte offsets into the one log (segments are named by the
//! offset of their first byte, like Kafka's). The pipeline's durable
//! *cursor* (`cursor`) is the position before which every event is in its
//! sinks' spools; a restart, even after `kill -9`, decodes again from it.
//! Bytes behind the cursor are history: kept for `saltbridge replay` up to
//! `max_age`, and deleted first when `max_bytes` is reached. Only when no
//! history is left does `when_full` give up data, counted
//! (`saltbridge_journal_dropped_bytes_total`). See docs/durability.md.
//!
//! This module knows nothing of Salt or of its users: records carry a kind
//! byte the writer's user chooses (the source module's connect, bytes, end
//! and marker records), a time and bytes.

mod config;
mod cursor;
mod reader;
mod record;
mod writer;

use crate::fsync::{sync_every, SyncList};
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use config::{Fsync, JournalSettings, WhenFull, MIN_MAX_BYTES};
pub use cursor::{Cursor, Position};
pub use reader::{Item, JournalReader, Record};
pub use record::{micros, time};
pub use writer::{AppendError, JournalWriter};

/// Counters the metrics endpoint reads (all zero when there is no journal).
#[derive(Debug, Default)]
pub struct JournalStats {
    /// Bytes appended, record headers included.
    pub appended_bytes: AtomicU64,
    /// Bus bytes given up at the bound (refused, or deleted unread).
    pub dropped_bytes: AtomicU64,
    /// Reads refused at the bound (`drop_newest`).
    pub dropped_reads: AtomicU64,
    /// Records that did not check out when read back (skipped with the rest of their segment).
    pub corrupt_records: AtomicU64,
    /// Bytes on disk now.
    pub disk_bytes: AtomicU64,
    /// Bytes appended and not yet behind the durable cursor.
    pub backlog_bytes: AtomicU64,
}

impl JournalStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Why a journal cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("journal {dir}: {source}")]
pub struct JournalError {
    pub dir: PathBuf,
    #[source]
    pub source: io::Error,
}

/// One segment file.
#[derive(Debug, Clone)]
struct Segment {
    base: u64,
    bytes: u64,
    /// Time of its newest record (µs since the epoch), for `max_age`.
    newest: u64,
    /// Shared: the reader copies its segment for every record it reads.
    path: std::sync::Arc<Path>,
}

impl Segment {
    fn end(&self) -> u64 {
        self.base + self.bytes
    }
}

struct State {
    segments: VecDeque<Segment>,
    /// Offset of the next byte to write.
    end: u64,
    /// Everything before this is in the sinks' spools.
    durable: u64,
    /// The tailing reader's position (what a deleted segment costs).
    read: u64,
    bytes: u64,
}

struct Shared {
    dir: PathBuf,
    settings: JournalSettings,
    state: Mutex<State>,
    appended: tokio::sync::Notify,
    stats: Arc<JournalStats>,
    /// The segment being written, for the background fsync.
    to_sync: SyncList,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, st: &State) {
        self.stats.disk_bytes.store(st.bytes, Ordering::Relaxed);
        self.stats
            .backlog_bytes
            .store(st.end.saturating_sub(st.durable), Ordering::Relaxed);
    }

    /// Deletes the oldest segment (never the one being written).
    fn drop_front(&self, st: &mut State) -> Option<Segment> {
        if st.segments.len() < 2 {
            return None;
        }
        let s = st.segments.pop_front()?;
        st.bytes -= s.bytes;
        if let Err(e) = std::fs::remove_file(&s.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(file = %s.path.display(), error = %e, "journal: cannot delete a segment");
            }
        }
        Some(s)
    }

    /// Deletes history older than `max_age`.
    fn expire(&self, now_micros: u64) {
        let max_age = self.settings.max_age.as_micros() as u64;
        let mut st = self.lock();
        while st.segments.len() > 1
            && st.segments.front().is_some_and(|s| {
                s.end() <= st.durable && s.newest.saturating_add(max_age) < now_micros
            })
        {
            self.drop_front(&mut st);
        }
        self.publish(&st);
    }
}

/// An open journal: one writer, one tailing reader, the durable cursor.
pub struct Journal {
    shared: Arc<Shared>,
    start: Position,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`: lists its segments, cuts a
    /// torn record off the last one, and reads the cursor.
    pub fn open(
        dir: &Path,
        settings: JournalSettings,
        stats: Arc<JournalStats>,
    ) -> Result<Journal, JournalError> {
        let err = |source| JournalError {
            dir: dir.to_owned(),
            source,
        };
        create_dir(dir).map_err(err)?;
        let segments = recover(dir).map_err(err)?;
        let end = segments.back().map_or(0, Segment::end);
        let start = cursor::load(dir);
        let first = segments.front().map_or(end, |s| s.base);
        let durable = start.record.clamp(first, end);
        let bytes = segments.iter().map(|s| s.bytes).sum();
        let state = State {
            segments,
            end,
            durable,
            read: durable,
            bytes,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            settings,
            state: Mutex::new(state),
            appended: tokio::sync::Notify::new(),
            stats,
            to_sync: SyncList::default(),
        });
        shared.publish(&shared.lock());
        let start = if start.record == durable {
            start
        } else {
            Position::at(durable)
        };
        Ok(Journal { shared, start })
    }

    /// Where decoding resumes: the cursor the last run left.
    pub fn start(&self) -> Position {
        self.start
    }

    /// The writer (the source reader's); starts the background fsync.
    pub fn writer(&self) -> io::Result<JournalWriter> {
        let w = JournalWriter::new(self.shared.clone())?;
        if let Fsync::Every(period) = self.shared.settings.fsync {
            tokio::spawn(sync_every(
                Arc::downgrade(&self.shared),
                |s: &Shared| &s.to_sync,
                period,
                "journal",
            ));
        }
        Ok(w)
    }

    /// A reader from `pos` that waits for what is appended (the decoder's).
    pub fn reader(&self, pos: u64) -> JournalReader {
        JournalReader::new(self.shared.clone(), pos, true)
    }

    /// The durable cursor, kept by the pipeline's end.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.shared.clone())
    }

    pub fn stats(&self) -> &Arc<JournalStats> {
        &self.shared.stats
    }
}

/// Reads a journal that another process may be writing (`replay`, `tail
/// --journal`): from its first record (or the first at or after `since`) to
/// the end it had when opened. Takes no lock and changes nothing.
pub fn read_history(dir: &Path, since: Option<u64>) -> Result<JournalReader, JournalError> {
    let err = |source| JournalError {
        dir: dir.to_owned(),
        source,
    };
    let segments: VecDeque<Segment> = list(dir).map_err(err)?.into_iter().collect();
    let end = segments.back().map_or(0, Segment::end);
    let first = segments.front().map_or(0, |s| s.base);
    // The first segment that may hold a record at or after `since`.
    let from = match since {
        Some(t) => segments
            .iter()
            .find(|s| s.newest >= t)
            .map_or(end, |s| s.base),
        None => first,
    };
    let bytes = segments.iter().map(|s| s.bytes).sum();
    let shared = Arc::new(Shared {
        dir: dir.to_owned(),
        settings: JournalSettings::default(),
        state: Mutex::new(State {
            segments,
            end,
            durable: end,
            read: from,
            bytes,
        }),
        appended: tokio::sync::Notify::new(),
        stats: Arc::default(),
        to_sync: SyncList::default(),
    });
    Ok(JournalReader::new(shared, from, false))
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

fn file_name(base: u64) -> String {
    format!("{base:020}.journal")
}

/// The segments in `dir`, oldest first, with their sizes and newest times
/// (the file's modification time: the time of its last append).
fn list(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let base = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".journal"))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(base) = base else { continue };
        let meta = entry.metadata()?;
        let newest = meta.modified().map_or(0, record::micros);
        out.push(Segment {
            base,
            bytes: meta.len(),
            newest,
            path: path.into(),
        });
    }
    out.sort_by_key(|s| s.base);
    Ok(out)
}

/// Lists the segments and cuts a torn record (a write `kill -9` cut short)
/// off the last one. Damage elsewhere is found by the reader and counted.
fn recover(dir: &Path) -> io::Result<VecDeque<Segment>> {
    let mut segments: VecDeque<Segment> = list(dir)?.into_iter().collect();
    if let Some(last) = segments.back_mut() {
        let bytes = std::fs::read(&last.path)?;
        let mut at = 0;
        while let Some(n) = record::check_at(&bytes[at..]) {
            at += n;
        }
        if at < bytes.len() {
            tracing::warn!(file = %last.path.display(), offset = at, bytes = bytes.len() - at,
                "journal: cutting off a torn record at the end: saltbridge was stopped while writing it");
            File::options()
                .write(true)
                .open(&last.path)?
                .set_len(at as u64)?;
            last.bytes = at as u64;
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests;
