//! `saltbridge run` end to end: real captures in, a real HTTP receiver and a
//! real Kafka-API broker (tansu) out. Checks what each consumer receives,
//! once each; retries after 500s; a 400 parked in the dead-letter file; and
//! a SIGTERM that says what was not delivered.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use saltbridge::receiver::{Mode, Receiver};
use serde_json::Value;
use support::daemon::{self, Daemon};
use support::tansu::{consume, Tansu};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/3008.4")
}

/// One capture file made of several real sessions.
fn capture(dir: &Path, names: &[&str]) -> PathBuf {
    let bytes: Vec<u8> = names
        .iter()
        .flat_map(|n| std::fs::read(fixtures().join(format!("{n}.bin"))).unwrap())
        .collect();
    let p = dir.join("session.bin");
    std::fs::write(&p, bytes).unwrap();
    p
}

fn routes(dir: &Path, receiver: &Receiver, brokers: &str, kafka_extra: &str) -> PathBuf {
    let text = format!(
        r#"
drop: {{find_job: true, auth: true, minion_refresh: true}}
sinks:
  chat: {{type: webhook, preset: slack, url: "{chat}", retry: {{initial: 50ms, max: 200ms, give_up_after: 20s}}}}
  cmdb: {{type: webhook, url: "{cmdb}", retry: {{initial: 50ms, give_up_after: 20s}}}}
  pipeline: {{type: kafka, brokers: "{brokers}", topic: salt.job.ret{kafka_extra}}}
routes:
  - name: returns
    match: {{tag: "salt/job/*/ret/*"}}
    to: [pipeline]
    continue: true
  - name: failed
    match:
      tag: "salt/job/*/ret/*"
      where: {{any: [{{retcode: {{gt: 0}}}}, {{success: false}}]}}
    to: [chat]
  - name: starts
    match: {{tag: "salt/minion/*/start"}}
    to: [cmdb]
"#,
        chat = receiver.url("/chat"),
        cmdb = receiver.url("/cmdb"),
    );
    let p = dir.join("routes.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_saltbridge"))
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_to_webhooks_and_kafka_once_each() {
    let Some(broker) = Tansu::start() else { return };
    broker.create_topic("salt.job.ret", 3).await;
    let receiver = Receiver::start().await.unwrap();
    // The chat endpoint fails twice before it accepts: retried, not lost.
    receiver.push_once(Mode::status(500));
    receiver.push_once(Mode::status(503));
    let dir = tempfile::tempdir().unwrap();
    let session = capture(
        dir.path(),
        &[
            "00_startup",
            "a_test_ping",
            "b_timeout_find_job",
            "c2_cmd_exit3",
            "c3_state_sls_failing",
        ],
    );
    let config = routes(dir.path(), &receiver, &broker.brokers(), "");
    let out = run(vec![
        "run".into(),
        "-c".into(),
        config.display().to_string(),
        "--source".into(),
        format!("capture:{}", session.display()),
        "--state-dir".into(),
        dir.path().join("state").display().to_string(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("saltbridge run: 3 routes, 3 sinks"),
        "start-up line: {err}"
    );

    // Chat: exactly the two failed jobs (exit 3, failing state), once each.
    let reqs = receiver.requests();
    let chat: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.path == "/chat" && matches!(r.answer, saltbridge::receiver::Answer::Status(200))
        })
        .collect();
    assert_eq!(chat.len(), 2, "{reqs:#?}");
    let texts: Vec<String> = chat
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(texts.iter().any(|t| t.contains("cmd.run")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("state.sls")), "{texts:?}");
    let keys: std::collections::HashSet<&str> = chat
        .iter()
        .filter_map(|r| r.header("x-saltbridge-key"))
        .collect();
    assert_eq!(keys.len(), 2);
    // CMDB: the one minion start, the legacy minion_start twin dropped.
    let ok = |r: &&saltbridge::receiver::Recorded| {
        matches!(r.answer, saltbridge::receiver::Answer::Status(200))
    };
    let failed = reqs.iter().filter(|r| !ok(r)).count();
    assert_eq!(failed, 2, "the two 5xx answers were retried");
    let cmdb: Vec<_> = reqs.iter().filter(|r| r.path == "/cmdb" && ok(r)).collect();
    assert_eq!(cmdb.len(), 1);
    assert_eq!(cmdb[0].json()["tag"], "salt/minion/lab-minion/start");
    assert!(err.contains("retries"), "{err}");

    // Kafka: every job return but find_job's, keyed by minion.
    let records = consume(
        &broker.brokers(),
        "salt.job.ret",
        6,
        Duration::from_secs(20),
    )
    .await;
    let tags: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.payload).unwrap()["tag"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(records.len(), 6, "{tags:?}");
    assert!(
        tags.iter()
            .all(|t| t.starts_with("salt/job/") && t.ends_with("/ret/lab-minion")),
        "{tags:?}"
    );
    assert!(records.iter().all(|r| r.key_str() == "lab-minion"));
    let unique: std::collections::HashSet<&String> = tags.iter().collect();
    assert_eq!(unique.len(), 6, "once each");
    assert!(
        !dir.path().join("state/dead-letters.jsonl").exists(),
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_parked_and_what_sigterm_interrupts_is_sent_after_the_restart() {
    let receiver = Receiver::start().await.unwrap();
    receiver.set_path_mode("/chat", Mode::status(400));
    let dir = tempfile::tempdir().unwrap();
    let session = capture(dir.path(), &["c2_cmd_exit3"]);
    // No Kafka here: the pipeline points at a port where nothing listens,
    // and gives up quickly (its record is dead-lettered too).
    let config = routes(
        dir.path(),
        &receiver,
        "127.0.0.1:1",
        ", timeout: 1s, retry: {give_up_after: 1s}",
    );
    let state = dir.path().join("state");
    let out = run(vec![
        "run".into(),
        "-c".into(),
        config.display().to_string(),
        "-s".into(),
        format!("capture:{}", session.display()),
        "--state-dir".into(),
        state.display().to_string(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let dead = std::fs::read_to_string(state.join("dead-letters.jsonl")).unwrap();
    let lines: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let chat: Vec<&Value> = lines.iter().filter(|l| l["sink"] == "chat").collect();
    assert_eq!(chat.len(), 1, "{dead}");
    assert_eq!(chat[0]["status"], 400);
    assert_eq!(chat[0]["route"], "failed");
    assert!(chat[0]["event"]["tag"].as_str().unwrap().contains("/ret/"));
    assert!(err.contains("dead-lettered"), "{err}");

    // A live source that never ends, a receiver that hangs: SIGTERM.
    receiver.set_path_mode("/chat", Mode::slow(Duration::from_secs(30)));
    let sock = dir.path().join("pub.ipc");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut run_cmd = daemon::command();
    run_cmd
        .args(["run", "-c"])
        .arg(&config)
        .arg("-s")
        .arg(format!("ipc:{}", sock.display()))
        .arg("--state-dir")
        .arg(&state)
        .args(["--shutdown-timeout", "1s"]);
    let daemon = Daemon::spawn(run_cmd, &dir.path().join("sigterm.log"));
    let (mut conn, _) = listener.accept().unwrap();
    std::io::Write::write_all(
        &mut conn,
        &std::fs::read(fixtures().join("c2_cmd_exit3.bin")).unwrap(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, err) = tokio::task::spawn_blocking(move || daemon.stop(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{err}");
    assert!(err.contains("left in the spool"), "{err}");
    assert!(err.contains("sent at the next start"), "{err}");
    let dead_after = std::fs::read_to_string(state.join("dead-letters.jsonl")).unwrap();
    assert_eq!(dead_after, dead, "a stop dead-letters nothing");

    // The receiver is back: the next start (on an empty capture) sends
    // what the spool kept, then exits.
    receiver.set_path_mode("/chat", Mode::ok());
    receiver.clear();
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let out = run(vec![
        "run".into(),
        "-c".into(),
        config.display().to_string(),
        "-s".into(),
        format!("capture:{}", empty.display()),
        "--state-dir".into(),
        state.display().to_string(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let chat: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == "/chat")
        .collect();
    assert_eq!(chat.len(), 1, "the interrupted event, once: {err}");
    assert!(
        chat[0].body_str().contains("exit 3") || chat[0].body_str().contains("retcode"),
        "{}",
        chat[0].body_str()
    );
}

/// A blackhole sink takes every event routed to it and says so in the
/// final report; nothing goes to the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_counts_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let cap = capture(dir.path(), &["c3_state_sls_failing"]);
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        "sinks:\n  discard: {type: blackhole}\nroutes:\n  - {name: returns, match: {tag: \"salt/job/*/ret/*\"}, to: [discard]}\n",
    )
    .unwrap();
    let out = run(vec![
        "run".into(),
        "-c".into(),
        routes.display().to_string(),
        "--source".into(),
        format!("capture:{}", cap.display()),
        "--state-dir".into(),
        dir.path().display().to_string(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The capture holds one job return (its bare-jid twin is dropped).
    assert!(
        stderr.contains("sink discard: 1 accepted, 1 delivered, 0 retries, 0 dead-lettered"),
        "{stderr}"
    );
    assert!(!dir.path().join("dead-letters.jsonl").exists());
}
