//! Issue 12, the daemon as a user runs it: stop signals are honoured in
//! every state, the state dir is private and locked, sink names stay
//! inside it.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A `saltbridge run` that is killed on every path, panics included (its
/// process group, by `support::process`).
struct Run {
    child: support::process::ProcessGroup,
}

impl Run {
    fn start(dir: &Path, routes: &str, source: &str, stdin: Stdio) -> Run {
        let config = dir.join("routes.yaml");
        std::fs::write(&config, routes).unwrap();
        let child = support::process::spawn(
            support::daemon::command()
                .args(["run", "--listen", "off", "--shutdown-timeout", "1s", "-c"])
                .arg(&config)
                .args(["-s", source, "--state-dir"])
                .arg(dir.join("state"))
                .env("RUST_LOG", "info")
                .stdin(stdin)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("log")).unwrap()),
        )
        .unwrap();
        Run { child }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// The exit status within `limit`, or None.
    fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

fn wait_for_log(dir: &Path, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        if log.contains(what) || t0.elapsed() > Duration::from_secs(20) {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A webhook nobody listens on: every send is retried.
const DOWN: &str = "sinks:\n  hook: {type: webhook, url: 'http://127.0.0.1:9/'}\nroutes:\n  - name: all\n    match: {tag: '*'}\n    to: [hook]\n";

#[test]
fn sigterm_and_sigint_stop_a_drained_file_source_while_the_sink_is_down() {
    for sig in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, "{\"tag\": \"a/b\", \"data\": {\"n\": 1}}\n").unwrap();
        let mut run = Run::start(
            dir.path(),
            DOWN,
            &format!("jsonl:{}", events.display()),
            Stdio::null(),
        );
        let log = wait_for_log(dir.path(), "retrying");
        assert!(log.contains("retrying"), "{log}");
        run.signal(sig);
        assert!(
            run.exited_within(Duration::from_secs(10)).is_some(),
            "{sig} ignored after the end of the file:\n{}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
    }
}

#[test]
fn sigterm_stops_a_run_reading_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::start(dir.path(), DOWN, "jsonl:-", Stdio::piped());
    let mut stdin = run.child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"tag\": \"a/b\", \"data\": {\"n\": 1}}\n")
        .unwrap();
    stdin.flush().unwrap();
    let log = wait_for_log(dir.path(), "retrying");
    assert!(log.contains("retrying"), "{log}");
    run.signal("-TERM");
    // stdin stays open: the writer has not gone.
    let status = run.exited_within(Duration::from_secs(10));
    drop(stdin);
    assert!(
        status.is_some(),
        "SIGTERM waited for stdin:\n{}",
        std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
    );
}

#[test]
fn the_state_dir_is_private_and_one_run_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Run::start(dir.path(), DOWN, "jsonl:-", Stdio::piped());
    let log = wait_for_log(dir.path(), "saltbridge run:");
    assert!(log.contains("saltbridge run:"), "{log}");
    let state = dir.path().join("state");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // Another run, with another sink, on the same state dir.
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "sinks:\n  hole: {type: blackhole}\nroutes:\n  - name: all\n    match: {tag: '*'}\n    to: [hole]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["run", "--listen", "off", "-s", "jsonl:/dev/null", "-c"])
        .arg(&other)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("in use by another saltbridge"), "{err}");
    run_stop(&mut first);
}

fn run_stop(run: &mut Run) {
    run.signal("-TERM");
    assert!(run.exited_within(Duration::from_secs(10)).is_some());
}
