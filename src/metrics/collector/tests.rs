//! The exposition read back: names, labels and values as Prometheus sees them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::render;
use crate::metrics::scrape::{quantile, Scrape};
use crate::metrics::{Heartbeat, Observed, PipelineStats};
use crate::sink_stats::SinkStats;
use crate::source::SourceStats;

fn observed() -> Arc<Observed> {
    let source = Arc::new(SourceStats::default());
    source.events.store(120, Ordering::Relaxed);
    source.bytes.store(98_765, Ordering::Relaxed);
    source.malformed.store(2, Ordering::Relaxed);
    source.gaps.store(3, Ordering::Relaxed);
    source.gap_millis.store(4_500, Ordering::Relaxed);
    source.set_connected(true);
    let hook = Arc::new(SinkStats::default());
    hook.delivered.store(40, Ordering::Relaxed);
    hook.retries.store(5, Ordering::Relaxed);
    hook.queued.store(7, Ordering::Relaxed);
    hook.queued_bytes.store(7_000, Ordering::Relaxed);
    for secs in [0.001, 0.002, 0.003, 1.5] {
        hook.latency.observe(secs);
    }
    let kafka = Arc::new(SinkStats::default());
    kafka.dead_lettered.store(9, Ordering::Relaxed);
    kafka.overflowed.store(11, Ordering::Relaxed);
    let pipeline = Arc::new(PipelineStats::new(["returns", "starts"]));
    let heartbeat = Arc::new(Heartbeat::default());
    heartbeat.beat();
    Arc::new(Observed::new(
        ("tcp:127.0.0.1:4512".to_owned(), source),
        vec![("kafka".to_owned(), kafka), ("hook".to_owned(), hook)],
        pipeline,
        heartbeat,
    ))
}

fn scrape() -> (String, Scrape) {
    let text = render(&observed()).unwrap();
    let parsed = Scrape::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, parsed)
}

#[test]
fn source_counters_carry_the_source_label() {
    let (_, s) = scrape();
    let src = ("source", "tcp:127.0.0.1:4512");
    let get = |name: &str| s.get(name, src.0, src.1);
    assert_eq!(get("saltbridge_source_events_total"), Some(120.0));
    assert_eq!(get("saltbridge_source_bytes_total"), Some(98_765.0));
    assert_eq!(get("saltbridge_source_decode_errors_total"), Some(2.0));
    assert_eq!(get("saltbridge_source_dropped_total"), Some(0.0));
    assert_eq!(get("saltbridge_source_gaps_total"), Some(3.0));
    assert_eq!(get("saltbridge_source_gap_seconds_total"), Some(4.5));
    assert_eq!(get("saltbridge_source_connected"), Some(1.0));
}

#[test]
fn sink_counters_and_gauges_per_sink() {
    let (_, s) = scrape();
    let hook = |name: &str| s.get(name, "sink", "hook");
    let kafka = |name: &str| s.get(name, "sink", "kafka");
    assert_eq!(hook("saltbridge_sink_delivered_total"), Some(40.0));
    assert_eq!(hook("saltbridge_sink_retries_total"), Some(5.0));
    assert_eq!(hook("saltbridge_sink_queue_events"), Some(7.0));
    assert_eq!(hook("saltbridge_sink_queue_bytes"), Some(7_000.0));
    assert_eq!(kafka("saltbridge_sink_dead_letters_total"), Some(9.0));
    assert_eq!(kafka("saltbridge_sink_dropped_total"), Some(11.0));
    assert_eq!(kafka("saltbridge_sink_delivered_total"), Some(0.0));
    for name in [
        "saltbridge_sink_accepted_total",
        "saltbridge_sink_failures_total",
        "saltbridge_sink_undelivered_at_stop_total",
    ] {
        assert_eq!(s.by_label(name, "sink").len(), 2, "{name}");
    }
}

#[test]
fn latency_is_a_histogram_per_sink() {
    let (text, s) = scrape();
    assert!(text.contains("# TYPE saltbridge_delivery_latency_seconds histogram"));
    assert_eq!(
        s.get("saltbridge_delivery_latency_seconds_count", "sink", "hook"),
        Some(4.0)
    );
    let sum = s
        .get("saltbridge_delivery_latency_seconds_sum", "sink", "hook")
        .unwrap();
    assert!((sum - 1.506).abs() < 1e-9, "{sum}");
    let buckets = s.buckets("saltbridge_delivery_latency_seconds", "sink", "hook");
    assert_eq!(buckets.last(), Some(&(f64::INFINITY, 4.0)));
    // Three of four observations are at most 4 ms; the slowest 1.5 s.
    let p50 = quantile(&buckets, 0.5).unwrap();
    assert!(p50 > 0.0005 && p50 <= 0.004, "{p50}");
    let p99 = quantile(&buckets, 0.99).unwrap();
    assert!(p99 > 1.0 && p99 <= 2.1, "{p99}");
    let kafka = s.buckets("saltbridge_delivery_latency_seconds", "sink", "kafka");
    assert_eq!(quantile(&kafka, 0.5), None, "no observations");
}

#[test]
fn twins_and_routes_are_listed_before_they_count() {
    let (_, s) = scrape();
    let twins = s.by_label("saltbridge_twins_dropped_total", "kind");
    let kinds: Vec<&str> = twins.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "bare_jid_new",
            "bare_jid_ret",
            "cluster_peer",
            "minion_start",
            "new_job",
            "other_master",
            "state_failure",
            "syndic"
        ]
    );
    assert!(twins.values().all(|n| *n == 0.0));
    let routes = s.by_label("saltbridge_route_matches_total", "route");
    assert_eq!(routes.keys().collect::<Vec<_>>(), ["returns", "starts"]);
    assert_eq!(s.single("saltbridge_events_unmatched_total"), Some(0.0));
}

#[test]
fn process_metrics_and_types() {
    let (text, s) = scrape();
    assert_eq!(
        s.get(
            "saltbridge_build_info",
            "version",
            env!("CARGO_PKG_VERSION")
        ),
        Some(1.0)
    );
    assert_eq!(s.single("saltbridge_up"), Some(1.0));
    let started = s.single("saltbridge_process_start_time_seconds").unwrap();
    assert!(started > 1.6e9, "{started}");
    assert!(
        s.single("saltbridge_main_loop_heartbeat_age_seconds")
            .unwrap()
            < 10.0
    );
    assert!(text.contains("# TYPE saltbridge_source_events_total counter"));
    assert!(text.contains("# TYPE saltbridge_sink_queue_events gauge"));
    // Every sample belongs to a family declared with # TYPE.
    for sample in &s.samples {
        let declared = ["", "_bucket", "_sum", "_count"].iter().any(|suffix| {
            sample
                .name
                .strip_suffix(suffix)
                .is_some_and(|base| text.contains(&format!("# TYPE {base} ")))
        });
        assert!(declared, "{} has no # TYPE line", sample.name);
    }
}
