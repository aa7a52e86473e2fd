//! The `saltbridge` command line: parses arguments and hands each command
//! to its module under `cli/`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cli;

/// mimalloc rather than glibc's malloc: perf put glibc's allocator at about
/// a quarter of the daemon's CPU samples, and mimalloc took 25-40% off the
/// CPU per event of the blackhole benchmark (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "saltbridge",
    version = cli::version::VERSION,
    about = "Reads a Salt master's event bus and routes events to webhooks and Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read the bus, route events and deliver them to the sinks: the daemon.
    Run(cli::run::RunArgs),
    /// Print events from the bus, like `salt-run state.event`.
    Tail(cli::tail::TailArgs),
    /// Check a routes file; exit 78 with located errors when it is bad.
    Validate(cli::validate::ValidateArgs),
    /// Show, for each event, which twins, presets and routes decide its fate, and why.
    Explain(cli::explain::ExplainArgs),
    /// Run the bus journal's history through a routes file, to its sinks or with --dry-run.
    Replay(cli::replay::ReplayArgs),
    /// Run route unit tests: given events, the sinks they must reach.
    Test(cli::route_test::TestArgs),
    /// List, show and replay dead letters (events a sink would not take).
    Dlq(cli::dlq::DlqArgs),
    /// Show a running `saltbridge run`'s counters: source, sinks, routes, twins.
    Status(cli::status::StatusArgs),
    /// Replay recorded Salt sessions through the routes, to a webhook receiver built in: no master needed.
    Demo(cli::demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cli::completions::CompletionsArgs),
    /// Print the manual page (roff), or write one page per command with --dir.
    Man(cli::man::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .fmt_fields(saltbridge::log_text::fields())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => runtime.block_on(cli::run::run(args)),
        Command::Tail(args) => runtime.block_on(cli::tail::run(args)),
        Command::Validate(args) => Ok(cli::validate::run(args)),
        Command::Explain(args) => runtime.block_on(cli::explain::run(args)),
        Command::Test(args) => Ok(cli::route_test::run(args)),
        Command::Replay(args) => runtime.block_on(cli::replay::run(args)),
        Command::Dlq(args) => cli::dlq::run(args),
        Command::Status(args) => runtime.block_on(cli::status::run(args)),
        Command::Demo(args) => runtime.block_on(cli::demo::run(args)),
        Command::Completions(args) => Ok(cli::completions::run(args, Cli::command())),
        Command::Man(args) => cli::man::run(args, Cli::command()),
    };
    // A read of stdin (`--source jsonl:-`) sits in a blocking thread that
    // only a new line would end: do not wait for it once the work is done.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
