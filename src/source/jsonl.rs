//! JSON lines from a file or stdin; the stream ends at end of input.
//!
//! Two line forms are accepted, so that saltbridge can replay what other
//! tools recorded: `{"tag": ..., "data": ...}` objects (what `tail --format
//! json` writes) and `salt-run state.event pretty=False` lines, `tag<TAB>{json}`.
//! A line that is neither is counted, logged with its line number and byte
//! offset, and skipped. Blank lines are ignored.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{EventSender, SourceError};
use crate::event::{Event, JsonText};
use crate::shutdown::Shutdown;

#[derive(Deserialize)]
struct Line<'a> {
    tag: String,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Why a line was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("not a {{\"tag\", \"data\"}} object: {0}")]
    Object(String),
    #[error("expected {{\"tag\": ..., \"data\": ...}} or TAG<TAB>JSON")]
    Shape,
    #[error("data after the tab is not JSON: {0}")]
    Data(String),
    #[error(
        "data nests deeper than {} arrays and objects",
        crate::decode::msgpack::MAX_DEPTH
    )]
    TooDeep,
}

/// Parses one line into a tag and JSON data text; `Ok(None)` for a blank line.
pub fn parse_line(line: &[u8]) -> Result<Option<(String, JsonText)>, LineError> {
    let text = std::str::from_utf8(line).map_err(|_| LineError::NotUtf8)?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.trim_start().starts_with('{') {
        let l: Line<'_> =
            serde_json::from_str(text).map_err(|e| LineError::Object(e.to_string()))?;
        let data = l
            .data
            .map_or_else(|| "{}".to_owned(), |d| d.get().to_owned());
        return Ok(Some((l.tag, JsonText::trusted(within_depth(data)?))));
    }
    let (tag, json) = text.split_once('\t').ok_or(LineError::Shape)?;
    let data: &RawValue = serde_json::from_str(json).map_err(|e| LineError::Data(e.to_string()))?;
    Ok(Some((
        tag.to_owned(),
        JsonText::trusted(within_depth(data.get().to_owned())?),
    )))
}

/// The program's one depth limit applies to JSON data as to msgpack data.
fn within_depth(data: String) -> Result<String, LineError> {
    if crate::decode::json::within_depth(&data) {
        Ok(data)
    } else {
        Err(LineError::TooDeep)
    }
}

/// Reads `path` (stdin when `None`) to its end.
pub async fn run(
    path: Option<PathBuf>,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    let name = path
        .as_ref()
        .map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
    let input: Box<dyn AsyncRead + Unpin + Send> = match &path {
        None => Box::new(tokio::io::stdin()),
        Some(p) => {
            Box::new(
                tokio::fs::File::open(p)
                    .await
                    .map_err(|source| SourceError::Open {
                        path: name.clone(),
                        source,
                    })?,
            )
        }
    };
    sender.stats().set_connected(true);
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::new();
    let (mut offset, mut number) = (0u64, 0u64);
    loop {
        line.clear();
        let n = tokio::select! {
            biased;
            _ = shutdown.wait() => return Ok(()),
            r = reader.read_until(b'\n', &mut line) => r.map_err(|source| SourceError::Read { path: name.clone(), source })?,
        };
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let stats = sender.stats().clone();
        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        match parse_line(&line) {
            Ok(None) => {}
            Ok(Some((tag, data))) => {
                stats.events.fetch_add(1, Ordering::Relaxed);
                let ev = Event::new(tag, data, SystemTime::now(), sender.source().clone(), None);
                if sender.send(ev).await.is_err() {
                    return Ok(());
                }
            }
            Err(error) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                stats.malformed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                tracing::warn!(source = %sender.source(), line = number, offset, %error, "skipped a malformed line");
            }
        }
        offset += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_line_forms() {
        let (t, d) = parse_line(br#"{"tag": "a/b", "data": {"x": 1}}"#)
            .unwrap()
            .unwrap();
        assert_eq!((t.as_str(), d.as_str()), ("a/b", r#"{"x": 1}"#));
        let (t, d) = parse_line(b"salt/job/1/new\t{\"jid\": \"1\"}\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.as_str(), d.as_str()),
            ("salt/job/1/new", r#"{"jid": "1"}"#)
        );
        assert_eq!(parse_line(b"  \n").unwrap(), None);
    }

    #[test]
    fn bad_lines_say_why() {
        assert_eq!(parse_line(b"no tab here"), Err(LineError::Shape));
        assert!(matches!(parse_line(b"t\t{bad"), Err(LineError::Data(_))));
        assert!(matches!(
            parse_line(br#"{"data": {}}"#),
            Err(LineError::Object(_))
        ));
        assert_eq!(parse_line(b"\xff\t{}"), Err(LineError::NotUtf8));
    }
}
