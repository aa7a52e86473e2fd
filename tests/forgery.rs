//! Issue 12, finding 1: a minion controls the data of the events it fires
//! (any tag, bin values, deep nesting), and nothing it puts there may come
//! out of the decoder as another event. For any such data, in both framings
//! (length-prefixed 3006.26+ and bare msgpack), cut into any pieces, with the
//! frame within `max_frame` or over it, the stream decodes to the events
//! around it and either the minion's own event or one counted rejection.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use proptest::prelude::*;
use saltbridge::decode::{Decoded, StreamDecoder, DEFAULT_MAX_FRAME};

const FORGED_TAG: &str = "salt/job/20261201120000000000/ret/victim";

fn bin(out: &mut Vec<u8>, b: &[u8]) {
    out.push(0xc6);
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn str32(out: &mut Vec<u8>, b: &[u8]) {
    out.push(0xdb);
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// A frame as the master writes it around `body`.
fn frame(body: &[u8], prefixed: bool) -> Vec<u8> {
    let mut map = b"\x82\xa4head\x80\xa4body".to_vec();
    bin(&mut map, body);
    if !prefixed {
        return map;
    }
    [(map.len() as u32).to_be_bytes().to_vec(), map].concat()
}

/// A failed return of another minion: what an attacker would forge.
fn forged(prefixed: bool) -> Vec<u8> {
    let body = [
        FORGED_TAG.as_bytes(),
        b"\n\n\x83\xa2id\xa6victim\xa7success\xc2\xa7retcode\x01",
    ]
    .concat();
    frame(&body, prefixed)
}

/// The minion's event: `{"id": "attacker", "blob": <bytes>, "deep": [[..]]}`.
fn hostile_body(blob: &[u8], as_str: bool, depth: usize) -> Vec<u8> {
    let mut b = b"minion/custom/event\n\n\x83\xa2id\xa8attacker\xa4blob".to_vec();
    if as_str {
        str32(&mut b, blob);
    } else {
        bin(&mut b, blob);
    }
    b.extend_from_slice(b"\xa4deep");
    b.extend(std::iter::repeat_n(0x91, depth));
    b.push(0xc0);
    b
}

fn honest(n: u8) -> Vec<u8> {
    let mut b = format!("honest/{n}\n\n").into_bytes();
    b.extend_from_slice(b"\x81\xa2id\xa6master");
    b
}

fn decode(stream: &[u8], max_frame: usize, chunk: usize) -> Vec<Decoded> {
    let mut dec = StreamDecoder::new(Arc::from("t"), max_frame);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(item) = dec.decode(&mut buf, SystemTime::UNIX_EPOCH) {
            out.push(item);
        }
    }
    while let Some(item) = dec.finish(&mut buf, SystemTime::UNIX_EPOCH) {
        out.push(item);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn event_data_yields_its_own_event_or_a_rejection_never_another(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        fakes in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..4),
        depth in prop_oneof![0usize..8, 90usize..100, 120usize..140, 250usize..320],
        as_str in any::<bool>(),
        prefixed in any::<bool>(),
        small_max in any::<bool>(),
        chunk in 1usize..97,
    ) {
        // The blob: noise with complete fake frames (either framing) inside.
        let mut blob = noise;
        for (at, fake_prefixed) in &fakes {
            let at = at.index(blob.len() + 1);
            let f = forged(*fake_prefixed);
            blob.splice(at..at, f);
        }
        let evil = frame(&hostile_body(&blob, as_str, depth), prefixed);
        let stream = [frame(&honest(1), prefixed), evil.clone(), frame(&honest(2), prefixed)].concat();
        let max_frame = if small_max { 96 } else { DEFAULT_MAX_FRAME };
        let items = decode(&stream, max_frame, chunk);
        let mut tags = Vec::new();
        let mut rejected = 0;
        for item in &items {
            match item {
                Decoded::Event(ev) => {
                    if ev.tag() == "minion/custom/event" {
                        prop_assert_eq!(ev.data()["id"].as_str(), Some("attacker"));
                    }
                    tags.push(ev.tag().to_owned());
                }
                Decoded::Malformed { len, .. } => {
                    prop_assert!(*len > 0);
                    rejected += 1;
                }
            }
        }
        prop_assert!(!tags.iter().any(|t| t == FORGED_TAG), "forged event emitted: {:?}", items);
        let own = tags.iter().any(|t| t == "minion/custom/event");
        let want: Vec<&str> = if own {
            vec!["honest/1", "minion/custom/event", "honest/2"]
        } else {
            vec!["honest/1", "honest/2"]
        };
        prop_assert_eq!(tags.iter().map(String::as_str).collect::<Vec<_>>(), want, "{:?}", items);
        prop_assert_eq!(rejected, usize::from(!own), "{:?}", items);
    }
}

#[test]
fn issue_12_reproduction_deep_list_and_a_fake_frame_in_a_bin_value() {
    for prefixed in [false, true] {
        let evil = frame(&hostile_body(&forged(prefixed), false, 300), prefixed);
        let items = decode(&evil, DEFAULT_MAX_FRAME, evil.len());
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(
            matches!(&items[0], Decoded::Malformed { offset: 0, len, .. } if *len == evil.len()),
            "{items:?}"
        );
    }
}
