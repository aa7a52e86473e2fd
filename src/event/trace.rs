//! W3C trace context in event data: Salt's `fire_event` may add
//! `traceparent` and `tracestate` to the top level of an event's data (the
//! twin filter already ignores them, `twins::classify::FIRE_EVENT_KEYS`).
//! Sinks forward a valid pair as the W3C headers of the same names
//! (<https://www.w3.org/TR/trace-context/>); the idempotency key leaves both
//! members out, so the same fact under another span keeps its key.
//!
//! Minions are not trusted: a `traceparent` that is not the W3C version-00
//! form (`00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not all zero) is
//! ignored, and so is its `tracestate`, as the recommendation says; a
//! `tracestate` longer than 512 bytes (what every vendor must propagate) or
//! with a byte outside printable ASCII is dropped.

use serde::Deserialize;

/// The two data members that carry trace context.
pub const TRACE_KEYS: [&str; 2] = ["traceparent", "tracestate"];
/// The longest `tracestate` forwarded, in bytes.
pub const MAX_TRACESTATE: usize = 512;

/// A valid trace context from an event's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// The trace context at the top level of `data_json`, if valid. Costs a
/// substring search when the data has none.
pub fn trace_context(data_json: &str) -> Option<TraceContext> {
    #[derive(Deserialize)]
    struct Members {
        traceparent: Option<serde_json::Value>,
        tracestate: Option<serde_json::Value>,
    }
    if !may_have_trace(data_json.as_bytes()) {
        return None;
    }
    memchr::memmem::find(data_json.as_bytes(), b"\"traceparent\"")?;
    let m: Members = serde_json::from_str(data_json).ok()?;
    let traceparent = m.traceparent?.as_str()?.to_owned();
    if !valid_traceparent(&traceparent) {
        return None;
    }
    let tracestate = m
        .tracestate
        .as_ref()
        .and_then(|v| v.as_str())
        .filter(|s| valid_tracestate(s))
        .map(str::to_owned);
    Some(TraceContext {
        traceparent,
        tracestate,
    })
}

/// Whether `data` has `"trace` at all: one search with a searcher built
/// once (every event is asked, by the idempotency key and by each sink; a
/// searcher built per call was a visible cost in `perf`).
fn may_have_trace(data: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"trace"));
    FINDER.find(data).is_some()
}

/// `00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>`, lower-case
/// hex, neither id all zeros.
pub fn valid_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |p: &str| p.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [v, t, p, f]
        if *v == "00" && hex(t, 32) && hex(p, 16) && hex(f, 2) && nonzero(t) && nonzero(p))
}

/// Printable ASCII (space included), non-empty, at most [`MAX_TRACESTATE`] bytes.
pub fn valid_tracestate(s: &str) -> bool {
    !s.trim().is_empty()
        && s.len() <= MAX_TRACESTATE
        && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// `data_json` with its top-level `traceparent` and `tracestate` members
/// cut out, as the same writer would have written it without them; `None`
/// when it has neither (the usual case: one substring search).
pub fn without_trace_members(data_json: &str) -> Option<String> {
    let bytes = data_json.as_bytes();
    const QUOTED: [&[u8]; 2] = [b"\"traceparent\"", b"\"tracestate\""];
    if !may_have_trace(bytes)
        || !QUOTED
            .iter()
            .any(|k| memchr::memmem::find(bytes, k).is_some())
    {
        return None;
    }
    let members = top_level_members(data_json)?;
    let mut keep = String::with_capacity(data_json.len());
    let mut cut = false;
    let (first, last) = (members.first()?.start, members.last()?.end);
    keep.push_str(&data_json[..first]);
    let mut wrote = false;
    for m in &members {
        let key: Result<String, _> =
            serde_json::from_str(data_json[m.start..m.end].split_at(m.colon - m.start).0);
        if key.as_deref().is_ok_and(|k| TRACE_KEYS.contains(&k)) {
            cut = true;
            continue;
        }
        if wrote {
            keep.push(',');
        }
        keep.push_str(&data_json[m.start..m.end]);
        wrote = true;
    }
    keep.push_str(&data_json[last..]);
    cut.then_some(keep)
}

/// One `"key":value` member of the top-level object: its byte span and
/// where its `:` is.
struct Member {
    start: usize,
    colon: usize,
    end: usize,
}

/// The members of a top-level JSON object, found by tracking strings and
/// nesting; `None` if the text is not an object.
fn top_level_members(json: &str) -> Option<Vec<Member>> {
    let b = json.as_bytes();
    let open = json.find(|c: char| !c.is_ascii_whitespace())?;
    if b[open] != b'{' {
        return None;
    }
    let mut members = Vec::new();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    let (mut start, mut colon) = (None::<usize>, None::<usize>);
    for (i, &c) in b.iter().enumerate().skip(open) {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
            }
            b':' if depth == 1 && colon.is_none() => colon = Some(i),
            b'{' | b'[' => depth += 1,
            b'}' | b']' | b',' if depth == 1 => {
                if let (Some(s), Some(k)) = (start.take(), colon.take()) {
                    members.push(Member {
                        start: s,
                        colon: k,
                        end: json[..i].trim_end().len(),
                    });
                }
                if c != b',' {
                    return Some(members);
                }
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
