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

use crate::decode::json::write_str;
use crate::sink::Outgoing;

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
            write_str(&mut text, &o.key);
            text.extend_from_slice(b",\"event\":");
            o.event.write_json(&mut text);
            text.extend_from_slice(b"}\n");
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("dead-letter file not open"))?;
        file.write_all(&text)?;
        file.flush()
    }
}
