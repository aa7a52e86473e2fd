//! The settings of a `type: kafka` sink and their translation to librdkafka.
//!
//! Parsing reports the first bad field by its dotted path (`options.linger.ms`,
//! `headers.x-team`), as `saltbridge validate` prints it. Checking goes as far
//! as it can without a network: the templates compile, the enumerations are
//! known, and every librdkafka property is set on a native configuration, so a
//! misspelt or out-of-range option fails here and not at the first event.
//! Nothing connects to a broker before [`super::KafkaSink::from_config`].

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::{Deserialize, Deserializer};

use crate::sink::cloudevents::{CloudEventsConfig, Format};
use crate::sink::SinkConfigError;

/// Headers that every record carries; `headers:` may not redefine them.
pub const RESERVED_HEADER_PREFIX: &str = "saltbridge-";

/// The compression codecs librdkafka knows (`compression.type`).
pub const COMPRESSIONS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

/// The payload formats (`payload:`).
pub const PAYLOADS: &[&str] = &["json", "msgpack"];

/// Settings of a `type: kafka` sink under `sinks.<name>` in routes.yaml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Always `kafka`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
    /// A Jinja template over the event, rendered per event
    /// (`salt.{{ tag.split('/')[1] }}`); a template without `{` is used as is.
    pub topic: String,
    /// A template for the record key. Default: the minion id for job returns
    /// (`data.id` on `salt/job/*/ret/*`), else `data.jid` if present, else the tag.
    #[serde(default)]
    pub key: Option<String>,
    /// Extra header templates, added after the `saltbridge-*` headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd` (`compression.type`).
    #[serde(default)]
    pub compression: Option<String>,
    /// `acks`: `all` (= `-1`), `1` or `0`. With `idempotent: true` only `all` is valid.
    #[serde(default, deserialize_with = "opt_scalar")]
    pub acks: Option<String>,
    /// librdkafka properties passed through verbatim; they override everything above.
    #[serde(default, deserialize_with = "scalar_map")]
    pub options: BTreeMap<String, String>,
    /// `enable.idempotence`: no duplicates or reordering from librdkafka's own retries.
    #[serde(default = "default_true")]
    pub idempotent: bool,
    /// How long a record may wait for the broker's ack (`message.timeout.ms`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// `json` (the default) or `msgpack`; see docs/sinks-kafka.md.
    #[serde(default)]
    pub payload: Option<String>,
    /// `json` (saltbridge's record) or `cloudevents`.
    #[serde(default)]
    pub format: Format,
    /// CloudEvents mode and source, with `format: cloudevents`.
    #[serde(default)]
    pub cloudevents: Option<CloudEventsConfig>,
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A YAML scalar read as text: `linger.ms: 5` and `acks: 1` are natural to write.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Uint(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(Scalar::into_text))
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.into_text())).collect())
}

impl KafkaConfig {
    /// Parses and checks the settings of sink `name` without connecting anywhere.
    pub fn parse(name: &str, value: &serde_json::Value) -> Result<KafkaConfig, SinkConfigError> {
        let cfg: KafkaConfig = crate::sink::parse_settings(name, value)?;
        cfg.check(name)?;
        Ok(cfg)
    }

    fn check(&self, name: &str) -> Result<(), SinkConfigError> {
        if self.kind != "kafka" {
            return Err(SinkConfigError::new(
                name,
                "type",
                format!("expected `kafka`, found `{}`", self.kind),
            ));
        }
        if self.brokers.trim().is_empty() {
            return Err(SinkConfigError::new(
                name,
                "brokers",
                "must list at least one host:port",
            ));
        }
        if self.topic.trim().is_empty() {
            return Err(SinkConfigError::new(name, "topic", "must not be empty"));
        }
        if let Some(c) = &self.compression {
            if !COMPRESSIONS.contains(&c.as_str()) {
                return Err(SinkConfigError::new(
                    name,
                    "compression",
                    one_of(c, COMPRESSIONS),
                ));
            }
        }
        if let Some(p) = &self.payload {
            if !PAYLOADS.contains(&p.as_str()) {
                return Err(SinkConfigError::new(name, "payload", one_of(p, PAYLOADS)));
            }
        }
        self.check_cloudevents(name)?;
        if self.timeout < Duration::from_millis(1) || self.timeout.as_millis() > i32::MAX as u128 {
            return Err(SinkConfigError::new(
                name,
                "timeout",
                "must be between 1ms and 24days",
            ));
        }
        for header in self.headers.keys() {
            if header.is_empty() {
                return Err(SinkConfigError::new(
                    name,
                    "headers",
                    "a header name must not be empty",
                ));
            }
            if header
                .to_ascii_lowercase()
                .starts_with(RESERVED_HEADER_PREFIX)
            {
                return Err(SinkConfigError::new(
                    name,
                    &format!("headers.{header}"),
                    "`saltbridge-*` headers are always sent and cannot be redefined",
                ));
            }
        }
        // Every property, ours and the pass-through ones, through librdkafka's own checks.
        self.client_config(name)
            .create_native_config()
            .map_err(|e| self.librdkafka_error(name, e))?;
        Ok(())
    }

    /// `format: cloudevents` writes JSON; `cloudevents:` needs it.
    fn check_cloudevents(&self, name: &str) -> Result<(), SinkConfigError> {
        if self.format != Format::Cloudevents {
            if self.cloudevents.is_some() {
                return Err(SinkConfigError::new(
                    name,
                    "cloudevents",
                    "is only used with `format: cloudevents`",
                ));
            }
            return Ok(());
        }
        if self.is_msgpack() {
            return Err(SinkConfigError::new(
                name,
                "payload",
                "`msgpack` cannot be combined with `format: cloudevents`, whose data is JSON",
            ));
        }
        let source = self.cloudevents.as_ref().and_then(|c| c.source.as_deref());
        if source.is_some_and(|s| s.trim().is_empty()) {
            return Err(SinkConfigError::new(
                name,
                "cloudevents.source",
                "must not be empty",
            ));
        }
        Ok(())
    }

    /// The payload format, `json` unless `payload: msgpack`.
    pub fn is_msgpack(&self) -> bool {
        self.payload.as_deref() == Some("msgpack")
    }

    /// The librdkafka configuration: our defaults, then the typed fields, then `options`.
    pub fn client_config(&self, name: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("client.id", format!("saltbridge-{name}"));
        c.set("bootstrap.servers", &self.brokers);
        c.set("enable.idempotence", self.idempotent.to_string());
        c.set("message.timeout.ms", self.timeout.as_millis().to_string());
        // A produce request that hangs must not outlive the record's own timeout.
        let request = self.timeout.min(Duration::from_secs(30));
        c.set("request.timeout.ms", request.as_millis().max(1).to_string());
        // librdkafka backs off up to 10 s between reconnects; a daemon with a
        // queue behind it wants to be back soon after the broker is.
        c.set("reconnect.backoff.max.ms", "2000");
        if let Some(v) = &self.compression {
            c.set("compression.type", v);
        }
        if let Some(v) = &self.acks {
            c.set("acks", v);
        }
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// Names the field a librdkafka configuration error comes from.
    pub(crate) fn librdkafka_error(&self, name: &str, e: KafkaError) -> SinkConfigError {
        match e {
            KafkaError::ClientConfig(_, desc, key, value) => {
                let field = if self.options.contains_key(&key) {
                    format!("options.{key}")
                } else {
                    match key.as_str() {
                        "bootstrap.servers" => "brokers".into(),
                        "compression.type" | "compression.codec" => "compression".into(),
                        "acks" | "request.required.acks" => "acks".into(),
                        "enable.idempotence" => "idempotent".into(),
                        "message.timeout.ms" | "request.timeout.ms" => "timeout".into(),
                        _ => format!("options.{key}"),
                    }
                };
                SinkConfigError::new(
                    name,
                    &field,
                    format!("librdkafka refused `{key}` = `{value}`: {desc}"),
                )
            }
            KafkaError::ClientCreation(msg) => {
                // librdkafka checks combinations when the client is made.
                let field = if msg.contains("acks") && self.acks.is_some() {
                    "acks"
                } else {
                    ""
                };
                SinkConfigError::new(
                    name,
                    field,
                    format!("librdkafka refused the settings: {msg}"),
                )
            }
            other => SinkConfigError::new(name, "", format!("librdkafka: {other}")),
        }
    }
}

fn one_of(found: &str, allowed: &[&str]) -> String {
    format!("`{found}` is not one of {}", allowed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<KafkaConfig, SinkConfigError> {
        KafkaConfig::parse("pipeline", &v)
    }

    fn field_of(v: serde_json::Value) -> String {
        match parse(v) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.field,
        }
    }

    fn base() -> serde_json::Value {
        json!({"type": "kafka", "brokers": "127.0.0.1:9092", "topic": "salt"})
    }

    fn with(k: &str, v: serde_json::Value) -> serde_json::Value {
        let mut b = base();
        b[k] = v;
        b
    }

    #[test]
    fn defaults() {
        let c = parse(base()).unwrap();
        assert!(c.idempotent);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(!c.is_msgpack());
        assert!(c.key.is_none() && c.headers.is_empty() && c.options.is_empty());
    }

    #[test]
    fn scalars_become_text() {
        let c = parse(with(
            "options",
            json!({"linger.ms": 5, "socket.nagle.disable": true}),
        ))
        .unwrap();
        assert_eq!(c.options["linger.ms"], "5");
        assert_eq!(c.options["socket.nagle.disable"], "true");
        let c = parse(with("acks", json!(1))).unwrap();
        assert_eq!(c.acks.as_deref(), Some("1"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(json!({"type": "kafka", "brokers": "b"})), "topic");
        assert_eq!(field_of(json!({"type": "kafka", "topic": "t"})), "brokers");
        assert_eq!(field_of(with("tpoic", json!("x"))), "tpoic");
        assert_eq!(field_of(with("type", json!("webhook"))), "type");
        assert_eq!(field_of(with("timeout", json!("soon"))), "timeout");
        assert_eq!(field_of(with("timeout", json!("0s"))), "timeout");
        assert_eq!(
            field_of(with("compression", json!("brotli"))),
            "compression"
        );
        assert_eq!(field_of(with("payload", json!("avro"))), "payload");
        assert_eq!(field_of(with("idempotent", json!("yes"))), "idempotent");
        assert_eq!(field_of(with("headers", json!({"x": [1]}))), "headers.x");
        assert_eq!(
            field_of(with("headers", json!({"saltbridge-tag": "x"}))),
            "headers.saltbridge-tag"
        );
        assert_eq!(
            field_of(with("options", json!({"linger.ms": [1]}))),
            "options.linger.ms"
        );
        assert_eq!(
            field_of(with("options", json!({"no.such.option": "1"}))),
            "options.no.such.option"
        );
        assert_eq!(
            field_of(with("options", json!({"linger.ms": "soon"}))),
            "options.linger.ms"
        );
        assert_eq!(field_of(with("acks", json!("some"))), "acks");
    }

    #[test]
    fn unknown_field_message_lists_the_fields() {
        let e = parse(with("tpoic", json!("x"))).unwrap_err();
        assert!(e.message.contains("unknown field `tpoic`"), "{e}");
        assert!(e.to_string().starts_with("sink pipeline: "), "{e}");
    }

    #[test]
    fn options_override_typed_fields() {
        let c = parse(with(
            "options",
            json!({"compression.type": "lz4", "message.timeout.ms": "1000"}),
        ))
        .unwrap();
        let cc = c.client_config("pipeline");
        assert_eq!(cc.get("compression.type"), Some("lz4"));
        assert_eq!(cc.get("message.timeout.ms"), Some("1000"));
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert_eq!(cc.get("client.id"), Some("saltbridge-pipeline"));
    }
}
