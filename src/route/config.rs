//! The route table's part of the `routes.yaml` schema, as serde types:
//! `routes`, `drop` and `unmatched` (the whole file is `config::file`).
//! Spanned values let the checks in `config::check` point at their line.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::predicate::Predicate;

/// `unmatched: drop` or `unmatched: [sink, ...]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Unmatched {
    Keyword(String),
    Sinks(Vec<String>),
}

/// One-line presets that drop Salt's internal noise before any route sees it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    /// `saltutil.find_job` jobs: their `new`, `publish` and `ret` events (default on).
    pub find_job: bool,
    /// `salt/auth` events, one per minion authentication (default off).
    pub auth: bool,
    /// `minion/refresh/<id>` events (default off).
    pub minion_refresh: bool,
}

impl Default for DropConfig {
    fn default() -> Self {
        DropConfig {
            find_job: true,
            auth: false,
            minion_refresh: false,
        }
    }
}

/// One route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: Spanned<String>,
    #[serde(rename = "match", default)]
    pub matcher: MatchConfig,
    /// Sink names the event goes to.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Whether later routes also see a matched event (default: stop here).
    #[serde(rename = "continue", default)]
    pub continue_: bool,
    /// Drop repeats of the same key within a time.
    #[serde(default)]
    pub dedup: Option<DedupConfig>,
    /// A job return whose event Salt trimmed (`VALUE_TRIMMED`) is completed
    /// from the master's job cache before this route sends it.
    #[serde(default)]
    pub complete_trimmed: bool,
}

/// What a route matches. With no field, every event.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// One glob or a list, matched as Salt's reactor does (Python `fnmatch`).
    #[serde(default)]
    pub tag: Option<Spanned<OneOrMany>>,
    /// One regular expression or a list (Rust `regex` syntax, unanchored).
    #[serde(default)]
    pub tag_regex: Option<Spanned<OneOrMany>>,
    /// Predicates over the data; a list means all of them.
    #[serde(rename = "where", default)]
    pub where_: Option<Spanned<Predicate>>,
}

/// A string or a list of strings.
#[derive(Debug, Clone)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings (quote values YAML reads as other types, e.g. 'y' or '123')")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    items.push(s);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl OneOrMany {
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A per-route dedup: events with a key seen within `ttl` are dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// A Jinja template over the event, e.g. `{{ data.jid }}:{{ data.id }}`.
    pub key: Spanned<String>,
    #[serde(with = "humantime_serde", default = "default_dedup_ttl")]
    pub ttl: Duration,
    #[serde(default = "default_dedup_entries")]
    pub max_entries: usize,
}

fn default_dedup_ttl() -> Duration {
    Duration::from_secs(600)
}

fn default_dedup_entries() -> usize {
    100_000
}
