//! Reading a routes file: substitute `${...}`, parse, check, compile.
//!
//! Every problem comes back as a [`ConfigError`] naming the file, line,
//! column and field; parse errors stop at the first, the checks after
//! parsing report all they find.

use std::collections::BTreeMap;
use std::path::Path;

use regex::bytes::RegexSetBuilder;

use super::config::{RoutesFile, Unmatched};
use super::error::{located, ConfigError, ConfigErrors};
use super::interpolate::interpolate;
use super::predicate::did_you_mean;
use super::route_dedup::RecentKeys;
use super::table::{Route, RouteTable};
use super::tag_index::TagIndex;
use crate::salt::Fnmatch;

/// Top-level and per-route field names, for "did you mean".
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
    "bare_jid_new",
    "new_job",
    "bare_jid_ret",
    "state_failure",
    "minion_start",
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
];

/// Loads and compiles the routes file at `path`, reading `${ENV}` from the environment.
pub fn load_file(path: &Path) -> Result<RouteTable, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, None, "", format!("cannot read: {e}")))?;
    load_str(path, &text, |k| std::env::var(k).ok())
}

/// Loads routes from `text`; `path` names the file in messages.
pub fn load_str(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<RouteTable, ConfigErrors> {
    let text = interpolate(text, env, |p| std::fs::read_to_string(p)).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|e| ConfigError {
                    line: e.line,
                    column: e.column,
                    ..ConfigError::new(path, None, "", e.message)
                })
                .collect(),
        )
    })?;
    let file = parse(path, &text).map_err(|e| ConfigErrors(vec![*e]))?;
    let errors = super::check::check(path, &file);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    compile(path, file)
}

fn parse(path: &Path, text: &str) -> Result<RoutesFile, Box<ConfigError>> {
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
            .and_then(|got| did_you_mean(got, KNOWN_FIELDS))
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

fn compile(path: &Path, file: RoutesFile) -> Result<RouteTable, ConfigErrors> {
    let mut errors = Vec::new();
    let mut globs = Vec::new();
    let mut glob_owner = Vec::new();
    let mut regexes = Vec::new();
    let mut regex_owner = Vec::new();
    let mut templates = minijinja::Environment::new();
    templates.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    let mut routes = Vec::new();
    for (i, r) in file.routes.into_iter().enumerate() {
        if let Some(tags) = &r.matcher.tag {
            for g in tags.value.items() {
                globs.push(Fnmatch::new(g));
                glob_owner.push(i);
            }
        }
        if let Some(res) = &r.matcher.tag_regex {
            for re in res.value.items() {
                regexes.push(re.clone());
                regex_owner.push(i);
            }
        }
        let dedup = r.dedup.map(|d| {
            if let Err(e) = templates.add_template_owned(r.name.value.clone(), d.key.value.clone())
            {
                errors.push(located(
                    path,
                    &d.key,
                    &format!("routes[{i}].dedup.key"),
                    format!("bad template: {e}"),
                ));
            }
            RecentKeys::new(d.ttl, d.max_entries)
        });
        routes.push(Route {
            name: r.name.value,
            where_: r.matcher.where_.map(|w| w.value),
            to: r.to.into_iter().map(|s| s.value).collect(),
            continue_: r.continue_,
            dedup,
        });
    }
    let globs = TagIndex::new(globs);
    let regexes = RegexSetBuilder::new(&regexes)
        .size_limit(256 << 20)
        .build()
        .map_err(|e| ConfigError::new(path, None, "routes", format!("tag_regex: {e}")));
    let regexes = match regexes {
        Ok(r) if errors.is_empty() => r,
        r => {
            errors.extend(r.err());
            return Err(ConfigErrors(errors));
        }
    };
    let unmatched = match file.unmatched.map(|u| u.value) {
        Some(Unmatched::Sinks(s)) => s,
        _ => Vec::new(),
    };
    let sink_lines = file
        .sinks
        .iter()
        .map(|(k, v)| (k.clone(), (v.referenced.line(), v.referenced.column())))
        .collect();
    let sinks = file.sinks.into_iter().map(|(k, v)| (k, v.value)).collect();
    Ok(RouteTable::new(
        routes,
        globs,
        glob_owner,
        regexes,
        regex_owner,
        file.drop,
        unmatched,
        file.twins,
        file.jobs,
        file.source.map(|s| s.value),
        sinks,
        sink_lines,
        templates,
    ))
}
