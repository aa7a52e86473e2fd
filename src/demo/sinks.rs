//! The demo's sinks: the routes file's own sinks, built by the real sink
//! code, with two changes so nothing leaves the machine. A webhook's `url`
//! is replaced by the embedded receiver's `/<sink name>`; a Kafka sink gets
//! no producer at all, only its record builder, so the demo can show the
//! topic, key and value it would produce without a broker.

use std::path::Path;

use crate::config;
use crate::config::{Config, ConfigErrors};
use crate::outgoing::Outgoing;
use crate::receiver::{Receiver, Recorded};
#[cfg(feature = "kafka")]
use crate::sink::kafka::{KafkaConfig, RecordBuilder};
use crate::sink::webhook::WebhookSink;
use crate::sink::SinkConfigError;

/// A sink as the demo runs it.
pub enum DemoSink {
    // Boxed: the two differ in size, and there are only a few sinks.
    Webhook(Box<WebhookSink>),
    #[cfg(feature = "kafka")]
    Kafka(Box<RecordBuilder>),
}

/// What one sink received for one event.
#[derive(Debug, Clone)]
pub enum Delivered {
    /// The receiver's view of the webhook request(s).
    Webhook {
        status: u16,
        requests: Vec<Recorded>,
    },
    /// The record the Kafka sink would produce; not sent.
    Kafka {
        topic: String,
        key: String,
        value: Vec<u8>,
    },
    /// The sink's own error (a template that fails, a refused request...).
    Failed(String),
}

impl DemoSink {
    pub fn kind(&self) -> &'static str {
        match self {
            DemoSink::Webhook(_) => "webhook",
            #[cfg(feature = "kafka")]
            DemoSink::Kafka(_) => "kafka",
        }
    }

    /// Delivers `out` as the daemon would (webhook), or builds its record (Kafka).
    pub async fn deliver(&self, out: &Outgoing, receiver: &mut Receiver) -> Delivered {
        match self {
            DemoSink::Webhook(w) => match w.send(std::slice::from_ref(out)).await {
                Ok(()) => Delivered::Webhook {
                    status: 200,
                    requests: receiver.take(),
                },
                Err(e) => {
                    // Whatever reached the receiver before the error is not shown.
                    receiver.take();
                    Delivered::Failed(e.to_string())
                }
            },
            #[cfg(feature = "kafka")]
            DemoSink::Kafka(records) => match records.build(out) {
                Ok(r) => Delivered::Kafka {
                    topic: r.topic,
                    key: r.key,
                    value: r.payload,
                },
                Err(e) => Delivered::Failed(e),
            },
        }
    }
}

/// Builds every sink of `config`, webhooks aimed at `receiver_url`.
pub fn build(
    path: &Path,
    config: &Config,
    receiver_url: &str,
) -> Result<Vec<(String, DemoSink)>, ConfigErrors> {
    let built = config::each_sink(path, config, |name, settings| {
        build_one(name, settings, receiver_url)
    })?;
    Ok(built.into_iter().map(|b| (b.name, b.sink)).collect())
}

fn build_one(
    name: &str,
    settings: &serde_json::Value,
    receiver_url: &str,
) -> Result<DemoSink, SinkConfigError> {
    match settings.get("type").and_then(|t| t.as_str()) {
        #[cfg(feature = "kafka")]
        Some("kafka") => {
            let config = KafkaConfig::parse(name, settings)?;
            RecordBuilder::new(name, &config).map(|r| DemoSink::Kafka(Box::new(r)))
        }
        Some("webhook") => {
            let mut settings = settings.clone();
            if let Some(obj) = settings.as_object_mut() {
                obj.insert(
                    "url".to_owned(),
                    serde_json::Value::String(format!("{receiver_url}/{name}")),
                );
            }
            WebhookSink::from_config(name, &settings).map(|w| DemoSink::Webhook(Box::new(w)))
        }
        // The same error the daemon gives for an unknown or missing type.
        _ => match crate::sink::Sink::check_config(name, settings) {
            Err(e) => Err(e),
            Ok(()) => Err(SinkConfigError {
                sink: name.to_owned(),
                field: "type".to_owned(),
                message: "expected webhook or kafka".to_owned(),
            }),
        },
    }
}
