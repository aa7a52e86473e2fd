//! `saltbridge run -c routes.yaml`: the daemon. Source -> twins -> routes ->
//! one queue and worker per sink.
//!
//! Every routed event is written to its sinks' spools (`<state-dir>/spool/
//! <sink>/`) before anything is sent, so the bus reader never waits on a
//! sink and a restart, even after `kill -9`, sends what was not delivered.
//! SIGTERM or SIGINT stops the reading, gives in-flight deliveries
//! `--shutdown-timeout` to finish and leaves the rest in the spools, and
//! says so. With a `capture:` or `jsonl:` source, `run` stops at the end of
//! the input once every delivery has settled (delivered or dead-lettered),
//! and exits 0. SIGHUP or a change of the file reloads the routes.
//! While it runs, `/metrics`, `/healthz` and `/readyz` are served on
//! `--listen` (docs/metrics.md).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{recv_opt, setup, sleep_until, EX_CONFIG};
use crate::delivery::{self, DeadLetters, SinkStats, SpoolHandle};
use crate::metrics::{self, Heartbeat, Listen, Observed, PipelineStats};
use crate::outgoing::Outgoing;
use crate::pipeline::{Outcome, Pipeline};
use crate::route::reload;
use crate::shutdown::{os_signal, ShutdownSignal};
use crate::source::{self, ReaderOptions, SourceSpec, SourceStats};

/// Arguments of `saltbridge run`.
#[derive(Args)]
pub struct RunArgs {
    /// The routes file.
    #[arg(long, short, value_name = "FILE", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Where to read events [default: the file's `source:`, else the master's socket].
    #[arg(long, short, value_name = "SPEC")]
    pub source: Option<SourceSpec>,
    /// Directory for saltbridge's own files: the spools (`spool/<sink>/`) and
    /// the dead letters (`dead-letters.jsonl`).
    #[arg(
        long,
        value_name = "DIR",
        env = "SALTBRIDGE_STATE_DIR",
        default_value = "saltbridge-state"
    )]
    pub state_dir: PathBuf,
    /// After SIGTERM, how long in-flight deliveries may take to finish.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Where to serve /metrics, /healthz and /readyz (IP:PORT), or `off`.
    #[arg(long, value_name = "ADDR", env = "SALTBRIDGE_LISTEN", default_value = metrics::DEFAULT_LISTEN)]
    pub listen: Listen,
}

/// How the main loop ended.
#[derive(PartialEq, Eq)]
enum End {
    /// The input ended: deliver everything, then exit.
    Drained,
    /// A signal: stop within the deadline.
    Stopped,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (table, sinks) = match setup::load(&args.config) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let spec = super::choose_source(args.source.clone(), &table)?;
    let dead = DeadLetters::new(args.state_dir.join("dead-letters.jsonl"));
    let (stop_sinks, sinks_stop) = ShutdownSignal::new();
    let (stop_source, source_stop) = ShutdownSignal::new();

    let mut queues: HashMap<String, SpoolHandle> = HashMap::new();
    let mut tasks = Vec::new();
    let mut described = Vec::new();
    for b in sinks {
        described.push(format!("{} ({})", b.name, b.sink.kind()));
        let opts = delivery::WorkerOptions {
            settings: b.delivery,
            concurrency: b.sink.concurrency(),
            batching: b.sink.batching(),
            stop_deadline: args.shutdown_timeout,
            keep_raw: b.sink.keeps_raw(),
        };
        let spool_dir = spool_dir(&args.state_dir, &b.name);
        let h = match delivery::start(
            &b.name,
            Arc::new(b.sink),
            opts,
            &spool_dir,
            dead.clone(),
            sinks_stop.clone(),
        ) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("saltbridge run: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let waiting = SinkStats::get(&h.spool.stats().queued);
        if waiting > 0 {
            tracing::info!(sink = %b.name, events = waiting, "sending what the spool kept from the last run");
        }
        h.spool.import_replayed();
        queues.insert(b.name.clone(), h.spool);
        tasks.push(h.task);
    }
    let routes: Vec<&str> = table.route_names().collect();
    tracing::info!(
        source = %spec,
        routes = %routes.join(", "),
        sinks = %described.join(", "),
        dead_letters = %dead.path().display(),
        "saltbridge run: {} routes, {} sinks",
        routes.len(),
        described.len()
    );

    let live = spec.is_live();
    let mut reloads = live.then(|| reload::watch(args.config.clone(), source_stop.clone()));
    let mut src = source::spawn(spec.clone(), ReaderOptions::default(), source_stop);
    let pipeline_stats = Arc::new(PipelineStats::new(table.route_names()));
    let heartbeat = Arc::new(Heartbeat::default());
    let observed = Observed::new(
        (spec.to_string(), src.stats.clone()),
        queues
            .iter()
            .map(|(n, q)| (n.clone(), q.stats().clone()))
            .collect(),
        pipeline_stats.clone(),
        heartbeat.clone(),
    );
    let _metrics_server = serve_metrics(args.listen, observed).await;
    let mut beat = tokio::time::interval(metrics::heartbeat::BEAT_EVERY);
    super::demo_hint::suggest_demo_if_no_master(&spec, &src.stats);
    let mut pipeline = Pipeline::new(table, false);
    let stop = os_signal();
    tokio::pin!(stop);
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        heartbeat.beat();
        let deadline = pipeline.next_deadline();
        let outcomes = tokio::select! {
            _ = &mut stop => break End::Stopped,
            ev = src.events.recv() => match ev {
                Some(ev) => pipeline.push(ev, Instant::now()),
                None => break End::Drained,
            },
            _ = sleep_until(deadline) => pipeline.tick(Instant::now()),
            _ = beat.tick() => continue,
            Some(new) = recv_opt(&mut reloads) => {
                if new.sinks() != pipeline.table().sinks() {
                    tracing::warn!("sinks changed in the routes file: routes are reloaded, sink changes take effect at the next restart");
                }
                pipeline_stats.add_routes(new.route_names());
                pipeline.replace_table(new);
                continue;
            }
            _ = housekeeping.tick() => {
                for q in queues.values() {
                    q.tick();
                }
                continue;
            }
        };
        dispatch(outcomes, &queues, &pipeline_stats);
        // One write per burst: flush once the source has nothing waiting.
        if src.events.is_empty() {
            for q in queues.values() {
                q.flush();
            }
        }
    };
    stop_source.trigger();
    dispatch(pipeline.flush(Instant::now()), &queues, &pipeline_stats);
    for q in queues.values() {
        q.flush();
    }
    if end == End::Stopped {
        tracing::info!(timeout = ?args.shutdown_timeout, "stopping: finishing in-flight deliveries");
        stop_sinks.trigger();
    }
    let source_stats = src.stats.clone();
    let _ = src.task.await;
    let stats: Vec<(String, Arc<SinkStats>)> = queues
        .iter()
        .map(|(n, q)| (n.clone(), q.stats().clone()))
        .collect();
    drop(queues);
    for t in tasks {
        let _ = t.await;
    }
    report(&source_stats, &stats, &dead);
    drop(stop_sinks);
    Ok(ExitCode::SUCCESS)
}

/// Where sink `name` keeps its spool.
pub fn spool_dir(state_dir: &std::path::Path, name: &str) -> PathBuf {
    state_dir.join("spool").join(name)
}

/// Offers each routed event to its sinks' queues.
fn dispatch(
    outcomes: Vec<Outcome>,
    queues: &HashMap<String, SpoolHandle>,
    pipeline_stats: &PipelineStats,
) {
    for o in outcomes {
        pipeline_stats.record(&o);
        let Outcome::Routed { event, routing } = o else {
            continue;
        };
        if routing.sinks.is_empty() {
            continue;
        }
        let key = event.idempotency_key();
        let event = Arc::new(event);
        for (sink, route) in routing.sinks.iter().zip(&routing.sink_routes) {
            if let Some(q) = queues.get(sink) {
                q.offer(Outgoing {
                    event: Arc::clone(&event),
                    route: route.clone(),
                    key: key.clone(),
                });
            }
        }
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

fn report(source: &SourceStats, sinks: &[(String, Arc<SinkStats>)], dead: &DeadLetters) {
    let g = SinkStats::get;
    let mut lines = vec![format!(
        "saltbridge: read {} events ({} malformed, {} dropped on a full buffer, {} gaps)",
        SourceStats::get(&source.events),
        SourceStats::get(&source.malformed),
        SourceStats::get(&source.dropped),
        SourceStats::get(&source.gaps)
    )];
    let (mut parked, mut kept) = (0, 0);
    let mut sorted: Vec<&(String, Arc<SinkStats>)> = sinks.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, s) in sorted {
        parked += g(&s.dead_lettered);
        kept += g(&s.not_delivered);
        lines.push(format!(
            "  sink {name}: {} accepted, {} delivered, {} retries, {} dead-lettered, {} left in the spool, {} dropped on a full spool",
            g(&s.accepted),
            g(&s.delivered),
            g(&s.retries),
            g(&s.dead_lettered),
            g(&s.not_delivered),
            g(&s.overflowed)
        ));
    }
    if kept > 0 {
        lines.push(format!(
            "  {kept} events stay in the spools and are sent at the next start"
        ));
    }
    if parked > 0 {
        lines.push(format!(
            "  {parked} events are in the dead-letter file {}",
            dead.path().display()
        ));
    }
    eprintln!("{}", lines.join("\n"));
}
