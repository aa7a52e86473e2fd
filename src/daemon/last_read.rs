//! The time of the last event read from the bus, kept across runs: at
//! start-up, the events from then to now were published while no bridge
//! read the bus, a gap the backfill fills from the job cache (`backfill`).
//! Written about once a second and at the end of a run (a kill loses at
//! most that second, which the backfill's slack covers).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub(super) struct LastRead {
    path: PathBuf,
    seen: Option<SystemTime>,
    stored: Option<SystemTime>,
}

impl LastRead {
    pub(super) fn new(path: PathBuf) -> LastRead {
        LastRead {
            path,
            seen: None,
            stored: None,
        }
    }

    /// What the last run stored, if anything readable.
    pub(super) fn previous(&self) -> Option<SystemTime> {
        read(&self.path)
    }

    pub(super) fn saw(&mut self, at: SystemTime) {
        if self.seen.is_none_or(|s| at > s) {
            self.seen = Some(at);
        }
    }

    /// Writes the latest time seen if it changed (a failure is logged: it
    /// costs the next start-up's backfill, nothing else).
    pub(super) fn store(&mut self) {
        let Some(seen) = self.seen.filter(|s| Some(*s) != self.stored) else {
            return;
        };
        let text = humantime::format_rfc3339_micros(seen).to_string();
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        match written {
            Ok(()) => self.stored = Some(seen),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot store the time of the last event read")
            }
        }
    }
}

fn read(path: &Path) -> Option<SystemTime> {
    let text = std::fs::read_to_string(path).ok()?;
    humantime::parse_rfc3339(text.trim()).ok()
}
