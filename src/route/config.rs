//! The `routes.yaml` schema, as serde types.
//!
//! Parsed with serde-saphyr: serde_yaml is deprecated upstream, and
//! serde-saphyr is maintained, pure Rust, handles anchors and merge keys
//! (`<<: *defaults`, which Salt users know from pillar files), and reports
//! line and column for every error. Values that are checked after parsing
//! (sink names, globs, regexes, templates) are kept `Spanned` so that those
//! errors point at the line too. Every struct denies unknown fields.
//!
//! The user-facing reference for these fields is `docs/routes.md`; a test
//! checks that every field named here is documented there.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::predicate::Predicate;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    /// Where events come from: a SPEC as for `--source` (default: the master's socket).
    #[serde(default)]
    pub source: Option<Spanned<String>>,
    /// Salt's duplicate twins to drop; all kinds are on by default.
    #[serde(default)]
    pub twins: TwinsConfig,
    /// Presets that drop Salt's internal noise before routing.
    #[serde(default)]
    pub drop: DropConfig,
    /// The job tracker: one summary event per job.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// Named sinks. Their own fields are checked by the sinks; here, names.
    #[serde(default)]
    pub sinks: BTreeMap<String, Spanned<serde_json::Value>>,
    /// Routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// What happens to an event that no route matched: `drop` (default) or a list of sinks.
    #[serde(default)]
    pub unmatched: Option<Spanned<Unmatched>>,
}

/// `unmatched: drop` or `unmatched: [sink, ...]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Unmatched {
    Keyword(String),
    Sinks(Vec<String>),
}

/// One switch per kind of Salt twin (see `twins`), and the wait for a late twin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwinsConfig {
    /// Bare-jid job announcement, twin of `salt/job/<jid>/new` (up to 3007).
    pub bare_jid_new: bool,
    /// `new_job`, twin of `salt/job/<jid>/new` (0.17 .. 2014.7).
    pub new_job: bool,
    /// Bare-jid return, twin of `salt/job/<jid>/ret/<id>` (0.17 .. 2014.7).
    pub bare_jid_ret: bool,
    /// `<module>.<function>` state failure, twin of `salt/job/<jid>/sub/<id>/error/<fun>`.
    pub state_failure: bool,
    /// `minion_start`, twin of `salt/minion/<id>/start`.
    pub minion_start: bool,
    /// How long a legacy event waits for its twin before it goes on alone.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Bound on remembered twins; the oldest held event is released beyond it.
    pub max_entries: usize,
}

impl Default for TwinsConfig {
    fn default() -> Self {
        TwinsConfig {
            bare_jid_new: true,
            new_job: true,
            bare_jid_ret: true,
            state_failure: true,
            minion_start: true,
            window: Duration::from_secs(2),
            max_entries: 100_000,
        }
    }
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

/// The job tracker's settings (see `jobs`). Salt's names and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Track jobs and emit `saltbridge/job/<jid>/summary` (default on).
    pub enabled: bool,
    /// The master's `timeout`: how long the CLI waits before polling.
    #[serde(deserialize_with = "positive_duration")]
    pub timeout: Duration,
    /// The master's `gather_job_timeout`: how long a `find_job` poll is awaited.
    #[serde(deserialize_with = "positive_duration")]
    pub gather_job_timeout: Duration,
    /// Per-function waits, `glob on fun: duration`, first match in file order.
    pub wait: FunWaits,
    /// Most jobs open at once.
    pub max_jobs: std::num::NonZeroUsize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            enabled: true,
            timeout: Duration::from_secs(5),
            gather_job_timeout: Duration::from_secs(10),
            wait: FunWaits::default(),
            max_jobs: std::num::NonZeroUsize::new(10_000).unwrap_or(std::num::NonZeroUsize::MIN),
        }
    }
}

/// `wait:` as a map from a glob on `fun` to a duration, kept in file order.
#[derive(Debug, Clone, Default)]
pub struct FunWaits(pub Vec<(String, Duration)>);

impl<'de> Deserialize<'de> for FunWaits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FunWaits;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a map from a glob on the function to a duration, e.g. `\"state.*\": 10m`",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FunWaits, A::Error> {
                let mut items = Vec::new();
                while let Some((glob, wait)) =
                    map.next_entry::<String, humantime_serde::Serde<Duration>>()?
                {
                    let wait = wait.into_inner();
                    if glob.trim().is_empty() || glob.trim() != glob {
                        return Err(serde::de::Error::custom(format!(
                            "function glob {glob:?} is empty or has leading or trailing spaces"
                        )));
                    }
                    if wait.is_zero() {
                        return Err(serde::de::Error::custom(format!(
                            "wait for {glob:?} must be longer than 0s"
                        )));
                    }
                    items.push((glob, wait));
                }
                Ok(FunWaits(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A humantime duration longer than zero.
fn positive_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = humantime_serde::deserialize(d)?;
    if Duration::is_zero(&v) {
        return Err(serde::de::Error::custom("must be longer than 0s"));
    }
    Ok(v)
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
