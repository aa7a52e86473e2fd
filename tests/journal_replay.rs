//! The bus journal's history, as a user reaches it: `saltbridge replay`
//! re-sends through a fixed routes file what the old one missed, `--dry-run`
//! shows it as `explain` does, and `tail --source journal:` prints it.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use saltbridge::receiver::Receiver;
use support::bus_feed::{BusFeed, Tally, TAG};
use support::daemon::{command, webhook_events, webhook_numbers, Daemon};

fn routes(dir: &Path, name: &str, tag: &str, url: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            r#"
sinks:
  hook: {{type: webhook, url: "{url}", batch: {{max_events: 500, max_wait: 50ms}}}}
routes:
  - name: load
    match: {{tag: "{tag}"}}
    to: [hook]
"#
        ),
    )
    .unwrap();
    p
}

fn output(args: &[&str]) -> (bool, String, String) {
    let out = command().args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_route_replays_what_the_old_one_missed_from_the_journal() {
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("master_event_pub.ipc");
    let feed = BusFeed::start(&sock, 500, 300);
    // The old route matches nothing the feed sends.
    let old = routes(dir.path(), "old.yaml", "wrong/*", &receiver.url("/hook"));
    let state = dir.path().join("state");
    let daemon = Daemon::run(
        &old,
        Some(&format!("ipc:{}", sock.display())),
        &state,
        &dir.path().join("log"),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    feed.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = daemon.term();
    let written = feed.written();
    assert!(written.len() > 500, "{}", written.len());
    assert!(
        webhook_numbers(&receiver).is_empty(),
        "the old route sent nothing"
    );
    let fixed = routes(dir.path(), "fixed.yaml", TAG, &receiver.url("/hook"));
    let state_s = state.display().to_string();
    let fixed_s = fixed.display().to_string();

    let (ok, out, err) = output(&[
        "replay",
        "--since",
        "1h",
        "-c",
        &fixed_s,
        "--state-dir",
        &state_s,
        "--dry-run",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let shown = out.lines().filter(|l| l.contains(TAG)).count();
    assert_eq!(shown, written.len(), "--dry-run shows every event\n{err}");
    assert!(
        webhook_numbers(&receiver).is_empty(),
        "--dry-run sends nothing"
    );

    let (ok, out, err) = output(&[
        "tail",
        "--source",
        &format!("journal:{state_s}"),
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.contains(TAG)).count(),
        written.len()
    );

    let (ok, _, err) = output(&[
        "replay",
        "--since",
        "1h",
        "-c",
        &fixed_s,
        "--state-dir",
        &state_s,
    ]);
    assert!(ok, "{err}");
    let t = Tally::of(webhook_numbers(&receiver));
    let lost = t.lost(&written);
    println!(
        "REPLAY: {} written while the old route ran / {} replayed to the fixed one / {} missing",
        written.len(),
        t.delivered.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "missing {:?}\n{err}\n{log}",
        &lost[..lost.len().min(10)]
    );
    assert!(webhook_events(&receiver)
        .iter()
        .all(|(_, _, key)| key.len() == 32));
    let (ok, _, _) = output(&[
        "replay",
        "--since",
        "1h",
        "-c",
        &fixed_s,
        "--state-dir",
        "/nonexistent",
    ]);
    assert!(!ok, "no journal, no replay");
}
