//! The HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the main
//! loop is alive) and `/readyz` (the source is connected to the bus).
//!
//! The server runs on a task of its own, so a scrape never waits on the
//! event path and a stuck main loop still gets a truthful 503 from
//! `/healthz`. It listens on loopback by default: the counters name routes
//! and sinks, which need not leave the host.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::collector::{render, CONTENT_TYPE};
use super::heartbeat::STALE_AFTER;
use super::Observed;

/// Where the endpoints listen unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9725";

/// `--listen`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse().map(Listen::At).map_err(|_| {
            format!("{s:?} is not an address to listen on: give IP:PORT (e.g. {DEFAULT_LISTEN}) or `off`")
        })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::At(a) => a.fmt(f),
        }
    }
}

/// The router of the three endpoints.
pub fn router(observed: Arc<Observed>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(observed)
}

/// Serves the endpoints on `listener` until the task is dropped.
pub fn spawn(listener: TcpListener, observed: Arc<Observed>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(observed)).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    })
}

async fn metrics(State(observed): State<Arc<Observed>>) -> Response {
    match render(&observed) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not write the metrics text\n",
        )
            .into_response(),
    }
}

async fn healthz(State(observed): State<Arc<Observed>>) -> (StatusCode, String) {
    let age = observed.heartbeat.age();
    if age > STALE_AFTER {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: the main loop has not run for {:.1} s (limit {} s)\n",
                age.as_secs_f64(),
                STALE_AFTER.as_secs()
            ),
        )
    } else {
        (StatusCode::OK, "ok\n".to_owned())
    }
}

async fn readyz(State(observed): State<Arc<Observed>>) -> (StatusCode, String) {
    let (name, stats) = &observed.source;
    if stats.is_connected() {
        (StatusCode::OK, format!("ready: {name} is connected\n"))
    } else {
        let connects = crate::source::SourceStats::get(&stats.connects);
        let why = if connects == 0 {
            "has not connected to the bus yet (is the master running?)"
        } else {
            "lost its connection to the bus and is reconnecting"
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: source {name} {why}\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_an_address_or_off() {
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!(
            DEFAULT_LISTEN.parse::<Listen>().map(|l| l.to_string()),
            Ok(DEFAULT_LISTEN.to_owned())
        );
        let err = "localhost".parse::<Listen>().unwrap_err();
        assert!(err.contains("IP:PORT"), "{err}");
    }
}
