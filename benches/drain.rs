//! Draining a backlog from a unix socket: saltbridge's bus reader against
//! Salt's own Python reader (`salt.utils.event` `get_event`), same bytes,
//! same run.
//!
//! `cargo bench --bench drain` serves N events (env `DRAIN_EVENTS`, default
//! 100,000 job returns of ~300 B, framed as Salt 3008 does) on a unix socket
//! as fast as the reader takes them, times each reader from its first event
//! to its last, and prints a table with the ratio. The Python baseline needs
//! the Salt virtualenv at `.cache/salt-3008.4` (or env `SALTBRIDGE_SALT_VENV_3008_4`).

mod support;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use saltbridge::shutdown::ShutdownSignal;
use saltbridge::source::{self, ReaderOptions, SourceSpec};

/// Serves `bytes` to the first reader that connects, then holds the
/// connection open until the reader has gone.
fn serve(path: &Path, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).expect("bind the bench socket");
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        // A reader that stops early closes the socket: the error ends the write.
        let _ = conn.write_all(&bytes);
        let mut sink = [0u8; 1];
        let _ = std::io::Read::read(&mut conn, &mut sink);
    })
}

fn saltbridge_drain(sock: &Path, bytes: Vec<u8>, events: u64) -> f64 {
    let server = serve(sock, bytes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let secs = rt.block_on(async {
        let (signal, shutdown) = ShutdownSignal::new();
        let mut src = source::spawn(
            SourceSpec::Ipc(sock.to_path_buf()),
            ReaderOptions::default(),
            shutdown,
        );
        let first = src.events.recv().await.expect("first event");
        let start = Instant::now();
        drop(first);
        let mut n = 1;
        while n < events {
            match tokio::time::timeout(Duration::from_secs(10), src.events.recv()).await {
                Ok(Some(_)) => n += 1,
                _ => break,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(n, events, "saltbridge read {n} of {events} events");
        signal.trigger();
        secs
    });
    drop(rt);
    let _ = server.join();
    secs
}

fn python_drain(venv: &Path, dir: &Path, bytes: Vec<u8>, events: u64) -> Option<f64> {
    let server = serve(&dir.join("master_event_pub.ipc"), bytes);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python/salt_reader.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(dir)
        .arg(events.to_string())
        .output()
        .ok()?;
    let _ = server.join();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    if v["events"].as_u64()? != events {
        eprintln!(
            "python reader read {} of {events} events: {}",
            v["events"],
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    v["seconds"].as_f64()
}

fn venv() -> Option<PathBuf> {
    let from_env = std::env::var_os("SALTBRIDGE_SALT_VENV_3008_4").map(PathBuf::from);
    let default = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/salt-3008.4");
    from_env
        .into_iter()
        .chain([default])
        .find(|p| p.join("bin/python").exists())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let events: u64 = std::env::var("DRAIN_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let bytes: Vec<u8> = (0..events).flat_map(support::small_return_frame).collect();
    let mb = bytes.len() as f64 / 1e6;
    let dir = tempfile::tempdir().unwrap();

    let ours = saltbridge_drain(&dir.path().join("sb.ipc"), bytes.clone(), events);
    let theirs = match venv() {
        Some(v) => python_drain(&v, dir.path(), bytes, events),
        None => {
            eprintln!("no Salt 3008.4 virtualenv: Python baseline skipped");
            None
        }
    };

    println!("\nDrain a backlog of {events} job returns ({mb:.1} MB) from a unix socket");
    println!(
        "{:<44} {:>10} {:>12} {:>10} {:>8}",
        "reader", "seconds", "events/s", "MB/s", "ratio"
    );
    let row = |name: &str, s: f64, ratio: String| {
        println!(
            "{name:<44} {s:>10.3} {:>12.0} {:>10.1} {ratio:>8}",
            events as f64 / s,
            mb / s
        );
    };
    match theirs {
        Some(py) => {
            row(
                "saltbridge ipc source -> channel",
                ours,
                format!("{:.0}x", py / ours),
            );
            row("Salt 3008.4 salt.utils.event get_event", py, "1x".into());
        }
        None => row("saltbridge ipc source -> channel", ours, "-".into()),
    }
}
