//! Issue 12, finding 4: a damaged spool costs the damaged records only, and
//! every loss is counted (`saltbridge_spool_corrupt_records_total`), never
//! silent. Real files in a temporary directory, reopened as after a restart.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use saltbridge::delivery::SinkStats;
use saltbridge::event::Event;
use saltbridge::sink::Outgoing;
use saltbridge::spool::{self, Fsync, SpoolReader, SpoolSettings};
use serde_json::json;

fn settings(segment_bytes: u64) -> SpoolSettings {
    SpoolSettings {
        segment_bytes,
        fsync: Fsync::Never,
        ..SpoolSettings::default()
    }
}

/// Event number `n`, as spooled for route `r`.
fn numbered(n: u64) -> Outgoing {
    let ev = Event::synthetic(
        "t/x",
        json!({"n": n, "pad": "x".repeat(40)}),
        Arc::from("s"),
    );
    Outgoing::new(ev, "r")
}

/// Spools events `0..n` and stops cleanly; returns the segment files.
async fn fill(dir: &Path, n: u64, segment_bytes: u64) -> Vec<PathBuf> {
    let stats = Arc::new(SinkStats::default());
    let (mut w, r) = spool::open(dir, settings(segment_bytes), false, stats).unwrap();
    for i in 0..n {
        w.append(&numbered(i)).unwrap();
    }
    w.close().unwrap();
    drop(r);
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Reopens the spool and reads everything: the event numbers and the stats.
async fn reopen(dir: &Path, segment_bytes: u64) -> (Vec<u64>, Arc<SinkStats>) {
    let stats = Arc::new(SinkStats::default());
    let (w, mut r) = spool::open(dir, settings(segment_bytes), false, stats.clone()).unwrap();
    w.close().unwrap();
    let seen = read_all(&mut r).await;
    r.checkpoint();
    (seen, stats)
}

/// Reads and settles everything (the writer is closed): the event numbers.
async fn read_all(r: &mut SpoolReader) -> Vec<u64> {
    let mut seen = Vec::new();
    while let Some(b) = r.next_batch(1000, 1 << 20, Duration::ZERO).await {
        seen.extend(
            b.items
                .iter()
                .map(|o| o.event.data()["n"].as_u64().unwrap()),
        );
        b.settle();
    }
    seen
}

#[tokio::test]
async fn one_flipped_byte_costs_one_record_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 1000, 64 << 20).await;
    assert_eq!(segs.len(), 1);
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&segs[0], &bytes).unwrap();
    let (seen, stats) = reopen(dir.path(), 64 << 20).await;
    assert_eq!(
        seen.len(),
        999,
        "one record lost, not the rest of the segment"
    );
    assert_eq!(stats.corrupt_records.load(Ordering::Relaxed), 1);
    // Reported once: the segment was repaired, a second start finds nothing new.
    let (again, stats) = reopen(dir.path(), 64 << 20).await;
    assert!(again.is_empty(), "everything was settled");
    assert_eq!(stats.corrupt_records.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_damaged_length_costs_what_the_next_segment_says_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 600, 16 << 10).await;
    assert!(segs.len() >= 3, "{segs:?}");
    // Smash the length field of the first record of the first segment.
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    bytes[2] ^= 0xff;
    std::fs::write(&segs[0], &bytes).unwrap();
    let (seen, stats) = reopen(dir.path(), 16 << 10).await;
    assert_eq!(seen.len(), 599);
    assert!(!seen.contains(&0));
    assert_eq!(stats.corrupt_records.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_missing_middle_segment_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 600, 16 << 10).await;
    assert!(segs.len() >= 3, "{segs:?}");
    let first_of =
        |p: &PathBuf| -> u64 { p.file_stem().unwrap().to_str().unwrap().parse().unwrap() };
    let lost = first_of(&segs[2]) - first_of(&segs[1]);
    std::fs::remove_file(&segs[1]).unwrap();
    let (seen, stats) = reopen(dir.path(), 16 << 10).await;
    assert_eq!(seen.len() as u64, 600 - lost);
    assert_eq!(stats.corrupt_records.load(Ordering::Relaxed), lost);
}

#[tokio::test]
async fn a_torn_tail_is_cut_without_counting_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let segs = fill(dir.path(), 100, 64 << 20).await;
    let len = std::fs::metadata(&segs[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segs[0])
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (seen, stats) = reopen(dir.path(), 64 << 20).await;
    assert_eq!(seen, (0..99).collect::<Vec<_>>());
    assert_eq!(stats.corrupt_records.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_ack_beyond_the_end_does_not_swallow_new_events() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 10, 64 << 20).await;
    std::fs::write(dir.path().join("ack"), "500\n").unwrap();
    let stats = Arc::new(SinkStats::default());
    let (mut w, mut r) = spool::open(dir.path(), settings(64 << 20), false, stats).unwrap();
    w.append(&numbered(1000)).unwrap();
    w.close().unwrap();
    let seen = read_all(&mut r).await;
    assert_eq!(
        seen,
        vec![1000],
        "the new event is delivered, not numbered below the ack"
    );
}

/// Found by the `spool_recovery` fuzz target (input `\n`): a one-byte
/// segment named `2` behind a segment of records 0, 1 and 2 (an overlap).
/// The loss is counted, never silent.
#[tokio::test]
async fn an_overlapping_torn_segment_costs_only_what_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 3, 64 << 20).await;
    std::fs::write(dir.path().join(format!("{:020}.seg", 2)), b"\n").unwrap();
    let (seen, stats) = reopen(dir.path(), 64 << 20).await;
    let lost = stats.corrupt_records.load(Ordering::Relaxed);
    assert_eq!(seen.len() as u64 + lost, 3, "seen {seen:?}, lost {lost}");
}
