//! `format: cloudevents` (structured, batched and binary mode), W3C trace
//! context headers, and the legacy Teams connector card, on a real HTTP
//! server. The CloudEvents checks follow the spec's required attributes;
//! with `SALTBRIDGE_CLOUDEVENTS_PYTHON` set to a Python that has the
//! official SDK (`pip install cloudevents`), the SDK parses the requests too.

use super::*;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A failing state return with Salt's `_stamp` and a trace context, as Salt
/// with tracing on fires it.
fn traced_ret() -> Outgoing {
    let mut data = failing_state_ret().event.data().clone();
    data["traceparent"] = json!(TP);
    data["tracestate"] = json!("congo=t61rcWkgMzE");
    Outgoing::new(
        Event::synthetic(
            failing_state_ret().event.tag(),
            data,
            Arc::from("ipc:/var/run/salt/master/master_event_pub.ipc"),
        ),
        "r",
    )
}

/// The spec's required attributes and the types of the optional ones we set.
fn assert_cloudevent(v: &Value, o: &Outgoing) {
    assert_eq!(v["specversion"], "1.0");
    assert_eq!(v["id"], o.key());
    assert_eq!(v["source"], o.event.source());
    assert_eq!(v["type"], "io.saltproject.job.ret");
    assert_eq!(v["subject"], o.event.tag());
    let stamp = o.event.data()["_stamp"].as_str().unwrap();
    assert_eq!(
        v["time"].as_str().unwrap(),
        format!("{}Z", stamp.trim_end_matches("+00:00"))
    );
    assert_eq!(v["datacontenttype"], "application/json");
    assert_eq!(v["data"], *o.event.data());
}

/// What the official Python SDK makes of a request, when one is configured.
fn python_sdk_parse(r: &saltbridge::receiver::Recorded) -> Option<Value> {
    let python = std::env::var("SALTBRIDGE_CLOUDEVENTS_PYTHON").ok()?;
    let script = r#"
import json, sys
try:
    from cloudevents.http import from_http
except ImportError:
    from cloudevents.v1.http import from_http
req = json.load(sys.stdin)
ev = from_http(req["headers"], req["body"].encode())
attrs = {k: str(v) for k, v in ev.get_attributes().items()}
print(json.dumps({"attributes": attrs, "data": ev.data}))
"#;
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let input = json!({"headers": headers, "body": r.body_str()}).to_string();
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the SDK refused the request");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn structured_mode_is_one_envelope_with_trace_extension_and_headers() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/ce"), "format": "cloudevents"}));
    let o = traced_ret();
    s.send(std::slice::from_ref(&o)).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents+json")
    );
    assert_eq!(r.header("traceparent"), Some(TP));
    assert_eq!(r.header("tracestate"), Some("congo=t61rcWkgMzE"));
    let v = r.json();
    assert_cloudevent(&v, &o);
    assert_eq!(v["traceparent"], TP);
    if let Some(sdk) = python_sdk_parse(r) {
        assert_eq!(sdk["attributes"]["id"], o.key());
        assert_eq!(sdk["attributes"]["type"], "io.saltproject.job.ret");
        assert_eq!(sdk["data"], *o.event.data());
    }
}

#[tokio::test]
async fn binary_mode_puts_attributes_in_ce_headers_and_the_data_in_the_body() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/ce"), "format": "cloudevents",
        "cloudevents": {"mode": "binary", "source": "urn:salt:master:prod"}}),
    );
    let o = traced_ret();
    s.send(std::slice::from_ref(&o)).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("ce-specversion"), Some("1.0"));
    assert_eq!(r.header("ce-id"), Some(o.key()));
    assert_eq!(r.header("ce-source"), Some("urn:salt:master:prod"));
    assert_eq!(r.header("ce-type"), Some("io.saltproject.job.ret"));
    assert_eq!(r.header("ce-subject"), Some(o.event.tag()));
    assert!(r.header("ce-time").unwrap().ends_with('Z'));
    assert_eq!(r.header("traceparent"), Some(TP));
    assert_eq!(r.json(), *o.event.data());
    if let Some(sdk) = python_sdk_parse(r) {
        assert_eq!(sdk["attributes"]["source"], "urn:salt:master:prod");
        assert_eq!(sdk["data"], *o.event.data());
    }
}

#[tokio::test]
async fn batches_are_a_cloudevents_batch() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/ce"), "format": "cloudevents",
        "batch": {"max_events": 10}}),
    );
    let batch = vec![traced_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(
        r.header("content-type"),
        Some("application/cloudevents-batch+json")
    );
    let v = r.json();
    assert_cloudevent(&v[0], &batch[0]);
    assert_eq!(v[1]["id"], batch[1].key());
    assert!(v[1].get("traceparent").is_none());
}

#[tokio::test]
async fn a_minion_cannot_forge_trace_headers() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/t")}));
    let mut data = test_ping_ret().event.data().clone();
    data["traceparent"] = json!(format!("{TP}\r\nX-Admin: yes"));
    let o = Outgoing::new(
        Event::synthetic("salt/job/1/ret/m", data, Arc::from("x")),
        "r",
    );
    s.send(&[o]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("traceparent"), None);
    assert_eq!(r.header("x-admin"), None);
}

#[test]
fn cloudevents_settings_that_cannot_work_name_their_field() {
    let base = |extra: Value| {
        let mut v = json!({"type": "webhook", "url": "http://x/"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        config_error(v)
    };
    for (extra, field, msg) in [
        (
            json!({"format": "cloudevents", "preset": "slack"}),
            "preset",
            "format: cloudevents",
        ),
        (
            json!({"format": "cloudevents", "body": "{}"}),
            "body",
            "format: cloudevents",
        ),
        (
            json!({"cloudevents": {"mode": "binary"}}),
            "cloudevents",
            "only used with",
        ),
        (
            json!({"format": "cloudevents", "cloudevents": {"mode": "binary"}, "batch": {}}),
            "cloudevents.mode",
            "one event per request",
        ),
        (
            json!({"format": "cloudevents", "cloudevents": {"source": " "}}),
            "cloudevents.source",
            "empty",
        ),
        (json!({"format": "cloudevent"}), "format", "unknown variant"),
        (
            json!({"format": "cloudevents", "cloudevents": {"mod": "binary"}}),
            "cloudevents.mod",
            "unknown field",
        ),
    ] {
        let e = base(extra.clone());
        assert_eq!(e.field, field, "{extra}: {e}");
        assert!(e.message.contains(msg), "{extra}: {e}");
    }
}

#[tokio::test]
async fn teams_connector_sends_a_message_card() {
    let summary = presets::preset_body("teams_connector", summary_event()).await;
    let ret = presets::preset_body("teams_connector", failing_state_ret()).await;
    assert_eq!(ret["@type"], "MessageCard");
    assert_eq!(ret["@context"], "https://schema.org/extensions");
    assert_eq!(ret["themeColor"], "D13438");
    assert_eq!(ret["summary"], "❌ state.sls failed on lab-minion");
    assert_eq!(ret["sections"][0]["facts"][0]["name"], "Minion");
    let text = presets::all_text(&ret);
    assert!(
        text.contains("**bad_state** test.fail_without_changes: Failure!"),
        "{text}"
    );
    assert_eq!(summary["@type"], "MessageCard");
    assert!(presets::all_text(&summary).contains("web-02"), "{summary}");
    // A Workflows webhook gets the Adaptive Card instead.
    let workflows = presets::preset_body("teams", summary_event()).await;
    assert_eq!(
        workflows["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
}
