//! Decoding speed: bus bytes to `Event`s on one core.
//!
//! `cargo bench --bench decode` prints, per input, the time per stream and
//! the throughput in bytes/s and events/s; `framing only` is the baseline of
//! cutting frames without decoding bodies, measured in the same run.

mod support;

use std::hint::black_box;
use std::sync::Arc;

use std::time::SystemTime;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use saltbridge::decode::{decode_all, Decoded, FrameDecoder, StreamDecoder, DEFAULT_MAX_FRAME};

/// What the bus reader does: 256 KiB reads into a reused buffer, each event
/// built and handed on (here: dropped).
fn decode_like_the_reader(stream: &[u8], buf: &mut BytesMut) -> u64 {
    let mut dec = StreamDecoder::new(Arc::from("bench"), DEFAULT_MAX_FRAME);
    let mut n = 0;
    for chunk in stream.chunks(256 * 1024) {
        buf.extend_from_slice(chunk);
        while let Some(item) = dec.decode(buf, SystemTime::UNIX_EPOCH) {
            n += 1;
            black_box(item);
        }
    }
    n
}

fn count_events(stream: &[u8]) -> u64 {
    decode_all(stream, Arc::from("bench"))
        .iter()
        .filter(|d| matches!(d, Decoded::Event(_)))
        .count() as u64
}

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let state: Vec<u8> = (0..2_000)
        .flat_map(|j| support::state_apply_frame(j, 14))
        .collect();
    let small: Vec<u8> = (0..20_000).flat_map(support::small_return_frame).collect();
    vec![
        ("captures 3008.4", support::captures_stream()),
        ("state.apply 5KB", state),
        ("job return 300B", small),
    ]
}

fn bench(c: &mut Criterion) {
    for (name, stream) in inputs() {
        let events = count_events(&stream);
        assert!(events > 0);
        eprintln!(
            "{name}: {} events, {} bytes, {} bytes/event",
            events,
            stream.len(),
            stream.len() as u64 / events
        );
        for (unit, throughput) in [
            ("bytes", Throughput::Bytes(stream.len() as u64)),
            ("events", Throughput::Elements(events)),
        ] {
            let mut g = c.benchmark_group(format!("{name} ({unit})"));
            g.throughput(throughput);
            let mut buf = BytesMut::with_capacity(1 << 20);
            g.bench_function("bytes to Event", |b| {
                b.iter(|| decode_like_the_reader(black_box(&stream), &mut buf))
            });
            g.bench_function("framing only (baseline)", |b| {
                b.iter(|| {
                    let mut d = FrameDecoder::default();
                    let mut n = 0u64;
                    for chunk in stream.chunks(256 * 1024) {
                        buf.extend_from_slice(chunk);
                        while d.decode(&mut buf).is_some() {
                            n += 1;
                        }
                    }
                    black_box(n)
                })
            });
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
