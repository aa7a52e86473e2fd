//! What travels from the router to a sink: an event, the route that sent
//! it, and its idempotency key. Shared by the spool, delivery and every
//! sink; it imports none of them.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use crate::event::Event;

/// One event on its way to a sink, with what the templates may use.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Shared by every sink the event goes to: cloning an `Outgoing` does
    /// not copy the event's data.
    pub event: Arc<Event>,
    /// The route that sent it here: the route table's own name, shared.
    pub route: Arc<str>,
    /// `Event::idempotency_key`, computed when a sink first asks for it
    /// (it hashes the whole data, twice scanned for `__peer_id` and trace
    /// members): a sink that does not send it (the blackhole) never pays.
    key: OnceLock<String>,
}

impl Outgoing {
    pub fn new(event: impl Into<Arc<Event>>, route: impl Into<Arc<str>>) -> Self {
        Outgoing {
            event: event.into(),
            route: route.into(),
            key: OnceLock::new(),
        }
    }

    /// The event's idempotency key (`Event::idempotency_key`), computed once.
    pub fn key(&self) -> &str {
        self.key.get_or_init(|| self.event.idempotency_key())
    }

    /// The context every template sees: `tag`, `data`, `route`, `key`,
    /// `received_at` (RFC 3339), `source`, `master` (the id of the master
    /// that published the event), `syndic` (the syndic that relayed it, or
    /// none) and `backfilled` (read from the job cache, not the bus).
    pub fn template_context(&self) -> minijinja::Value {
        let received: SystemTime = self.event.received_at();
        let p = self.event.provenance();
        minijinja::context! {
            master => p.master.as_deref(),
            syndic => p.syndic.as_deref(),
            backfilled => p.backfilled,
            tag => self.event.tag(),
            data => minijinja::Value::from(minijinja::value::Serde(self.event.data())),
            route => &*self.route,
            key => self.key(),
            received_at => humantime::format_rfc3339_micros(received).to_string(),
            source => self.event.source(),
        }
    }

    /// The master to name in a `saltbridge-master` / `x-saltbridge-master`
    /// header: the one that published the event, else the source read.
    pub fn master(&self) -> &str {
        self.event.master().unwrap_or_else(|| self.event.source())
    }
}
