//! Fuzzes event data through the webhook's templates and chat presets: any
//! bytes a minion can place in event data, decoded as the bus decoder
//! does, then rendered by a URL template, a JSON body template built with
//! `tojson`, a header template, and every chat preset (as a job return, a
//! job announcement and a custom event). What must hold (issue 12, finding
//! 12, docs/sinks-webhook.md "Templates"): a value never rewrites the
//! request (the URL keeps its scheme, host and path prefix: each value is
//! percent-encoded), every body is JSON that parses, every header built
//! from event data fits `max_header_bytes`, and nothing panics.
#![no_main]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use saltbridge::decode::{decode_message, BodyStyle};
use saltbridge::sink::webhook::{RequestBuilder, WebhookConfig};
use saltbridge::sink::Outgoing;
use serde_json::json;

const TAGS: [&str; 4] = [
    "salt/job/20261201120000123456/ret/web-1",
    "salt/job/20261201120000123456/new",
    "salt/run/20261201120000123456/ret",
    "custom/minion/event",
];

const MAX_HEADER_BYTES: usize = 1024;

fn builder(settings: serde_json::Value) -> RequestBuilder {
    let cfg = WebhookConfig::parse("fuzz", &settings).expect("the target's own settings are valid");
    RequestBuilder::new("fuzz", &cfg).expect("the target's own templates compile")
}

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let tag = TAGS[usize::from(pick) % TAGS.len()];
    let body = [tag.as_bytes(), b"\n\n", data].concat();
    let Ok(event) = decode_message(
        Bytes::from(body),
        BodyStyle::Bus,
        Arc::from("fuzz"),
        SystemTime::UNIX_EPOCH,
    ) else {
        return;
    };
    let batch = [Outgoing::new(event, "route")];
    let now = SystemTime::UNIX_EPOCH;

    let templated = builder(json!({
        "type": "webhook",
        "url": "https://hooks.example.com/api/minions/{{ data.id }}/{{ data.jid }}?fun={{ data.fun }}",
        "headers": {"X-Minion": "{{ data.id }}"},
        "body": "{\"id\": {{ data.id | tojson }}, \"jid\": {{ data.jid | tojson }}, \"return\": {{ data.return | tojson }}, \"tag\": {{ tag | tojson }}}",
        "max_header_bytes": MAX_HEADER_BYTES,
    }));
    // A template may fail to render (an undefined filter input): that is a
    // rejected send, never a panic; a built request holds the properties.
    if let Ok(req) = templated.build(&batch, now) {
        assert_eq!(req.url.scheme(), "https");
        assert_eq!(req.url.host_str(), Some("hooks.example.com"));
        assert!(req.url.path().starts_with("/api/minions/"), "{}", req.url);
        assert_eq!(req.url.path_segments().map(|s| s.count()), Some(4), "{}", req.url);
        assert!(req.url.fragment().is_none(), "{}", req.url);
        assert!(req.url.query_pairs().all(|(k, _)| k == "fun"), "{}", req.url);
        serde_json::from_slice::<serde_json::Value>(&req.body).expect("a tojson body parses");
        for (name, value) in &req.headers {
            assert!(value.len() <= MAX_HEADER_BYTES, "{name}: {} bytes", value.len());
        }
    }

    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
        let chat = builder(json!({
            "type": "webhook",
            "preset": preset,
            "url": "https://chat.example.com/hook",
        }));
        if let Ok(req) = chat.build(&batch, now) {
            assert_eq!(req.url.as_str(), "https://chat.example.com/hook");
            serde_json::from_slice::<serde_json::Value>(&req.body)
                .unwrap_or_else(|e| panic!("{preset}: the body is not JSON: {e}"));
            for (name, value) in &req.headers {
                assert!(value.len() <= MAX_HEADER_BYTES, "{preset} {name}: {} bytes", value.len());
            }
        }
    }
});
