//! The dead-letter file: events a sink will never take (a 4xx, a record
//! the broker refuses, retries given up, or still queued at shutdown), one
//! JSON object a line, so that nothing accepted is dropped silently and an
//! operator can look and replay.
//!
//! A line: `{"time", "sink", "route", "status", "error", "key", "event": {"tag", "data"}}`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::event::json::write_str;
use crate::outgoing::Outgoing;

/// Appends dead letters to one file; cheap to clone, safe to share.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    path: PathBuf,
    file: Arc<Mutex<Option<std::fs::File>>>,
}

impl DeadLetters {
    /// Dead letters go to `path`, created (with its directory) on first use.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DeadLetters {
            path: path.into(),
            file: Arc::new(Mutex::new(None)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line per event; the file is flushed before returning.
    pub fn write(
        &self,
        sink: &str,
        batch: &[Outgoing],
        status: Option<u16>,
        error: &str,
    ) -> std::io::Result<()> {
        let mut text = Vec::new();
        let time = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
        for o in batch {
            text.extend_from_slice(b"{\"time\":");
            write_str(&mut text, &time);
            text.extend_from_slice(b",\"sink\":");
            write_str(&mut text, sink);
            text.extend_from_slice(b",\"route\":");
            write_str(&mut text, &o.route);
            text.extend_from_slice(b",\"status\":");
            match status {
                Some(s) => text.extend_from_slice(s.to_string().as_bytes()),
                None => text.extend_from_slice(b"null"),
            }
            text.extend_from_slice(b",\"error\":");
            write_str(&mut text, error);
            text.extend_from_slice(b",\"key\":");
            write_str(&mut text, o.key());
            text.extend_from_slice(b",\"event\":");
            o.event.write_json(&mut text);
            text.extend_from_slice(b"}\n");
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(private_append(&self.path)?);
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("dead-letter file not open"))?;
        file.write_all(&text)?;
        file.flush()
    }
}

/// One dead letter as `saltbridge dlq` reads it back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its line number in the file (from 1): stable, since the file is only appended to.
    pub id: u64,
    pub time: Option<SystemTime>,
    pub sink: String,
    pub route: String,
    pub status: Option<u64>,
    pub error: String,
    pub tag: String,
    /// The line as written.
    pub line: String,
    /// Already put back into its sink's spool by `dlq replay`.
    pub replayed: bool,
}

/// The file beside `dead` that records which ids were replayed.
pub fn replayed_path(dead: &Path) -> PathBuf {
    dead.with_extension("replayed")
}

/// Reads every dead letter; a line that cannot be parsed is reported in
/// the second list (by line number) rather than hidden.
pub fn read_all(dead: &Path) -> std::io::Result<(Vec<Entry>, Vec<u64>)> {
    let text = match std::fs::read_to_string(dead) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let replayed: std::collections::HashSet<u64> = std::fs::read_to_string(replayed_path(dead))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let (mut entries, mut bad) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        let id = i as u64 + 1;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            bad.push(id);
            continue;
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
        entries.push(Entry {
            id,
            time: v
                .get("time")
                .and_then(|t| t.as_str())
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
            sink: s("sink"),
            route: s("route"),
            status: v.get("status").and_then(|x| x.as_u64()),
            error: s("error"),
            tag: v
                .pointer("/event/tag")
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .to_owned(),
            line: line.to_owned(),
            replayed: replayed.contains(&id),
        });
    }
    Ok((entries, bad))
}

/// Records that `ids` were replayed.
pub fn mark_replayed(dead: &Path, ids: &[u64]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(replayed_path(dead))?;
    let text: String = ids.iter().map(|i| format!("{i}\n")).collect();
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Opens `path` for appending, created 0600: dead letters hold event data.
fn private_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
