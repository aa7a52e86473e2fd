//! `fsync:` as the journal and the spools both take it: `always`, `never`
//! or a duration. Shared vocabulary: imports none of its users.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// When a file on disk is forced to it with fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every write burst, before the writer goes on: nothing written
    /// is lost on a power cut, and the writer is slower.
    Always,
    /// Leave it to the kernel (usually within 30 s).
    Never,
    /// In the background, this often.
    Every(Duration),
}

impl<'de> Deserialize<'de> for Fsync {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            other => humantime::parse_duration(other)
                .ok()
                .filter(|d| !d.is_zero())
                .map(Fsync::Every)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "fsync: expected always, never or a duration such as 1s, got `{other}`"
                    ))
                }),
        }
    }
}
