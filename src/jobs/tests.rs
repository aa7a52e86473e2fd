//! Unit tests of the tracker on hand-made events; the real captures are in
//! `tests/jobs.rs`.
