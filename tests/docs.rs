//! The user docs are checked against the code: every field the routes
//! parser accepts is documented in docs/routes.md, every `where` operator
//! too, every subcommand is shown in the README, and every metric
//! `/metrics` serves is in docs/metrics.md.

use std::path::Path;

use saltbridge::config::load_str;
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
        "source: {zzz: 1}\n",
        "source: {saltapi: {zzz: 1}}\n",
        "twins: {zzz: 1}\n",
        "drop: {zzz: 1}\n",
        "jobs: {zzz: 1}\n",
        "journal: {zzz: 1}\n",
        "masters: {zzz: 1}\n",
        "backfill: {zzz: 1}\n",
        "backfill: {trimmed: {zzz: 1}}\n",
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

/// The shell code blocks of a markdown file, line by line.
fn shell_lines(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_shell = false;
    for line in markdown.lines() {
        let t = line.trim_start();
        if let Some(lang) = t.strip_prefix("```") {
            in_shell = !in_shell && (lang == "sh" || lang == "bash" || lang == "shell");
            continue;
        }
        if in_shell {
            out.push(t.to_owned());
        }
    }
    out
}

/// Splits a shell line into words, honouring quotes; stops at a comment.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => break,
            // Operators end a word even when written against it: `a.yaml; echo`.
            (None, ';' | '|' | '&') => {
                words.extend(word.take());
                match words.last_mut() {
                    Some(last) if last.len() == 1 && last.starts_with(c) && c != ';' => {
                        last.push(c)
                    }
                    _ => words.push(c.to_string()),
                }
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The saltbridge invocations on a shell line: the arguments after
/// `saltbridge` (or `cargo run --release --`), one list per command of a
/// pipeline or list, with redirections left out.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let line = line.strip_prefix("$ ").unwrap_or(line);
    let mut found = Vec::new();
    let mut command: Vec<String> = Vec::new();
    let mut all = words(line);
    all.push(";".to_owned());
    let mut skip_next = false;
    for w in all {
        if skip_next {
            skip_next = false;
            continue;
        }
        match w.as_str() {
            "|" | ";" | "&&" | "||" => {
                let mut c = std::mem::take(&mut command);
                if c.first().map(String::as_str) == Some("sudo") {
                    c.remove(0);
                }
                if c.first().map(String::as_str) == Some("saltbridge") {
                    found.push(c[1..].to_vec());
                } else if c.starts_with(&[
                    "cargo".into(),
                    "run".into(),
                    "--release".into(),
                    "--".into(),
                ]) {
                    found.push(c[4..].to_vec());
                }
            }
            ">" | "<" | "2>" | ">>" => skip_next = true,
            w if w.starts_with('>') || w.starts_with('<') => {}
            _ => command.push(w),
        }
    }
    found
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut checked = 0;
    for doc in ["README.md", "docs/install.md"] {
        for line in shell_lines(&read(doc)) {
            // A synopsis, not a command: `saltbridge tail [--source SPEC] ...`.
            if line.contains("[--") {
                continue;
            }
            for args in invocations(&line) {
                // --help after the arguments: clap checks each argument as it
                // reads it and stops at --help before doing anything.
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_saltbridge"))
                    .args(&args)
                    .arg("--help")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{doc}: `saltbridge {}` does not parse:\n{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "only {checked} command lines found");
}

#[test]
fn the_readme_shows_what_the_demo_prints() {
    let readme = read("README.md");
    let shown = readme
        .split("What `saltbridge demo` prints")
        .nth(1)
        .and_then(|rest| rest.split("```text\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .expect("README has no demo output block");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["demo", "--color", "never"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    // The receiver's port differs from run to run.
    let port = regex::Regex::new(r"127\.0\.0\.1:\d+").unwrap();
    let shown = port.replace_all(shown, "127.0.0.1:PORT");
    let printed = port.replace_all(printed.trim_end(), "127.0.0.1:PORT");
    assert_eq!(
        shown, printed,
        "the README's demo output is stale: paste `cargo run --release -- demo --color never`"
    );
}

#[test]
fn the_shell_words_are_split_as_a_shell_would() {
    assert_eq!(
        invocations("saltbridge tail --tag 'salt/job/*/ret/*' | jq -c '{id: .data.id}'"),
        [vec!["tail", "--tag", "salt/job/*/ret/*"]]
    );
    assert_eq!(
        invocations("$ saltbridge validate -c broken.yaml; echo $?"),
        [vec!["validate", "-c", "broken.yaml"]]
    );
    assert_eq!(
        invocations("saltbridge tail --source jsonl:- < events.txt   # stdin"),
        [vec!["tail", "--source", "jsonl:-"]]
    );
    assert_eq!(
        invocations("sudo saltbridge man --dir /x/man1"),
        [vec!["man", "--dir", "/x/man1"]]
    );
    assert_eq!(invocations("cargo run --release -- demo"), [vec!["demo"]]);
    assert!(invocations("salt-run state.event pretty=False > events.txt").is_empty());
}

/// The fields a sink's settings accept, from its own unknown-field error.
fn sink_fields(settings: serde_json::Value) -> Vec<String> {
    let e = match saltbridge::sink::Sink::check_config("probe", &settings) {
        Ok(()) => panic!("probe accepted: {settings}"),
        Err(e) => e.message,
    };
    let list = e
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("no field list in: {e}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_kafka_and_cloudevents_setting_is_documented() {
    use serde_json::json;
    let kafka = read("docs/sinks-kafka.md");
    let fields = sink_fields(json!({"type": "kafka", "brokers": "b:9092", "topic": "t", "zzz": 1}));
    assert!(fields.len() >= 12, "{fields:?}");
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !kafka.contains(&format!("| `{f}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented in docs/sinks-kafka.md: {missing:?}"
    );
    let ce = read("docs/cloudevents.md");
    let mut fields = sink_fields(json!({"type": "kafka", "brokers": "b:9092", "topic": "t",
        "format": "cloudevents", "cloudevents": {"zzz": 1}}));
    fields.extend(sink_fields(json!({"type": "webhook", "url": "http://x/",
        "format": "cloudevents", "cloudevents": {"mode": "zzz"}})));
    fields.extend(sink_fields(
        json!({"type": "webhook", "url": "http://x/", "format": "zzz"}),
    ));
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !ce.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "undocumented in docs/cloudevents.md: {missing:?}"
    );
}
