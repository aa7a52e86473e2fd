//! `saltbridge tail`: print the bus.

mod printer;

use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::Color;
use printer::{Format, TailPrinter};
use saltbridge::route::TagGlobs;
use saltbridge::shutdown::{os_signal, ShutdownSignal};
use saltbridge::source::{self, ReaderOptions, SourceSpec, SourceStats};

/// Arguments of `saltbridge tail`.
#[derive(Args)]
pub struct TailArgs {
    /// Where to read: ipc:PATH (a socket or a master config file), tcp:HOST:PORT,
    /// zmq:ENDPOINT, saltapi:https://HOST:PORT (credentials from SALTBRIDGE_SALTAPI_*),
    /// jsonl:PATH (jsonl:- is stdin) or capture:PATH.
    #[arg(
        long,
        short,
        value_name = "SPEC",
        default_value = "ipc:/var/run/salt/master/master_event_pub.ipc"
    )]
    pub source: SourceSpec,
    /// Print only events whose tag matches this glob (fnmatch, as in the reactor); repeatable.
    #[arg(long = "tag", short, value_name = "GLOB")]
    pub tags: Vec<String>,
    /// Output form [default: pretty on a terminal, json otherwise].
    #[arg(long, short, value_enum)]
    pub format: Option<Format>,
    /// Colour in pretty output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Events buffered between the bus reader and the printer; beyond it events are dropped and counted.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    pub buffer: usize,
    /// Largest bus frame accepted, in bytes.
    #[arg(long, default_value_t = saltbridge::decode::DEFAULT_MAX_FRAME, value_name = "BYTES")]
    pub max_frame: usize,
}

/// Runs `tail` until the source ends or a signal arrives.
pub async fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let tags = if args.tags.is_empty() {
        None
    } else {
        Some(TagGlobs::new(&args.tags))
    };
    let stdout_tty = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        Format::Pretty
    } else {
        Format::Json
    });
    let color = args.color.enabled();
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
