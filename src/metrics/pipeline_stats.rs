//! Counters of the deciding stages: twins dropped per kind, the job
//! tracker's counters, and what routing made of each event (matches per
//! route, unmatched, noise presets).
//!
//! The twin filter and the route table are plain in-process code with no
//! shared state, so the main loop records each [`Outcome`] here after the
//! fact. Twin kinds are a fixed set, so they are atomics; route names come
//! from the routes file and change on reload, so they sit in a small map
//! (one lock per routed event, held for a few increments). The job tracker
//! keeps its own counters; the main loop copies them here after each step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::backfill::BackfillCounts;
use crate::jobs::JobCounts;
use crate::pipeline::Outcome;
use crate::twins::TwinKind;

/// What routing decided, counted per route.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteCounts {
    /// Events the route matched and sent on.
    pub matched: u64,
    /// Events the route matched but its `dedup` dropped.
    pub deduplicated: u64,
}

/// Counters of the twin filter and the router.
#[derive(Debug, Default)]
pub struct PipelineStats {
    twins: [AtomicU64; TwinKind::ALL.len()],
    unmatched: AtomicU64,
    routes: Mutex<BTreeMap<String, RouteCounts>>,
    /// Dropped by a noise preset (`drop.find_job`, ...), by preset.
    noise: Mutex<BTreeMap<String, u64>>,
    jobs: Mutex<JobCounts>,
    peer_claims_refused: AtomicU64,
    backfill: Mutex<BackfillCounts>,
}

impl PipelineStats {
    /// Counters with every route of `route_names` present at zero, so that
    /// a scrape shows a route before its first match.
    pub fn new<'a>(route_names: impl IntoIterator<Item = &'a str>) -> Self {
        let stats = PipelineStats::default();
        stats.add_routes(route_names);
        stats
    }

    /// Makes routes known (after a reload); counts already kept stay.
    pub fn add_routes<'a>(&self, route_names: impl IntoIterator<Item = &'a str>) {
        let mut routes = lock(&self.routes);
        for name in route_names {
            routes.entry(name.to_owned()).or_default();
        }
    }

    /// Counts one outcome of the pipeline.
    pub fn record(&self, outcome: &Outcome) {
        match outcome {
            Outcome::Twin { kind, .. } => {
                self.twins[*kind as usize].fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Routed { routing, .. } => {
                if routing.unmatched {
                    self.unmatched.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(preset) = routing.dropped_by.as_deref() {
                    // `dedup:<route>` is counted below, per route.
                    if !preset.starts_with("dedup:") {
                        *lock(&self.noise).entry(preset.to_owned()).or_default() += 1;
                    }
                }
                if routing.matches.is_empty() {
                    return;
                }
                let mut routes = lock(&self.routes);
                for m in &routing.matches {
                    // A String per route, not per event.
                    let counts = match routes.get_mut(&m.route) {
                        Some(c) => c,
                        None => routes.entry(m.route.clone()).or_default(),
                    };
                    if m.deduplicated.is_some() {
                        counts.deduplicated += 1;
                    } else {
                        counts.matched += 1;
                    }
                }
            }
        }
    }

    /// Twins dropped, for each kind (all kinds, zeros included).
    pub fn twins(&self) -> Vec<(TwinKind, u64)> {
        TwinKind::ALL
            .iter()
            .map(|k| (*k, self.twins[*k as usize].load(Ordering::Relaxed)))
            .collect()
    }

    /// Events no route matched (they went to `unmatched:` sinks, if any).
    pub fn unmatched(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// Counts per route, by name.
    pub fn routes(&self) -> BTreeMap<String, RouteCounts> {
        lock(&self.routes).clone()
    }

    /// The job tracker's counters as of its last step.
    pub fn set_jobs(&self, counts: JobCounts) {
        *lock(&self.jobs) = counts;
    }

    /// `__peer_id` claims the twin filter refused, as of its last step.
    pub fn set_peer_claims_refused(&self, n: u64) {
        self.peer_claims_refused.store(n, Ordering::Relaxed);
    }

    pub fn peer_claims_refused(&self) -> u64 {
        self.peer_claims_refused.load(Ordering::Relaxed)
    }

    /// The backfill's counters as of the pipeline's last step.
    pub fn set_backfill(&self, counts: BackfillCounts) {
        *lock(&self.backfill) = counts;
    }

    /// The backfill's counters, as last set (zeros without a backfill).
    pub fn backfill(&self) -> BackfillCounts {
        *lock(&self.backfill)
    }

    /// The job tracker's counters, as last set.
    pub fn jobs(&self) -> JobCounts {
        *lock(&self.jobs)
    }

    /// Events dropped by each noise preset.
    pub fn noise(&self) -> BTreeMap<String, u64> {
        lock(&self.noise).clone()
    }
}

/// A poisoned lock only means a panic elsewhere mid-increment: the counts
/// are still counts, so keep using them.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{RouteMatch, Routing};
    use crate::Event;

    fn event(tag: &str) -> Event {
        Event::synthetic(tag, serde_json::json!({}), "test".into())
    }

    fn matched(route: &str, dedup: bool) -> RouteMatch {
        RouteMatch {
            route: route.to_owned(),
            tag: None,
            predicates: Vec::new(),
            deduplicated: dedup.then(|| "key".to_owned()),
        }
    }

    #[test]
    fn counts_twins_by_kind_and_matches_by_route() {
        let stats = PipelineStats::new(["returns", "never"]);
        stats.record(&Outcome::Twin {
            event: event("minion_start"),
            kind: TwinKind::MinionStart,
            twin_of: "salt/minion/m/start".to_owned(),
        });
        let routed =
            |matches: Vec<RouteMatch>, unmatched: bool, dropped_by: Option<&str>| Outcome::Routed {
                event: event("salt/job/1/ret/m"),
                routing: Routing {
                    matches,
                    unmatched,
                    dropped_by: dropped_by.map(str::to_owned),
                    ..Routing::default()
                },
            };
        stats.record(&routed(vec![matched("returns", false)], false, None));
        stats.record(&routed(
            vec![matched("returns", false), matched("failed", false)],
            false,
            None,
        ));
        stats.record(&routed(
            vec![matched("returns", true)],
            false,
            Some("dedup:returns"),
        ));
        stats.record(&routed(Vec::new(), true, None));
        stats.record(&routed(Vec::new(), false, Some("drop.find_job")));

        let twins: BTreeMap<&str, u64> = stats
            .twins()
            .into_iter()
            .map(|(k, n)| (k.name(), n))
            .collect();
        assert_eq!(twins["minion_start"], 1);
        assert_eq!(twins.values().sum::<u64>(), 1);
        let routes = stats.routes();
        assert_eq!(
            routes["returns"],
            RouteCounts {
                matched: 2,
                deduplicated: 1
            }
        );
        assert_eq!(
            routes["failed"],
            RouteCounts {
                matched: 1,
                deduplicated: 0
            }
        );
        assert_eq!(
            routes["never"],
            RouteCounts::default(),
            "known before any match"
        );
        assert_eq!(stats.unmatched(), 1);
        assert_eq!(
            stats.noise(),
            BTreeMap::from([("drop.find_job".to_owned(), 1)])
        );
    }
}
