//! Compiling the routes of a checked routes file into a [`RouteTable`]:
//! every tag glob into one index, every tag regex into one set, each
//! route's dedup template into one environment.

use std::path::Path;

use regex::bytes::RegexSetBuilder;

use super::config::{DropConfig, RouteConfig, Unmatched};
use super::route_dedup::RecentKeys;
use super::table::{Route, RouteTable, TagMatchers};
use super::tag_index::TagIndex;
use crate::config::error::{located, ConfigError, ConfigErrors};
use crate::salt::Fnmatch;

/// Compiles checked routes into a table; errors found only now (a template
/// or a regex set that does not build) are located in `path`.
pub fn compile(
    path: &Path,
    routes: Vec<RouteConfig>,
    drop: DropConfig,
    unmatched: Option<Unmatched>,
) -> Result<RouteTable, ConfigErrors> {
    let mut errors = Vec::new();
    let mut globs = Vec::new();
    let mut glob_owner = Vec::new();
    let mut regexes = Vec::new();
    let mut regex_owner = Vec::new();
    let mut templates = minijinja::Environment::new();
    templates.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    let mut compiled = Vec::new();
    for (i, r) in routes.into_iter().enumerate() {
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
        compiled.push(Route {
            name: std::sync::Arc::from(r.name.value),
            where_: r.matcher.where_.map(|w| w.value),
            to: r.to.into_iter().map(|s| s.value).collect(),
            continue_: r.continue_,
            dedup,
            complete_trimmed: r.complete_trimmed,
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
    let unmatched = match unmatched {
        Some(Unmatched::Sinks(s)) => s,
        _ => Vec::new(),
    };
    Ok(RouteTable::new(
        compiled,
        TagMatchers {
            globs,
            glob_owner,
            regexes,
            regex_owner,
        },
        drop,
        unmatched,
        templates,
    ))
}
