//! Issue 12, finding 5: an event is `accepted` only once its record is
//! written; a write that fails (a full disk) is a counted drop, and what
//! was counted as accepted is what a restart finds on disk. The disk is
//! "full" through RLIMIT_FSIZE (writes past it fail with EFBIG, as ENOSPC
//! would), so this file holds one test: the limit is per process.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use saltbridge::delivery::SinkStats;
use saltbridge::event::Event;
use saltbridge::sink::Outgoing;
use saltbridge::spool::{self, Fsync, SpoolSettings};
use serde_json::json;

fn settings() -> SpoolSettings {
    SpoolSettings {
        fsync: Fsync::Never,
        ..SpoolSettings::default()
    }
}

fn set_file_size_limit(bytes: Option<u64>) {
    // SAFETY: plain libc calls with valid arguments; SIGXFSZ is ignored so
    // that a write past the limit fails with EFBIG instead of killing us.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = bytes.map_or(lim.rlim_max, |b| b as libc::rlim_t);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

#[tokio::test]
async fn a_failed_write_is_a_counted_drop_and_accepted_means_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(SinkStats::default());
    let (mut w, r) = spool::open(dir.path(), settings(), false, stats.clone()).unwrap();
    set_file_size_limit(Some(64 << 10));
    let mut failed_flushes = 0;
    for i in 0..2000u64 {
        let ev = Event::synthetic(
            "t/x",
            json!({"n": i, "pad": "x".repeat(60)}),
            Arc::from("s"),
        );
        w.append(&Outgoing::new(ev, "r")).unwrap();
        if i % 100 == 99 && w.flush().is_err() {
            failed_flushes += 1;
        }
    }
    set_file_size_limit(None);
    let accepted = stats.accepted.load(Ordering::Relaxed);
    let dropped = stats.overflowed.load(Ordering::Relaxed);
    assert!(failed_flushes > 0 && dropped > 0, "the disk never filled");
    assert_eq!(
        accepted + dropped,
        2000,
        "every event is accepted or dropped, once"
    );
    // As after kill -9: nothing is closed, the next start reads the files.
    drop(w);
    drop(r);
    let stats2 = Arc::new(SinkStats::default());
    let (w, mut r) = spool::open(dir.path(), settings(), false, stats2.clone()).unwrap();
    w.close().unwrap();
    let mut seen = Vec::new();
    while let Some(b) = r.next_batch(5000, 64 << 20, Duration::ZERO).await {
        seen.extend(
            b.items
                .iter()
                .map(|o| o.event.data()["n"].as_u64().unwrap()),
        );
        b.settle();
    }
    assert_eq!(seen.len() as u64, accepted, "accepted is what is on disk");
    assert!(seen.windows(2).all(|p| p[0] < p[1]));
    assert_eq!(
        stats2.corrupt_records.load(Ordering::Relaxed),
        0,
        "no half-written record was left"
    );
}
