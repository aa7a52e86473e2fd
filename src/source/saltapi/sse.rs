//! A server-sent-events parser (the WHATWG `text/event-stream` rules), pure:
//! bytes in, items out, no I/O.
//!
//! salt-api's `/events` (rest_cherrypy `Events.GET`, rest_tornado
//! `EventsSaltAPIHandler`) writes `retry: 400\n` once, then per event
//! `tag: <tag>\n` and `data: <json>\n\n`, with no blank line after `retry`
//! (measured on 3006.29, 3008.2 and 3008.4). So the first block holds
//! `retry`, `tag` and `data`; unknown fields such as `tag` are ignored and
//! the tag is taken from the JSON, because salt-api writes the tag line
//! unescaped: a tag holding `\n` can inject lines, and only the JSON is
//! trustworthy. Several `data:` lines are joined with `\n`, as the spec says.
//!
//! Minions choose what goes into event data, so every limit is in bytes: a
//! line or an event's data longer than `max` is not kept (its bytes are
//! dropped as they arrive) and comes out as one [`SseItem::Refused`] with
//! its stream offset and length when its block ends; reading goes on with
//! the next block. A block cut off by the end of the stream is refused as
//! truncated (salt-api ends a stream in the middle of an event when the
//! event cannot be serialised, e.g. data holding `bytes`).

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// An event's data (its `data:` lines joined), from the block at
    /// `offset` that took `len` bytes.
    Data { offset: u64, len: u64, data: String },
    /// The server's `retry:` in milliseconds.
    Retry(u64),
    /// A block not passed on, at `offset`, `len` bytes long.
    Refused {
        offset: u64,
        len: u64,
        reason: SseError,
    },
}

/// Why a block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("a line longer than the {max}-byte limit (--max-frame)")]
    LineTooLong { max: usize },
    #[error("event data larger than the {max}-byte limit (--max-frame)")]
    EventTooLarge { max: usize },
    #[error("event data is not UTF-8")]
    NotUtf8,
    #[error("the stream ended inside an event")]
    Truncated,
}

/// The parser for one connection.
#[derive(Debug)]
pub struct SseParser {
    max: usize,
    /// The line read so far (without its terminator).
    line: Vec<u8>,
    line_too_long: bool,
    /// The block's `data:` values, each followed by `\n`.
    data: Vec<u8>,
    has_data: bool,
    refused: Option<SseError>,
    /// A field other than `retry` (or a refused line) was seen in this block.
    pending: bool,
    /// Stream offset where the current block starts, and bytes read since.
    block_start: u64,
    /// Bytes consumed in all.
    offset: u64,
    /// The last byte was a CR: an LF right after it ends nothing more.
    after_cr: bool,
}

impl SseParser {
    /// A parser refusing lines and event data over `max` bytes.
    pub fn new(max: usize) -> Self {
        SseParser {
            max,
            line: Vec::new(),
            line_too_long: false,
            data: Vec::new(),
            has_data: false,
            refused: None,
            pending: false,
            block_start: 0,
            offset: 0,
            after_cr: false,
        }
    }

    /// True while a block has started and not ended: bytes of an event are
    /// awaited (the reader's stall timeout applies only then).
    pub fn mid_block(&self) -> bool {
        self.pending || !self.line.is_empty() || self.line_too_long
    }

    /// Parses `chunk`, appending what it completes to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) {
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
            self.offset += 1;
        }
        self.after_cr = false;
        while !chunk.is_empty() {
            match memchr::memchr2(b'\n', b'\r', chunk) {
                None => {
                    self.take(chunk);
                    self.offset += chunk.len() as u64;
                    return;
                }
                Some(i) => {
                    self.take(&chunk[..i]);
                    let mut used = i + 1;
                    if chunk[i] == b'\r' {
                        match chunk.get(i + 1) {
                            Some(b'\n') => used += 1,
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    self.offset += used as u64;
                    chunk = &chunk[used..];
                    self.end_line(out);
                }
            }
        }
    }

    /// The end of the stream: a block left open is refused as truncated.
    pub fn finish(&mut self, out: &mut Vec<SseItem>) {
        if self.mid_block() {
            out.push(SseItem::Refused {
                offset: self.block_start,
                len: self.offset - self.block_start,
                reason: self.refused.unwrap_or(SseError::Truncated),
            });
        }
        self.reset_block();
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.line_too_long {
            return;
        }
        if self.line.len() + bytes.len() > self.max {
            self.line_too_long = true;
            self.line = Vec::new();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseItem>) {
        if self.line_too_long {
            self.line_too_long = false;
            self.refuse(SseError::LineTooLong { max: self.max });
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.end_block(out);
            return;
        }
        self.field(&line, out);
        self.line = line;
        self.line.clear();
    }

    fn field(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line[0] == b':' {
            return; // a comment
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if name != b"retry" {
            self.pending = true;
        }
        match name {
            b"data" => {
                if self.refused.is_some() {
                    return;
                }
                if self.data.len() + value.len() + 1 > self.max + 1 {
                    self.refuse(SseError::EventTooLarge { max: self.max });
                    return;
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"retry" => {
                if let Some(ms) = std::str::from_utf8(value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse().ok())
                {
                    out.push(SseItem::Retry(ms));
                }
            }
            // `tag` (salt-api's own), `event` and `id` (salt-api sends neither).
            _ => {}
        }
    }

    fn refuse(&mut self, reason: SseError) {
        self.pending = true;
        self.refused.get_or_insert(reason);
        self.data = Vec::new();
        self.has_data = false;
    }

    fn end_block(&mut self, out: &mut Vec<SseItem>) {
        let (offset, len) = (self.block_start, self.offset - self.block_start);
        if let Some(reason) = self.refused {
            out.push(SseItem::Refused {
                offset,
                len,
                reason,
            });
        } else if self.has_data {
            let mut data = std::mem::take(&mut self.data);
            data.pop(); // the `\n` after the last line
            match String::from_utf8(data) {
                Ok(data) => out.push(SseItem::Data { offset, len, data }),
                Err(_) => out.push(SseItem::Refused {
                    offset,
                    len,
                    reason: SseError::NotUtf8,
                }),
            }
        }
        self.reset_block();
    }

    fn reset_block(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.refused = None;
        self.pending = false;
        self.line.clear();
        self.line_too_long = false;
        self.block_start = self.offset;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(max: usize, chunks: &[&[u8]]) -> Vec<SseItem> {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn data(items: &[SseItem]) -> Vec<&str> {
        items
            .iter()
            .filter_map(|i| match i {
                SseItem::Data { data, .. } => Some(data.as_str()),
                _ => None,
            })
            .collect()
    }

    /// salt-api's own bytes: `retry` and the first event in one block.
    const SALT: &[u8] = b"retry: 400\ntag: a/b\ndata: {\"data\": {\"x\": 1}, \"tag\": \"a/b\"}\n\ntag: c\ndata: {\"data\": {}, \"tag\": \"c\"}\n\n";

    #[test]
    fn reads_salt_api_stream_in_any_chunking() {
        let whole = parse(1 << 20, &[SALT]);
        assert_eq!(whole[0], SseItem::Retry(400));
        assert_eq!(
            data(&whole),
            [
                r#"{"data": {"x": 1}, "tag": "a/b"}"#,
                r#"{"data": {}, "tag": "c"}"#
            ]
        );
        for split in 0..SALT.len() {
            let (a, b) = SALT.split_at(split);
            assert_eq!(parse(1 << 20, &[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = SALT.chunks(1).collect();
        assert_eq!(parse(1 << 20, &bytes), whole);
    }

    #[test]
    fn offsets_locate_each_block() {
        let items = parse(1 << 20, &[SALT]);
        let SseItem::Data { offset, len, .. } = &items[2] else {
            panic!("{items:?}")
        };
        let first_len = SALT.len() as u64 - len;
        assert_eq!(*offset, first_len);
    }

    #[test]
    fn crlf_cr_comments_and_multiline_data() {
        let items = parse(1 << 20, &[b": hi\r\ndata: a\rdata:b\r\n\r\n"]);
        assert_eq!(data(&items), ["a\nb"]);
        let split = parse(1 << 20, &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(data(&split), ["a\nb"]);
    }

    #[test]
    fn an_injected_tag_line_gives_data_that_is_not_one_json() {
        let items = parse(
            1 << 20,
            &[b"tag: lab/evil\ndata: {\"injected\": true}\ndata: {\"data\": {}, \"tag\": \"x\"}\n\n"],
        );
        assert_eq!(
            data(&items),
            ["{\"injected\": true}\n{\"data\": {}, \"tag\": \"x\"}"]
        );
    }

    #[test]
    fn oversized_lines_and_events_are_refused_located_and_cost_nothing_else() {
        let big = format!("data: {}\n\ndata: ok\n\n", "x".repeat(100));
        let items = parse(50, &[big.as_bytes()]);
        assert_eq!(
            items[0],
            SseItem::Refused {
                offset: 0,
                len: 108,
                reason: SseError::LineTooLong { max: 50 }
            }
        );
        assert_eq!(data(&items), ["ok"]);
        // Many small lines adding up to too much.
        let many = "data: 0123456789\n".repeat(10) + "\ndata: ok\n\n";
        let items = parse(50, &[many.as_bytes()]);
        assert!(matches!(
            items[0],
            SseItem::Refused {
                offset: 0,
                reason: SseError::EventTooLarge { max: 50 },
                ..
            }
        ));
        assert_eq!(data(&items), ["ok"]);
        // Memory stays bounded while a huge line streams in.
        let mut p = SseParser::new(50);
        let mut out = Vec::new();
        for _ in 0..1000 {
            p.push(&[b'y'; 1000], &mut out);
        }
        assert!(p.line.capacity() <= 1024 && out.is_empty());
    }

    #[test]
    fn a_block_cut_by_the_end_is_truncated_and_bad_utf8_refused() {
        let items = parse(1 << 20, &[b"data: {}\n\ntag: lab/bytes\n"]);
        assert_eq!(
            items[1],
            SseItem::Refused {
                offset: 10,
                len: 15,
                reason: SseError::Truncated
            }
        );
        let items = parse(1 << 20, &[b"data: \xff\n\n"]);
        assert!(matches!(
            items[0],
            SseItem::Refused {
                reason: SseError::NotUtf8,
                ..
            }
        ));
    }
}
