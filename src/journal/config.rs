//! The routes file's `journal:` section: the journal's disk bound, how long
//! delivered history is kept, what happens at the bound, and fsync.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use crate::fsync::Fsync;
pub use crate::when_full::WhenFull;

use crate::byte_size::deserialize as de_bytes;

/// The smallest `max_bytes` accepted: a few of the reader's 256 KiB reads.
pub const MIN_MAX_BYTES: u64 = 1 << 20;

/// `journal:` (all optional).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JournalSettings {
    /// Disk the journal may use, history and backlog together.
    #[serde(deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// How long history (what every sink's spool already holds) is kept
    /// for `saltbridge replay`, within `max_bytes`.
    #[serde(deserialize_with = "de_duration")]
    pub max_age: Duration,
    /// What is given up when the bound is reached and no history is left.
    pub when_full: WhenFull,
    /// When appended bytes are forced to disk.
    pub fsync: Fsync,
}

impl Default for JournalSettings {
    fn default() -> Self {
        JournalSettings {
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(24 * 3600),
            when_full: WhenFull::DropNewest,
            fsync: Fsync::Every(Duration::from_secs(1)),
        }
    }
}

impl JournalSettings {
    /// A segment file is at most a sixteenth of the bound (at most 64 MiB),
    /// so deleting the oldest one frees a known share of it.
    pub fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 16).clamp(4096, 64 << 20)
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "expected a duration such as 24h or 7d, got `{s}`: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        let s: JournalSettings = serde_json::from_value(serde_json::json!({
            "max_bytes": "2GiB", "max_age": "7d", "when_full": "drop_oldest", "fsync": "always"
        }))
        .unwrap();
        assert_eq!(s.max_bytes, 2 << 30);
        assert_eq!(s.max_age, Duration::from_secs(7 * 86400));
        assert_eq!(s.when_full, WhenFull::DropOldest);
        assert_eq!(s.fsync, Fsync::Always);
        assert_eq!(s.segment_bytes(), 64 << 20);
        let e = serde_json::from_value::<JournalSettings>(serde_json::json!({"max_age": "soon"}))
            .unwrap_err();
        assert!(e.to_string().contains("duration"), "{e}");
    }
}
