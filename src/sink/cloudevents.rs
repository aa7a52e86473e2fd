//! CloudEvents 1.0 for the webhook and Kafka sinks (`format: cloudevents`):
//! the context attributes of one event, the JSON envelope of structured
//! mode, and the `ce-` / `ce_` headers of binary mode. Pure, shared by both
//! sinks' builders; it imports neither.
//!
//! The attributes, per the CloudEvents 1.0.2 spec (`spec.md`, "Context
//! Attributes"), the JSON format (`formats/json-format.md`) and the HTTP and
//! Kafka bindings (`bindings/http-protocol-binding.md`,
//! `bindings/kafka-protocol-binding.md`):
//!
//! - `id`: the idempotency key, so a consumer's `source`+`id` deduplication
//!   drops exactly the redeliveries at-least-once allows;
//! - `source`: the id of the master that published the event (for a cluster
//!   peer's copy, the origin; `docs/topologies.md`), else the source spec
//!   such as `ipc:/var/run/salt/master/master_event_pub.ipc`, or the sink's
//!   `cloudevents.source`;
//! - `type`: from the tag's shape, with the variable parts (jid, minion id)
//!   left out ([`event_type`]); minions choose tags, so an unknown shape is
//!   `io.saltproject.event` and the set of types stays small;
//! - `subject`: the tag; `time`: Salt's `_stamp` (UTC) or, without one, when
//!   saltbridge read the event; `datacontenttype`: `application/json`.

use std::time::SystemTime;

use serde::Deserialize;

use crate::event::json::write_str;
use crate::event::trace::trace_context;
use crate::outgoing::Outgoing;

/// `specversion`.
pub const SPEC_VERSION: &str = "1.0";
/// Content type of one structured-mode event.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// Content type of a batch of structured-mode events (HTTP batched mode).
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// The type of an event whose tag has no known shape.
pub const GENERIC_TYPE: &str = "io.saltproject.event";
/// Longest beacon or cloud action name kept in a type.
const MAX_TYPE_PART: usize = 64;

/// What a sink sends (`format:`): saltbridge's own JSON, or CloudEvents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Cloudevents,
}

/// How events travel: one JSON envelope, or attributes in headers and the
/// data as the body (CloudEvents' structured and binary content modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Structured,
    Binary,
}

/// `cloudevents:` settings of a sink with `format: cloudevents`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEventsConfig {
    /// `structured` (default) or `binary`.
    #[serde(default)]
    pub mode: Mode,
    /// The `source` attribute instead of the master's id.
    #[serde(default)]
    pub source: Option<String>,
}

/// The context attributes of one event (all of them strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub id: String,
    pub source: String,
    pub kind: String,
    pub subject: String,
    pub time: String,
}

impl Attributes {
    /// The attributes of `out`; `source` overrides the event's source spec.
    pub fn of(out: &Outgoing, source: Option<&str>) -> Attributes {
        let ev = &out.event;
        let source = match source {
            Some(s) => s.to_owned(),
            None if out.master().is_empty() => "saltbridge".to_owned(),
            None => out.master().to_owned(),
        };
        let time = stamp_of(ev.data_json())
            .and_then(|s| salt_stamp_rfc3339(&s))
            .unwrap_or_else(|| rfc3339(ev.received_at()));
        Attributes {
            id: out.key().to_owned(),
            source,
            kind: event_type(ev.tag()),
            subject: ev.tag().to_owned(),
            time,
        }
    }

    /// Name and value of each attribute but `datacontenttype`, in the
    /// order the spec lists them (header names are these with a prefix).
    pub fn pairs(&self) -> [(&'static str, &str); 6] {
        [
            ("specversion", SPEC_VERSION),
            ("id", &self.id),
            ("source", &self.source),
            ("type", &self.kind),
            ("subject", &self.subject),
            ("time", &self.time),
        ]
    }
}

/// Appends the structured-mode envelope of `out` to `buf`: the attributes,
/// `datacontenttype`, `extensions` (name, value: lower-case names the
/// caller checked) and `data`, the event's data spliced in as decoded.
pub fn write_envelope(
    buf: &mut Vec<u8>,
    attrs: &Attributes,
    extensions: &[(&str, &str)],
    out: &Outgoing,
) {
    buf.push(b'{');
    for (name, value) in attrs.pairs().iter().chain(extensions) {
        write_str(buf, name);
        buf.push(b':');
        write_str(buf, value);
        buf.push(b',');
    }
    buf.extend_from_slice(b"\"datacontenttype\":\"application/json\",\"data\":");
    buf.extend_from_slice(out.event.data_json().as_bytes());
    buf.push(b'}');
}

/// Appends the structured-mode envelope of `out`, with the Distributed
/// Tracing extension's `traceparent` and `tracestate` when its data carries
/// a valid trace context.
pub fn write_event(buf: &mut Vec<u8>, out: &Outgoing, source: Option<&str>) {
    let attrs = Attributes::of(out, source);
    let trace = trace_context(out.event.data_json());
    let mut extensions = Vec::new();
    if let Some(t) = &trace {
        extensions.push(("traceparent", t.traceparent.as_str()));
        if let Some(state) = &t.tracestate {
            extensions.push(("tracestate", state.as_str()));
        }
    }
    write_envelope(buf, &attrs, &extensions, out);
}

/// The CloudEvents `type` of a tag: Salt's tag shapes with their variable
/// parts left out, saltbridge's own tags likewise; anything else is
/// [`GENERIC_TYPE`].
pub fn event_type(tag: &str) -> String {
    let parts: Vec<&str> = tag.split('/').collect();
    let known = match parts.as_slice() {
        ["salt", "job", _, "sub", _, "error", ..] => Some("io.saltproject.job.sub.error".into()),
        ["salt", "job", _, what @ ("new" | "ret" | "prog"), ..] => {
            Some(format!("io.saltproject.job.{what}"))
        }
        ["salt", area @ ("run" | "wheel"), _, what @ ("new" | "ret" | "args")] => {
            Some(format!("io.saltproject.{area}.{what}"))
        }
        ["salt", "minion", _, "start"] => Some("io.saltproject.minion.start".into()),
        ["salt", "beacon", _, beacon, ..] => {
            name_part(beacon).map(|b| format!("io.saltproject.beacon.{b}"))
        }
        ["salt", "cloud", _, action] => {
            name_part(action).map(|a| format!("io.saltproject.cloud.{a}"))
        }
        ["salt", "auth"] | ["salt", "key"] => Some(format!("io.saltproject.{}", parts[1])),
        ["salt", "presence", what @ ("present" | "change")] => {
            Some(format!("io.saltproject.presence.{what}"))
        }
        ["minion_start"] => Some("io.saltproject.minion.start".into()),
        ["saltbridge", "job", _, "summary"] => Some("io.saltbridge.job.summary".into()),
        ["saltbridge", "bus", what @ ("gap" | "overflow")] => {
            Some(format!("io.saltbridge.bus.{what}"))
        }
        _ => None,
    };
    known.unwrap_or_else(|| GENERIC_TYPE.to_owned())
}

/// A beacon or cloud action name fit for a type: 1 to 64 of `[a-z0-9_]`.
fn name_part(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_TYPE_PART
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| s.to_ascii_lowercase())
}

/// The top-level `_stamp` of the data's JSON text, if it is a string.
fn stamp_of(data_json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Stamp {
        #[serde(rename = "_stamp")]
        stamp: Option<String>,
    }
    // Only `_stamp` is kept; the rest of the data is skipped, not built.
    serde_json::from_str::<Stamp>(data_json).ok()?.stamp
}

/// Salt's `_stamp` (UTC, `2026-11-26T13:58:07.857326`, `+00:00` on 3008) as
/// RFC 3339 with a `Z`.
pub fn salt_stamp_rfc3339(stamp: &str) -> Option<String> {
    let s = stamp.strip_suffix("+00:00").unwrap_or(stamp);
    let s = s.strip_suffix('Z').unwrap_or(s);
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    Some(rfc3339(t))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// A header value as the HTTP binding wants it: printable ASCII but space,
/// `"` and `%` as is, everything else (UTF-8 bytes) percent-encoded; then
/// cut to `max` bytes before a whole character, `...` marking the cut.
pub fn percent_encode_header(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len());
    let mut cut_at = None;
    let mut utf8 = [0u8; 4];
    for c in s.chars() {
        if out.len() + 3 <= max {
            cut_at = Some(out.len());
        }
        for b in c.encode_utf8(&mut utf8).bytes() {
            if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.len() > max {
        out.truncate(cut_at.unwrap_or(0));
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;
