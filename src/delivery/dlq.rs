//! `saltbridge dlq`'s logic: which dead letters a command takes, a dead
//! letter shown whole, and replay (moved here from `src/cli/dlq.rs`, which
//! now only parses and prints).
//!
//! `replay` puts entries back into their sink's spool through the spool's
//! inbox, so it is safe while `saltbridge run` is running (it picks them up
//! within a second) and when it is not (the next start does); replayed ids
//! are recorded in `dead-letters.replayed` and not replayed twice unless
//! asked.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use super::dead_letter::{self, Entry};
use crate::spool::{self, inbox};
use crate::state_dir::StateDir;

/// Which dead letters a command takes.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this sink's.
    pub sink: Option<String>,
    /// Only those dead-lettered since this time.
    pub since: Option<SystemTime>,
    /// Only these ids (all when empty).
    pub ids: Vec<u64>,
    /// Include entries already replayed.
    pub all: bool,
}

impl Filter {
    pub fn keeps(&self, e: &Entry) -> bool {
        (self.all || !e.replayed)
            && self.sink.as_ref().is_none_or(|s| *s == e.sink)
            && self.since.is_none_or(|t| e.time.is_some_and(|et| et >= t))
            && (self.ids.is_empty() || self.ids.contains(&e.id))
    }
}

/// How many entries each sink has, by sink name.
pub fn count_per_sink<'a>(entries: &[&'a Entry]) -> BTreeMap<&'a str, usize> {
    let mut per_sink: BTreeMap<&'a str, usize> = BTreeMap::new();
    for &e in entries {
        *per_sink.entry(&e.sink).or_default() += 1;
    }
    per_sink
}

/// A dead letter whole, as JSON, with its id and whether it was replayed.
pub fn shown(e: &Entry) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&e.line).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("id".into(), e.id.into());
        o.insert("replayed".into(), e.replayed.into());
    }
    v
}

/// What a replay reports as it goes, for a progress bar and a line per sink.
pub enum ReplayStep<'a> {
    /// This many more entries were put back.
    Chunk(usize),
    /// Every chosen entry of `sink` was put back; `running` says whether a
    /// running saltbridge holds the spool (it queues them within a second).
    SinkDone {
        sink: &'a str,
        events: usize,
        running: bool,
    },
}

/// Puts `chosen` back into their sinks' spools and marks them replayed.
pub fn replay<'a>(
    state_dir: &StateDir,
    dead: &Path,
    chosen: &[&'a Entry],
    mut step: impl FnMut(ReplayStep<'a>),
) -> anyhow::Result<()> {
    let mut by_sink: BTreeMap<&'a str, Vec<&'a Entry>> = BTreeMap::new();
    for &e in chosen {
        by_sink.entry(&e.sink).or_default().push(e);
    }
    for (sink, list) in by_sink {
        let spool = state_dir.spool(sink);
        // A batch per inbox file keeps a long replay's progress visible
        // and a crash mid-way cheap to resume (ids are marked per batch).
        for chunk in list.chunks(5_000) {
            let lines: Vec<String> = chunk.iter().map(|e| e.line.clone()).collect();
            let ids: Vec<u64> = chunk.iter().map(|e| e.id).collect();
            inbox::deliver(&spool, &lines).map_err(|e| {
                anyhow::anyhow!("cannot write to {}: {e}", inbox::dir(&spool).display())
            })?;
            dead_letter::mark_replayed(dead, &ids)?;
            step(ReplayStep::Chunk(chunk.len()));
        }
        step(ReplayStep::SinkDone {
            sink,
            events: list.len(),
            running: spool::in_use(&spool),
        });
    }
    Ok(())
}
