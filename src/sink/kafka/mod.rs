//! The Kafka sink: produces routed events to a Kafka topic through librdkafka.
//!
//! One producer is built per sink when the configuration is loaded and
//! shared by every send; librdkafka batches, compresses and retries inside it.
//! [`KafkaSink::send`] enqueues a whole batch in order, then waits for every
//! delivery report, so a batch is acknowledged only when the broker has every
//! record (with `acks=all` by default, since the producer is idempotent). The
//! outcome is classified as the `delivery` module expects: delivered, worth
//! retrying, or rejected for good (see `classify`). Record format and
//! settings: docs/sinks-kafka.md.
//!
//! The producer is rdkafka's `ThreadedProducer`, whose own thread polls
//! delivery reports; each is filed under its batch (`acks`), whose task
//! wakes once, at the batch's last acknowledgement. Records are built into
//! one reused [`Record`] (librdkafka copies it). rdkafka's `FutureProducer`
//! (a oneshot, a wake and a timer per record) cost 47 µs of CPU per event
//! against 5.3 for a bare producer on the same broker (`scripts/bench`).
//!
//! Files, as for every sink: `config` (settings and checks); the pure record
//! builders `record` and `template`; `classify` (what an error means); here,
//! in `producer` and in `acks` the transport. At shutdown the delivery worker calls
//! [`KafkaSink::flush`] (through `Deliver::close`).

mod acks;
mod classify;
mod config;
mod producer;
mod record;
mod template;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::util::Timeout;

pub use classify::{classify, classify_code, Class, REJECT, RETRY};
pub use config::{KafkaConfig, COMPRESSIONS, PAYLOADS, RESERVED_HEADER_PREFIX};
pub use record::{
    check_topic, json_payload, msgpack_payload, Record, RecordBuilder, HEADER_KEY, HEADER_MASTER,
    HEADER_ROUTE, HEADER_TAG,
};

use crate::event::Event;
use crate::outgoing::Outgoing;
use crate::sink::{SendError, SinkConfigError};
use producer::Kafka;

/// How long [`KafkaSink::send`] waits past `timeout` for librdkafka's own
/// report before it gives up on a record (its timer runs about once a second).
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// Most records the delivery worker hands over in one batch: Kafka batches
/// everything queued, up to this many records or [`BATCH_BYTES`].
pub const BATCH_EVENTS: usize = 1_000;
/// Most bytes of one batch.
pub const BATCH_BYTES: usize = 16 << 20;
/// Batches the delivery worker keeps in flight at once: enqueued in spool
/// order by one task, their acknowledgements awaited apart. librdkafka's
/// idempotent producer keeps each partition's order with up to 5 requests
/// in flight per broker, whatever this is; this only keeps its queue fed
/// while earlier batches wait for their acks. 32, and 64 with batches of
/// at most 1 MiB, drained a backlog no faster than 8 (`scripts/bench --only
/// kafka`, issue 13) and doubled the peak RSS.
pub const BATCHES_IN_FLIGHT: usize = 8;

/// How often a full local queue is tried again while a batch is enqueued.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(20);

/// After this many sends in a row in which nothing was delivered and nothing
/// refused, the producer is replaced by a new one (see `after_send`).
const REBUILD_AFTER_STALLED_SENDS: u32 = 3;

/// A `type: kafka` sink.
pub struct KafkaSink {
    // Boxed, as the webhook's builder: keeps `Sink`'s variants of a size.
    records: Box<RecordBuilder>,
    /// What a send's acknowledgements need after the send has handed its
    /// records over: shared, so that they are awaited apart from it.
    slot: Arc<ProducerSlot>,
}

/// The sink's producer, replaced when it cannot recover (see `after_send`).
struct ProducerSlot {
    name: String,
    config: KafkaConfig,
    producer: RwLock<Arc<Kafka>>,
    /// Sends in a row that delivered nothing and had nothing refused.
    stalled: AtomicU32,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("name", &self.slot.name)
            .field("config", &self.slot.config)
            .finish_non_exhaustive()
    }
}

/// A send whose records librdkafka has, in order: awaiting it gives one
/// outcome per record, in the batch's order.
pub type KafkaAcks = Pin<Box<dyn Future<Output = Vec<Result<(), SendError>>> + Send>>;

impl KafkaSink {
    /// Builds the sink `name` from its settings. Errors name the field; an
    /// option librdkafka does not know or accept is an error. Connecting to
    /// the brokers starts in the background; nothing here waits for it.
    pub fn from_config(
        name: &str,
        value: &serde_json::Value,
    ) -> Result<KafkaSink, SinkConfigError> {
        let config = KafkaConfig::parse(name, value)?;
        let records = Box::new(RecordBuilder::new(name, &config)?);
        let producer = producer::build(name, &config)?;
        Ok(KafkaSink {
            records,
            slot: Arc::new(ProducerSlot {
                name: name.to_string(),
                config,
                producer: RwLock::new(Arc::new(producer)),
                stalled: AtomicU32::new(0),
            }),
        })
    }

    /// Checks the settings of sink `name` as [`from_config`](Self::from_config)
    /// does, without creating a producer (which would start connecting).
    pub fn check_config(name: &str, value: &serde_json::Value) -> Result<(), SinkConfigError> {
        let config = KafkaConfig::parse(name, value)?;
        RecordBuilder::new(name, &config).map(|_| ())
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.slot.config
    }

    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// Produces every record of `batch` and waits for the broker's acks.
    ///
    /// Ok when every record was delivered. Otherwise the first record that
    /// failed with a retriable error makes the whole batch a
    /// [`SendError::Retry`] (re-sending the delivered ones is harmless: each
    /// carries its idempotency key); a batch whose failures are all rejects is
    /// a [`SendError::Reject`]. [`KafkaSink::send_each`] gives the outcome per
    /// record. Returns within `timeout` plus at most 5 s.
    pub async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        summarize(&self.send_each(batch).await)
    }

    /// [`send`](Self::send) in two steps: hands every record of `batch` to
    /// librdkafka in order (waiting only while its local queue is full), and
    /// returns the future of the outcome. The delivery worker calls this for
    /// one batch after another from one task, so records reach librdkafka in
    /// bus order, and awaits the outcomes apart: several batches are in
    /// flight while the idempotent producer keeps each partition's order.
    pub async fn start(&self, batch: &[Outgoing]) -> crate::sink::Outcome {
        let acks = self.start_each(batch).await;
        Box::pin(async move { summarize(&acks.await) })
    }

    /// Produces every record of `batch` in order and returns one outcome per
    /// record, in the same order.
    pub async fn send_each(&self, batch: &[Outgoing]) -> Vec<Result<(), SendError>> {
        self.start_each(batch).await.await
    }

    /// Hands every record of `batch` to librdkafka in order; the returned
    /// future waits for their delivery reports (one outcome per record).
    pub async fn start_each(&self, batch: &[Outgoing]) -> KafkaAcks {
        let slot = Arc::clone(&self.slot);
        if batch.is_empty() {
            return Box::pin(std::future::ready(Vec::new()));
        }
        let producer = slot.current_producer();
        let deadline = Instant::now() + slot.config.timeout;
        let inflight = &producer.context().acks;
        let registered = inflight.register(batch.len());
        // Enqueue in batch order; librdkafka keeps that order per partition.
        let mut rec = Record::default();
        for (i, o) in batch.iter().enumerate() {
            let seq = registered.first.wrapping_add(i);
            let queued = match self.records.build_into(o, &mut rec) {
                Ok(()) => enqueue(&producer, &rec, seq, deadline).await,
                Err(reason) => Err(SendError::reject(reason)),
            };
            if let Err(e) = queued {
                inflight.report(seq, Err(e));
            }
        }
        // Only a failure names its event: the events are kept for that.
        let events: Vec<Arc<Event>> = batch.iter().map(|o| Arc::clone(&o.event)).collect();
        Box::pin(async move {
            let reports = slot.reports(&producer, registered, deadline).await;
            let outcomes: Vec<Result<(), SendError>> = reports
                .into_iter()
                .zip(&events)
                .map(|(r, ev)| r.map_err(|e| slot.name_record(e, ev)))
                .collect();
            slot.after_send(producer, &outcomes);
            outcomes
        })
    }

    /// Waits up to `timeout` for every record still queued in librdkafka (for
    /// shutdown). Blocking: call it from `spawn_blocking` or off the runtime.
    pub fn flush(&self, timeout: Duration) -> Result<(), SendError> {
        let producer = self.slot.current_producer();
        producer.flush(Timeout::After(timeout)).map_err(|e| {
            SendError::retry(format!(
                "{} records still queued after {}: {e}",
                producer.in_flight_count(),
                humantime::format_duration(timeout)
            ))
        })
    }
}

/// One send's outcome from its records' outcomes (see [`KafkaSink::send`]).
fn summarize(outcomes: &[Result<(), SendError>]) -> Result<(), SendError> {
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    let first = |retry: bool| {
        outcomes.iter().find_map(|o| match o {
            Err(e @ SendError::Retry { .. }) if retry => Some(e.to_string()),
            Err(e @ SendError::Reject { .. }) if !retry => Some(e.to_string()),
            _ => None,
        })
    };
    let total = outcomes.len();
    if let Some(reason) = first(true) {
        return Err(SendError::Retry {
            reason: format!("{failed} of {total} records not delivered; first: {reason}"),
            status: None,
            retry_after: None,
        });
    }
    if let Some(reason) = first(false) {
        return Err(SendError::Reject {
            reason: format!("{failed} of {total} records refused; first: {reason}"),
            status: None,
        });
    }
    Ok(())
}

impl ProducerSlot {
    /// Every record's delivery report, in order. librdkafka reports every
    /// record by `timeout` (message.timeout.ms), give or take its timer; the
    /// grace only guards against a lost report.
    async fn reports(
        &self,
        producer: &Kafka,
        mut batch: acks::Registered,
        deadline: Instant,
    ) -> Vec<Result<(), SendError>> {
        let report_deadline = tokio::time::Instant::from_std(deadline + REPORT_GRACE);
        let outcomes = match tokio::time::timeout_at(report_deadline, &mut batch.done).await {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(_closed)) => Vec::new(),
            // Completed meanwhile, or what came by the deadline.
            Err(_) => match producer.context().acks.abandon(batch.first) {
                Some(partial) => partial,
                None => batch.done.await.unwrap_or_default(),
            },
        };
        let missing = || {
            SendError::retry(format!(
                "no delivery report within {}",
                humantime::format_duration(self.config.timeout + REPORT_GRACE)
            ))
        };
        if outcomes.is_empty() {
            // The producer's reports were dropped with it (not expected:
            // this send holds the producer until now).
            return vec![Err(SendError::retry("the producer was closed")); batch.len];
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(missing())))
            .collect()
    }

    fn current_producer(&self) -> Arc<Kafka> {
        match self.producer.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the producer when it cannot recover by itself:
    /// - after a fatal error, which an idempotent producer gets when its
    ///   sequence numbers are out of step with the broker's; it refuses
    ///   everything from then on;
    /// - after several sends in a row that delivered nothing and had nothing
    ///   refused. An idempotent producer whose id the broker has forgotten
    ///   (a cluster rebuilt at the same address, a broker without persistent
    ///   producer state) can otherwise retry with bumped epochs forever,
    ///   while a new producer gets a new id at once. During a plain outage a
    ///   new producer costs a reconnect and nothing else.
    fn after_send(&self, used: Arc<Kafka>, outcomes: &[Result<(), SendError>]) {
        let stalled = !outcomes.is_empty()
            && outcomes
                .iter()
                .all(|o| matches!(o, Err(SendError::Retry { .. })));
        let why = if let Some((code, reason)) = used.client().fatal_error() {
            format!("fatal producer error {code:?}: {reason}")
        } else if !stalled {
            self.stalled.store(0, Ordering::Relaxed);
            return;
        } else if !Arc::ptr_eq(&self.current_producer(), &used) {
            // A batch in flight on a producer already replaced: not this one's stall.
            return;
        } else if self.stalled.fetch_add(1, Ordering::Relaxed) + 1 >= REBUILD_AFTER_STALLED_SENDS {
            format!("{REBUILD_AFTER_STALLED_SENDS} sends in a row delivered nothing")
        } else {
            return;
        };
        self.stalled.store(0, Ordering::Relaxed);
        let old = {
            let mut slot = match self.producer.write() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !Arc::ptr_eq(&slot, &used) {
                return; // another send replaced it already
            }
            match producer::build(&self.name, &self.config) {
                Ok(p) => std::mem::replace(&mut *slot, Arc::new(p)),
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot build a new producer");
                    return;
                }
            }
        };
        tracing::warn!(sink = %self.name, "{why}: replaced the Kafka producer with a new one");
        // Dropping a producer purges its queue and joins its threads, which
        // blocks for a while: not on the runtime's threads.
        let dropped = std::thread::Builder::new()
            .name("kafka-producer-drop".into())
            .spawn(move || drop((old, used)));
        if let Err(e) = dropped {
            tracing::warn!(sink = %self.name, error = %e, "cannot start a thread to close the old producer");
        }
    }

    /// Prefixes a record's failure with the sink, the event's key and its tag.
    fn name_record(&self, e: SendError, ev: &Event) -> SendError {
        let prefix = format!(
            "sink {}: event {} ({})",
            self.name,
            ev.idempotency_key(),
            ev.tag()
        );
        match e {
            SendError::Retry {
                reason,
                status,
                retry_after,
            } => SendError::Retry {
                reason: format!("{prefix}: {reason}"),
                status,
                retry_after,
            },
            SendError::Reject { reason, status } => SendError::Reject {
                reason: format!("{prefix}: {reason}"),
                status,
            },
        }
    }
}

/// Hands one record to librdkafka as record `seq` of its producer, waiting
/// (until `deadline`) while its local queue is full.
async fn enqueue(
    producer: &Kafka,
    rec: &Record,
    seq: usize,
    deadline: Instant,
) -> Result<(), SendError> {
    loop {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let record = BaseRecord::with_opaque_to(&rec.topic, seq)
            .key(rec.key.as_str())
            .payload(rec.payload.as_slice())
            .headers(headers);
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((e, _)) => return Err(producer::kafka_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests;
