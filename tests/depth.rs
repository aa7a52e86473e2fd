//! Issue 12, finding 6: one depth limit for the whole program, applied when
//! decoding. Data nested up to `MAX_DEPTH` decodes, and can be routed,
//! templated, spooled, dead-lettered and read back; data nested deeper is
//! refused by the decoder (and by the `jsonl:` source), never turned into
//! `null` later (it used to be: the decoder allowed 256, serde_json 128).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use saltbridge::decode::msgpack::{MsgpackError, MAX_DEPTH};
use saltbridge::decode::{decode_message, BodyError, BodyStyle};
use saltbridge::delivery::{dead_letter, DeadLetters, SinkStats};
use saltbridge::route::predicate::Predicate;
use saltbridge::sink::Outgoing;
use saltbridge::source::jsonl::parse_line;
use saltbridge::spool::{self, Fsync, SpoolSettings};

/// `{"retcode": 1, "ret": [[ ... [{"failed": true}] ... ]]}` whose JSON is
/// `depth` containers deep, as msgpack.
fn deep_return(depth: usize) -> Vec<u8> {
    let mut b = b"salt/job/1/ret/m1\n\n\x82\xa7retcode\x01\xa3ret".to_vec();
    b.extend(std::iter::repeat_n(0x91, depth - 2));
    b.extend_from_slice(b"\x81\xa6failed\xc3");
    b
}

fn deep_json(depth: usize) -> String {
    let mut s = r#"{"retcode":1,"ret":"#.to_owned();
    s.push_str(&"[".repeat(depth - 2));
    s.push_str(r#"{"failed":true}"#);
    s.push_str(&"]".repeat(depth - 2));
    s.push('}');
    s
}

#[test]
fn data_at_the_limit_is_decoded_and_every_stage_reads_it() {
    let ev = decode_message(
        Bytes::from(deep_return(MAX_DEPTH)),
        BodyStyle::Bus,
        Arc::from("t"),
        SystemTime::UNIX_EPOCH,
    )
    .unwrap();
    assert_eq!(ev.data_json(), deep_json(MAX_DEPTH));
    // Routes: the data parses (not null) and a `where` sees the retcode.
    assert_eq!(ev.data()["retcode"], 1);
    let mut inner = &ev.data()["ret"];
    while let Some(v) = inner.get(0) {
        inner = v;
    }
    assert_eq!(inner["failed"], true);
    let failed: Predicate = serde_saphyr::from_str("retcode: {ne: 0}").unwrap();
    assert!(failed.eval(ev.data()));
    // Templates: a template engine can read the deepest value.
    let env = minijinja::Environment::new();
    let text = env
        .render_str("{{ data.retcode }} {{ data.ret | length }}", minijinja::context! { data => minijinja::Value::from(minijinja::value::Serde(ev.data())) })
        .unwrap();
    assert_eq!(text, "1 1");
    // Dead letters: written and read back whole.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead-letters.jsonl");
    let out = Outgoing::new(ev.clone(), "r");
    DeadLetters::new(&path)
        .write("s", std::slice::from_ref(&out), Some(500), "boom")
        .unwrap();
    let (entries, bad) = dead_letter::read_all(&path).unwrap();
    assert!(bad.is_empty(), "saltbridge cannot read its own dead letter");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].tag, "salt/job/1/ret/m1");
}

#[tokio::test]
async fn data_at_the_limit_is_spooled_and_read_back() {
    let ev = decode_message(
        Bytes::from(deep_return(MAX_DEPTH)),
        BodyStyle::Bus,
        Arc::from("t"),
        SystemTime::UNIX_EPOCH,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = SpoolSettings {
        fsync: Fsync::Never,
        ..SpoolSettings::default()
    };
    let stats = Arc::new(SinkStats::default());
    let (mut w, mut r) = spool::open(dir.path(), settings, true, stats).unwrap();
    w.append(&Outgoing::new(ev.clone(), "r")).unwrap();
    w.close().unwrap();
    let b = r.next_batch(10, 1 << 20, Duration::ZERO).await.unwrap();
    assert_eq!(b.items[0].event.data_json(), ev.data_json());
    assert_eq!(b.items[0].event.data()["retcode"], 1);
    b.settle();
}

#[test]
fn data_past_the_limit_is_refused_when_decoded() {
    let err = decode_message(
        Bytes::from(deep_return(MAX_DEPTH + 1)),
        BodyStyle::Bus,
        Arc::from("t"),
        SystemTime::UNIX_EPOCH,
    )
    .unwrap_err();
    assert!(
        matches!(err, BodyError::Data(MsgpackError::TooDeep { .. })),
        "{err:?}"
    );
    // The same limit for JSON lines, in both of their forms.
    assert!(parse_line(format!("t\t{}", deep_json(MAX_DEPTH)).as_bytes()).is_ok());
    assert!(parse_line(format!("t\t{}", deep_json(MAX_DEPTH + 1)).as_bytes()).is_err());
    let line = format!(r#"{{"tag":"t","data":{}}}"#, deep_json(MAX_DEPTH + 1));
    assert!(parse_line(line.as_bytes()).is_err());
}

#[test]
fn a_bin_value_at_the_limit_counts_as_a_level() {
    // {"__bin__": ...} is a JSON object: one more level than the bin itself.
    let mut b = b"t\n\n\x81\xa1x".to_vec();
    b.extend(std::iter::repeat_n(0x91, MAX_DEPTH - 1));
    b.extend_from_slice(b"\xc4\x01z");
    let r = decode_message(
        Bytes::from(b),
        BodyStyle::Bus,
        Arc::from("t"),
        SystemTime::UNIX_EPOCH,
    );
    assert!(
        matches!(r, Err(BodyError::Data(MsgpackError::TooDeep { .. }))),
        "{r:?}"
    );
}
