//! The broker's limit: a bare librdkafka producer (rdkafka's own
//! `BaseProducer`, no saltbridge pipeline, no spool) producing the very
//! records saltbridge's Kafka sink would (same key, headers and JSON
//! payload, built beforehand by the sink's own `RecordBuilder`) with the
//! sink's own librdkafka settings, to the same tansu broker, in the same
//! run. Timed from the first record handed over to the last acknowledged;
//! saltbridge's Kafka rows are printed as a share of this rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;
use saltbridge::decode::{decode_all, Decoded};
use saltbridge::sink::kafka::{KafkaConfig, Record, RecordBuilder};
use saltbridge::sink::Outgoing;

use super::Point;

/// Counts delivery reports.
#[derive(Clone, Default)]
struct Acks {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The records the sink would produce for the events framed in `bus`.
fn records(bus: &[u8], settings: &serde_json::Value) -> Result<Vec<Record>, String> {
    let builder = RecordBuilder::new(
        "bare",
        &KafkaConfig::parse("bare", settings).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for d in decode_all(bus, Arc::from("ipc:bench")) {
        if let Decoded::Event(ev) = d {
            if ev.tag().starts_with("salt/job/") {
                out.push(builder.build(&Outgoing::new(ev, "r"))?);
            }
        }
    }
    Ok(out)
}

/// Produces the records of `bus`'s events to `topic` as fast as librdkafka
/// takes them and waits for every acknowledgement.
pub fn run(
    bus: &[u8],
    payload_bytes: u64,
    brokers: &str,
    topic: &str,
    broker_pid: Option<u32>,
) -> Result<Point, String> {
    let settings = serde_json::json!({"type": "kafka", "brokers": brokers, "topic": topic});
    let recs = records(bus, &settings)?;
    let config = KafkaConfig::parse("bare", &settings).map_err(|e| e.to_string())?;
    let acks = Acks::default();
    let producer: BaseProducer<Acks> = config
        .client_config("bare")
        .create_with_context(acks.clone())
        .map_err(|e| format!("bare producer: {e}"))?;
    // Connected, with a producer id and the topic's metadata, before the
    // clock starts (saltbridge's producer connects while the daemon starts).
    if let Some(first) = recs.first() {
        let warm = BaseRecord::to(&first.topic)
            .key(first.key.as_str())
            .payload(first.payload.as_slice());
        producer
            .send(warm)
            .map_err(|(e, _)| format!("bare producer: {e}"))?;
        producer
            .flush(Duration::from_secs(30))
            .map_err(|e| format!("bare producer warm-up: {e}"))?;
    }
    let warm_ups = acks.ok.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu = || super::daemon::cpu_secs(std::process::id());
    let broker_cpu = || broker_pid.map_or(0.0, super::daemon::cpu_secs);
    let (cpu0, broker0) = (cpu(), broker_cpu());
    for rec in &recs {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let mut record = BaseRecord::to(&rec.topic)
            .key(rec.key.as_str())
            .payload(rec.payload.as_slice())
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("bare producer: {e}")),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| format!("bare producer flush: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu_secs = cpu() - cpu0;
    let broker_cpu_secs = broker_cpu() - broker0;
    let failed = acks.failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(format!("bare producer: {failed} records not delivered"));
    }
    Ok(Point {
        events: acks.ok.load(Ordering::Relaxed) - warm_ups,
        bytes: payload_bytes,
        secs,
        peak_rss: 0,
        cpu_secs,
        broker_cpu_secs,
        dropped: 0,
        journal_dropped: 0,
        journal_bytes: 0,
    })
}
