//! `saltbridge run --source zmq:tcp://...` against a hostile ZeroMQ peer
//! (issue 12, finding 2): a fake publisher sends a frame header claiming
//! 2^40 bytes right behind its handshake, then on the next connection, once
//! it is up, one claiming 1 GiB (and some of its body), then on the third
//! honest events. Before `zmq_guard`, the first aborted the process
//! (`memory allocation of 1099511693321 bytes failed`, exit 134) and the
//! second was buffered. Now the daemon stays up with its memory bounded,
//! logs and counts each refusal, reconnects and reads the honest events.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::daemon::Daemon;

/// An honest event in the ZeroMQ-era body style: tag, `\n\n`, msgpack `{}`.
const PROBE: &[u8] = b"saltbridge-test/probe\n\n\x80";

/// ZMTP 3.0 greeting of a NULL-mechanism server (RFC 23).
fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// The READY command of a PUB socket.
fn ready() -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&3u32.to_be_bytes());
    body.extend_from_slice(b"PUB");
    let mut frame = vec![0x04, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

/// A long (8-byte length) message frame header claiming `len` bytes.
fn long_header(len: u64) -> Vec<u8> {
    let mut h = vec![0x02];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// Accepts one subscriber and completes the handshake.
fn handshake(listener: &TcpListener) -> TcpStream {
    let (mut s, _) = listener.accept().expect("saltbridge connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&greeting()).unwrap();
    let mut theirs = [0u8; 64];
    s.read_exact(&mut theirs).expect("its greeting");
    s.write_all(&ready()).unwrap();
    s
}

/// Whether the peer closed the connection within the read timeout.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// The daemon's peak resident memory, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib >> 10)
}

#[test]
fn huge_frame_headers_are_refused_and_the_daemon_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        "sinks:\n  discard: {type: blackhole}\nroutes:\n  - {name: all, match: {tag: \"saltbridge-test/*\"}, to: [discard]}\n",
    )
    .unwrap();
    let addr = support::ports::free_addr();
    let listener = TcpListener::bind(addr).unwrap();
    let honest_done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let done = honest_done.clone();
        std::thread::spawn(move || {
            let mut closed = Vec::new();
            // 2^40: the crate used to reserve it at once and abort.
            let mut s = handshake(&listener);
            s.write_all(&long_header(1 << 40)).unwrap();
            closed.push(closed_by_peer(&mut s));
            // 1 GiB, and its body starting: the crate used to buffer it.
            // Sent once the connection is up (the 2^40 one came during
            // the handshake).
            let mut s = handshake(&listener);
            std::thread::sleep(Duration::from_secs(1));
            s.write_all(&long_header(1 << 30)).unwrap();
            let _ = s.write_all(&vec![b'x'; 1 << 20]);
            closed.push(closed_by_peer(&mut s));
            // Honest events until the daemon has read some.
            let mut s = handshake(&listener);
            let mut frame = vec![0x00, PROBE.len() as u8];
            frame.extend_from_slice(PROBE);
            while !done.load(Ordering::Relaxed) {
                if s.write_all(&frame).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            closed
        })
    };
    let daemon = Daemon::run(
        &routes,
        Some(&format!("zmq:tcp://{addr}")),
        &dir.path().join("state"),
        &dir.path().join("log"),
    );
    let refused = daemon.wait_for_log("exceeds the 16777216-byte limit", Duration::from_secs(30));
    let read_honest = refused
        && (0..600).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            daemon.log().matches("exceeds the").count() >= 2
                && daemon.log().contains("lost the ZeroMQ event bus")
                && daemon.log().contains("reconnected")
        });
    std::thread::sleep(Duration::from_secs(1));
    honest_done.store(true, Ordering::Relaxed);
    let peak = peak_rss_mib(daemon.pid());
    let (status, log) = daemon.stop(Duration::from_secs(10));
    let closed = publisher.join().expect("the fake publisher");
    assert!(refused && read_honest, "{log}");
    assert_eq!(closed, [true, true], "each hostile connection is closed");
    assert!(
        status.is_some_and(|s| s.success()),
        "exits cleanly: {status:?}\n{log}"
    );
    assert!(
        log.contains("frame of 1099511627776 bytes exceeds the 16777216-byte limit")
            && log.contains("frame of 1073741824 bytes exceeds the 16777216-byte limit"),
        "both refusals logged with their claimed length:\n{log}"
    );
    assert!(log.contains("2 malformed"), "both counted:\n{log}");
    assert!(
        log.contains("sink discard: ") && !log.contains("sink discard: 0 accepted"),
        "the honest events after the reconnect are read and routed:\n{log}"
    );
    assert!(
        peak < 256,
        "peak RSS {peak} MiB: nothing of the claims was buffered"
    );
}
