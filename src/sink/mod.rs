//! Sinks: where routed events are delivered. One file per sink type.
//!
//! A sink only knows how to send one batch and how to classify the outcome:
//! delivered, worth retrying (connection errors, timeouts, 5xx, 429, with a
//! server's Retry-After), or rejected for good (other 4xx, a record the
//! broker refuses). Retrying, backoff, dead letters and the per-sink spool
//! belong to `delivery`, so every sink gets them the same way.

pub mod blackhole;
pub mod cloudevents;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use crate::outgoing::Outgoing;

/// Something that can send a batch: a sink, or a fake one in tests.
pub trait Deliver: Send + Sync + 'static {
    fn send(&self, batch: &[Outgoing]) -> impl Future<Output = Result<(), SendError>> + Send;

    /// A send in two steps, for a sink whose sends overlap but whose order
    /// counts (Kafka): the returned future hands `batch` over, and the one
    /// it yields awaits the outcome. The delivery worker of an
    /// [`in_order`](Sink::in_order) sink starts one batch after another
    /// from one task and awaits the outcomes apart. By default the whole
    /// send is the first step.
    // Yielding a future is the point: the caller awaits it apart.
    #[allow(clippy::async_yields_async)]
    fn start(&self, batch: &[Outgoing]) -> impl Future<Output = Outcome> + Send {
        async move {
            let result = self.send(batch).await;
            Box::pin(std::future::ready(result)) as Outcome
        }
    }

    /// The worker is done: hand over what the sink still buffers, waiting
    /// up to `timeout`. Blocking; the worker calls it off the runtime.
    fn close(&self, _timeout: Duration) {}
}

/// A started send's outcome, to be awaited apart (see [`Deliver::start`]).
pub type Outcome = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send>>;

/// How a worker groups events into one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub max_events: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: connection error, timeout, 5xx, 429. `retry_after`
    /// is the server's own wish (Retry-After on 429 and 503), if it said one.
    #[error("{reason}")]
    Retry {
        reason: String,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as is (other 4xx, a record the broker refuses):
    /// goes to the dead-letter file.
    #[error("{reason}")]
    Reject { reason: String, status: Option<u16> },
}

impl SendError {
    /// Worth trying again, with nothing more known.
    pub fn retry(reason: impl Into<String>) -> SendError {
        SendError::Retry {
            reason: reason.into(),
            status: None,
            retry_after: None,
        }
    }

    /// Will never succeed as is, with no status.
    pub fn reject(reason: impl Into<String>) -> SendError {
        SendError::Reject {
            reason: reason.into(),
            status: None,
        }
    }
}

/// A sink's settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sink {sink}: {message}")]
pub struct SinkConfigError {
    pub sink: String,
    /// Dotted field within the sink, e.g. `auth.hmac.secret`; empty for the whole sink.
    pub field: String,
    pub message: String,
}

impl SinkConfigError {
    /// Sink `sink`'s `field` (dotted; empty for the whole sink) cannot work.
    pub fn new(sink: &str, field: &str, message: impl Into<String>) -> SinkConfigError {
        SinkConfigError {
            sink: sink.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Deserializes a sink's settings; a failure names the field at fault
/// (a missing field by its own name, not its parent's).
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    name: &str,
    value: &serde_json::Value,
) -> Result<T, SinkConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = e.path().to_string();
        if field == "." {
            field.clear();
        }
        let message = e.inner().to_string();
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = if field.is_empty() {
                missing.to_owned()
            } else {
                format!("{field}.{missing}")
            };
        }
        SinkConfigError {
            sink: name.to_owned(),
            field,
            message,
        }
    })
}

/// A configured sink of any type.
// One per configured sink, built once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Sink {
    Webhook(webhook::WebhookSink),
    #[cfg(feature = "kafka")]
    Kafka(kafka::KafkaSink),
    /// Counts and drops: for benchmarks (docs/sinks-blackhole.md).
    Blackhole(blackhole::BlackholeSink),
}

impl Sink {
    /// Builds the sink `name` from its settings (the `type` field picks the kind).
    pub fn from_config(name: &str, value: &serde_json::Value) -> Result<Sink, SinkConfigError> {
        match value.get("type").and_then(|t| t.as_str()) {
            Some("webhook") => webhook::WebhookSink::from_config(name, value).map(Sink::Webhook),
            #[cfg(feature = "kafka")]
            Some("kafka") => kafka::KafkaSink::from_config(name, value).map(Sink::Kafka),
            #[cfg(not(feature = "kafka"))]
            Some("kafka") => Err(kafka_not_built(name)),
            Some("blackhole") => {
                blackhole::BlackholeSink::from_config(name, value).map(Sink::Blackhole)
            }
            Some(other) => Err(SinkConfigError::new(
                name,
                "type",
                format!("unknown sink type `{other}`, expected webhook, kafka or blackhole"),
            )),
            None => Err(SinkConfigError::new(
                name,
                "type",
                "missing `type` (webhook, kafka or blackhole)",
            )),
        }
    }

    /// Checks settings as [`from_config`](Self::from_config) does, without
    /// connecting anywhere (for `validate`).
    pub fn check_config(name: &str, value: &serde_json::Value) -> Result<(), SinkConfigError> {
        match value.get("type").and_then(|t| t.as_str()) {
            Some("webhook") => webhook::WebhookSink::check_config(name, value),
            #[cfg(feature = "kafka")]
            Some("kafka") => kafka::KafkaSink::check_config(name, value),
            Some("blackhole") => blackhole::BlackholeSink::check_config(name, value),
            _ => Sink::from_config(name, value).map(|_| ()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Sink::Webhook(_) => "webhook",
            #[cfg(feature = "kafka")]
            Sink::Kafka(_) => "kafka",
            Sink::Blackhole(_) => "blackhole",
        }
    }

    /// Whether the sink sends Salt's own msgpack bytes, which the spool
    /// must then keep (a Kafka sink with `payload: msgpack`).
    pub fn keeps_raw(&self) -> bool {
        match self {
            Sink::Webhook(_) | Sink::Blackhole(_) => false,
            #[cfg(feature = "kafka")]
            Sink::Kafka(k) => k.config().is_msgpack(),
        }
    }

    /// How many sends may run at once: a webhook's `concurrency`; for
    /// Kafka, `kafka::BATCHES_IN_FLIGHT` batches, started in order (see
    /// [`in_order`](Self::in_order)).
    pub fn concurrency(&self) -> usize {
        match self {
            Sink::Webhook(w) => w.config().concurrency,
            #[cfg(feature = "kafka")]
            Sink::Kafka(_) => kafka::BATCHES_IN_FLIGHT,
            Sink::Blackhole(_) => 1,
        }
    }

    /// Whether overlapping sends must hand their records over in spool
    /// order ([`Deliver::start`]): Kafka, whose partitions keep the order
    /// in which records are produced.
    pub fn in_order(&self) -> bool {
        match self {
            Sink::Webhook(_) | Sink::Blackhole(_) => false,
            #[cfg(feature = "kafka")]
            Sink::Kafka(_) => true,
        }
    }

    /// How the delivery worker groups events: a webhook's `batch`, or
    /// Kafka's own batching of everything queued (up to `kafka::BATCH_EVENTS`).
    pub fn batching(&self) -> Option<Batching> {
        match self {
            Sink::Webhook(w) => w.config().batch.as_ref().map(|b| Batching {
                max_events: b.max_events,
                max_bytes: b.max_bytes,
                max_wait: b.max_wait,
            }),
            #[cfg(feature = "kafka")]
            Sink::Kafka(_) => Some(Batching {
                max_events: kafka::BATCH_EVENTS,
                max_bytes: kafka::BATCH_BYTES,
                max_wait: Duration::ZERO,
            }),
            Sink::Blackhole(_) => Some(Batching {
                max_events: blackhole::BATCH_EVENTS,
                max_bytes: usize::MAX,
                max_wait: Duration::ZERO,
            }),
        }
    }
}

impl Deliver for Sink {
    async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        match self {
            Sink::Webhook(w) => w.send(batch).await,
            #[cfg(feature = "kafka")]
            Sink::Kafka(k) => k.send(batch).await,
            Sink::Blackhole(b) => b.send(batch).await,
        }
    }

    async fn start(&self, batch: &[Outgoing]) -> Outcome {
        match self {
            #[cfg(feature = "kafka")]
            Sink::Kafka(k) => k.start(batch).await,
            _ => {
                let result = self.send(batch).await;
                Box::pin(std::future::ready(result))
            }
        }
    }

    #[cfg_attr(not(feature = "kafka"), allow(unused_variables))]
    fn close(&self, timeout: Duration) {
        #[cfg(feature = "kafka")]
        if let Sink::Kafka(k) = self {
            if let Err(e) = k.flush(timeout) {
                tracing::warn!(sink = %k.name(), error = %e, "records still queued in librdkafka at shutdown");
            }
        }
    }
}

/// What a `type: kafka` sink gets from a build without the `kafka` feature
/// (the fuzz crate's): an error on the sink's `type`, located like any other.
pub fn kafka_not_built(name: &str) -> SinkConfigError {
    SinkConfigError::new(
        name,
        "type",
        "this saltbridge was built without Kafka support (cargo feature `kafka`); \
         rebuild with default features or remove the sink",
    )
}
