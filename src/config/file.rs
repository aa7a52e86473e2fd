//! The whole `routes.yaml`, as serde types: each stage reads its own part
//! with its own type (`twins::TwinConfig`, `jobs::JobConfig`, the route
//! table's `route::config`); sinks are checked by the sinks.
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

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::backfill::BackfillConfig;
use crate::jobs::JobConfig;
use crate::journal::JournalSettings;
use crate::route::config::{DropConfig, RouteConfig, Unmatched};
use crate::source::saltapi::SaltApiSettings;
use crate::twins::{MastersConfig, TwinConfig};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesFile {
    /// Where events come from: a SPEC as for `--source` (default: the
    /// master's socket), or a map with the SPEC and a remote source's settings.
    #[serde(default)]
    pub source: Option<Spanned<SourceSetting>>,
    /// Salt's duplicate twins to drop; all kinds are on by default.
    #[serde(default)]
    pub twins: TwinConfig,
    /// The master beside the bridge and its cluster peers.
    #[serde(default)]
    pub masters: Option<Spanned<MastersConfig>>,
    /// Presets that drop Salt's internal noise before routing.
    #[serde(default)]
    pub drop: DropConfig,
    /// The job tracker: one summary event per job.
    #[serde(default)]
    pub jobs: JobConfig,
    /// Backfill from the master's job cache after a gap.
    #[serde(default)]
    pub backfill: BackfillConfig,
    /// The bus journal on disk: its bound, history, policy and fsync.
    #[serde(default)]
    pub journal: JournalSettings,
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

/// `source:` as a SPEC (`source: ipc:/etc/salt/master`) or as a map
/// (`source: {spec: saltapi:https://salt:8000, saltapi: {...}}`).
#[derive(Debug)]
pub enum SourceSetting {
    Spec(String),
    Map(SourceMap),
}

/// `source:` as a map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceMap {
    /// The SPEC; `--source` on the command line wins.
    #[serde(default)]
    pub spec: Option<String>,
    /// Settings of a `saltapi:` source.
    #[serde(default)]
    pub saltapi: Option<SaltApiSettings>,
}

impl SourceSetting {
    /// The SPEC, if one is given.
    pub fn spec(&self) -> Option<&str> {
        match self {
            SourceSetting::Spec(s) => Some(s),
            SourceSetting::Map(m) => m.spec.as_deref(),
        }
    }

    /// The `saltapi:` settings, if any.
    pub fn saltapi(&self) -> Option<&SaltApiSettings> {
        match self {
            SourceSetting::Spec(_) => None,
            SourceSetting::Map(m) => m.saltapi.as_ref(),
        }
    }
}

// A string or a map, each with its own errors (an untagged enum would
// replace "unknown field `tokn`, expected one of ..." by "no variant matched").
impl<'de> Deserialize<'de> for SourceSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SourceSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a SPEC such as ipc:/etc/salt/master, or a map {spec, saltapi}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SourceSetting, E> {
                Ok(SourceSetting::Spec(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SourceSetting, A::Error> {
                SourceMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SourceSetting::Map)
            }
        }
        d.deserialize_any(V)
    }
}
