//! `saltbridge demo`, `completions`, `man` and `--version`, as a user runs
//! them: the binary, in a directory of their own.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn saltbridge(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The lines of a text demo that follow the line `header`, up to the next event.
fn under<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(header))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect()
}

#[test]
fn demo_on_a_fresh_machine_uses_the_built_in_routes_and_shows_each_decision() {
    let dir = tempfile::tempdir().unwrap();
    // A real chat URL in the environment must not be posted to by the demo.
    let out = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["demo", "--color", "never"])
        .current_dir(dir.path())
        .env("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/must-not-be-used")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("no routes.yaml here"), "{stdout}");
    for session in [
        "00_startup",
        "a_test_ping",
        "b_timeout_find_job",
        "c3_state_sls_failing",
    ] {
        assert!(
            stdout.contains(&format!("/4 {session}: ")),
            "{session}:\n{stdout}"
        );
    }
    // The minion start: its legacy twin dropped, the CMDB webhook called for real.
    let start = under(&stdout, "salt/minion/lab-minion/start");
    assert!(
        start
            .iter()
            .any(|l| l.contains("route minion-start-to-cmdb")),
        "{start:?}"
    );
    assert!(
        start.iter().any(|l| l.contains(
            "cmdb (webhook) received POST /cmdb: {\"tag\":\"salt/minion/lab-minion/start\""
        )),
        "{start:?}"
    );
    let twin = under(&stdout, "minion_start (held above)");
    assert_eq!(
        twin,
        ["  dropped: Salt's duplicate (minion_start) of salt/minion/lab-minion/start"]
    );
    // find_job polling is noise.
    assert_eq!(
        stdout.matches("dropped by drop.find_job").count(),
        3,
        "{stdout}"
    );
    // The failed state: Kafka's record shown, not sent; the chat message received.
    let failed = under(&stdout, "salt/job/20261126135807141393/ret/lab-minion");
    assert!(
        failed.iter().any(|l| l.contains("pipeline (kafka, not sent: no broker in the demo) would get topic salt.job.ret, key lab-minion:")),
        "{failed:?}"
    );
    assert!(
        failed.iter().any(|l| l.contains(
            "chat (webhook) received POST /chat: {\"text\":\"❌ state.sls failed on lab-minion\""
        )),
        "{failed:?}"
    );
    // The failed job's summary: one chat message for the whole job.
    let summary = under(
        &stdout,
        "saltbridge/job/20261126135807141393/summary (emitted by saltbridge)",
    );
    assert!(
        summary.iter().any(|l| l.contains(
            "chat (webhook) received POST /chat: {\"text\":\"❌ state.sls on *: 1 of 1 minion failed\""
        )),
        "{summary:?}"
    );
    assert!(
        stdout.contains("sinks received: chat 2, cmdb 1, pipeline 5"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "--color never");
}

#[test]
fn demo_json_follows_the_given_routes_file_through_the_real_sinks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.yaml"),
        r#"
sinks:
  hook:
    type: webhook
    url: "http://203.0.113.1/never"
    headers: {X-Jid: "{{ data.jid }}"}
    body: '{"who": "{{ data.id }}", "ok": {{ data.success | tojson }}}'
  stream: {type: kafka, brokers: "127.0.0.1:1", topic: "salt.{{ data.fun }}", key: "{{ data.jid }}"}
routes:
  - name: returns
    match: {tag: "salt/job/*/ret/*"}
    to: [hook, stream]
"#,
    )
    .unwrap();
    let out = saltbridge(dir.path(), &["demo", "-c", "mine.yaml", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // What the captures hold, from their decoded .jsonl twins.
    let recorded: Vec<Value> = [
        "00_startup",
        "a_test_ping",
        "b_timeout_find_job",
        "c3_state_sls_failing",
    ]
    .iter()
    .flat_map(|s| {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/3008.4/{s}.jsonl"));
        let text = std::fs::read_to_string(p).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    })
    .collect();
    let expected_events = recorded.len();
    let read = lines.iter().filter(|l| l["arrival"] == "bus").count();
    assert_eq!(read, expected_events);
    let twins: Vec<&str> = lines.iter().filter_map(|l| l["twin"].as_str()).collect();
    assert_eq!(twins, ["minion_start", "state_failure"]);

    // Every job return but find_job's (a noise preset, on by default) is routed.
    let returns: Vec<&Value> = lines
        .iter()
        .filter(|l| l["routes"].as_array().is_some_and(|r| !r.is_empty()))
        .collect();
    let mut routed: Vec<&str> = returns.iter().filter_map(|l| l["tag"].as_str()).collect();
    let mut wanted: Vec<&str> = recorded
        .iter()
        .filter(|e| e["data"]["fun"] != "saltutil.find_job")
        .filter_map(|e| e["tag"].as_str())
        .filter(|t| t.starts_with("salt/job/") && t.contains("/ret/"))
        .collect();
    routed.sort();
    wanted.sort();
    assert_eq!(routed, wanted);
    let failed = returns
        .iter()
        .find(|l| l["tag"] == "salt/job/20261126135807141393/ret/lab-minion")
        .unwrap();
    let sinks = failed["sinks"].as_array().unwrap();
    let hook = &sinks[0];
    assert_eq!(hook["sink"], "hook");
    assert_eq!(hook["requests"][0]["path"], "/hook");
    assert_eq!(
        hook["requests"][0]["headers"]["x-jid"],
        "20261126135807141393"
    );
    let body: Value = serde_json::from_str(hook["requests"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"who": "lab-minion", "ok": false}));
    let stream = &sinks[1];
    assert_eq!(stream["sent"], false);
    assert_eq!(stream["topic"], "salt.state.sls");
    assert_eq!(stream["key"], "20261126135807141393");
    let value: Value = serde_json::from_str(stream["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["tag"], "salt/job/20261126135807141393/ret/lab-minion");
    assert_eq!(value["data"]["retcode"], 2);
}

#[test]
fn demo_refuses_a_bad_routes_file_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("routes.yaml"),
        "routes:\n  - name: a\n    to: [nowhere]\n",
    )
    .unwrap();
    let out = saltbridge(dir.path(), &["demo"]);
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(
        err.contains("routes.yaml:3:") && err.contains("unknown sink `nowhere`"),
        "{err}"
    );
}

#[test]
fn completions_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = saltbridge(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for cmd in [
            "run",
            "tail",
            "validate",
            "explain",
            "test",
            "demo",
            "completions",
            "man",
        ] {
            assert!(script.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    let out = saltbridge(dir.path(), &["completions", "tcsh"]);
    assert!(!out.status.success());
}

#[test]
fn man_page_documents_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = saltbridge(dir.path(), &["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH saltbridge 1"), "{page}");
    assert!(page.contains("saltbridge\\-demo"), "{page}");

    let out = saltbridge(dir.path(), &["man", "--dir", "pages"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = std::fs::read_to_string(dir.path().join("pages/saltbridge-run.1")).unwrap();
    assert!(run.contains("state\\-dir"), "{run}");
    assert!(dir.path().join("pages/saltbridge-demo.1").exists());
}

#[test]
fn version_says_how_the_binary_was_built() {
    let dir = tempfile::tempdir().unwrap();
    let out = saltbridge(dir.path(), &["--version"]);
    assert!(out.status.success());
    let line = text(&out.stdout);
    let want_start = format!("saltbridge {} (", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want_start), "{line}");
    assert!(line.contains(", rustc "), "{line}");
    assert!(line.trim_end().ends_with(", release)"), "{line}");
    // Built from a git clone: the commit it was built from.
    let head = Command::new("git")
        .args(["log", "-1", "--format=%h %cs"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let head = text(&head.stdout);
        assert!(
            line.contains(&format!("({}, ", head.trim())),
            "{line} vs HEAD {head}"
        );
    }
}
