//! What `saltbridge status` shows: a scrape of `/metrics` grouped for a
//! person (source, sinks, jobs, routes, twins), as a table or as JSON.
//!
//! It is built from the same text Prometheus reads, so `status` can never
//! disagree with the dashboards; latency percentiles are estimated from the
//! histogram buckets (see [`super::scrape::quantile`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::scrape::{quantile, Scrape};

#[derive(Debug, Serialize)]
pub struct Summary {
    pub version: Option<String>,
    pub uptime_seconds: Option<f64>,
    pub sources: Vec<SourceSummary>,
    pub sinks: Vec<SinkSummary>,
    pub jobs: JobsSummary,
    pub routes: Vec<RouteSummary>,
    pub unmatched: u64,
    pub twins_dropped: BTreeMap<String, u64>,
    pub noise_dropped: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct SourceSummary {
    pub source: String,
    pub connected: bool,
    pub events: u64,
    pub bytes: u64,
    pub decode_errors: u64,
    pub dropped: u64,
    pub gaps: u64,
    pub gap_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct SinkSummary {
    pub sink: String,
    pub queue_events: u64,
    pub queue_bytes: u64,
    pub accepted: u64,
    pub delivered: u64,
    pub retries: u64,
    pub failures: u64,
    pub dead_letters: u64,
    pub dropped: u64,
    pub corrupt_records: u64,
    /// Estimated from the latency histogram; None before the first delivery.
    pub latency_p50_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
}

/// The job tracker's counters (`saltbridge_jobs_*`).
#[derive(Debug, Serialize)]
pub struct JobsSummary {
    pub open: u64,
    pub tracked_bytes: u64,
    pub summarised: u64,
    pub evicted: u64,
    pub refused: u64,
    pub refused_minions: u64,
    pub minion_fired: u64,
}

#[derive(Debug, Serialize)]
pub struct RouteSummary {
    pub route: String,
    pub matches: u64,
    pub deduplicated: u64,
}

/// Counters are whole numbers; a float in the text is rounded.
fn whole(v: Option<f64>) -> u64 {
    v.map_or(0, |v| v.max(0.0).round() as u64)
}

/// One summary per source, from its `saltbridge_source_*` series.
fn sources(s: &Scrape) -> Vec<SourceSummary> {
    s.by_label("saltbridge_source_events_total", "source")
        .into_keys()
        .map(|name| {
            let get = |m: &str| s.get(m, "source", &name);
            SourceSummary {
                connected: get("saltbridge_source_connected") == Some(1.0),
                events: whole(get("saltbridge_source_events_total")),
                bytes: whole(get("saltbridge_source_bytes_total")),
                decode_errors: whole(get("saltbridge_source_decode_errors_total")),
                dropped: whole(get("saltbridge_source_dropped_total")),
                gaps: whole(get("saltbridge_source_gaps_total")),
                gap_seconds: get("saltbridge_source_gap_seconds_total").unwrap_or(0.0),
                source: name,
            }
        })
        .collect()
}

/// One summary per sink, from its `saltbridge_sink_*` series and latency buckets.
fn sinks(s: &Scrape) -> Vec<SinkSummary> {
    s.by_label("saltbridge_sink_accepted_total", "sink")
        .into_keys()
        .map(|name| {
            let get = |m: &str| whole(s.get(m, "sink", &name));
            let buckets = s.buckets("saltbridge_delivery_latency_seconds", "sink", &name);
            SinkSummary {
                queue_events: get("saltbridge_sink_queue_events"),
                queue_bytes: get("saltbridge_sink_queue_bytes"),
                accepted: get("saltbridge_sink_accepted_total"),
                delivered: get("saltbridge_sink_delivered_total"),
                retries: get("saltbridge_sink_retries_total"),
                failures: get("saltbridge_sink_failures_total"),
                dead_letters: get("saltbridge_sink_dead_letters_total"),
                dropped: get("saltbridge_sink_dropped_total"),
                corrupt_records: get("saltbridge_spool_corrupt_records_total"),
                latency_p50_seconds: quantile(&buckets, 0.5),
                latency_p99_seconds: quantile(&buckets, 0.99),
                sink: name,
            }
        })
        .collect()
}

impl Summary {
    pub fn from_scrape(s: &Scrape, now_unix_secs: f64) -> Summary {
        let version = s
            .samples
            .iter()
            .find(|x| x.name == "saltbridge_build_info")
            .and_then(|x| x.label("version"))
            .map(str::to_owned);
        let uptime_seconds = s
            .single("saltbridge_process_start_time_seconds")
            .map(|start| (now_unix_secs - start).max(0.0));
        let sources = sources(s);
        let sinks = sinks(s);
        let deduplicated = s.by_label("saltbridge_route_deduplicated_total", "route");
        let routes = s
            .by_label("saltbridge_route_matches_total", "route")
            .into_iter()
            .map(|(route, n)| RouteSummary {
                matches: whole(Some(n)),
                deduplicated: whole(deduplicated.get(&route).copied()),
                route,
            })
            .collect();
        let counts = |name: &str, key: &str| -> BTreeMap<String, u64> {
            s.by_label(name, key)
                .into_iter()
                .map(|(k, v)| (k, whole(Some(v))))
                .collect()
        };
        let job = |name: &str| whole(s.single(name));
        let jobs = JobsSummary {
            open: job("saltbridge_jobs_open"),
            tracked_bytes: job("saltbridge_jobs_tracked_bytes"),
            summarised: job("saltbridge_jobs_summarised_total"),
            evicted: job("saltbridge_jobs_evicted_total"),
            refused: job("saltbridge_jobs_refused_total"),
            refused_minions: job("saltbridge_jobs_refused_minions_total"),
            minion_fired: job("saltbridge_jobs_minion_fired_total"),
        };
        Summary {
            version,
            uptime_seconds,
            sources,
            sinks,
            jobs,
            routes,
            unmatched: whole(s.single("saltbridge_events_unmatched_total")),
            twins_dropped: counts("saltbridge_twins_dropped_total", "kind"),
            noise_dropped: counts("saltbridge_noise_dropped_total", "preset"),
        }
    }

    /// The tables for a person, in the order `status` prints them.
    pub fn table(&self, listen: &str) -> String {
        let mut out = String::new();
        let version = self.version.as_deref().unwrap_or("?");
        let uptime = self
            .uptime_seconds
            .map_or("?".to_owned(), |s| duration(s.round()));
        let _ = writeln!(out, "saltbridge {version} on {listen}, up {uptime}\n");
        for rows in [
            self.source_rows(),
            self.sink_rows(),
            self.job_rows(),
            self.route_rows(),
            self.dropped_rows(),
        ] {
            push_table(&mut out, &rows);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }

    fn source_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![row(&[
            "SOURCE",
            "CONNECTED",
            "EVENTS",
            "BYTES",
            "DECODE ERRORS",
            "DROPPED",
            "GAPS",
            "GAP TIME",
        ])];
        for s in &self.sources {
            rows.push(vec![
                s.source.clone(),
                if s.connected { "yes" } else { "no" }.to_owned(),
                s.events.to_string(),
                s.bytes.to_string(),
                s.decode_errors.to_string(),
                s.dropped.to_string(),
                s.gaps.to_string(),
                duration(s.gap_seconds),
            ]);
        }
        rows
    }

    fn sink_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![row(&[
            "SINK",
            "QUEUED",
            "QUEUED BYTES",
            "DELIVERED",
            "RETRIES",
            "FAILURES",
            "DEAD LETTERS",
            "DROPPED",
            "CORRUPT",
            "LATENCY P50",
            "P99",
        ])];
        for s in &self.sinks {
            rows.push(vec![
                s.sink.clone(),
                s.queue_events.to_string(),
                s.queue_bytes.to_string(),
                s.delivered.to_string(),
                s.retries.to_string(),
                s.failures.to_string(),
                s.dead_letters.to_string(),
                s.dropped.to_string(),
                s.corrupt_records.to_string(),
                latency(s.latency_p50_seconds),
                latency(s.latency_p99_seconds),
            ]);
        }
        rows
    }

    fn job_rows(&self) -> Vec<Vec<String>> {
        let j = &self.jobs;
        let cells = [
            j.open,
            j.tracked_bytes,
            j.summarised,
            j.evicted,
            j.refused,
            j.refused_minions,
            j.minion_fired,
        ];
        vec![
            row(&[
                "JOBS OPEN",
                "TRACKED BYTES",
                "SUMMARISED",
                "EVICTED",
                "REFUSED",
                "REFUSED MINIONS",
                "MINION-FIRED",
            ]),
            cells.iter().map(u64::to_string).collect(),
        ]
    }

    fn route_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![row(&["ROUTE", "MATCHES", "DEDUPLICATED"])];
        for r in &self.routes {
            rows.push(vec![
                r.route.clone(),
                r.matches.to_string(),
                r.deduplicated.to_string(),
            ]);
        }
        rows.push(vec![
            "(unmatched)".to_owned(),
            self.unmatched.to_string(),
            "-".to_owned(),
        ]);
        rows
    }

    fn dropped_rows(&self) -> Vec<Vec<String>> {
        let mut rows = vec![row(&["DROPPED AS", "EVENTS"])];
        for (kind, n) in &self.twins_dropped {
            rows.push(vec![format!("twin {kind}"), n.to_string()]);
        }
        for (preset, n) in &self.noise_dropped {
            rows.push(vec![format!("noise {preset}"), n.to_string()]);
        }
        rows
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Columns padded to their widest cell; the first left-aligned, numbers right.
fn push_table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "  {cell:>w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
}

fn latency(secs: Option<f64>) -> String {
    match secs {
        None => "-".to_owned(),
        Some(s) if s < 1.0 => format!("{:.1} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

fn duration(secs: f64) -> String {
    let whole = secs.max(0.0).round() as u64;
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    humantime::format_duration(std::time::Duration::from_secs(whole)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"saltbridge_build_info{version="9.9.9"} 1
saltbridge_process_start_time_seconds 1000.0
saltbridge_source_events_total{source="tcp:127.0.0.1:4512"} 12
saltbridge_source_bytes_total{source="tcp:127.0.0.1:4512"} 3456
saltbridge_source_connected{source="tcp:127.0.0.1:4512"} 1
saltbridge_source_gaps_total{source="tcp:127.0.0.1:4512"} 1
saltbridge_source_gap_seconds_total{source="tcp:127.0.0.1:4512"} 2.5
saltbridge_twins_dropped_total{kind="minion_start"} 1
saltbridge_route_matches_total{route="returns"} 6
saltbridge_route_deduplicated_total{route="returns"} 2
saltbridge_events_unmatched_total 5
saltbridge_sink_accepted_total{sink="hook"} 6
saltbridge_sink_delivered_total{sink="hook"} 4
saltbridge_sink_queue_events{sink="hook"} 2
saltbridge_spool_corrupt_records_total{sink="hook"} 3
saltbridge_jobs_open 2
saltbridge_jobs_tracked_bytes 4096
saltbridge_jobs_summarised_total 7
saltbridge_jobs_refused_total 1
saltbridge_jobs_refused_minions_total 9
saltbridge_jobs_minion_fired_total 4
saltbridge_delivery_latency_seconds_bucket{sink="hook",le="0.001"} 2
saltbridge_delivery_latency_seconds_bucket{sink="hook",le="0.002"} 4
saltbridge_delivery_latency_seconds_bucket{sink="hook",le="+Inf"} 4
"#;

    #[test]
    fn groups_a_scrape_by_source_sink_and_route() {
        let s = Summary::from_scrape(&Scrape::parse(TEXT).unwrap(), 1090.0);
        assert_eq!(s.version.as_deref(), Some("9.9.9"));
        assert_eq!(s.uptime_seconds, Some(90.0));
        assert_eq!(s.sources.len(), 1);
        assert!(s.sources[0].connected);
        assert_eq!(
            (s.sources[0].events, s.sources[0].bytes, s.sources[0].gaps),
            (12, 3456, 1)
        );
        assert_eq!(s.sinks.len(), 1);
        let hook = &s.sinks[0];
        assert_eq!((hook.delivered, hook.queue_events, hook.retries), (4, 2, 0));
        assert_eq!(hook.latency_p50_seconds, Some(0.001));
        assert_eq!(hook.corrupt_records, 3);
        let j = &s.jobs;
        assert_eq!(
            (j.open, j.tracked_bytes, j.summarised, j.evicted),
            (2, 4096, 7, 0)
        );
        assert_eq!((j.refused, j.refused_minions, j.minion_fired), (1, 9, 4));
        assert_eq!((s.routes[0].matches, s.routes[0].deduplicated), (6, 2));
        assert_eq!(s.unmatched, 5);
        assert_eq!(s.twins_dropped["minion_start"], 1);

        let table = s.table("127.0.0.1:9725");
        assert!(
            table.starts_with("saltbridge 9.9.9 on 127.0.0.1:9725, up 1m 30s"),
            "{table}"
        );
        let source_line = table.lines().find(|l| l.starts_with("tcp:")).unwrap();
        let cells: Vec<&str> = source_line.split_whitespace().collect();
        assert_eq!(cells[..4], ["tcp:127.0.0.1:4512", "yes", "12", "3456"]);
        let hook_line = table.lines().find(|l| l.starts_with("hook")).unwrap();
        assert!(hook_line.contains("1.0 ms"), "{hook_line}");
        let hook_cells: Vec<&str> = hook_line.split_whitespace().collect();
        assert_eq!(
            hook_cells[7..9],
            ["0", "3"],
            "dropped, corrupt: {hook_line}"
        );
        let jobs_header = table
            .lines()
            .position(|l| l.starts_with("JOBS OPEN"))
            .unwrap();
        let jobs_cells: Vec<&str> = table
            .lines()
            .nth(jobs_header + 1)
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(jobs_cells, ["2", "4096", "7", "0", "1", "9", "4"]);
        assert!(table
            .lines()
            .any(|l| l.starts_with("twin minion_start") && l.ends_with(" 1")));
    }
}
