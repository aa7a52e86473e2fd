//! A route's own `dedup`: drop an event whose key (a Jinja template over the
//! event) was already seen within `ttl`. Bounded: beyond `max_entries` the
//! oldest keys are forgotten first, so memory stays flat whatever the load.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Keys seen recently, oldest first.
#[derive(Debug)]
pub struct RecentKeys {
    ttl: Duration,
    max_entries: usize,
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl RecentKeys {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        RecentKeys {
            ttl,
            max_entries: max_entries.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `key` at `now`; returns true if it was already seen within the TTL.
    pub fn check_and_insert(&mut self, key: &str, now: Instant) -> bool {
        self.expire(now);
        if self.seen.contains_key(key) {
            return true;
        }
        while self.seen.len() >= self.max_entries {
            match self.order.pop_front() {
                Some((_, k)) => {
                    self.seen.remove(&k);
                }
                None => break,
            }
        }
        self.seen.insert(key.to_owned(), now);
        self.order.push_back((now, key.to_owned()));
        false
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < self.ttl {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.seen.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_bound() {
        let t0 = Instant::now();
        let mut r = RecentKeys::new(Duration::from_secs(10), 2);
        assert!(!r.check_and_insert("a", t0));
        assert!(r.check_and_insert("a", t0 + Duration::from_secs(5)));
        assert!(
            !r.check_and_insert("a", t0 + Duration::from_secs(11)),
            "expired"
        );
        assert!(!r.check_and_insert("b", t0 + Duration::from_secs(12)));
        assert!(!r.check_and_insert("c", t0 + Duration::from_secs(12)));
        assert_eq!(r.len(), 2, "bounded");
        assert!(
            !r.check_and_insert("a", t0 + Duration::from_secs(12)),
            "oldest forgotten first"
        );
    }
}
