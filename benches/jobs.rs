//! What the job tracker costs: events/s through the whole pipeline (twins,
//! job tracker, routes) with `jobs.enabled` on and off, measured in the same
//! run (off is the baseline). The input is 50 jobs on 200 minions each:
//! `salt/job/<jid>/new`, 200 returns (a quarter of them failed), one
//! summary per job. Two route tables: glob routes only (the data of a
//! return is never parsed without the tracker), and glob routes plus a
//! `where` over every return (parsed either way).
//!
//! `cargo bench --bench jobs`

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use saltbridge::config::load_str;
use saltbridge::event::{Event, JsonText};
use saltbridge::pipeline::{Outcome, Pipeline};
use serde_json::json;

const JOBS: usize = 50;
const MINIONS: usize = 200;

fn events() -> Vec<(String, JsonText)> {
    let minions: Vec<String> = (0..MINIONS).map(|m| format!("web-{m:05}")).collect();
    let mut out = Vec::new();
    for j in 0..JOBS {
        let jid = format!("2026112613564696{j:04}");
        let new = json!({"jid": jid, "tgt_type": "glob", "tgt": "web-*", "user": "root",
            "fun": "cmd.run", "arg": ["uptime"], "minions": minions, "missing": [],
            "_stamp": "2026-11-26T13:56:46.966284+00:00"});
        out.push((format!("salt/job/{jid}/new"), JsonText::from(&new)));
        for (m, id) in minions.iter().enumerate() {
            let ret = json!({"cmd": "_return", "id": id, "success": m % 4 != 0,
                "return": " 13:56:47 up 3 days,  2:04,  0 users,  load average: 0.10, 0.12, 0.09",
                "retcode": if m % 4 == 0 { 1 } else { 0 }, "jid": jid, "fun": "cmd.run",
                "fun_args": ["uptime"], "user": "root",
                "_stamp": "2026-11-26T13:56:47.121718+00:00"});
            out.push((format!("salt/job/{jid}/ret/{id}"), JsonText::from(&ret)));
        }
    }
    out
}

/// The routes: every return to Kafka, failed summaries to chat, and
/// (`PER_RETURN`) the per-return chat route of the example routes.yaml,
/// whose `where` parses every return's data anyway.
const ROUTES: &str = "jobs: {enabled: ENABLED}\nsinks:\n  kafka: {type: kafka, topic: t}\n  chat: {type: webhook, url: 'http://x'}\nroutes:\n  - name: returns\n    match: {tag: 'salt/job/*/ret/*'}\n    to: [kafka]\n    continue: true\nPER_RETURN  - name: failed-summaries\n    match: {tag: 'saltbridge/job/*/summary', where: {success: false}}\n    to: [chat]\n";
const PER_RETURN: &str = "  - name: failed-returns\n    match: {tag: 'salt/job/*/ret/*', where: {any: [{retcode: {gt: 0}}, {success: false}]}}\n    to: [chat]\n";

fn bench(c: &mut Criterion) {
    let evs = events();
    let mut g = c.benchmark_group("pipeline with job tracker");
    g.throughput(Throughput::Elements(evs.len() as u64));
    let source: Arc<str> = Arc::from("bench");
    for (per_return, enabled) in [(false, false), (false, true), (true, false), (true, true)] {
        let yaml = ROUTES
            .replace("ENABLED", &enabled.to_string())
            .replace("PER_RETURN", if per_return { PER_RETURN } else { "" });
        let name = if per_return {
            "glob and where routes"
        } else {
            "glob routes"
        };
        g.bench_function(format!("{name}, jobs.enabled: {enabled}"), |b| {
            b.iter(|| {
                let table = load_str(Path::new("bench.yaml"), &yaml, |_| None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut p = Pipeline::new(table, false);
                let now = Instant::now();
                let mut summaries = 0;
                for (tag, data) in &evs {
                    let ev = Event::new(
                        tag.clone(),
                        data.clone(),
                        SystemTime::UNIX_EPOCH,
                        source.clone(),
                        None,
                    );
                    for o in p.push(black_box(ev), now) {
                        if let Outcome::Routed { event, .. } = o {
                            summaries += usize::from(event.is_own());
                        }
                    }
                }
                assert_eq!(summaries, if enabled { JOBS } else { 0 });
                black_box(summaries)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
