//! The `type: blackhole` sink: accepts every event, counts it and drops it.
//!
//! It exists to measure saltbridge itself: with a sink that costs nothing,
//! a benchmark (`scripts/bench`) sees what reading, decoding, dropping twins
//! and routing cost, without any network in the way. It takes no settings
//! beyond `type` (and the `spool`/`retry` every sink accepts); documented in
//! docs/sinks-blackhole.md.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::outgoing::Outgoing;
use crate::sink::{parse_settings, SendError, SinkConfigError};

/// How many events a blackhole takes per send: large, so the delivery
/// worker's per-batch cost does not hide the pipeline's.
pub const BATCH_EVENTS: usize = 1_000;

/// The settings a blackhole accepts: only its `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlackholeSettings {
    #[allow(dead_code)]
    r#type: String,
}

/// A `type: blackhole` sink.
#[derive(Debug, Default)]
pub struct BlackholeSink {
    dropped: AtomicU64,
}

impl BlackholeSink {
    /// Builds the sink `name`; any setting other than `type` is an error.
    pub fn from_config(
        name: &str,
        value: &serde_json::Value,
    ) -> Result<BlackholeSink, SinkConfigError> {
        parse_settings::<BlackholeSettings>(name, value)?;
        Ok(BlackholeSink::default())
    }

    /// Checks settings as [`from_config`](Self::from_config) does.
    pub fn check_config(name: &str, value: &serde_json::Value) -> Result<(), SinkConfigError> {
        Self::from_config(name, value).map(|_| ())
    }

    /// Accepts the whole batch: it is counted and dropped.
    pub async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        self.dropped
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Events this sink has taken so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use serde_json::json;

    #[test]
    fn takes_no_settings_but_its_type() {
        assert!(BlackholeSink::from_config("null", &json!({"type": "blackhole"})).is_ok());
        let err = BlackholeSink::from_config("null", &json!({"type": "blackhole", "url": "x"}))
            .unwrap_err();
        assert_eq!(err.field, "url");
    }

    #[tokio::test]
    async fn counts_what_it_drops() {
        let sink = BlackholeSink::from_config("null", &json!({"type": "blackhole"})).unwrap();
        let ev = Event::synthetic("salt/job/1/ret/m", json!({"id": "m"}), "test".into());
        let ev = Outgoing::new(ev, "r");
        sink.send(&[ev.clone(), ev]).await.unwrap();
        assert_eq!(sink.dropped(), 2);
    }
}
