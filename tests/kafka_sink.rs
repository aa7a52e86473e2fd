//! The Kafka sink against a real Kafka-API broker (tansu, see
//! `tests/support/tansu.rs`), fed with real Salt 3008.4 events decoded from
//! the captures: records land where the templates say, with the default key,
//! the `saltbridge-*` headers and the exact payload; each minion's returns
//! stay in order; every compression codec round-trips; `payload: msgpack` is
//! Salt's own bytes; a broker that is down is a retry, an oversized record a
//! reject; bad settings name their field. Without tansu installed
//! (`scripts/install-kafka-broker`) the broker tests skip, or fail under `CI=true`.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::decode::{decode_all, Decoded};
use saltbridge::sink::kafka::KafkaSink;
use saltbridge::sink::{Outgoing, SendError};
use saltbridge::Event;
use serde_json::{json, Value};
use support::tansu::{consume, Consumed, Tansu};

const SOURCE: &str = "ipc:/var/run/salt/master/master_event_pub.ipc";
const WAIT: Duration = Duration::from_secs(20);

/// Every event of every 3008.4 capture, in file order.
fn capture_events() -> Vec<Event> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/3008.4");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for d in decode_all(&bytes, Arc::from(SOURCE)) {
            match d {
                Decoded::Event(ev) => out.push(ev),
                Decoded::Malformed { .. } => panic!("{} does not decode", f.display()),
            }
        }
    }
    assert!(out.len() >= 50, "only {} capture events", out.len());
    out
}

fn sink(v: Value) -> KafkaSink {
    KafkaSink::from_config("pipeline", &v).unwrap_or_else(|e| panic!("{e}: field {}", e.field))
}

fn settings(brokers: &str, topic: &str, extra: Value) -> Value {
    let mut v = json!({"type": "kafka", "brokers": brokers, "topic": topic, "timeout": "10s"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn job_return(jid: u128, minion: &str, seq: usize) -> Event {
    Event::synthetic(
        format!("salt/job/{jid}/ret/{minion}"),
        json!({"cmd": "_return", "id": minion, "jid": jid.to_string(), "fun": "test.ping",
               "return": true, "retcode": 0, "success": true, "seq": seq}),
        Arc::from(SOURCE),
    )
}

/// The default key as documented: minion id of a return, else jid, else tag.
fn expected_key(ev: &Event) -> String {
    let d = ev.data();
    let parts: Vec<&str> = ev.tag().split('/').collect();
    let is_ret = parts.len() >= 5 && parts[0] == "salt" && parts[1] == "job" && parts[3] == "ret";
    if is_ret {
        if let Some(id) = d["id"].as_str() {
            return id.to_string();
        }
    }
    match &d["jid"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => ev.tag().to_string(),
    }
}

fn by_topic(events: &[Event]) -> BTreeMap<String, Vec<&Event>> {
    let mut m: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for ev in events {
        let second = ev.tag().split('/').nth(1).unwrap_or("");
        m.entry(format!("salt.{second}")).or_default().push(ev);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_events_land_in_templated_topics_with_key_headers_and_payload() {
    let Some(broker) = Tansu::start() else { return };
    eprintln!("tansu accepted connections after {:?}", broker.started_in());
    let events = capture_events();
    let s = sink(settings(
        &broker.brokers(),
        "salt.{{ tag.split('/')[1] }}",
        json!({}),
    ));
    let batch: Vec<Outgoing> = events
        .iter()
        .map(|e| Outgoing::new(e.clone(), "job-returns"))
        .collect();
    let t0 = Instant::now();
    s.send(&batch).await.unwrap();
    eprintln!(
        "{} capture events delivered in {:?}",
        batch.len(),
        t0.elapsed()
    );

    let mut seen = 0;
    for (topic, evs) in by_topic(&events) {
        let got = consume(&broker.brokers(), &topic, evs.len(), WAIT).await;
        let mut by_key: HashMap<&str, &Consumed> = HashMap::new();
        for c in &got {
            by_key.insert(c.header("saltbridge-key").unwrap(), c);
        }
        assert_eq!(
            by_key.len(),
            evs.len(),
            "{topic}: idempotency keys are not unique"
        );
        for ev in evs {
            let out = Outgoing::new((*ev).clone(), "job-returns");
            let c = by_key[out.key()];
            assert_eq!(c.key_str(), expected_key(ev), "key of {}", ev.tag());
            assert_eq!(c.header("saltbridge-tag"), Some(ev.tag()));
            assert_eq!(c.header("saltbridge-master"), Some(SOURCE));
            assert_eq!(c.header("saltbridge-route"), Some("job-returns"));
            assert_eq!(c.headers.len(), 4);
            // data is the decoded JSON text, byte for byte, in a fixed layout.
            let expect = format!(
                "{{\"tag\":{},\"data\":{},\"key\":\"{}\",\"route\":\"job-returns\",\"received_at\":{},\"source\":{}}}",
                serde_json::to_string(ev.tag()).unwrap(),
                ev.data_json(),
                out.key(),
                serde_json::to_string(&humantime::format_rfc3339_micros(ev.received_at()).to_string()).unwrap(),
                serde_json::to_string(SOURCE).unwrap(),
            );
            assert_eq!(String::from_utf8_lossy(&c.payload), expect);
            seen += 1;
        }
    }
    assert_eq!(seen, events.len());
    // The job return went under the minion's id, its announcement under the jid.
    let ret = events
        .iter()
        .find(|e| e.tag() == "salt/job/20261126135807141393/ret/lab-minion")
        .unwrap();
    assert_eq!(expected_key(ret), "lab-minion");
    let new = events
        .iter()
        .find(|e| e.tag() == "salt/job/20261126135807141393/new")
        .unwrap();
    assert_eq!(expected_key(new), "20261126135807141393");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_minion_keeps_its_order_within_its_partition() {
    let Some(broker) = Tansu::start() else { return };
    broker.create_topic("salt.returns", 3).await;
    let s = sink(settings(
        &broker.brokers(),
        "salt.returns",
        json!({"options": {"linger.ms": 5}}),
    ));
    let minions = ["alpha", "beta", "gamma"];
    let per_minion = 200;
    let mut all = Vec::new();
    for seq in 0..per_minion {
        for (i, m) in minions.iter().enumerate() {
            all.push(Outgoing::new(
                job_return(20261126135807141393 + seq as u128 * 3 + i as u128, m, seq),
                "r",
            ));
        }
    }
    // As the delivery worker sends: batches started in order from one
    // task, several in flight, their acknowledgements awaited apart.
    let t0 = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for chunk in all.chunks(64) {
        if in_flight.len() == 5 {
            let acks: saltbridge::sink::Outcome = in_flight.pop_front().unwrap();
            acks.await.unwrap();
        }
        in_flight.push_back(s.start(chunk).await);
    }
    for acks in in_flight {
        acks.await.unwrap();
    }
    eprintln!(
        "{} returns in batches of 64, 5 in flight, delivered in {:?}",
        all.len(),
        t0.elapsed()
    );

    let mut got = consume(&broker.brokers(), "salt.returns", all.len(), WAIT).await;
    got.sort_by_key(|c| (c.partition, c.offset));
    let mut per: HashMap<String, Vec<(i32, usize)>> = HashMap::new();
    for c in &got {
        let v: Value = serde_json::from_slice(&c.payload).unwrap();
        let seq = v["data"]["seq"].as_u64().unwrap() as usize;
        assert_eq!(v["data"]["id"], c.key_str(), "the key is the minion id");
        per.entry(c.key_str().to_string())
            .or_default()
            .push((c.partition, seq));
    }
    let mut partitions = BTreeMap::new();
    for m in minions {
        let recs = &per[m];
        let parts: std::collections::BTreeSet<i32> = recs.iter().map(|r| r.0).collect();
        assert_eq!(parts.len(), 1, "{m} spread over partitions {parts:?}");
        let seqs: Vec<usize> = recs.iter().map(|r| r.1).collect();
        assert_eq!(
            seqs,
            (0..per_minion).collect::<Vec<_>>(),
            "{m} out of order"
        );
        partitions.insert(m, recs[0].0);
    }
    eprintln!("partitions: {partitions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_round_trips() {
    let Some(broker) = Tansu::start() else { return };
    // Repetitive data, so that every codec really shrinks it.
    let big: Vec<String> = (0..400)
        .map(|i| format!("line {i}: state ok, no changes"))
        .collect();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("salt.{codec}");
        let s = sink(settings(
            &broker.brokers(),
            &topic,
            json!({"compression": codec}),
        ));
        let batch: Vec<Outgoing> = (0..20)
            .map(|i| {
                let ev = Event::synthetic(
                    format!("salt/job/1/ret/m{i}"),
                    json!({"id": format!("m{i}"), "return": big, "codec": codec}),
                    Arc::from(SOURCE),
                );
                Outgoing::new(ev, "r")
            })
            .collect();
        s.send(&batch)
            .await
            .unwrap_or_else(|e| panic!("{codec}: {e}"));
        let got = consume(&broker.brokers(), &topic, batch.len(), WAIT).await;
        let mut payloads: Vec<Vec<u8>> = got.into_iter().map(|c| c.payload).collect();
        let mut expect: Vec<Vec<u8>> = batch
            .iter()
            .map(saltbridge::sink::kafka::json_payload)
            .collect();
        payloads.sort();
        expect.sort();
        assert!(payloads == expect, "{codec}: payloads differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgpack_payload_is_salts_own_bytes() {
    let Some(broker) = Tansu::start() else { return };
    let events: Vec<Event> = capture_events()
        .into_iter()
        .filter(|e| e.tag().starts_with("salt/job/"))
        .collect();
    let s = sink(settings(
        &broker.brokers(),
        "salt.raw",
        json!({"payload": "msgpack"}),
    ));
    let batch: Vec<Outgoing> = events
        .iter()
        .map(|e| Outgoing::new(e.clone(), "r"))
        .collect();
    s.send(&batch).await.unwrap();
    let got = consume(&broker.brokers(), "salt.raw", batch.len(), WAIT).await;
    let by_key: HashMap<&str, &Consumed> = got
        .iter()
        .map(|c| (c.header("saltbridge-key").unwrap(), c))
        .collect();
    for o in &batch {
        let c = by_key[o.key()];
        let raw = o.event.raw().expect("capture events keep their bus bytes");
        assert_eq!(c.payload, raw.msgpack_data(), "{}", o.event.tag());
        assert_eq!(c.header("saltbridge-tag"), Some(o.event.tag()));
        // And it is msgpack of the same data.
        let back: Value = rmp_serde::from_slice(&c.payload).unwrap();
        assert_eq!(back["jid"], o.event.data()["jid"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_retry_within_the_timeout() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = sink(settings(
        &format!("127.0.0.1:{port}"),
        "salt.down",
        json!({"timeout": "2s"}),
    ));
    let t0 = Instant::now();
    // A hang guard, not a speed: the send must end by itself (30x the timeout).
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        s.send(&[Outgoing::new(job_return(1, "alpha", 0), "r")]),
    )
    .await
    .expect("the send gave up by itself");
    let took = t0.elapsed();
    match r {
        Err(SendError::Retry { reason, .. }) => {
            assert!(reason.contains("timed out"), "{reason}");
            eprintln!("retry after {took:?}: {reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        took >= Duration::from_millis(1900),
        "gave up early: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stop_is_a_retry_and_restart_delivers_again() {
    let Some(mut broker) = Tansu::start() else {
        return;
    };
    let s = sink(settings(
        &broker.brokers(),
        "salt.flaky",
        json!({"timeout": "2s"}),
    ));
    s.send(&[Outgoing::new(job_return(1, "alpha", 0), "r")])
        .await
        .unwrap();
    broker.stop();
    let r = s
        .send(&[Outgoing::new(job_return(2, "alpha", 1), "r")])
        .await;
    assert!(matches!(r, Err(SendError::Retry { .. })), "{r:?}");
    broker.restart();
    let t0 = Instant::now();
    // The restarted broker is empty and does not know the producer's id, so
    // the first attempts fail until the sink replaces its producer (after 3
    // sends in a row without a delivery): delivery must come back by itself.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match s
            .send(&[Outgoing::new(job_return(3, "alpha", 2), "r")])
            .await
        {
            Ok(()) => break,
            Err(SendError::Retry { reason, .. }) if attempts < 6 => {
                eprintln!("attempt {attempts}: {reason}")
            }
            Err(e) => panic!("after restart, attempt {attempts}: {e:?}"),
        }
    }
    eprintln!(
        "delivered again {:?} after restart, attempt {attempts}",
        t0.elapsed()
    );
    let got = consume(&broker.brokers(), "salt.flaky", 1, WAIT).await;
    let v: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(v["data"]["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_record_is_rejected_and_the_rest_delivered() {
    let Some(broker) = Tansu::start() else { return };
    let s = sink(settings(
        &broker.brokers(),
        "salt.big",
        json!({"options": {"message.max.bytes": 10000}}),
    ));
    let big = Event::synthetic(
        "salt/job/9/ret/alpha",
        json!({"id": "alpha", "return": "x".repeat(20_000)}),
        Arc::from(SOURCE),
    );
    let batch = [
        Outgoing::new(job_return(1, "alpha", 0), "r"),
        Outgoing::new(big, "r"),
        Outgoing::new(job_return(2, "alpha", 1), "r"),
    ];
    let each = s.send_each(&batch).await;
    assert!(each[0].is_ok() && each[2].is_ok(), "{each:?}");
    match &each[1] {
        Err(SendError::Reject { reason, .. }) => assert!(reason.contains("too large"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match s.send(&batch).await {
        Err(SendError::Reject { reason, .. }) => {
            assert!(reason.starts_with("1 of 3 records refused"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let got = consume(&broker.brokers(), "salt.big", 4, WAIT).await;
    assert!(got.iter().all(|c| c.payload.len() < 10_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_from_the_template_is_rejected() {
    let Some(broker) = Tansu::start() else { return };
    let s = sink(settings(&broker.brokers(), "salt/{{ data.id }}", json!({})));
    match s
        .send(&[Outgoing::new(job_return(1, "alpha", 0), "r")])
        .await
    {
        Err(SendError::Reject { reason, .. }) => {
            assert!(reason.contains("not a valid Kafka topic"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_errors_name_the_field() {
    let field = |v: Value| match KafkaSink::from_config("pipeline", &v) {
        Ok(_) => panic!("accepted {v}"),
        Err(e) => {
            assert_eq!(e.sink, "pipeline");
            (e.field, e.message)
        }
    };
    let base = || json!({"type": "kafka", "brokers": "127.0.0.1:9092", "topic": "salt"});
    let with = |k: &str, x: Value| {
        let mut v = base();
        v[k] = x;
        v
    };
    assert_eq!(field(json!({"type": "kafka", "brokers": "b:1"})).0, "topic");
    assert_eq!(field(with("topik", json!("x"))).0, "topik");
    assert_eq!(field(with("timeout", json!("forever"))).0, "timeout");
    assert_eq!(field(with("compression", json!("brotli"))).0, "compression");
    assert_eq!(field(with("payload", json!("avro"))).0, "payload");
    assert_eq!(field(with("format", json!("cloudevent"))).0, "format");
    let mut ce_msgpack = with("format", json!("cloudevents"));
    ce_msgpack["payload"] = json!("msgpack");
    assert_eq!(field(ce_msgpack).0, "payload");
    assert_eq!(
        field(with("cloudevents", json!({"mode": "binary"}))).0,
        "cloudevents"
    );
    assert_eq!(field(with("topic", json!("salt.{{ tag"))).0, "topic");
    assert_eq!(field(with("key", json!("{% if %}"))).0, "key");
    assert_eq!(
        field(with("headers", json!({"saltbridge-route": "x"}))).0,
        "headers.saltbridge-route"
    );
    assert_eq!(field(with("acks", json!("1"))).0, "acks"); // idempotence needs acks=all
    let (f, msg) = field(with("options", json!({"linger.mss": 5})));
    assert_eq!(f, "options.linger.mss");
    assert!(msg.contains("No such configuration property"), "{msg}");
    let (f, msg) = field(with("options", json!({"compression.type": "brotli"})));
    assert_eq!(f, "options.compression.type", "{msg}");
    assert!(KafkaSink::from_config(
        "pipeline",
        &with("options", json!({"linger.ms": 5, "acks": "all"}))
    )
    .is_ok());
}

/// `format: cloudevents` against the broker, as the Kafka protocol binding
/// describes it: structured mode's envelope with its content type, binary
/// mode's `ce_*` headers with the data as the value; W3C trace context from
/// the event's data as `traceparent`/`tracestate` headers in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_records_in_both_modes_with_trace_context() {
    let Some(broker) = Tansu::start() else { return };
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut data = json!({"cmd": "_return", "id": "web-01", "jid": "20261126135807141393",
        "fun": "test.ping", "return": true, "retcode": 0, "success": true,
        "_stamp": "2026-11-26T13:58:07.857326"});
    data["traceparent"] = json!(TP);
    let ev = Event::synthetic(
        "salt/job/20261126135807141393/ret/web-01",
        data,
        Arc::from(SOURCE),
    );
    let o = Outgoing::new(ev, "r");
    for mode in ["structured", "binary"] {
        let topic = format!("salt.ce.{mode}");
        let s = sink(settings(
            &broker.brokers(),
            &topic,
            json!({"format": "cloudevents", "cloudevents": {"mode": mode}}),
        ));
        s.send(std::slice::from_ref(&o)).await.unwrap();
        let got = consume(&broker.brokers(), &topic, 1, WAIT).await;
        let c = &got[0];
        assert_eq!(c.header("traceparent"), Some(TP), "{mode}");
        assert_eq!(c.header("saltbridge-key"), Some(o.key()), "{mode}");
        let value: Value = serde_json::from_slice(&c.payload).unwrap();
        if mode == "binary" {
            assert_eq!(c.header("content-type"), Some("application/json"));
            assert_eq!(c.header("ce_specversion"), Some("1.0"));
            assert_eq!(c.header("ce_id"), Some(o.key()));
            assert_eq!(c.header("ce_source"), Some(SOURCE));
            assert_eq!(c.header("ce_type"), Some("io.saltproject.job.ret"));
            assert_eq!(c.header("ce_subject"), Some(o.event.tag()));
            assert_eq!(c.header("ce_time"), Some("2026-11-26T13:58:07.857326Z"));
            assert_eq!(value, *o.event.data());
        } else {
            assert_eq!(
                c.header("content-type"),
                Some("application/cloudevents+json; charset=UTF-8")
            );
            for (k, want) in [
                ("specversion", "1.0"),
                ("id", o.key()),
                ("source", SOURCE),
                ("type", "io.saltproject.job.ret"),
                ("time", "2026-11-26T13:58:07.857326Z"),
                ("traceparent", TP),
            ] {
                assert_eq!(value[k], want, "{k}");
            }
            assert_eq!(value["data"], *o.event.data());
        }
    }
}

/// The TLS, mutual TLS and SASL/SCRAM example of docs/sinks-kafka.md loads,
/// and librdkafka accepts every property in it.
#[test]
fn the_documented_security_example_is_accepted() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/sinks-kafka.md"))
        .unwrap();
    let after = doc.split("<!-- kafka-security-example -->").nth(1).unwrap();
    let yaml = after
        .split("```yaml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let path = std::path::Path::new("docs/sinks-kafka.md");
    let config = saltbridge::config::load_str(path, yaml, |k| Some(format!("test-{k}"))).unwrap();
    let checked = saltbridge::config::each_sink(path, &config, |name, settings| {
        KafkaSink::check_config(name, settings)
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checked.len(), 2);
}
