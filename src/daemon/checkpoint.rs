//! The pipeline's durable cursor into the journal: how far every event is
//! in its sinks' spools, so that a restart (even after `kill -9`) decodes
//! again from there and loses nothing that reached the journal.
//!
//! An event's journal position is safe once its outcomes are written to
//! the spools, *and* the twin filter holds nothing that came before it: a
//! held legacy event is in no spool yet. Holds end within the twin window
//! (`twins.window`, 2 s by default), so a position recorded while something
//! was held becomes safe when the filter is next empty, or at the latest a
//! window (plus a second's slack for the tick) after it was recorded. A
//! trimmed return waiting for the job cache (`complete_trimmed`) is held
//! too, up to `backfill.trimmed.wait`: the longer of the two is the hold. The
//! cursor is written after the spools are flushed, at most every 100 ms.
//! Job summaries are made from the tracker's memory and are not in the
//! journal: a kill loses the summaries of jobs still open, as before.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::journal::{Cursor, Position};

/// How often the cursor file is rewritten at most.
const STORE_EVERY: Duration = Duration::from_millis(100);
/// At most one pending position per this much time.
const PENDING_EVERY: Duration = Duration::from_millis(50);

pub(super) struct Checkpoints {
    cursor: Cursor,
    /// How long a hold may last, with slack for the tick that ends it.
    hold: Duration,
    latest: Option<Position>,
    safe: Option<Position>,
    /// Positions recorded while events were held, with when.
    pending: VecDeque<(Instant, Position)>,
    stored_at: Option<Instant>,
}

impl Checkpoints {
    /// `longest_hold`: the longest time the pipeline holds an event.
    pub(super) fn new(cursor: Cursor, longest_hold: Duration) -> Checkpoints {
        Checkpoints {
            cursor,
            hold: longest_hold + Duration::from_secs(1),
            latest: None,
            safe: None,
            pending: VecDeque::new(),
            stored_at: None,
        }
    }

    /// After one step of the pipeline.
    pub(super) fn note(&mut self, at: Option<Position>, held: usize, now: Instant) {
        if let Some(p) = at {
            self.latest = Some(p);
        }
        let Some(latest) = self.latest else { return };
        if held == 0 {
            self.safe = Some(latest);
            self.pending.clear();
        } else if at.is_some()
            && self
                .pending
                .back()
                .is_none_or(|(t, _)| now.duration_since(*t) >= PENDING_EVERY)
        {
            self.pending.push_back((now, latest));
        }
    }

    /// After the spools were flushed: writes the cursor now and then.
    pub(super) fn store(&mut self, now: Instant) {
        while let Some(&(t, p)) = self.pending.front() {
            if now.duration_since(t) < self.hold {
                break;
            }
            self.safe = Some(p);
            self.pending.pop_front();
        }
        if self
            .stored_at
            .is_some_and(|t| now.duration_since(t) < STORE_EVERY)
        {
            return;
        }
        self.stored_at = Some(now);
        if let Some(p) = self.safe {
            self.cursor.store(p);
        }
    }

    /// At a stop, once the pipeline released everything and the spools are
    /// flushed: everything taken is in them.
    pub(super) fn finish(&mut self) {
        if let Some(p) = self.latest {
            self.cursor.store(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, JournalSettings};

    #[test]
    fn a_position_is_safe_when_nothing_is_held_or_a_hold_has_surely_ended() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _g = rt.enter();
        let j = Journal::open(dir.path(), JournalSettings::default(), Default::default()).unwrap();
        let mut c = Checkpoints::new(j.cursor(), Duration::from_secs(2));
        let t0 = Instant::now();
        c.note(Some(Position::at(10)), 0, t0);
        c.note(Some(Position::at(20)), 1, t0);
        c.store(t0);
        assert_eq!(crate::journal::Position::at(10), read(dir.path()));
        c.note(Some(Position::at(30)), 1, t0 + Duration::from_millis(10));
        c.store(t0 + Duration::from_secs(2));
        assert_eq!(Position::at(10), read(dir.path()), "still within the hold");
        c.store(t0 + Duration::from_secs(4));
        assert_eq!(Position::at(20), read(dir.path()));
        c.note(None, 0, t0 + Duration::from_secs(5));
        c.store(t0 + Duration::from_secs(5));
        assert_eq!(Position::at(30), read(dir.path()));
    }

    fn read(dir: &std::path::Path) -> Position {
        let t = std::fs::read_to_string(dir.join("cursor")).unwrap();
        let mut it = t.split_whitespace();
        Position {
            record: it.next().unwrap().parse().unwrap(),
            skip: it.next().unwrap().parse().unwrap(),
        }
    }
}
