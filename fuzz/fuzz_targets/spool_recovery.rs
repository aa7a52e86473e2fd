//! Fuzzes spool recovery: any bytes as a segment file (after a first,
//! valid segment), opened as after a crash. Opening must never panic or
//! fail on the content, every event read back must be one that was
//! written whole, and the valid segment before the damage must survive or
//! its loss be counted (an overlapping segment costs the records it
//! overlaps: `tests/spool_damage.rs`, found here with the input `\n`).
#![no_main]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use saltbridge::delivery::SinkStats;
use saltbridge::event::Event;
use saltbridge::sink::Outgoing;
use saltbridge::spool::{self, Fsync, SpoolSettings};

fn settings() -> SpoolSettings {
    SpoolSettings {
        fsync: Fsync::Never,
        segment_bytes: 1 << 20,
        ..SpoolSettings::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A valid first segment of 3 events.
    {
        let stats = Arc::new(SinkStats::default());
        let (mut w, _r) = spool::open(dir.path(), settings(), false, stats).unwrap();
        for n in 0..3 {
            let ev = Event::synthetic("t", serde_json::json!({ "n": n }), Arc::from("s"));
            w.append(&Outgoing::new(ev, "r")).unwrap();
        }
        w.close().unwrap();
    }
    // The fuzzer's bytes as the next segment, starting at a number the
    // first byte picks (a gap, an overlap or neither).
    let first = data.first().map_or(3, |b| u64::from(*b % 8));
    let name = format!("{:020}.seg", first.max(1));
    std::fs::write(dir.path().join(name), data).unwrap();
    let stats = Arc::new(SinkStats::default());
    let (w, mut r) = spool::open(dir.path(), settings(), false, stats.clone()).unwrap();
    w.close().unwrap();
    let seen: Vec<Outgoing> = rt.block_on(async {
        let mut out = Vec::new();
        while let Some(b) = r.next_batch(1000, 1 << 30, Duration::ZERO).await {
            out.extend(b.items.iter().cloned());
            b.settle();
        }
        out
    });
    for o in &seen {
        assert!(serde_json::from_str::<serde_json::Value>(o.event.data_json()).is_ok());
    }
    let first_three = seen
        .iter()
        .filter(|o| o.event.tag() == "t" && &*o.route == "r")
        .count();
    let lost = stats.corrupt_records.load(Ordering::Relaxed);
    assert!(
        first_three as u64 + lost >= 3,
        "the segment before the damage is read, or its loss counted"
    );
});
