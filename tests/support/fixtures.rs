//! The fixture captures and an
//! order-sensitive comparison of decoded events against Salt's own output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `.bin` capture that has a `.jsonl` beside it.
pub fn captures() -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for version in ["3008.4", "3006.29"] {
        let dir = fixtures().join(version);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        entries.sort();
        for bin in entries {
            let jsonl = bin.with_extension("jsonl");
            assert!(jsonl.exists(), "{} has no .jsonl", bin.display());
            out.push((bin, jsonl));
        }
    }
    assert!(out.len() >= 13, "fixtures missing: {}", out.len());
    out
}

/// `(tag, data)` pairs from a jsonl file of `{"tag", "data"}` lines.
pub fn expected(jsonl: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(jsonl)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["tag"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}

/// Values compared with map key order, which `Value`'s `==` ignores.
pub fn same_in_order(a: &Value, b: &Value) -> bool {
    a == b && serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
}

pub fn assert_events_eq(got: &[(String, Value)], want: &[(String, Value)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: event count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.0, w.0, "{what}: tag of event {i}");
        assert!(
            same_in_order(&g.1, &w.1),
            "{what}: data of event {i} ({})\n got: {}\nwant: {}",
            w.0,
            g.1,
            w.1
        );
    }
}
