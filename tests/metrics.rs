//! Observability end to end: the real `saltbridge run` reading a TCP bus fed
//! by this test and delivering to a real HTTP receiver on loopback, scraped
//! over HTTP while it runs. Checks that /readyz follows the bus connection,
//! that /metrics counts what was sent and delivered, and that
//! `saltbridge status` shows it (and says so when nothing listens).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use saltbridge::metrics::scrape::Scrape;
use saltbridge::receiver::{Answer, Receiver};
use support::daemon::{self, Daemon};
use support::ports::free_addr;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const SESSIONS: [&str; 3] = ["00_startup", "a_test_ping", "c2_cmd_exit3"];

fn fixture(name: &str) -> PathBuf {
    support::fixtures::fixtures().join("3008.4").join(name)
}

fn routes(dir: &Path, receiver: &Receiver) -> PathBuf {
    let text = format!(
        r#"
sinks:
  hook: {{type: webhook, url: "{hook}"}}
routes:
  - name: returns
    match: {{tag: "salt/job/*/ret/*"}}
    to: [hook]
  - name: starts
    match: {{tag: "salt/minion/*/start"}}
    to: [hook]
  - name: never
    match: {{tag: "no/such/tag"}}
    to: [hook]
"#,
        hook = receiver.url("/hook"),
    );
    let p = dir.join("routes.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn get(url: String) -> Option<(u16, String)> {
    let client = reqwest::Client::new();
    let r = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Polls `path` until `pred` holds for its answer, or panics after 15 s.
async fn wait_for(listen: SocketAddr, path: &str, pred: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((status, body)) = get(format!("http://{listen}{path}")).await {
            if pred(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered as expected; last answer: {last:?}");
}

async fn status(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_saltbridge"))
            .arg("status")
            .args(&args)
            .env_remove("SALTBRIDGE_LISTEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_readiness_and_status_of_a_running_daemon() {
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = routes(dir.path(), &receiver);
    let bus = free_addr();
    let listen = free_addr();
    let mut run = daemon::command();
    run.args(["run", "-c"])
        .arg(&config)
        .args(["--source", &format!("tcp:{bus}")])
        .args(["--listen", &listen.to_string()])
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let daemon = Daemon::spawn(run, &dir.path().join("run.log"));

    // No bus yet: alive, but not ready, and saying why.
    let not_ready = wait_for(listen, "/readyz", |s, _| s == 503).await;
    assert!(
        not_ready.contains(&format!("tcp:{bus}")) && not_ready.contains("not connected"),
        "{not_ready}"
    );
    wait_for(listen, "/healthz", |s, _| s == 200).await;

    // The bus comes up: ready.
    let bus_listener = TcpListener::bind(bus).await.unwrap();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(15), bus_listener.accept())
        .await
        .expect("saltbridge did not connect to the bus")
        .unwrap();
    wait_for(listen, "/readyz", |s, _| s == 200).await;

    // Real captured sessions, and what Salt itself decoded of them.
    let mut bytes = Vec::new();
    let mut tags = Vec::new();
    for name in SESSIONS {
        bytes.extend(std::fs::read(fixture(&format!("{name}.bin"))).unwrap());
        tags.extend(
            support::fixtures::expected(&fixture(&format!("{name}.jsonl")))
                .into_iter()
                .map(|(t, _)| t),
        );
    }
    conn.write_all(&bytes).await.unwrap();
    let is_return = |t: &&String| t.starts_with("salt/job/") && t.contains("/ret/");
    let is_start = |t: &&String| t.starts_with("salt/minion/") && t.ends_with("/start");
    let returns = tags.iter().filter(is_return).count();
    let starts = tags.iter().filter(is_start).count();
    let legacy_starts = tags.iter().filter(|t| *t == "minion_start").count();
    assert!(returns > 0 && starts > 0 && legacy_starts > 0, "{tags:?}");
    let to_hook = returns + starts;

    let delivered = receiver.wait_for(to_hook, Duration::from_secs(15)).await;
    assert!(delivered
        .iter()
        .all(|r| matches!(r.answer, Answer::Status(200))));
    let src = format!("tcp:{bus}");
    let text = wait_for(listen, "/metrics", |_, body| {
        Scrape::parse(body).is_ok_and(|s| {
            s.get("saltbridge_sink_delivered_total", "sink", "hook") == Some(to_hook as f64)
        })
    })
    .await;
    let m = Scrape::parse(&text).unwrap();
    let source = |name: &str| m.get(name, "source", &src);
    assert_eq!(
        source("saltbridge_source_events_total"),
        Some(tags.len() as f64)
    );
    assert_eq!(
        source("saltbridge_source_bytes_total"),
        Some(bytes.len() as f64)
    );
    assert_eq!(source("saltbridge_source_decode_errors_total"), Some(0.0));
    assert_eq!(source("saltbridge_source_connected"), Some(1.0));
    let routes = m.by_label("saltbridge_route_matches_total", "route");
    assert_eq!(routes.get("returns"), Some(&(returns as f64)));
    assert_eq!(routes.get("starts"), Some(&(starts as f64)));
    assert_eq!(routes.get("never"), Some(&0.0));
    assert_eq!(
        m.get("saltbridge_twins_dropped_total", "kind", "minion_start"),
        Some(legacy_starts as f64),
        "each legacy minion_start is the twin of a salt/minion/*/start"
    );
    let sink = |name: &str| m.get(name, "sink", "hook");
    assert_eq!(sink("saltbridge_sink_accepted_total"), Some(to_hook as f64));
    assert_eq!(sink("saltbridge_sink_retries_total"), Some(0.0));
    assert_eq!(sink("saltbridge_sink_dead_letters_total"), Some(0.0));
    assert_eq!(
        sink("saltbridge_delivery_latency_seconds_count"),
        Some(to_hook as f64),
        "one latency observation per delivered event"
    );
    assert_eq!(
        sink("saltbridge_sink_queue_events"),
        Some(0.0),
        "all settled"
    );
    assert_eq!(sink("saltbridge_sink_failures_total"), Some(0.0));

    // `status` shows the same numbers to a person, and to a script.
    let listen_arg = listen.to_string();
    let out = status(&["--listen", &listen_arg]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cells = |first: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no {first} row in\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let source_row = cells(&src);
    assert_eq!(source_row[1], "yes", "{table}");
    assert_eq!(source_row[2], tags.len().to_string(), "{table}");
    assert_eq!(source_row[3], bytes.len().to_string(), "{table}");
    assert_eq!(cells("hook")[3], to_hook.to_string(), "{table}");
    assert_eq!(cells("returns")[1], returns.to_string(), "{table}");
    let out = status(&["--listen", &listen_arg, "--format", "json"]).await;
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sinks"][0]["sink"], "hook");
    assert_eq!(json["sinks"][0]["delivered"], to_hook);
    let p50 = json["sinks"][0]["latency_p50_seconds"].as_f64();
    assert!(p50.is_some_and(|p| p > 0.0 && p < 5.0), "{json}");

    // The master goes away: no longer ready, and the gauge says so.
    drop(conn);
    drop(bus_listener);
    let lost = wait_for(listen, "/readyz", |s, _| s == 503).await;
    assert!(lost.contains("reconnecting"), "{lost}");
    let text = wait_for(listen, "/metrics", |_, _| true).await;
    let m = Scrape::parse(&text).unwrap();
    assert_eq!(
        m.get("saltbridge_source_connected", "source", &src),
        Some(0.0)
    );

    // Stopped: `status` says nothing listens, and fails.
    let (exit, log) = tokio::task::block_in_place(|| daemon.stop(Duration::from_secs(60)));
    assert!(exit.is_some_and(|s| s.success()), "{log}");
    let out = status(&["--listen", &listen_arg]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(&format!("no saltbridge is listening on {listen}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_off_serves_nothing_and_a_busy_address_does_not_stop_delivery() {
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = routes(dir.path(), &receiver);
    let session = fixture("a_test_ping.bin");
    // Something else already holds the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    for listen in ["off", taken_addr.as_str()] {
        let out = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
            .args(["run", "-c"])
            .arg(&config)
            .args(["--source", &format!("capture:{}", session.display())])
            .args(["--listen", listen])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        if listen == "off" {
            assert!(!err.contains("serving /metrics"), "{err}");
        } else {
            assert!(err.contains("cannot listen for /metrics"), "{err}");
        }
    }
    let returns = support::fixtures::expected(&fixture("a_test_ping.jsonl"))
        .into_iter()
        .filter(|(t, _)| t.starts_with("salt/job/") && t.contains("/ret/"))
        .count();
    assert!(returns > 0);
    assert_eq!(receiver.count(), 2 * returns, "delivered both times");
    let bad = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["run", "--listen", "localhost"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("IP:PORT"));
}
