//! Fuzzes the bus decoder: any bytes, cut anywhere, as a stream or as one
//! ZeroMQ message. It must never panic or stall, every skip must make
//! progress, and every event it yields must carry valid JSON.
#![no_main]

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use saltbridge::decode::{decode_message, BodyStyle, Decoded, StreamDecoder};

fn check(item: &Decoded) {
    match item {
        Decoded::Event(ev) => {
            assert!(serde_json::from_str::<serde_json::Value>(ev.data_json()).is_ok());
        }
        Decoded::Malformed { len, .. } => assert!(*len > 0),
    }
}

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut dec = StreamDecoder::new(Arc::from("fuzz"), 1 << 16);
    let mut buf = BytesMut::new();
    for piece in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(piece);
        while let Some(item) = dec.decode(&mut buf, SystemTime::UNIX_EPOCH) {
            check(&item);
        }
    }
    while let Some(item) = dec.finish(&mut buf, SystemTime::UNIX_EPOCH) {
        check(&item);
    }
    assert!(buf.is_empty(), "finish leaves nothing behind");
    for style in [BodyStyle::Bus, BodyStyle::Zmq] {
        if let Ok(ev) = decode_message(Bytes::copy_from_slice(data), style, Arc::from("fuzz"), SystemTime::UNIX_EPOCH) {
            check(&Decoded::Event(ev));
        }
    }
});
