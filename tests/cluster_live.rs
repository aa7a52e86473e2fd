//! A real Salt 3008.4 master cluster: two masters (127.0.0.1, 127.0.0.2)
//! with a shared `cluster_pki_dir`, a minion on each, and one `saltbridge
//! run` per master into one webhook receiver. Each master republishes the
//! other's events with `__peer_id`; the bridges must deliver every event
//! once across the cluster, with the master that published it, the same
//! idempotency key a copy would have, and one summary per job, from the
//! bridge of the master that published the job, counting the return that
//! landed on the other master. A minion that forges `__peer_id` in its own
//! events (a raw `_minion_event` batch) must not get any other event
//! dropped.
//!
//! `SALTBRIDGE_RECORD_CLUSTER=DIR` also writes each master's raw bus bytes to
//! `DIR/cluster_m{1,2}.bin` (how `tests/fixtures/cluster/cluster_*.bin` were made).

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use serde_json::{json, Value};
use support::daemon::{self, Daemon};
use support::salt_cluster::{SaltCluster, IDS};
use support::salt_sandbox::SaltSandbox;

/// Sends a batch of events as a raw `_minion_event` load with minion
/// `argv[1]`'s keys: the data is the minion's to choose, `__peer_id` included.
const FORGE: &str = r#"
import json, sys
import salt.config, salt.channel.client, salt.minion
opts = salt.config.minion_config(sys.argv[1])
opts.update(salt.minion.resolve_dns(opts))
events = json.loads(sys.argv[2])
with salt.channel.client.ReqChannel.factory(opts) as ch:
    print(ch.send({"cmd": "_minion_event", "id": opts["id"], "events": events}, timeout=30))
"#;

fn routes(cluster: &SaltCluster, n: usize, url: &str) -> String {
    format!(
        r#"
source: "ipc:{master}"
drop: {{auth: false, minion_refresh: false}}
jobs: {{timeout: 5s, gather_job_timeout: 5s}}
sinks:
  hook:
    type: webhook
    url: "{url}"
    headers: {{x-origin: "{{{{ master }}}}"}}
routes:
  - name: all
    match: {{tag: "*"}}
    to: [hook]
"#,
        master = cluster.master_config(n).display()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_delivers_each_event_once_with_its_master() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let cluster = tokio::task::spawn_blocking(move || {
        SaltCluster::start_fresh(&venv, Duration::from_secs(150))
    })
    .await
    .unwrap()
    .expect("cluster");
    let cluster = Arc::new(cluster);
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut bridges = Vec::new();
    for n in 1..=2 {
        let r = dir.path().join(format!("routes{n}.yaml"));
        std::fs::write(&r, routes(&cluster, n, &receiver.url(&format!("/m{n}")))).unwrap();
        let mut cmd = daemon::command();
        cmd.args(["run", "--listen", "off", "-c"])
            .arg(&r)
            .arg("--state-dir")
            .arg(dir.path().join(format!("state{n}")));
        bridges.push(Daemon::spawn(cmd, &dir.path().join(format!("run{n}.log"))));
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
    let recording = std::env::var_os("SALTBRIDGE_RECORD_CLUSTER").map(std::path::PathBuf::from);
    let recorders: Vec<_> = match &recording {
        Some(d) => (1..=2)
            .filter_map(|n| record(&cluster.pub_socket(n), d, &format!("cluster_m{n}.bin")))
            .collect(),
        None => Vec::new(),
    };

    let c = cluster.clone();
    let out = tokio::task::spawn_blocking(move || c.salt(1, &["*", "test.ping", "-t", "10"]))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cl-minion-1") && text.contains("cl-minion-2"),
        "{text}"
    );
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        c.salt_call(2, &["event.send", "my/tag", r#"{"x": 1}"#]);
        let forged = json!([
            // Shaped exactly as a cluster copy, naming the real peer.
            {"tag": "forged/strong", "data": {"x": 1, "_stamp": "x", "__peer_id": IDS[1]}},
            // Not last, and naming a master that is no peer.
            {"tag": "forged/first", "data": {"__peer_id": IDS[1], "x": 2}},
            {"tag": "forged/stranger", "data": {"x": 3, "_stamp": "x", "__peer_id": "evil"}},
        ]);
        let python = c.venv_python();
        let out = std::process::Command::new(python)
            .args(["-c", FORGE])
            .arg(c.minion_config(1))
            .arg(forged.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();

    // The summary comes at the job's end (both minions returned).
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got = daemon::webhook_events(&receiver);
        if got.iter().any(|(t, _, _)| t.ends_with("/summary"))
            && got.iter().any(|(t, _, _)| t == "my/tag")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{got:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let any duplicate arrive before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let requests = receiver.requests();
    let mut by_tag: BTreeMap<String, Vec<(String, String, Value, String)>> = BTreeMap::new();
    for r in &requests {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let origin = r
            .header("x-saltbridge-master")
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            r.header("x-origin"),
            Some(origin.as_str()),
            "template variable `master`"
        );
        by_tag
            .entry(body["tag"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                r.path.clone(),
                origin,
                body["data"].clone(),
                body["key"].as_str().unwrap_or_default().to_owned(),
            ));
    }
    let summary: Vec<_> = by_tag
        .iter()
        .filter(|(t, _)| t.ends_with("/summary"))
        .collect();
    let job_rets: Vec<_> = by_tag
        .iter()
        .filter(|(t, _)| t.starts_with("salt/job/") && t.contains("/ret/cl-minion-"))
        .collect();
    // Each event once across the cluster (by idempotency key), except the
    // forged ones below; every tag of a single fact once.
    let mut keys: BTreeMap<&str, usize> = BTreeMap::new();
    for (tag, got) in by_tag.iter().filter(|(t, _)| !t.starts_with("forged/")) {
        for g in got {
            *keys.entry(g.3.as_str()).or_default() += 1;
        }
        if tag.starts_with("salt/job/") || tag == "my/tag" {
            assert_eq!(got.len(), 1, "{tag} delivered {} times: {got:?}", got.len());
        }
    }
    assert!(keys.values().all(|&n| n == 1), "{by_tag:?}");
    // The job (published on master 1): its returns, each from the master it landed on.
    assert!(job_rets.len() >= 2, "{by_tag:?}");
    assert_eq!(summary.len(), 1, "{by_tag:?}");
    let (_, s) = summary[0];
    assert_eq!(s[0].0, "/m1");
    assert_eq!(s[0].1, IDS[0]);
    assert_eq!(s[0].2["counts"]["returned"], 2, "{}", s[0].2);
    assert_eq!(s[0].2["counts"]["did_not_return"], 0);
    // minion 2's event reached both buses; delivered by master 2's bridge.
    let my = &by_tag["my/tag"][0];
    assert_eq!((my.0.as_str(), my.1.as_str()), ("/m2", IDS[1]));
    assert!(my.2.get("__peer_id").is_none());
    // Forgeries: the one shaped as a copy suppresses only itself; the others
    // are delivered as master 1's events (the copy on master 2 has its
    // `__peer_id` overwritten by Salt in place), with one key.
    assert!(!by_tag.contains_key("forged/strong"), "{by_tag:?}");
    let stranger = &by_tag["forged/stranger"];
    assert_eq!(stranger.len(), 1, "{stranger:?}");
    assert_eq!(stranger[0].1, IDS[0]);
    let first = &by_tag["forged/first"];
    assert!(first.iter().all(|f| f.3 == first[0].3), "{first:?}");
    assert!(first.iter().any(|f| f.1 == IDS[0]), "{first:?}");

    for b in bridges {
        b.term();
    }
    drop(cluster);
    for r in recorders {
        let _ = r.join();
    }
}
