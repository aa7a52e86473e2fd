//! `saltbridge run` with everything real: a Salt 3008.4 master and minion,
//! the HTTP receiver, and the tansu Kafka-API broker. `test.ping`,
//! `cmd.run 'exit 3'` and a failing `state.sls` must produce exactly the
//! expected webhook requests and Kafka records, once each.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::http_receiver::{Answer, Receiver};
use support::salt_sandbox::{SaltSandbox, SandboxOptions};
use support::tansu::{consume, consume_up_to, Tansu};

const FAILING_SLS: &str = "ok_state:\n  test.succeed_with_changes: []\n\nbad_state:\n  test.fail_without_changes:\n    - comment: Failure!\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_jobs_reach_chat_and_kafka_once_each() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let Some(broker) = Tansu::start() else { return };
    broker.create_topic("salt.job.ret", 3).await;
    let receiver = Receiver::start().await;
    let salt = tokio::task::spawn_blocking(move || {
        SaltSandbox::start(&venv, SandboxOptions::with_minions(&["alpha"]))
    })
    .await
    .unwrap()
    .unwrap();
    std::fs::write(salt.file_root().join("failing.sls"), FAILING_SLS).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            r#"
source: "ipc:{master}"
sinks:
  chat: {{type: webhook, preset: slack, url: "{chat}"}}
  pipeline: {{type: kafka, brokers: "{brokers}", topic: salt.job.ret}}
routes:
  - name: returns
    match: {{tag: "salt/job/*/ret/*"}}
    to: [pipeline]
    continue: true
  - name: failed
    match:
      tag: "salt/job/*/ret/*"
      where: {{any: [{{retcode: {{gt: 0}}}}, {{success: false}}, {{return.*.result: false}}]}}
    to: [chat]
"#,
            master = salt.master_config_file().display(),
            chat = receiver.url("/chat"),
            brokers = broker.brokers()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["run", "-c"])
        .arg(&routes)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let l = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log
        .lock()
        .unwrap()
        .contains("connected to the master's event bus")
    {
        assert!(
            Instant::now() < deadline,
            "run never connected: {}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let salt = Arc::new(salt);
    for args in [
        vec!["*", "test.ping"],
        vec!["*", "cmd.run", "exit 3"],
        vec!["*", "state.sls", "failing"],
    ] {
        let s = salt.clone();
        let out = tokio::task::spawn_blocking(move || s.salt(&args))
            .await
            .unwrap();
        assert!(
            !out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let records = consume(
        &broker.brokers(),
        "salt.job.ret",
        3,
        Duration::from_secs(30),
    )
    .await;
    let funs: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.payload).unwrap()["data"]["fun"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(funs, vec!["test.ping", "cmd.run", "state.sls"], "{funs:?}");
    assert!(records.iter().all(|r| r.key_str() == "alpha"));
    receiver.wait_for(2, Duration::from_secs(30)).await;
    // Let any duplicate arrive before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let chat: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| matches!(r.answer, Answer::Status(200)))
        .collect();
    assert_eq!(chat.len(), 2, "exactly the two failed jobs: {chat:#?}");
    let texts: Vec<String> = chat
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        texts[0].contains("cmd.run") && texts[1].contains("state.sls"),
        "{texts:?}"
    );
    let body = chat[1].body_str();
    assert!(
        body.contains("bad_state") && body.contains("Failure!"),
        "the failed state and its comment: {body}"
    );
    let more = consume_up_to(&broker.brokers(), "salt.job.ret", 4, Duration::from_secs(3)).await;
    assert_eq!(more.len(), 3, "no duplicate records");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{}", log.lock().unwrap());
}
