//! `saltbridge demo`'s output: for people (text, optionally coloured), or
//! one JSON object per event (`--format json`), and the totals at the end.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Value};

use super::DemoFormat;
use saltbridge::demo::sinks::{Delivered, DemoSink};
use saltbridge::demo::{Arrival, Step, Verdict};
use saltbridge::route::RouteTable;

/// Bodies and values are cut to this many characters in text output.
const SHOWN_CHARS: usize = 110;
/// An incoming event's data, shown after its tag, is cut shorter.
const DATA_CHARS: usize = 60;

#[derive(Default)]
struct Tally {
    events: u64,
    twins: u64,
    dropped: BTreeMap<String, u64>,
    unmatched: u64,
    routes: BTreeMap<String, u64>,
    received: BTreeMap<String, u64>,
    failed: u64,
}

pub struct Printer {
    out: io::BufWriter<io::Stdout>,
    format: DemoFormat,
    bold: &'static str,
    dim: &'static str,
    red: &'static str,
    green: &'static str,
    cyan: &'static str,
    reset: &'static str,
    session: String,
    tally: Tally,
}

impl Printer {
    pub fn new(format: DemoFormat, color: bool) -> Printer {
        let c = |code: &'static str| if color { code } else { "" };
        Printer {
            out: io::BufWriter::new(io::stdout()),
            format,
            bold: c("\x1b[1m"),
            dim: c("\x1b[2m"),
            red: c("\x1b[31m"),
            green: c("\x1b[32m"),
            cyan: c("\x1b[36m"),
            reset: c("\x1b[0m"),
            session: String::new(),
            tally: Tally::default(),
        }
    }

    pub fn header(
        &mut self,
        routes_path: &Path,
        built_in: bool,
        table: &RouteTable,
        sinks: &[(String, DemoSink)],
        receiver_url: &str,
    ) -> io::Result<()> {
        if self.format == DemoFormat::Json {
            return Ok(());
        }
        let (b, d, r) = (self.bold, self.dim, self.reset);
        let routes: Vec<&str> = table.route_names().collect();
        let of_kind = |kind: &str| -> Vec<&str> {
            sinks
                .iter()
                .filter(|(_, s)| s.kind() == kind)
                .map(|(n, _)| n.as_str())
                .collect()
        };
        let (webhooks, kafkas) = (of_kind("webhook"), of_kind("kafka"));
        writeln!(
            self.out,
            "{b}saltbridge demo{r}: {} recorded Salt 3008.4 sessions through {}",
            super::SESSIONS.len(),
            routes_path.display()
        )?;
        if built_in {
            writeln!(
                self.out,
                "  {d}(no routes.yaml here: using the example built into saltbridge){r}"
            )?;
        }
        writeln!(self.out, "  routes: {}", join_or_none(&routes))?;
        if !webhooks.is_empty() {
            writeln!(
                self.out,
                "  webhook sinks {}: delivered over HTTP to a receiver in this process, {receiver_url}/<sink>",
                webhooks.join(", ")
            )?;
        }
        if !kafkas.is_empty() {
            writeln!(
                self.out,
                "  kafka sinks {}: no broker is contacted; the record each would produce is shown",
                kafkas.join(", ")
            )?;
        }
        Ok(())
    }

    pub fn session(&mut self, n: usize, of: usize, name: &str, what: &str) -> io::Result<()> {
        self.session = name.to_owned();
        if self.format == DemoFormat::Text {
            let (b, c, r) = (self.bold, self.cyan, self.reset);
            writeln!(self.out, "\n{b}{c}== {n}/{of} {name}{r}: {what}")?;
        }
        Ok(())
    }

    /// A remark about the input itself.
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        match self.format {
            DemoFormat::Text => writeln!(self.out, "  {}note{}: {text}", self.red, self.reset),
            DemoFormat::Json => {
                let v = json!({"session": self.session, "note": text});
                writeln!(self.out, "{v}")
            }
        }
    }

    pub fn step(&mut self, step: &Step) -> io::Result<()> {
        self.count(step);
        match self.format {
            DemoFormat::Text => self.text(step),
            DemoFormat::Json => {
                let v = self.json(step);
                writeln!(self.out, "{v}")
            }
        }
    }

    fn count(&mut self, step: &Step) {
        let t = &mut self.tally;
        if step.arrival == Arrival::Bus {
            t.events += 1;
        }
        match &step.verdict {
            Verdict::Held { .. } => {}
            Verdict::Twin { .. } => t.twins += 1,
            Verdict::Routed {
                routing,
                deliveries,
                ..
            } => {
                if let Some(by) = &routing.dropped_by {
                    *t.dropped.entry(by.clone()).or_default() += 1;
                }
                if routing.unmatched {
                    t.unmatched += 1;
                }
                for m in &routing.matches {
                    *t.routes.entry(m.route.clone()).or_default() += 1;
                }
                for (sink, _, got) in deliveries {
                    match got {
                        Delivered::Failed(_) => t.failed += 1,
                        _ => *t.received.entry(sink.clone()).or_default() += 1,
                    }
                }
            }
        }
    }

    fn text(&mut self, step: &Step) -> io::Result<()> {
        let (b, d, red, g, r) = (self.bold, self.dim, self.red, self.green, self.reset);
        let how = match (step.arrival, &step.verdict) {
            (Arrival::Bus, _) => format!("  {}", shorten(&step.data, DATA_CHARS)),
            (Arrival::Released, Verdict::Twin { .. }) => " (held above)".to_owned(),
            (Arrival::Released, _) => {
                " (held above; released: its twin did not come in time)".to_owned()
            }
            (Arrival::Emitted, _) => " (emitted by saltbridge)".to_owned(),
        };
        writeln!(self.out, "{b}{}{r}{d}{how}{r}", step.tag)?;
        match &step.verdict {
            Verdict::Held { window } => writeln!(
                self.out,
                "  {d}held by the twin filter: Salt fires a namespaced twin of this legacy event; waiting up to {}{r}",
                humantime::format_duration(*window)
            ),
            Verdict::Twin { kind, twin_of } => writeln!(
                self.out,
                "  {red}dropped{r}: Salt's duplicate ({kind}) of {twin_of}"
            ),
            Verdict::Routed {
                routing,
                key,
                deliveries,
            } => {
                for m in &routing.matches {
                    let mut why: Vec<String> = m.tag.iter().cloned().collect();
                    why.extend(m.predicates.iter().cloned());
                    let why = if why.is_empty() {
                        "matches every event".to_owned()
                    } else {
                        why.join("; ")
                    };
                    write!(self.out, "  route {g}{}{r}: {d}{why}{r}", m.route)?;
                    match &m.deduplicated {
                        Some(k) => writeln!(self.out, " {red}(dedup: {k:?} seen within the ttl){r}")?,
                        None => writeln!(self.out)?,
                    }
                }
                if let Some(by) = &routing.dropped_by {
                    writeln!(self.out, "  {red}dropped{r} by {by}")?;
                } else if routing.unmatched && routing.sinks.is_empty() {
                    writeln!(self.out, "  {d}no route matched; unmatched: drop{r}")?;
                } else if routing.unmatched {
                    writeln!(self.out, "  no route matched; unmatched: {}", routing.sinks.join(", "))?;
                } else if deliveries.is_empty() {
                    writeln!(self.out, "  {d}sinks: none{r}")?;
                }
                if !deliveries.is_empty() {
                    writeln!(self.out, "  {d}idempotency key {key}{r}")?;
                }
                for (sink, kind, got) in deliveries {
                    self.delivered(sink, kind, got)?;
                }
                Ok(())
            }
        }
    }

    fn delivered(&mut self, sink: &str, kind: &str, got: &Delivered) -> io::Result<()> {
        let (b, d, red, g, r) = (self.bold, self.dim, self.red, self.green, self.reset);
        match got {
            Delivered::Webhook { requests, .. } => {
                for q in requests {
                    writeln!(
                        self.out,
                        "  {g}->{r} {b}{sink}{r} ({kind}) received {} {}: {d}{}{r}",
                        q.method,
                        q.path_and_query(),
                        shorten(&String::from_utf8_lossy(&q.body), SHOWN_CHARS)
                    )?;
                }
                Ok(())
            }
            Delivered::Kafka { topic, key, value } => writeln!(
                self.out,
                "  {g}->{r} {b}{sink}{r} ({kind}, not sent: no broker in the demo) would get topic {topic}, key {key}: {d}{}{r}",
                shorten(&String::from_utf8_lossy(value), SHOWN_CHARS)
            ),
            Delivered::Failed(e) => {
                writeln!(self.out, "  {red}->{r} {b}{sink}{r} ({kind}) {red}failed{r}: {e}")
            }
        }
    }

    fn json(&self, step: &Step) -> Value {
        let arrival = match step.arrival {
            Arrival::Bus => "bus",
            Arrival::Released => "released",
            Arrival::Emitted => "emitted",
        };
        let data: Value = serde_json::from_str(&step.data).unwrap_or(Value::Null);
        let mut v =
            json!({"session": self.session, "tag": step.tag, "data": data, "arrival": arrival});
        let fields = match &step.verdict {
            Verdict::Held { .. } => json!({"held": true}),
            Verdict::Twin { kind, twin_of } => json!({"twin": kind, "twin_of": twin_of}),
            Verdict::Routed {
                routing,
                key,
                deliveries,
            } => {
                let routes: Vec<&str> = routing.matches.iter().map(|m| m.route.as_str()).collect();
                let sinks: Vec<Value> = deliveries
                    .iter()
                    .map(|(sink, kind, got)| delivery_json(sink, kind, got))
                    .collect();
                json!({
                    "dropped_by": routing.dropped_by,
                    "unmatched": routing.unmatched,
                    "routes": routes,
                    "key": key,
                    "sinks": sinks,
                })
            }
        };
        if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
            o.extend(f);
        }
        v
    }

    /// Prints the totals; returns how many deliveries failed.
    pub fn summary(mut self) -> io::Result<u64> {
        let t = &self.tally;
        let counts = |m: &BTreeMap<String, u64>| -> String {
            let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        };
        let dropped: u64 = t.dropped.values().sum();
        let lines = [
            format!(
                "demo: {} events read; {} Salt twins dropped; {} dropped as noise ({}); {} matched no route",
                t.events,
                t.twins,
                dropped,
                counts(&t.dropped),
                t.unmatched
            ),
            format!("  routes matched: {}", counts(&t.routes)),
            format!(
                "  sinks received: {}{}",
                counts(&t.received),
                if t.failed > 0 {
                    format!("; {} deliveries failed", t.failed)
                } else {
                    String::new()
                }
            ),
        ];
        let failed = t.failed;
        match self.format {
            DemoFormat::Text => {
                writeln!(self.out)?;
                for l in &lines {
                    writeln!(self.out, "{l}")?;
                }
                writeln!(
                    self.out,
                    "\nNext: edit routes.yaml and run `saltbridge demo` again; on a master, `saltbridge run -c routes.yaml`."
                )?;
                self.out.flush()?;
            }
            DemoFormat::Json => {
                self.out.flush()?;
                eprintln!("{}", lines.join("\n"));
            }
        }
        Ok(failed)
    }
}

fn delivery_json(sink: &str, kind: &str, got: &Delivered) -> Value {
    match got {
        Delivered::Webhook { status, requests } => {
            let requests: Vec<Value> = requests
                .iter()
                .map(|q| {
                    json!({
                        "method": q.method,
                        "path": q.path_and_query(),
                        "headers": q.headers.iter()
                            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                            .collect::<serde_json::Map<String, Value>>(),
                        "body": String::from_utf8_lossy(&q.body),
                    })
                })
                .collect();
            json!({"sink": sink, "type": kind, "status": status, "requests": requests})
        }
        Delivered::Kafka { topic, key, value } => json!({
            "sink": sink, "type": kind, "sent": false,
            "topic": topic, "key": key, "value": String::from_utf8_lossy(value),
        }),
        Delivered::Failed(e) => json!({"sink": sink, "type": kind, "error": e}),
    }
}

fn join_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// One line, at most `chars` characters, `…` when cut.
fn shorten(text: &str, chars: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}
