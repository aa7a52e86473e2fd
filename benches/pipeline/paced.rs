//! The paced run: events at a fixed rate into a webhook (one event per
//! request), for bus-to-receiver latency and resident memory, steady and
//! through a sink outage.
//!
//! Phases: 2 s warm-up; `steady` with latency recorded and RSS sampled;
//! `outage` with the receiver answering 503 (events pile up in saltbridge);
//! 5 s more at the same rate; then the generator stops and the bench waits
//! until everything sent was delivered (the catch-up time is reported).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{routes_yaml, Target, SINK};
use super::daemon::Daemon;
use super::loadgen::{self, Kind};
use super::Bench;

/// What the paced run found.
pub struct Paced {
    pub rate: u64,
    pub samples: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub steady_rss: u64,
    pub outage_peak_rss: u64,
    pub outage_backlog: u64,
    pub catch_up: Duration,
    pub sent: u64,
    pub delivered: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub fn run(bench: &Bench, rate: u64, routes: usize) -> Result<Paced, String> {
    let (steady, outage) = (bench.opts.steady, bench.opts.outage);
    let warm = Duration::from_secs(2);
    let tail = Duration::from_secs(5);
    let dir = bench.dir();
    let sock = dir.join("master_event_pub.ipc");
    let seen = bench.receiver.seen.clone();
    seen.reset();
    let url = bench.receiver.url("events");
    let target = Target::Webhook {
        url: &url,
        batch: false,
    };
    let yaml = routes_yaml(
        routes,
        &target,
        &bench.receiver.url("sentinel"),
        &bench.opts.extra_yaml,
    );
    let routes_file = dir.join("routes.yaml");
    std::fs::write(&routes_file, yaml).expect("write routes");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let server = loadgen::serve_paced(
        &sock,
        Kind::Small,
        rate,
        warm + steady + outage + tail,
        stop.clone(),
        sent.clone(),
    );
    let mut daemon = Daemon::start(&bench.bin, &routes_file, &sock, &dir);
    let t0 = Instant::now();
    let sleep_until = |t: Duration| {
        let now = t0.elapsed();
        if t > now {
            std::thread::sleep(t - now);
        }
    };

    sleep_until(warm);
    daemon
        .check_alive()
        .map_err(|e| format!("saltbridge run exited: {e}"))?;
    seen.timing.store(true, Ordering::Relaxed);
    let mut rss = Vec::new();
    while t0.elapsed() < warm + steady {
        rss.push(daemon.memory().rss);
        std::thread::sleep(Duration::from_millis(250));
    }
    seen.timing.store(false, Ordering::Relaxed);
    rss.sort_unstable();
    let steady_rss = rss.get(rss.len() / 2).copied().unwrap_or(0);

    seen.down.store(true, Ordering::Relaxed);
    let mut outage_peak_rss = 0;
    while t0.elapsed() < warm + steady + outage {
        outage_peak_rss = outage_peak_rss.max(daemon.memory().rss);
        std::thread::sleep(Duration::from_millis(250));
    }
    let outage_backlog = sent.load(Ordering::Relaxed).saturating_sub(seen.events());
    seen.down.store(false, Ordering::Relaxed);
    let recovered = Instant::now();
    let due = sent.load(Ordering::Relaxed);
    let mut catch_up = None;
    let deadline = Instant::now() + outage + Duration::from_secs(120);
    loop {
        if catch_up.is_none() && seen.events() >= due {
            catch_up = Some(recovered.elapsed());
        }
        // The sentinel has its own sink and may overtake the measured one.
        if catch_up.is_some()
            && seen.sentinel_at().is_some()
            && seen.events() >= sent.load(Ordering::Relaxed)
        {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            let report = daemon.stop(Duration::from_secs(15));
            return Err(format!(
                "{} of {} delivered after the outage: {}",
                seen.events(),
                sent.load(Ordering::Relaxed),
                report.text.trim()
            ));
        }
        outage_peak_rss = outage_peak_rss.max(daemon.memory().rss);
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = daemon.stop(Duration::from_secs(15));
    let served = server.join().map_err(|_| "load generator panicked")?;
    let mut lat = std::mem::take(&mut *seen.latencies_us.lock().expect("lock"));
    lat.sort_unstable();
    Ok(Paced {
        rate,
        samples: lat.len(),
        p50_us: percentile(&lat, 0.50),
        p99_us: percentile(&lat, 0.99),
        max_us: lat.last().copied().unwrap_or(0),
        steady_rss,
        outage_peak_rss,
        outage_backlog,
        catch_up: catch_up.unwrap_or_default(),
        sent: served.events,
        delivered: Daemon::delivered(&report, SINK),
    })
}
