//! Sizes in bytes as routes files write them (`1GiB`, `500MB`, `64k` or a
//! plain number), shared by every byte limit in the file (`spool.max_bytes`,
//! `jobs.max_job_bytes`, ...) so that all are written alike.

use serde::{Deserialize, Deserializer};

/// A size in bytes: a number or a string such as `1GiB` (a string must be
/// at least one byte).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
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

/// [`deserialize`] for a budget held in memory: above zero, a `usize`.
pub fn deserialize_nonzero_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match deserialize(d)? {
        0 => Err(serde::de::Error::custom("must be at least 1 byte")),
        n => usize::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("{n} bytes is too large"))),
    }
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
}
