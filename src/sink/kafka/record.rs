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
use crate::salt::Fnmatch;
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
    job_return: Fnmatch,
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
            job_return: Fnmatch::new("salt/job/*/ret/*"),
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
            None => default_key_into(out, &self.job_return, &mut rec.key),
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
fn default_key_into(out: &Outgoing, job_return: &Fnmatch, key: &mut String) {
    let ev = &out.event;
    let is_return = job_return.is_match(ev.tag());
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
mod tests {
    use super::*;
    use crate::Event;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn out(tag: &str, data: Value) -> Outgoing {
        Outgoing::new(
            Event::synthetic(tag, data, Arc::from("ipc:/var/run/salt/master")),
            "r1",
        )
    }

    fn builder(extra: Value) -> RecordBuilder {
        let mut v =
            json!({"type": "kafka", "brokers": "b:9092", "topic": "salt.{{ tag.split('/')[1] }}"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let cfg = KafkaConfig::parse("s", &v).unwrap();
        RecordBuilder::new("s", &cfg).unwrap()
    }

    #[test]
    fn default_key_minion_then_jid_then_tag() {
        let b = builder(json!({}));
        let ret = out("salt/job/1/ret/web-01", json!({"id": "web-01", "jid": "1"}));
        assert_eq!(b.build(&ret).unwrap().key, "web-01");
        let new = out(
            "salt/job/1/new",
            json!({"jid": "20261126135646965819", "id": "x"}),
        );
        assert_eq!(b.build(&new).unwrap().key, "20261126135646965819");
        let int_jid = out("salt/job/1/new", json!({"jid": 2026112613564696581u64}));
        assert_eq!(b.build(&int_jid).unwrap().key, "2026112613564696581");
        let start = out("salt/minion/web-01/start", json!({"id": "web-01"}));
        assert_eq!(b.build(&start).unwrap().key, "salt/minion/web-01/start");
    }

    /// A record built into a reused `Record`, from data not yet parsed, is
    /// the record built afresh from parsed data.
    #[test]
    fn reused_buffers_and_unparsed_data_give_the_same_records() {
        let unparsed = |o: &Outgoing| {
            let e = &o.event;
            let ev = Event::new(
                e.tag().to_owned(),
                crate::event::JsonText::trusted(e.data_json().to_owned()),
                e.received_at(),
                Arc::from(e.source()),
                None,
            );
            Outgoing::new(ev, "r1")
        };
        let long_tag = format!("salt/job/1/ret/{}", "é".repeat(700));
        let outs = [
            out(
                "salt/job/1/ret/web-01",
                json!({"id": "web-\"01", "jid": "1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
            ),
            out(
                "salt/job/1/new",
                json!({"jid": 2026112613564696581u64, "id": "x"}),
            ),
            out("salt/job/1/ret/a", json!({"id": "", "jid": 1.5})),
            out(&long_tag, json!({"id": 7})),
            out("salt/minion/web-01/start", json!(["id"])),
        ];
        for extra in [
            json!({}),
            json!({"headers": {"x-fun": "{{ data.fun }}", "x-team": "ops"}}),
            json!({"format": "cloudevents"}),
            json!({"format": "cloudevents", "cloudevents": {"mode": "binary"}}),
            json!({"payload": "msgpack"}),
        ] {
            let b = builder(extra.clone());
            let mut reused = Record::default();
            for o in &outs {
                let fresh = b.build(o).unwrap();
                b.build_into(&unparsed(o), &mut reused).unwrap();
                assert_eq!(reused, fresh, "{extra} {}", o.event.tag());
            }
        }
    }

    #[test]
    fn headers_topic_and_templates() {
        let b = builder(
            json!({"key": "{{ data.id }}:{{ route }}", "headers": {"x-fun": "{{ data.fun }}", "x-team": "ops"}}),
        );
        let o = out(
            "salt/job/1/ret/web-01",
            json!({"id": "web-01", "fun": "test.ping"}),
        );
        let r = b.build(&o).unwrap();
        assert_eq!(r.topic, "salt.job");
        assert_eq!(r.key, "web-01:r1");
        let names: Vec<&str> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                HEADER_TAG,
                HEADER_KEY,
                HEADER_MASTER,
                HEADER_ROUTE,
                "x-fun",
                "x-team"
            ]
        );
        assert_eq!(r.headers[1].1, o.key());
        assert_eq!(r.headers[2].1, "ipc:/var/run/salt/master");
        assert_eq!(r.headers[4].1, "test.ping");
    }

    #[test]
    fn header_values_from_event_data_are_bounded() {
        let b = builder(json!({"topic": "salt.x", "headers": {"x-id": "{{ data.id }}"}}));
        let long = "é".repeat(4000);
        let r = b
            .build(&out(&format!("t/{long}"), json!({"id": long})))
            .unwrap();
        for name in [HEADER_TAG, "x-id"] {
            let v = &r.headers.iter().find(|(k, _)| k == name).unwrap().1;
            assert!(
                v.len() <= MAX_HEADER_VALUE_BYTES && v.ends_with("..."),
                "{name}"
            );
        }
        let short = b.build(&out("t/x", json!({"id": "web-01"}))).unwrap();
        assert!(short
            .headers
            .iter()
            .any(|(k, v)| k == "x-id" && v == "web-01"));
    }

    #[test]
    fn bad_topic_is_a_record_error() {
        let b = builder(json!({"topic": "salt/{{ data.x }}"}));
        let e = b.build(&out("a", json!({"x": 1}))).unwrap_err();
        assert!(e.contains("not a valid Kafka topic"), "{e}");
        let b = builder(json!({"topic": "salt.{{ tag.split('/')[5] }}x"}));
        assert_eq!(b.build(&out("a/b", json!({}))).unwrap().topic, "salt.x");
        assert!(check_topic("").is_err() && check_topic("..").is_err());
        assert!(check_topic(&"a".repeat(250)).is_err());
        assert!(check_topic("Salt.job_ret-1").is_ok());
    }

    #[test]
    fn bad_template_names_field() {
        let v =
            json!({"type": "kafka", "brokers": "b", "topic": "t", "headers": {"x-a": "{{ oops"}});
        let cfg = KafkaConfig::parse("s", &v).unwrap();
        assert_eq!(
            RecordBuilder::new("s", &cfg).unwrap_err().field,
            "headers.x-a"
        );
    }

    #[test]
    fn json_payload_splices_data_text() {
        let ev = crate::event::Event::new(
            "salt/job/1/ret/m".into(),
            crate::event::JsonText::trusted(r#"{"b":1.50,"a":"\u00e9"}"#.into()),
            SystemTime::UNIX_EPOCH,
            Arc::from("capture:x"),
            None,
        );
        let o = Outgoing::new(ev, "rt");
        let p = String::from_utf8(json_payload(&o)).unwrap();
        let expect = format!(
            r#"{{"tag":"salt/job/1/ret/m","data":{{"b":1.50,"a":"\u00e9"}},"key":"{}","route":"rt","received_at":"1970-01-01T00:00:00.000000Z","source":"capture:x"}}"#,
            o.key()
        );
        assert_eq!(p, expect);
        let _: Value = serde_json::from_str(&p).unwrap();
    }

    #[test]
    fn msgpack_fallback_packs_json() {
        let v = json!({"a": [1, -2, 1.5, "x", null, true], "b": {}});
        let mut buf = Vec::new();
        write_msgpack(&mut buf, &v);
        let back: Value = rmp_serde::from_slice(&buf).unwrap();
        assert_eq!(back, v);
        let b = builder(json!({"payload": "msgpack"}));
        let r = b.build(&out("t", v.clone())).unwrap();
        assert_eq!(r.payload, buf);
    }
}
