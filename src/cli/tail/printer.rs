//! The `tail` printer: the bus as Salt's own listener would print it.
//!
//! `json` writes one `{"tag": ..., "data": ...}` object a line in bus order,
//! the data exactly as decoded. `pretty` follows `salt-run state.event
//! pretty=True`: the tag, a tab, and the data indented by four with sorted
//! keys; coloured when stdout is a terminal.

use std::io::Write;

use serde_json::Value;

use saltbridge::event::Event;
use saltbridge::route::TagGlobs;

/// How `tail` prints an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Pretty,
}

/// Prints events that pass the tag filter.
pub struct TailPrinter<W: Write> {
    out: W,
    format: Format,
    color: bool,
    tags: Option<TagGlobs>,
    line: Vec<u8>,
}

impl<W: Write> TailPrinter<W> {
    pub fn new(out: W, format: Format, color: bool, tags: Option<TagGlobs>) -> Self {
        TailPrinter {
            out,
            format,
            color,
            tags,
            line: Vec::with_capacity(4096),
        }
    }

    /// Writes `ev` if its tag passes the filter; returns whether it was written.
    pub fn print(&mut self, ev: &Event) -> std::io::Result<bool> {
        if let Some(tags) = &self.tags {
            if !tags.is_match(ev.tag()) {
                return Ok(false);
            }
        }
        self.line.clear();
        match self.format {
            Format::Json => ev.write_json(&mut self.line),
            Format::Pretty => self.pretty(ev),
        }
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(true)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn pretty(&mut self, ev: &Event) {
        let tag_style = if ev.is_own() { YELLOW } else { CYAN };
        self.paint(tag_style, ev.tag());
        self.line.push(b'\t');
        let mut text = String::new();
        pretty_value(&mut text, ev.data(), 0, self.color);
        self.line.extend_from_slice(text.as_bytes());
    }

    fn paint(&mut self, style: &str, s: &str) {
        if self.color {
            self.line.extend_from_slice(style.as_bytes());
        }
        self.line.extend_from_slice(s.as_bytes());
        if self.color {
            self.line.extend_from_slice(RESET.as_bytes());
        }
    }
}

const CYAN: &str = "\x1b[1;36m";
const YELLOW: &str = "\x1b[1;33m";
const BLUE: &str = "\x1b[34m";
const GREEN: &str = "\x1b[32m";
const MAGENTA: &str = "\x1b[35m";
const RESET: &str = "\x1b[0m";

fn painted(out: &mut String, color: bool, style: &str, s: &str) {
    if color {
        out.push_str(style);
        out.push_str(s);
        out.push_str(RESET);
    } else {
        out.push_str(s);
    }
}

/// JSON indented by four with sorted keys, as Salt's `pretty=True`.
fn pretty_value(out: &mut String, v: &Value, depth: usize, color: bool) {
    let pad = |out: &mut String, d: usize| out.extend(std::iter::repeat_n("    ", d));
    match v {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                pad(out, depth + 1);
                painted(out, color, BLUE, &Value::String((*k).clone()).to_string());
                out.push_str(": ");
                pretty_value(out, &map[k.as_str()], depth + 1, color);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                pretty_value(out, item, depth + 1, color);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push(']');
        }
        Value::String(_) => painted(out, color, GREEN, &v.to_string()),
        Value::Number(_) | Value::Bool(_) | Value::Null => {
            painted(out, color, MAGENTA, &v.to_string())
        }
        _ => out.push_str(&v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn pretty_is_tag_tab_sorted_indented_json() {
        let ev = Event::synthetic(
            "a/b",
            json!({"z": 1, "a": [true, "x"], "e": {}}),
            Arc::from("t"),
        );
        let mut p = TailPrinter::new(Vec::new(), Format::Pretty, false, None);
        p.print(&ev).unwrap();
        let text = String::from_utf8(p.out).unwrap();
        assert_eq!(
            text,
            "a/b\t{\n    \"a\": [\n        true,\n        \"x\"\n    ],\n    \"e\": {},\n    \"z\": 1\n}\n"
        );
    }

    #[test]
    fn tag_filter_skips_other_events() {
        let tags = TagGlobs::new(&["salt/job/*"]);
        let mut p = TailPrinter::new(Vec::new(), Format::Json, false, Some(tags));
        assert!(!p
            .print(&Event::synthetic("salt/auth", json!({}), Arc::from("t")))
            .unwrap());
        assert!(p
            .print(&Event::synthetic(
                "salt/job/1/new",
                json!({}),
                Arc::from("t")
            ))
            .unwrap());
        assert_eq!(p.out, b"{\"tag\":\"salt/job/1/new\",\"data\":{}}\n");
    }
}
