//! Decoding the journal into the channel to the pipeline, from the
//! pipeline's durable cursor on.
//!
//! This task may wait: it reads from disk, not from the master. Every event
//! it sends carries the journal position after it (`Position`: a record
//! and the bytes of it consumed, since a read often ends inside a frame),
//! so the pipeline's end can record how far its spools are complete. A
//! restart resumes decoding there, on a frame boundary.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::BytesMut;
use serde_json::json;

use super::journaled::{Tail, BYTES, CONNECT, END, MARKER};
use super::{EventSender, ReceiverGone, SourceError, OVERFLOW_TAG};
use crate::decode::{Decoded, StreamDecoder, DEFAULT_MAX_FRAME};
use crate::event::Event;
use crate::journal::{read_history, Item, JournalError, JournalReader, Position, Record};
use crate::shutdown::Shutdown;

/// The bytes of one record still in the decoder's buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    record: u64,
    /// Where in the record's payload these bytes start.
    skip: u32,
    len: usize,
}

/// The decoder's state for the connection being decoded.
struct Decoding {
    source: Arc<str>,
    max_frame: usize,
    dec: StreamDecoder,
    buf: BytesMut,
    spans: VecDeque<Span>,
    /// Bytes in `spans`.
    held: usize,
    /// The offset after the last record taken.
    next_record: u64,
}

impl Decoding {
    fn new(source: Arc<str>, max_frame: usize, at: u64) -> Decoding {
        Decoding {
            dec: StreamDecoder::new(source.clone(), max_frame),
            source,
            max_frame,
            buf: BytesMut::new(),
            spans: VecDeque::new(),
            held: 0,
            next_record: at,
        }
    }

    /// A new stream: what is left of the last one is reported as cut short.
    fn reset(&mut self, out: &mut Vec<(Decoded, Position)>) {
        self.finish(out);
        self.dec = StreamDecoder::new(self.source.clone(), self.max_frame);
        self.buf.clear();
        self.spans.clear();
        self.held = 0;
    }

    fn finish(&mut self, out: &mut Vec<(Decoded, Position)>) {
        while let Some(item) = self.dec.finish(&mut self.buf, SystemTime::now()) {
            out.push((item, self.position()));
        }
    }

    fn bytes(&mut self, r: &Record, skip: u32, out: &mut Vec<(Decoded, Position)>) {
        let payload = r.payload.get(skip as usize..).unwrap_or_default();
        self.buf.extend_from_slice(payload);
        self.spans.push_back(Span {
            record: r.pos,
            skip,
            len: payload.len(),
        });
        self.held += payload.len();
        while let Some(item) = self.dec.decode(&mut self.buf, r.at) {
            out.push((item, self.position()));
        }
    }

    /// Where decoding would start again to see what follows the bytes consumed.
    fn position(&mut self) -> Position {
        let mut consumed = self.held - self.buf.len().min(self.held);
        while let Some(front) = self.spans.front().copied() {
            if consumed < front.len {
                return Position {
                    record: front.record,
                    skip: front.skip + consumed as u32,
                };
            }
            consumed -= front.len;
            self.held -= front.len;
            self.spans.pop_front();
        }
        Position::at(self.next_record)
    }
}

/// Decodes the journal from `start` until shutdown or until the pipeline goes.
pub(crate) async fn decode(
    mut reader: JournalReader,
    start: Position,
    mut sender: EventSender,
    tail: Arc<Tail>,
    max_frame: usize,
    mut shutdown: Shutdown,
) {
    let mut d = Decoding::new(sender.source().clone(), max_frame, start.record);
    let mut out = Vec::new();
    loop {
        let item = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            item = reader.next() => item,
        };
        let Some(item) = item else { return };
        match item {
            Item::Lost { bytes, reads } => {
                d.reset(&mut out);
                let data =
                    json!({"source": &*d.source, "dropped_bytes": bytes, "dropped_reads": reads});
                let marker = Event::synthetic(OVERFLOW_TAG, data, d.source.clone());
                d.next_record = reader.position();
                let pos = Position::at(d.next_record);
                out.push((Decoded::Event(marker), pos));
            }
            Item::Record(r) => {
                d.next_record = r.end;
                let skip = if r.pos == start.record { start.skip } else { 0 };
                take(&mut d, &r, skip, &mut out);
            }
        }
        if reader.caught_up() {
            tail.mid_frame.store(!d.buf.is_empty(), Ordering::Relaxed);
        }
        for (item, pos) in out.drain(..) {
            let sent = tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                r = pass(item, pos, &mut sender) => r,
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

/// One record's effect on the decoder.
fn take(d: &mut Decoding, r: &Record, skip: u32, out: &mut Vec<(Decoded, Position)>) {
    match r.kind {
        CONNECT => {
            d.reset(out);
            if !r.payload.is_empty() && *r.payload != *d.source.as_bytes() {
                d.source = Arc::from(String::from_utf8_lossy(&r.payload).as_ref());
                d.dec = StreamDecoder::new(d.source.clone(), d.max_frame);
            }
        }
        END => d.reset(out),
        BYTES => d.bytes(r, skip, out),
        MARKER => {
            let text = String::from_utf8_lossy(&r.payload);
            let (tag, data) = text.split_once('\0').unwrap_or((&text, "null"));
            let data = serde_json::from_str(data).unwrap_or(serde_json::Value::Null);
            let ev = Event::synthetic(tag, data, d.source.clone());
            let pos = d.position();
            out.push((Decoded::Event(ev), pos));
        }
        other => {
            tracing::warn!(
                kind = other,
                offset = r.pos,
                "journal: a record of an unknown kind was skipped"
            );
        }
    }
}

/// What [`for_each_in_journal`] found besides events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JournalScan {
    pub events: u64,
    pub malformed: u64,
    /// Bytes the journal says are missing (its bound, damage).
    pub lost_bytes: u64,
}

/// Calls `f` with every event in the journal at `dir` that was read from
/// the bus at or after `since` and before `until`, in bus order (markers
/// included), from the history a running saltbridge keeps; for `replay`,
/// `tail --journal` and `explain --journal`. Takes no lock.
pub fn for_each_in_journal(
    dir: &Path,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    mut f: impl FnMut(Event),
) -> Result<JournalScan, JournalError> {
    let mut reader = read_history(dir, since.map(crate::journal::micros))?;
    let mut d = Decoding::new(Arc::from("journal"), DEFAULT_MAX_FRAME, reader.position());
    let mut out = Vec::new();
    let mut scan = JournalScan::default();
    let wanted = |at: SystemTime| since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u);
    while let Some(item) = reader.try_next() {
        match item {
            Item::Lost { bytes, .. } => {
                scan.lost_bytes += bytes;
                d.reset(&mut out);
            }
            Item::Record(r) => {
                if until.is_some_and(|u| r.at >= u) {
                    break;
                }
                d.next_record = r.end;
                take(&mut d, &r, 0, &mut out);
            }
        }
        for (item, _) in out.drain(..) {
            match item {
                Decoded::Event(ev) if wanted(ev.received_at()) => {
                    scan.events += 1;
                    f(ev)
                }
                Decoded::Event(_) => {}
                Decoded::Malformed { .. } => scan.malformed += 1,
            }
        }
    }
    d.finish(&mut out);
    scan.malformed += out.len() as u64;
    Ok(scan)
}

/// The `journal:` source: the history of a journal, to its end.
pub(crate) async fn run_history(
    dir: std::path::PathBuf,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let path = dir.display().to_string();
    let scan = tokio::task::spawn_blocking(move || {
        let mut gone = false;
        for_each_in_journal(&dir, since, until, |ev| {
            gone = gone || tx.blocking_send(ev).is_err();
        })
    });
    sender.stats().set_connected(true);
    loop {
        let ev = tokio::select! {
            biased;
            _ = shutdown.wait() => return Ok(()),
            ev = rx.recv() => ev,
        };
        let Some(ev) = ev else { break };
        sender.stats().events.fetch_add(1, Ordering::Relaxed);
        if sender.send(ev).await.is_err() {
            return Ok(());
        }
    }
    let open_err = |e: String| SourceError::Open {
        path: path.clone(),
        source: std::io::Error::other(e),
    };
    match scan.await {
        Ok(Ok(found)) => {
            let m = &sender.stats().malformed;
            m.fetch_add(found.malformed, Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(e)) => Err(open_err(e.source.to_string())),
        Err(e) => Err(open_err(e.to_string())),
    }
}

/// Counts and passes one decoded item on.
async fn pass(item: Decoded, pos: Position, sender: &mut EventSender) -> Result<(), ReceiverGone> {
    let stats = sender.stats();
    match item {
        Decoded::Event(ev) => {
            if !ev.is_own() {
                stats.events.fetch_add(1, Ordering::Relaxed);
            }
            sender.send_at(ev, pos).await
        }
        Decoded::Malformed { offset, len, error } => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            stats
                .malformed_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
            tracing::warn!(source = %sender.source(), offset, len, %error,
                "skipped malformed bytes on the bus; reading goes on");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, JournalSettings};

    fn frame(n: u8) -> Vec<u8> {
        let mut body = b"t/x\n\n".to_vec();
        body.extend_from_slice(&[0x81, 0xa1, b'n', n & 0x7f]);
        let mut f = vec![0x82, 0xa4];
        f.extend_from_slice(b"head");
        f.push(0x80);
        f.push(0xa4);
        f.extend_from_slice(b"body");
        f.extend_from_slice(&[0xc4, body.len() as u8]);
        f.extend_from_slice(&body);
        f
    }

    /// Decodes the journal from `start`: each event's `n` and the position after it.
    fn decode_from(j: &Journal, start: Position) -> Vec<(u64, Position)> {
        let mut reader = j.reader(start.record);
        let mut d = Decoding::new(Arc::from("test"), DEFAULT_MAX_FRAME, start.record);
        let mut out = Vec::new();
        let mut got = Vec::new();
        while let Some(Item::Record(r)) = reader.try_next() {
            d.next_record = r.end;
            let skip = if r.pos == start.record { start.skip } else { 0 };
            take(&mut d, &r, skip, &mut out);
            for (item, pos) in out.drain(..) {
                if let Decoded::Event(ev) = item {
                    got.push((ev.data()["n"].as_u64().unwrap_or(999), pos));
                }
            }
        }
        got
    }

    #[tokio::test]
    async fn decoding_resumes_at_any_events_position_with_the_events_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), JournalSettings::default(), Arc::default()).unwrap();
        let mut w = j.writer().unwrap();
        let stream: Vec<u8> = (0..40).flat_map(frame).collect();
        w.append(CONNECT, SystemTime::now(), b"ipc:/x").unwrap();
        // Reads that end inside frames, as a socket's do.
        for chunk in stream.chunks(37) {
            w.append(BYTES, SystemTime::now(), chunk).unwrap();
        }
        let all = decode_from(&j, Position::default());
        let ns: Vec<u64> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(ns, (0..40).collect::<Vec<u64>>());
        for (i, (_, pos)) in all.iter().enumerate() {
            let rest: Vec<u64> = decode_from(&j, *pos).iter().map(|(n, _)| *n).collect();
            assert_eq!(
                rest,
                ((i as u64 + 1)..40).collect::<Vec<u64>>(),
                "from {pos:?}"
            );
        }
    }
}
