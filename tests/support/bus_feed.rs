//! A stand-in master publisher for fault tests: serves Salt's unix-bus
//! framing (`{"head": {}, "body": tag "\n\n" msgpack(data)}`) on a socket,
//! at a fixed rate, to whichever reader is connected, and accepts the
//! reader again after it reconnects. Each event is `saltbridge-test/load`
//! with data `{"n": <serial>, "pad": ...}`, so a consumer can count what
//! arrived by `n`.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One Salt bus frame.
pub fn frame(tag: &str, data: &serde_json::Value) -> Vec<u8> {
    let mut body = Vec::from(tag.as_bytes());
    body.extend_from_slice(b"\n\n");
    body.extend(rmp_serde::to_vec_named(data).unwrap());
    let mut out = vec![0x82, 0xa4];
    out.extend_from_slice(b"head");
    out.push(0x80);
    out.push(0xa4);
    out.extend_from_slice(b"body");
    rmp::encode::write_bin(&mut out, &body).unwrap();
    out
}

pub const TAG: &str = "saltbridge-test/load";

/// The feed, running until `stop` or drop.
pub struct BusFeed {
    pub path: PathBuf,
    /// Serial numbers written to a connected reader.
    written: Arc<Mutex<Vec<u64>>>,
    /// Serial numbers produced while no reader was connected.
    unread: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusFeed {
    /// Serves `rate` events a second of about `size` bytes on `path`.
    pub fn start(path: &Path, rate: u64, size: usize) -> BusFeed {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let written = Arc::new(Mutex::new(Vec::new()));
        let unread = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, u, nx, p, s) = (
            written.clone(),
            unread.clone(),
            next.clone(),
            paused.clone(),
            stop.clone(),
        );
        let pad = "x".repeat(size.saturating_sub(60));
        let thread = std::thread::spawn(move || {
            let mut conn: Option<UnixStream> = None;
            let tick = Duration::from_millis(10);
            let per_tick = (rate / 100).max(1);
            let mut due = Instant::now();
            let mut ever = false;
            while !s.load(Ordering::Relaxed) {
                if let Ok((c, _)) = listener.accept() {
                    c.set_nonblocking(false).unwrap();
                    c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                    conn = Some(c);
                    ever = true;
                }
                if !ever {
                    // Nothing counts until the first reader is there.
                    std::thread::sleep(tick);
                    due = Instant::now();
                    continue;
                }
                due += tick;
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                if p.load(Ordering::Relaxed) {
                    continue;
                }
                let mut batch = Vec::new();
                let first = nx.fetch_add(per_tick, Ordering::Relaxed);
                for n in first..first + per_tick {
                    let data = serde_json::json!({"n": n, "pad": pad, "_stamp": format!("2026-11-27T00:00:00.{n:06}")});
                    batch.extend(frame(TAG, &data));
                }
                let ok = match conn.as_mut() {
                    Some(c) => c.write_all(&batch).is_ok(),
                    None => false,
                };
                if ok {
                    w.lock().unwrap().extend(first..first + per_tick);
                } else {
                    conn = None;
                    u.fetch_add(per_tick, Ordering::Relaxed);
                }
            }
        });
        BusFeed {
            path: path.to_owned(),
            written,
            unread,
            next,
            paused,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops producing (the connection stays open).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
    }

    /// Produces again after `pause`.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
    }

    /// Events produced so far.
    pub fn produced(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Serial numbers written into a reader's connection.
    pub fn written(&self) -> Vec<u64> {
        self.written.lock().unwrap().clone()
    }

    /// Events produced while no reader was connected.
    pub fn unread(&self) -> u64 {
        self.unread.load(Ordering::Relaxed)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BusFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a fault test reports: sent, delivered, duplicates, lost.
pub struct Tally {
    pub delivered: HashSet<u64>,
    pub deliveries: u64,
}

impl Tally {
    pub fn of(ns: impl IntoIterator<Item = u64>) -> Tally {
        let mut delivered = HashSet::new();
        let mut deliveries = 0;
        for n in ns {
            deliveries += 1;
            delivered.insert(n);
        }
        Tally {
            delivered,
            deliveries,
        }
    }

    pub fn duplicates(&self) -> u64 {
        self.deliveries - self.delivered.len() as u64
    }

    /// Those of `expected` never delivered.
    pub fn lost(&self, expected: &[u64]) -> Vec<u64> {
        expected
            .iter()
            .copied()
            .filter(|n| !self.delivered.contains(n))
            .collect()
    }
}

/// The tag of the frame that ends a [`burst`].
pub const END_TAG: &str = "saltbridge-test/end";

/// Serves one reader on `path` a burst of `count` events of about `size`
/// bytes, written as fast as the socket takes them (the writer blocks only
/// when the socket buffer is full), then one `END_TAG` event. The thread
/// returns how many events it wrote.
pub fn burst(path: &Path, count: u64, size: usize) -> JoinHandle<u64> {
    let listener = UnixListener::bind(path).unwrap();
    let pad = "x".repeat(size.saturating_sub(60));
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return 0;
        };
        let mut written = 0;
        let mut chunk = Vec::with_capacity(1 << 20);
        while written < count {
            chunk.clear();
            let upto = (written + 2000).min(count);
            for n in written..upto {
                let data = serde_json::json!({"n": n, "pad": pad, "_stamp": format!("2026-11-27T00:00:00.{n:06}")});
                chunk.extend(frame(TAG, &data));
            }
            if conn.write_all(&chunk).is_err() {
                return written;
            }
            written = upto;
        }
        let _ = conn.write_all(&frame(END_TAG, &serde_json::json!({"n": count})));
        // Keep the connection open: a close would be a gap to the reader.
        std::thread::sleep(Duration::from_secs(600));
        written
    })
}
