//! `saltbridge dlq list|show|replay`: the dead letters, read back.
//!
//! Dead letters are the events a sink rejected or that failed past
//! `retry.give_up_after`, one JSON line each in
//! `<state-dir>/dead-letters.jsonl`. An entry's id is its line number.
//! `replay` puts entries back into their sink's spool through the spool's
//! inbox, so it is safe while `saltbridge run` is running (it picks them up
//! within a second) and when it is not (the next start does); replayed ids
//! are recorded in `dead-letters.replayed` and not replayed twice unless
//! asked. The logic is `saltbridge::delivery::dlq`'s; this file parses and prints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use saltbridge::delivery::dead_letter::{self, Entry};
use saltbridge::delivery::dlq::{self, ReplayStep};
use saltbridge::state_dir::StateDir;

/// Arguments of `saltbridge dlq`.
#[derive(Args)]
pub struct DlqArgs {
    /// saltbridge's state directory (as given to `run`).
    #[arg(
        long,
        value_name = "DIR",
        env = "SALTBRIDGE_STATE_DIR",
        default_value = "saltbridge-state",
        global = true
    )]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter: id, time, sink, route, status, tag, error.
    List(Filter),
    /// Dead letters whole, as JSON.
    Show {
        /// Ids from `dlq list`.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Put dead letters back into their sinks' spools, to be sent again.
    Replay(Filter),
}

/// Which dead letters a command takes.
#[derive(Args)]
pub struct Filter {
    /// Only this sink's.
    #[arg(long, value_name = "NAME")]
    pub sink: Option<String>,
    /// Only those dead-lettered since TIME: RFC 3339 (`2026-11-26T10:00:00Z`) or an age (`2h`).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Only these ids.
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<u64>,
    /// Include entries already replayed.
    #[arg(long)]
    pub all: bool,
}

fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| SystemTime::now().checked_sub(d))
        .ok_or_else(|| format!("expected an RFC 3339 time or an age such as 2h, got `{s}`"))
}

impl Filter {
    fn to_lib(&self) -> dlq::Filter {
        dlq::Filter {
            sink: self.sink.clone(),
            since: self.since,
            ids: self.ids.clone(),
            all: self.all,
        }
    }
}

pub fn run(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let state_dir = StateDir::new(&args.state_dir);
    let dead = state_dir.dead_letters();
    let (entries, bad) = dead_letter::read_all(&dead)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dead.display()))?;
    if !bad.is_empty() {
        eprintln!(
            "warning: {} has {} lines that are not JSON (lines {:?}); they are left out",
            dead.display(),
            bad.len(),
            &bad[..bad.len().min(10)]
        );
    }
    match args.command {
        DlqCommand::List(f) => Ok(list(&dead, &entries, &f.to_lib())),
        DlqCommand::Show { ids } => Ok(show(&entries, &ids)),
        DlqCommand::Replay(f) => replay(&state_dir, &dead, &entries, &f.to_lib()),
    }
}

fn list(dead: &Path, entries: &[Entry], f: &dlq::Filter) -> ExitCode {
    let shown: Vec<&Entry> = entries.iter().filter(|e| f.keeps(e)).collect();
    if shown.is_empty() {
        eprintln!(
            "no dead letters{} in {}",
            if f.all { "" } else { " waiting" },
            dead.display()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>6}  {:<20}  {:<12}  {:<20}  {:>6}  {:<40}  ERROR",
        "ID", "TIME", "SINK", "ROUTE", "STATUS", "TAG"
    );
    for e in &shown {
        let time = e
            .time
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_default();
        let status = e
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        let mark = if e.replayed { " (replayed)" } else { "" };
        println!(
            "{:>6}  {:<20}  {:<12}  {:<20}  {:>6}  {:<40}  {}{mark}",
            e.id,
            time,
            clip(&e.sink, 12),
            clip(&e.route, 20),
            status,
            clip(&e.tag, 40),
            clip(&e.error, 80)
        );
    }
    let sums: Vec<String> = dlq::count_per_sink(&shown)
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    eprintln!("{} dead letters ({})", shown.len(), sums.join(", "));
    ExitCode::SUCCESS
}

fn show(entries: &[Entry], ids: &[u64]) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for id in ids {
        match entries.iter().find(|e| e.id == *id) {
            Some(e) => {
                let v = dlq::shown(e);
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            None => {
                eprintln!("no dead letter with id {id}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

fn replay(
    state_dir: &StateDir,
    dead: &Path,
    entries: &[Entry],
    f: &dlq::Filter,
) -> anyhow::Result<ExitCode> {
    let chosen: Vec<&Entry> = entries.iter().filter(|e| f.keeps(e)).collect();
    if chosen.is_empty() {
        eprintln!("nothing to replay in {}", dead.display());
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress(chosen.len() as u64);
    dlq::replay(state_dir, dead, &chosen, |step| match step {
        ReplayStep::Chunk(n) => bar.inc(n as u64),
        ReplayStep::SinkDone {
            sink,
            events,
            running,
        } => {
            let who = if running {
                "the running saltbridge queues them within a second"
            } else {
                "saltbridge is not running: the next `saltbridge run` queues them"
            };
            bar.suspend(|| eprintln!("sink {sink}: {events} events put back ({who})"));
        }
    })?;
    bar.finish_and_clear();
    eprintln!("replayed {} dead letters", chosen.len());
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal for long replays; hidden otherwise.
fn progress(len: u64) -> indicatif::ProgressBar {
    if len < 10_000 || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "replaying {bar:40} {pos}/{len} dead letters ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        return one_line;
    }
    let mut out: String = one_line.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}
