//! Turns one [`Outgoing`] event into the Kafka record saltbridge produces:
//! topic, key, headers and payload.
//!
//! The formats are a contract with consumers, documented in
//! docs/sinks-kafka.md. The JSON payload splices the event's data text in as
//! decoded, never re-serialised, so what a consumer reads under `data` is
//! byte for byte what `tail --format json` prints. The key defaults to the
//! minion id for job returns, so one minion's returns share a partition and
//! stay in order. A record that cannot be built (a template error, a topic
//! name Kafka would refuse) is an error for that record alone.

use serde_json::value::RawValue;
use serde_json::Value;

use super::config::KafkaConfig;
use super::template::{Template, Templates};
use crate::event::json::write_str;
use crate::event::partial::raw_members;
use crate::event::trace::trace_context;
use crate::outgoing::Outgoing;
use crate::sink::cloudevents::{self, Attributes, CloudEventsConfig, Format, Mode};
use crate::sink::SinkConfigError;

/// Longest header value built from event data (the tag, a header
/// template), in bytes; a longer one is cut and ends in `...`. Any minion
/// chooses its tags: the tag is whole in the payload, the header is for
/// routing and filtering, as the webhook's `max_header_bytes`.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;

/// The headers every record carries.
pub const HEADER_TAG: &str = "saltbridge-tag";
pub const HEADER_KEY: &str = "saltbridge-key";
pub const HEADER_MASTER: &str = "saltbridge-master";
pub const HEADER_ROUTE: &str = "saltbridge-route";
/// On an event a syndic relayed to this master of masters: the syndic's id.
pub const HEADER_SYNDIC: &str = "saltbridge-syndic";

/// Kafka's limit on a topic name's length.
const MAX_TOPIC_LEN: usize = 249;

/// One record ready for the producer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: String,
    /// The `saltbridge-*` headers first, then the sink's `headers`, in name
    /// order, then `traceparent`/`tracestate` and the CloudEvents headers.
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Builds records for one sink.
#[derive(Debug)]
pub struct RecordBuilder {
    templates: Templates,
    topic: Template,
    key: Option<Template>,
    headers: Vec<(String, Template)>,
    msgpack: bool,
    /// `format: cloudevents`: its mode and source.
    cloudevents: Option<CloudEventsConfig>,
}

impl RecordBuilder {
    /// Compiles the sink's templates; a template error names its field.
    pub fn new(name: &str, cfg: &KafkaConfig) -> Result<RecordBuilder, SinkConfigError> {
        let mut templates = Templates::new();
        let bad = |field: &str, e: minijinja::Error| {
            SinkConfigError::new(name, field, format!("bad template: {e}"))
        };
        let topic = templates
            .add("topic", &cfg.topic)
            .map_err(|e| bad("topic", e))?;
        let key = match &cfg.key {
            Some(k) => Some(templates.add("key", k).map_err(|e| bad("key", e))?),
            None => None,
        };
        let mut headers = Vec::with_capacity(cfg.headers.len());
        for (h, src) in &cfg.headers {
            let field = format!("headers.{h}");
            let t = templates.add(&field, src).map_err(|e| bad(&field, e))?;
            headers.push((h.clone(), t));
        }
        Ok(RecordBuilder {
            templates,
            topic,
            key,
            headers,
            msgpack: cfg.is_msgpack(),
            cloudevents: (cfg.format == Format::Cloudevents)
                .then(|| cfg.cloudevents.clone().unwrap_or_default()),
        })
    }

    /// The record for `out`, or why it cannot be produced.
    pub fn build(&self, out: &Outgoing) -> Result<Record, String> {
        let mut rec = Record::default();
        self.build_into(out, &mut rec)?;
        Ok(rec)
    }

    /// [`build`](Self::build) into `rec`, reusing its buffers: the sink
    /// builds a batch's records one after another into one `Record`, which
    /// librdkafka copies, so a record costs no allocation of its own once
    /// the buffers have grown (the template renders and `format:
    /// cloudevents` excepted). On error `rec` holds a partial record.
    pub fn build_into(&self, out: &Outgoing, rec: &mut Record) -> Result<(), String> {
        let mut ctx = None;
        let render = |t: &Template, what: &str, ctx: &mut Option<minijinja::Value>| {
            self.templates
                .render(t, out, ctx)
                .map_err(|e| format!("{what} template failed: {e}"))
        };
        rec.topic.clear();
        match &self.topic {
            Template::Literal(t) => rec.topic.push_str(t),
            t => rec.topic.push_str(&render(t, "topic", &mut ctx)?),
        }
        check_topic(&rec.topic)?;
        rec.key.clear();
        match &self.key {
            Some(t) => rec.key.push_str(&render(t, "key", &mut ctx)?),
            None => default_key_into(out, &mut rec.key),
        }
        let ev = &out.event;
        let mut headers = HeaderWriter::new(&mut rec.headers);
        headers.push_bounded(HEADER_TAG, ev.tag());
        headers.push(HEADER_KEY, out.key());
        headers.push_bounded(HEADER_MASTER, out.master());
        headers.push(HEADER_ROUTE, &out.route);
        if let Some(syndic) = ev.provenance().syndic.as_deref() {
            headers.push_bounded(HEADER_SYNDIC, syndic);
        }
        for (name, t) in &self.headers {
            let v = render(t, &format!("header {name}"), &mut ctx)?;
            headers.push_bounded(name, &v);
        }
        if let Some(t) = trace_context(out.event.data_json()) {
            headers.push("traceparent", &t.traceparent);
            if let Some(state) = t.tracestate {
                headers.push("tracestate", &state);
            }
        }
        rec.payload.clear();
        if let Some(ce) = &self.cloudevents {
            cloudevents_record(ce, out, &mut headers, &mut rec.payload);
        } else if self.msgpack {
            write_msgpack_payload(out, &mut rec.payload);
        } else {
            write_json_payload(out, &mut rec.payload);
        }
        headers.finish();
        Ok(())
    }
}

/// Writes a record's headers over the ones a reused `Record` holds, reusing
/// their strings; [`finish`](Self::finish) drops those left over.
struct HeaderWriter<'r> {
    headers: &'r mut Vec<(String, String)>,
    used: usize,
}

impl<'r> HeaderWriter<'r> {
    fn new(headers: &'r mut Vec<(String, String)>) -> Self {
        HeaderWriter { headers, used: 0 }
    }

    fn slot(&mut self, name: &str) -> &mut String {
        if self.used == self.headers.len() {
            self.headers.push((String::new(), String::new()));
        }
        let (n, v) = &mut self.headers[self.used];
        self.used += 1;
        n.clear();
        n.push_str(name);
        v.clear();
        v
    }

    fn push(&mut self, name: &str, value: &str) {
        self.slot(name).push_str(value);
    }

    /// A header whose value comes from event data: cut to
    /// [`MAX_HEADER_VALUE_BYTES`] on a character boundary, ending in `...`.
    fn push_bounded(&mut self, name: &str, value: &str) {
        let v = self.slot(name);
        if value.len() <= MAX_HEADER_VALUE_BYTES {
            v.push_str(value);
            return;
        }
        let mut end = MAX_HEADER_VALUE_BYTES - 3;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        v.push_str(&value[..end]);
        v.push_str("...");
    }

    fn finish(self) {
        self.headers.truncate(self.used);
    }
}

/// `format: cloudevents` (Kafka protocol binding): structured mode's
/// envelope as the value with `content-type: application/cloudevents+json`,
/// or binary mode's `ce_*` headers with the data as the value.
fn cloudevents_record(
    ce: &CloudEventsConfig,
    out: &Outgoing,
    headers: &mut HeaderWriter<'_>,
    payload: &mut Vec<u8>,
) {
    if ce.mode == Mode::Binary {
        let attrs = Attributes::of(out, ce.source.as_deref());
        headers.push("content-type", "application/json");
        for (name, value) in attrs.pairs() {
            headers.push_bounded(&format!("ce_{name}"), value);
        }
        payload.extend_from_slice(out.event.data_json().as_bytes());
        return;
    }
    headers.push(
        "content-type",
        &format!("{}; charset=UTF-8", cloudevents::STRUCTURED_CONTENT_TYPE),
    );
    payload.reserve(out.event.data_json().len() + 400);
    cloudevents::write_event(payload, out, ce.source.as_deref());
}

/// The default key, appended to `key`: the minion id of a job return, else
/// the jid, else the tag.
fn default_key_into(out: &Outgoing, key: &mut String) {
    let ev = &out.event;
    let is_return = is_job_return_tag(ev.tag());
    if let Some(whole) = ev.data_if_parsed() {
        let id = is_return.then(|| whole.get("id")).flatten();
        match scalar_text(id).or_else(|| scalar_text(whole.get("jid"))) {
            Some(k) => key.push_str(&k),
            None => key.push_str(ev.tag()),
        }
        return;
    }
    // Only `id` and `jid` are read, from their raw text: parsing all of a
    // 5 KB return for them cost more than the rest of the record
    // (scripts/bench, Kafka rows).
    let [id, jid] = raw_members(ev.data_json(), &["id", "jid"]).unwrap_or([None, None]);
    let id = id.filter(|_| is_return);
    if !(raw_scalar_into(id, key) || raw_scalar_into(jid, key)) {
        key.push_str(ev.tag());
    }
}

/// `salt/job/*/ret/*` as Salt's fnmatch reads it (`*` crosses `/`),
/// without running a pattern on every record.
fn is_job_return_tag(tag: &str) -> bool {
    tag.strip_prefix("salt/job/")
        .is_some_and(|rest| rest.contains("/ret/"))
}

/// A string or a number as text (jids can be integers); anything else is absent.
fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// [`scalar_text`] of a raw JSON value, appended to `out`; false when absent.
fn raw_scalar_into(v: Option<&RawValue>, out: &mut String) -> bool {
    let Some(raw) = v.map(RawValue::get) else {
        return false;
    };
    if let Ok(s) = serde_json::from_str::<&str>(raw) {
        out.push_str(s);
        return !s.is_empty();
    }
    match serde_json::from_str::<Value>(raw)
        .ok()
        .as_ref()
        .and_then(|v| scalar_text(Some(v)))
    {
        Some(text) => {
            out.push_str(&text);
            true
        }
        None => false,
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn check_topic(topic: &str) -> Result<(), String> {
    let ok = !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "topic {topic:?} is not a valid Kafka topic name (1 to {MAX_TOPIC_LEN} of A-Z a-z 0-9 . _ -)"
        ))
    }
}

/// `{"tag","data","key","route","received_at","source"}` with `data` spliced in as decoded.
pub fn json_payload(out: &Outgoing) -> Vec<u8> {
    let mut buf = Vec::new();
    write_json_payload(out, &mut buf);
    buf
}

/// [`json_payload`], appended to `buf`.
fn write_json_payload(out: &Outgoing, buf: &mut Vec<u8>) {
    use std::io::Write;
    let ev = &out.event;
    let data = ev.data_json();
    buf.reserve(data.len() + ev.tag().len() + out.route.len() + 160);
    buf.extend_from_slice(b"{\"tag\":");
    write_str(buf, ev.tag());
    buf.extend_from_slice(b",\"data\":");
    buf.extend_from_slice(data.as_bytes());
    buf.extend_from_slice(b",\"key\":");
    write_str(buf, out.key());
    buf.extend_from_slice(b",\"route\":");
    write_str(buf, &out.route);
    // RFC 3339 has nothing to escape in JSON; written without a String.
    let at = humantime::format_rfc3339_micros(ev.received_at());
    let _ = write!(buf, ",\"received_at\":\"{at}\"");
    buf.extend_from_slice(b",\"source\":");
    write_str(buf, ev.source());
    buf.push(b'}');
}

/// Salt's own msgpack bytes of the data when the event came off the bus,
/// else the data packed from its JSON form.
pub fn msgpack_payload(out: &Outgoing) -> Vec<u8> {
    let mut buf = Vec::new();
    write_msgpack_payload(out, &mut buf);
    buf
}

/// [`msgpack_payload`], appended to `buf`.
fn write_msgpack_payload(out: &Outgoing, buf: &mut Vec<u8>) {
    match out.event.raw() {
        Some(raw) => buf.extend_from_slice(raw.msgpack_data()),
        None => write_msgpack(buf, out.event.data()),
    }
}

/// Packs a JSON value as msgpack (strings as str, integers in the smallest form).
pub fn write_msgpack(buf: &mut Vec<u8>, v: &Value) {
    use rmp::encode;
    // Writing into a Vec cannot fail.
    match v {
        Value::Null => {
            let _ = encode::write_nil(buf);
        }
        Value::Bool(b) => {
            let _ = encode::write_bool(buf, *b);
        }
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                let _ = encode::write_uint(buf, u);
            } else if let Some(i) = n.as_i64() {
                let _ = encode::write_sint(buf, i);
            } else {
                let _ = encode::write_f64(buf, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        Value::String(s) => {
            let _ = encode::write_str(buf, s);
        }
        Value::Array(items) => {
            let _ = encode::write_array_len(buf, items.len() as u32);
            for item in items {
                write_msgpack(buf, item);
            }
        }
        Value::Object(map) => {
            let _ = encode::write_map_len(buf, map.len() as u32);
            for (k, item) in map {
                let _ = encode::write_str(buf, k);
                write_msgpack(buf, item);
            }
        }
    }
}

#[cfg(test)]
mod tests;
