//! The user docs are checked against the code: every field the routes
//! parser accepts is documented in docs/routes.md, every `where` operator
//! too, every subcommand is shown in the README, and every metric
//! `/metrics` serves is in docs/metrics.md.

use std::path::Path;

use saltbridge::route::load_str;
use saltbridge::route::predicate::OPERATORS;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The fields a struct accepts, as its own "unknown field" error lists them.
fn accepted_fields(yaml: &str) -> Vec<String> {
    let err = match load_str(Path::new("probe.yaml"), yaml, |_| None) {
        Ok(_) => panic!("probe accepted: {yaml}"),
        Err(e) => e.to_string(),
    };
    let list = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in: {err}"));
    list.lines()
        .next()
        .unwrap()
        .split(", ")
        .map(|f| f.trim_matches('`').trim().to_owned())
        .collect()
}

#[test]
fn every_routes_field_is_documented() {
    let doc = read("docs/routes.md");
    let probes = [
        "zzz: 1\n",
        "twins: {zzz: 1}\n",
        "drop: {zzz: 1}\n",
        "jobs: {zzz: 1}\n",
        "routes:\n  - name: a\n    zzz: 1\n",
        "routes:\n  - name: a\n    match: {zzz: 1}\n",
        "routes:\n  - name: a\n    dedup: {key: k, zzz: 1}\n",
    ];
    let mut missing = Vec::new();
    let mut seen = 0;
    for probe in probes {
        for field in accepted_fields(probe) {
            seen += 1;
            if !doc.contains(&format!("`{field}`")) {
                missing.push(format!("{field} (from {probe:?})"));
            }
        }
    }
    assert!(seen >= 25, "only {seen} fields found");
    assert!(
        missing.is_empty(),
        "undocumented in docs/routes.md: {missing:?}"
    );
    for op in OPERATORS {
        assert!(
            doc.contains(&format!("`{op}")),
            "operator {op} undocumented"
        );
    }
}

#[test]
fn every_command_is_in_the_readme() {
    let readme = read("README.md");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .take_while(|c| *c != "Options:")
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 4, "{help}");
    for c in commands {
        assert!(
            readme.contains(&format!("saltbridge {c}")),
            "README shows no example of `saltbridge {c}`"
        );
    }
}

/// The fields a sink's delivery settings accept, as serde lists them.
fn delivery_fields(section: &str) -> Vec<String> {
    let mut v = serde_json::json!({ section: {"zzz": 1} });
    let err = saltbridge::delivery::DeliverySettings::split_from(&mut v).unwrap_err();
    let list = err
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in: {err}"));
    list.split(", ")
        .map(|f| f.trim_matches('`').trim().to_owned())
        .collect()
}

#[test]
fn every_spool_and_retry_field_is_documented() {
    let doc = read("docs/durability.md");
    let fields: Vec<String> = ["spool", "retry"]
        .iter()
        .flat_map(|s| delivery_fields(s))
        .collect();
    assert!(fields.len() >= 7, "{fields:?}");
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !doc.contains(&format!("| `{f}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented in docs/durability.md: {missing:?}"
    );
    for cmd in ["dlq list", "dlq show", "dlq replay"] {
        assert!(doc.contains(&format!("saltbridge {cmd}")), "{cmd}");
    }
}

#[test]
fn every_metric_is_documented() {
    use std::sync::Arc;

    use saltbridge::delivery::SinkStats;
    use saltbridge::metrics::collector::render;
    use saltbridge::metrics::{Heartbeat, Observed, PipelineStats};
    use saltbridge::source::SourceStats;

    let doc = read("docs/metrics.md");
    let observed = Arc::new(Observed::new(
        ("ipc:/x".to_owned(), Arc::new(SourceStats::default())),
        vec![("hook".to_owned(), Arc::new(SinkStats::default()))],
        Arc::new(PipelineStats::new(["r"])),
        Arc::new(Heartbeat::default()),
    ));
    let text = render(&observed).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 25, "{text}");
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented in docs/metrics.md: {missing:?}"
    );
}
