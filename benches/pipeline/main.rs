//! The one benchmark of saltbridge as a whole: `scripts/bench` runs it and
//! prints one table (docs/benchmarks.md explains it).
//!
//! The real `saltbridge run` binary reads a load generator that speaks Salt
//! 3008's bus framing on a unix socket (`pipeline/loadgen.rs`), with N
//! routes, into a blackhole, a loopback webhook receiver
//! (`saltbridge::receiver`, wrapped in `pipeline/receiver.rs`) or a tansu Kafka broker. Salt's own Python
//! reader and a Python engine-style forwarder (`benches/python/`) read the
//! same stream in the same run, as baselines. Each throughput point runs a
//! few times and the median is reported: the machine is shared and noisy.
//!
//! `cargo bench --bench pipeline -- [--quick] [--runs N] [--outage SECS]
//! [--extra-yaml FILE] [--only NAME,...]`

mod bare_kafka;
mod burst;
mod config;
mod daemon;
mod loadgen;
mod paced;
mod receiver;
#[path = "../support/mod.rs"]
mod support;
mod table;

// Shared with the tests (one copy, in tests/support): the bench runs the
// daemon and tansu exactly as the tests do, and they are tested there.
#[path = "../../tests/support/ports.rs"]
mod ports;
#[path = "../../tests/support/process.rs"]
mod process;
#[path = "../../tests/support/daemon.rs"]
mod run_daemon;
#[path = "../../tests/support/tansu.rs"]
mod tansu;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use config::{routes_yaml, Target, SINK};
use daemon::Daemon;
use loadgen::Kind;
use receiver::Receiver;
use table::Table;

/// Command-line options of the bench.
struct Opts {
    quick: bool,
    runs: usize,
    steady: Duration,
    outage: Duration,
    extra_yaml: String,
    only: Vec<String>,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            quick: false,
            runs: 5,
            steady: Duration::from_secs(15),
            outage: Duration::from_secs(60),
            extra_yaml: String::new(),
            only: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {
                    o.quick = true;
                    o.runs = 1;
                    o.steady = Duration::from_secs(3);
                    o.outage = Duration::from_secs(3);
                }
                "--runs" => o.runs = value().parse().expect("--runs N"),
                "--outage" => {
                    o.outage = Duration::from_secs(value().parse().expect("--outage SECS"))
                }
                "--extra-yaml" => {
                    let f = value();
                    o.extra_yaml =
                        std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"))
                }
                "--only" => o.only = value().split(',').map(str::to_owned).collect(),
                "--dump" => {
                    // For profiling: `--dump small|state N FILE` writes a capture.
                    let kind = match value().as_str() {
                        "state" => Kind::StateApply,
                        _ => Kind::Small,
                    };
                    let n: u64 = value().parse().expect("--dump KIND N FILE");
                    let file = value();
                    std::fs::write(&file, loadgen::backlog(kind, n)).expect("write the capture");
                    std::process::exit(0);
                }
                _ => {} // --bench, and whatever cargo adds
            }
        }
        o
    }

    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }

    /// `full` events, or a twentieth of them in quick mode.
    fn n(&self, full: u64) -> u64 {
        if self.quick {
            (full / 20).max(500)
        } else {
            full
        }
    }
}

/// One timed run: how many events and bus bytes, in how long.
#[derive(Debug, Clone)]
struct Point {
    events: u64,
    bytes: u64,
    secs: f64,
    peak_rss: u64,
    /// CPU seconds saltbridge used (0 when not measured).
    cpu_secs: f64,
    /// CPU seconds the Kafka broker used meanwhile (0 for other sinks).
    broker_cpu_secs: f64,
    /// From saltbridge's report: events its reader dropped, bytes its
    /// journal dropped at the bound, bytes appended to the journal.
    dropped: u64,
    journal_dropped: u64,
    journal_bytes: u64,
}

impl Point {
    fn eps(&self) -> f64 {
        self.events as f64 / self.secs
    }
    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
}

/// The median run of several (by time), and the spread of rates.
struct Measured {
    median: Point,
    min_eps: f64,
    max_eps: f64,
}

fn median(mut points: Vec<Point>) -> Option<Measured> {
    if points.is_empty() {
        return None;
    }
    points.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let min_eps = points.iter().map(Point::eps).fold(f64::MAX, f64::min);
    let max_eps = points.iter().map(Point::eps).fold(0.0, f64::max);
    Some(Measured {
        median: points[points.len() / 2].clone(),
        min_eps,
        max_eps,
    })
}

/// A prepared backlog: bus bytes (sentinel excluded from the counts).
struct Stream {
    bytes: Arc<Vec<u8>>,
    events: u64,
    payload: u64,
    /// How many reach the measured sink, when known.
    routed: Option<u64>,
}

impl Stream {
    fn synthetic(kind: Kind, n: u64) -> Stream {
        let mut bytes = loadgen::backlog(kind, n);
        let payload = bytes.len() as u64;
        bytes.extend_from_slice(&loadgen::sentinel());
        Stream {
            bytes: Arc::new(bytes),
            events: n,
            payload,
            routed: Some(n),
        }
    }

    fn captures(n: u64) -> Stream {
        let (mut bytes, events) = loadgen::captures(n);
        let payload = bytes.len() as u64;
        bytes.extend_from_slice(&loadgen::sentinel());
        Stream {
            bytes: Arc::new(bytes),
            events,
            payload,
            routed: None,
        }
    }

    fn avg(&self) -> u64 {
        self.payload / self.events.max(1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dest {
    Blackhole,
    Webhook,
    Kafka,
}

struct Bench {
    opts: Opts,
    bin: PathBuf,
    tmp: tempfile::TempDir,
    receiver: Receiver,
    kafka: Option<tansu::Tansu>,
    rt: tokio::runtime::Runtime,
    venv: Option<PathBuf>,
    next: AtomicU64,
}

impl Bench {
    fn dir(&self) -> PathBuf {
        let d = self
            .tmp
            .path()
            .join(format!("run{}", self.next.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&d).expect("run dir");
        d
    }

    /// `saltbridge run` drains `stream` through `routes` routes into `into`;
    /// timed from the reader's connect to the last event delivered (for
    /// Kafka, acknowledged by the broker, as the bare producer is timed).
    fn saltbridge(&self, stream: &Stream, routes: usize, into: Dest) -> Result<Point, String> {
        let dir = self.dir();
        let sock = dir.join("master_event_pub.ipc");
        self.receiver.seen.reset();
        let topic = format!("bench{}", self.next.fetch_add(1, Ordering::Relaxed));
        let brokers = self.kafka.as_ref().map(|k| k.brokers()).unwrap_or_default();
        let url = self.receiver.url("events");
        let target = match into {
            Dest::Blackhole => Target::Blackhole,
            Dest::Webhook => Target::Webhook {
                url: &url,
                batch: true,
            },
            Dest::Kafka => {
                let k = self.kafka.as_ref().ok_or("no Kafka broker (tansu)")?;
                self.rt.block_on(k.create_topic(&topic, 4));
                Target::Kafka {
                    brokers: &brokers,
                    topic: &topic,
                }
            }
        };
        let yaml = routes_yaml(
            routes,
            &target,
            &self.receiver.url("sentinel"),
            &self.opts.extra_yaml,
        );
        let routes_file = dir.join("routes.yaml");
        std::fs::write(&routes_file, yaml).expect("write routes");
        let accepted = Arc::new(AtomicBool::new(false));
        let server =
            loadgen::serve_backlog(&sock, stream.bytes.clone(), stream.events, accepted.clone());
        let mut daemon = Daemon::start(&self.bin, &routes_file, &sock, &dir);
        let deadline = Instant::now() + Duration::from_secs(30 + stream.events / 2_000);
        let mut peak_rss = 0;
        let mut polls = 0u64;
        // CPU spent before the reader connects (loading routes) is not per event.
        let mut cpu_at_connect = None;
        let tansu_pid = self
            .kafka
            .as_ref()
            .and_then(|k| k.pid())
            .filter(|_| into == Dest::Kafka);
        let mut tansu_cpu_at_connect = 0.0;
        let end = loop {
            polls += 1;
            if cpu_at_connect.is_none() && accepted.load(Ordering::Relaxed) {
                cpu_at_connect = Some(daemon.cpu_secs());
                tansu_cpu_at_connect = tansu_pid.map_or(0.0, daemon::cpu_secs);
            }
            if polls.is_multiple_of(50) {
                peak_rss = peak_rss.max(daemon.memory().rss);
            }
            let done = match into {
                // The sentinel has its own sink: then wait for the measured one.
                Dest::Blackhole => self.receiver.seen.sentinel_at().and_then(|_| {
                    (daemon.delivered_now(SINK)? >= stream.routed.unwrap_or(0)).then(Instant::now)
                }),
                Dest::Webhook => (self.receiver.seen.events() >= stream.events).then(Instant::now),
                // Timed to the broker's last acknowledgement, as the bare
                // producer is (a consumer's fetch lag is no cost of
                // saltbridge's); the consumer's count is checked below.
                Dest::Kafka if polls.is_multiple_of(10) => daemon
                    .delivered_now(SINK)
                    .is_some_and(|n| n >= stream.events)
                    .then(Instant::now),
                Dest::Kafka => None,
            };
            if let Some(t) = done {
                break t;
            }
            if let Err(log) = daemon.check_alive() {
                return Err(format!("saltbridge run exited: {log}"));
            }
            if Instant::now() > deadline {
                let got = match into {
                    Dest::Kafka => daemon.delivered_now(SINK).unwrap_or(0),
                    _ => self.receiver.seen.events(),
                };
                let report = daemon.stop(Duration::from_secs(15));
                return Err(format!(
                    "not all delivered in time ({got} of {}): {}",
                    stream.events,
                    report.text.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let mem = daemon.memory();
        let cpu_secs = daemon.cpu_secs() - cpu_at_connect.unwrap_or(0.0);
        let broker_cpu_secs = tansu_pid.map_or(0.0, daemon::cpu_secs) - tansu_cpu_at_connect;
        // The topic is counted by a consumer started after the clock stops:
        // while timed, its fetches would take the broker's and this
        // machine's CPU from saltbridge (the bare producer has none).
        let kafka_count = (into == Dest::Kafka).then(|| KafkaCount::new(&brokers, &topic));
        if let Some(k) = &kafka_count {
            // Every acknowledged record is in the topic.
            while k.count() < stream.events && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if k.count() < stream.events {
                let report = daemon.stop(Duration::from_secs(15));
                return Err(format!(
                    "{} of {} records in the topic: {}",
                    k.count(),
                    stream.events,
                    report.text.trim()
                ));
            }
        }
        let report = daemon.stop(Duration::from_secs(15));
        let served = server.join().map_err(|_| "load generator panicked")?;
        if into == Dest::Blackhole && Daemon::delivered(&report, SINK) < stream.routed.unwrap_or(0)
        {
            return Err(format!(
                "only {} of {} events delivered (reader dropped {}): {}",
                Daemon::delivered(&report, SINK),
                stream.events,
                report.dropped_by_reader,
                report.text.trim()
            ));
        }
        Ok(Point {
            events: stream.events,
            bytes: stream.payload,
            secs: end.duration_since(served.connected).as_secs_f64(),
            peak_rss: peak_rss.max(mem.hwm),
            cpu_secs,
            broker_cpu_secs,
            dropped: report.dropped_by_reader,
            journal_dropped: report.journal_dropped,
            journal_bytes: report.journal_appended,
        })
    }

    /// The broker's limit for `stream`'s records: a bare librdkafka producer.
    fn bare_kafka(&self, stream: &Stream) -> Result<Point, String> {
        let k = self.kafka.as_ref().ok_or("no Kafka broker (tansu)")?;
        let topic = format!("bare{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.rt.block_on(k.create_topic(&topic, 4));
        let p = bare_kafka::run(&stream.bytes, stream.payload, &k.brokers(), &topic, k.pid())?;
        if p.events != stream.events {
            return Err(format!(
                "{} of {} records acknowledged",
                p.events, stream.events
            ));
        }
        Ok(p)
    }

    fn python(&self, script: &str, stream: &Stream, url: Option<&str>) -> Result<Point, String> {
        let venv = self.venv.as_ref().ok_or("no Salt 3008.4 virtualenv")?;
        let dir = self.dir();
        self.receiver.seen.reset();
        let server = loadgen::serve_backlog(
            &dir.join("master_event_pub.ipc"),
            stream.bytes.clone(),
            stream.events,
            Arc::new(AtomicBool::new(false)),
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("benches/python")
            .join(script);
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg(&script).arg(&dir).arg(stream.events.to_string());
        if let Some(u) = url {
            cmd.arg(u);
        }
        let out = cmd.output().map_err(|e| format!("python: {e}"))?;
        let _ = server.join();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|_| format!("python said: {}", String::from_utf8_lossy(&out.stderr)))?;
        let got = v["events"].as_u64().unwrap_or(0);
        if got != stream.events {
            return Err(format!("python read {got} of {} events", stream.events));
        }
        Ok(Point {
            events: stream.events,
            bytes: stream.payload,
            secs: v["seconds"].as_f64().unwrap_or(f64::NAN),
            peak_rss: 0,
            cpu_secs: v["cpu"].as_f64().unwrap_or(0.0),
            broker_cpu_secs: 0.0,
            dropped: 0,
            journal_dropped: 0,
            journal_bytes: 0,
        })
    }

    fn repeat(&self, f: impl Fn() -> Result<Point, String>) -> Result<Measured, String> {
        let mut points = Vec::new();
        let mut last_err = String::new();
        for _ in 0..self.opts.runs {
            match f() {
                Ok(p) => points.push(p),
                Err(e) => {
                    eprintln!("  run failed: {e}");
                    last_err = e;
                }
            }
        }
        median(points).ok_or(last_err)
    }
}

/// Records in a Kafka topic, counted by a consumer reading every partition
/// from the start in a thread of its own. (tansu's high watermarks leave out
/// each partition's last batch, so they cannot be used.)
struct KafkaCount {
    count: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl KafkaCount {
    fn new(brokers: &str, topic: &str) -> KafkaCount {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "saltbridge-bench")
            .set("enable.auto.commit", "false")
            .create()
            .expect("Kafka consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..4 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition offset");
        }
        consumer.assign(&tpl).expect("assign");
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        KafkaCount { count, stop }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for KafkaCount {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let opts = Opts::parse();
    let venv = {
        let from_env = std::env::var_os("SALTBRIDGE_SALT_VENV_3008_4").map(PathBuf::from);
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/salt-3008.4");
        from_env
            .into_iter()
            .chain([default])
            .find(|p| p.join("bin/python").exists())
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bench = Bench {
        // SALTBRIDGE_BENCH_BIN runs another build (an older commit's) in
        // this bench, to compare two builds in one window of a shared machine.
        bin: std::env::var_os("SALTBRIDGE_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_saltbridge"))),
        tmp: tempfile::tempdir().expect("temp dir"),
        receiver: Receiver::start(),
        kafka: if opts.wants("kafka") {
            tansu::Tansu::start()
        } else {
            None
        },
        rt,
        venv,
        next: AtomicU64::new(0),
        opts,
    };
    let started = Instant::now();
    let mut table = Table::new(&bench.opts);
    table::run_all(&bench, &mut table);
    table.print(started.elapsed());
}
