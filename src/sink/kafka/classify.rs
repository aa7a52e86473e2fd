//! Which librdkafka and Kafka errors are worth retrying and which mean a
//! record will never be accepted as it is.
//!
//! The rule: an error about the record itself, or about the topic it names,
//! that no amount of waiting cures is a reject (the record goes to the dead
//! letters). Everything about the connection, the cluster's state, the
//! producer's session or the time it took is a retry. An error that is in
//! neither list is retried: a stuck queue is visible and recoverable, a
//! dead-lettered event has to be replayed by hand. The lists are in
//! docs/sinks-kafka.md; a test keeps the two in step.

use rdkafka::error::{KafkaError, RDKafkaErrorCode as C};

/// What a failed record calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Retry,
    Reject,
}

/// Codes that reject the record for good.
pub const REJECT: &[C] = &[
    // librdkafka, before the record leaves the process
    C::BadMessage,
    C::InvalidArgument,
    C::InvalidType,
    C::KeySerialization,
    C::ValueSerialization,
    C::InvalidDifferentRecord,
    // the broker, about the record or its topic
    C::InvalidMessageSize,
    C::MessageSizeTooLarge,
    C::InvalidTopic,
    C::MessageBatchTooLarge,
    C::InvalidRequiredAcks,
    C::TopicAuthorizationFailed,
    C::ClusterAuthorizationFailed,
    C::InvalidTimestamp,
    C::UnsupportedForMessageFormat,
    C::PolicyViolation,
    C::InvalidRecord,
    C::UnsupportedCompressionType,
    C::InvalidRequest,
];

/// Codes that are retried (listed for the documentation; unlisted codes are retried too).
pub const RETRY: &[C] = &[
    // librdkafka: time, queue, connection
    C::MessageTimedOut,
    C::QueueFull,
    C::BrokerTransportFailure,
    C::AllBrokersDown,
    C::Resolve,
    C::OperationTimedOut,
    C::TimedOutQueue,
    C::SSL,
    C::Authentication,
    C::UnknownTopic,
    C::UnknownPartition,
    C::ISRInsufficient,
    C::Retry,
    C::PurgeQueue,
    C::PurgeInflight,
    C::BrokerDestroy,
    C::DestroyBroker,
    C::Fatal,
    C::Inconsistent,
    C::Fail,
    // the broker: cluster state, leadership, load
    C::InvalidMessage,
    C::UnknownTopicOrPartition,
    C::LeaderNotAvailable,
    C::NotLeaderForPartition,
    C::RequestTimedOut,
    C::BrokerNotAvailable,
    C::ReplicaNotAvailable,
    C::NetworkException,
    C::NotEnoughReplicas,
    C::NotEnoughReplicasAfterAppend,
    C::NotController,
    C::KafkaStorageError,
    C::FencedLeaderEpoch,
    C::UnknownLeaderEpoch,
    C::PreferredLeaderNotAvailable,
    C::EligibleLeadersNotAvailable,
    C::ThrottlingQuotaExceeded,
    C::SaslAuthenticationFailed,
    C::RebootstrapRequired,
    // the idempotent producer's session (the producer is rebuilt on a fatal error)
    C::OutOfOrderSequenceNumber,
    C::DuplicateSequenceNumber,
    C::InvalidProducerEpoch,
    C::InvalidProducerIdMapping,
    C::UnknownProducerId,
    C::ProducerFenced,
    C::ConcurrentTransactions,
];

/// The class of a librdkafka error code.
pub fn classify_code(code: C) -> Class {
    if REJECT.contains(&code) {
        Class::Reject
    } else {
        Class::Retry
    }
}

/// The class of an error from enqueueing or from a delivery report.
pub fn classify(e: &KafkaError) -> Class {
    match e.rdkafka_error_code() {
        Some(code) => classify_code(code),
        None => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_disjoint_and_documented() {
        for c in RETRY {
            assert!(!REJECT.contains(c), "{c:?} in both lists");
            assert_eq!(classify_code(*c), Class::Retry);
        }
        for c in REJECT {
            assert_eq!(classify_code(*c), Class::Reject);
        }
        let doc = include_str!("../../../docs/sinks-kafka.md");
        for c in RETRY.iter().chain(REJECT) {
            let name = format!("`{c:?}`");
            assert!(
                doc.contains(&name),
                "docs/sinks-kafka.md does not list {name}"
            );
        }
    }

    #[test]
    fn typical_errors() {
        let e = KafkaError::MessageProduction(C::MessageSizeTooLarge);
        assert_eq!(classify(&e), Class::Reject);
        let e = KafkaError::MessageProduction(C::MessageTimedOut);
        assert_eq!(classify(&e), Class::Retry);
        assert_eq!(classify(&KafkaError::Canceled), Class::Retry);
        assert_eq!(classify_code(C::Unknown), Class::Retry);
    }
}
