//! Routing cost as the table grows: events/s through `RouteTable::route`
//! with 10, 1,000 and 10,000 routes, measured in the same run (the 10-route
//! table is the baseline). Target: 10,000 routes keep at least half the
//! throughput of 10.
//!
//! `cargo bench --bench routes`

mod support;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use saltbridge::config::load_str;
use saltbridge::decode::{decode_all, Decoded};
use saltbridge::event::{Event, JsonText};
use serde_json::json;

/// A routes file with `n` routes of the kinds people write: per-minion tag
/// globs, per-application prefixes with a `where`, a few regexes, and a
/// catch-all for job returns at the end.
fn routes_yaml(n: usize) -> String {
    let mut y = String::from("sinks:\n  kafka: {type: kafka, topic: t}\n  chat: {type: webhook, url: 'http://x'}\nroutes:\n");
    for k in 0..n.saturating_sub(1) {
        match k % 10 {
            0..=4 => y += &format!("  - name: r{k}\n    match: {{tag: 'salt/job/*/ret/web-{k:05}', where: {{retcode: {{gt: 0}}}}}}\n    to: [chat]\n"),
            5..=8 => y += &format!("  - name: r{k}\n    match: {{tag: 'app{k}/*', where: {{fun: state.apply}}}}\n    to: [kafka]\n"),
            _ => y += &format!("  - name: r{k}\n    match: {{tag_regex: '^salt/beacon/host{k}/'}}\n    to: [kafka]\n"),
        }
    }
    y += "  - name: all-returns\n    match: {tag: 'salt/job/*/ret/*'}\n    to: [kafka]\n";
    y
}

/// Real capture events plus returns from 200 minions, half of them failed.
fn events() -> Vec<(String, JsonText)> {
    let mut out = Vec::new();
    for item in decode_all(&support::captures_stream(), Arc::from("bench")) {
        if let Decoded::Event(ev) = item {
            out.push((ev.tag().to_owned(), JsonText::from(ev.data())));
        }
    }
    for m in 0..200 {
        let data = json!({"cmd": "_return", "id": format!("web-{m:05}"), "fun": "state.apply", "retcode": m % 2, "success": m % 2 == 0, "jid": "20261126135646965819"});
        out.push((
            format!("salt/job/20261126135646965819/ret/web-{m:05}"),
            JsonText::from(&data),
        ));
    }
    out
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let mut g = c.benchmark_group("route events");
    g.throughput(Throughput::Elements(evs.len() as u64));
    for n in [10, 1_000, 10_000] {
        let yaml = routes_yaml(n);
        let t = Instant::now();
        let mut table = load_str(Path::new("bench.yaml"), &yaml, |_| None)
            .unwrap_or_else(|e| panic!("{e}"))
            .routes;
        eprintln!(
            "{n} routes: compiled in {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let source: Arc<str> = Arc::from("bench");
        g.bench_function(format!("{n} routes"), |b| {
            b.iter(|| {
                let now = Instant::now();
                let mut sinks = 0;
                for (tag, data) in &evs {
                    let ev = Event::new(
                        tag.clone(),
                        data.clone(),
                        SystemTime::UNIX_EPOCH,
                        source.clone(),
                        None,
                    );
                    sinks += table.route(black_box(&ev), now, false).sinks.len();
                }
                black_box(sinks)
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
