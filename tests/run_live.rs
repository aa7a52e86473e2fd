//! `saltbridge run` with everything real: a Salt 3008.4 master and minion,
//! the HTTP receiver, and the tansu Kafka-API broker. `test.ping`,
//! `cmd.run 'exit 3'` and a failing `state.sls` must produce exactly the
//! expected webhook requests and Kafka records, once each.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::receiver::{Answer, Receiver};
use serde_json::Value;
use support::daemon::{self, Daemon};
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
    let receiver = Receiver::start().await.unwrap();
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
    let mut run = daemon::command();
    run.args(["run", "-c"])
        .arg(&routes)
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let daemon = Daemon::spawn(run, &dir.path().join("run.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("connected to the master's event bus") {
        assert!(
            Instant::now() < deadline,
            "run never connected: {}",
            daemon.log()
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

    let (status, log) = tokio::task::spawn_blocking(move || daemon.stop(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{log}");
}
