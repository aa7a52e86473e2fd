//! The spool against real files: order, settling, restarts, torn tails,
//! the disk bound and its two policies, the lock, and the inbox.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::event::Event;
use crate::outgoing::Outgoing;

fn ev(n: usize) -> Outgoing {
    Outgoing::new(
        Event::synthetic(
            format!("t/{n}"),
            json!({"n": n, "pad": "x".repeat(100)}),
            Arc::from("test"),
        ),
        "r",
    )
}

fn small(max_bytes: u64, when_full: WhenFull) -> SpoolSettings {
    SpoolSettings {
        max_bytes,
        segment_bytes: 1024,
        when_full,
        fsync: Fsync::Never,
    }
}

fn tags(b: &Batch) -> Vec<String> {
    b.items.iter().map(|o| o.event.tag().to_owned()).collect()
}

async fn next(r: &mut SpoolReader, n: usize) -> Batch {
    tokio::time::timeout(
        Duration::from_secs(5),
        r.next_batch(n, usize::MAX, Duration::ZERO),
    )
    .await
    .expect("a batch in time")
    .expect("a batch")
}

#[tokio::test]
async fn events_come_out_in_order_across_segments_and_settled_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SinkStats::default());
    let (mut w, mut r) = open(
        dir.path(),
        small(1 << 20, WhenFull::DropNewest),
        false,
        stats.clone(),
    )
    .unwrap();
    for i in 0..100 {
        w.append(&ev(i)).unwrap();
    }
    w.flush().unwrap();
    assert!(
        segment::list(dir.path()).unwrap().len() > 5,
        "1 KiB segments roll"
    );
    assert_eq!(stats.queued.load(Ordering::Relaxed), 100);
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let b = next(&mut r, 7).await;
        seen.extend(tags(&b));
        b.settle();
    }
    let want: Vec<String> = (0..100).map(|i| format!("t/{i}")).collect();
    assert_eq!(seen, want);
    assert_eq!(stats.queued.load(Ordering::Relaxed), 0);
    assert_eq!(
        segment::list(dir.path()).unwrap().len(),
        1,
        "only the segment being written is kept"
    );
}

#[tokio::test]
async fn a_restart_resends_what_was_not_settled_with_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<String> = (0..10).map(|i| ev(i).key().to_owned()).collect();
    {
        let (mut w, mut r) = open(
            dir.path(),
            small(1 << 20, WhenFull::DropNewest),
            false,
            Arc::default(),
        )
        .unwrap();
        for i in 0..10 {
            w.append(&ev(i)).unwrap();
        }
        w.flush().unwrap();
        next(&mut r, 4).await.settle();
        let _in_flight = next(&mut r, 3).await; // never settled: as if killed mid-send
        r.checkpoint();
    }
    let (_w, mut r) = open(
        dir.path(),
        small(1 << 20, WhenFull::DropNewest),
        false,
        Arc::default(),
    )
    .unwrap();
    let b = next(&mut r, 100).await;
    let got: Vec<&str> = b.items.iter().map(|o| o.key()).collect();
    assert_eq!(
        got,
        keys[4..].iter().map(|k| k.as_str()).collect::<Vec<_>>()
    );
}

/// Bytes of event data in the spool's segment files.
fn segment_bytes(dir: &std::path::Path) -> u64 {
    let files = segment::list(dir).unwrap();
    files.iter().map(|(_, p)| p.metadata().unwrap().len()).sum()
}

#[tokio::test]
async fn a_delivered_last_segment_leaves_the_disk_once_the_writer_is_idle() {
    let dir = tempfile::tempdir().unwrap();
    let settings = || small(1 << 20, WhenFull::DropNewest);
    {
        let (mut w, mut r) = open(dir.path(), settings(), false, Arc::default()).unwrap();
        for i in 0..5 {
            w.append(&ev(i)).unwrap();
        }
        w.flush().unwrap();
        let b = next(&mut r, 100).await;
        w.checkpoint();
        w.checkpoint();
        assert!(segment_bytes(dir.path()) > 0, "an unsettled batch is kept");
        b.settle();
        w.checkpoint(); // settled, and nothing appended since the last checkpoint
        assert_eq!(
            segment_bytes(dir.path()),
            0,
            "no delivered event data on disk"
        );
        assert_eq!(segment::list(dir.path()).unwrap().len(), 1);
        // Writing and reading go on where they were; a writer busy in the
        // last period keeps its segment one period more.
        w.append(&ev(5)).unwrap();
        w.flush().unwrap();
        let b = next(&mut r, 100).await;
        assert_eq!(tags(&b), ["t/5"]);
        b.settle();
        w.checkpoint();
        assert!(segment_bytes(dir.path()) > 0, "appended in this period");
        w.checkpoint();
        assert_eq!(segment_bytes(dir.path()), 0);
        // An unsettled event is never let go of.
        w.append(&ev(6)).unwrap();
        w.flush().unwrap();
        let _in_flight = next(&mut r, 100).await;
        w.checkpoint();
        w.checkpoint();
        assert!(segment_bytes(dir.path()) > 0);
        w.close().unwrap();
    }
    // A restart sends again only what was not settled.
    let (mut w, mut r) = open(dir.path(), settings(), false, Arc::default()).unwrap();
    assert_eq!(tags(&next(&mut r, 100).await), ["t/6"]);
    w.append(&ev(7)).unwrap();
    w.flush().unwrap();
    assert_eq!(tags(&next(&mut r, 100).await), ["t/7"]);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut w, _r) = open(
            dir.path(),
            small(1 << 20, WhenFull::DropNewest),
            false,
            Arc::default(),
        )
        .unwrap();
        for i in 0..3 {
            w.append(&ev(i)).unwrap();
        }
        w.flush().unwrap();
    }
    let (_, last) = segment::list(dir.path()).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&last, bytes).unwrap();
    let (mut w, mut r) = open(
        dir.path(),
        small(1 << 20, WhenFull::DropNewest),
        false,
        Arc::default(),
    )
    .unwrap();
    w.append(&ev(3)).unwrap();
    w.flush().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.extend(tags(&next(&mut r, 10).await));
    }
    assert_eq!(
        seen,
        ["t/0", "t/1", "t/3"],
        "the torn t/2 is gone, the rest reads"
    );
}

#[tokio::test]
async fn drop_newest_refuses_and_counts_at_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SinkStats::default());
    let (mut w, mut r) = open(
        dir.path(),
        small(4096, WhenFull::DropNewest),
        false,
        stats.clone(),
    )
    .unwrap();
    let mut ok = 0;
    for i in 0..100 {
        if w.append(&ev(i)).is_ok() {
            ok += 1;
        }
    }
    w.flush().unwrap();
    assert!(ok > 10 && ok < 40, "{ok} accepted");
    assert_eq!(stats.overflowed.load(Ordering::Relaxed), 100 - ok);
    let mut seen = Vec::new();
    while seen.len() < ok as usize {
        let b = next(&mut r, 100).await;
        seen.extend(tags(&b));
        b.settle();
    }
    assert_eq!(seen[0], "t/0", "the oldest are kept");
    let du: u64 = segment::list(dir.path())
        .unwrap()
        .iter()
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(du <= 4096);
    w.append(&ev(1000)).unwrap();
}

#[tokio::test]
async fn drop_oldest_deletes_the_oldest_segment_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SinkStats::default());
    let (mut w, mut r) = open(
        dir.path(),
        small(4096, WhenFull::DropOldest),
        false,
        stats.clone(),
    )
    .unwrap();
    for i in 0..100 {
        w.append(&ev(i)).unwrap();
    }
    w.flush().unwrap();
    let dropped = stats.overflowed.load(Ordering::Relaxed);
    assert!(dropped > 50, "{dropped}");
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("t/99") {
        let b = next(&mut r, 100).await;
        seen.extend(tags(&b));
        b.settle();
    }
    assert_eq!(
        seen.len() as u64,
        100 - dropped,
        "every event is either read or counted"
    );
    assert_ne!(seen[0], "t/0", "the oldest went");
}

#[tokio::test]
async fn a_second_saltbridge_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path(), SpoolSettings::default(), false, Arc::default()).unwrap();
    let e = open(dir.path(), SpoolSettings::default(), false, Arc::default())
        .err()
        .unwrap();
    assert!(matches!(e, SpoolError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("in use by another saltbridge"));
}

#[tokio::test]
async fn the_reader_ends_after_the_writer_closes_and_all_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = open(dir.path(), SpoolSettings::default(), false, Arc::default()).unwrap();
    w.append(&ev(1)).unwrap();
    w.close().unwrap();
    assert_eq!(tags(&next(&mut r, 10).await), ["t/1"]);
    assert!(r.next_batch(10, usize::MAX, Duration::ZERO).await.is_none());
}

#[tokio::test]
async fn replayed_dead_letters_come_in_through_the_inbox_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let o = ev(5);
    let mut line = Vec::new();
    line.extend_from_slice(b"{\"time\":\"x\",\"sink\":\"s\",\"route\":\"r9\",\"status\":500,\"error\":\"e\",\"key\":\"k\",\"event\":");
    o.event.write_json(&mut line);
    line.extend_from_slice(b"}");
    let line = String::from_utf8(line).unwrap();
    inbox::deliver(dir.path(), &[line.clone(), line]).unwrap();
    let (mut w, mut r) = open(dir.path(), SpoolSettings::default(), false, Arc::default()).unwrap();
    assert_eq!(inbox::import(&mut w), 2);
    assert_eq!(inbox::import(&mut w), 0, "imported once");
    let b = next(&mut r, 10).await;
    assert_eq!(b.items.len(), 2);
    assert_eq!(b.items[0].key(), o.key());
    assert_eq!(&*b.items[0].route, "r9");
}
