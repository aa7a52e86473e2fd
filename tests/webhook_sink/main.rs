//! The webhook sink against a real HTTP server on loopback
//! (`saltbridge::receiver`): bodies, templates, auth and signatures
//! (checked the way docs/sinks-webhook.md tells receivers to check them,
//! including its Python and openssl snippets), the four chat presets on real
//! Salt 3008.4 returns, batching, how every kind of answer is classified,
//! and configuration errors: one file a topic, sharing the helpers here.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod batching;
mod bodies;
mod cloudevents;
mod config;
mod mtls;
mod oauth2;
mod outcomes;
mod presets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use saltbridge::event::Event;
use saltbridge::receiver::{Answer, Mode, Receiver};
use saltbridge::sink::webhook::WebhookSink;
use saltbridge::sink::{Outgoing, SendError, SinkConfigError};

const WAIT: Duration = Duration::from_secs(5);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The event with `tag` from a 3008.4 capture, as the decoder gives it.
fn fixture(file: &str, tag_contains: &str) -> Event {
    let path: PathBuf = root().join("tests/fixtures/3008.4").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let tag = v["tag"].as_str().unwrap();
        if tag.contains(tag_contains) {
            return Event::synthetic(tag, v["data"].clone(), Arc::from("capture:test"));
        }
    }
    panic!("no {tag_contains} in {file}");
}

fn failing_state_ret() -> Outgoing {
    Outgoing::new(
        fixture("c3_state_sls_failing.jsonl", "/ret/"),
        "failed-jobs-to-chat",
    )
}

fn cmd_exit3_ret() -> Outgoing {
    Outgoing::new(
        fixture("c2_cmd_exit3.jsonl", "/ret/"),
        "failed-jobs-to-chat",
    )
}

fn test_ping_ret() -> Outgoing {
    Outgoing::new(fixture("a_test_ping.jsonl", "/ret/"), "all-returns")
}

/// A job summary event as the summary stage will emit it.
fn summary_event() -> Outgoing {
    let data = json!({
        "jid": "20261126135807141393",
        "fun": "state.sls",
        "arg": ["failing"],
        "tgt": "web-*",
        "tgt_type": "glob",
        "user": "root",
        "minions": {
            "web-01": {"returned": true, "success": true, "retcode": 0},
            "web-02": {"returned": true, "success": false, "retcode": 2,
                       "failed_states": [{"id": "bad_state", "function": "test.fail_without_changes",
                                          "name": "bad_state", "comment": "Failure!"}]},
            "web-03": {"returned": false, "success": null, "retcode": null}
        },
        "counts": {"returned": 2, "succeeded": 1, "failed": 1, "did_not_return": 1}
    });
    Outgoing::new(
        Event::synthetic(
            "saltbridge/job/20261126135807141393/summary",
            data,
            Arc::from("saltbridge"),
        ),
        "job-summaries",
    )
}

fn sink(cfg: Value) -> WebhookSink {
    WebhookSink::from_config("test", &cfg).unwrap_or_else(|e| panic!("{e:?}"))
}

fn config_error(cfg: Value) -> SinkConfigError {
    match WebhookSink::from_config("chat", &cfg) {
        Ok(_) => panic!("accepted: {cfg}"),
        Err(e) => e,
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
