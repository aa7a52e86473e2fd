//! `saltbridge replay --since 1h [--until TIME] -c routes.yaml [--dry-run]`:
//! runs the history of the bus journal through a routes file, to its sinks,
//! or with `--dry-run` only showing what each route would do (as `explain`).
//! A user who fixed a route re-sends what the old one missed.
//!
//! The journal is read beside a running `run` without disturbing it. The
//! replay delivers through a daemon of its own, with its own spools and dead
//! letters under `<state-dir>/replay/`, and stops once everything has
//! settled. Replayed events carry the idempotency key they had the first
//! time, so a consumer that drops repeats drops what was already delivered.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::explain::{ExplainArgs, ExplainFormat};
use super::{load_routes, Color};
use saltbridge::config;
use saltbridge::daemon::{self, Daemon};
use saltbridge::metrics::Listen;
use saltbridge::shutdown::os_signal;
use saltbridge::source::SourceSpec;
use saltbridge::state_dir::StateDir;

/// Arguments of `saltbridge replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// The routes file to run the history through.
    #[arg(long, short, value_name = "FILE", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// From when: RFC 3339 (`2026-11-26T10:00:00Z`) or an age (`1h`, `30m`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: SystemTime,
    /// Until when (not included), in the same forms [default: the journal's end].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<SystemTime>,
    /// The state directory of the `run` whose journal is replayed.
    #[arg(
        long,
        value_name = "DIR",
        env = "SALTBRIDGE_STATE_DIR",
        default_value = "saltbridge-state"
    )]
    pub state_dir: PathBuf,
    /// Send nothing: show, for each event, what the routes decide (as `explain`).
    #[arg(long)]
    pub dry_run: bool,
    /// With `--dry-run`: `text` for people, `json` for one object a line.
    #[arg(long, short, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// The id of the master the journal was read from [default: as `run`].
    #[arg(long, value_name = "ID", env = "SALTBRIDGE_MASTER_ID")]
    pub master_id: Option<String>,
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| SystemTime::now().checked_sub(d))
        .ok_or_else(|| format!("expected an RFC 3339 time or an age such as 1h, got `{s}`"))
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let state = StateDir::new(&args.state_dir);
    let dir = state.journal();
    if !dir.is_dir() {
        eprintln!(
            "saltbridge replay: no journal in {} (a `run` reading a unix or TCP bus keeps one there)",
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let spec = SourceSpec::Journal {
        dir,
        since: Some(args.since),
        until: args.until,
    };
    if args.dry_run {
        let explain = ExplainArgs {
            config: args.config,
            source: Some(spec),
            format: args.format,
            color: args.color,
            master_id: args.master_id,
        };
        return super::explain::run(explain).await;
    }
    let loaded = config::load(&args.config);
    let (config, sinks) = match load_routes(loaded, args.master_id.as_deref(), |t| &mut t.0) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let options = daemon::Options {
        source: spec,
        config_path: args.config.clone(),
        state_dir: StateDir::new(args.state_dir.join("replay")),
        shutdown_timeout: Duration::from_secs(10),
        listen: Listen::Off,
    };
    let daemon = match Daemon::start(config, sinks, options) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("saltbridge replay: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = daemon.run(os_signal(), |_, _| {}).await?;
    super::run::print_report(&report);
    Ok(ExitCode::SUCCESS)
}
