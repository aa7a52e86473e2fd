//! The channel between a source and the pipeline, bounded twice: in events
//! (`channel_capacity`) and in bytes (`channel_max_bytes`).
//!
//! A bound in events alone lets a few large events take a lot of memory:
//! 65,536 events of 4 MB each (a minion can fire one: `max_event_size` is
//! off by default on a master) are 256 GB; measured, 4 MB events took a
//! 683 MB peak. So the sender also counts the bytes each queued event holds
//! ([`Event::heap_bytes`]) and treats the channel as full when the next
//! event would pass the byte bound. One event larger than the whole bound
//! still passes an empty channel: the frame size limit (`--max-frame`)
//! bounds it, and refusing it would lose it for nothing.
//!
//! Behind a journal (`source::journaled`) the sender is the journal's
//! decoder, which waits when the channel is full: the bus reader is not
//! behind this channel any more, so a full channel slows the decoding of
//! what is on disk, never the reading. Each event then carries the journal
//! position after it, which the pipeline's end makes its durable cursor.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::event::Event;
use crate::journal::Position;

/// An event and, for a journaled source, the journal position after it.
type Item = (Event, Option<Position>);

/// Bytes queued, shared by both ends.
#[derive(Debug)]
struct Queued {
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Woken when the receiver takes an event (a waiting file source).
    taken: Notify,
    /// Senders waiting on `taken`: the receiver wakes only when there are
    /// some, so a live source's hot path takes no lock per event.
    waiting: AtomicUsize,
}

/// Makes a channel bounded by `capacity` events and `max_bytes` bytes.
pub fn channel(capacity: usize, max_bytes: usize) -> (BytesSender, EventReceiver) {
    let (tx, rx) = mpsc::channel::<Item>(capacity.max(1));
    let queued = Arc::new(Queued {
        bytes: AtomicUsize::new(0),
        max_bytes: max_bytes.max(1),
        taken: Notify::new(),
        waiting: AtomicUsize::new(0),
    });
    (
        BytesSender {
            tx,
            queued: queued.clone(),
        },
        EventReceiver {
            rx,
            queued,
            position: None,
        },
    )
}

/// Why an event was not queued. `Full` hands the event back, as tokio's
/// `TrySendError` does; boxing it would cost an allocation per full send.
#[derive(Debug)]
pub enum TrySendError {
    /// The channel is at one of its bounds; the event comes back.
    Full(Event),
    /// The receiver has gone.
    Closed,
}

/// The sending end.
#[derive(Debug)]
pub struct BytesSender {
    tx: mpsc::Sender<Item>,
    queued: Arc<Queued>,
}

impl BytesSender {
    /// Queues `ev` if both bounds allow it; never waits.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, ev: Event) -> Result<(), TrySendError> {
        self.try_send_at(ev, None)
    }

    /// Queues `ev` with the journal position after it; never waits.
    #[allow(clippy::result_large_err)]
    pub fn try_send_at(&self, ev: Event, at: Option<Position>) -> Result<(), TrySendError> {
        let cost = ev.heap_bytes();
        let now = self.queued.bytes.load(Ordering::Acquire);
        if now > 0 && now.saturating_add(cost) > self.queued.max_bytes {
            return Err(TrySendError::Full(ev));
        }
        // Counted before the send so the receiver never subtracts first.
        self.queued.bytes.fetch_add(cost, Ordering::AcqRel);
        match self.tx.try_send((ev, at)) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.bytes.fetch_sub(cost, Ordering::AcqRel);
                match e {
                    mpsc::error::TrySendError::Full((ev, _)) => Err(TrySendError::Full(ev)),
                    mpsc::error::TrySendError::Closed(_) => Err(TrySendError::Closed),
                }
            }
        }
    }

    /// Queues `ev`, waiting while the channel is at a bound (file sources).
    #[allow(clippy::result_large_err)]
    pub async fn send(&self, ev: Event) -> Result<(), TrySendError> {
        self.send_at(ev, None).await
    }

    /// Queues `ev` with the journal position after it, waiting while the
    /// channel is at a bound (the journal's decoder).
    #[allow(clippy::result_large_err)]
    pub async fn send_at(&self, mut ev: Event, at: Option<Position>) -> Result<(), TrySendError> {
        loop {
            // Registered before the check, so a take between the check and
            // the wait still wakes this sender.
            let taken = self.queued.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            self.queued.waiting.fetch_add(1, Ordering::AcqRel);
            let sent = self.try_send_at(ev, at);
            let closed = match sent {
                Err(TrySendError::Full(back)) => {
                    ev = back;
                    tokio::select! {
                        _ = &mut taken => false,
                        _ = self.tx.closed() => true,
                    }
                }
                other => {
                    self.queued.waiting.fetch_sub(1, Ordering::AcqRel);
                    return other;
                }
            };
            self.queued.waiting.fetch_sub(1, Ordering::AcqRel);
            if closed {
                return Err(TrySendError::Closed);
            }
        }
    }
}

/// The receiving end: the pipeline's.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<Item>,
    queued: Arc<Queued>,
    /// The journal position after the last event taken that had one.
    position: Option<Position>,
}

impl EventReceiver {
    /// The next event; `None` once the source has ended and all is taken.
    pub async fn recv(&mut self) -> Option<Event> {
        let item = self.rx.recv().await;
        self.took(item)
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Result<Event, mpsc::error::TryRecvError> {
        let item = self.rx.try_recv()?;
        self.took(Some(item))
            .ok_or(mpsc::error::TryRecvError::Disconnected)
    }

    /// The journal position after the events taken since the last call
    /// (`None` when none of them had one).
    pub fn take_position(&mut self) -> Option<Position> {
        self.position.take()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.bytes.load(Ordering::Acquire)
    }

    fn took(&mut self, item: Option<Item>) -> Option<Event> {
        let (ev, at) = item?;
        if at.is_some() {
            self.position = at;
        }
        self.queued
            .bytes
            .fetch_sub(ev.heap_bytes(), Ordering::AcqRel);
        if self.queued.waiting.load(Ordering::Acquire) > 0 {
            self.queued.taken.notify_waiters();
        }
        Some(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(pad: usize) -> Event {
        Event::synthetic("t", json!({"pad": "x".repeat(pad)}), Arc::from("test"))
    }

    #[test]
    fn the_byte_bound_fills_the_channel_before_the_event_bound() {
        let (tx, mut rx) = channel(1000, 10_000);
        let mut sent = 0;
        while tx.try_send(event(1000)).is_ok() {
            sent += 1;
        }
        assert!(
            (8..=10).contains(&sent),
            "{sent} events of ~1.1 KB under 10 KB"
        );
        assert!(rx.queued_bytes() <= 10_000);
        assert!(rx.try_recv().is_ok());
        assert!(tx.try_send(event(1000)).is_ok(), "room again after a take");
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.queued_bytes(), 0);
    }

    #[test]
    fn one_event_larger_than_the_bound_passes_an_empty_channel() {
        let (tx, mut rx) = channel(10, 1000);
        assert!(tx.try_send(event(5000)).is_ok());
        assert!(matches!(tx.try_send(event(1)), Err(TrySendError::Full(_))));
        assert!(rx.try_recv().is_ok());
        assert_eq!(rx.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_waiting_sender_goes_on_when_the_receiver_takes() {
        let (tx, mut rx) = channel(10, 2000);
        tx.try_send(event(1500)).unwrap();
        let waiting = tokio::spawn(async move { tx.send(event(1500)).await.is_ok() });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        assert!(rx.recv().await.is_some());
        assert!(waiting.await.unwrap());
        assert!(rx.recv().await.is_some());
    }
}
