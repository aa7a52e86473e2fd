//! The acknowledgements of the batches in flight on one producer: one wake
//! per batch, not per record.
//!
//! rdkafka's `FutureProducer` gives every record a boxed oneshot channel and
//! wakes the sending task once per record; with the join and a timer per
//! record that cost saltbridge 47 µs of CPU per event against the bare
//! producer's 5.3 (`scripts/bench`, Kafka rows, issue 13). Here each record
//! carries a plain number as librdkafka's opaque: its sequence number on the
//! producer. A batch registers the range of numbers it uses before its first
//! record is handed over; the producer's poll thread files each delivery
//! report under its batch (one lock, no allocation) and, when the last one
//! comes, completes the batch's one channel with every record's outcome, in
//! the batch's order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::sink::SendError;

/// One outcome per record of a batch, in the batch's order; `None` for a
/// record whose report has not come (only when the batch is abandoned).
pub type Outcomes = Vec<Option<Result<(), SendError>>>;

/// The batches in flight on one producer, by their first sequence number.
#[derive(Debug, Default)]
pub struct Inflight {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_seq: usize,
    batches: BTreeMap<usize, Batch>,
}

#[derive(Debug)]
struct Batch {
    outcomes: Outcomes,
    remaining: usize,
    done: Option<oneshot::Sender<Outcomes>>,
}

/// A registered batch: its records' sequence numbers start at `first`.
#[derive(Debug)]
pub struct Registered {
    pub first: usize,
    pub len: usize,
    pub done: oneshot::Receiver<Outcomes>,
}

impl Inflight {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while filing a report leaves the map whole: go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a batch of `len` records; `len` must be above 0.
    pub fn register(&self, len: usize) -> Registered {
        let (tx, rx) = oneshot::channel();
        let mut s = self.state();
        let first = s.next_seq;
        s.next_seq = s.next_seq.wrapping_add(len);
        s.batches.insert(
            first,
            Batch {
                outcomes: vec![None; len],
                remaining: len,
                done: Some(tx),
            },
        );
        Registered {
            first,
            len,
            done: rx,
        }
    }

    /// Files the outcome of record `seq` (a delivery report, or a record
    /// that could not be handed over); the batch completes with its last.
    pub fn report(&self, seq: usize, outcome: Result<(), SendError>) {
        let finished = {
            let mut s = self.state();
            let Some((&first, batch)) = s.batches.range_mut(..=seq).next_back() else {
                return; // abandoned at its deadline
            };
            let Some(slot) = batch.outcomes.get_mut(seq - first) else {
                return;
            };
            if slot.is_some() {
                return;
            }
            *slot = Some(outcome);
            batch.remaining -= 1;
            if batch.remaining > 0 {
                return;
            }
            s.batches.remove(&first)
        };
        // The lock is released: the waiting task wakes once, here.
        if let Some(mut batch) = finished {
            if let Some(done) = batch.done.take() {
                let _ = done.send(batch.outcomes);
            }
        }
    }

    /// Gives up on the batch that starts at `first` (its deadline passed):
    /// the outcomes filed so far, or `None` if it completed meanwhile.
    pub fn abandon(&self, first: usize) -> Option<Outcomes> {
        self.state()
            .batches
            .remove(&first)
            .map(|batch| batch.outcomes)
    }

    /// Batches in flight (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().batches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_completes_with_its_last_report_in_its_own_order() {
        let acks = Inflight::default();
        let mut a = acks.register(3);
        let mut b = acks.register(2);
        assert_eq!((a.first, b.first), (0, 3));
        acks.report(4, Ok(()));
        acks.report(2, Err(SendError::reject("too large")));
        acks.report(0, Ok(()));
        acks.report(0, Err(SendError::retry("a second report changes nothing")));
        assert!(a.done.try_recv().is_err(), "record 1 has not been reported");
        acks.report(1, Ok(()));
        let got = a.done.try_recv().unwrap();
        assert_eq!(
            got,
            vec![
                Some(Ok(())),
                Some(Ok(())),
                Some(Err(SendError::reject("too large")))
            ]
        );
        assert!(b.done.try_recv().is_err());
        assert_eq!(acks.abandon(b.first), Some(vec![None, Some(Ok(()))]));
        acks.report(3, Ok(()));
        assert_eq!(
            acks.len(),
            0,
            "a late report of an abandoned batch is dropped"
        );
    }
}
