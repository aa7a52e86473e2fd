//! The daemon: source -> twins -> job tracker -> routes -> one spool and
//! delivery worker per sink, with metrics, reloads and a clean stop.
//!
//! Every routed event is written to its sinks' spools (`<state-dir>/spool/
//! <sink>/`, see [`StateDir`]) before anything is sent, so the bus reader
//! never waits on a sink and a restart, even after `kill -9`, sends what
//! was not delivered. A stop signal ends the reading, gives in-flight
//! deliveries `shutdown_timeout` to finish and leaves the rest in the
//! spools. With a `capture:` or `jsonl:` source, the daemon stops at the end
//! of the input once every delivery has settled (delivered or
//! dead-lettered). A reload (SIGHUP or a change of the file) swaps the
//! routes; sink changes wait for a restart. While it runs, `/metrics`,
//! `/healthz` and `/readyz` are served on `listen` (docs/metrics.md).

mod checkpoint;
pub mod drive;
mod last_read;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::backfill::Backfill;
use crate::config::{reload, Config, ConfiguredSink};
use crate::delivery::{self, DeadLetters, SpoolHandle};
use crate::jobs::JobCounts;
use crate::journal::{Journal, Position};
use crate::metrics::{self, Heartbeat, Listen, Observed, PipelineStats};
use crate::outgoing::Outgoing;
use crate::pipeline::{Outcome, Pipeline};
use crate::route::RouteTable;
use crate::shutdown::ShutdownSignal;
use crate::sink::Sink;
use crate::sink_stats::SinkStats;
use crate::source::{self, ReaderOptions, SourceSpec, SourceStats};
use crate::state_dir::{StateDir, StateDirLock};
use checkpoint::Checkpoints;
use drive::{drive, Consumer, End};
use last_read::LastRead;

/// After a stop, how long the source may take to notice (a read of stdin
/// never does: it is dropped).
const STOP_SOURCE_WAIT: Duration = Duration::from_secs(1);

/// How the daemon runs, beside its configuration.
pub struct Options {
    /// The routes file, watched for reloads when the source is live.
    pub config_path: PathBuf,
    pub source: SourceSpec,
    pub state_dir: StateDir,
    /// After a stop signal, how long in-flight deliveries may take to finish.
    pub shutdown_timeout: Duration,
    /// Where to serve /metrics, /healthz and /readyz.
    pub listen: Listen,
}

/// A started daemon: its sinks' workers run; [`Daemon::run`] reads the source.
pub struct Daemon {
    options: Options,
    config: Config,
    spools: HashMap<String, SpoolHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    dead: DeadLetters,
    stop_sinks: ShutdownSignal,
    /// `name (kind)` of each sink, for the start-up line.
    described: Vec<String>,
    /// One `run` per state dir: held until the daemon is dropped.
    _state_lock: StateDirLock,
}

/// What the daemon did, for the end-of-run summary.
pub struct Report {
    pub source: Arc<SourceStats>,
    pub sinks: Vec<(String, Arc<SinkStats>)>,
    pub dead_letters: PathBuf,
    /// The job tracker's counters at the end (after the final flush).
    pub jobs: JobCounts,
    /// Why the source stopped by itself, when it failed (refused credentials).
    pub source_error: Option<String>,
}

impl Daemon {
    /// Opens every sink's spool and starts its delivery worker.
    pub fn start(
        config: Config,
        sinks: Vec<ConfiguredSink<Sink>>,
        options: Options,
    ) -> Result<Daemon, crate::spool::SpoolError> {
        let state_lock =
            options
                .state_dir
                .open()
                .map_err(|source| crate::spool::SpoolError::Io {
                    dir: options.state_dir.root().to_owned(),
                    source,
                })?;
        let dead = DeadLetters::new(options.state_dir.dead_letters());
        let (stop_sinks, sinks_stop) = ShutdownSignal::new();
        let mut spools = HashMap::new();
        let mut tasks = Vec::new();
        let mut described = Vec::new();
        for b in sinks {
            described.push(format!("{} ({})", b.name, b.sink.kind()));
            let opts = delivery::WorkerOptions {
                settings: b.delivery,
                concurrency: b.sink.concurrency(),
                batching: b.sink.batching(),
                stop_deadline: options.shutdown_timeout,
                keep_raw: b.sink.keeps_raw(),
                in_order: b.sink.in_order(),
            };
            let dir = options.state_dir.spool(&b.name);
            let h = delivery::start(
                &b.name,
                Arc::new(b.sink),
                opts,
                &dir,
                dead.clone(),
                sinks_stop.clone(),
            )?;
            let waiting = SinkStats::get(&h.spool.stats().queued);
            if waiting > 0 {
                tracing::info!(sink = %b.name, events = waiting, "sending what the spool kept from the last run");
            }
            h.spool.import_replayed();
            spools.insert(b.name.clone(), h.spool);
            tasks.push(h.task);
        }
        Ok(Daemon {
            options,
            config,
            spools,
            tasks,
            dead,
            stop_sinks,
            described,
            _state_lock: state_lock,
        })
    }

    /// Reads the source until it ends or `stop` completes, then settles
    /// the sinks. `started` is called once the source is reading.
    pub async fn run(
        self,
        stop: impl Future<Output = ()>,
        started: impl FnOnce(&SourceSpec, &Arc<SourceStats>),
    ) -> anyhow::Result<Report> {
        let Daemon {
            options,
            config,
            spools,
            tasks,
            dead,
            stop_sinks,
            described,
            _state_lock,
        } = self;
        let spec = options.source.clone();
        log_start(&spec, &config, &described, &dead);
        let (stop_source, source_stop) = ShutdownSignal::new();
        let reloads = spec
            .is_live()
            .then(|| reload::watch(options.config_path.clone(), source_stop.clone()));
        let (mut src, checkpoints) = start_source(&spec, &options.state_dir, &config, source_stop)?;
        let mut router = Router {
            pipeline_stats: Arc::new(PipelineStats::new(config.routes.route_names())),
            sinks: config.sinks.clone(),
            heartbeat: Arc::new(Heartbeat::default()),
            spools,
            checkpoints,
            last_read: spec
                .is_live()
                .then(|| LastRead::new(options.state_dir.last_read())),
        };
        let observed = Observed::new(
            (spec.to_string(), src.stats.clone()),
            router.sink_stats(),
            router.pipeline_stats.clone(),
            router.heartbeat.clone(),
        );
        let _metrics_server = serve_metrics(options.listen, observed).await;
        started(&spec, &src.stats);
        let mut pipeline = pipeline_for(config, &spec);
        startup_gap(&mut pipeline, &mut router);
        // The stop signal is heard in every state: while reading, and after
        // a finite source's end while the sinks settle (a sink that is down
        // retries for `give_up_after`).
        tokio::pin!(stop);
        let end = drive(
            &mut pipeline,
            &mut src.events,
            reloads,
            &mut stop,
            &mut router,
        )
        .await?;
        stop_source.trigger();
        let jobs = finish_pipeline(&mut pipeline, &mut router);
        let source_stats = src.stats.clone();
        let sinks = router.sink_stats();
        let settling = Settling {
            stop_sinks,
            timeout: options.shutdown_timeout,
            stopped: end == End::Stopped,
        };
        let source_error = settling.settle(src.task, router, tasks, stop).await;
        Ok(Report {
            source: source_stats,
            sinks,
            dead_letters: dead.path().to_owned(),
            jobs,
            source_error,
        })
    }
}

/// The start-up line: the source, the routes and the sinks.
fn log_start(spec: &SourceSpec, config: &Config, described: &[String], dead: &DeadLetters) {
    let routes: Vec<&str> = config.routes.route_names().collect();
    tracing::info!(
        source = %spec,
        routes = %routes.join(", "),
        sinks = %described.join(", "),
        dead_letters = %dead.path().display(),
        "saltbridge run: {} routes, {} sinks",
        routes.len(),
        described.len()
    );
}

/// The pipeline, with the master's job cache to backfill from when the
/// source is a live bus.
fn pipeline_for(config: Config, spec: &SourceSpec) -> Pipeline {
    let backfill = spec
        .is_live()
        .then(|| {
            Backfill::for_master(
                config.backfill.clone(),
                config.masters.id.as_deref().map(Arc::from),
            )
        })
        .flatten();
    Pipeline::new(config, false).with_backfill(backfill)
}

/// After the source's end: what the pipeline still holds goes to the
/// spools, the cursor and the last-read time are stored; the tracker's
/// counters are returned for the report.
fn finish_pipeline(pipeline: &mut Pipeline, router: &mut Router) -> JobCounts {
    router.dispatch(pipeline.flush(Instant::now()));
    router.flush();
    if let Some(c) = router.checkpoints.as_mut() {
        c.finish();
    }
    if let Some(l) = router.last_read.as_mut() {
        l.store();
    }
    let jobs = pipeline.job_tracker().counts();
    router.pipeline_stats.set_jobs(jobs);
    jobs
}

/// The end of a run: the source task and the sinks' workers settle, a
/// stop signal (now or during the wait) gives in-flight deliveries
/// `timeout` and leaves the rest in the spools.
struct Settling {
    stop_sinks: ShutdownSignal,
    timeout: Duration,
    /// A stop signal ended the reading (not the source's own end).
    stopped: bool,
}

impl Settling {
    fn stopping(&mut self) {
        self.stopped = true;
        tracing::info!(timeout = ?self.timeout, "stopping: finishing in-flight deliveries");
        self.stop_sinks.trigger();
    }

    /// Returns why the source failed by itself, if it did. The router is
    /// dropped once the source is done, which closes the spools.
    async fn settle(
        mut self,
        mut source: tokio::task::JoinHandle<Result<(), source::SourceError>>,
        router: Router,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        mut stop: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Option<String> {
        if self.stopped {
            self.stopping();
        }
        // A source stuck in a read (stdin) is not waited for after a stop.
        let mut source_error = None;
        tokio::select! {
            r = &mut source => source_error = r.ok().and_then(|r| r.err()).map(|e| e.to_string()),
            _ = &mut stop, if !self.stopped => {
                self.stopping();
                source.abort();
            }
            _ = tokio::time::sleep(STOP_SOURCE_WAIT), if self.stopped => source.abort(),
        }
        // The spools close once the source is done: the workers then end.
        drop(router);
        let mut settled = futures_util::future::join_all(tasks);
        tokio::select! {
            _ = &mut settled => {}
            _ = &mut stop, if !self.stopped => {
                self.stopping();
                settled.await;
            }
        }
        source_error
    }
}

/// The gap since the last run read its last event: filled from the job
/// cache before the first event is read.
fn startup_gap(pipeline: &mut Pipeline, router: &mut Router) {
    let Some(from) = router.last_read.as_ref().and_then(LastRead::previous) else {
        return;
    };
    if pipeline.backfill().is_none() {
        return;
    }
    let to = SystemTime::now();
    tracing::info!(since = %humantime::format_rfc3339_seconds(from), "backfill: looking in the job cache for what was published since the last run");
    let mut out = Vec::new();
    pipeline.fill_gap(from, to, Instant::now(), &mut out);
    router.dispatch(out);
}

/// Starts the source: a unix or TCP bus through the journal in the state
/// dir (with the cursor the pipeline keeps), any other source directly.
fn start_source(
    spec: &SourceSpec,
    state_dir: &StateDir,
    config: &Config,
    stop: crate::shutdown::Shutdown,
) -> anyhow::Result<(source::SourceHandle, Option<Checkpoints>)> {
    if !spec.is_journaled() {
        let src = source::spawn(spec.clone(), ReaderOptions::default(), stop);
        return Ok((src, None));
    }
    let journal = Journal::open(&state_dir.journal(), config.journal.clone(), Arc::default())?;
    let start = journal.start();
    let backlog = crate::journal::JournalStats::get(&journal.stats().backlog_bytes);
    if backlog > 0 {
        tracing::info!(
            offset = start.record,
            bytes = backlog,
            "journal: decoding what the last run read and had not yet spooled"
        );
    }
    // The journal is the buffer now: the channel behind it stays small.
    let opts = ReaderOptions {
        channel_capacity: 8192,
        channel_max_bytes: 16 << 20,
        ..ReaderOptions::default()
    };
    let src = source::spawn_journaled(spec.clone(), opts, &journal, stop)?;
    // Held events: legacy twins (the twin window) and trimmed returns
    // waiting for the job cache (`backfill.trimmed.wait`).
    let longest_hold = config.twins.window.max(config.backfill.trimmed.wait);
    let checkpoints = Checkpoints::new(journal.cursor(), longest_hold);
    Ok((src, Some(checkpoints)))
}

/// The daemon's [`Consumer`]: routed events into their sinks' spools.
struct Router {
    pipeline_stats: Arc<PipelineStats>,
    heartbeat: Arc<Heartbeat>,
    spools: HashMap<String, SpoolHandle>,
    /// The sinks' settings last loaded: a reload that changes them is told.
    sinks: BTreeMap<String, serde_json::Value>,
    /// The durable cursor into the journal, for a journaled source.
    checkpoints: Option<Checkpoints>,
    /// When the last event was read, for the next start-up's backfill (a live source).
    last_read: Option<LastRead>,
}

impl Router {
    fn sink_stats(&self) -> Vec<(String, Arc<SinkStats>)> {
        self.spools
            .iter()
            .map(|(n, q)| (n.clone(), q.stats().clone()))
            .collect()
    }

    /// Offers each routed event to its sinks' spools.
    fn dispatch(&self, outcomes: Vec<Outcome>) {
        for o in outcomes {
            self.pipeline_stats.record(&o);
            let Outcome::Routed { event, routing } = o else {
                continue;
            };
            if routing.sinks.is_empty() {
                continue;
            }
            let event = Arc::new(event);
            for (sink, route) in routing.sinks.iter().zip(&routing.sink_routes) {
                if let Some(q) = self.spools.get(sink) {
                    q.offer(Outgoing::new(Arc::clone(&event), Arc::clone(route)));
                }
            }
        }
    }

    fn flush(&self) {
        for q in self.spools.values() {
            q.flush();
        }
    }
}

impl Consumer for Router {
    async fn outcomes(&mut self, outcomes: Vec<Outcome>) -> anyhow::Result<()> {
        self.dispatch(outcomes);
        Ok(())
    }

    fn idle(&mut self) -> anyhow::Result<()> {
        self.flush();
        if let Some(c) = self.checkpoints.as_mut() {
            c.store(Instant::now());
        }
        Ok(())
    }

    fn progress(&mut self, at: Option<Position>, held: usize) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.note(at, held, Instant::now());
        }
    }

    fn beat(&mut self) {
        self.heartbeat.beat();
    }

    fn reading(&mut self, event: &crate::event::Event) {
        if let Some(l) = self.last_read.as_mut().filter(|_| !event.is_own()) {
            l.saw(event.received_at());
        }
    }

    fn housekeeping(&mut self) {
        if let Some(l) = self.last_read.as_mut() {
            l.store();
        }
        for q in self.spools.values() {
            q.tick();
        }
        // Under a steady stream the source is never idle: move the cursor here too.
        if let Some(c) = self.checkpoints.as_mut() {
            self.spools.values().for_each(SpoolHandle::flush);
            c.store(Instant::now());
        }
    }

    fn job_counts(&mut self, counts: JobCounts) {
        self.pipeline_stats.set_jobs(counts);
    }

    fn peer_claims_refused(&mut self, refused: u64) {
        self.pipeline_stats.set_peer_claims_refused(refused);
    }

    fn backfill_counts(&mut self, counts: crate::backfill::BackfillCounts) {
        self.pipeline_stats.set_backfill(counts);
    }

    fn reloading(&mut self, _current: &RouteTable, new: &Config) {
        if new.sinks != self.sinks {
            tracing::warn!("sinks changed in the routes file: routes are reloaded, sink changes take effect at the next restart");
        }
        self.sinks = new.sinks.clone();
        self.pipeline_stats.add_routes(new.routes.route_names());
    }
}

/// Starts the metrics endpoints. A busy address is logged, not fatal:
/// delivering events matters more than being observed.
async fn serve_metrics(listen: Listen, observed: Observed) -> Option<tokio::task::JoinHandle<()>> {
    let Listen::At(addr) = listen else {
        return None;
    };
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
            Some(metrics::server::spawn(listener, Arc::new(observed)))
        }
        Err(e) => {
            tracing::error!(%addr, error = %e,
                "cannot listen for /metrics, /healthz and /readyz; running without them \
                 (is another saltbridge running? choose another address with --listen, or --listen off)");
            None
        }
    }
}
