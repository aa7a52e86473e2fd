//! `saltbridge run -c routes.yaml`: the daemon. Source -> twins -> routes ->
//! one queue and worker per sink.
//!
//! SIGTERM or SIGINT stops the reading, gives in-flight deliveries
//! `--shutdown-timeout` to finish, dead-letters what was not delivered, and
//! says so. With a `capture:` or `jsonl:` source, `run` stops at the end of
//! the input once every delivery has settled (delivered or dead-lettered),
//! and exits 0. SIGHUP or a change of the file reloads the routes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{recv_opt, setup, sleep_until, EX_CONFIG};
use crate::delivery::{self, DeadLetters, SinkQueue, SinkStats};
use crate::pipeline::{Outcome, Pipeline};
use crate::route::reload;
use crate::shutdown::{os_signal, ShutdownSignal};
use crate::sink::Outgoing;
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
    /// Directory for saltbridge's own files: the dead letters (`dead-letters.jsonl`).
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

    let mut queues: HashMap<String, SinkQueue> = HashMap::new();
    let mut tasks = Vec::new();
    let mut described = Vec::new();
    for b in sinks {
        described.push(format!("{} ({})", b.name, b.sink.kind()));
        let (concurrency, batching) = (b.sink.concurrency(), b.sink.batching());
        let opts = delivery::WorkerOptions {
            settings: b.delivery,
            concurrency,
            batching,
            stop_deadline: args.shutdown_timeout,
        };
        let h = delivery::start(
            &b.name,
            Arc::new(b.sink),
            opts,
            dead.clone(),
            sinks_stop.clone(),
        );
        queues.insert(b.name.clone(), h.queue);
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
    super::demo_hint::suggest_demo_if_no_master(&spec, &src.stats);
    let mut pipeline = Pipeline::new(table, false);
    let stop = os_signal();
    tokio::pin!(stop);
    let end = loop {
        let deadline = pipeline.next_deadline();
        let outcomes = tokio::select! {
            _ = &mut stop => break End::Stopped,
            ev = src.events.recv() => match ev {
                Some(ev) => pipeline.push(ev, Instant::now()),
                None => break End::Drained,
            },
            _ = sleep_until(deadline) => pipeline.tick(Instant::now()),
            Some(new) = recv_opt(&mut reloads) => {
                if new.sinks() != pipeline.table().sinks() {
                    tracing::warn!("sinks changed in the routes file: routes are reloaded, sink changes take effect at the next restart");
                }
                pipeline.replace_table(new);
                continue;
            }
        };
        dispatch(outcomes, &queues);
    };
    stop_source.trigger();
    dispatch(pipeline.flush(Instant::now()), &queues);
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

/// Offers each routed event to its sinks' queues.
fn dispatch(outcomes: Vec<Outcome>, queues: &HashMap<String, SinkQueue>) {
    for o in outcomes {
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

fn report(source: &SourceStats, sinks: &[(String, Arc<SinkStats>)], dead: &DeadLetters) {
    let g = SinkStats::get;
    let mut lines = vec![format!(
        "saltbridge: read {} events ({} malformed, {} dropped on a full buffer, {} gaps)",
        SourceStats::get(&source.events),
        SourceStats::get(&source.malformed),
        SourceStats::get(&source.dropped),
        SourceStats::get(&source.gaps)
    )];
    let mut parked = 0;
    let mut sorted: Vec<&(String, Arc<SinkStats>)> = sinks.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, s) in sorted {
        parked += g(&s.dead_lettered);
        lines.push(format!(
            "  sink {name}: {} accepted, {} delivered, {} retries, {} dead-lettered ({} of them not delivered because saltbridge stopped), {} dropped on a full queue",
            g(&s.accepted),
            g(&s.delivered),
            g(&s.retries),
            g(&s.dead_lettered),
            g(&s.not_delivered),
            g(&s.overflowed)
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
