//! Backfill against a real Salt 3008.4 master: saltbridge is stopped while
//! a job runs, a second job runs and ends while it is down, and it is
//! started again. The returns it missed come from the master's job cache,
//! marked backfilled, with the idempotency key the bus event would have had,
//! and each job's summary counts every minion. A return the master trimmed
//! (`VALUE_TRIMMED`, a small `max_event_size`) is completed from the cache
//! for a route with `complete_trimmed: true`.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use serde_json::Value;
use support::daemon::{self, Daemon};
use support::salt_sandbox::{SaltSandbox, SandboxOptions};

/// `(tag, x-backfilled header, body)` of every request.
fn received(receiver: &Receiver) -> Vec<(String, String, Value)> {
    receiver
        .requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let tag = body["tag"].as_str().unwrap_or_default().to_owned();
            // minijinja writes a boolean as Python does: `True`, `False`.
            let backfilled = r.header("x-backfilled").unwrap_or_default().to_lowercase();
            (tag, backfilled, body)
        })
        .collect()
}

fn start_bridge(routes: &std::path::Path, dir: &std::path::Path, n: u32) -> Daemon {
    let mut cmd = daemon::command();
    cmd.args(["run", "--listen", "off", "-c"])
        .arg(routes)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--shutdown-timeout", "2s"]);
    let d = Daemon::spawn(cmd, &dir.join(format!("run{n}.log")));
    assert!(
        d.wait_for_log(
            "connected to the master's event bus",
            Duration::from_secs(30)
        ),
        "{}",
        d.log()
    );
    d
}

/// The jid in `salt --async`'s "Executed command with job ID: <jid>".
fn async_jid(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .filter(|j| j.len() >= 20 && j.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| {
            panic!(
                "no jid in {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_owned()
}

// Over 80 lines: one scenario against one master, step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_published_while_saltbridge_was_down_are_backfilled() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let salt = tokio::task::spawn_blocking(move || {
        SaltSandbox::start(&venv, SandboxOptions::with_minions(&["alpha", "beta"]))
    })
    .await
    .unwrap()
    .unwrap();
    let salt = Arc::new(salt);
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            r#"
source: "ipc:{master}"
jobs: {{timeout: 5s, gather_job_timeout: 5s}}
sinks:
  out:
    type: webhook
    url: "{url}"
    headers: {{x-backfilled: "{{{{ backfilled }}}}"}}
routes:
  - name: returns
    match: {{tag: "salt/job/*/ret/*"}}
    to: [out]
  - name: summaries
    match: {{tag: "saltbridge/job/*/summary"}}
    to: [out]
"#,
            master = salt.master_config_file().display(),
            url = receiver.url("/out"),
        ),
    )
    .unwrap();

    let bridge = start_bridge(&routes, dir.path(), 1);
    // A job seen whole on the bus, and the time of the last event read stored.
    let s = salt.clone();
    let out = tokio::task::spawn_blocking(move || s.salt(&["*", "test.ping"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A job that is running when saltbridge stops, and returns while it is down.
    let s = salt.clone();
    let out = tokio::task::spawn_blocking(move || {
        s.salt(&["--async", "*", "cmd.run", "sleep 4; echo late"])
    })
    .await
    .unwrap();
    let running = async_jid(&out);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log1 = tokio::task::spawn_blocking(move || bridge.term())
        .await
        .unwrap();
    // A job that starts and ends while saltbridge is down.
    let s = salt.clone();
    let out = tokio::task::spawn_blocking(move || s.salt(&["*", "cmd.run", "echo unseen"]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unseen = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(unseen.contains("unseen"), "{unseen}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = received(&receiver).len();

    let bridge = start_bridge(&routes, dir.path(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = received(&receiver);
        let backfilled = got[before..].iter().filter(|(_, b, _)| b == "true").count();
        let summaries = got[before..]
            .iter()
            .filter(|(t, _, _)| t.ends_with("/summary"))
            .count();
        if backfilled >= 4 && summaries >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{got:#?}\n{log1}\n{}",
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = received(&receiver);
    let log2 = bridge.term();
    let after: Vec<&(String, String, Value)> = got[before..].iter().collect();

    // The returns of both jobs, each once, backfilled, rebuilt from the cache.
    let mut rets: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (tag, backfilled, body) in &after {
        if tag.contains("/ret/") {
            assert_eq!(backfilled, "true", "{tag}: {body}");
            rets.entry(tag.clone()).or_default().push(body);
        }
    }
    let unseen_jid = after
        .iter()
        .find_map(|(t, _, b)| {
            (t.contains("/ret/") && b["data"]["fun_args"][0] == "echo unseen")
                .then(|| b["data"]["jid"].as_str().unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no backfilled return of the unseen job: {after:#?}\n{log2}"));
    for jid in [&running, &unseen_jid] {
        for m in ["alpha", "beta"] {
            let tag = format!("salt/job/{jid}/ret/{m}");
            let got = rets
                .get(&tag)
                .unwrap_or_else(|| panic!("{tag} missing: {rets:#?}\n{log2}"));
            assert_eq!(got.len(), 1, "{tag}: {got:#?}");
            let data = &got[0]["data"];
            assert_eq!(data["fun"], "cmd.run");
            assert_eq!(data["success"], true);
            assert_eq!(data["id"], m);
        }
    }
    assert_eq!(
        rets[&format!("salt/job/{running}/ret/alpha")][0]["data"]["return"],
        "late"
    );
    assert_eq!(
        rets[&format!("salt/job/{unseen_jid}/ret/beta")][0]["data"]["return"],
        "unseen"
    );
    // Each job has one complete summary, counting both minions. The first
    // run summarised the running job at its stop too, marked incomplete (it
    // may be sent by the second run, from the spool).
    for jid in [&running, &unseen_jid] {
        let tag = format!("saltbridge/job/{jid}/summary");
        let (complete, partial): (Vec<_>, Vec<_>) = got
            .iter()
            .filter(|(t, _, _)| *t == tag)
            .partition(|(_, _, b)| b["data"]["incomplete"] == false);
        assert_eq!(complete.len(), 1, "{tag}: {got:#?}");
        let data = &complete[0].2["data"];
        assert_eq!(data["counts"]["returned"], 2, "{data}");
        assert_eq!(data["counts"]["did_not_return"], 0, "{data}");
        assert_eq!(data["closed"], "returned", "{data}");
        assert_eq!(data["fun"], "cmd.run", "{data}");
        assert!(
            partial
                .iter()
                .all(|(_, _, b)| b["data"]["closed"] == "shutdown" && *jid == running),
            "{partial:#?}"
        );
    }
    assert!(log2.contains("backfill"), "{log2}");
}

/// A master with a small `max_event_size` trims a large return on its bus
/// (`VALUE_TRIMMED`); a route with `complete_trimmed: true` gets it whole
/// from the job cache (written a few milliseconds after the event), another
/// route as it came, both with one idempotency key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_return_is_completed_from_the_job_cache() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let opts = SandboxOptions {
        extra_master_config: "max_event_size: 20000\n".into(),
        ..SandboxOptions::with_minions(&["alpha"])
    };
    let salt = tokio::task::spawn_blocking(move || SaltSandbox::start(&venv, opts))
        .await
        .unwrap()
        .unwrap();
    let salt = Arc::new(salt);
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            r#"
source: "ipc:{master}"
sinks:
  as_is: {{type: webhook, url: "{as_is}"}}
  whole: {{type: webhook, url: "{whole}"}}
routes:
  - name: as_is
    match: {{tag: "salt/job/*/ret/*"}}
    to: [as_is]
    continue: true
  - name: whole
    match: {{tag: "salt/job/*/ret/*"}}
    to: [whole]
    complete_trimmed: true
"#,
            master = salt.master_config_file().display(),
            as_is = receiver.url("/as_is"),
            whole = receiver.url("/whole"),
        ),
    )
    .unwrap();
    let bridge = start_bridge(&routes, dir.path(), 1);
    let s = salt.clone();
    let out = tokio::task::spawn_blocking(move || {
        s.salt(&["alpha", "cmd.run", "yes x | head -c 50000", "--out", "json"])
    })
    .await
    .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    // Salt's own CLI reads returns off the bus: it gets the trimmed one.
    assert_eq!(cli["alpha"], "VALUE_TRIMMED", "{cli}");
    // `cmd.run` strips the output's last newline.
    let whole = "x\n".repeat(25_000).trim_end().to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    let (as_is, completed) = loop {
        let got: Vec<(String, Value)> = receiver
            .requests()
            .iter()
            .map(|r| (r.path.clone(), serde_json::from_slice(&r.body).unwrap()))
            .filter(|(_, b): &(String, Value)| b["data"]["fun"] == "cmd.run")
            .collect();
        let at = |p: &str| {
            got.iter()
                .find(|(path, _)| path == p)
                .map(|(_, b)| b.clone())
        };
        if let (Some(a), Some(w)) = (at("/as_is"), at("/whole")) {
            break (a, w);
        }
        assert!(Instant::now() < deadline, "{got:#?}\n{}", bridge.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let log = bridge.term();
    assert_eq!(as_is["data"]["return"], "VALUE_TRIMMED", "{as_is}");
    assert_eq!(completed["data"]["return"], whole.as_str(), "{log}");
    assert_eq!(completed["data"]["retcode"], 0);
    assert_eq!(completed["data"]["jid"], as_is["data"]["jid"]);
    assert_eq!(completed["key"], as_is["key"]);
    let returns = receiver
        .requests()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("cmd.run"))
        .count();
    assert_eq!(returns, 2, "each route once");
    assert!(!log.contains("no return for this trimmed event"), "{log}");
}
