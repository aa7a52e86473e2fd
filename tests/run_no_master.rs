//! `saltbridge run` where no master is up yet, as a new user meets it: it
//! says plainly which socket it tried and what to check, keeps running and
//! retrying, and once a master's socket appears it connects, says so, and
//! delivers. The "master" is a real unix socket serving a real capture.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use support::daemon::{self, Daemon};
use tokio::io::AsyncWriteExt;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/3008.4")
            .join(name),
    )
    .unwrap()
}

fn routes(dir: &Path, receiver: &Receiver) -> PathBuf {
    let text = format!(
        r#"
sinks:
  cmdb: {{type: webhook, url: "{}"}}
routes:
  - name: starts
    match: {{tag: "salt/minion/*/start"}}
    to: [cmdb]
"#,
        receiver.url("/cmdb")
    );
    let p = dir.join("routes.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn wait_for_log(daemon: &Daemon, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !daemon.log().contains(what) {
        assert!(
            Instant::now() < deadline,
            "stderr never said {what:?}:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_which_socket_it_tried_keeps_retrying_then_connects() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await.unwrap();
    let config = routes(dir.path(), &receiver);
    let socket = dir.path().join("master_event_pub.ipc");
    let mut run = daemon::command();
    run.arg("run")
        .arg("-c")
        .arg(&config)
        .arg("--source")
        .arg(format!("ipc:{}", socket.display()))
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let mut daemon = Daemon::spawn(run, &dir.path().join("run.log"));

    // The path it tried, why it failed, and what to check.
    let tried = format!(
        "cannot connect to the Salt master's event bus at {}: ",
        socket.display()
    );
    wait_for_log(&daemon, &tried).await;
    let said = daemon.log();
    assert!(said.contains("No such file or directory"), "{said}");
    assert!(said.contains("is salt-master running?"), "{said}");
    assert!(said.contains("README Troubleshooting"), "{said}");

    // Still running, still retrying, and not repeating the warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        daemon.exit_status().is_none(),
        "run exited without a master:\n{}",
        daemon.log()
    );
    let said = daemon.log();
    assert_eq!(said.matches("cannot connect").count(), 1, "{said}");
    // Not started from a terminal: no hint to try the demo.
    assert!(!said.contains("saltbridge demo"), "{said}");

    // The master comes up: a socket that serves a real minion start.
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(20), listener.accept())
        .await
        .expect("run never reconnected to the new socket")
        .unwrap();
    conn.write_all(&fixture("00_startup.bin")).await.unwrap();
    wait_for_log(
        &daemon,
        &format!(
            "connected to the master's event bus at {} (after ",
            socket.display()
        ),
    )
    .await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].path, "/cmdb");
    assert_eq!(
        got[0].header("x-saltbridge-tag"),
        Some("salt/minion/lab-minion/start")
    );

    let (status, log) = daemon.stop(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{log}");
    drop(conn);
}
