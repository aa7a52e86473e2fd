//! The job tracker's settings, read straight from a routes file's `jobs:`
//! (Salt's names and defaults; see `docs/routes.md`).

use std::time::Duration;

use serde::Deserialize;

use crate::salt::Fnmatch;

/// How the tracker behaves; see `jobs:` in `docs/routes.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    /// Off: no job is tracked and no summary is emitted.
    pub enabled: bool,
    /// Salt's `timeout` (default 5 s): how long the CLI waits before polling.
    #[serde(deserialize_with = "positive_duration")]
    pub timeout: Duration,
    /// Salt's `gather_job_timeout` (default 10 s): how long a poll is awaited.
    #[serde(deserialize_with = "positive_duration")]
    pub gather_job_timeout: Duration,
    /// Per-function waits, first match on `fun` wins; otherwise
    /// `timeout + gather_job_timeout`.
    #[serde(rename = "wait", deserialize_with = "fun_waits")]
    pub waits: Vec<(Fnmatch, Duration)>,
    /// Most jobs open at once; beyond it the oldest is summarised, incomplete.
    #[serde(deserialize_with = "nonzero")]
    pub max_jobs: usize,
    /// Most bytes one job may take (estimated, see [`super::limits`]); a
    /// larger announcement is refused, and a minion entry that would pass it
    /// is not recorded.
    #[serde(deserialize_with = "crate::byte_size::deserialize_nonzero_usize")]
    pub max_job_bytes: usize,
    /// Most bytes all open jobs may take together; beyond it the oldest is
    /// summarised early, marked incomplete.
    #[serde(deserialize_with = "crate::byte_size::deserialize_nonzero_usize")]
    pub max_tracked_bytes: usize,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            enabled: true,
            timeout: Duration::from_secs(5),
            gather_job_timeout: Duration::from_secs(10),
            waits: Vec::new(),
            max_jobs: 10_000,
            max_job_bytes: super::limits::DEFAULT_MAX_JOB_BYTES,
            max_tracked_bytes: super::limits::DEFAULT_MAX_TRACKED_BYTES,
        }
    }
}

/// Longest wait honoured, so that `Instant + wait` cannot overflow.
const MAX_WAIT: Duration = Duration::from_secs(30 * 24 * 3600);

impl JobConfig {
    /// How long a job running `fun` is awaited from its start.
    pub fn wait_for(&self, fun: &str) -> Duration {
        self.waits
            .iter()
            .find(|(glob, _)| glob.is_match(fun))
            .map_or(self.timeout + self.gather_job_timeout, |(_, w)| *w)
            .min(MAX_WAIT)
    }

    /// How long a minion that said it still runs the job is awaited after
    /// saying so.
    pub fn running_grace(&self) -> Duration {
        (self.gather_job_timeout + self.timeout.max(self.gather_job_timeout)).min(MAX_WAIT)
    }
}

/// `wait:` as a map from a glob on `fun` to a duration, kept in file order.
struct FunWaits(Vec<(String, Duration)>);

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

/// `wait:`, each glob compiled.
fn fun_waits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(Fnmatch, Duration)>, D::Error> {
    let FunWaits(items) = FunWaits::deserialize(d)?;
    Ok(items
        .into_iter()
        .map(|(glob, wait)| (Fnmatch::new(&glob), wait))
        .collect())
}

/// A count above zero (`max_jobs`).
fn nonzero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(std::num::NonZeroUsize::deserialize(d)?.get())
}
