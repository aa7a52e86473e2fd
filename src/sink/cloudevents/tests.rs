use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::event::Event;

fn out(tag: &str, data: Value) -> Outgoing {
    Outgoing::new(
        Event::synthetic(
            tag,
            data,
            Arc::from("ipc:/var/run/salt/master/master_event_pub.ipc"),
        ),
        "r1",
    )
}

#[test]
fn types_leave_out_jids_and_minion_ids() {
    for (tag, want) in [
        (
            "salt/job/20261126135807141393/ret/web-01",
            "io.saltproject.job.ret",
        ),
        (
            "salt/job/20261126135807141393/new",
            "io.saltproject.job.new",
        ),
        ("salt/job/1/prog/web-01/0", "io.saltproject.job.prog"),
        (
            "salt/job/1/sub/web-01/error/state.sls",
            "io.saltproject.job.sub.error",
        ),
        ("salt/run/1/ret", "io.saltproject.run.ret"),
        ("salt/minion/web-01/start", "io.saltproject.minion.start"),
        ("minion_start", "io.saltproject.minion.start"),
        (
            "salt/beacon/web-01/inotify//etc/x",
            "io.saltproject.beacon.inotify",
        ),
        ("salt/auth", "io.saltproject.auth"),
        ("salt/presence/change", "io.saltproject.presence.change"),
        ("saltbridge/job/1/summary", "io.saltbridge.job.summary"),
        ("saltbridge/bus/gap", "io.saltbridge.bus.gap"),
        ("myco/deploy/web-01/done", GENERIC_TYPE),
        ("salt/beacon/x/{}bad", GENERIC_TYPE),
        ("", GENERIC_TYPE),
    ] {
        assert_eq!(event_type(tag), want, "{tag}");
    }
}

#[test]
fn attributes_of_a_return() {
    let o = out(
        "salt/job/1/ret/web-01",
        json!({"id": "web-01", "_stamp": "2026-11-26T13:58:07.857326"}),
    );
    let a = Attributes::of(&o, None);
    assert_eq!(a.id, o.key());
    assert_eq!(a.source, "ipc:/var/run/salt/master/master_event_pub.ipc");
    assert_eq!(a.kind, "io.saltproject.job.ret");
    assert_eq!(a.subject, "salt/job/1/ret/web-01");
    assert_eq!(a.time, "2026-11-26T13:58:07.857326Z");
    assert_eq!(
        Attributes::of(&o, Some("urn:salt:prod")).source,
        "urn:salt:prod"
    );
    // 3008 writes the zone; an event without `_stamp` takes the read time.
    assert_eq!(
        salt_stamp_rfc3339("2026-11-26T13:58:07.857326+00:00").as_deref(),
        Some("2026-11-26T13:58:07.857326Z")
    );
    let a = Attributes::of(&out("t", json!({"_stamp": 5})), None);
    assert!(a.time.ends_with('Z') && a.time.len() == 27, "{}", a.time);
}

/// The spec's rules for the required attributes and for `time`, checked on
/// the envelope as a consumer parses it.
#[test]
fn the_envelope_has_what_the_spec_requires() {
    let o = out(
        "salt/job/1/ret/web-01",
        json!({"id": "web-01", "return": {"a": [1, 2]}, "_stamp": "2026-11-26T13:58:07.857326"}),
    );
    let mut buf = Vec::new();
    write_envelope(
        &mut buf,
        &Attributes::of(&o, None),
        &[("traceparent", "00-x")],
        &o,
    );
    let v: Value = serde_json::from_slice(&buf).unwrap();
    for required in ["specversion", "id", "source", "type"] {
        let s = v[required].as_str().unwrap();
        assert!(!s.is_empty(), "{required}");
    }
    assert_eq!(v["specversion"], "1.0");
    assert_eq!(v["datacontenttype"], "application/json");
    assert_eq!(v["data"], *o.event.data());
    assert_eq!(v["traceparent"], "00-x");
    assert!(humantime::parse_rfc3339(v["time"].as_str().unwrap()).is_ok());
    // Attribute names: lower-case letters and digits, at most 20.
    for name in v.as_object().unwrap().keys() {
        assert!(
            name.len() <= 20
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{name}"
        );
    }
}

#[test]
fn header_values_are_percent_encoded_and_bounded() {
    assert_eq!(
        percent_encode_header("salt/job/1/ret/a", 100),
        "salt/job/1/ret/a"
    );
    assert_eq!(
        percent_encode_header("a b\"%é\n", 100),
        "a%20b%22%25%C3%A9%0A"
    );
    let cut = percent_encode_header(&"é".repeat(100), 64);
    assert!(cut.len() <= 64 && cut.ends_with("..."), "{cut}");
    assert!(!cut.trim_end_matches("...").ends_with(['%', 'C']), "{cut}");
}
