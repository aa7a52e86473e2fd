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
    "journal",
    "max_bytes",
    "max_age",
    "when_full",
    "fsync",
    "masters",
    "id",
    "master_config",
    "cluster_peers",
    "spec",
    "saltapi",
    "token",
    "username",
    "password",
    "eauth",
    "ca_file",
    "backfill",
    "cachedir",
    "hash_type",
    "max_file_bytes",
    "complete_trimmed",
    "trimmed",
    "max_events",
    "minion_events",
    "order_masters",
];

pub(super) fn parse(path: &Path, text: &str) -> Result<RoutesFile, Box<ConfigError>> {
    if text.trim().is_empty() {
        return Ok(RoutesFile {
            source: None,
            twins: Default::default(),
            masters: None,
            drop: Default::default(),
            jobs: Default::default(),
            backfill: Default::default(),
            journal: Default::default(),
            sinks: BTreeMap::new(),
            routes: Vec::new(),
            unmatched: None,
        });
    }
    let mut field = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(text.len()), |de| {
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

/// The parser's budgets, from the size of the text: a YAML node or event
/// takes at least a byte or two of text unless an alias repeats it, so a
/// file of any size parses (10,000 routes are about 1.2 MB, 310,000 nodes),
/// while aliases can make a file at most [`EVENTS_PER_BYTE`] times its size
/// in events (no billion laughs). Measured: `benches/routes` files.
fn options(text_bytes: usize) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    let events = EVENTS_PER_BYTE
        .saturating_mul(text_bytes)
        .saturating_add(1024);
    budget.max_events = events;
    budget.max_nodes = events;
    budget.max_recorded_anchor_events = events;
    budget.max_total_scalar_bytes = super::MAX_FILE_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// How many parser events a byte of text may cost, aliases included:
/// `[[]]` is 4 bytes for 4 events; `- a` 3 bytes for 1.
const EVENTS_PER_BYTE: usize = 4;

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
