//! Issue 12, finding 3 at full scale: 60 `salt/job/<jid>/new` announcements
//! listing 100,000 minions each (what any minion can fire) stay within the
//! tracker's byte budget, and the tracker's estimate of a minion's cost is
//! no lower than what it really costs in resident memory, so the budget
//! bounds the process. Prints the figures (`--nocapture`).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use saltbridge::event::Event;
use saltbridge::jobs::{JobConfig, JobTracker};
use serde_json::json;

/// Resident memory now.
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// The most resident memory so far.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs the ignored test `name` alone in a new process of this binary, so
/// that the RSS it measures is its own (freed memory of another test would
/// hide growth), and prints what it printed.
fn alone(name: &str) {
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let figures: Vec<&str> = stdout.lines().filter(|l| l.contains("minions")).collect();
    println!("{}", figures.join("\n"));
    assert!(
        out.status.success() && !figures.is_empty(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_estimate_covers_what_a_tracked_minion_really_costs() {
    alone("measure_minion_cost");
}

#[test]
fn sixty_huge_announcements_stay_within_the_budget() {
    alone("measure_sixty_announcements");
}

fn ids() -> Vec<String> {
    (0..100_000)
        .map(|i| format!("minion-{i:08}.example"))
        .collect()
}

fn announcement(jid: u64, ids: &[String]) -> Event {
    let jid = format!("2026120112000000{jid:04}");
    Event::synthetic(
        format!("salt/job/{jid}/new"),
        json!({"jid": jid, "fun": "test.ping", "arg": [], "tgt": "*", "tgt_type": "glob",
               "user": "root", "minions": ids, "missing": []}),
        Arc::from("ipc:/test"),
    )
}

#[test]
#[ignore = "run alone by the_estimate_covers_what_a_tracked_minion_really_costs"]
fn measure_minion_cost() {
    let unbounded = JobConfig {
        max_job_bytes: 4 << 30,
        max_tracked_bytes: 4 << 30,
        ..JobConfig::default()
    };
    let mut t = JobTracker::new(unbounded);
    let ids = ids();
    let jobs = 8;
    let before = rss_kib() << 10;
    for jid in 0..jobs {
        t.push(&announcement(jid, &ids), Instant::now());
    }
    let live = (rss_kib() << 10).saturating_sub(before) as usize;
    let tracked = t.tracked_bytes();
    assert_eq!(t.open_jobs(), jobs as usize);
    // Closing a job builds its summary (every minion listed) while the job
    // is still held: the peak a job costs, all of them closing at once.
    let summaries = t.flush();
    let closing = (rss_kib() << 10).saturating_sub(before) as usize;
    assert_eq!(summaries.len(), jobs as usize);
    drop(summaries);
    let minions = jobs as usize * ids.len();
    println!(
        "{jobs} x 100,000 minions, nothing evicted: RSS grew {} MiB while open ({} B per minion), {} MiB with every summary built ({} B per minion); estimated {} MiB ({} B per minion)",
        live >> 20,
        live / minions,
        closing >> 20,
        closing / minions,
        tracked >> 20,
        tracked / minions,
    );
    assert!(
        closing <= tracked,
        "the estimate ({tracked} B) is below the real cost ({closing} B)"
    );
}

#[test]
#[ignore = "run alone by sixty_huge_announcements_stay_within_the_budget"]
fn measure_sixty_announcements() {
    let limits = JobConfig::default();
    let mut t = JobTracker::new(limits.clone());
    let t0 = Instant::now();
    let ids = ids();
    let before = rss_kib();
    let mut peak = 0;
    for jid in 0..60u64 {
        // The summaries of the jobs evicted go on down the pipeline.
        drop(t.push(&announcement(jid, &ids), t0));
        peak = peak.max(t.tracked_bytes());
        assert!(t.tracked_bytes() <= limits.max_tracked_bytes);
    }
    let grown = (peak_rss_kib() - before) << 10;
    println!(
        "60 x 100,000 minions: open jobs {}, evicted {}, refused {}, tracked {} MiB (peak {} MiB), RSS {} -> {} MiB, peak RSS growth {} MiB",
        t.open_jobs(),
        t.evicted(),
        t.refused_jobs(),
        t.tracked_bytes() >> 20,
        peak >> 20,
        before >> 10,
        rss_kib() >> 10,
        grown >> 20,
    );
    assert!(
        grown as usize <= limits.max_tracked_bytes,
        "the process grew past the tracker's budget"
    );
}
