//! `saltbridge demo`'s work, apart from printing: four recorded Salt 3008.4
//! sessions (embedded in the binary) replayed through the routes file and
//! the real pipeline, delivered to the webhook sinks for real (to a
//! receiver in this process); Kafka sinks are not connected, the record
//! each would produce is built. What happened comes back as [`Step`]s,
//! which the CLI prints.
//!
//! Files: `sessions` (the captures and the built-in routes), `sinks` (the
//! routes file's sinks, aimed at the receiver). The HTTP receiver is the
//! library's one receiver ([`crate::receiver`]), shared with the tests and
//! the bench, answering as [`start_receiver`] scripts it.

pub mod sessions;
pub mod sinks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{load_file, load_str, Config, ConfigErrors};
use crate::daemon::drive::{drive, Consumer};
use crate::decode::{decode_all, Decoded};
use crate::event::Event;
use crate::outgoing::Outgoing;
use crate::pipeline::{Outcome, Pipeline};
use crate::receiver::{Mode, Receiver};
use crate::route::Routing;
use sessions::{Session, BUILT_IN_ROUTES};
use sinks::{Delivered, DemoSink};

/// Accepted by Slack-style presets (any 2xx), DingTalk (`errcode` 0) and
/// Feishu (`code` 0) alike.
const ACCEPTED: &str = r#"{"ok":true,"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#;

/// The demo's webhook receiver on 127.0.0.1: records every request and
/// answers 200 with a body every chat preset counts as accepted.
pub async fn start_receiver() -> std::io::Result<Receiver> {
    let receiver = Receiver::start().await?;
    receiver.set_mode(
        Mode::status(200)
            .with_body(ACCEPTED)
            .with_header("content-type", "application/json"),
    );
    Ok(receiver)
}

/// How an event reached the printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Read from the bus just now.
    Bus,
    /// Held by the twin filter earlier, released now (its twin never came).
    Released,
    /// Made by saltbridge itself (a `saltbridge/...` event).
    Emitted,
}

/// What became of one event.
pub enum Verdict {
    /// A legacy event the twin filter holds until its twin comes or `window` passes.
    Held {
        window: Duration,
    },
    Twin {
        kind: &'static str,
        twin_of: String,
    },
    Routed {
        routing: Routing,
        key: String,
        /// Per sink: its name, kind and what it received.
        deliveries: Vec<(String, &'static str, Delivered)>,
    },
}

/// One event and what became of it.
pub struct Step {
    pub tag: String,
    /// The event's data as JSON text.
    pub data: String,
    pub arrival: Arrival,
    pub verdict: Verdict,
}

/// What the replay shows: a step, or a note about the capture.
pub enum Shown {
    Step(Step),
    Note(String),
}

/// The routes the demo uses, the name to show for them, and whether they
/// are the built-in copy: `arg`, else `routes.yaml` if it exists, else
/// the built-in copy of the example.
pub fn load_routes(arg: Option<&Path>) -> Result<(Config, PathBuf, bool), ConfigErrors> {
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

/// Replays `session` through `pipeline`, then releases what it holds (time
/// passes between sessions); `show` gets every step, in order. `window` is
/// the twin filter's, shown when it holds an event.
pub async fn replay(
    session: &Session,
    pipeline: &mut Pipeline,
    sinks: &[(String, DemoSink)],
    receiver: &mut Receiver,
    window: Duration,
    show: &mut impl FnMut(Shown) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let source: Arc<str> = Arc::from(format!("capture:{}.bin", session.name));
    let mut events = Vec::new();
    for item in decode_all(session.bytes, source) {
        match item {
            Decoded::Event(ev) => events.push(ev),
            // The embedded captures decode cleanly (tests/captures.rs);
            // say so if that ever changes rather than hide it.
            Decoded::Malformed { offset, len, error } => show(Shown::Note(format!(
                "{len} bytes at offset {offset} skipped: {error}"
            )))?,
        }
    }
    // Room for the whole session: every event is queued before driving.
    let (tx, mut rx) = crate::source::channel::channel(events.len(), usize::MAX);
    for ev in events {
        let _ = tx.try_send(ev);
    }
    drop(tx);
    let mut replayer = Replayer {
        window,
        sinks,
        receiver,
        read: None,
        show,
    };
    drive(
        pipeline,
        &mut rx,
        None,
        std::future::pending(),
        &mut replayer,
    )
    .await?;
    replayer.released(pipeline.flush(Instant::now())).await
}

/// The demo's [`Consumer`]: each outcome delivered, then shown.
struct Replayer<'a, F> {
    window: Duration,
    sinks: &'a [(String, DemoSink)],
    receiver: &'a mut Receiver,
    /// Tag and data of the event just read.
    read: Option<(String, String)>,
    show: &'a mut F,
}

impl<F: FnMut(Shown) -> std::io::Result<()>> Replayer<'_, F> {
    /// Outcomes that are not of an event just read.
    async fn released(&mut self, outcomes: Vec<Outcome>) -> anyhow::Result<()> {
        for o in outcomes {
            let arrival = later(&o);
            let step = decide(o, arrival, self.sinks, self.receiver).await;
            (self.show)(Shown::Step(step))?;
        }
        Ok(())
    }
}

impl<F: FnMut(Shown) -> std::io::Result<()>> Consumer for Replayer<'_, F> {
    fn reading(&mut self, event: &Event) {
        self.read = Some((event.tag().to_owned(), event.data_json().to_owned()));
    }

    fn follows_clock(&self) -> bool {
        false
    }

    fn batch_size(&self) -> usize {
        1
    }

    async fn outcomes(&mut self, mut outcomes: Vec<Outcome>) -> anyhow::Result<()> {
        let Some((tag, data)) = self.read.take() else {
            return self.released(outcomes).await;
        };
        let is_it = |o: &Outcome| {
            let e = outcome_event(o);
            e.tag() == tag && e.data_json() == data
        };
        // The event just read first, then what it set off (a held twin dropped, ...).
        outcomes.sort_by_key(|o| !is_it(o));
        if !outcomes.first().is_some_and(is_it) {
            let verdict = Verdict::Held {
                window: self.window,
            };
            (self.show)(Shown::Step(Step {
                tag: tag.clone(),
                data: data.clone(),
                arrival: Arrival::Bus,
                verdict,
            }))?;
        }
        for o in outcomes {
            let arrival = if is_it(&o) { Arrival::Bus } else { later(&o) };
            let step = decide(o, arrival, self.sinks, self.receiver).await;
            (self.show)(Shown::Step(step))?;
        }
        Ok(())
    }
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

/// Turns an outcome into a step, delivering to its sinks on the way.
async fn decide(
    o: Outcome,
    arrival: Arrival,
    sinks: &[(String, DemoSink)],
    receiver: &mut Receiver,
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
                let out = Outgoing::new(Arc::clone(&event), Arc::clone(route));
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
