//! `saltbridge demo`: what saltbridge does, on a machine with no Salt master
//! and no Kafka. It replays four recorded Salt 3008.4 sessions (embedded in
//! the binary) through the routes file and the real pipeline, delivers to
//! the webhook sinks for real (to a receiver in this process), and prints,
//! event by event, what came in, which twins were dropped, which routes
//! matched and what each sink received. Kafka sinks are not connected: the
//! record each would produce is shown.
//!
//! Files: `sessions` (the captures and the built-in routes), `receiver`
//! (the HTTP receiver), `sinks` (the routes file's sinks, aimed at it),
//! `print` (text and JSON output).

mod print;
mod receiver;
mod sessions;
mod sinks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{Color, EX_CONFIG};
use crate::decode::{decode_all, Decoded};
use crate::event::Event;
use crate::outgoing::Outgoing;
use crate::pipeline::{Outcome, Pipeline};
use crate::route::{load_file, load_str, RouteTable};
use print::{Arrival, Printer, Step, Verdict};
use receiver::Receiver;
use sessions::{BUILT_IN_ROUTES, SESSIONS};
use sinks::DemoSink;

/// Arguments of `saltbridge demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// The routes file [default: routes.yaml if it exists, else a built-in copy of the example].
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `text` for people; `json` for one object per event.
    #[arg(long, short, value_enum, default_value_t = DemoFormat::Text)]
    pub format: DemoFormat,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoFormat {
    Text,
    Json,
}

/// The routes the demo uses, and the name to show for them.
fn load_routes(
    arg: Option<&Path>,
) -> Result<(RouteTable, PathBuf, bool), crate::route::ConfigErrors> {
    let default = Path::new("routes.yaml");
    match arg {
        Some(path) => Ok((load_file(path)?, path.to_owned(), false)),
        None if default.exists() => Ok((load_file(default)?, default.to_owned(), false)),
        None => {
            let name = PathBuf::from("routes.yaml (built in)");
            let table = load_str(&name, BUILT_IN_ROUTES, |k| std::env::var(k).ok())?;
            Ok((table, name, true))
        }
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (table, routes_path, built_in) = match load_routes(args.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let mut receiver = Receiver::start()
        .await
        .context("cannot start the demo's webhook receiver on 127.0.0.1")?;
    let sinks = match sinks::build(&routes_path, &table, receiver.base_url()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let mut printer = Printer::new(args.format, args.color.enabled());
    printer.header(&routes_path, built_in, &table, &sinks, receiver.base_url())?;

    let window = table.twins().window;
    let mut pipeline = Pipeline::new(table, true);
    for (n, session) in SESSIONS.iter().enumerate() {
        printer.session(n + 1, SESSIONS.len(), session.name, session.what)?;
        let source: Arc<str> = Arc::from(format!("capture:{}.bin", session.name));
        for item in decode_all(session.bytes, source) {
            let ev = match item {
                Decoded::Event(ev) => ev,
                // The embedded captures decode cleanly (tests/captures.rs);
                // say so if that ever changes rather than hide it.
                Decoded::Malformed { offset, len, error } => {
                    printer.note(&format!("{len} bytes at offset {offset} skipped: {error}"))?;
                    continue;
                }
            };
            let (tag, data) = (ev.tag().to_owned(), ev.data_json().to_owned());
            let mut outcomes = pipeline.push(ev, Instant::now());
            let read = (tag.clone(), data.clone());
            let is_it = |o: &Outcome| {
                let e = outcome_event(o);
                e.tag() == read.0 && e.data_json() == read.1
            };
            // The event just read first, then what it set off (a held twin dropped, ...).
            outcomes.sort_by_key(|o| !is_it(o));
            if !outcomes.first().is_some_and(is_it) {
                printer.step(&Step {
                    tag,
                    data,
                    arrival: Arrival::Bus,
                    verdict: Verdict::Held { window },
                })?;
            }
            for o in outcomes {
                let arrival = if is_it(&o) { Arrival::Bus } else { later(&o) };
                let step = decide(o, arrival, &sinks, &mut receiver).await;
                printer.step(&step)?;
            }
        }
        // Time passes between sessions: whatever the twin filter holds goes on.
        for o in pipeline.flush(Instant::now()) {
            let arrival = later(&o);
            let step = decide(o, arrival, &sinks, &mut receiver).await;
            printer.step(&step)?;
        }
    }
    let failed = printer.summary()?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn outcome_event(o: &Outcome) -> &Event {
    match o {
        Outcome::Twin { event, .. } | Outcome::Routed { event, .. } => event,
    }
}

/// How an event that is not the one just read came out of the pipeline.
fn later(o: &Outcome) -> Arrival {
    if outcome_event(o).is_own() {
        Arrival::Emitted
    } else {
        Arrival::Released
    }
}

/// Turns an outcome into a printed step, delivering to its sinks on the way.
async fn decide(
    o: Outcome,
    arrival: Arrival,
    sinks: &[(String, DemoSink)],
    receiver: &mut receiver::Receiver,
) -> Step {
    match o {
        Outcome::Twin {
            event,
            kind,
            twin_of,
        } => Step {
            tag: event.tag().to_owned(),
            data: event.data_json().to_owned(),
            arrival,
            verdict: Verdict::Twin {
                kind: kind.name(),
                twin_of,
            },
        },
        Outcome::Routed { event, routing } => {
            let tag = event.tag().to_owned();
            let data = event.data_json().to_owned();
            let key = event.idempotency_key();
            let event = Arc::new(event);
            let mut deliveries = Vec::new();
            for (sink, route) in routing.sinks.iter().zip(&routing.sink_routes) {
                let Some((_, demo_sink)) = sinks.iter().find(|(n, _)| n == sink) else {
                    continue;
                };
                let out = Outgoing {
                    event: Arc::clone(&event),
                    route: route.clone(),
                    key: key.clone(),
                };
                let got = demo_sink.deliver(&out, receiver).await;
                deliveries.push((sink.clone(), demo_sink.kind(), got));
            }
            Step {
                tag,
                data,
                arrival,
                verdict: Verdict::Routed {
                    routing,
                    key,
                    deliveries,
                },
            }
        }
    }
}
