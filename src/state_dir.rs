//! saltbridge's state directory, and every path in it. `run` writes it,
//! `dlq` reads it; both ask here rather than join paths themselves.
//!
//! ```text
//! <state-dir>/
//!   spool/<sink>/              one spool per sink (its own files: see `spool`,
//!                              including its LOCK, held while a `run` uses it)
//!   spool/<sink>/inbox/        dead letters handed back by `dlq replay`
//!   journal/                   the bus journal: raw reads and the cursor (see `journal`)
//!   dead-letters.jsonl         what no sink would take
//!   dead-letters.replayed      the ids `dlq replay` has put back
//!   LOCK                       held (an OS file lock) while a `run` uses the dir
//! ```
//!
//! The directory holds event data (pillar values, returns): `run` creates
//! it 0700 (its files are then out of other users' reach whatever their
//! mode); a directory that exists keeps the mode it was given (systemd's
//! `StateDirectoryMode`). One `run` at a time: two with different sinks
//! would share the dead letters.

use std::path::{Path, PathBuf};

/// The state directory given to `run` and `dlq` (`--state-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory (0700) if it is missing and locks it for
    /// this process: held until the returned lock is dropped.
    pub fn open(&self) -> std::io::Result<StateDirLock> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.root)?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("LOCK"))?;
        match file.try_lock() {
            Ok(()) => Ok(StateDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
                "{} is in use by another saltbridge (it holds {}/LOCK): two cannot share a state directory",
                self.root.display(),
                self.root.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Where sink `name` keeps its spool.
    pub fn spool(&self, name: &str) -> PathBuf {
        self.root.join("spool").join(name)
    }

    /// The inbox of sink `name`'s spool, where `dlq replay` writes.
    pub fn spool_inbox(&self, name: &str) -> PathBuf {
        crate::spool::inbox::dir(&self.spool(name))
    }

    /// The bus journal's directory (see `journal`).
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// When the last run last read an event from the bus (RFC 3339): the
    /// start of the start-up gap that the backfill fills.
    pub fn last_read(&self) -> PathBuf {
        self.root.join("last-read")
    }

    /// The dead-letter file.
    pub fn dead_letters(&self) -> PathBuf {
        self.root.join("dead-letters.jsonl")
    }

    /// The ids of dead letters already replayed.
    pub fn replayed(&self) -> PathBuf {
        crate::delivery::dead_letter::replayed_path(&self.dead_letters())
    }
}

/// The state directory's lock, held while it lives.
#[derive(Debug)]
pub struct StateDirLock {
    _file: std::fs::File,
}

/// Whether `name` can name a sink: it is a path part in the state dir
/// (`spool/<name>/`), so 1 to 64 of `A-Z a-z 0-9 _ -`, not starting with `-`.
pub fn valid_sink_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_names_stay_one_path_part() {
        for good in ["chat", "kafka-prod", "a_1"] {
            assert!(valid_sink_name(good), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "../../x",
            "..",
            ".",
            "-x",
            "a b",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(!valid_sink_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_state_dir_is_private_and_locked() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let lock = state.open().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.root())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let again = state.open().unwrap_err().to_string();
        assert!(again.contains("in use by another saltbridge"), "{again}");
        drop(lock);
        state.open().unwrap();
    }
}
