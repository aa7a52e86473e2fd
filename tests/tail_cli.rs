//! `saltbridge tail` as a user runs it: the binary, its output and exit code.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn saltbridge(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn lines(out: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["tag"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}

#[test]
fn tail_json_prints_every_capture_as_salt_does() {
    for (bin, jsonl) in support::fixtures::captures() {
        let spec = format!("capture:{}", bin.display());
        let out = saltbridge(&["tail", "--source", &spec, "--format", "json"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        support::fixtures::assert_events_eq(
            &lines(&out.stdout),
            &support::fixtures::expected(&jsonl),
            &spec,
        );
    }
}

#[test]
fn tag_filter_and_jsonl_round_trip() {
    let bin = support::fixtures::fixtures().join("3008.4/b_timeout_find_job.bin");
    let spec = format!("capture:{}", bin.display());
    let out = saltbridge(
        &[
            "tail",
            "-s",
            &spec,
            "--tag",
            "salt/job/*/ret/*",
            "-f",
            "json",
        ],
        None,
    );
    let got = lines(&out.stdout);
    let want: Vec<_> = support::fixtures::expected(&bin.with_extension("jsonl"))
        .into_iter()
        .filter(|(t, _)| t.starts_with("salt/job/") && t.contains("/ret/"))
        .collect();
    assert!(want.len() >= 2);
    support::fixtures::assert_events_eq(&got, &want, "filtered");

    // What tail prints, tail reads back from stdin unchanged.
    let all = saltbridge(&["tail", "-s", &spec, "-f", "json"], None).stdout;
    let again = saltbridge(&["tail", "-s", "jsonl:-", "-f", "json"], Some(&all));
    assert_eq!(again.stdout, all);
}

#[test]
fn state_event_lines_are_read_too() {
    // `salt-run state.event pretty=False` prints TAG<TAB>JSON.
    let jsonl = support::fixtures::fixtures().join("3008.4/c3_state_sls_failing.jsonl");
    let want = support::fixtures::expected(&jsonl);
    let text: String = want.iter().map(|(t, d)| format!("{t}\t{d}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.txt");
    std::fs::write(&file, text).unwrap();
    let out = saltbridge(
        &[
            "tail",
            "-s",
            &format!("jsonl:{}", file.display()),
            "-f",
            "json",
        ],
        None,
    );
    support::fixtures::assert_events_eq(&lines(&out.stdout), &want, "state.event lines");
}

#[test]
fn pretty_output_is_tag_tab_indented_json() {
    let bin = support::fixtures::fixtures().join("3008.4/a_test_ping.bin");
    let out = saltbridge(
        &[
            "tail",
            "-s",
            &format!("capture:{}", bin.display()),
            "-f",
            "pretty",
        ],
        None,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("salt/job/20261126135646965819/new\t{\n    \"_stamp\": "),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn garbage_in_a_capture_is_counted_and_the_rest_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.bin");
    let good = std::fs::read(support::fixtures::fixtures().join("3008.4/a_test_ping.bin")).unwrap();
    let mut bytes = good.clone();
    let garbage = b"\x01\x02 not salt \xff";
    bytes.extend_from_slice(garbage);
    bytes.extend_from_slice(&good);
    std::fs::write(&file, bytes).unwrap();
    let out = saltbridge(
        &[
            "tail",
            "-s",
            &format!("capture:{}", file.display()),
            "-f",
            "json",
        ],
        None,
    );
    assert!(out.status.success());
    assert_eq!(lines(&out.stdout).len(), 6);
    let err = String::from_utf8_lossy(&out.stderr);
    let summary = format!("1 malformed frames skipped ({} bytes)", garbage.len());
    assert!(err.contains(&summary), "{err}");
    assert!(
        err.contains(&format!("offset={}", good.len())),
        "the log names the offset: {err}"
    );
}

#[test]
fn bad_spec_and_missing_file_fail_clearly() {
    let out = saltbridge(&["tail", "-s", "http://x"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected ipc:PATH"));
    let out = saltbridge(&["tail", "-s", "capture:/nonexistent/x.bin"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.bin"));
}
