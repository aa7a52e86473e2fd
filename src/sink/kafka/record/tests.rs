use super::*;
use crate::Event;
use serde_json::json;
use std::sync::Arc;
use std::time::SystemTime;

fn out(tag: &str, data: Value) -> Outgoing {
    Outgoing::new(
        Event::synthetic(tag, data, Arc::from("ipc:/var/run/salt/master")),
        "r1",
    )
}

fn builder(extra: Value) -> RecordBuilder {
    let mut v =
        json!({"type": "kafka", "brokers": "b:9092", "topic": "salt.{{ tag.split('/')[1] }}"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let cfg = KafkaConfig::parse("s", &v).unwrap();
    RecordBuilder::new("s", &cfg).unwrap()
}

#[test]
fn default_key_minion_then_jid_then_tag() {
    let b = builder(json!({}));
    let ret = out("salt/job/1/ret/web-01", json!({"id": "web-01", "jid": "1"}));
    assert_eq!(b.build(&ret).unwrap().key, "web-01");
    let new = out(
        "salt/job/1/new",
        json!({"jid": "20261126135646965819", "id": "x"}),
    );
    assert_eq!(b.build(&new).unwrap().key, "20261126135646965819");
    let int_jid = out("salt/job/1/new", json!({"jid": 2026112613564696581u64}));
    assert_eq!(b.build(&int_jid).unwrap().key, "2026112613564696581");
    let start = out("salt/minion/web-01/start", json!({"id": "web-01"}));
    assert_eq!(b.build(&start).unwrap().key, "salt/minion/web-01/start");
}

/// A record built into a reused `Record`, from data not yet parsed, is
/// the record built afresh from parsed data.
#[test]
fn reused_buffers_and_unparsed_data_give_the_same_records() {
    let unparsed = |o: &Outgoing| {
        let e = &o.event;
        let ev = Event::new(
            e.tag().to_owned(),
            crate::event::JsonText::trusted(e.data_json().to_owned()),
            e.received_at(),
            Arc::from(e.source()),
            None,
        );
        Outgoing::new(ev, "r1")
    };
    let long_tag = format!("salt/job/1/ret/{}", "é".repeat(700));
    let outs = [
        out(
            "salt/job/1/ret/web-01",
            json!({"id": "web-\"01", "jid": "1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
        ),
        out(
            "salt/job/1/new",
            json!({"jid": 2026112613564696581u64, "id": "x"}),
        ),
        out("salt/job/1/ret/a", json!({"id": "", "jid": 1.5})),
        out(&long_tag, json!({"id": 7})),
        out("salt/minion/web-01/start", json!(["id"])),
    ];
    for extra in [
        json!({}),
        json!({"headers": {"x-fun": "{{ data.fun }}", "x-team": "ops"}}),
        json!({"format": "cloudevents"}),
        json!({"format": "cloudevents", "cloudevents": {"mode": "binary"}}),
        json!({"payload": "msgpack"}),
    ] {
        let b = builder(extra.clone());
        let mut reused = Record::default();
        for o in &outs {
            let fresh = b.build(o).unwrap();
            b.build_into(&unparsed(o), &mut reused).unwrap();
            assert_eq!(reused, fresh, "{extra} {}", o.event.tag());
        }
    }
}

#[test]
fn headers_topic_and_templates() {
    let b = builder(
        json!({"key": "{{ data.id }}:{{ route }}", "headers": {"x-fun": "{{ data.fun }}", "x-team": "ops"}}),
    );
    let o = out(
        "salt/job/1/ret/web-01",
        json!({"id": "web-01", "fun": "test.ping"}),
    );
    let r = b.build(&o).unwrap();
    assert_eq!(r.topic, "salt.job");
    assert_eq!(r.key, "web-01:r1");
    let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            HEADER_TAG,
            HEADER_KEY,
            HEADER_MASTER,
            HEADER_ROUTE,
            "x-fun",
            "x-team"
        ]
    );
    assert_eq!(r.headers[1].1, o.key());
    assert_eq!(r.headers[2].1, "ipc:/var/run/salt/master");
    assert_eq!(r.headers[4].1, "test.ping");
}

#[test]
fn header_values_from_event_data_are_bounded() {
    let b = builder(json!({"topic": "salt.x", "headers": {"x-id": "{{ data.id }}"}}));
    let long = "é".repeat(4000);
    let r = b
        .build(&out(&format!("t/{long}"), json!({"id": long})))
        .unwrap();
    for name in [HEADER_TAG, "x-id"] {
        let v = &r.headers.iter().find(|(k, _)| k == name).unwrap().1;
        assert!(
            v.len() <= MAX_HEADER_VALUE_BYTES && v.ends_with("..."),
            "{name}"
        );
    }
    let short = b.build(&out("t/x", json!({"id": "web-01"}))).unwrap();
    assert!(short
        .headers
        .iter()
        .any(|(k, v)| k == "x-id" && v == "web-01"));
}

#[test]
fn bad_topic_is_a_record_error() {
    let b = builder(json!({"topic": "salt/{{ data.x }}"}));
    let e = b.build(&out("a", json!({"x": 1}))).unwrap_err();
    assert!(e.contains("not a valid Kafka topic"), "{e}");
    let b = builder(json!({"topic": "salt.{{ tag.split('/')[5] }}x"}));
    assert_eq!(b.build(&out("a/b", json!({}))).unwrap().topic, "salt.x");
    assert!(check_topic("").is_err() && check_topic("..").is_err());
    assert!(check_topic(&"a".repeat(250)).is_err());
    assert!(check_topic("Salt.job_ret-1").is_ok());
}

#[test]
fn bad_template_names_field() {
    let v = json!({"type": "kafka", "brokers": "b", "topic": "t", "headers": {"x-a": "{{ oops"}});
    let cfg = KafkaConfig::parse("s", &v).unwrap();
    assert_eq!(
        RecordBuilder::new("s", &cfg).unwrap_err().field,
        "headers.x-a"
    );
}

#[test]
fn json_payload_splices_data_text() {
    let ev = crate::event::Event::new(
        "salt/job/1/ret/m".into(),
        crate::event::JsonText::trusted(r#"{"b":1.50,"a":"\u00e9"}"#.into()),
        SystemTime::UNIX_EPOCH,
        Arc::from("capture:x"),
        None,
    );
    let o = Outgoing::new(ev, "rt");
    let p = String::from_utf8(json_payload(&o)).unwrap();
    let expect = format!(
        r#"{{"tag":"salt/job/1/ret/m","data":{{"b":1.50,"a":"\u00e9"}},"key":"{}","route":"rt","received_at":"1970-01-01T00:00:00.000000Z","source":"capture:x"}}"#,
        o.key()
    );
    assert_eq!(p, expect);
    let _: Value = serde_json::from_str(&p).unwrap();
}

#[test]
fn msgpack_fallback_packs_json() {
    let v = json!({"a": [1, -2, 1.5, "x", null, true], "b": {}});
    let mut buf = Vec::new();
    write_msgpack(&mut buf, &v);
    let back: Value = rmp_serde::from_slice(&buf).unwrap();
    assert_eq!(back, v);
    let b = builder(json!({"payload": "msgpack"}));
    let r = b.build(&out("t", v.clone())).unwrap();
    assert_eq!(r.payload, buf);
}

#[test]
fn the_job_return_check_is_salts_fnmatch() {
    let pattern = crate::salt::Fnmatch::new("salt/job/*/ret/*");
    for tag in [
        "salt/job/20240101/ret/web1",
        "salt/job//ret/",
        "salt/job/1/ret/a/b",
        "salt/job/ret/x",
        "salt/job/1/new",
        "salt/job/1/retx/a",
        "xsalt/job/1/ret/a",
        "salt/job/a/b/ret/c",
        "salt/job/1/ret",
        "salt/job/é/ret/ü",
    ] {
        assert_eq!(is_job_return_tag(tag), pattern.is_match(tag), "{tag}");
    }
}
