//! saltbridge's state directory, and every path in it. `run` writes it,
//! `dlq` reads it; both ask here rather than join paths themselves.
//!
//! ```text
//! <state-dir>/
//!   spool/<sink>/              one spool per sink (its own files: see `spool`,
//!                              including its LOCK, held while a `run` uses it)
//!   spool/<sink>/inbox/        dead letters handed back by `dlq replay`
//!   dead-letters.jsonl         what no sink would take
//!   dead-letters.replayed      the ids `dlq replay` has put back
//! ```

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

    /// Where sink `name` keeps its spool.
    pub fn spool(&self, name: &str) -> PathBuf {
        self.root.join("spool").join(name)
    }

    /// The inbox of sink `name`'s spool, where `dlq replay` writes.
    pub fn spool_inbox(&self, name: &str) -> PathBuf {
        crate::spool::inbox::dir(&self.spool(name))
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
