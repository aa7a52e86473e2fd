use super::*;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_valid_pair_is_found() {
    let data = format!(
        r#"{{"id":"m","traceparent":"{TP}","tracestate":"congo=t61rcWkgMzE","_stamp":"x"}}"#
    );
    let t = trace_context(&data).unwrap();
    assert_eq!(t.traceparent, TP);
    assert_eq!(t.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    assert_eq!(trace_context(r#"{"id":"m"}"#), None);
    // Nested members are not the event's trace context.
    assert_eq!(
        trace_context(&format!(r#"{{"x":{{"traceparent":"{TP}"}}}}"#)),
        None
    );
}

#[test]
fn invalid_values_from_minions_are_ignored() {
    for bad in [
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX-Evil: 1",
    ] {
        assert!(!valid_traceparent(bad), "{bad}");
        let data = format!(
            r#"{{"traceparent":{},"tracestate":"a=b"}}"#,
            serde_json::Value::from(bad)
        );
        assert_eq!(trace_context(&data), None, "{bad}");
    }
    let data = format!(r#"{{"traceparent":"{TP}","tracestate":"a=b\nX: y"}}"#);
    assert_eq!(trace_context(&data).unwrap().tracestate, None);
    let long = "a=".to_owned() + &"b".repeat(600);
    assert!(!valid_tracestate(&long));
    assert_eq!(trace_context(r#"{"traceparent":5}"#), None);
}

#[test]
fn trace_members_are_cut_as_if_never_written() {
    let plain = r#"{"id":"m","x":{"traceparent":"keep"},"_stamp":"s"}"#;
    for with in [
        format!(r#"{{"id":"m","x":{{"traceparent":"keep"}},"traceparent":"{TP}","_stamp":"s"}}"#),
        format!(r#"{{"traceparent":"{TP}","id":"m","x":{{"traceparent":"keep"}},"_stamp":"s"}}"#),
        format!(
            r#"{{"id":"m","x":{{"traceparent":"keep"}},"_stamp":"s","traceparent":"{TP}","tracestate":"a=b"}}"#
        ),
        r#"{"id":"m","tracestate":"a,\"b}","x":{"traceparent":"keep"},"_stamp":"s"}"#.to_owned(),
    ] {
        assert_eq!(
            without_trace_members(&with).as_deref(),
            Some(plain),
            "{with}"
        );
    }
    assert_eq!(without_trace_members(plain), None);
    assert_eq!(without_trace_members(r#"["traceparent"]"#), None);
    assert_eq!(
        without_trace_members(r#"{"traceparent":"x"}"#).as_deref(),
        Some("{}")
    );
}

#[test]
fn the_idempotency_key_ignores_trace_context() {
    use serde_json::json;
    use std::sync::Arc;
    let key = |d: serde_json::Value| {
        crate::event::Event::synthetic("my/tag", d, Arc::from("x")).idempotency_key()
    };
    let plain = key(json!({"id": "m", "_stamp": "s"}));
    assert_eq!(
        key(json!({"id": "m", "traceparent": TP, "_stamp": "s"})),
        plain
    );
    let other_span = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-00";
    assert_eq!(
        key(json!({"id": "m", "_stamp": "s", "traceparent": other_span, "tracestate": "a=b"})),
        plain
    );
    assert_ne!(key(json!({"id": "n", "_stamp": "s"})), plain);
}
