//! The webhook sink against a real HTTP server on loopback
//! (`support::http_receiver`): bodies, templates, auth and signatures
//! (checked the way docs/sinks-webhook.md tells receivers to check them,
//! including its Python and openssl snippets), the four chat presets on real
//! Salt 3008.4 returns, batching, how every kind of answer is classified,
//! and configuration errors.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use saltbridge::event::Event;
use saltbridge::sink::webhook::WebhookSink;
use saltbridge::sink::{Outgoing, SendError, SinkConfigError};
use support::http_receiver::{Answer, Mode, Receiver};

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

// ---------------------------------------------------------------- bodies

#[tokio::test]
async fn default_body_is_the_event_as_json() {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/hook")}));
    let o = failing_state_ret();
    s.send(std::slice::from_ref(&o)).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-saltbridge-key"), Some(o.key.as_str()));
    assert_eq!(
        r.header("x-saltbridge-tag"),
        Some("salt/job/20261126135807141393/ret/lab-minion")
    );
    assert!(r.header("user-agent").unwrap().starts_with("saltbridge/"));
    assert_eq!(r.header("x-saltbridge-batch-size"), None);
    let body = r.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["tag", "data", "route", "key", "received_at", "source"]
    );
    assert_eq!(body["tag"], o.event.tag());
    assert_eq!(&body["data"], o.event.data());
    assert_eq!(body["route"], "failed-jobs-to-chat");
    assert_eq!(body["key"], o.key);
    assert_eq!(body["source"], "capture:test");
    let received = body["received_at"].as_str().unwrap();
    humantime::parse_rfc3339(received).unwrap();
    assert_eq!(r.answer, Answer::Status(200));
}

#[tokio::test]
async fn url_method_headers_and_body_are_templates() {
    let rx = Receiver::start().await;
    let base = rx.url("");
    let s = sink(json!({
        "type": "webhook",
        "url": format!("{base}/minion/{{{{ data.id }}}}?fun={{{{ data.fun | urlencode }}}}&route={{{{ route }}}}"),
        "method": "{{ 'put' if data.retcode > 0 else 'post' }}",
        "headers": {
            "X-Jid": "{{ data.jid }}",
            "X-Static": "yes",
            "Content-Type": "text/plain; charset=utf-8"
        },
        "body": "{{ data.id }} {{ data.fun }} rc={{ data.retcode }} failed={{ data.return | failed_states | map(attribute='id') | join(',') }} comment={{ (data.return | failed_states)[0].comment }} tag={{ tag }} key={{ key }}"
    }));
    let o = failing_state_ret();
    s.send(std::slice::from_ref(&o)).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/minion/lab-minion");
    assert_eq!(r.query_param("fun").as_deref(), Some("state.sls"));
    assert_eq!(
        r.query_param("route").as_deref(),
        Some("failed-jobs-to-chat")
    );
    assert_eq!(r.header("x-jid"), Some("20261126135807141393"));
    assert_eq!(r.header("x-static"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.body_str(),
        format!(
            "lab-minion state.sls rc=2 failed=bad_state comment=Failure! tag={} key={}",
            o.event.tag(),
            o.key
        )
    );
}

#[tokio::test]
async fn a_template_that_fails_to_render_rejects() {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/"), "body": "{{ data.nope.deeper }}"}));
    let err = s.send(&[test_ping_ret()]).await.unwrap_err();
    let SendError::Reject { reason, status } = err else {
        panic!("{err:?}")
    };
    assert_eq!(status, None);
    assert!(reason.contains("template `body`"), "{reason}");
    let s = sink(json!({"type": "webhook", "url": "{{ data.id }}"}));
    let err = s.send(&[test_ping_ret()]).await.unwrap_err();
    assert!(matches!(err, SendError::Reject { .. }), "{err:?}");
    assert_eq!(rx.count(), 0);
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn bearer_and_basic_auth() {
    let rx = Receiver::start().await;
    let bearer = sink(
        json!({"type": "webhook", "url": rx.url("/b"), "auth": {"bearer": {"token": "s3cr3t"}}}),
    );
    let basic = sink(json!({"type": "webhook", "url": rx.url("/a"),
        "auth": {"basic": {"username": "salt", "password": "p@ss:word"}}}));
    bearer.send(&[test_ping_ret()]).await.unwrap();
    basic.send(&[test_ping_ret()]).await.unwrap();
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cr3t"));
    let expected = base64::engine::general_purpose::STANDARD.encode("salt:p@ss:word");
    assert_eq!(
        got[1].header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    // Secrets stay out of Debug output.
    let debug = format!("{:?}", bearer.config());
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(!format!("{basic:?}").contains("p@ss"));
}

/// The code block that follows `<!-- marker -->` in docs/sinks-webhook.md.
fn doc_snippet(marker: &str) -> String {
    let doc = std::fs::read_to_string(root().join("docs/sinks-webhook.md")).unwrap();
    let at = doc
        .find(&format!("<!-- {marker} -->"))
        .unwrap_or_else(|| panic!("no {marker} in the docs"));
    let rest = &doc[at..];
    let start = rest.find("```").unwrap();
    let rest = &rest[start..];
    let body_start = rest.find('\n').unwrap() + 1;
    let end = rest[body_start..].find("```").unwrap();
    rest[body_start..body_start + end].to_owned()
}

/// Runs a program if it is installed; outside CI a missing one skips.
fn run_tool(program: &str, args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .output();
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the {program} check: {e}");
            None
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

#[tokio::test]
async fn hmac_signature_verifies_as_the_docs_say() {
    let rx = Receiver::start().await;
    let secret = "whsec_0123456789";
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/signed"), "auth": {"hmac": {"secret": secret}}}),
    );
    s.send(&[failing_state_ret()]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    let ts = r.header("x-saltbridge-timestamp").unwrap().to_owned();
    let sig = r.header("x-saltbridge-signature").unwrap().to_owned();
    // The scheme, in Rust: sha256= hex(HMAC-SHA256(secret, timestamp "." body)).
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    assert_eq!(
        sig,
        format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &signed)))
    );
    let age = now_secs().abs_diff(ts.parse::<u64>().unwrap());
    assert!(age < 60, "timestamp {ts} is {age} s off");

    // The docs' own snippets, run as a receiver would.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body.json"), &r.body).unwrap();
    let python = format!(
        "{}\nimport os, sys\nbody = open('body.json', 'rb').read()\n\
         print(verify(os.environ['SECRET'].encode(), os.environ['TIMESTAMP'], os.environ['SIGNATURE'], body))\n\
         print(verify(b'wrong', os.environ['TIMESTAMP'], os.environ['SIGNATURE'], body))\n",
        doc_snippet("verify:python")
    );
    std::fs::write(dir.path().join("verify.py"), python).unwrap();
    let envs = [
        ("SECRET", secret),
        ("TIMESTAMP", ts.as_str()),
        ("SIGNATURE", sig.as_str()),
    ];
    if let Some(out) = run_tool("python3", &["verify.py"], dir.path(), &envs) {
        assert_eq!(out, "True\nFalse");
    }
    std::fs::write(dir.path().join("verify.sh"), doc_snippet("verify:sh")).unwrap();
    if let Some(out) = run_tool("sh", &["verify.sh"], dir.path(), &envs) {
        assert_eq!(out, "valid");
    }
    let bad = [("SECRET", "wrong"), envs[1], envs[2]];
    if let Some(out) = run_tool("sh", &["verify.sh"], dir.path(), &bad) {
        assert_eq!(out, "INVALID");
    }
}

#[tokio::test]
async fn hmac_header_names_can_be_changed() {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/"),
        "auth": {"hmac": {"secret": "k", "header": "X-Hub-Signature-256", "timestamp_header": "X-Hub-Time"}}}));
    s.send(&[test_ping_ret()]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    let ts = r.header("x-hub-time").unwrap();
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    assert_eq!(
        r.header("x-hub-signature-256").unwrap(),
        format!("sha256={}", hex(&hmac_sha256(b"k", &signed)))
    );
    assert_eq!(r.header("x-saltbridge-signature"), None);
}

// ---------------------------------------------------------------- presets

async fn preset_body(preset: &str, o: Outgoing) -> Value {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/chat"), "preset": preset}));
    s.send(&[o]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// All the text a chat message shows, joined.
fn all_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(all_text).collect::<Vec<_>>().join("\n"),
        Value::Object(o) => o.values().map(all_text).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

#[tokio::test]
async fn presets_on_a_failing_state_run() {
    for preset in ["slack", "teams", "dingtalk", "feishu"] {
        let body = preset_body(preset, failing_state_ret()).await;
        println!(
            "{preset}:\n{}",
            serde_json::to_string_pretty(&body).unwrap()
        );
        let text = all_text(&body);
        for want in [
            "state.sls failed on lab-minion",
            "lab-minion",
            "failing",
            "success: false, retcode: 2",
            "2 states: 1 failed, 1 succeeded (1 changed)",
            "Failed states (1 of 2)",
            "bad_state",
            "test.fail_without_changes: Failure!",
            "20261126135807141393",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
        // The state that succeeded is not listed as failed.
        assert!(!text.contains("Success!"), "{preset}: {text}");
    }
}

#[tokio::test]
async fn a_state_run_that_says_success_but_failed_states_is_a_failure() {
    let mut data = failing_state_ret().event.data().clone();
    data["success"] = json!(true);
    data["retcode"] = json!(0);
    let o = Outgoing::new(
        Event::synthetic("salt/job/1/ret/lab-minion", data, Arc::from("x")),
        "r",
    );
    let body = preset_body("slack", o).await;
    let text = all_text(&body);
    assert!(text.contains("❌ state.sls failed on lab-minion"), "{text}");
    assert!(text.contains("success: true, retcode: 0"), "{text}");
    assert!(
        text.contains("`bad_state` test.fail_without_changes: Failure!"),
        "{text}"
    );
}

#[tokio::test]
async fn preset_shapes() {
    let o = failing_state_ret;
    let slack = preset_body("slack", o()).await;
    assert_eq!(slack["text"], "❌ state.sls failed on lab-minion");
    let blocks = slack["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(blocks.iter().all(|b| b["type"] != "section"
        || b["text"]["type"] == "mrkdwn"
        || b["fields"].is_array()));
    assert_eq!(blocks.last().unwrap()["type"], "context");

    let teams = preset_body("teams", o()).await;
    assert_eq!(teams["type"], "message");
    let att = &teams["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    assert_eq!(att["content"]["body"][0]["color"], "Attention");
    assert_eq!(att["content"]["body"][1]["type"], "FactSet");

    let ding = preset_body("dingtalk", o()).await;
    assert_eq!(ding["msgtype"], "markdown");
    assert_eq!(
        ding["markdown"]["title"],
        "❌ state.sls failed on lab-minion"
    );
    assert!(ding["markdown"]["text"]
        .as_str()
        .unwrap()
        .contains("- **bad_state** test.fail_without_changes: Failure!"));

    let feishu = preset_body("lark", o()).await;
    assert_eq!(feishu["msg_type"], "interactive");
    assert_eq!(feishu["card"]["header"]["template"], "red");
    assert!(feishu.get("sign").is_none());
}

#[tokio::test]
async fn presets_on_cmd_run_exit_3() {
    for preset in ["slack", "teams", "dingtalk", "feishu"] {
        let text = all_text(&preset_body(preset, cmd_exit3_ret()).await);
        for want in [
            "cmd.run failed on lab-minion",
            "'exit 3'",
            "success: false, retcode: 3",
            "(no output)",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
    }
}

#[tokio::test]
async fn presets_on_test_ping() {
    for preset in ["slack", "teams", "dingtalk", "feishu"] {
        let body = preset_body(preset, test_ping_ret()).await;
        let text = all_text(&body);
        for want in [
            "✅ test.ping succeeded on lab-minion",
            "success: true, retcode: 0",
            "true",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
        assert!(!text.contains("Arguments"), "{preset}: {text}");
    }
    let feishu = preset_body("feishu", test_ping_ret()).await;
    assert_eq!(feishu["card"]["header"]["template"], "green");
}

#[tokio::test]
async fn presets_on_a_job_summary() {
    for preset in ["slack", "teams", "dingtalk", "feishu"] {
        let body = preset_body(preset, summary_event()).await;
        println!(
            "{preset}:\n{}",
            serde_json::to_string_pretty(&body).unwrap()
        );
        let text = all_text(&body);
        for want in [
            "state.sls on web-*: 1 of 3 minions failed, 1 did not return",
            "3 targeted: 1 succeeded, 1 failed, 1 did not return",
            "Failed (1)",
            "web-02",
            "retcode 2",
            "Did not return (1)",
            "web-03",
            "Failed states (1)",
            "bad_state",
            "on web-02: test.fail_without_changes: Failure!",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
        assert!(
            !text.contains("web-01"),
            "{preset}: succeeded minions are only counted"
        );
    }
}

/// The summary the pipeline makes of a capture, after its last event.
fn summary_of_capture(file: &str, route: &str) -> Outgoing {
    use saltbridge::pipeline::{Outcome, Pipeline};
    let bytes = std::fs::read(root().join("tests/fixtures/3008.4").join(file)).unwrap();
    let table = saltbridge::config::load_str(Path::new("r.yaml"), "", |_| None).unwrap();
    let mut p = Pipeline::new(table, false);
    let now = std::time::Instant::now();
    let mut outcomes = Vec::new();
    for d in saltbridge::decode::decode_all(&bytes, Arc::from("capture:test")) {
        if let saltbridge::decode::Decoded::Event(e) = d {
            outcomes.extend(p.push(e, now));
        }
    }
    outcomes.extend(p.flush(now));
    let summary = outcomes
        .into_iter()
        .find_map(|o| match o {
            Outcome::Routed { event, .. } if event.tag().ends_with("/summary") => Some(event),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no summary of {file}"));
    Outgoing::new(summary, route)
}

#[tokio::test]
async fn presets_on_summaries_made_from_real_captures() {
    let state = summary_of_capture("c3_state_sls_failing.bin", "failed-job-summaries-to-chat");
    let down = summary_of_capture("e_minion_down.bin", "failed-job-summaries-to-chat");
    for preset in ["slack", "teams", "dingtalk", "feishu"] {
        let text = all_text(&preset_body(preset, state.clone()).await);
        for want in [
            "state.sls on *: 1 of 1 minion failed",
            "Failed (1)",
            "lab-minion",
            "Failed states (1)",
            "on lab-minion: test.fail_without_changes: Failure!",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
        // The input ended before the job's deadline: the message says so.
        let text = all_text(&preset_body(preset, down.clone()).await);
        for want in [
            "test.ping on *: 1 of 1 minion did not return",
            "Did not return (1)",
            "incomplete",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
    }
}

#[tokio::test]
async fn presets_on_a_state_failure_event() {
    let o = Outgoing::new(
        fixture("c3_state_sls_failing.jsonl", "/sub/"),
        "state-errors",
    );
    for preset in ["slack", "teams", "dingtalk", "feishu"] {
        let text = all_text(&preset_body(preset, o.clone()).await);
        for want in [
            "state bad_state failed on lab-minion",
            "state.sls",
            "Failure!",
        ] {
            assert!(text.contains(want), "{preset}: no {want:?} in {text}");
        }
    }
}

#[tokio::test]
async fn presets_on_other_events() {
    let o = Outgoing::new(
        fixture("d1_saltcall_event_send.jsonl", "my/"),
        "custom-events",
    );
    let tag = o.event.tag().to_owned();
    let text = all_text(&preset_body("slack", o).await);
    assert!(text.contains(&format!("ℹ️ {tag}")), "{text}");
    assert!(text.contains("*Data*"), "{text}");
}

#[tokio::test]
async fn dingtalk_signature() {
    let rx = Receiver::start().await;
    let secret = "SEC0123456789abcdef";
    let url = format!("{}?access_token=abc", rx.url("/robot/send"));
    let s = sink(json!({"type": "webhook", "url": url, "preset": "dingtalk", "secret": secret}));
    s.send(&[failing_state_ret()]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.query_param("access_token").as_deref(), Some("abc"));
    // DingTalk: timestamp in ms; sign = urlencode(base64(HMAC-SHA256(key=secret,
    // msg=timestamp + "\n" + secret))).
    let ts = r.query_param("timestamp").unwrap();
    let ms: u128 = ts.parse().unwrap();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(now_ms.abs_diff(ms) < 60_000, "{ms} vs {now_ms}");
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        secret.as_bytes(),
        format!("{ts}\n{secret}").as_bytes(),
    ));
    assert_eq!(r.query_param("sign").unwrap(), expected);
    // The raw query is URL-encoded (base64's + / = escaped).
    let raw = r.query.as_deref().unwrap();
    assert!(!raw.contains('+') && !raw.contains('/'), "{raw}");
    assert_eq!(r.json()["msgtype"], "markdown");
}

#[tokio::test]
async fn feishu_signature() {
    let rx = Receiver::start().await;
    let secret = "feishu-secret";
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/open-apis/bot/v2/hook/x"), "preset": "feishu", "secret": secret}),
    );
    s.send(&[failing_state_ret()]).await.unwrap();
    let body = rx.wait_for(1, WAIT).await[0].json();
    // Feishu: timestamp in s; sign = base64(HMAC-SHA256(key=timestamp + "\n" +
    // secret, msg="")), both in the JSON body as strings.
    let ts = body["timestamp"].as_str().unwrap();
    assert!(now_secs().abs_diff(ts.parse().unwrap()) < 60);
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(format!("{ts}\n{secret}").as_bytes(), b""));
    assert_eq!(body["sign"], expected);
    assert_eq!(body["msg_type"], "interactive");
}

// ---------------------------------------------------------------- outcomes

async fn outcome(mode: Mode, timeout: &str) -> Result<(), SendError> {
    let rx = Receiver::start().await;
    rx.set_mode(mode);
    let s = sink(json!({"type": "webhook", "url": rx.url("/x"), "timeout": timeout}));
    s.send(&[test_ping_ret()]).await
}

#[tokio::test]
async fn answers_are_classified() {
    let r = outcome(Mode::status(500).with_body("boom\n  today"), "5s").await;
    let Err(SendError::Retry {
        reason,
        status,
        retry_after,
    }) = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((status, retry_after), (Some(500), None));
    assert!(
        reason.contains("500") && reason.contains("127.0.0.1"),
        "{reason}"
    );
    assert!(reason.ends_with(": boom today"), "{reason}");

    let r = outcome(Mode::retry_after_secs(429, 7), "5s").await;
    assert!(
        matches!(r, Err(SendError::Retry { status: Some(429), retry_after: Some(d), .. }) if d == Duration::from_secs(7)),
        "{r:?}"
    );

    let at = SystemTime::now() + Duration::from_secs(30);
    let r = outcome(Mode::retry_after_date(503, at), "5s").await;
    let Err(SendError::Retry {
        status: Some(503),
        retry_after: Some(d),
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(
        d >= Duration::from_secs(27) && d <= Duration::from_secs(30),
        "{d:?}"
    );

    let r = outcome(Mode::status(400).with_body(r#"{"error":"no_text"}"#), "5s").await;
    let Err(SendError::Reject {
        reason,
        status: Some(400),
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(
        reason.contains("400") && reason.contains("no_text"),
        "{reason}"
    );

    let r = outcome(Mode::status(204), "5s").await;
    assert!(r.is_ok(), "{r:?}");

    let r = outcome(
        Mode::status(302).with_header("location", "https://elsewhere.example/new?token=x"),
        "5s",
    )
    .await;
    let Err(SendError::Reject {
        reason,
        status: Some(302),
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(reason.contains("https://elsewhere.example/..."), "{reason}");
    assert!(!reason.contains("token"), "{reason}");
}

#[tokio::test]
async fn a_slow_server_times_out_and_is_retried() {
    let started = std::time::Instant::now();
    let r = outcome(Mode::slow(Duration::from_secs(5)), "300ms").await;
    let Err(SendError::Retry {
        reason,
        status: None,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(reason.contains("within 300ms"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_reset_connection_is_retried() {
    let rx = Receiver::start().await;
    rx.push_once(Mode::reset());
    let s = sink(json!({"type": "webhook", "url": rx.url("/x")}));
    let r = s.send(&[test_ping_ret()]).await;
    let Err(SendError::Retry {
        reason,
        status: None,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(!reason.contains("/x"), "no URL path in reasons: {reason}");
    // The next request gets the default answer again.
    s.send(&[test_ping_ret()]).await.unwrap();
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].answer, Answer::Reset);
    assert_eq!(got[1].answer, Answer::Status(200));
}

#[tokio::test]
async fn nothing_listening_is_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s =
        sink(json!({"type": "webhook", "url": format!("http://127.0.0.1:{port}/secret-token")}));
    let r = s.send(&[test_ping_ret()]).await;
    let Err(SendError::Retry {
        reason,
        status: None,
        ..
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(reason.contains("cannot connect"), "{reason}");
    assert!(!reason.contains("secret-token"), "{reason}");
}

#[tokio::test]
async fn receiver_stop_and_resume() {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/x")}));
    s.send(&[test_ping_ret()]).await.unwrap();
    rx.stop().await;
    let r = s.send(&[test_ping_ret()]).await;
    assert!(matches!(r, Err(SendError::Retry { .. })), "{r:?}");
    rx.resume().await;
    s.send(&[test_ping_ret()]).await.unwrap();
    let got = rx.requests();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got.iter().all(|r| r.answer == Answer::Status(200)));
}

#[tokio::test]
async fn chat_errors_inside_http_200_are_rejected() {
    let rx = Receiver::start().await;
    rx.set_mode(Mode::json(
        200,
        json!({"errcode": 310000, "errmsg": "sign not match"}),
    ));
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/robot/send"), "preset": "dingtalk", "secret": "SECx"}),
    );
    let r = s.send(&[test_ping_ret()]).await;
    let Err(SendError::Reject {
        reason,
        status: Some(200),
    }) = r
    else {
        panic!("{r:?}")
    };
    assert!(
        reason.contains("310000") && reason.contains("sign not match"),
        "{reason}"
    );
}

// ---------------------------------------------------------------- batching

#[tokio::test]
async fn a_batch_is_one_json_array() {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/bulk"), "batch": {"max_events": 10}}));
    let b = s.batch().unwrap();
    assert_eq!(
        (b.max_events, b.max_bytes, b.max_wait),
        (10, 1024 * 1024, Duration::from_secs(1))
    );
    let batch = [failing_state_ret(), cmd_exit3_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("x-saltbridge-key"), Some(batch[0].key.as_str()));
    assert_eq!(r.header("x-saltbridge-batch-size"), Some("3"));
    let body = r.json();
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (item, o) in items.iter().zip(&batch) {
        assert_eq!(item["key"], o.key);
        assert_eq!(item["tag"], o.event.tag());
        assert_eq!(&item["data"], o.event.data());
    }
    let hinted: usize = batch.iter().map(|o| s.size_hint(o)).sum();
    assert!(hinted >= r.body.len(), "{hinted} < {}", r.body.len());
}

#[tokio::test]
async fn a_batch_with_a_body_template_is_an_array_of_renders() {
    let rx = Receiver::start().await;
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/bulk"), "batch": {},
        "body": "{\"minion\": {{ data.id | tojson }}, \"rc\": {{ data.retcode }}, \"key\": \"{{ key }}\"}"}),
    );
    let batch = [cmd_exit3_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let body = rx.wait_for(1, WAIT).await[0].json();
    assert_eq!(
        body,
        json!([
            {"minion": "lab-minion", "rc": 3, "key": batch[0].key},
            {"minion": "lab-minion", "rc": 0, "key": batch[1].key}
        ])
    );
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/bulk"), "batch": {}, "body": "rc={{ data.retcode }}"}),
    );
    let r = s.send(&batch).await;
    assert!(matches!(r, Err(SendError::Reject { .. })), "{r:?}");
}

#[tokio::test]
async fn without_batching_each_event_is_its_own_request() {
    let rx = Receiver::start().await;
    let s = sink(json!({"type": "webhook", "url": rx.url("/one")}));
    assert!(s.batch().is_none());
    assert_eq!(s.concurrency(), 4);
    let batch = [cmd_exit3_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].json()["key"], batch[0].key);
    assert_eq!(got[1].json()["key"], batch[1].key);
}

// ---------------------------------------------------------------- config

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
    fields.extend(accepted(with("preset", json!("zzz"))));
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
