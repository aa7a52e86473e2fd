//! The in-process chain of the deciding stages: twins -> routes.
//!
//! `explain` and `test` drive it event by event; it holds no I/O. A hot
//! reload swaps the route table between two events, never during one.

use std::collections::HashSet;
use std::time::Instant;

use crate::dedup::{TwinConfig, TwinFilter, TwinKind, TwinVerdict};
use crate::event::Event;
use crate::route::config::TwinsConfig;
use crate::route::{RouteTable, Routing};

/// What became of one event.
#[derive(Debug)]
pub enum Outcome {
    /// Dropped as a Salt twin of the event tagged `twin_of`.
    Twin {
        event: Event,
        kind: TwinKind,
        twin_of: String,
    },
    /// Passed the twin filter and was routed.
    Routed { event: Event, routing: Routing },
}

/// Twin filter, then route table.
pub struct Pipeline {
    twins: TwinFilter,
    table: RouteTable,
    explain: bool,
}

/// The twin filter's settings from a routes file's `twins:`.
pub fn twin_config(c: &TwinsConfig) -> TwinConfig {
    let switches = [
        (TwinKind::BareJidNew, c.bare_jid_new),
        (TwinKind::NewJob, c.new_job),
        (TwinKind::BareJidRet, c.bare_jid_ret),
        (TwinKind::StateFailure, c.state_failure),
        (TwinKind::MinionStart, c.minion_start),
    ];
    TwinConfig {
        enabled: switches
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect::<HashSet<_>>(),
        window: c.window,
        max_entries: c.max_entries,
        ..TwinConfig::default()
    }
}

impl Pipeline {
    /// `explain` makes routing record which pattern and predicates matched.
    pub fn new(table: RouteTable, explain: bool) -> Self {
        Pipeline {
            twins: TwinFilter::new(twin_config(table.twins())),
            table,
            explain,
        }
    }

    /// Takes one event in bus order.
    pub fn push(&mut self, ev: Event, now: Instant) -> Vec<Outcome> {
        let verdicts = self.twins.push(ev, now);
        self.route_all(verdicts, now)
    }

    /// Releases legacy events whose twin did not come in time.
    pub fn tick(&mut self, now: Instant) -> Vec<Outcome> {
        let verdicts = self.twins.tick(now);
        self.route_all(verdicts, now)
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.twins.next_deadline()
    }

    /// End of input: releases everything held.
    pub fn flush(&mut self, now: Instant) -> Vec<Outcome> {
        let verdicts = self.twins.flush();
        self.route_all(verdicts, now)
    }

    /// Swaps in a reloaded route table; the twin filter keeps its state.
    pub fn replace_table(&mut self, table: RouteTable) {
        self.table = table;
    }

    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    pub fn twin_filter(&self) -> &TwinFilter {
        &self.twins
    }

    fn route_all(&mut self, verdicts: Vec<TwinVerdict>, now: Instant) -> Vec<Outcome> {
        verdicts
            .into_iter()
            .map(|v| match v {
                TwinVerdict::Pass(event) => {
                    let routing = self.table.route(&event, now, self.explain);
                    Outcome::Routed { event, routing }
                }
                TwinVerdict::Dropped {
                    event,
                    kind,
                    twin_of,
                } => Outcome::Twin {
                    event,
                    kind,
                    twin_of,
                },
            })
            .collect()
    }
}
