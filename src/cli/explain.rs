//! `saltbridge explain -c FILE --source SPEC`: for each event, what the
//! twin filter, the noise presets and the routes decided, and why. Nothing
//! is delivered. `jsonl:` and `capture:` sources end at end of file; a live
//! source runs until SIGINT/SIGTERM and follows reloads of the file.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::{load_routes, Color};
use saltbridge::config;
use saltbridge::config::{load_file, reload};
use saltbridge::daemon::drive::{drive, Consumer};
use saltbridge::event::Event;
use saltbridge::pipeline::{Outcome, Pipeline};
use saltbridge::route::Routing;
use saltbridge::shutdown::{os_signal, ShutdownSignal};
use saltbridge::source::{self, ReaderOptions, SourceSpec};
use saltbridge::twins::TwinKind;

/// Arguments of `saltbridge explain`.
#[derive(Args)]
pub struct ExplainArgs {
    /// The routes file.
    #[arg(long, short, value_name = "FILE", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// Where to read events [default: the file's `source:`, else the master's socket].
    #[arg(long, short, value_name = "SPEC")]
    pub source: Option<SourceSpec>,
    /// `text` for people; `json` for one object a line.
    #[arg(long, short, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// The id of the master the events come from [default: `masters.id`, else the master config's `id`, else `<hostname>_master`].
    #[arg(long, value_name = "ID")]
    pub master_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    Text,
    Json,
}

/// Totals printed at the end.
#[derive(Default)]
struct Tally {
    events: u64,
    twins: BTreeMap<&'static str, u64>,
    dropped_by: BTreeMap<String, u64>,
    routes: BTreeMap<String, u64>,
    unmatched: u64,
}

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_file(&args.config);
    let config = match load_routes(loaded, args.master_id.as_deref(), |c| c) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let spec = config::choose_source(args.source.clone(), &config);
    let (signal, shutdown) = ShutdownSignal::new();
    let reloads = spec
        .is_live()
        .then(|| reload::watch(args.config.clone(), shutdown.clone()));
    let mut src = source::spawn(spec, ReaderOptions::default(), shutdown);
    let mut pipeline = Pipeline::new(config, true);
    let mut explainer = Explainer {
        out: BufWriter::new(std::io::stdout()),
        format: args.format,
        color: args.color.enabled(),
        tally: Tally::default(),
    };
    drive(
        &mut pipeline,
        &mut src.events,
        reloads,
        os_signal(),
        &mut explainer,
    )
    .await?;
    let Explainer {
        mut out,
        format,
        color,
        mut tally,
    } = explainer;
    // Jobs still open at the end of the input are summarised, incomplete.
    let incomplete = pipeline.job_tracker().open_jobs();
    for o in pipeline.flush(Instant::now()) {
        print(&mut out, &o, format, color, &mut tally)?;
    }
    out.flush()?;
    signal.trigger();
    let source_error = src.task.await.ok().and_then(|r| r.err());
    let twins: Vec<String> = TwinKind::ALL
        .iter()
        .map(|k| format!("{}={}", k.name(), pipeline.twin_filter().dropped(*k)))
        .collect();
    let dropped: Vec<String> = tally
        .dropped_by
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    let routes: Vec<String> = tally
        .routes
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    eprintln!(
        "explain: {} events; twins dropped: {}; dropped by presets/dedup: {}; matched: {}; unmatched: {}; job summaries: {} ({incomplete} incomplete)",
        tally.events,
        twins.join(" "),
        if dropped.is_empty() { "none".into() } else { dropped.join(" ") },
        if routes.is_empty() { "none".into() } else { routes.join(" ") },
        tally.unmatched,
        pipeline.job_tracker().summarised(),
    );
    if let Some(e) = source_error {
        eprintln!("explain: the source stopped: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `explain`'s [`Consumer`]: every outcome printed.
struct Explainer<W: Write> {
    out: W,
    format: ExplainFormat,
    color: bool,
    tally: Tally,
}

impl<W: Write> Consumer for Explainer<W> {
    async fn outcomes(&mut self, outcomes: Vec<Outcome>) -> anyhow::Result<()> {
        for o in outcomes {
            print(&mut self.out, &o, self.format, self.color, &mut self.tally)?;
        }
        Ok(())
    }

    fn idle(&mut self) -> anyhow::Result<()> {
        Ok(self.out.flush()?)
    }
}

/// Terminal colours, or none.
struct Colors {
    bold: &'static str,
    dim: &'static str,
    red: &'static str,
    green: &'static str,
    reset: &'static str,
}

impl Colors {
    fn new(color: bool) -> Self {
        let (bold, dim, red, green, reset) = if color {
            ("\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[0m")
        } else {
            ("", "", "", "", "")
        };
        Colors {
            bold,
            dim,
            red,
            green,
            reset,
        }
    }
}

/// One outcome, as text or JSON; each outcome's two forms side by side, so they stay alike.
fn print(
    out: &mut impl Write,
    o: &Outcome,
    format: ExplainFormat,
    color: bool,
    tally: &mut Tally,
) -> std::io::Result<()> {
    tally.events += 1;
    let c = Colors::new(color);
    match o {
        Outcome::Twin {
            event,
            kind,
            twin_of,
        } => {
            *tally.twins.entry(kind.name()).or_default() += 1;
            match format {
                ExplainFormat::Json => {
                    json_line(out, event, Some(kind.name()), None, &[], &[])
                }
                ExplainFormat::Text if *kind == TwinKind::ClusterPeer => writeln!(
                    out,
                    "{}{}{}\n  {}dropped{}: cluster peer copy (cluster_peer) of {twin_of} published by {}; its bridge routes it",
                    c.bold,
                    event.tag(),
                    c.reset,
                    c.red,
                    c.reset,
                    event.master().unwrap_or("?")
                ),
                ExplainFormat::Text => writeln!(
                    out,
                    "{}{}{}\n  {}dropped{}: Salt twin ({}) of {twin_of}",
                    c.bold,
                    event.tag(),
                    c.reset,
                    c.red,
                    c.reset,
                    kind.name()
                ),
            }
        }
        Outcome::Routed { event, routing } => {
            count(routing, tally);
            if format == ExplainFormat::Json {
                let names: Vec<&str> = routing.matches.iter().map(|m| m.route.as_str()).collect();
                let sinks: Vec<&str> = routing.sinks.iter().map(String::as_str).collect();
                return json_line(
                    out,
                    event,
                    None,
                    routing.dropped_by.as_deref(),
                    &names,
                    &sinks,
                );
            }
            print_routed(out, event, routing, &c)
        }
    }
}

/// A routed event as text: each route that matched and why, then where it goes.
fn print_routed(
    out: &mut impl Write,
    event: &Event,
    routing: &Routing,
    c: &Colors,
) -> std::io::Result<()> {
    let Colors {
        bold,
        dim,
        red,
        green,
        reset,
    } = c;
    writeln!(out, "{bold}{}{reset}", event.tag())?;
    for m in &routing.matches {
        let mut why: Vec<String> = m.tag.iter().cloned().collect();
        why.extend(m.predicates.iter().cloned());
        let why = if why.is_empty() {
            "matches every event".to_owned()
        } else {
            why.join("; ")
        };
        write!(out, "  route {green}{}{reset}: {dim}{why}{reset}", m.route)?;
        match &m.deduplicated {
            Some(key) => writeln!(out, " {red}(dedup: key {key:?} seen within the ttl){reset}")?,
            None => writeln!(out)?,
        }
    }
    if let Some(by) = &routing.dropped_by {
        writeln!(out, "  {red}dropped{reset} by {by}")
    } else if routing.unmatched {
        let to = if routing.sinks.is_empty() {
            "drop".to_owned()
        } else {
            routing.sinks.join(", ")
        };
        writeln!(out, "  no route matched; unmatched: {to}")
    } else if routing.sinks.is_empty() {
        writeln!(out, "  sinks: none (the route sends nowhere)")
    } else {
        writeln!(
            out,
            "  sinks: {} {dim}(key {}, {}){reset}",
            routing.sinks.join(", "),
            event.idempotency_key(),
            provenance_text(event)
        )
    }
}

fn count(r: &Routing, tally: &mut Tally) {
    if let Some(by) = &r.dropped_by {
        *tally.dropped_by.entry(by.clone()).or_default() += 1;
    }
    if r.unmatched {
        tally.unmatched += 1;
    }
    for m in &r.matches {
        *tally.routes.entry(m.route.clone()).or_default() += 1;
    }
}

/// `master m1`, `via syndic s`, `backfilled`: where the event comes from.
fn provenance_text(event: &Event) -> String {
    let p = event.provenance();
    let mut parts = vec![format!("master {}", p.master.as_deref().unwrap_or("?"))];
    if p.peer {
        parts.push("cluster peer copy".into());
    }
    if let Some(s) = &p.syndic {
        parts.push(format!("via syndic {s}"));
    }
    if p.backfilled {
        parts.push("backfilled".into());
    }
    parts.join(", ")
}

fn json_line(
    out: &mut impl Write,
    event: &Event,
    twin_of: Option<&str>,
    dropped_by: Option<&str>,
    routes: &[&str],
    sinks: &[&str],
) -> std::io::Result<()> {
    let p = event.provenance();
    let v = json!({"tag": event.tag(), "twin_of": twin_of, "dropped_by": dropped_by, "routes": routes, "sinks": sinks,
        "master": p.master.as_deref(), "syndic": p.syndic.as_deref(), "backfilled": p.backfilled});
    writeln!(out, "{v}")
}
