//! The spool's inbox: how `saltbridge dlq replay` hands events back to a
//! sink without writing to a spool that a running saltbridge owns.
//!
//! `replay` writes a file of dead-letter lines into `<spool>/inbox/` under
//! a temporary name and renames it into place when complete; the spool's
//! writer (a running `saltbridge run`, or the next one to start) appends
//! its events to the spool and deletes the file. A file is imported whole
//! or, when the spool fills up, the rest is kept for the next try.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{AppendError, SpoolWriter};
use crate::event::{Event, JsonText};
use crate::outgoing::Outgoing;

/// The inbox directory of the spool in `spool_dir`.
pub fn dir(spool_dir: &Path) -> PathBuf {
    spool_dir.join("inbox")
}

/// Writes dead-letter `lines` for the spool in `spool_dir` atomically;
/// returns the file's path.
pub fn deliver(spool_dir: &Path, lines: &[String]) -> io::Result<PathBuf> {
    let d = dir(spool_dir);
    std::fs::create_dir_all(&d)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |t| t.as_nanos());
    let name = format!("{stamp:024}-{}", std::process::id());
    let tmp = d.join(format!("{name}.tmp"));
    let mut f = io::BufWriter::new(std::fs::File::create(&tmp)?);
    for l in lines {
        f.write_all(l.trim_end().as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let path = d.join(format!("{name}.jsonl"));
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

#[derive(Deserialize)]
struct Line<'a> {
    route: String,
    #[serde(borrow)]
    event: LineEvent<'a>,
}

#[derive(Deserialize)]
struct LineEvent<'a> {
    tag: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Parses one dead-letter line back into what was sent. The data keeps
/// its exact JSON text, so the idempotency key is the original one.
pub fn parse_line(line: &str) -> Result<Outgoing, serde_json::Error> {
    let l: Line = serde_json::from_str(line)?;
    let ev = Event::new(
        l.event.tag,
        JsonText::trusted(l.event.data.get().to_owned()),
        SystemTime::now(),
        Arc::from("saltbridge/replay"),
        None,
    );
    Ok(Outgoing::new(ev, l.route))
}

/// Imports every complete inbox file into `writer`; returns the events
/// imported.
pub fn import(writer: &mut SpoolWriter) -> usize {
    let d = dir(writer.dir());
    let Ok(entries) = std::fs::read_dir(&d) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut total = 0;
    for path in files {
        match import_file(writer, &path) {
            Ok(n) => total += n,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "spool: cannot import replayed events; will try again");
                break;
            }
        }
    }
    if total > 0 {
        if let Err(e) = writer.flush() {
            tracing::error!(error = %e, "spool: cannot flush replayed events");
        }
        tracing::info!(events = total, dir = %d.display(), "replayed dead letters are queued again");
    }
    total
}

fn import_file(writer: &mut SpoolWriter, path: &Path) -> io::Result<usize> {
    let f = std::fs::File::open(path)?;
    let lines: Vec<String> = io::BufReader::new(f).lines().collect::<io::Result<_>>()?;
    let mut n = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let o = match parse_line(line) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(file = %path.display(), line = i + 1, error = %e, "spool: a replayed line is not a dead letter; skipped");
                continue;
            }
        };
        match writer.append(&o) {
            Ok(()) => n += 1,
            Err(AppendError::Full { .. }) => {
                // Keep the rest for later; what was appended is not repeated.
                writer.flush()?;
                let rest = lines[i..].join("\n") + "\n";
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, rest)?;
                std::fs::rename(&tmp, path)?;
                return Err(io::Error::other("the spool is full"));
            }
            Err(AppendError::Io(e)) => return Err(e),
        }
    }
    writer.flush()?;
    std::fs::remove_file(path)?;
    Ok(n)
}
