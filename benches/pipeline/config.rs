//! The routes files the bench runs `saltbridge run` with.
//!
//! `n` routes lead to the measured sink, of the kinds a real file has: tag
//! globs with a literal suffix (one per minion), globs with a literal
//! prefix (other applications' tags), exact tags, and last the route that
//! matches, a `salt/job/*/ret/*` glob with a `where` predicate, so routing
//! parses the data as a real filter does. A first route sends the bench's
//! sentinel to the loopback receiver, which marks the end of a backlog.
//! `extra` is YAML appended at the top level (e.g. a `spool:` section).

use std::fmt::Write;

use super::loadgen::SENTINEL_TAG;

/// Where the measured events go.
pub enum Target<'a> {
    Blackhole,
    Webhook { url: &'a str, batch: bool },
    Kafka { brokers: &'a str, topic: &'a str },
}

/// The name of the measured sink in every generated file.
pub const SINK: &str = "measured";

pub fn routes_yaml(n: usize, target: &Target, sentinel_url: &str, extra: &str) -> String {
    assert!(n >= 1, "at least the matching route");
    let sink = match target {
        Target::Blackhole => "{type: blackhole}".to_owned(),
        Target::Webhook { url, batch } => {
            let batch = if *batch {
                ", batch: {max_events: 500, max_wait: 5ms}"
            } else {
                ""
            };
            format!(
                "{{type: webhook, url: \"{url}\", concurrency: 8{batch}, \
                 retry: {{initial: 50ms, max: 1s, give_up_after: 10m}}}}"
            )
        }
        Target::Kafka { brokers, topic } => {
            format!("{{type: kafka, brokers: \"{brokers}\", topic: {topic}}}")
        }
    };
    let mut y = String::new();
    let _ = writeln!(y, "sinks:\n  {SINK}: {sink}");
    let _ = writeln!(
        y,
        "  sentinel: {{type: webhook, url: \"{sentinel_url}\"}}\nroutes:"
    );
    let _ = writeln!(
        y,
        "  - {{name: sentinel, match: {{tag: \"{SENTINEL_TAG}\"}}, to: [sentinel]}}"
    );
    for i in 0..n - 1 {
        let tag = match i % 3 {
            0 => format!("salt/job/*/ret/minion-{i:05}.example.com"),
            1 => format!("app{i}/deploy/*"),
            _ => format!("salt/minion/minion-{i:05}/start"),
        };
        let _ = writeln!(
            y,
            "  - {{name: r{i}, match: {{tag: \"{tag}\"}}, to: [{SINK}]}}"
        );
    }
    let _ = writeln!(
        y,
        "  - {{name: returns, match: {{tag: \"salt/job/*/ret/*\", where: {{success: true}}}}, to: [{SINK}]}}"
    );
    y.push_str("unmatched: drop\n");
    y.push_str(extra);
    y
}
