//! `saltbridge dlq list|show|replay` end to end: a real receiver rejects
//! events with 400, they are dead-lettered; once it accepts, a replay puts
//! them back and they arrive with their original idempotency keys, both
//! into a stopped saltbridge (queued at the next start) and into a running
//! one (queued within a second).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use saltbridge::receiver::{Mode, Receiver};
use support::daemon::{self, Daemon};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/3008.4")
}

fn routes(dir: &Path, receiver: &Receiver) -> PathBuf {
    let text = format!(
        r#"
sinks:
  cmdb: {{type: webhook, url: "{cmdb}", retry: {{initial: 50ms, give_up_after: 5s}}}}
routes:
  - name: returns
    match: {{tag: "salt/job/*/ret/*"}}
    to: [cmdb]
"#,
        cmdb = receiver.url("/cmdb"),
    );
    let p = dir.join("routes.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn saltbridge(args: &[&str], state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(args)
        .env("SALTBRIDGE_STATE_DIR", state)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

async fn saltbridge_async(args: Vec<String>, state: PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        saltbridge(&a, &state)
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_events_are_listed_shown_and_replayed_with_their_keys() {
    let receiver = Receiver::start().await.unwrap();
    receiver.set_path_mode("/cmdb", Mode::status(400));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = routes(dir.path(), &receiver);
    let cfg = config.display().to_string();
    let session = format!("capture:{}", fixtures().join("a_test_ping.bin").display());
    let out = saltbridge_async(
        vec!["run".into(), "-c".into(), cfg.clone(), "-s".into(), session],
        state.clone(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out).1);
    let rejected: Vec<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.header("x-saltbridge-key").map(str::to_owned))
        .collect();
    assert!(!rejected.is_empty());

    // list: one line per dead letter, with its sink, route, status and tag.
    let (stdout, stderr) = text(&saltbridge(&["dlq", "list"], &state));
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), rejected.len(), "{stdout}{stderr}");
    assert!(
        rows.iter().all(|r| r.contains("cmdb")
            && r.contains("returns")
            && r.contains(" 400 ")
            && r.contains("/ret/")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "{} dead letters (cmdb: {})",
            rows.len(),
            rows.len()
        )),
        "{stderr}"
    );

    // show: the whole entry.
    let (stdout, _) = text(&saltbridge(&["dlq", "show", "1"], &state));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["id"], 1);
    assert_eq!(v["status"], 400);
    assert_eq!(v["key"], rejected[0].as_str());
    let missing = saltbridge(&["dlq", "show", "999"], &state);
    assert!(!missing.status.success());
    assert!(text(&missing).1.contains("no dead letter with id 999"));

    // --since in the future and an unknown sink select nothing.
    let (stdout, _) = text(&saltbridge(
        &["dlq", "list", "--since", "2999-01-01T00:00:00Z"],
        &state,
    ));
    assert!(stdout.is_empty(), "{stdout}");
    let bad = saltbridge(&["dlq", "list", "--since", "last tuesday"], &state);
    assert!(!bad.status.success());
    assert!(text(&bad).1.contains("RFC 3339"), "{}", text(&bad).1);

    // replay while saltbridge is stopped: queued at its next start.
    receiver.set_path_mode("/cmdb", Mode::ok());
    receiver.clear();
    let out = saltbridge(&["dlq", "replay", "--sink", "cmdb"], &state);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("saltbridge is not running"), "{stderr}");
    assert!(
        stderr.contains(&format!("replayed {} dead letters", rejected.len())),
        "{stderr}"
    );
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let out = saltbridge_async(
        vec![
            "run".into(),
            "-c".into(),
            cfg.clone(),
            "-s".into(),
            format!("capture:{}", empty.display()),
        ],
        state.clone(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out).1);
    let delivered: Vec<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.header("x-saltbridge-key").map(str::to_owned))
        .collect();
    assert_eq!(delivered, rejected, "same events, same keys, same order");

    // Nothing waits any more; --all shows them as replayed; a second replay is a no-op.
    let (stdout, stderr) = text(&saltbridge(&["dlq", "list"], &state));
    assert!(
        stdout.is_empty() && stderr.contains("no dead letters waiting"),
        "{stdout}{stderr}"
    );
    let (stdout, _) = text(&saltbridge(&["dlq", "list", "--all"], &state));
    assert_eq!(
        stdout.matches("(replayed)").count(),
        rejected.len(),
        "{stdout}"
    );
    let (_, stderr) = text(&saltbridge(&["dlq", "replay"], &state));
    assert!(stderr.contains("nothing to replay"), "{stderr}");

    // replay into a running saltbridge (a live source that stays open).
    receiver.clear();
    let sock = dir.path().join("pub.ipc");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut run = daemon::command();
    run.args(["run", "-c", &cfg, "-s", &format!("ipc:{}", sock.display())])
        .env("SALTBRIDGE_STATE_DIR", &state);
    let mut daemon = Daemon::spawn(run, &dir.path().join("run.log"));
    let _conn = listener.accept().unwrap();
    let out = saltbridge(&["dlq", "replay", "--all", "--id", "1"], &state);
    assert!(
        text(&out).1.contains("the running saltbridge queues them"),
        "{}",
        text(&out).1
    );
    let t0 = Instant::now();
    while receiver.count() < 1 && t0.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.kill9();
    let got: Vec<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| r.header("x-saltbridge-key").map(str::to_owned))
        .collect();
    assert_eq!(got, vec![rejected[0].clone()]);
}
