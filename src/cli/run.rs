//! `saltbridge run -c routes.yaml`: the daemon's arguments and what it
//! prints; the daemon itself is `saltbridge::daemon`.
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

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::load_routes;
use saltbridge::config;
use saltbridge::daemon::{self, Daemon, Report};
use saltbridge::metrics::{self, Listen};
use saltbridge::shutdown::os_signal;
use saltbridge::sink_stats::SinkStats;
use saltbridge::source::{SourceSpec, SourceStats};
use saltbridge::state_dir::StateDir;

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
    /// The id of the master beside the bridge [default: `masters.id`, else the master config's `id`, else `<hostname>_master`].
    #[arg(long, value_name = "ID", env = "SALTBRIDGE_MASTER_ID")]
    pub master_id: Option<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(&args.config);
    let (config, sinks) = match load_routes(loaded, args.master_id.as_deref(), |t| &mut t.0) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let options = daemon::Options {
        source: config::choose_source(args.source.clone(), &config),
        config_path: args.config.clone(),
        state_dir: StateDir::new(&args.state_dir),
        shutdown_timeout: args.shutdown_timeout,
        listen: args.listen,
    };
    let daemon = match Daemon::start(config, sinks, options) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("saltbridge run: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = daemon
        .run(os_signal(), super::demo_hint::suggest_demo_if_no_master)
        .await?;
    print_report(&report);
    if let Some(e) = &report.source_error {
        eprintln!("saltbridge run: the source stopped: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_report(report: &Report) {
    let (source, sinks, dead, jobs) = (
        &report.source,
        &report.sinks,
        &report.dead_letters,
        &report.jobs,
    );
    let g = SinkStats::get;
    let mut lines = vec![format!(
        "saltbridge: read {} events ({} malformed, {} dropped on a full buffer, {} gaps)",
        SourceStats::get(&source.events),
        SourceStats::get(&source.malformed),
        SourceStats::get(&source.dropped),
        SourceStats::get(&source.gaps)
    )];
    let j = &source.journal;
    let jg = saltbridge::journal::JournalStats::get;
    if jg(&j.appended_bytes) > 0 {
        lines.push(format!(
            "  journal: {} bytes appended, {} bytes dropped at its bound ({} reads refused), {} corrupt records skipped, {} bytes not yet decoded",
            jg(&j.appended_bytes),
            jg(&j.dropped_bytes),
            jg(&j.dropped_reads),
            jg(&j.corrupt_records),
            jg(&j.backlog_bytes)
        ));
    }
    lines.push(format!(
        "  jobs: {} summarised, {} evicted early, {} announcements refused (max_job_bytes), {} minion entries refused (byte budgets), {} job events fired by minions ignored",
        jobs.summarised, jobs.evicted, jobs.refused_jobs, jobs.refused_minions, jobs.minion_fired
    ));
    let (mut parked, mut kept) = (0, 0);
    let mut sorted: Vec<&(String, Arc<SinkStats>)> = sinks.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, s) in sorted {
        parked += g(&s.dead_lettered);
        kept += g(&s.not_delivered);
        lines.push(format!(
            "  sink {name}: {} accepted, {} delivered, {} retries, {} dead-lettered, {} left in the spool, {} dropped on a full spool, {} corrupt spool records skipped",
            g(&s.accepted),
            g(&s.delivered),
            g(&s.retries),
            g(&s.dead_lettered),
            g(&s.not_delivered),
            g(&s.overflowed),
            g(&s.corrupt_records)
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
            dead.display()
        ));
    }
    eprintln!("{}", lines.join("\n"));
}
