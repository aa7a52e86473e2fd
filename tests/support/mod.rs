//! Shared helpers for the integration tests (`mod support;` in a test file).
//!
//! - `process`: every child process in its own process group, killed whole
//!   on drop (panics included); `ports`: free loopback ports.
//! - `daemon`: `saltbridge run` as a child process (also used by the
//!   pipeline bench). The webhook receiver is the library's
//!   (`saltbridge::receiver`), shared with the demo and the bench.
//! - `salt_sandbox`: real Salt masters and minions (`salt_cluster`: a
//!   cluster; `salt_multimaster`: two hot masters of one minion); `tansu`: a real Kafka
//!   broker; `bus_feed`: a fake master event bus.
//! - `fixtures`: the captured Salt streams and their expected events.
//! - `certs`: a CA and PEM text made inside a test, for TLS servers.
#![allow(dead_code)]

pub mod bus_feed;
pub mod certs;
pub mod daemon;
pub mod fixtures;
pub mod ports;
pub mod process;
pub mod salt_cluster;
pub mod salt_multimaster;
pub mod salt_sandbox;
pub mod salt_syndic;
pub mod tansu;
