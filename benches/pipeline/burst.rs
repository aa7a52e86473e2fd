//! Issue 13's rows: bursts written as fast as the socket takes them (what
//! the reader dropped, what was delivered, peak RSS), and the journal's cost
//! per event (the same backlog through `run`'s journal, from an `ipc:` bus,
//! and read from a `capture:` file, which `run` does not journal).

use std::time::{Duration, Instant};

use super::config::{routes_yaml, Target, SINK};
use super::daemon::{self, Daemon};
use super::loadgen::Kind;
use super::table::{rate, Table};
use super::{Bench, Dest, Measured, Point, Stream};

const MB: f64 = 1048576.0;

/// The burst rows: `n` events of `kind` at socket speed into a blackhole.
pub fn bursts(b: &Bench, t: &mut Table) {
    for (kind, full) in [(Kind::Small, 1_000_000), (Kind::StateApply, 100_000)] {
        let stream = Stream::synthetic(kind, b.opts.n(full));
        let what = format!(
            "burst: {} x {} B written as fast as the socket takes them, 100 routes -> blackhole",
            stream.events,
            stream.avg()
        );
        match b.saltbridge(&stream, 100, Dest::Blackhole) {
            Ok(p) => {
                let result = format!(
                    "{} dropped by the reader, {} bytes at the journal's bound; {} of {} delivered in {:.1} s ({:.0} ev/s, {:.0} MB/s); {:.0} MB journaled; peak RSS {:.0} MB; {:.1} µs CPU/event",
                    p.dropped,
                    p.journal_dropped,
                    p.events,
                    stream.events,
                    p.secs,
                    p.eps(),
                    p.mbps(),
                    p.journal_bytes as f64 / 1e6,
                    p.peak_rss as f64 / MB,
                    p.cpu_secs * 1e6 / p.events as f64
                );
                let met = p.dropped == 0 && p.journal_dropped == 0 && p.peak_rss < 256 << 20;
                t.row(
                    &what,
                    result,
                    String::new(),
                    "0 dropped; peak RSS < 256 MB",
                    Some(met),
                );
            }
            Err(e) => t.failed(&what, &e),
        }
    }
}

/// The journal's cost: CPU per event through the journal against the same
/// backlog from a capture file, in the same run.
pub fn journal_cost(b: &Bench, t: &mut Table) {
    let stream = Stream::synthetic(Kind::Small, b.opts.n(200_000));
    let sizes = format!(
        "{} x {} B, 100 routes -> blackhole",
        stream.events,
        stream.avg()
    );
    let journaled = b.repeat(|| b.saltbridge(&stream, 100, Dest::Blackhole));
    let direct = b.repeat(|| capture_run(b, &stream, 100));
    match (journaled, direct) {
        (Ok(j), Ok(d)) => {
            let per = |m: &Measured| m.median.cpu_secs * 1e6 / m.median.events as f64;
            let (pj, pd) = (per(&j), per(&d));
            t.row(
                &format!("the journal's cost per event ({sizes})"),
                format!(
                    "{:.1} µs CPU/event through the journal (ipc: bus, {}), {:.1} µs from a capture: file without it ({}): {:+.1} µs/event ({:+.0}%)",
                    pj,
                    rate(&j),
                    pd,
                    rate(&d),
                    pj - pd,
                    (pj - pd) * 100.0 / pd
                ),
                String::new(),
                "",
                None,
            );
        }
        (Err(e), _) | (_, Err(e)) => t.failed("the journal's cost per event", &e),
    }
}

/// `run` reading `stream` from a capture file (no journal) until it ends
/// by itself; time and CPU are the whole process's.
fn capture_run(b: &Bench, stream: &Stream, routes: usize) -> Result<Point, String> {
    let dir = b.dir();
    let file = dir.join("backlog.capture");
    std::fs::write(&file, &*stream.bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let yaml = routes_yaml(
        routes,
        &Target::Blackhole,
        &b.receiver.url("sentinel"),
        &b.opts.extra_yaml,
    );
    let routes_file = dir.join("routes.yaml");
    std::fs::write(&routes_file, yaml).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut daemon = Daemon::start_source(
        &b.bin,
        &routes_file,
        &format!("capture:{}", file.display()),
        &dir,
    );
    let pid = daemon.pid();
    let deadline = started + Duration::from_secs(30 + stream.events / 2_000);
    let (mut cpu, mut peak) = (0.0, 0);
    while !daemon.exited() {
        cpu = daemon::cpu_secs(pid);
        peak = peak.max(daemon.memory().hwm);
        if Instant::now() > deadline {
            return Err("a capture run did not end in time".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = started.elapsed().as_secs_f64();
    let report = daemon.stop(Duration::from_secs(5));
    let delivered = Daemon::delivered(&report, SINK);
    if delivered < stream.events {
        return Err(format!(
            "capture run: {delivered} of {} delivered: {}",
            stream.events,
            report.text.trim()
        ));
    }
    Ok(Point {
        events: stream.events,
        bytes: stream.payload,
        secs,
        peak_rss: peak,
        cpu_secs: cpu,
        broker_cpu_secs: 0.0,
        dropped: 0,
        journal_dropped: 0,
        journal_bytes: 0,
    })
}
