//! What the bench measures, in which order, and the one table it prints
//! (Markdown, so it goes into docs/benchmarks.md as it is).

use std::time::Duration;

use super::loadgen::Kind;
use super::{paced, Bench, Dest, Measured, Opts, Stream};

struct Row {
    what: String,
    result: String,
    versus: String,
    target: String,
    met: Option<bool>,
}

pub struct Table {
    rows: Vec<Row>,
    header: String,
}

impl Table {
    pub fn new(opts: &Opts) -> Table {
        let runs = if opts.runs == 1 {
            "1 run per point".to_owned()
        } else {
            format!("median of {} runs per point", opts.runs)
        };
        let mode = if opts.quick {
            "quick mode (smoke test, small counts)"
        } else {
            "full run"
        };
        Table {
            rows: Vec::new(),
            header: format!("{mode}, {runs}, {} cores shared with other work", cores()),
        }
    }

    pub fn row(
        &mut self,
        what: &str,
        result: String,
        versus: String,
        target: &str,
        met: Option<bool>,
    ) {
        eprintln!("  {what}: {result} {versus}");
        self.rows.push(Row {
            what: what.to_owned(),
            result,
            versus,
            target: target.to_owned(),
            met,
        });
    }

    pub fn failed(&mut self, what: &str, why: &str) {
        let short: String = why.lines().next().unwrap_or("").chars().take(100).collect();
        self.row(
            what,
            format!("not measured: {short}"),
            String::new(),
            "",
            None,
        );
    }

    pub fn print(&self, took: Duration) {
        println!(
            "\nsaltbridge benchmarks: {} (took {:.0} s)\n",
            self.header,
            took.as_secs_f64()
        );
        println!("| measurement | result | vs baseline | target | met |");
        println!("|---|---|---|---|---|");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            println!(
                "| {} | {} | {} | {} | {met} |",
                r.what, r.result, r.versus, r.target
            );
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn rate(m: &Measured) -> String {
    let p = &m.median;
    let spread = if (m.max_eps - m.min_eps) > 0.0 {
        format!(" ({:.0}k-{:.0}k)", m.min_eps / 1e3, m.max_eps / 1e3)
    } else {
        String::new()
    };
    let rss = if p.peak_rss > 0 {
        format!(", peak RSS {:.0} MB", p.peak_rss as f64 / 1048576.0)
    } else {
        String::new()
    };
    let cpu = if p.cpu_secs > 0.0 {
        format!(", {:.1} µs CPU/event", p.cpu_secs * 1e6 / p.events as f64)
    } else {
        String::new()
    };
    let broker = if p.broker_cpu_secs > 0.0 {
        format!(
            "; broker: {:.1} µs CPU/event, {:.0}% of a core",
            p.broker_cpu_secs * 1e6 / p.events as f64,
            p.broker_cpu_secs * 100.0 / p.secs
        )
    } else {
        String::new()
    };
    format!(
        "{:.0} ev/s{spread}, {:.1} MB/s{rss}{cpu}{broker}",
        p.eps(),
        p.mbps()
    )
}

fn ratio(ours: &Measured, base: Option<&Measured>, name: &str) -> (String, Option<f64>) {
    match base {
        Some(b) => {
            let r = ours.median.eps() / b.median.eps();
            (format!("{r:.1}x {name}"), Some(r))
        }
        None => (String::new(), None),
    }
}

/// Runs every measurement the options ask for, filling `t`.
pub fn run_all(b: &Bench, t: &mut Table) {
    let o = &b.opts;
    eprintln!("preparing the streams...");
    // Kafka's points are longer than the others: a 60,000-event point
    // lasted under a second, in which the producer's start (metadata,
    // `InitProducerId`) weighed, while the bare producer starts untimed.
    let small = Stream::synthetic(Kind::Small, o.n(60_000));
    let big = Stream::synthetic(Kind::StateApply, o.n(60_000));
    let small_kafka = Stream::synthetic(Kind::Small, o.n(300_000));
    let big_kafka = Stream::synthetic(Kind::StateApply, o.n(30_000));
    let py = Stream::synthetic(Kind::Small, o.n(60_000));
    let fwd = Stream::synthetic(Kind::Small, o.n(4_000));
    let web = Stream::synthetic(Kind::Small, o.n(60_000));
    eprintln!(
        "events: {} B job returns, {} B state.apply returns",
        small.avg(),
        big.avg()
    );
    let sizes = |s: &Stream| format!("{} x {} B", s.events, s.avg());

    let mut reader = None;
    if o.wants("python") {
        match b.repeat(|| b.python("salt_reader.py", &py, None)) {
            Ok(m) => {
                t.row(
                    &format!("Salt 3008.4 Python reader, get_event loop ({})", sizes(&py)),
                    rate(&m),
                    "baseline".into(),
                    "",
                    None,
                );
                reader = Some(m);
            }
            Err(e) => t.failed("Salt 3008.4 Python reader", &e),
        }
    }
    let mut forwarder = None;
    if o.wants("forwarder") {
        let url = b.receiver.url("python");
        match b.repeat(|| b.python("forwarder.py", &fwd, Some(&url))) {
            Ok(m) => {
                t.row(
                    &format!(
                        "Python engine-style forwarder, requests POST per event ({})",
                        sizes(&fwd)
                    ),
                    rate(&m),
                    "baseline".into(),
                    "",
                    None,
                );
                forwarder = Some(m);
            }
            Err(e) => t.failed("Python engine-style forwarder", &e),
        }
    }
    if o.wants("null") {
        let what = format!(
            "saltbridge run, 100 routes -> blackhole ({})",
            sizes(&small)
        );
        match b.repeat(|| b.saltbridge(&small, 100, Dest::Blackhole)) {
            Ok(m) => {
                let (vs, r) = ratio(&m, reader.as_ref(), "the Python reader");
                t.row(
                    &what,
                    rate(&m),
                    vs,
                    ">= 40x the Python reader (issue 13)",
                    r.map(|r| r >= 40.0),
                );
            }
            Err(e) => t.failed(&what, &e),
        }
        let what = format!("saltbridge run, 100 routes -> blackhole ({})", sizes(&big));
        match b.repeat(|| b.saltbridge(&big, 100, Dest::Blackhole)) {
            Ok(m) => t.row(&what, rate(&m), String::new(), "", None),
            Err(e) => t.failed(&what, &e),
        }
        let caps = Stream::captures(o.n(60_000));
        let what = format!(
            "saltbridge run, 100 routes -> blackhole (3008.4 captures replayed, {} frames)",
            caps.events
        );
        match b.repeat(|| b.saltbridge(&caps, 100, Dest::Blackhole)) {
            Ok(m) => t.row(&what, rate(&m), String::new(), "", None),
            Err(e) => t.failed(&what, &e),
        }
    }
    if o.wants("webhook") {
        let what = format!(
            "saltbridge run, 100 routes -> webhook, batches of 500 ({})",
            sizes(&web)
        );
        match b.repeat(|| b.saltbridge(&web, 100, Dest::Webhook)) {
            Ok(m) => {
                let (vs, _) = ratio(&m, forwarder.as_ref(), "the Python forwarder");
                t.row(&what, rate(&m), vs, "", None);
            }
            Err(e) => t.failed(&what, &e),
        }
    }
    if o.wants("kafka") {
        kafka_rows(b, t, &small_kafka, &big_kafka, reader.as_ref());
    }
    if o.wants("burst") {
        super::burst::bursts(b, t);
    }
    if o.wants("journal") {
        super::burst::journal_cost(b, t);
    }
    if o.wants("routes") {
        let stream = Stream::synthetic(Kind::Small, o.n(60_000));
        let mut ten = None;
        for n in [10, 1_000, 10_000] {
            let what = format!(
                "saltbridge run, {n} routes -> blackhole ({})",
                sizes(&stream)
            );
            match b.repeat(|| b.saltbridge(&stream, n, Dest::Blackhole)) {
                Ok(m) => {
                    let eps = m.median.eps();
                    if n == 10 {
                        ten = Some(eps);
                        t.row(&what, rate(&m), "1x (10 routes)".into(), "", None);
                    } else {
                        let r = ten.map(|base| eps / base);
                        let vs = r.map(|r| format!("{r:.2}x 10 routes")).unwrap_or_default();
                        let target = if n == 10_000 { ">= 0.5x 10 routes" } else { "" };
                        t.row(
                            &what,
                            rate(&m),
                            vs,
                            target,
                            r.filter(|_| n == 10_000).map(|r| r >= 0.5),
                        );
                    }
                }
                Err(e) => t.failed(&what, &e),
            }
        }
    }
    if o.wants("latency") {
        match paced::run(b, 2_000, 100) {
            Ok(p) => {
                let mb = |x: u64| x as f64 / 1048576.0;
                t.row(
                    &format!(
                        "bus -> webhook latency at {} ev/s, one event per POST, 100 routes",
                        p.rate
                    ),
                    format!(
                        "p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({} events)",
                        p.p50_us as f64 / 1e3,
                        p.p99_us as f64 / 1e3,
                        p.max_us as f64 / 1e3,
                        p.samples
                    ),
                    String::new(),
                    "p99 < 10 ms",
                    Some(p.p99_us < 10_000),
                );
                t.row(
                    &format!("resident memory, steady at {} ev/s", p.rate),
                    format!("{:.1} MB", mb(p.steady_rss)),
                    String::new(),
                    "< 64 MB",
                    Some(p.steady_rss < 64 << 20),
                );
                t.row(
                    &format!("resident memory during a {} s webhook outage at {} ev/s", o.outage.as_secs(), p.rate),
                    format!(
                        "peak {:.1} MB with {} events held; all {} delivered {:.1} s after it ended",
                        mb(p.outage_peak_rss),
                        p.outage_backlog,
                        p.delivered,
                        p.catch_up.as_secs_f64()
                    ),
                    String::new(),
                    "< 64 MB",
                    Some(p.outage_peak_rss < 64 << 20 && p.delivered >= p.sent),
                );
            }
            Err(e) => t.failed("latency and memory (paced run)", &e),
        }
    }
}

/// The bare librdkafka producer's rate (the broker's limit) for `stream`,
/// then saltbridge's into the same broker, as a share of it.
fn kafka_pair(b: &Bench, t: &mut Table, stream: &Stream, reader: Option<&Measured>) {
    let sizes = format!("{} x {} B", stream.events, stream.avg());
    let what = format!("bare librdkafka producer (rdkafka BaseProducer, the sink's settings and records) -> Kafka (tansu) ({sizes})");
    let bare = match b.repeat(|| b.bare_kafka(stream)) {
        Ok(m) => {
            t.row(&what, rate(&m), "the broker's limit".into(), "", None);
            Some(m)
        }
        Err(e) => {
            t.failed(&what, &e);
            None
        }
    };
    let what = format!("saltbridge run, 100 routes -> Kafka (tansu) ({sizes})");
    let small = stream.avg() < 1_000;
    match b.repeat(|| b.saltbridge(stream, 100, Dest::Kafka)) {
        Ok(m) => {
            let share = bare.as_ref().map(|l| m.median.eps() / l.median.eps());
            let mut vs = share.map_or(String::new(), |s| {
                format!("{:.0}% of the bare producer", s * 100.0)
            });
            if small {
                if let (vs_reader, Some(_)) = ratio(&m, reader, "the Python reader") {
                    vs = format!("{vs}; {vs_reader}");
                }
            }
            // The goal: the figure, or 80% of the broker's limit, whichever is lower.
            let (goal, target) = if small {
                (
                    m.median.eps() >= 100_000.0,
                    ">= 100,000 ev/s or >= 80% of the bare producer",
                )
            } else {
                (
                    m.median.mbps() >= 250.0,
                    ">= 250 MB/s or >= 80% of the bare producer",
                )
            };
            let met = goal || share.is_some_and(|s| s >= 0.8);
            t.row(&what, rate(&m), vs, target, Some(met));
        }
        Err(e) => t.failed(&what, &e),
    }
}

fn kafka_rows(b: &Bench, t: &mut Table, small: &Stream, big: &Stream, reader: Option<&Measured>) {
    kafka_pair(b, t, small, reader);
    kafka_pair(b, t, big, None);
}
