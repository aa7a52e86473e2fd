//! Issue 12, finding 3 at full scale: 60 `salt/job/<jid>/new` announcements
//! listing 100,000 minions each (what any minion can fire) stay within the
//! tracker's byte budget. Prints the process's resident memory for the
//! record (`--nocapture`); asserts only the budget.

use std::sync::Arc;
use std::time::Instant;

use saltbridge::event::Event;
use saltbridge::jobs::{JobConfig, JobTracker};
use serde_json::json;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn sixty_huge_announcements_stay_within_the_budget() {
    let limits = JobConfig::default();
    let mut t = JobTracker::new(limits.clone());
    let t0 = Instant::now();
    let before = rss_kib();
    let ids: Vec<String> = (0..100_000)
        .map(|i| format!("minion-{i:08}.example"))
        .collect();
    let mut peak = 0;
    for jid in 0..60u64 {
        let jid = format!("2026120112000000{jid:04}");
        let ev = Event::synthetic(
            format!("salt/job/{jid}/new"),
            json!({"jid": jid, "fun": "test.ping", "arg": [], "tgt": "*", "tgt_type": "glob",
                   "user": "root", "minions": ids, "missing": []}),
            Arc::from("ipc:/test"),
        );
        t.push(&ev, t0);
        peak = peak.max(t.tracked_bytes());
        assert!(t.tracked_bytes() <= limits.max_tracked_bytes);
    }
    println!(
        "60 x 100,000 minions: open jobs {}, evicted {}, refused {}, tracked {} MiB (peak {} MiB), RSS {} -> {} MiB",
        t.open_jobs(),
        t.evicted(),
        t.refused_jobs(),
        t.tracked_bytes() >> 20,
        peak >> 20,
        before >> 10,
        rss_kib() >> 10
    );
}
