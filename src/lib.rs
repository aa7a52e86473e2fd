//! saltbridge: reads a Salt master's event bus and delivers matching events
//! to webhooks and Kafka.
//!
//! Events flow one way: `source` (bus reader) -> `decode` -> twins -> job
//! tracker -> route -> sinks.
//! `metrics` serves what each stage counts.
//! Each stage knows the next only through a channel.

pub mod backfill;
pub mod byte_size;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod delivery;
pub mod demo;
pub mod event;
pub mod fsync;
pub mod http_body;
pub mod jobs;
pub mod journal;
pub mod log_text;
pub mod metrics;
pub mod outgoing;
pub mod pipeline;
pub mod receiver;
pub mod route;
pub mod route_cases;
pub mod salt;
pub mod shutdown;
pub mod sink;
pub mod sink_stats;
pub mod source;
pub mod spool;
pub mod state_dir;
pub mod twins;
pub mod when_full;

pub use event::Event;
