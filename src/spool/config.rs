//! A sink's `spool:` settings: where the disk bound lies, what happens when
//! it is reached, and how often the spool is forced to disk.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

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

/// The policy at the disk bound. Neither waits: the bus reader never does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse new events for this sink until it catches up (the oldest,
    /// undelivered events are kept).
    DropNewest,
    /// Delete the oldest segment to make room (the newest events are kept).
    DropOldest,
}

/// When the spool calls fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every burst of writes, before the router goes on: nothing
    /// accepted is lost on a power cut, and the router is slower.
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

fn de_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(n),
        Raw::S(s) => parse_bytes(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a size such as 1GiB, 500MB or 1048576, got `{s}`"
            ))
        }),
    }
}

/// `1GiB`, `512 MiB`, `500MB`, `64k`, `1048576`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    let v = n * mult as f64;
    (v.is_finite() && v >= 1.0).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("500MB"), Some(500_000_000));
        assert_eq!(parse_bytes("64 kib"), Some(65_536));
        assert_eq!(parse_bytes("1048576"), Some(1_048_576));
        assert_eq!(parse_bytes("1.5k"), Some(1_500));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("0"), None);
    }

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
