//! The four chat presets on real Salt 3008.4 returns, job summaries and other events,
//! and the DingTalk and Feishu signatures.

use super::*;

pub(crate) async fn preset_body(preset: &str, o: Outgoing) -> Value {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/chat"), "preset": preset}));
    s.send(&[o]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// All the text a chat message shows, joined.
pub(crate) fn all_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(all_text).collect::<Vec<_>>().join("\n"),
        Value::Object(o) => o.values().map(all_text).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

#[tokio::test]
async fn presets_on_a_failing_state_run() {
    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
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
    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
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
    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
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
    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
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
    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
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
    for preset in ["slack", "teams", "teams_connector", "dingtalk", "feishu"] {
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
    let rx = Receiver::start().await.unwrap();
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
    let rx = Receiver::start().await.unwrap();
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
