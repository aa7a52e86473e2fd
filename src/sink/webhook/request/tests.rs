use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::*;
use crate::event::Event;

fn out(tag: &str, data: Value) -> Outgoing {
    Outgoing::new(Event::synthetic(tag, data, Arc::from("capture:test")), "r1")
}

fn builder(settings: Value) -> RequestBuilder {
    let mut v = json!({"type": "webhook", "url": "https://hooks.example/in"});
    for (k, x) in settings.as_object().unwrap() {
        v[k] = x.clone();
    }
    let cfg = WebhookConfig::parse("s", &v).unwrap();
    RequestBuilder::new("s", &cfg).unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn default_request_posts_the_event_as_json() {
    let o = out(
        "salt/job/1/ret/web-01",
        json!({"id": "web-01", "retcode": 0}),
    );
    let r = builder(json!({}))
        .build(std::slice::from_ref(&o), at(1))
        .unwrap();
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.url.as_str(), "https://hooks.example/in");
    assert_eq!(r.headers[CONTENT_TYPE], "application/json");
    assert_eq!(r.headers[KEY_HEADER], o.key());
    assert_eq!(r.headers[TAG_HEADER], "salt/job/1/ret/web-01");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["tag"], "salt/job/1/ret/web-01");
    assert_eq!(body["data"]["id"], "web-01");
}

#[test]
fn templates_render_url_method_headers_and_body() {
    let b = builder(json!({
        "url": "https://cmdb.example/{{ data.id }}",
        "method": "{{ 'put' }}",
        "headers": {"X-Minion": "{{ data.id }}"},
        "body": "{\"m\": \"{{ data.id }}\"}"
    }));
    let r = b
        .build(&[out("salt/job/1/ret/a b", json!({"id": "a b"}))], at(1))
        .unwrap();
    assert_eq!(r.method, Method::PUT);
    assert_eq!(r.url.as_str(), "https://cmdb.example/a%20b");
    assert_eq!(r.headers["x-minion"], "a b");
    assert_eq!(r.body, br#"{"m": "a b"}"#);
}

#[test]
fn tag_header_is_cut_and_long_templated_header_rejects() {
    let b = builder(json!({"max_header_bytes": 64, "headers": {"X-Id": "{{ data.id }}"}}));
    let long_tag = "t/".repeat(100);
    let r = b
        .build(&[out(&long_tag, json!({"id": "x"}))], at(1))
        .unwrap();
    assert_eq!(r.headers[TAG_HEADER].len(), 64);
    let e = b
        .build(&[out("t", json!({"id": "x".repeat(65)}))], at(1))
        .unwrap_err();
    assert!(e.to_string().contains("max_header_bytes"), "{e}");
}

#[test]
fn hmac_signs_timestamp_dot_body() {
    let b = builder(json!({"auth": {"hmac": {"secret": "k"}}}));
    let r = b.build(&[out("t", json!({}))], at(1_700_000_000)).unwrap();
    assert_eq!(r.headers["x-saltbridge-timestamp"], "1700000000");
    let want = sign::saltbridge_signature("k", 1_700_000_000, &r.body).unwrap();
    assert_eq!(r.headers["x-saltbridge-signature"], want.as_str());
}

#[test]
fn bearer_and_basic_set_a_sensitive_authorization() {
    let r = builder(json!({"auth": {"bearer": {"token": "tok"}}}))
        .build(&[out("t", json!({}))], at(1))
        .unwrap();
    assert_eq!(r.headers[AUTHORIZATION], "Bearer tok");
    assert!(r.headers[AUTHORIZATION].is_sensitive());
    let r = builder(json!({"auth": {"basic": {"username": "u", "password": "p"}}}))
        .build(&[out("t", json!({}))], at(1))
        .unwrap();
    assert_eq!(r.headers[AUTHORIZATION], "Basic dTpw");
}

#[test]
fn batches_are_one_array_with_a_size_header() {
    let b = builder(json!({"batch": {"max_events": 10}}));
    let r = b
        .build(
            &[out("a", json!({"n": 1})), out("b", json!({"n": 2}))],
            at(1),
        )
        .unwrap();
    assert_eq!(r.headers[BATCH_SIZE_HEADER], "2");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body[1]["tag"], "b");
    let b = builder(json!({"batch": {}, "body": "{{ data.n }}x"}));
    let e = b.build(&[out("a", json!({"n": 1}))], at(1)).unwrap_err();
    assert!(e.to_string().contains("must render JSON"), "{e}");
}

#[test]
fn robots_are_signed_where_their_vendor_wants() {
    let b = builder(json!({"preset": "dingtalk", "secret": "SECabc"}));
    let r = b.build(&[out("t", json!({}))], at(1_700_000_000)).unwrap();
    let q: Vec<(String, String)> = r.url.query_pairs().into_owned().collect();
    assert_eq!(q[0], ("timestamp".into(), "1700000000000".into()));
    assert_eq!(
        q[1].1,
        sign::dingtalk_sign("SECabc", 1_700_000_000_000).unwrap()
    );
    let b = builder(json!({"preset": "feishu", "secret": "abc"}));
    let r = b.build(&[out("t", json!({}))], at(1_700_000_000)).unwrap();
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["sign"],
        sign::feishu_sign("abc", 1_700_000_000).unwrap()
    );
}

#[test]
fn a_bad_rendered_url_rejects_and_bad_static_parts_fail_at_build() {
    let b = builder(json!({"url": "{{ data.u | safe }}"}));
    let e = b
        .build(&[out("t", json!({"u": "ftp://x"}))], at(1))
        .unwrap_err();
    assert!(matches!(e, SendError::Reject { .. }), "{e:?}");
    let cfg = WebhookConfig::parse("s", &json!({"type": "webhook", "url": "ftp://x"})).unwrap();
    let e = RequestBuilder::new("s", &cfg).err().unwrap();
    assert_eq!(e.field, "url");
}

#[test]
fn header_values_survive_control_characters() {
    assert_eq!(
        lossy_header_value("salt/job/1/ret/a", 1024),
        "salt/job/1/ret/a"
    );
    assert_eq!(lossy_header_value("my/tag\n%x", 1024), "my/tag%0A%25x");
    assert_eq!(
        lossy_header_value("ünïcode/tag", 1024).as_bytes(),
        "ünïcode/tag".as_bytes()
    );
}

#[test]
fn header_values_from_events_are_bounded() {
    let long = "a/".repeat(40_000);
    let v = lossy_header_value(&long, 1024);
    assert_eq!(v.len(), 1024);
    assert!(v.to_str().unwrap().ends_with("..."));
    let v = lossy_header_value(&"ü".repeat(1000), 100);
    assert!(v.len() <= 100 && v.as_bytes().ends_with(b"..."));
}

#[test]
fn a_relayed_event_names_its_syndic_in_a_header() {
    let plain = out("my/tag", json!({"x": 1}));
    let mut ev = Event::synthetic("my/tag", json!({"x": 1}), Arc::from("capture:test"));
    ev.provenance_mut().syndic = Some(Arc::from("syn"));
    let relayed = Outgoing::new(ev, "r1");
    let b = builder(json!({"headers": {"x-via": "{{ syndic }}"}}));
    let r = b.build(std::slice::from_ref(&relayed), at(1)).unwrap();
    assert_eq!(r.headers[SYNDIC_HEADER], "syn");
    assert_eq!(r.headers["x-via"], "syn");
    let r = b.build(std::slice::from_ref(&plain), at(1)).unwrap();
    assert!(r.headers.get(SYNDIC_HEADER).is_none());
}
