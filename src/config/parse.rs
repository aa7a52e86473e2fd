//! Parsing a routes file's text (after substitution) into [`RoutesFile`],
//! with the first error located and a "did you mean" for a misspelt field.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ConfigError;
use super::file::RoutesFile;
use crate::route::predicate::did_you_mean;
use crate::twins::TwinKind;

/// Top-level and per-route field names, for "did you mean" (with the
/// twin kinds' names, [`known_fields`]).
const KNOWN_FIELDS: &[&str] = &[
    "source",
    "twins",
    "drop",
    "sinks",
    "routes",
    "unmatched",
    "name",
    "match",
    "to",
    "continue",
    "dedup",
    "tag",
    "tag_regex",
    "where",
    "key",
    "ttl",
    "max_entries",
    "window",
    "find_job",
    "auth",
    "minion_refresh",
    "jobs",
    "enabled",
    "timeout",
    "gather_job_timeout",
    "wait",
    "max_jobs",
    "max_job_bytes",
    "max_tracked_bytes",
];

pub(super) fn parse(path: &Path, text: &str) -> Result<RoutesFile, Box<ConfigError>> {
    if text.trim().is_empty() {
        return Ok(RoutesFile {
            source: None,
            twins: Default::default(),
            drop: Default::default(),
            jobs: Default::default(),
            sinks: BTreeMap::new(),
            routes: Vec::new(),
            unmatched: None,
        });
    }
    let mut field = String::new();
    serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize::<_, RoutesFile>(de).map_err(|e| {
            field = clean_path(&e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| {
        let rendered = e.to_string();
        let mut lines = rendered.lines();
        let first = lines.next().unwrap_or_default();
        // "error: line 3 column 5: unknown field ..." -> "unknown field ..."
        let message = first
            .split_once(": ")
            .and_then(|(_, rest)| rest.split_once(": ").map(|(_, m)| m))
            .unwrap_or(first)
            .to_owned();
        let snippet: Vec<&str> = lines.collect();
        let hint = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
            .and_then(|got| did_you_mean(got, &known_fields()))
            .map(|k| format!("did you mean `{k}`?"));
        let mut err = ConfigError::new(path, e.location(), field.clone(), message).with_hint(hint);
        let file = path.display().to_string();
        err.snippet = (!snippet.is_empty()).then(|| snippet.join("\n").replace("<input>", &file));
        Box::new(err)
    })
}

/// `serde_path_to_error` shows the inside of `Spanned` as `.value`.
fn clean_path(p: &str) -> String {
    let p = p.replace(".value.", ".").replace(".value[", "[");
    p.strip_suffix(".value").unwrap_or(&p).to_owned()
}

/// [`KNOWN_FIELDS`] and the twin kinds' names.
fn known_fields() -> Vec<&'static str> {
    let kinds = TwinKind::ALL.iter().map(|k| k.name());
    KNOWN_FIELDS.iter().copied().chain(kinds).collect()
}
