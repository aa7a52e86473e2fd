//! Fault tests against a real Salt 3008.4 master, with events fired into
//! it by Salt's own `fire_event` at a fixed rate:
//! - every sink down while the master publishes 2,000 events/s: the reader
//!   keeps draining the bus, the master never disconnects it, and every
//!   published event is spooled (60 s here; `SALTBRIDGE_SOAK=10m` for the
//!   issue's ten minutes);
//! - the master restarted while events flow: a gap marker is delivered,
//!   then the stream resumes, and what was fired before the stop and after
//!   the reconnect all arrives.
//!
//! Each prints `sent / delivered / duplicates / lost`.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use saltbridge::receiver::Receiver;
use serde_json::Value;
use support::bus_feed::Tally;
use support::daemon::{env_duration, webhook_events, Daemon};
use support::process::{self, ProcessGroup};
use support::salt_sandbox::{SaltSandbox, SandboxOptions};

/// Fires `saltbridge-test/load` events with data `{"n", "t"}` at `rate`
/// for `secs`; prints one JSON line per event that `fire_event` accepted.
/// `n` counts from `argv[4]`, so several firehoses can run side by side.
const FIREHOSE: &str = r#"
import json, sys, time
import salt.config, salt.utils.event
opts = salt.config.master_config(sys.argv[1])
rate, secs, base = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
pad = "x" * 200
def bus():
    return salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
ev = bus()
t0 = time.time()
n = 0
out = sys.stdout
while True:
    now = time.time()
    if now - t0 >= secs:
        break
    due = t0 + n / rate
    if due > now:
        time.sleep(due - now)
    t = time.time()
    try:
        ok = ev.fire_event({"n": base + n, "t": t, "pad": pad}, "saltbridge-test/load", timeout=200)
    except Exception:
        ok = False
    if ok:
        out.write('{"n":%d,"t":%.6f}\n' % (base + n, t))
    else:
        try:
            ev.destroy()
        except Exception:
            pass
        ev = bus()
    n += 1
out.flush()
"#;

fn firehose(salt: &SaltSandbox, dir: &Path, rate: u32, secs: f64, base: u64) -> ProcessGroup {
    let script = dir.join("firehose.py");
    std::fs::write(&script, FIREHOSE).unwrap();
    process::spawn(
        Command::new(salt.venv_dir().join("bin/python"))
            .arg(&script)
            .arg(salt.master_config_file())
            .arg(rate.to_string())
            .arg(secs.to_string())
            .arg(base.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap()
}

/// (n, time fired) of every event the firehose got out.
fn fired(mut child: ProcessGroup) -> Vec<(u64, f64)> {
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).unwrap();
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v["n"].as_u64()?, v["t"].as_f64()?)))
        .collect()
}

fn routes(dir: &Path, salt: &SaltSandbox, url: &str) -> std::path::PathBuf {
    let p = dir.join("routes.yaml");
    std::fs::write(
        &p,
        format!(
            r#"
source: "ipc:{}"
sinks:
  hook:
    type: webhook
    url: "{url}"
    batch: {{max_events: 500, max_wait: 100ms}}
    retry: {{initial: 100ms, max: 1s, give_up_after: 1h}}
routes:
  - name: load
    match: {{tag: "saltbridge-test/*"}}
    to: [hook]
  - name: gaps
    match: {{tag: "saltbridge/bus/gap"}}
    to: [hook]
"#,
            salt.master_config_file().display()
        ),
    )
    .unwrap();
    p
}

fn soak() -> Duration {
    env_duration("SALTBRIDGE_SOAK", Duration::from_secs(60))
}

async fn start_master() -> Option<SaltSandbox> {
    let venv = SaltSandbox::require_venv("3008.4")?;
    Some(
        tokio::task::spawn_blocking(move || {
            SaltSandbox::start(&venv, SandboxOptions::with_minions(&[]))
        })
        .await
        .unwrap()
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_down_at_2000_events_a_second_the_master_never_drops_the_reader() {
    let Some(salt) = start_master().await else {
        return;
    };
    let receiver = Receiver::start().await.unwrap();
    receiver.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let config = routes(dir.path(), &salt, &receiver.url("/hook"));
    let (state, log) = (dir.path().join("state"), dir.path().join("log"));
    let daemon = Daemon::run(&config, None, &state, &log);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let secs = soak().as_secs_f64();
    // One Python publisher tops out near 700 events/s here: three share the load.
    let hoses: Vec<ProcessGroup> = (0..3)
        .map(|k| firehose(&salt, dir.path(), 667, secs, k * 100_000_000))
        .collect();
    let sent: Vec<(u64, f64)> =
        tokio::task::spawn_blocking(move || hoses.into_iter().flat_map(fired).collect())
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = daemon.term();
    let read_line = text
        .lines()
        .find(|l| l.contains("saltbridge: read"))
        .unwrap_or("")
        .to_owned();
    let sink_line = text
        .lines()
        .find(|l| l.contains("sink hook:"))
        .unwrap_or("")
        .to_owned();
    let accepted: u64 = sink_line
        .split("sink hook: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rate = sent.len() as f64 / secs;
    println!(
        "FAULT master-2000/s-sinks-down: sent {} / spooled {accepted} / delivered 0 (receiver down) / duplicates 0 / lost {} over {secs} s ({rate:.0} events/s achieved); {read_line}",
        sent.len(),
        sent.len() as u64 - accepted.min(sent.len() as u64)
    );
    assert!(
        read_line.contains("0 malformed, 0 dropped on a full buffer, 0 gaps)"),
        "{read_line}\n{text}"
    );
    assert_eq!(
        accepted,
        sent.len() as u64,
        "every published event spooled: {sink_line}"
    );
    assert!(
        !text.contains("the master closed the event bus"),
        "disconnected: {text}"
    );
    // The rate reached depends on the machine (Python publishers, the
    // master's own publisher): it is printed, never asserted. What is
    // asserted is correctness: something was published, all of it spooled.
    assert!(!sent.is_empty(), "the firehose published nothing\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restart_gives_a_gap_marker_and_the_stream_resumes() {
    let Some(mut salt) = start_master().await else {
        return;
    };
    let receiver = Receiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = routes(dir.path(), &salt, &receiver.url("/hook"));
    let (state, log) = (dir.path().join("state"), dir.path().join("log"));
    let daemon = Daemon::run(&config, None, &state, &log);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hose = firehose(&salt, dir.path(), 200, 25.0, 0);
    // Events, not seconds, decide when to restart: on a loaded machine the
    // firehose's Python can take seconds to start.
    wait_until(&receiver, "events delivered before the restart", |got| {
        got.iter().any(|(t, _)| t == "saltbridge-test/load")
    })
    .await;
    let stopped_at = std::time::SystemTime::now();
    salt = tokio::task::spawn_blocking(move || {
        salt.stop_master();
        std::thread::sleep(Duration::from_secs(2));
        salt.start_master().unwrap();
        salt
    })
    .await
    .unwrap();
    // Once saltbridge says it reconnected, a second firehose makes sure
    // events are published after the reconnect, however slow the first.
    wait_until(&receiver, "a gap marker after the restart", |got| {
        got.iter()
            .any(|(t, d)| t == "saltbridge/bus/gap" && d["seconds"].as_f64().unwrap_or(0.0) >= 1.0)
    })
    .await;
    let hose2 = firehose(&salt, dir.path(), 200, 5.0, 1_000_000_000);
    let sent = tokio::task::spawn_blocking(move || {
        let mut sent = fired(hose);
        sent.extend(fired(hose2));
        sent
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = daemon.term();
    drop(salt);
    let got: Vec<(String, Value)> = webhook_events(&receiver)
        .into_iter()
        .map(|(t, d, _)| (t, d))
        .collect();
    // The marker of the restart (a 3008 master may also close the bus for
    // an instant when the first publisher connects: a gap of microseconds).
    let gap = got.iter().position(|(t, d)| {
        t == "saltbridge/bus/gap" && d["seconds"].as_f64().unwrap_or(0.0) >= 1.0
    });
    let Some(gap) = gap else {
        panic!("no gap marker delivered\n{text}")
    };
    let reconnected = got[gap].1["reconnected_at"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok());
    let reconnected = reconnected
        .expect("reconnected_at")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let stopped = stopped_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let t = Tally::of(got.iter().filter_map(|(_, d)| d["n"].as_u64()));
    // Salt's bus has no replay: what was fired while the master was down
    // or before saltbridge reconnected is lost by design. Everything else must arrive.
    let must: Vec<u64> = sent
        .iter()
        .filter(|(_, at)| *at < stopped - 0.5 || *at > reconnected + 0.5)
        .map(|(n, _)| *n)
        .collect();
    let lost = t.lost(&must);
    let after: Vec<u64> = got[gap..]
        .iter()
        .filter_map(|(_, d)| d["n"].as_u64())
        .collect();
    println!(
        "FAULT master-restart: sent {} / delivered {} / duplicates {} / lost {} of {} fired outside the restart window ({} fired while the master was down or before the reconnect; gap {:.1} s)",
        sent.len(),
        t.delivered.len(),
        t.duplicates(),
        lost.len(),
        must.len(),
        sent.len() - must.len(),
        got[gap].1["seconds"].as_f64().unwrap_or(0.0)
    );
    assert!(
        lost.is_empty(),
        "lost {:?}\n{text}",
        &lost[..lost.len().min(10)]
    );
    // How many events flow depends on the machine; that some flowed on
    // each side of the restart, and none were lost, is what counts.
    assert!(
        !after.is_empty(),
        "the stream did not resume after the gap marker\n{text}"
    );
    assert!(gap > 0, "no event flowed before the restart\n{text}");
}

/// Waits (up to 2 minutes) until the events the receiver got satisfy `done`.
async fn wait_until(receiver: &Receiver, what: &str, done: impl Fn(&[(String, Value)]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let got: Vec<(String, Value)> = webhook_events(receiver)
            .into_iter()
            .map(|(t, d, _)| (t, d))
            .collect();
        if done(&got) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
