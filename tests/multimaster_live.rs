//! Multi-master, hot/hot, against real Salt 3008.4: two masters (`mm1`,
//! `mm2`, not a cluster), one minion with `master: [a, b]`, and one
//! `saltbridge run` per master into one webhook receiver (`/m1`, `/m2`).
//!
//! What a user checks: each job's events arrive once, from the bridge of
//! the master that published the job; the events the minion fires itself
//! (its start event, `event.send`) arrive once per master, and a copy of an
//! `event.send` has the same idempotency key on both (each master stamps its
//! own `_stamp`, which the key of a minion-fired event leaves out); with
//! `masters: {minion_events: mm1}` on both bridges they arrive once in all,
//! from mm1's bridge.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use serde_json::Value;
use support::daemon::{self, Daemon};
use support::salt_multimaster::{HotMasters, IDS, MINION};
use support::salt_sandbox::SaltSandbox;

/// One delivered event: the receiver path, the master header, the body.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    master: String,
    tag: String,
    data: Value,
    key: String,
}

fn received(receiver: &Receiver) -> Vec<Got> {
    let mut out = Vec::new();
    for r in receiver.requests() {
        let master = r
            .header("x-saltbridge-master")
            .unwrap_or_default()
            .to_owned();
        let items = match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Array(a)) => a,
            Ok(one) => vec![one],
            Err(_) => continue,
        };
        for i in items {
            out.push(Got {
                path: r.path.clone(),
                master: master.clone(),
                tag: i["tag"].as_str().unwrap_or_default().to_owned(),
                data: i["data"].clone(),
                key: i["key"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    out
}

fn routes(masters: &HotMasters, n: usize, url: &str, minion_events: Option<&str>) -> String {
    let designated = minion_events
        .map(|m| format!("masters: {{minion_events: {m}}}\n"))
        .unwrap_or_default();
    format!(
        r#"
source: "ipc:{master}"
{designated}drop: {{auth: false, minion_refresh: false}}
jobs: {{timeout: 5s, gather_job_timeout: 5s}}
sinks:
  hook:
    type: webhook
    url: "{url}"
routes:
  - name: all
    match: {{tag: "*"}}
    to: [hook]
"#,
        master = masters.master_config(n).display()
    )
}

fn start_bridges(
    masters: &HotMasters,
    receiver: &Receiver,
    dir: &Path,
    phase: &str,
    minion_events: Option<&str>,
) -> Vec<Daemon> {
    let mut bridges = Vec::new();
    for n in 1..=2 {
        let url = receiver.url(&format!("/{phase}/m{n}"));
        let r = dir.join(format!("routes-{phase}{n}.yaml"));
        std::fs::write(&r, routes(masters, n, &url, minion_events)).unwrap();
        let mut cmd = daemon::command();
        cmd.args(["run", "--listen", "off", "-c"])
            .arg(&r)
            .arg("--state-dir")
            .arg(dir.join(format!("state-{phase}{n}")))
            .args(["--shutdown-timeout", "2s"]);
        bridges.push(Daemon::spawn(cmd, &dir.join(format!("run-{phase}{n}.log"))));
    }
    for b in &bridges {
        assert!(
            b.wait_for_log(
                "connected to the master's event bus",
                Duration::from_secs(30)
            ),
            "{}",
            b.log()
        );
    }
    bridges
}

/// Waits until `done` holds for what arrived under `/{phase}/`, then a
/// little longer for any duplicate; returns what arrived there.
async fn settle(receiver: &Receiver, phase: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let prefix = format!("/{phase}/");
    let of_phase = || -> Vec<Got> {
        received(receiver)
            .into_iter()
            .filter(|g| g.path.starts_with(&prefix))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&of_phase()) {
        assert!(Instant::now() < deadline, "{:#?}", of_phase());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    of_phase()
}

/// `salt <minion> event.send <tag> '{"x": 1}'` through master `n`.
async fn event_send(masters: &Arc<HotMasters>, n: usize, tag: &'static str) {
    let m = masters.clone();
    let out =
        tokio::task::spawn_blocking(move || m.salt(n, &[MINION, "event.send", tag, r#"{"x": 1}"#]))
            .await
            .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("True"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn master_of(path: &str) -> &'static str {
    if path.ends_with("/m1") {
        IDS[0]
    } else {
        IDS[1]
    }
}

/// The data without `_stamp`, for comparing two masters' copies.
fn unstamped(data: &Value) -> Value {
    let mut d = data.clone();
    if let Some(m) = d.as_object_mut() {
        m.remove("_stamp");
    }
    d
}

fn assert_jobs_once_from_their_master(got: &[Got]) {
    // The master of each job: where its `new` arrived.
    let mut job_master: BTreeMap<String, &str> = BTreeMap::new();
    for g in got.iter().filter(|g| g.tag.ends_with("/new")) {
        if let Some(jid) = g
            .tag
            .strip_prefix("salt/job/")
            .and_then(|t| t.split('/').next())
        {
            let previous = job_master.insert(jid.to_owned(), master_of(&g.path));
            assert!(previous.is_none(), "{} twice: {got:#?}", g.tag);
        }
    }
    let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
    for g in got {
        let jid = g
            .tag
            .strip_prefix("salt/job/")
            .or_else(|| g.tag.strip_prefix("saltbridge/job/"))
            .and_then(|t| t.split('/').next());
        let Some(jid) = jid else { continue };
        *tags.entry(g.tag.as_str()).or_default() += 1;
        let master = job_master.get(jid).copied();
        assert_eq!(master, Some(master_of(&g.path)), "{}: {got:#?}", g.tag);
        assert_eq!(g.master, master_of(&g.path), "{}", g.tag);
    }
    assert!(tags.values().all(|&n| n == 1), "{tags:#?}");
    // A test.ping of each master, returned and summarised once.
    for m in IDS {
        let pings: Vec<&Got> = got
            .iter()
            .filter(|g| g.tag.ends_with("/summary") && master_of(&g.path) == m)
            .filter(|g| g.data["fun"] == "test.ping" && g.data["counts"]["returned"] == 1)
            .collect();
        assert!(!pings.is_empty(), "no test.ping summary of {m}: {got:#?}");
    }
}

// Over 80 lines: one scenario in two phases, step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_hot_minion_s_events_arrive_once_per_master_or_once_in_all() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let masters =
        tokio::task::spawn_blocking(move || HotMasters::start(&venv, Duration::from_secs(90)))
            .await
            .unwrap()
            .expect("two masters");
    let mut masters = Arc::new(masters);
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Phase a: every bridge routes everything of its master.
    let bridges = start_bridges(&masters, &receiver, dir.path(), "a", None);
    let m = Arc::get_mut(&mut masters).unwrap();
    tokio::task::block_in_place(|| m.start_minion(Duration::from_secs(90))).expect("minion");
    event_send(&masters, 1, "my/a").await;
    let start = format!("salt/minion/{MINION}/start");
    let got = settle(&receiver, "a", |got| {
        let n = |tag: &str| got.iter().filter(|g| g.tag == tag).count();
        n(&start) >= 2
            && n("my/a") >= 2
            && got.iter().filter(|g| g.tag.ends_with("/summary")).count() >= 3
    })
    .await;
    for b in bridges {
        b.term();
    }
    assert_jobs_once_from_their_master(&got);
    for tag in [start.as_str(), "my/a"] {
        let copies: Vec<&Got> = got.iter().filter(|g| g.tag == tag).collect();
        let paths: Vec<&str> = copies.iter().map(|g| g.path.as_str()).collect();
        assert_eq!(paths.len(), 2, "{tag}: {copies:#?}");
        assert!(
            paths.contains(&"/a/m1") && paths.contains(&"/a/m2"),
            "{copies:#?}"
        );
        for g in &copies {
            assert_eq!(g.master, master_of(&g.path));
            assert_eq!(g.data["cmd"], "_minion_event");
        }
        // Each master stamps its own copy; the rest is the minion's.
        assert_ne!(copies[0].data["_stamp"], copies[1].data["_stamp"]);
        let same = unstamped(&copies[0].data) == unstamped(&copies[1].data);
        assert_eq!(same, copies[0].key == copies[1].key, "{copies:#?}");
        if tag == "my/a" {
            // An event.send reaches both masters in the same second.
            assert!(same, "{copies:#?}");
        }
    }

    // Phase b: only mm1's bridge routes what the minion fires itself.
    let bridges = start_bridges(&masters, &receiver, dir.path(), "b", Some(IDS[0]));
    let m = Arc::get_mut(&mut masters).unwrap();
    tokio::task::block_in_place(|| m.start_minion(Duration::from_secs(90))).expect("minion");
    event_send(&masters, 2, "my/b").await;
    let got = settle(&receiver, "b", |got| {
        let n = |tag: &str| got.iter().filter(|g| g.tag == tag).count();
        n(&start) >= 1
            && n("my/b") >= 1
            && got.iter().filter(|g| g.tag.ends_with("/summary")).count() >= 3
    })
    .await;
    let logs: Vec<String> = bridges.into_iter().map(Daemon::term).collect();
    assert_jobs_once_from_their_master(&got);
    for tag in [start.as_str(), "minion_start", "my/b"] {
        let copies: Vec<&Got> = got.iter().filter(|g| g.tag == tag).collect();
        if tag == "minion_start" {
            // Salt's legacy twin of the start event, dropped everywhere.
            assert!(copies.is_empty(), "{copies:#?}");
            continue;
        }
        assert_eq!(copies.len(), 1, "{tag}: {copies:#?}\n{logs:?}");
        assert_eq!(copies[0].path, "/b/m1", "{copies:#?}");
        assert_eq!(copies[0].master, IDS[0]);
    }
    // The job of `event.send` ran on mm2: its events came from mm2's bridge.
    assert!(
        got.iter()
            .any(|g| g.path == "/b/m2" && g.tag.contains("/ret/") && g.data["fun"] == "event.send"),
        "{got:#?}"
    );
}
