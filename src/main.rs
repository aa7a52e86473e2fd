//! The `saltbridge` command line: parses arguments and wires stages together.

use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use saltbridge::route::TagGlobs;
use saltbridge::shutdown::{os_signal, ShutdownSignal};
use saltbridge::source::{self, ReaderOptions, SourceSpec, SourceStats};
use saltbridge::tail::{Format, TailPrinter};

#[derive(Parser)]
#[command(
    name = "saltbridge",
    version,
    about = "Reads a Salt master's event bus and routes events to webhooks and Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print events from the bus, like `salt-run state.event`.
    Tail(TailArgs),
}

#[derive(Args)]
struct TailArgs {
    /// Where to read: ipc:PATH (a socket or a master config file), tcp:HOST:PORT,
    /// zmq:ENDPOINT, jsonl:PATH (jsonl:- is stdin) or capture:PATH.
    #[arg(
        long,
        short,
        value_name = "SPEC",
        default_value = "ipc:/var/run/salt/master/master_event_pub.ipc"
    )]
    source: SourceSpec,
    /// Print only events whose tag matches this glob (fnmatch, as in the reactor); repeatable.
    #[arg(long = "tag", short, value_name = "GLOB")]
    tags: Vec<String>,
    /// Output form [default: pretty on a terminal, json otherwise].
    #[arg(long, short, value_enum)]
    format: Option<Format>,
    /// Colour in pretty output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Events buffered between the bus reader and the printer; beyond it events are dropped and counted.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    buffer: usize,
    /// Largest bus frame accepted, in bytes.
    #[arg(long, default_value_t = saltbridge::decode::DEFAULT_MAX_FRAME, value_name = "BYTES")]
    max_frame: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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
        Command::Tail(args) => runtime.block_on(tail(args)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let tags = if args.tags.is_empty() {
        None
    } else {
        Some(TagGlobs::new(&args.tags)?)
    };
    let stdout_tty = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        Format::Pretty
    } else {
        Format::Json
    });
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => stdout_tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let opts = ReaderOptions {
        channel_capacity: args.buffer,
        max_frame: args.max_frame,
        ..ReaderOptions::default()
    };
    let (signal, shutdown) = ShutdownSignal::new();
    let mut handle = source::spawn(args.source.clone(), opts, shutdown);
    let out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let mut printer = TailPrinter::new(out, format, color, tags);
    let stop = os_signal();
    tokio::pin!(stop);
    let mut broken_pipe = false;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            ev = handle.events.recv() => {
                let Some(ev) = ev else { break };
                let written = printer.print(&ev).and_then(|_| {
                    // Flush whenever the reader is idle, so a live tail shows events at once.
                    if handle.events.is_empty() { printer.flush() } else { Ok(()) }
                });
                if let Err(e) = written {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        broken_pipe = true;
                        break;
                    }
                    return Err(e).context("writing to stdout");
                }
            }
        }
    }
    signal.trigger();
    if !broken_pipe {
        let _ = printer.flush();
    }
    let outcome = handle.task.await.context("source task")?;
    let stats = &handle.stats;
    let (malformed, dropped) = (
        SourceStats::get(&stats.malformed),
        SourceStats::get(&stats.dropped),
    );
    if malformed > 0 || dropped > 0 {
        let _ = writeln!(
            std::io::stderr(),
            "saltbridge: {} events, {malformed} malformed frames skipped ({} bytes), {dropped} events dropped on a full buffer",
            SourceStats::get(&stats.events),
            SourceStats::get(&stats.malformed_bytes),
        );
    }
    outcome.with_context(|| format!("source {}", args.source))?;
    Ok(ExitCode::SUCCESS)
}
