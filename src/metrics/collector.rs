//! Turns the daemon's counters into the Prometheus text format at scrape
//! time.
//!
//! A custom prometheus-client [`Collector`] reads the atomics the stages
//! already keep, so no stage knows about Prometheus and a scrape costs the
//! event path nothing. Counter names are given without `_total`: the
//! encoder appends it. Every metric is listed, with its labels, in
//! docs/metrics.md.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::Observed;
use crate::journal::JournalStats;
use crate::sink_stats::SinkStats;
use crate::source::SourceStats;

/// The `Content-Type` of what [`render`] writes.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The whole exposition for one scrape.
pub fn render(observed: &Arc<Observed>) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Arc::clone(observed)));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

impl Collector for Observed {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_process(&mut enc)?;
        self.encode_source(&mut enc)?;
        self.encode_journal(&mut enc)?;
        self.encode_pipeline(&mut enc)?;
        self.encode_jobs(&mut enc)?;
        self.encode_sinks(&mut enc)
    }
}

/// A metric with one label, one sample per `(label value, value)`.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (String, M)>,
) -> Result<(), fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    let Some((_, first)) = samples.peek() else {
        return Ok(());
    };
    let mut metric = enc.encode_descriptor(name, help, None, first.metric_type())?;
    for (value, m) in samples {
        let labels = [(label, value.as_str())];
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A metric without labels.
fn single<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    m: M,
) -> Result<(), fmt::Error> {
    m.encode(enc.encode_descriptor(name, help, None, m.metric_type())?)
}

fn count(c: u64) -> ConstCounter<u64> {
    ConstCounter::new(c)
}

impl Observed {
    fn encode_process(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        family(
            enc,
            "saltbridge_build_info",
            "The running saltbridge's version (always 1).",
            "version",
            [(env!("CARGO_PKG_VERSION").to_owned(), ConstGauge::new(1i64))],
        )?;
        single(
            enc,
            "saltbridge_up",
            "1 while saltbridge serves metrics.",
            ConstGauge::new(1i64),
        )?;
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        single(
            enc,
            "saltbridge_process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            ConstGauge::new(started),
        )?;
        single(
            enc,
            "saltbridge_main_loop_heartbeat_age_seconds",
            "Seconds since the main loop last showed it is alive (/healthz fails above 10).",
            ConstGauge::new(self.heartbeat.age().as_secs_f64()),
        )
    }

    fn encode_journal(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let (name, stats) = &self.source;
        let j = &stats.journal;
        let g = JournalStats::get;
        let counters: [(&str, &str, &AtomicU64); 4] = [
            (
                "saltbridge_journal_appended_bytes",
                "Bytes the bus reader appended to the journal, record headers included.",
                &j.appended_bytes,
            ),
            (
                "saltbridge_journal_dropped_bytes",
                "Bus bytes given up at the journal's bound (when_full), refused or deleted unread.",
                &j.dropped_bytes,
            ),
            (
                "saltbridge_journal_dropped_reads",
                "Reads the journal refused at its bound (when_full: drop_newest).",
                &j.dropped_reads,
            ),
            (
                "saltbridge_journal_corrupt_records",
                "Journal records that did not check out when read back (the rest of their segment is skipped).",
                &j.corrupt_records,
            ),
        ];
        for (metric, help, c) in counters {
            family(enc, metric, help, "source", [(name.clone(), count(g(c)))])?;
        }
        let gauges: [(&str, &str, &AtomicU64); 2] = [
            (
                "saltbridge_journal_disk_bytes",
                "Bytes the journal holds on disk, history included.",
                &j.disk_bytes,
            ),
            (
                "saltbridge_journal_backlog_bytes",
                "Journal bytes read from the bus and not yet in the sinks' spools.",
                &j.backlog_bytes,
            ),
        ];
        for (metric, help, c) in gauges {
            let v = ConstGauge::new(g(c) as i64);
            family(enc, metric, help, "source", [(name.clone(), v)])?;
        }
        Ok(())
    }

    fn encode_source(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let (name, stats) = &self.source;
        let per_source = |c: &AtomicU64| [(name.clone(), count(SourceStats::get(c)))];
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "saltbridge_source_events",
                "Events read and decoded.",
                &stats.events,
            ),
            (
                "saltbridge_source_bytes",
                "Bytes read from the bus or file.",
                &stats.bytes,
            ),
            (
                "saltbridge_source_decode_errors",
                "Frames or lines that could not be decoded (skipped).",
                &stats.malformed,
            ),
            (
                "saltbridge_source_decode_error_bytes",
                "Bytes skipped as undecodable.",
                &stats.malformed_bytes,
            ),
            (
                "saltbridge_source_dropped",
                "Events dropped because the next stage was full (a live source never waits).",
                &stats.dropped,
            ),
            (
                "saltbridge_source_connects",
                "Successful connections to the bus.",
                &stats.connects,
            ),
            (
                "saltbridge_source_gaps",
                "Reconnections after a lost connection: events published meanwhile are lost.",
                &stats.gaps,
            ),
        ];
        for (metric, help, c) in counters {
            family(enc, metric, help, "source", per_source(c))?;
        }
        let gap_secs = SourceStats::get(&stats.gap_millis) as f64 / 1000.0;
        family(
            enc,
            "saltbridge_source_gap_seconds",
            "Seconds spent disconnected from the bus, summed over gaps.",
            "source",
            [(name.clone(), ConstCounter::new(gap_secs))],
        )?;
        family(
            enc,
            "saltbridge_source_connected",
            "1 while the source is connected to the bus (a file source: its file is open).",
            "source",
            [(
                name.clone(),
                ConstGauge::new(i64::from(stats.is_connected())),
            )],
        )
    }

    fn encode_pipeline(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let p = &self.pipeline;
        family(
            enc,
            "saltbridge_twins_dropped",
            "Salt duplicate (twin) events dropped, by kind.",
            "kind",
            p.twins()
                .into_iter()
                .map(|(k, n)| (k.name().to_owned(), count(n))),
        )?;
        single(
            enc,
            "saltbridge_peer_claims_refused",
            "Events whose __peer_id was not believed (not as a cluster writes it), taken as this master's own.",
            count(p.peer_claims_refused()),
        )?;
        let routes = p.routes();
        family(
            enc,
            "saltbridge_route_matches",
            "Events a route matched and sent to its sinks.",
            "route",
            routes.iter().map(|(r, c)| (r.clone(), count(c.matched))),
        )?;
        family(
            enc,
            "saltbridge_route_deduplicated",
            "Events a route matched but dropped as duplicates by its dedup.",
            "route",
            routes
                .iter()
                .map(|(r, c)| (r.clone(), count(c.deduplicated))),
        )?;
        single(
            enc,
            "saltbridge_events_unmatched",
            "Events no route matched (they go to the `unmatched:` sinks, if any).",
            count(p.unmatched()),
        )?;
        family(
            enc,
            "saltbridge_noise_dropped",
            "Events dropped by a noise preset (drop.find_job, drop.auth, drop.minion_refresh).",
            "preset",
            p.noise().into_iter().map(|(k, n)| (k, count(n))),
        )
    }

    fn encode_jobs(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let j = self.pipeline.jobs();
        let counters = [
            (
                "saltbridge_jobs_summarised",
                "Job summaries emitted.",
                j.summarised,
            ),
            (
                "saltbridge_jobs_evicted",
                "Jobs summarised early, incomplete, at max_jobs or max_tracked_bytes.",
                j.evicted,
            ),
            (
                "saltbridge_jobs_refused",
                "Job announcements refused as larger than max_job_bytes.",
                j.refused_jobs,
            ),
            (
                "saltbridge_jobs_refused_minions",
                "Minion entries of a job not recorded because a byte budget was reached.",
                j.refused_minions,
            ),
            (
                "saltbridge_jobs_minion_fired",
                "Job events a minion fired with event.send, ignored by the job tracker.",
                j.minion_fired,
            ),
        ];
        for (metric, help, n) in counters {
            single(enc, metric, help, count(n))?;
        }
        self.encode_backfill(enc)?;
        single(
            enc,
            "saltbridge_jobs_open",
            "Jobs the tracker follows now.",
            ConstGauge::new(j.open_jobs),
        )?;
        single(
            enc,
            "saltbridge_jobs_tracked_bytes",
            "Estimated bytes the open jobs take (bounded by max_tracked_bytes).",
            ConstGauge::new(j.tracked_bytes),
        )
    }

    fn encode_backfill(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let b = self.pipeline.backfill();
        single(
            enc,
            "saltbridge_backfill_returns",
            "Returns rebuilt from the master's job cache and routed (lost in a gap, or found before a summary said did not return).",
            count(b.returns),
        )?;
        single(
            enc,
            "saltbridge_backfill_bad_files",
            "Job cache files skipped: unreadable, not msgpack, or larger than backfill.max_file_bytes.",
            count(b.bad_files),
        )?;
        family(
            enc,
            "saltbridge_backfill_trimmed",
            "Trimmed returns (VALUE_TRIMMED) of complete_trimmed routes: completed from the job cache, or sent as they came.",
            "outcome",
            [
                ("completed".to_owned(), count(b.trimmed.completed)),
                ("sent_trimmed".to_owned(), count(b.trimmed.sent_trimmed)),
            ],
        )
    }

    /// The sinks' families, in the order docs/metrics.md lists them.
    fn encode_sinks(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        self.encode_sink_counters(enc)?;
        self.encode_sink_gauges(enc)?;
        family(
            enc,
            "saltbridge_delivery_latency_seconds",
            "Seconds from reading an event off the bus to the sink's acknowledgement.",
            "sink",
            self.sinks
                .iter()
                .map(|(n, s)| (n.clone(), s.latency.clone())),
        )
    }

    fn encode_sink_counters(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        type Read = fn(&SinkStats) -> &AtomicU64;
        let counters: [(&str, &str, Read); 8] = [
            (
                "saltbridge_sink_accepted",
                "Events written to the sink's spool.",
                |s| &s.accepted,
            ),
            (
                "saltbridge_sink_delivered",
                "Events the sink acknowledged.",
                |s| &s.delivered,
            ),
            (
                "saltbridge_sink_retries",
                "Sends that failed and were tried again.",
                |s| &s.retries,
            ),
            (
                "saltbridge_sink_failures",
                "Sends that failed (each attempt), retried or not.",
                |s| &s.failures,
            ),
            (
                "saltbridge_sink_dead_letters",
                "Events written to the dead-letter file.",
                |s| &s.dead_lettered,
            ),
            (
                "saltbridge_sink_undelivered_at_stop",
                "Events left in the spool when saltbridge stopped, sent at the next start.",
                |s| &s.not_delivered,
            ),
            (
                "saltbridge_sink_dropped",
                "Events dropped by the spool's when_full policy at its disk bound, or because the spool could not be written.",
                |s| &s.overflowed,
            ),
            (
                "saltbridge_spool_corrupt_records",
                "Spool records found corrupt and skipped (each one a lost event).",
                |s| &s.corrupt_records,
            ),
        ];
        for (metric, help, read) in counters {
            let samples = self
                .sinks
                .iter()
                .map(|(n, s)| (n.clone(), count(SinkStats::get(read(s)))));
            family(enc, metric, help, "sink", samples)?;
        }
        Ok(())
    }

    fn encode_sink_gauges(&self, enc: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        type Gauge = fn(&SinkStats) -> &AtomicU64;
        let gauges: [(&str, &str, Gauge); 2] = [
            (
                "saltbridge_sink_queue_events",
                "Events queued for the sink, not yet settled.",
                |s| &s.queued,
            ),
            (
                "saltbridge_sink_queue_bytes",
                "Bytes those queued events take.",
                |s| &s.queued_bytes,
            ),
        ];
        for (metric, help, read) in gauges {
            let samples = self
                .sinks
                .iter()
                .map(|(n, s)| (n.clone(), ConstGauge::new(SinkStats::get(read(s)))));
            family(enc, metric, help, "sink", samples)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
