//! Fuzzes event data through the decoder and the JSON it makes: any bytes
//! a minion can place in event data. Decoded data is valid JSON that
//! serde_json can parse (the program's one depth limit), and the same data
//! framed on the bus (bare and length-prefixed, between two honest events)
//! decodes to exactly those three events, or the two honest ones and one
//! counted rejection: never a frame hidden in the data.
#![no_main]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use saltbridge::decode::{decode_message, BodyStyle, Decoded, StreamDecoder};

fn frame(body: &[u8], prefixed: bool) -> Vec<u8> {
    let mut map = b"\x82\xa4head\x80\xa4body\xc6".to_vec();
    map.extend_from_slice(&(body.len() as u32).to_be_bytes());
    map.extend_from_slice(body);
    if prefixed {
        [(map.len() as u32).to_be_bytes().to_vec(), map].concat()
    } else {
        map
    }
}

fuzz_target!(|data: &[u8]| {
    let body = [b"minion/ev\n\n".as_slice(), data].concat();
    let single = decode_message(
        Bytes::from(body.clone()),
        BodyStyle::Bus,
        Arc::from("f"),
        SystemTime::UNIX_EPOCH,
    );
    if let Ok(ev) = &single {
        let v: serde_json::Value = serde_json::from_str(ev.data_json()).expect("decoded JSON parses");
        // Wrapped as a dead letter (two levels more), it still parses.
        let line = format!("{{\"event\":{{\"tag\":\"x\",\"data\":{}}}}}", ev.data_json());
        assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
        assert_eq!(&v, ev.data());
    }
    for prefixed in [false, true] {
        let stream = [
            frame(b"a\n\n\x80", prefixed),
            frame(&body, prefixed),
            frame(b"b\n\n\x80", prefixed),
        ]
        .concat();
        let mut dec = StreamDecoder::new(Arc::from("f"), 1 << 20);
        let mut buf = BytesMut::from(&stream[..]);
        let mut items = Vec::new();
        while let Some(i) = dec.decode(&mut buf, SystemTime::UNIX_EPOCH) {
            items.push(i);
        }
        while let Some(i) = dec.finish(&mut buf, SystemTime::UNIX_EPOCH) {
            items.push(i);
        }
        let tags: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                Decoded::Event(e) => Some(e.tag().to_owned()),
                _ => None,
            })
            .collect();
        let rejected = items.len() - tags.len();
        match &single {
            Ok(ev) => {
                assert_eq!(tags, ["a", "minion/ev", "b"], "{items:?}");
                let mid = items.iter().find_map(|i| match i {
                    Decoded::Event(e) if e.tag() == "minion/ev" => Some(e.data_json().to_owned()),
                    _ => None,
                });
                assert_eq!(mid.as_deref(), Some(ev.data_json()));
            }
            Err(_) => {
                assert_eq!(tags, ["a", "b"], "{items:?}");
                assert_eq!(rejected, 1, "{items:?}");
            }
        }
    }
});
