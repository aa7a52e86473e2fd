//! Garbage, truncated and corrupted streams: the decoder never panics, never
//! stalls, counts what it skips, and recovers every sound frame it can.

mod support;

use std::sync::Arc;

use proptest::prelude::*;
use saltbridge::decode::{decode_all, Decoded};

/// Real frames from the captures, each as its own byte string, with its tag.
fn real_frames() -> Vec<(Vec<u8>, String)> {
    let mut frames = Vec::new();
    for (bin, _) in support::fixtures::captures() {
        let bytes = std::fs::read(&bin).unwrap();
        let mut at = 0;
        for item in decode_all(&bytes, Arc::from("t")) {
            let Decoded::Event(ev) = item else {
                panic!("capture has a malformed frame")
            };
            // Find this event's frame: from `at` to the start of the next body.
            let body = &ev.raw().unwrap().body;
            let start = at
                + bytes[at..]
                    .windows(body.len())
                    .position(|w| w == &body[..])
                    .unwrap();
            let end = start + body.len();
            let frame_start = at;
            at = end;
            // Keep only bare-map frames (3008.4) so one stream has one framing.
            if bytes[0] != 0 {
                frames.push((bytes[frame_start..end].to_vec(), ev.tag().to_owned()));
            }
        }
    }
    frames
}

fn tags_and_malformed(bytes: &[u8]) -> (Vec<String>, usize) {
    let mut tags = Vec::new();
    let mut malformed = 0;
    for item in decode_all(bytes, Arc::from("t")) {
        match item {
            Decoded::Event(ev) => {
                // Whatever was decoded is valid JSON.
                assert!(serde_json::from_str::<serde_json::Value>(ev.data_json()).is_ok());
                tags.push(ev.tag().to_owned());
            }
            Decoded::Malformed { len, .. } => {
                assert!(len > 0, "an empty skip could loop forever");
                malformed += 1;
            }
        }
    }
    (tags, malformed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (tags, malformed) = tags_and_malformed(&bytes);
        if !bytes.is_empty() {
            prop_assert!(malformed > 0 || !tags.is_empty());
        }
    }

    #[test]
    fn garbage_between_frames_costs_only_the_garbage(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 2..12),
        at in any::<prop::sample::Index>(),
        garbage in proptest::collection::vec(any::<u8>(), 1..300),
    ) {
        let frames = real_frames();
        let chosen: Vec<&(Vec<u8>, String)> = picks.iter().map(|i| i.get(&frames)).collect();
        let at = at.index(chosen.len() + 1);
        let mut stream = Vec::new();
        for (i, (f, _)) in chosen.iter().enumerate() {
            if i == at { stream.extend_from_slice(&garbage); }
            stream.extend_from_slice(f);
        }
        if at == chosen.len() { stream.extend_from_slice(&garbage); }
        let (tags, malformed) = tags_and_malformed(&stream);
        let want: Vec<String> = chosen.iter().map(|(_, t)| t.clone()).collect();
        prop_assert_eq!(tags, want);
        prop_assert!(malformed >= 1);
    }

    #[test]
    fn a_truncated_stream_yields_every_whole_frame(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..12),
        cut in any::<prop::sample::Index>(),
    ) {
        let frames = real_frames();
        let chosen: Vec<&(Vec<u8>, String)> = picks.iter().map(|i| i.get(&frames)).collect();
        let stream: Vec<u8> = chosen.iter().flat_map(|(f, _)| f.clone()).collect();
        let cut = cut.index(stream.len());
        let (tags, malformed) = tags_and_malformed(&stream[..cut]);
        let mut whole = Vec::new();
        let mut end = 0;
        for (f, t) in &chosen {
            end += f.len();
            if end <= cut { whole.push(t.clone()); }
        }
        let at_boundary = end == cut || chosen.iter().scan(0, |e, (f, _)| { *e += f.len(); Some(*e) }).any(|e| e == cut) || cut == 0;
        prop_assert_eq!(tags, whole);
        prop_assert_eq!(malformed, usize::from(!at_boundary));
    }

    #[test]
    fn corrupted_streams_never_panic_and_lose_little(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 4..12),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let frames = real_frames();
        let chosen: Vec<&(Vec<u8>, String)> = picks.iter().map(|i| i.get(&frames)).collect();
        let mut stream: Vec<u8> = chosen.iter().flat_map(|(f, _)| f.clone()).collect();
        for (i, b) in &flips {
            let i = i.index(stream.len());
            stream[i] ^= b | 1;
        }
        let (tags, _) = tags_and_malformed(&stream);
        // A flip in a frame's body costs that frame. A flip in an envelope
        // (its lengths) costs what the corrupt length covers: a refused frame
        // is skipped whole, never scanned for frames (a minion may have put
        // fake ones in its data; issue 12). Otherwise frames after the last
        // damaged one survive.
        prop_assert!(tags.len() <= chosen.len());
        let mut start = 0;
        let mut envelope_hit = false;
        for (f, t) in &chosen {
            let header = f.windows(t.len()).position(|w| w == t.as_bytes()).unwrap_or(f.len());
            envelope_hit |= flips.iter().any(|(i, _)| (start..start + header).contains(&i.index(stream.len())));
            start += f.len();
        }
        let last = chosen.last().unwrap();
        let last_start = stream.len() - last.0.len();
        let damaged_last = flips.iter().any(|(i, _)| i.index(stream.len()) >= last_start.saturating_sub(16));
        if !damaged_last && !envelope_hit && chosen.len() >= 2 {
            prop_assert_eq!(tags.last(), Some(&last.1));
        }
    }
}
