//! A real Salt 3006.29 master of masters (`order_masters: True`), a syndic
//! master running `salt-syndic`, and a minion behind it
//! (`support::salt_syndic`), with one `saltbridge run` on the master of
//! masters into a real HTTP receiver. The master of masters fires every
//! event the syndic relays twice (its tag, then `syndic/syn/<tag>`); the
//! bridge must deliver each once, under its tag, with the syndic's id
//! (`X-Saltbridge-Syndic`, the template variable `syndic`), and the job's
//! summary must count the minion behind the syndic, not the syndic's own
//! id that the master of masters lists as the job's minion. Salt 3008.4's
//! `salt-syndic` hangs at start, so only 3006.29 runs here.
//!
//! `SALTBRIDGE_RECORD_SYNDIC=DIR` also writes the raw bus bytes of both
//! masters to `DIR/{mom,syn}.bin` (the shape of `tests/fixtures/syndic/`).

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use serde_json::Value;
use support::daemon::{self, Daemon};
use support::salt_sandbox::SaltSandbox;
use support::salt_syndic::{SaltSyndic, MINION, SYNDIC};

fn routes(s: &SaltSyndic, url: &str) -> String {
    format!(
        r#"
source: "ipc:{master}"
drop: {{auth: false, minion_refresh: false}}
jobs: {{timeout: 5s, gather_job_timeout: 5s}}
sinks:
  hook:
    type: webhook
    url: "{url}"
    headers: {{x-via: "{{{{ syndic or 'none' }}}}"}}
routes:
  - name: all
    match: {{tag: "*"}}
    to: [hook]
"#,
        master = s.mom_config().display()
    )
}

fn record(path: &Path, dir: &Path, name: &str) -> Option<std::thread::JoinHandle<()>> {
    let mut s = UnixStream::connect(path).ok()?;
    let out = dir.join(name);
    Some(std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let _ = std::fs::write(out, buf);
    }))
}

/// (tag, syndic header, template `syndic`, data, key) of each delivered event.
type Got = (String, Option<String>, String, Value, String);

fn delivered(receiver: &Receiver) -> Vec<Got> {
    receiver
        .requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["tag"].as_str().unwrap_or_default().to_owned(),
                r.header("x-saltbridge-syndic").map(str::to_owned),
                r.header("x-via").unwrap_or_default().to_owned(),
                body["data"].clone(),
                body["key"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_of_masters_delivers_each_relayed_event_once_and_counts_the_syndics_minion() {
    let Some(venv) = SaltSandbox::require_venv("3006.29") else {
        return;
    };
    let salt =
        tokio::task::spawn_blocking(move || SaltSyndic::start(&venv, Duration::from_secs(240)))
            .await
            .unwrap()
            .expect("master of masters, syndic and minion");
    let salt = Arc::new(salt);
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("routes.yaml");
    std::fs::write(&r, routes(&salt, &receiver.url("/mom"))).unwrap();
    let mut cmd = daemon::command();
    cmd.args(["run", "--listen", "off", "-c"])
        .arg(&r)
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let bridge = Daemon::spawn(cmd, &dir.path().join("run.log"));
    assert!(
        bridge.wait_for_log(
            "connected to the master's event bus",
            Duration::from_secs(60)
        ),
        "{}",
        bridge.log()
    );
    let recording = std::env::var_os("SALTBRIDGE_RECORD_SYNDIC").map(std::path::PathBuf::from);
    let recorders: Vec<_> = match &recording {
        Some(d) => [
            (salt.pub_socket(), "mom.bin"),
            (salt.syndic_pub_socket(), "syn.bin"),
        ]
        .iter()
        .filter_map(|(p, n)| record(p, d, n))
        .collect(),
        None => Vec::new(),
    };

    let s = salt.clone();
    let out = tokio::task::spawn_blocking(move || s.salt(&["*", "test.ping", "-t", "5"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(MINION) && text.contains("True"), "{text}");
    let s = salt.clone();
    tokio::task::spawn_blocking(move || s.salt_call(&["event.send", "my/tag", r#"{"x": 1}"#]))
        .await
        .unwrap();

    // The summary comes once the relayed announcement has named the minion
    // (after the twin window) and it returned; `my/tag` about 0.5 s after
    // salt-call, the syndic's batch interval.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = delivered(&receiver);
        let summary = got
            .iter()
            .any(|g| g.0.ends_with("/summary") && g.3["fun"] == "test.ping");
        if summary && got.iter().any(|g| g.0 == "my/tag") {
            break;
        }
        assert!(Instant::now() < deadline, "{got:#?}\n{}", bridge.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let a duplicate or a late copy arrive before counting (twin window 2 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = delivered(&receiver);
    let mut by_tag: BTreeMap<&str, Vec<&Got>> = BTreeMap::new();
    let mut keys: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &got {
        by_tag.entry(g.0.as_str()).or_default().push(g);
        *keys.entry(g.4.as_str()).or_default() += 1;
        // The header and the template variable say the same.
        assert_eq!(g.1.as_deref().unwrap_or("none"), g.2, "{g:?}");
    }
    assert!(
        keys.values().all(|&n| n == 1),
        "an event delivered twice: {by_tag:#?}"
    );
    assert!(
        !by_tag.keys().any(|t| t.starts_with("syndic/")),
        "a relayed copy delivered: {by_tag:#?}"
    );
    // The relayed `my/tag`: once, under its tag, with the syndic's id.
    let my = &by_tag["my/tag"];
    assert_eq!(my.len(), 1, "{my:?}");
    assert_eq!(my[0].1.as_deref(), Some(SYNDIC));
    assert_eq!(my[0].3["id"], MINION);
    assert_eq!(my[0].3["data"]["x"], 1);
    // The job: its return once, its summary once, counting the minion.
    let summaries: Vec<_> = got
        .iter()
        .filter(|g| g.0.ends_with("/summary") && g.3["fun"] == "test.ping")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let s = &summaries[0].3;
    let jid = s["jid"].as_str().unwrap();
    assert_eq!(
        by_tag[format!("salt/job/{jid}/ret/{MINION}").as_str()].len(),
        1
    );
    assert_eq!(s["counts"]["targeted"], 1, "{s}");
    assert_eq!(s["counts"]["returned"], 1, "{s}");
    assert_eq!(s["counts"]["did_not_return"], 0, "{s}");
    assert!(s["minions"].get(MINION).is_some(), "{s}");
    assert!(s["minions"].get(SYNDIC).is_none(), "{s}");

    bridge.term();
    drop(salt);
    for r in recorders {
        let _ = r.join();
    }
}
