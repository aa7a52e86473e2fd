//! `when_full:` as the journal and the spools both take it: what gives way at
//! `max_bytes` once nothing already delivered is left to delete. Neither
//! policy waits, because the bus reader never does (a Salt 3008 master drops
//! a reader that falls behind). Shared vocabulary: imports none of its users.

use serde::Deserialize;

/// The policy at a disk bound. Either way the loss is counted and logged.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse what comes in until the reader behind catches up: the oldest,
    /// undelivered data is kept (the journal writes a record saying how much
    /// it refused, so the stream shows the hole).
    DropNewest,
    /// Delete the oldest segment, read or not: the newest data is kept.
    DropOldest,
}
