//! One `/events` data value to an [`Event`].
//!
//! salt-api writes `salt.utils.json.dumps(get_event(full=True))`, i.e.
//! `{"data": {...}, "tag": "..."}` with Python's `", "`/`": "` separators
//! and `ensure_ascii=False` (rest_cherrypy `Events.GET`). The tag is taken
//! from this JSON (the `tag:` line is unescaped, see `sse`), and the data is
//! written out again the way the bus decoder writes it (compact, key order
//! kept: `serde_json` with `preserve_order`), so that an event read through
//! salt-api has the same tag and the same data text as the same event read
//! from the master's socket, and twin matching and idempotency keys agree.
//! Measured equal on 3006.29 and 3008.4 (tests/saltapi_live.rs).
//!
//! What JSON cannot carry never reaches us: salt-api cannot serialise
//! `bytes` and ends every stream instead (`sse` refuses the cut block), and
//! Python writes a float NaN or infinity as the bare word `NaN`/`Infinity`,
//! which is not JSON, so such an event is refused here, counted and logged
//! (the bus decoder gives them as strings; docs/sources-saltapi.md).

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::event::{Event, JsonText};

#[derive(Deserialize)]
struct Wire {
    tag: String,
    data: Value,
}

/// Why a data value was not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a {{\"data\", \"tag\"}} JSON object: {0}")]
    Json(String),
    #[error(
        "data nests deeper than {} arrays and objects",
        crate::decode::msgpack::MAX_DEPTH
    )]
    TooDeep,
}

/// The event in one `/events` data value.
pub fn to_event(text: &str, source: Arc<str>, now: SystemTime) -> Result<Event, WireError> {
    // Checked before parsing: serde_json's own limit is deeper (128).
    if !crate::decode::json::within_depth(text) {
        return Err(WireError::TooDeep);
    }
    let wire: Wire = serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
    let data = JsonText::from(&wire.data);
    Ok(Event::new(wire.tag, data, now, source, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: &str) -> Result<Event, WireError> {
        to_event(text, Arc::from("saltapi:http://x"), SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn tag_and_data_as_the_bus_decoder_writes_them() {
        let e = ev(r#"{"data": {"jid": "2026", "b": [1, 2.5, "é\n"], "a": null}, "tag": "salt/job/2026/new"}"#)
            .unwrap();
        assert_eq!(e.tag(), "salt/job/2026/new");
        assert_eq!(
            e.data_json(),
            r#"{"jid":"2026","b":[1,2.5,"é\n"],"a":null}"#
        );
    }

    #[test]
    fn what_is_not_one_event_object_is_refused() {
        for bad in [
            "{\"injected\": true}\n{\"data\": {}, \"tag\": \"x\"}",
            r#"{"data": {"x": NaN}, "tag": "t"}"#,
            r#"{"tag": "t"}"#,
            "[]",
        ] {
            assert!(ev(bad).is_err(), "{bad}");
        }
        let deep = format!(
            r#"{{"data": {}1{}, "tag": "t"}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert_eq!(ev(&deep).unwrap_err(), WireError::TooDeep);
    }
}
