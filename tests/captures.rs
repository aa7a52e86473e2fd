//! Every real capture decodes to exactly what Salt's own listener printed,
//! however the bytes are cut.

mod support;

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use saltbridge::decode::{
    decode_all, decode_message, BodyStyle, Decoded, StreamDecoder, DEFAULT_MAX_FRAME,
};
use serde_json::Value;

use support::fixtures::{assert_events_eq, captures, expected, fixtures};

fn events(items: Vec<Decoded>) -> Vec<(String, Value)> {
    items
        .into_iter()
        .map(|d| match d {
            Decoded::Event(ev) => (ev.tag().to_owned(), ev.data().clone()),
            Decoded::Malformed { offset, len, error } => {
                panic!("malformed at {offset} ({len} bytes): {error}")
            }
        })
        .collect()
}

/// Feeds `bytes` in the given pieces, as a socket would deliver them.
fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Decoded> {
    let mut dec = StreamDecoder::new(Arc::from("test"), DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        buf.extend_from_slice(&bytes[at..cut]);
        at = cut;
        while let Some(item) = dec.decode(&mut buf, SystemTime::UNIX_EPOCH) {
            out.push(item);
        }
    }
    while let Some(item) = dec.finish(&mut buf, SystemTime::UNIX_EPOCH) {
        out.push(item);
    }
    out
}

#[test]
fn every_capture_decodes_to_its_jsonl() {
    for (bin, jsonl) in captures() {
        let bytes = std::fs::read(&bin).unwrap();
        let got = events(decode_all(&bytes, Arc::from("test")));
        assert_events_eq(&got, &expected(&jsonl), &bin.display().to_string());
    }
}

#[test]
fn every_cut_point_decodes_identically() {
    for (bin, jsonl) in captures() {
        let bytes = std::fs::read(&bin).unwrap();
        let want = expected(&jsonl);
        // Big captures: every 97th cut keeps the test quick and still crosses every frame part.
        let step = if bytes.len() > 10_000 { 97 } else { 1 };
        for cut in (1..bytes.len()).step_by(step) {
            let got = events(decode_in_pieces(&bytes, &[cut]));
            assert_events_eq(&got, &want, &format!("{} cut at {cut}", bin.display()));
        }
    }
}

#[test]
fn one_byte_at_a_time_decodes_identically() {
    for (bin, jsonl) in captures() {
        let bytes = std::fs::read(&bin).unwrap();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        let got = events(decode_in_pieces(&bytes, &cuts));
        assert_events_eq(
            &got,
            &expected(&jsonl),
            &format!("{} byte by byte", bin.display()),
        );
    }
}

#[test]
fn raw_body_is_kept_untouched() {
    let bytes = std::fs::read(fixtures().join("3008.4/a_test_ping.bin")).unwrap();
    let Decoded::Event(ev) = decode_all(&bytes, Arc::from("test")).remove(0) else {
        panic!("first item is not an event")
    };
    let raw = ev.raw().expect("bus events keep their bytes");
    assert!(raw.body.starts_with(ev.tag().as_bytes()));
    assert_eq!(&raw.body[raw.data_offset - 2..raw.data_offset], b"\n\n");
    // The body is the bin payload of the first frame, byte for byte.
    let start = bytes
        .windows(raw.body.len())
        .position(|w| w == &raw.body[..]);
    assert_eq!(start, Some(14), "body is a verbatim slice of the stream");
}

#[test]
fn legacy_zeromq_messages_decode_to_their_tag_and_data() {
    for name in ["test_ping.padded.jsonl", "test_ping.tagend.jsonl"] {
        let text = std::fs::read_to_string(fixtures().join("legacy").join(name)).unwrap();
        let mut n = 0;
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let msg = base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap();
            let ev = decode_message(
                Bytes::from(msg),
                BodyStyle::Zmq,
                Arc::from("t"),
                SystemTime::UNIX_EPOCH,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ev.tag(), v["tag"].as_str().unwrap(), "{name}");
            assert!(
                support::fixtures::same_in_order(ev.data(), &v["data"]),
                "{name}: {}",
                ev.tag()
            );
            n += 1;
        }
        assert!(n >= 5, "{name}: only {n} messages");
    }
}
