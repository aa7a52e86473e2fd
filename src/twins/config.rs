//! The twin filter's settings, read straight from a routes file's
//! `twins:`: one switch per [`TwinKind`] (named as [`TwinKind::name`]),
//! `window` and `max_entries`. `syndic` also says which copy goes on:
//! `keep_original` (what `true` means) or `keep_syndic`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::syndic::SyndicKeep;
use super::TwinKind;

/// How the twin filter behaves.
#[derive(Debug, Clone)]
pub struct TwinConfig {
    /// Kinds that are filtered; events of the others pass untouched. Default: all.
    pub enabled: HashSet<TwinKind>,
    /// How long a legacy event waits for its twin, and how long a namespaced
    /// event's key is remembered. Default 2 s (twins come milliseconds apart).
    pub window: Duration,
    /// Most held plus remembered entries; beyond it the oldest goes (a held
    /// event is released). Default 100,000.
    pub max_entries: usize,
    /// Most bytes (tag, JSON data and raw body) of held events; beyond it the
    /// oldest held event is released. Default 64 MiB.
    pub max_held_bytes: usize,
    /// Which copy of an event a syndic relayed goes on. Default: the original.
    pub syndic: SyndicKeep,
}

impl Default for TwinConfig {
    fn default() -> Self {
        TwinConfig {
            enabled: TwinKind::ALL.into_iter().collect(),
            window: Duration::from_secs(2),
            max_entries: 100_000,
            max_held_bytes: 64 << 20,
            syndic: SyndicKeep::default(),
        }
    }
}

/// The keys of `twins:`: one per kind, then the two settings.
const FIELDS: [&str; TwinKind::ALL.len() + 2] = {
    let mut f = [""; TwinKind::ALL.len() + 2];
    let mut i = 0;
    while i < TwinKind::ALL.len() {
        f[i] = TwinKind::ALL[i].name();
        i += 1;
    }
    f[i] = "window";
    f[i + 1] = "max_entries";
    f
};

/// One key of `twins:`, refused as it is read when unknown (as serde's
/// derive does, so the error names the key's own line and path).
enum Field {
    Kind(TwinKind),
    Window,
    MaxEntries,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("field identifier")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                match v {
                    "window" => Ok(Field::Window),
                    "max_entries" => Ok(Field::MaxEntries),
                    _ => TwinKind::from_name(v)
                        .map(Field::Kind)
                        .ok_or_else(|| E::unknown_field(v, &FIELDS)),
                }
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for TwinConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TwinConfig, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TwinConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("struct TwinConfig")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TwinConfig, A::Error> {
                let mut c = TwinConfig::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Kind(TwinKind::Syndic) => {
                            match map.next_value::<SyndicSetting>()?.0 {
                                Some(keep) => {
                                    c.enabled.insert(TwinKind::Syndic);
                                    c.syndic = keep;
                                }
                                None => {
                                    c.enabled.remove(&TwinKind::Syndic);
                                }
                            }
                        }
                        Field::Kind(kind) => {
                            if map.next_value::<bool>()? {
                                c.enabled.insert(kind);
                            } else {
                                c.enabled.remove(&kind);
                            }
                        }
                        Field::Window => {
                            let w: humantime_serde::Serde<Duration> = map.next_value()?;
                            c.window = w.into_inner();
                        }
                        Field::MaxEntries => c.max_entries = map.next_value()?,
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_struct("TwinConfig", &FIELDS, V)
    }
}

/// `syndic:`: `true`/`keep_original`, `keep_syndic`, or `false` (`None`).
struct SyndicSetting(Option<SyndicKeep>);

impl<'de> Deserialize<'de> for SyndicSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SyndicSetting, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SyndicSetting;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("keep_original, keep_syndic, true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SyndicSetting, E> {
                Ok(SyndicSetting(v.then_some(SyndicKeep::Original)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SyndicSetting, E> {
                match v {
                    "keep_original" => Ok(SyndicSetting(Some(SyndicKeep::Original))),
                    "keep_syndic" => Ok(SyndicSetting(Some(SyndicKeep::Syndic))),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}
