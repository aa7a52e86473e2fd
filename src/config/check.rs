//! Checks that need the whole file: names that must exist, patterns that
//! must compile, routes that can never match. Each problem is reported at
//! the line of the value at fault.

use std::collections::HashMap;
use std::path::Path;

use super::error::{located, ConfigError};
use super::file::{RoutesFile, SourceSetting};
use crate::route::config::{RouteConfig, Unmatched};
use crate::route::predicate::did_you_mean;
use crate::source::SourceSpec;

/// Every problem found in `file`; empty when it is good.
pub fn check(path: &Path, file: &RoutesFile) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    check_settings(path, file, &mut errors);
    let sinks = SinkNames(file.sinks.keys().map(String::as_str).collect());
    check_routes(path, file, &sinks, &mut errors);
    check_unmatched(path, file, &sinks, &mut errors);
    errors
}

/// The names under `sinks:`, for "unknown sink" errors.
struct SinkNames<'a>(Vec<&'a str>);

impl SinkNames<'_> {
    fn unknown(&self, name: &str) -> (String, Option<String>) {
        let hint = did_you_mean(name, &self.0).map(|s| format!("did you mean `{s}`?"));
        let known = if self.0.is_empty() {
            "no sinks are defined under `sinks:`".to_owned()
        } else {
            format!("defined sinks: {}", self.0.join(", "))
        };
        (format!("unknown sink `{name}` ({known})"), hint)
    }
}

/// `source`: its SPEC parses, and `saltapi` settings go with a `saltapi:` SPEC.
fn check_source(
    path: &Path,
    src: &serde_saphyr::Spanned<SourceSetting>,
    errors: &mut Vec<ConfigError>,
) {
    let spec = match src.value.spec().map(str::parse::<SourceSpec>) {
        Some(Ok(spec)) => Some(spec),
        Some(Err(e)) => {
            let field = if matches!(src.value, SourceSetting::Map(_)) {
                "source.spec"
            } else {
                "source"
            };
            errors.push(located(path, src, field, e.to_string()));
            None
        }
        None => None,
    };
    let Some(settings) = src.value.saltapi() else {
        return;
    };
    if let Err((field, message)) = settings.check() {
        errors.push(located(
            path,
            src,
            &format!("source.saltapi.{field}"),
            message,
        ));
    }
    if spec.is_some_and(|s| !matches!(s, SourceSpec::SaltApi { .. })) {
        errors.push(located(
            path,
            src,
            "source.saltapi",
            "is for a saltapi: source; source.spec names another kind",
        ));
    }
}

/// `source`, `twins` and the shape of `sinks`.
fn check_settings(path: &Path, file: &RoutesFile, errors: &mut Vec<ConfigError>) {
    if let Some(src) = &file.source {
        check_source(path, src, errors);
    }
    if file.twins.max_entries == 0 {
        errors.push(ConfigError::new(
            path,
            None,
            "twins.max_entries",
            "must be at least 1",
        ));
    }
    if file.journal.max_bytes < crate::journal::MIN_MAX_BYTES {
        errors.push(ConfigError::new(
            path,
            None,
            "journal.max_bytes",
            format!(
                "must be at least {} bytes (1MiB)",
                crate::journal::MIN_MAX_BYTES
            ),
        ));
    }
    for (name, cfg) in &file.sinks {
        if !crate::state_dir::valid_sink_name(name) {
            errors.push(located(
                path,
                cfg,
                format!("sinks.{name}").as_str(),
                "a sink's name is 1 to 64 of A-Z a-z 0-9 _ - (it names its spool directory)",
            ));
        }
        if !cfg.value.is_object() {
            errors.push(located(
                path,
                cfg,
                format!("sinks.{name}").as_str(),
                "a sink is a map of its settings",
            ));
        }
    }
}

/// Route names, and routes that an earlier one shadows.
fn check_routes(path: &Path, file: &RoutesFile, sinks: &SinkNames, errors: &mut Vec<ConfigError>) {
    let mut seen_names: HashMap<&str, u64> = HashMap::new();
    // Earlier routes that stop every event they match: only they can shadow.
    let mut stoppers: Vec<(usize, &RouteConfig)> = Vec::new();
    for (i, r) in file.routes.iter().enumerate() {
        let at = |f: &str| format!("routes[{i}].{f}");
        let name = r.name.value.as_str();
        if name.trim().is_empty() {
            errors.push(located(path, &r.name, &at("name"), "a route needs a name"));
        } else if let Some(line) = seen_names.insert(name, r.name.referenced.line()) {
            errors.push(located(
                path,
                &r.name,
                &at("name"),
                format!("route name `{name}` is already used on line {line}"),
            ));
        }
        check_route(path, file, i, r, sinks, errors);
        if let Some((k, earlier)) = stoppers.iter().copied().find(|(_, e)| shadows(e, r)) {
            errors.push(located(
                path,
                &r.name,
                &at("match"),
                format!(
                    "route `{name}` can never match: route `{}` (routes[{k}], line {}) takes every event it would see and does not `continue`",
                    earlier.name.value,
                    earlier.name.referenced.line()
                ),
            ));
        }
        if stops_everything_it_sees(r) {
            stoppers.push((i, r));
        }
    }
}

/// One route's sinks, patterns and dedup.
fn check_route(
    path: &Path,
    file: &RoutesFile,
    i: usize,
    r: &RouteConfig,
    sinks: &SinkNames,
    errors: &mut Vec<ConfigError>,
) {
    let at = |f: &str| format!("routes[{i}].{f}");
    for (j, sink) in r.to.iter().enumerate() {
        if !file.sinks.contains_key(&sink.value) {
            let (msg, hint) = sinks.unknown(&sink.value);
            errors.push(located(path, sink, &at(&format!("to[{j}]")), msg).with_hint(hint));
        }
    }
    if let Some(tags) = &r.matcher.tag {
        for g in tags.value.items() {
            if let Some(why) = glob_problem(g) {
                errors.push(located(
                    path,
                    tags,
                    &at("match.tag"),
                    format!("glob {g:?} {why}"),
                ));
            }
        }
    }
    if let Some(res) = &r.matcher.tag_regex {
        for re in res.value.items() {
            if let Err(e) = regex::Regex::new(re) {
                errors.push(located(
                    path,
                    res,
                    &at("match.tag_regex"),
                    format!("bad regex {re:?}: {e}"),
                ));
            }
        }
    }
    if let Some(d) = &r.dedup {
        if let Err(e) = minijinja::Environment::new().template_from_str(&d.key.value) {
            errors.push(located(
                path,
                &d.key,
                &at("dedup.key"),
                format!("bad template: {e}"),
            ));
        }
        if d.ttl.is_zero() {
            errors.push(located(
                path,
                &d.key,
                &at("dedup.ttl"),
                "must be longer than 0s",
            ));
        }
    }
}

/// `unmatched: drop` or sinks that exist.
fn check_unmatched(
    path: &Path,
    file: &RoutesFile,
    sinks: &SinkNames,
    errors: &mut Vec<ConfigError>,
) {
    if let Some(u) = &file.unmatched {
        match &u.value {
            Unmatched::Keyword(k) if k == "drop" => {}
            Unmatched::Keyword(k) => {
                let hint = did_you_mean(k, &["drop"]).map(|s| format!("did you mean `{s}`?"));
                errors.push(
                    located(
                        path,
                        u,
                        "unmatched",
                        format!("expected `drop` or a list of sinks, got `{k}`"),
                    )
                    .with_hint(hint),
                );
            }
            Unmatched::Sinks(names) => {
                for (j, n) in names.iter().enumerate() {
                    if !file.sinks.contains_key(n) {
                        let (msg, hint) = sinks.unknown(n);
                        errors.push(
                            located(path, u, &format!("unmatched[{j}]"), msg).with_hint(hint),
                        );
                    }
                }
            }
        }
    }
}

/// Why a glob can never match a Salt tag, if it cannot.
fn glob_problem(g: &str) -> Option<String> {
    if g.is_empty() {
        return Some("is empty and matches no tag".into());
    }
    if g.trim() != g {
        return Some("has leading or trailing spaces, which no Salt tag has".into());
    }
    if g.starts_with('/') {
        return Some("starts with '/', which no Salt tag does".into());
    }
    None
}

/// True when a route's decision does not depend on the data: no `where`,
/// no `dedup`, no `continue`.
fn stops_everything_it_sees(r: &RouteConfig) -> bool {
    !r.continue_ && r.dedup.is_none() && r.matcher.where_.is_none()
}

/// True when `earlier` takes every event `later` could see: it stops there
/// unconditionally, and its tags cover all of `later`'s.
fn shadows(earlier: &RouteConfig, later: &RouteConfig) -> bool {
    if !stops_everything_it_sees(earlier) {
        return false;
    }
    let e_globs = earlier.matcher.tag.as_ref().map(|t| t.value.items());
    let matches_all = match (&e_globs, &earlier.matcher.tag_regex) {
        (None, None) => true,
        (Some(g), _) => g.iter().any(|p| p == "*"),
        _ => false,
    };
    if matches_all {
        return true;
    }
    match (e_globs, &later.matcher.tag, &later.matcher.tag_regex) {
        (Some(eg), Some(lg), None) => lg.value.items().iter().all(|p| eg.contains(p)),
        _ => false,
    }
}
