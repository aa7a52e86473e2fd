//! Sources: where events come from, one file per transport.
//!
//! A source reads, decodes and hands each [`Event`] to an [`EventSender`],
//! the bounded channel to the next stage. Live sources (`ipc`, `tcp`, `zmq`)
//! never wait on that channel: a Salt 3008 master disconnects a reader that
//! falls 10,000 events behind, and the bus has no replay, so when the channel
//! is full (in events or in bytes) the event is dropped, counted and logged, and a
//! `saltbridge/bus/overflow` marker follows once there is room again. File
//! sources (`jsonl`, `capture`) have no master to lose, so they wait instead.
//!
//! The daemon puts the journal (`crate::journal`) between a unix or TCP
//! bus and everything else ([`spawn_journaled`]): the reader appends what
//! it reads to disk and waits for nothing else, and the channel is fed by
//! the journal's decoder, which may wait. Nothing read is dropped then
//! while the journal is under its bound.
//!
//! saltbridge only ever connects to the master's *publish* side
//! (`master_event_pub.ipc`, TCP 4512, the ZeroMQ PUB): it is read-only by
//! construction and never opens `master_event_pull.ipc`.

pub mod capture;
pub mod channel;
pub mod ipc;
mod journal_decode;
mod journaled;
pub mod jsonl;
pub mod master_config;
mod reconnect;
pub mod saltapi;
mod spec;
mod stream;
pub mod tcp;
pub mod zmq;
mod zmq_guard;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::decode::DEFAULT_MAX_FRAME;
use crate::event::Event;
use crate::journal::{Journal, JournalStats, Position};
use crate::shutdown::Shutdown;
pub use channel::EventReceiver;
use channel::{BytesSender, TrySendError};
pub use journal_decode::{for_each_in_journal, JournalScan};
pub use spec::{SourceSpec, SpecError, DEFAULT_IPC_SOCKET, DEFAULT_TCP_ADDR};

/// Default bound of the channel to the pipeline in bytes (see `channel`).
pub const DEFAULT_CHANNEL_MAX_BYTES: usize = 64 << 20;

/// Tag of the marker emitted after a reconnect.
pub const GAP_TAG: &str = "saltbridge/bus/gap";
/// Tag of the marker emitted after events were dropped on a full channel.
pub const OVERFLOW_TAG: &str = "saltbridge/bus/overflow";

/// Tunables shared by every source.
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// Events buffered between the reader and the next stage.
    pub channel_capacity: usize,
    /// Bytes those events may hold ([`Event::heap_bytes`]).
    pub channel_max_bytes: usize,
    /// Largest accepted frame; see `decode::framing`.
    pub max_frame: usize,
    /// How long a peer may stay silent in the middle of a frame before the
    /// connection is dropped and made again (a gap marker follows). Salt
    /// writes each frame whole, so a frame cut short and never finished is a
    /// stalled or hostile peer, not a quiet bus; a quiet bus between frames
    /// is never timed out.
    pub stall_timeout: Duration,
    /// First reconnect delay; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            channel_capacity: 65_536,
            channel_max_bytes: DEFAULT_CHANNEL_MAX_BYTES,
            max_frame: DEFAULT_MAX_FRAME,
            stall_timeout: Duration::from_secs(30),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Counters a source keeps; read by `status` and the metrics endpoint.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub events: AtomicU64,
    pub bytes: AtomicU64,
    pub malformed: AtomicU64,
    pub malformed_bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub connects: AtomicU64,
    pub gaps: AtomicU64,
    pub gap_millis: AtomicU64,
    /// True while a live source holds a connection to the bus (a file
    /// source: once its file is open); `/readyz` answers from it.
    pub connected: AtomicBool,
    /// The journal's counters (zero without one).
    pub journal: Arc<JournalStats>,
}

impl SourceStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }
}

/// Why a source stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Zmq(String),
    /// salt-api refused the credentials, or is not salt-api.
    #[error("{0}")]
    SaltApi(String),
}

/// The source's end of the channel to the next stage.
#[derive(Debug)]
pub struct EventSender {
    tx: BytesSender,
    wait_when_full: bool,
    stats: Arc<SourceStats>,
    source: Arc<str>,
    dropped_run: u64,
    last_drop_log: Option<Instant>,
}

/// Returned when the next stage has gone away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverGone;

impl EventSender {
    /// Sends `ev` on. A live source never waits: a full channel drops the event.
    /// After a run of drops, a `saltbridge/bus/overflow` marker goes first.
    pub async fn send(&mut self, ev: Event) -> Result<(), ReceiverGone> {
        if self.wait_when_full {
            return self.tx.send(ev).await.map_err(|_| ReceiverGone);
        }
        if self.dropped_run > 0 {
            let marker = Event::synthetic(
                OVERFLOW_TAG,
                json!({"source": &*self.source, "dropped": self.dropped_run}),
                self.source.clone(),
            );
            match self.tx.try_send(marker) {
                Ok(()) => {
                    tracing::error!(source = %self.source, dropped = self.dropped_run,
                        "event channel has room again after dropping events");
                    self.dropped_run = 0;
                }
                Err(TrySendError::Full(_)) => {
                    self.drop_one();
                    return Ok(());
                }
                Err(TrySendError::Closed) => return Err(ReceiverGone),
            }
        }
        match self.tx.try_send(ev) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.drop_one();
                Ok(())
            }
            Err(TrySendError::Closed) => Err(ReceiverGone),
        }
    }

    fn drop_one(&mut self) {
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_run += 1;
        let now = Instant::now();
        if self
            .last_drop_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_drop_log = Some(now);
            tracing::error!(
                source = %self.source,
                dropped_now = self.dropped_run,
                dropped_total = SourceStats::get(&self.stats.dropped),
                "event channel full: dropping events so that the master does not \
                 disconnect this reader; the next stage is slower than the bus"
            );
        }
    }

    /// Sends `ev` with the journal position after it, waiting while the
    /// channel is full (the journal's decoder: it reads from disk).
    pub async fn send_at(&mut self, ev: Event, at: Position) -> Result<(), ReceiverGone> {
        self.tx
            .send_at(ev, Some(at))
            .await
            .map_err(|_| ReceiverGone)
    }

    /// Sends a marker event made by saltbridge.
    pub async fn send_marker(
        &mut self,
        tag: &str,
        data: serde_json::Value,
    ) -> Result<(), ReceiverGone> {
        let ev = Event::synthetic(tag, data, self.source.clone());
        self.send(ev).await
    }

    /// The spec this sender's events come from, as text.
    pub fn source(&self) -> &Arc<str> {
        &self.source
    }

    pub fn stats(&self) -> &Arc<SourceStats> {
        &self.stats
    }
}

/// A started source: the receiving end of its channel and its counters.
pub struct SourceHandle {
    pub events: EventReceiver,
    pub stats: Arc<SourceStats>,
    pub task: tokio::task::JoinHandle<Result<(), SourceError>>,
}

/// Starts reading `spec` on a task of its own.
pub fn spawn(spec: SourceSpec, opts: ReaderOptions, shutdown: Shutdown) -> SourceHandle {
    let (tx, rx) = channel::channel(opts.channel_capacity, opts.channel_max_bytes);
    let stats = Arc::new(SourceStats::default());
    let sender = EventSender {
        tx,
        wait_when_full: !spec.is_live(),
        stats: stats.clone(),
        source: Arc::from(spec.to_string()),
        dropped_run: 0,
        last_drop_log: None,
    };
    let task = tokio::spawn(run(spec, opts, sender, shutdown));
    SourceHandle {
        events: rx,
        stats,
        task,
    }
}

/// Starts reading `spec` (a unix or TCP bus, [`SourceSpec::is_journaled`])
/// into `journal` on a task of its own, and decoding the journal from its
/// cursor into the returned channel on another.
pub fn spawn_journaled(
    spec: SourceSpec,
    opts: ReaderOptions,
    journal: &Journal,
    shutdown: Shutdown,
) -> std::io::Result<SourceHandle> {
    let writer = journal.writer()?;
    let start = journal.start();
    let reader = journal.reader(start.record);
    let (tx, rx) = channel::channel(opts.channel_capacity, opts.channel_max_bytes);
    let stats = Arc::new(SourceStats {
        journal: journal.stats().clone(),
        ..SourceStats::default()
    });
    let source: Arc<str> = Arc::from(spec.to_string());
    let sender = EventSender {
        tx,
        wait_when_full: true,
        stats: stats.clone(),
        source: source.clone(),
        dropped_run: 0,
        last_drop_log: None,
    };
    let tail = Arc::new(journaled::Tail::default());
    let outlet = journaled::JournalOutlet {
        writer,
        stats: stats.clone(),
        source,
        tail: tail.clone(),
    };
    let max_frame = opts.max_frame;
    let decoding = tokio::spawn(journal_decode::decode(
        reader,
        start,
        sender,
        tail,
        max_frame,
        shutdown.clone(),
    ));
    let task = tokio::spawn(async move {
        let res = read_journaled(spec, opts, outlet, shutdown).await;
        let _ = decoding.await;
        res
    });
    Ok(SourceHandle {
        events: rx,
        stats,
        task,
    })
}

async fn read_journaled(
    spec: SourceSpec,
    opts: ReaderOptions,
    mut outlet: journaled::JournalOutlet,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    match spec {
        SourceSpec::Ipc(path) => ipc::read(path, &opts, &mut outlet, &mut shutdown).await,
        SourceSpec::Tcp(addr) => tcp::read(addr, &opts, &mut outlet, &mut shutdown).await,
        other => {
            return Err(SourceError::Zmq(format!(
                "{other} cannot be read into the journal"
            )))
        }
    }
    Ok(())
}

/// Reads `spec` until it ends (files), the receiver goes, or shutdown.
pub async fn run(
    spec: SourceSpec,
    opts: ReaderOptions,
    sender: EventSender,
    shutdown: Shutdown,
) -> Result<(), SourceError> {
    match spec {
        SourceSpec::Ipc(path) => ipc::run(path, opts, sender, shutdown).await,
        SourceSpec::Tcp(addr) => tcp::run(addr, opts, sender, shutdown).await,
        SourceSpec::Zmq(endpoint) => zmq::run(endpoint, opts, sender, shutdown).await,
        SourceSpec::SaltApi { url, settings } => {
            saltapi::run(url, settings, opts, sender, shutdown).await
        }
        SourceSpec::Jsonl(path) => jsonl::run(path, sender, shutdown).await,
        SourceSpec::Capture(path) => capture::run(path, opts, sender, shutdown).await,
        SourceSpec::Journal { dir, since, until } => {
            journal_decode::run_history(dir, since, until, sender, shutdown).await
        }
    }
}
