//! The librdkafka producer of a Kafka sink: built from the sink's
//! settings, with a context that sends librdkafka's logs and errors to
//! `tracing` (with the sink's name) and files delivery reports under their
//! batches ([`acks`](super::acks)).

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};

use super::acks;
use super::classify::{classify, Class};
use super::config::KafkaConfig;
use crate::sink::{SendError, SinkConfigError};

/// A sink's producer.
pub(super) type Kafka = ThreadedProducer<SinkContext>;

pub(super) fn kafka_error(e: &KafkaError) -> SendError {
    match classify(e) {
        Class::Retry => SendError::retry(e.to_string()),
        Class::Reject => SendError::reject(e.to_string()),
    }
}

pub(super) fn build(name: &str, config: &KafkaConfig) -> Result<Kafka, SinkConfigError> {
    config
        .client_config(name)
        .set_log_level(log_level())
        .create_with_context(SinkContext {
            sink: name.to_string(),
            acks: acks::Inflight::default(),
        })
        .map_err(|e| config.librdkafka_error(name, e))
}

/// The most verbose librdkafka level that `tracing` would show (librdkafka
/// formats nothing below it); its `debug` contexts also need `options.debug`.
fn log_level() -> RDKafkaLogLevel {
    if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
        RDKafkaLogLevel::Info
    } else {
        RDKafkaLogLevel::Warning
    }
}

/// Sends librdkafka's logs and global errors to `tracing`, with the sink's
/// name, and files its delivery reports under their batches.
#[derive(Debug)]
pub struct SinkContext {
    sink: String,
    pub(super) acks: acks::Inflight,
}

impl ProducerContext for SinkContext {
    /// The record's sequence number on its producer (see `acks`).
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(kafka_error(e)),
        };
        self.acks.report(seq, outcome);
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        let sink = self.sink.as_str();
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", sink, fac, "{msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", sink, fac, "{msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", sink, fac, "{msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", sink, fac, "{msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A failed connection is already in librdkafka's log lines, and the
        // sends that it fails say so to the caller: only other errors warn.
        let transport = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::Resolve
            )
        );
        if transport {
            tracing::debug!(target: "librdkafka", sink = %self.sink, %error, "{reason}");
        } else {
            tracing::warn!(target: "librdkafka", sink = %self.sink, %error, "{reason}");
        }
    }
}
