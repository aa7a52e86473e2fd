//! A sink's `spool:` settings: where the disk bound lies, what happens when
//! it is reached, and how often the spool is forced to disk.

use std::time::Duration;

use serde::Deserialize;

pub use crate::fsync::Fsync;
pub use crate::when_full::WhenFull;

use crate::byte_size::deserialize as de_bytes;

/// A sink's `spool:` settings (all optional).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolSettings {
    /// Disk the sink's spool may use, in bytes (`1GiB`, `500MB` or a number).
    #[serde(deserialize_with = "de_bytes")]
    pub max_bytes: u64,
    /// Size at which a segment file is closed and a new one started.
    #[serde(deserialize_with = "de_bytes")]
    pub segment_bytes: u64,
    /// What to drop when `max_bytes` is reached.
    pub when_full: WhenFull,
    /// When written events are forced to disk: `always`, `never`, or a
    /// duration (`1s`): at most that much is lost on a power cut.
    pub fsync: Fsync,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            max_bytes: 1 << 30,
            segment_bytes: 32 << 20,
            when_full: WhenFull::DropNewest,
            fsync: Fsync::Every(Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_with_located_errors() {
        let s: SpoolSettings = serde_json::from_value(serde_json::json!({
            "max_bytes": "2GiB", "when_full": "drop_oldest", "fsync": "always"
        }))
        .unwrap();
        assert_eq!(s.max_bytes, 2 << 30);
        assert_eq!(s.when_full, WhenFull::DropOldest);
        assert_eq!(s.fsync, Fsync::Always);
        let s: SpoolSettings =
            serde_json::from_value(serde_json::json!({"fsync": "250ms"})).unwrap();
        assert_eq!(s.fsync, Fsync::Every(Duration::from_millis(250)));
        let e = serde_json::from_value::<SpoolSettings>(serde_json::json!({"fsync": "sometimes"}))
            .unwrap_err();
        assert!(e.to_string().contains("always, never or a duration"), "{e}");
        let e = serde_json::from_value::<SpoolSettings>(serde_json::json!({"when_full": "block"}))
            .unwrap_err();
        assert!(e.to_string().contains("drop_newest"), "{e}");
    }
}
