//! The webhook's `format: cloudevents` (docs/cloudevents.md): the body
//! and headers of structured and binary mode, from the attributes the
//! sinks share ([`crate::sink::cloudevents`]).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::outgoing::Outgoing;
use crate::sink::cloudevents::{self, Attributes, CloudEventsConfig, Mode};

/// `format: cloudevents`: structured mode's envelope (an array of them
/// when batching), or binary mode's body, the event's data as decoded.
pub(super) fn body(ce: &CloudEventsConfig, batch: &[Outgoing], batched: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if ce.mode == Mode::Binary {
        if let Some(first) = batch.first() {
            out.extend_from_slice(first.event.data_json().as_bytes());
        }
        return out;
    }
    if batched {
        out.push(b'[');
    }
    for (i, o) in batch.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        cloudevents::write_event(&mut out, o, ce.source.as_deref());
    }
    if batched {
        out.push(b']');
    }
    out
}

/// `format: cloudevents` headers: the content type of structured mode, or
/// binary mode's `ce-` attributes (percent-encoded, cut to `max`).
pub(super) fn headers(
    h: &mut HeaderMap,
    ce: &CloudEventsConfig,
    first: &Outgoing,
    batched: bool,
    max: usize,
) {
    let content_type = match (ce.mode, batched) {
        (Mode::Binary, _) => "application/json",
        (Mode::Structured, false) => cloudevents::STRUCTURED_CONTENT_TYPE,
        (Mode::Structured, true) => cloudevents::BATCH_CONTENT_TYPE,
    };
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if ce.mode != Mode::Binary {
        return;
    }
    let attrs = Attributes::of(first, ce.source.as_deref());
    for (name, value) in attrs.pairs() {
        let encoded = cloudevents::percent_encode_header(value, max);
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(format!("ce-{name}").as_bytes()),
            HeaderValue::from_str(&encoded),
        ) {
            h.insert(n, v);
        }
    }
}
