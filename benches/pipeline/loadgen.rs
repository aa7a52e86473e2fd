//! The load generator: a stand-in for the master's publisher, serving Salt
//! 3008's bus framing on a unix socket `master_event_pub.ipc`, so the reader
//! is measured without the Python publisher being the limit.
//!
//! It serves one reader: either a prepared backlog written as fast as the
//! reader takes it ([`serve_backlog`]), or events made on the fly at a fixed
//! rate, each stamped with its send time in `data.bench_sent_us` so a
//! receiver can compute bus-to-sink latency ([`serve_paced`]). The events are
//! synthetic 300 B job returns and 5 KB `state.apply` returns (100 minions,
//! one jid each), or the real 3008.4 captures replayed.

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::support::frame;

/// The tag of the event that marks the end of a backlog.
pub const SENTINEL_TAG: &str = "bench/sentinel";

/// What a stream is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `test.ping` job returns of about 300 bytes.
    Small,
    /// `state.apply` job returns of about 5 KB.
    StateApply,
}

fn event_frame(tag: &str, data: &Value) -> Vec<u8> {
    let mut body = format!("{tag}\n\n").into_bytes();
    body.extend_from_slice(&rmp_serde::to_vec_named(data).expect("msgpack of a json value"));
    frame(&body)
}

/// Microseconds since the epoch, as stamped into paced events.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn stamp(seq: u64) -> String {
    // Salt's `_stamp`: distinct per event, so idempotency keys differ.
    let us = seq % 1_000_000;
    let s = (seq / 1_000_000) % 60;
    format!("2026-11-26T13:56:{s:02}.{us:06}")
}

/// The `seq`th event of `kind`; `sent_us` is stamped in when given.
pub fn event(kind: Kind, seq: u64, sent_us: Option<u64>) -> Vec<u8> {
    let jid = format!("2026112613{seq:010}");
    let id = format!("web-{:02}.prod.eu-west-1.example.com", seq % 100);
    let mut data = match kind {
        Kind::Small => json!({
            "cmd": "_return", "id": id, "success": true, "return": true,
            "retcode": 0, "jid": jid, "fun": "test.ping", "fun_args": [],
            "tgt": "web-*", "tgt_type": "glob", "out": "nested", "user": "root",
            "_stamp": stamp(seq),
        }),
        Kind::StateApply => {
            let mut ret = serde_json::Map::new();
            for i in 0..17 {
                ret.insert(
                    format!("file_|-/etc/app/conf.d/{i:03}.conf_|-/etc/app/conf.d/{i:03}.conf_|-managed"),
                    json!({
                        "name": format!("/etc/app/conf.d/{i:03}.conf"), "changes": {},
                        "result": true,
                        "comment": format!("File /etc/app/conf.d/{i:03}.conf is in the correct state"),
                        "__sls__": "app.config", "__run_num__": i,
                        "start_time": "13:56:47.121718", "duration": 1.734,
                        "__id__": format!("/etc/app/conf.d/{i:03}.conf"),
                    }),
                );
            }
            json!({
                "cmd": "_return", "id": id, "success": true, "return": ret, "retcode": 0,
                "jid": jid, "fun": "state.apply", "fun_args": ["app"], "out": "highstate",
                "user": "root", "_stamp": stamp(seq),
            })
        }
    };
    if let Some(us) = sent_us {
        data["bench_sent_us"] = json!(us);
    }
    event_frame(&format!("salt/job/{jid}/ret/{id}"), &data)
}

/// The end-of-backlog marker.
pub fn sentinel() -> Vec<u8> {
    event_frame(SENTINEL_TAG, &json!({"_stamp": stamp(0)}))
}

/// `n` events of `kind`, framed back to back.
pub fn backlog(kind: Kind, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for seq in 0..n {
        out.extend_from_slice(&event(kind, seq, None));
    }
    out
}

/// Every 3008.4 capture, concatenated and repeated until it holds at least
/// `min_events` frames; returns the bytes and the frame count.
pub fn captures(min_events: u64) -> (Vec<u8>, u64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/3008.4");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/3008.4")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    names.sort();
    let once: Vec<u8> = names
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    let per_copy = count_frames(&once);
    assert!(per_copy > 0, "no frames in the 3008.4 captures");
    let copies = min_events.div_ceil(per_copy);
    (once.repeat(copies as usize), per_copy * copies)
}

/// Counts the bare-map frames of a 3008 capture (each is `{head, body}`).
fn count_frames(bytes: &[u8]) -> u64 {
    let mut cur = std::io::Cursor::new(bytes);
    let mut n = 0;
    while (cur.position() as usize) < bytes.len() {
        if rmp_serde::from_read::<_, serde::de::IgnoredAny>(&mut cur).is_err() {
            break;
        }
        n += 1;
    }
    n
}

/// When a served reader connected, and how many events it was sent.
#[derive(Debug, Clone, Copy)]
pub struct Served {
    pub connected: Instant,
    pub events: u64,
}

/// Binds `sock` (replacing a stale one) before the reader is started.
fn bind(sock: &Path) -> UnixListener {
    let _ = std::fs::remove_file(sock);
    UnixListener::bind(sock).unwrap_or_else(|e| panic!("bind {}: {e}", sock.display()))
}

/// Serves `bytes` to the first reader as fast as it reads, then holds the
/// connection open until the reader goes (a closed publisher would make a
/// daemon reconnect).
/// `accepted` is set once the reader is connected.
pub fn serve_backlog(
    sock: &Path,
    bytes: Arc<Vec<u8>>,
    events: u64,
    accepted: Arc<AtomicBool>,
) -> JoinHandle<Served> {
    let listener = bind(sock);
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept the reader");
        let connected = Instant::now();
        accepted.store(true, Ordering::Relaxed);
        let _ = conn.write_all(&bytes);
        let mut byte = [0u8; 1];
        let _ = std::io::Read::read(&mut conn, &mut byte);
        Served { connected, events }
    })
}

/// Serves `kind` events at `rate` per second for `length`, each stamped with
/// its send time, then the sentinel; stops early when `stop` is set.
/// `sent` counts the events written so far.
pub fn serve_paced(
    sock: &Path,
    kind: Kind,
    rate: u64,
    length: Duration,
    stop: Arc<AtomicBool>,
    sent_so_far: Arc<AtomicU64>,
) -> JoinHandle<Served> {
    let listener = bind(sock);
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept the reader");
        let connected = Instant::now();
        let mut sent = 0u64;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let elapsed = connected.elapsed();
            if elapsed >= length {
                break;
            }
            let due = (elapsed.as_secs_f64() * rate as f64) as u64;
            buf.clear();
            let now = now_us();
            while sent < due {
                buf.extend_from_slice(&event(kind, sent, Some(now)));
                sent += 1;
            }
            if conn.write_all(&buf).is_err() {
                break;
            }
            sent_so_far.store(sent, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = conn.write_all(&sentinel());
        let mut byte = [0u8; 1];
        let _ = std::io::Read::read(&mut conn, &mut byte);
        Served {
            connected,
            events: sent,
        }
    })
}
