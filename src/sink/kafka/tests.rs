use super::*;
use crate::Event;
use serde_json::json;

fn sink(v: serde_json::Value) -> Result<KafkaSink, SinkConfigError> {
    KafkaSink::from_config("pipeline", &v)
}

#[test]
fn builds_without_a_broker() {
    let s = sink(json!({"type": "kafka", "brokers": "127.0.0.1:1", "topic": "t"})).unwrap();
    assert_eq!(s.config().topic, "t");
    assert_eq!(s.name(), "pipeline");
}

#[test]
fn conflicting_settings_are_refused() {
    let e =
        sink(json!({"type": "kafka", "brokers": "b:1", "topic": "t", "acks": "1"})).unwrap_err();
    assert_eq!(e.field, "acks", "{e}");
    assert!(sink(
        json!({"type": "kafka", "brokers": "b:1", "topic": "t", "acks": "1", "idempotent": false})
    )
    .is_ok());
}

#[test]
fn bad_record_is_rejected_before_the_network() {
    let s = sink(json!({"type": "kafka", "brokers": "127.0.0.1:1", "topic": "{{ data.t }}", "timeout": "1s"})).unwrap();
    let ev = Event::synthetic("x", json!({"t": "no/slashes"}), Arc::from("test"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(s.send(&[Outgoing::new(ev, "r")]));
    assert!(matches!(r, Err(SendError::Reject { .. })), "{r:?}");
}
