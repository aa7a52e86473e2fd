//! Configuration: settings and defaults, errors that name the field, and every setting documented.

use super::*;

#[test]
fn settings_and_defaults() {
    let s = sink(
        json!({"type": "webhook", "url": "https://hooks.slack.com/services/T/B/XYZ",
        "preset": "slack", "timeout": "2500ms", "concurrency": 16}),
    );
    let c = s.config();
    assert_eq!(c.timeout, Duration::from_millis(2500));
    assert_eq!(s.concurrency(), 16);
    assert_eq!(s.name(), "test");
    let debug = format!("{c:?}");
    assert!(!debug.contains("XYZ"), "the webhook token leaked: {debug}");
    let d = sink(json!({"type": "webhook", "url": "http://x/"}));
    assert_eq!(d.config().timeout, Duration::from_secs(10));
    assert_eq!(d.config().method, None);
}

#[test]
fn config_errors_name_the_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"type": "webhook", "url": "http://x/", "urll": "y"}),
            "urll",
            "unknown field `urll`",
        ),
        (json!({"type": "webhook"}), "url", "missing field `url`"),
        (
            json!({"type": "webhook", "url": "http://x/{{ data.id"}),
            "url",
            "bad template",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "body": "{% if %}"}),
            "body",
            "bad template",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "body": "{{ data.id | upper | nosuch }}"}),
            "body",
            "unknown filter",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "headers": {"X-B": "{{ nosuch(data) }}"}}),
            "headers.X-B",
            "unknown function",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "headers": {"X-A": "{{ }"}}),
            "headers.X-A",
            "bad template",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "headers": {"Bad Name": "v"}}),
            "headers.Bad Name",
            "header name",
        ),
        (
            json!({"type": "webhook", "url": "ftp://x/"}),
            "url",
            "scheme",
        ),
        (
            json!({"type": "webhook", "url": "not a url"}),
            "url",
            "not a valid URL",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "method": "G ET"}),
            "method",
            "not an HTTP method",
        ),
        (
            json!({"type": "kafka", "url": "http://x/"}),
            "type",
            "expected `webhook`",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "timeout": "10 parsecs"}),
            "timeout",
            "",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "concurrency": 0}),
            "concurrency",
            "between 1 and",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "concurrency": "four"}),
            "concurrency",
            "invalid type",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "preset": "slak"}),
            "preset",
            "unknown variant `slak`",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "preset": "slack", "body": "x"}),
            "body",
            "preset",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "preset": "teams", "batch": {}}),
            "batch",
            "preset",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "secret": "s"}),
            "secret",
            "dingtalk and feishu",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "batch": {"max_events": 0}}),
            "batch.max_events",
            "at least 1",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "batch": {"max_event": 5}}),
            "batch.max_event",
            "unknown field",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "auth": {"hmac": {}}}),
            "auth.hmac.secret",
            "missing field `secret`",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "auth": {"hmac": {"secret": ""}}}),
            "auth.hmac.secret",
            "empty",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "auth": {"bearer": {"token": "t", "x": 1}}}),
            "auth.bearer.x",
            "unknown field",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "auth": {"oauth": {}}}),
            "auth",
            "unknown variant `oauth`",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "auth": {"bearer": {"token": "t"}}, "headers": {"Authorization": "x"}}),
            "headers.Authorization",
            "auth",
        ),
        (
            json!({"type": "webhook", "url": "http://x/", "headers": {"Content-Length": "1"}}),
            "headers.Content-Length",
            "cannot be overridden",
        ),
    ];
    for (cfg, field, message) in cases {
        let e = config_error(cfg.clone());
        assert_eq!(e.sink, "chat");
        assert_eq!(e.field, field, "{cfg}: {e:?}");
        assert!(e.message.contains(message), "{cfg}: {e:?}");
    }
}

/// The fields (or variants) a struct accepts, from its own unknown-field error:
/// "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, `c`".
fn accepted(cfg: Value) -> Vec<String> {
    let e = config_error(cfg);
    let list = e
        .message
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("{e:?}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_setting_is_documented() {
    let doc = std::fs::read_to_string(root().join("docs/sinks-webhook.md")).unwrap();
    let base = json!({"type": "webhook", "url": "http://x/"});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let mut fields = accepted(with("zzz", json!(1)));
    fields.extend(accepted(with("batch", json!({"zzz": 1}))));
    fields.extend(accepted(with(
        "auth",
        json!({"hmac": {"secret": "s", "zzz": 1}}),
    )));
    fields.extend(accepted(with("auth", json!({"basic": {"zzz": 1}}))));
    fields.extend(accepted(with("auth", json!({"bearer": {"zzz": 1}}))));
    fields.extend(accepted(with("auth", json!({"zzz": {}}))));
    fields.extend(accepted(with("auth", json!({"oauth2": {"zzz": 1}}))));
    fields.extend(accepted(with("tls", json!({"zzz": 1}))));
    fields.extend(accepted(with("preset", json!("zzz"))));
    fields.extend(accepted(with("format", json!("zzz"))));
    let ce = |v: Value| {
        let mut c = with("format", json!("cloudevents"));
        c["cloudevents"] = v;
        c
    };
    fields.extend(accepted(ce(json!({"zzz": 1}))));
    fields.extend(accepted(ce(json!({"mode": "zzz"}))));
    assert!(fields.len() >= 25, "{fields:?}");
    let missing: Vec<_> = fields
        .iter()
        .filter(|f| !doc.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented in docs/sinks-webhook.md: {missing:?}"
    );
}
