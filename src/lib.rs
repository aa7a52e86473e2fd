//! saltbridge: reads a Salt master's event bus and delivers matching events
//! to webhooks and Kafka.
//!
//! Events flow one way: `source` (bus reader) -> `decode` -> twins -> job
//! tracker -> route -> sinks.
//! `metrics` serves what each stage counts.
//! Each stage knows the next only through a channel.

pub mod cli;
pub mod decode;
pub mod dedup;
pub mod delivery;
pub mod event;
pub mod jobs;
pub mod metrics;
pub mod pipeline;
pub mod receiver;
pub mod route;
pub mod salt_return;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod spool;
pub mod tail;

pub use event::Event;
