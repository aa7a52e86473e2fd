//! `saltbridge run` where no master is up yet, as a new user meets it: it
//! says plainly which socket it tried and what to check, keeps running and
//! retrying, and once a master's socket appears it connects, says so, and
//! delivers. The "master" is a real unix socket serving a real capture.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::http_receiver::Receiver;
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

/// Collects the child's stderr as it comes.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let l = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            l.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    log
}

async fn wait_for_log(log: &Mutex<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains(what) {
        assert!(
            Instant::now() < deadline,
            "stderr never said {what:?}:\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn says_which_socket_it_tried_keeps_retrying_then_connects() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let config = routes(dir.path(), &receiver);
    let socket = dir.path().join("master_event_pub.ipc");
    let mut child = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .arg("run")
        .arg("-c")
        .arg(&config)
        .arg("--source")
        .arg(format!("ipc:{}", socket.display()))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);

    // The path it tried, why it failed, and what to check.
    let tried = format!(
        "cannot connect to the Salt master's event bus at {}: ",
        socket.display()
    );
    wait_for_log(&log, &tried).await;
    let said = log.lock().unwrap().clone();
    assert!(said.contains("No such file or directory"), "{said}");
    assert!(said.contains("is salt-master running?"), "{said}");
    assert!(said.contains("README Troubleshooting"), "{said}");

    // Still running, still retrying, and not repeating the warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "run exited without a master:\n{}",
        log.lock().unwrap()
    );
    let said = log.lock().unwrap().clone();
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
        &log,
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

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{}", log.lock().unwrap());
    drop(conn);
}
