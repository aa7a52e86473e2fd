//! Shared helpers for the integration tests (`mod support;` in a test file).
#![allow(dead_code)]

pub mod http_receiver;

pub mod salt_sandbox;

pub mod tansu;

pub mod bus_feed;

pub mod daemon;
