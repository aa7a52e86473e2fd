//! The pipeline's durable cursor: the journal position before which every
//! event is in its sinks' spools, in the file `cursor` (`<record> <skip>`).
//!
//! `record` is the offset of a journal record and `skip` how many of its
//! payload bytes are done: a read often ends inside a frame, so the first
//! undone event may start inside a record. The file is written to a
//! temporary name and renamed, so a crash leaves the old or the new one; a
//! cursor that lags only costs events decoded, and delivered, again with
//! the same idempotency key.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::{Fsync, Shared};

/// A place in the journal to resume decoding from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// Offset of the record.
    pub record: u64,
    /// Payload bytes of that record already done.
    pub skip: u32,
}

impl Position {
    pub fn at(record: u64) -> Position {
        Position { record, skip: 0 }
    }
}

const FILE: &str = "cursor";

/// The cursor a previous run left, or the start.
pub fn load(dir: &Path) -> Position {
    let text = std::fs::read_to_string(dir.join(FILE)).unwrap_or_default();
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(record), Some(skip)) => Position {
            record,
            skip: u32::try_from(skip).unwrap_or(0),
        },
        _ => Position::default(),
    }
}

/// The pipeline's handle on the cursor.
pub struct Cursor {
    shared: Arc<Shared>,
    written: Option<Position>,
}

impl Cursor {
    pub(super) fn new(shared: Arc<Shared>) -> Cursor {
        Cursor {
            shared,
            written: None,
        }
    }

    /// Records that everything before `pos` is in the spools: writes the
    /// file (synced with `fsync: always`), and lets the bound and
    /// `max_age` delete what is now history.
    pub fn store(&mut self, pos: Position) {
        if self.written == Some(pos) {
            return;
        }
        let dir = &self.shared.dir;
        let tmp = dir.join("cursor.tmp");
        let res = (|| {
            std::fs::write(&tmp, format!("{} {}\n", pos.record, pos.skip))?;
            if self.shared.settings.fsync == Fsync::Always {
                File::open(&tmp)?.sync_data()?;
            }
            std::fs::rename(&tmp, dir.join(FILE))
        })();
        if let Err(e) = res {
            tracing::warn!(dir = %dir.display(), error = %e,
                "journal: cannot write the cursor (events may be decoded and sent again after a restart)");
            return;
        }
        self.written = Some(pos);
        {
            let mut st = self.shared.lock();
            st.durable = st.durable.max(pos.record);
            self.shared.publish(&st);
        }
        self.shared.expire(super::micros(SystemTime::now()));
    }
}
