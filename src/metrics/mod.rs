//! Observability: what the daemon counts, served over HTTP for Prometheus
//! and for `saltbridge status`.
//!
//! The stages keep plain atomics ([`SourceStats`], [`SinkStats`],
//! [`PipelineStats`]); nothing here sits on the event path. At scrape time
//! the [`collector`] reads them and writes the Prometheus text format, and
//! [`server`] serves it on `/metrics` beside `/healthz` (the main loop is
//! alive) and `/readyz` (the source is connected to the bus). [`scrape`]
//! reads that text back and [`summary`] groups it for `saltbridge status`.

pub mod collector;
pub mod heartbeat;
pub mod pipeline_stats;
pub mod scrape;
pub mod server;
pub mod summary;

use std::sync::Arc;
use std::time::SystemTime;

use crate::sink_stats::SinkStats;
use crate::source::SourceStats;
pub use heartbeat::Heartbeat;
pub use pipeline_stats::PipelineStats;
pub use server::{Listen, DEFAULT_LISTEN};

/// The most of a `/metrics` answer `saltbridge status` reads, in bytes
/// (64 MiB; 10,000 routes give about 3 MB). A peer that sends more is not
/// a saltbridge, and costs no more memory than this.
pub const MAX_METRICS_BYTES: usize = 64 * 1024 * 1024;

/// Everything a scrape reports: the running daemon's counters.
#[derive(Debug)]
pub struct Observed {
    /// The source's spec as text, and its counters.
    pub source: (String, Arc<SourceStats>),
    /// Each sink's name and counters, in name order.
    pub sinks: Vec<(String, Arc<SinkStats>)>,
    pub pipeline: Arc<PipelineStats>,
    pub heartbeat: Arc<Heartbeat>,
    /// When the process started, for `saltbridge_process_start_time_seconds`.
    pub started: SystemTime,
}

impl Observed {
    pub fn new(
        source: (String, Arc<SourceStats>),
        mut sinks: Vec<(String, Arc<SinkStats>)>,
        pipeline: Arc<PipelineStats>,
        heartbeat: Arc<Heartbeat>,
    ) -> Self {
        sinks.sort_by(|a, b| a.0.cmp(&b.0));
        Observed {
            source,
            sinks,
            pipeline,
            heartbeat,
            started: SystemTime::now(),
        }
    }
}
