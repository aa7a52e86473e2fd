//! The network sources against real sockets on this host: waiting for a
//! master that is not up, reconnecting after EOF with a gap marker, and
//! draining the socket while the next stage is stuck.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use saltbridge::event::Event;
use saltbridge::shutdown::ShutdownSignal;
use saltbridge::source::EventReceiver;
use saltbridge::source::{self, ReaderOptions, SourceSpec, SourceStats, GAP_TAG, OVERFLOW_TAG};
use tokio::io::AsyncWriteExt;

fn opts(capacity: usize) -> ReaderOptions {
    ReaderOptions {
        channel_capacity: capacity,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ReaderOptions::default()
    }
}

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(support::fixtures::fixtures().join(name)).unwrap()
}

async fn next(rx: &mut EventReceiver) -> Event {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no event within 10 s")
        .expect("source ended")
}

async fn tags(rx: &mut EventReceiver, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next(rx).await.tag().to_owned());
    }
    out
}

fn tags_of(jsonl: &str) -> Vec<String> {
    support::fixtures::expected(&support::fixtures::fixtures().join(jsonl))
        .into_iter()
        .map(|(t, _)| t)
        .collect()
}

async fn serve_unix_once(path: &Path, bytes: Vec<u8>) {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.write_all(&bytes).await.unwrap();
    conn.shutdown().await.unwrap();
    drop(listener);
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn ipc_waits_for_the_master_then_reconnects_with_a_gap_marker() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("master_event_pub.ipc");
    let (signal, shutdown) = ShutdownSignal::new();
    // The reader starts before the "master": it must wait, not fail.
    let mut src = source::spawn(SourceSpec::Ipc(sock.clone()), opts(1024), shutdown);
    tokio::time::sleep(Duration::from_millis(150)).await;

    serve_unix_once(&sock, capture("3008.4/a_test_ping.bin")).await;
    assert_eq!(
        tags(&mut src.events, 3).await,
        tags_of("3008.4/a_test_ping.jsonl")
    );

    // Master down for a while, then back with new traffic (3006 framing this time).
    let down = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    serve_unix_once(&sock, capture("3006.29/a_test_ping.bin")).await;
    let gap = next(&mut src.events).await;
    assert_eq!(gap.tag(), GAP_TAG);
    let secs = gap.data()["seconds"].as_f64().unwrap();
    assert!(
        secs >= 0.25 && secs <= down.elapsed().as_secs_f64() + 0.1,
        "gap of {secs} s"
    );
    assert_eq!(gap.data()["reason"], "eof");
    assert!(gap.data()["disconnected_at"].is_string() && gap.data()["reconnected_at"].is_string());
    let want = tags_of("3006.29/a_test_ping.jsonl");
    assert_eq!(tags(&mut src.events, want.len()).await, want);

    assert_eq!(SourceStats::get(&src.stats.gaps), 1);
    assert_eq!(SourceStats::get(&src.stats.connects), 2);
    signal.trigger();
    tokio::time::timeout(Duration::from_secs(5), src.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn tcp_source_reads_the_same_bytes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let mut src = source::spawn(SourceSpec::Tcp(addr.to_string()), opts(1024), shutdown);
    let (mut conn, _) = listener.accept().await.unwrap();
    conn.write_all(&capture("3008.4/g_ipc_mode_tcp.bin"))
        .await
        .unwrap();
    let want = tags_of("3008.4/g_ipc_mode_tcp.jsonl");
    assert_eq!(tags(&mut src.events, want.len()).await, want);
    signal.trigger();
}

#[tokio::test]
async fn a_stuck_consumer_never_stalls_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pub.ipc");
    let one = capture("3008.4/a_test_ping.bin");
    let rounds = 2_000;
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let capacity = 16;
    let mut src = source::spawn(SourceSpec::Ipc(sock.clone()), opts(capacity), shutdown);
    let (mut conn, _) = listener.accept().await.unwrap();
    // Nobody reads the channel while 6,000 events are written: the writes
    // must all complete, because the reader keeps draining the socket.
    let writer = async {
        for _ in 0..rounds {
            conn.write_all(&one).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("the reader stopped draining the socket");
    let total = 3 * rounds as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    while SourceStats::get(&src.stats.events) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(SourceStats::get(&src.stats.events), total);
    assert_eq!(
        SourceStats::get(&src.stats.dropped),
        total - capacity as u64
    );

    // Room again: the next event is preceded by an overflow marker with the count.
    let mut seen = Vec::new();
    while let Ok(ev) = src.events.try_recv() {
        seen.push(ev.tag().to_owned());
    }
    assert_eq!(seen.len(), capacity);
    conn.write_all(&one).await.unwrap();
    let marker = next(&mut src.events).await;
    assert_eq!(marker.tag(), OVERFLOW_TAG);
    assert_eq!(marker.data()["dropped"], total - capacity as u64);
    assert_eq!(next(&mut src.events).await.tag(), seen[0]);
    signal.trigger();
}

/// A peer that stops in the middle of a frame (Salt writes frames whole)
/// is dropped after `stall_timeout` and reconnected, with a gap marker; a
/// quiet bus between frames is not.
#[tokio::test]
async fn a_peer_stalled_mid_frame_is_dropped_and_reconnected() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let opts = ReaderOptions {
        stall_timeout: Duration::from_millis(300),
        ..opts(1024)
    };
    let mut src = source::spawn(SourceSpec::Tcp(addr.to_string()), opts, shutdown);
    let bytes = capture("3008.4/g_ipc_mode_tcp.bin");
    let want = tags_of("3008.4/g_ipc_mode_tcp.jsonl");

    // Whole frames, then a quiet second: nothing happens.
    let (mut first, _) = listener.accept().await.unwrap();
    first.write_all(&bytes).await.unwrap();
    assert_eq!(tags(&mut src.events, want.len()).await, want);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        SourceStats::get(&src.stats.connects),
        1,
        "a quiet bus is not a stall"
    );

    // Half a frame, then silence with the connection open: dropped.
    first.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
    let (mut second, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("no reconnect after a stall mid-frame")
        .unwrap();
    second.write_all(&bytes).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 1 + want.len() * 2 {
        let ev = next(&mut src.events).await;
        if ev.tag() == GAP_TAG {
            break;
        }
        seen.push(ev.tag().to_owned());
    }
    assert_eq!(SourceStats::get(&src.stats.connects), 2);
    assert_eq!(SourceStats::get(&src.stats.gaps), 1);
    drop(first);
    signal.trigger();
}
