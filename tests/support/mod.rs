//! Shared helpers for the integration tests (`mod support;` in a test file).
#![allow(dead_code)]

pub mod salt_sandbox;
