//! When to try a failed send again: capped exponential backoff with full
//! jitter (AWS's "full jitter": a uniform delay between zero and the
//! exponential step), except that a server's own Retry-After wins.

use std::time::Duration;

use serde::Deserialize;

/// A sink's `retry:` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// First backoff step.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Largest backoff step.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// After this long failing, an event goes to the dead-letter file with
    /// its last error. Keeps `run` on a file source from waiting forever.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            give_up_after: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1).
    /// `retry_after` is what the server asked for, honoured as is (capped at
    /// `give_up_after`); `unit` is a uniform random number in [0, 1).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.give_up_after);
        }
        let step = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        step.mul_f64(unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_jittered_and_retry_after_wins() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 0.999_999).as_millis(), 199);
        assert_eq!(p.delay(3, None, 0.5), Duration::from_millis(400));
        assert_eq!(p.delay(30, None, 0.999_999).as_secs(), 29, "capped at max");
        assert_eq!(
            p.delay(5, None, 0.0),
            Duration::ZERO,
            "full jitter can be zero"
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7)), 0.1),
            Duration::from_secs(7)
        );
    }
}
