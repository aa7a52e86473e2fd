//! Job summaries on real bus traffic: each capture (3008.4, 3006.29 and the
//! ZeroMQ-era messages) goes through the whole pipeline (twins, job tracker,
//! routes) and comes out with one `saltbridge/job/<jid>/summary` per job
//! saying what a user would check: who returned, who failed, who did not
//! return, and which states failed.
//!
//! Events are pushed at the time of their `_stamp` (when Salt fired them),
//! so deadlines see the real gaps between events; after the last event the
//! clock runs on as a timer would, or the input ends (flush).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use saltbridge::config::load_str;
use saltbridge::decode::{decode_all, decode_message, BodyStyle, Decoded};
use saltbridge::pipeline::{Outcome, Pipeline};
use saltbridge::Event;
use serde_json::{json, Value};

/// Routes a user would write: failed summaries to chat, the rest to an archive.
const ROUTES: &str = r#"
jobs:
  timeout: 2s            # the captures ran `salt -t 2`
  gather_job_timeout: 10s
sinks:
  chat: {type: webhook, url: "http://127.0.0.1:9/chat"}
  archive: {type: webhook, url: "http://127.0.0.1:9/archive"}
routes:
  - name: failed-summaries
    match: {tag: "saltbridge/job/*/summary", where: {success: false}}
    to: [chat]
  - name: summaries
    match: {tag: "saltbridge/job/*/summary"}
    to: [archive]
"#;

fn events(rel: &str) -> Vec<Event> {
    let path = support::fixtures::fixtures().join(rel);
    if path.extension().is_some_and(|e| e == "bin") {
        let bytes = std::fs::read(&path).unwrap();
        decode_all(&bytes, Arc::from("capture"))
            .into_iter()
            .map(|d| match d {
                Decoded::Event(e) => e,
                Decoded::Malformed { offset, .. } => panic!("{rel}: at {offset}"),
            })
            .collect()
    } else {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let msg = base64::engine::general_purpose::STANDARD
                    .decode(v["b64"].as_str().unwrap())
                    .unwrap();
                decode_message(
                    Bytes::from(msg),
                    BodyStyle::Zmq,
                    Arc::from("zmq"),
                    SystemTime::UNIX_EPOCH,
                )
                .unwrap()
            })
            .collect()
    }
}

fn stamp(ev: &Event) -> Option<SystemTime> {
    let s = ev.data().get("_stamp")?.as_str()?;
    humantime::parse_rfc3339_weak(s.strip_suffix("+00:00").unwrap_or(s)).ok()
}

/// How the input ends.
enum End {
    /// The clock runs on this long after the last event (ticking at each deadline).
    RunOn(Duration),
    /// End of input right after the last event.
    Flush,
}

/// Every routed outcome as (tag, data, sinks), in order.
fn run_with(routes: &str, evs: Vec<Event>, end: End) -> Vec<(String, Value, Vec<String>)> {
    let table = load_str(Path::new("jobs.yaml"), routes, |_| None).unwrap();
    let mut p = Pipeline::new(table, false);
    let base = Instant::now();
    let first = evs.iter().find_map(stamp).unwrap();
    let mut outcomes = Vec::new();
    let mut now = base;
    for ev in evs {
        if let Some(t) = stamp(&ev) {
            now = now.max(base + t.duration_since(first).unwrap_or_default());
        }
        while let Some(d) = p.next_deadline().filter(|d| *d <= now) {
            outcomes.extend(p.tick(d));
        }
        outcomes.extend(p.push(ev, now));
    }
    match end {
        End::RunOn(d) => {
            let stop = now + d;
            while let Some(at) = p.next_deadline().filter(|at| *at <= stop) {
                outcomes.extend(p.tick(at));
            }
        }
        End::Flush => outcomes.extend(p.flush(now)),
    }
    outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Routed { event, routing } => {
                Some((event.tag().to_owned(), event.data().clone(), routing.sinks))
            }
            Outcome::Twin { .. } => None,
        })
        .collect()
}

/// The summaries among the outcomes: (data, sinks).
fn summaries(out: &[(String, Value, Vec<String>)]) -> Vec<(Value, Vec<String>)> {
    out.iter()
        .filter(|(tag, ..)| tag.starts_with("saltbridge/job/"))
        .map(|(tag, data, sinks)| {
            assert_eq!(
                tag,
                &format!("saltbridge/job/{}/summary", data["jid"].as_str().unwrap())
            );
            (data.clone(), sinks.clone())
        })
        .collect()
}

fn only_summary(rel: &str, end: End) -> (Value, Vec<String>) {
    let out = run_with(ROUTES, events(rel), end);
    let mut s = summaries(&out);
    assert_eq!(s.len(), 1, "{rel}: one summary per job: {s:#?}");
    s.remove(0)
}

#[test]
fn test_ping_on_3008_3006_and_zeromq_masters() {
    for (rel, jid, minion) in [
        (
            "3008.4/a_test_ping.bin",
            "20261126135646965819",
            "lab-minion",
        ),
        (
            "3006.29/a_test_ping.bin",
            "20261126141257294921",
            "lab-minion",
        ),
        (
            "legacy/test_ping.padded.jsonl",
            "20150227111546144547",
            "gs-ssh",
        ),
        (
            "legacy/test_ping.tagend.jsonl",
            "20150227111546144547",
            "gs-ssh",
        ),
    ] {
        let out = run_with(ROUTES, events(rel), End::Flush);
        let s = summaries(&out);
        assert_eq!(s.len(), 1, "{rel}: {s:#?}");
        let (d, sinks) = &s[0];
        assert_eq!(d["jid"], jid, "{rel}");
        assert_eq!(d["fun"], "test.ping", "{rel}");
        assert_eq!(d["closed"], "returned", "{rel}");
        assert_eq!(d["incomplete"], false, "{rel}");
        assert_eq!(d["success"], true, "{rel}");
        assert_eq!(
            d["counts"],
            json!({"targeted": 1, "returned": 1, "succeeded": 1, "failed": 0, "did_not_return": 0}),
            "{rel}"
        );
        assert_eq!(d["minions"][minion]["returned"], true, "{rel}");
        assert!(
            d["minions"][minion]["duration"].as_f64().unwrap() < 5.0,
            "{rel}"
        );
        assert_eq!(sinks, &["archive"], "{rel}");
        // The summary comes right after the return that completed the job.
        let at = out
            .iter()
            .position(|(t, ..)| t.starts_with("saltbridge/"))
            .unwrap();
        assert!(
            out[at - 1].0.ends_with(&format!("/ret/{minion}")),
            "{rel}: {:?}",
            out[at - 1].0
        );
    }
}

#[test]
fn a_job_past_its_timeout_answering_find_job_is_summarised_once_when_it_returns() {
    let (d, _) = only_summary("3008.4/b_timeout_find_job.bin", End::Flush);
    assert_eq!(d["jid"], "20261126135712226574");
    assert_eq!(d["closed"], "returned");
    assert_eq!(d["success"], true);
    assert_eq!(d["find_job_polls"], 1);
    let m = &d["minions"]["lab-minion"];
    assert_eq!(m["returned"], true);
    assert_eq!(m["find_job"], "running");
    let took = m["duration"].as_f64().unwrap();
    assert!((6.0..7.0).contains(&took), "{took}");
}

#[test]
fn a_running_answer_keeps_a_long_job_open_past_timeout_plus_gather_job_timeout() {
    // `sleep 12` returns 12.2 s after it started: past 2 s + 10 s.
    let rel = "3008.4/b2_timeout_find_job_long.bin";
    let (d, _) = only_summary(rel, End::RunOn(Duration::from_secs(60)));
    assert_eq!(d["closed"], "returned");
    assert_eq!(d["counts"]["did_not_return"], 0);
    assert_eq!(d["minions"]["lab-minion"]["find_job"], "running");

    // Without the polls, nothing says the minion is still at it: the job
    // times out before the return, as the CLI would have given up.
    let no_polls: Vec<Event> = events(rel)
        .into_iter()
        .filter(|e| !e.data_json().contains("saltutil.find_job"))
        .collect();
    let out = run_with(ROUTES, no_polls, End::RunOn(Duration::from_secs(60)));
    let s = summaries(&out);
    assert_eq!(s.len(), 1, "{s:#?}");
    let (d, sinks) = &s[0];
    assert_eq!(d["closed"], "timeout");
    assert_eq!(d["did_not_return_minions"], json!(["lab-minion"]));
    assert_eq!(d["minions"]["lab-minion"]["find_job"], Value::Null);
    assert_eq!(sinks, &["chat"]);
}

#[test]
fn a_non_zero_exit_is_a_failed_minion() {
    let (d, sinks) = only_summary("3008.4/c2_cmd_exit3.bin", End::Flush);
    assert_eq!(d["fun"], "cmd.run");
    assert_eq!(d["arg"], json!(["exit 3"]));
    assert_eq!(d["success"], false);
    assert_eq!(d["counts"]["failed"], 1);
    assert_eq!(d["failed_minions"], json!(["lab-minion"]));
    assert_eq!(d["minions"]["lab-minion"]["retcode"], 3);
    assert_eq!(sinks, ["chat"]);
}

#[test]
fn a_failing_state_run_names_its_failed_and_changed_states() {
    let (d, sinks) = only_summary("3008.4/c3_state_sls_failing.bin", End::Flush);
    assert_eq!(d["fun"], "state.sls");
    assert_eq!(d["counts"]["failed"], 1);
    let m = &d["minions"]["lab-minion"];
    assert_eq!(m["states"]["failed"], 1);
    assert_eq!(m["states"]["changed"], 1);
    assert_eq!(m["failed_states"][0]["id"], "bad_state");
    assert_eq!(
        m["failed_states"][0]["function"],
        "test.fail_without_changes"
    );
    assert_eq!(m["failed_states"][0]["comment"], "Failure!");
    assert_eq!(m["changed_states"][0]["id"], "ok_state");
    assert_eq!(m["failed_states"].as_array().unwrap().len(), 1);
    assert_eq!(sinks, ["chat"]);
}

#[test]
fn a_minion_that_is_down_did_not_return_after_the_timeout() {
    let rel = "3008.4/e_minion_down.bin";
    let (d, sinks) = only_summary(rel, End::RunOn(Duration::from_secs(60)));
    assert_eq!(d["jid"], "20261126135857839634");
    assert_eq!(d["closed"], "timeout");
    assert_eq!(d["incomplete"], false);
    assert_eq!(d["success"], false);
    assert_eq!(
        d["counts"],
        json!({"targeted": 1, "returned": 0, "succeeded": 0, "failed": 0, "did_not_return": 1})
    );
    assert_eq!(d["did_not_return_minions"], json!(["lab-minion"]));
    assert_eq!(d["minions"]["lab-minion"]["find_job"], "no_answer");
    assert_eq!(d["end"], Value::Null);
    assert_eq!(sinks, ["chat"]);

    // The input ends before the deadline: the summary says it is incomplete.
    let (d, _) = only_summary(rel, End::Flush);
    assert_eq!(d["closed"], "shutdown");
    assert_eq!(d["incomplete"], true);
    assert_eq!(d["did_not_return_minions"], json!(["lab-minion"]));
}

#[test]
fn a_runner_job_is_summarised_at_its_return() {
    let (d, _) = only_summary("3008.4/d2_saltrun_event_send.bin", End::Flush);
    assert_eq!(d["kind"], "runner");
    assert_eq!(d["fun"], "runner.event.send");
    assert_eq!(d["closed"], "returned");
    assert_eq!(d["success"], true);
    assert_eq!(d["arg"][0], "my/master/tag");
}

#[test]
fn every_job_of_every_capture_gets_exactly_one_summary() {
    for (bin, _) in support::fixtures::captures() {
        let rel = bin.strip_prefix(support::fixtures::fixtures()).unwrap();
        let evs = events(rel.to_str().unwrap());
        let jobs: std::collections::BTreeSet<String> = evs
            .iter()
            .filter(|e| {
                let t = e.tag();
                (t.starts_with("salt/job/") && t.ends_with("/new")
                    || t.starts_with("salt/run/") && t.ends_with("/new"))
                    && e.data()["fun"] != "saltutil.find_job"
                    // A cluster peer's job is summarised by the peer's bridge.
                    && e.data().get("__peer_id").is_none()
            })
            .map(|e| e.tag().split('/').nth(2).unwrap().to_owned())
            .collect();
        let out = run_with(ROUTES, evs, End::Flush);
        let got: Vec<String> = summaries(&out)
            .iter()
            .map(|(d, _)| d["jid"].as_str().unwrap().to_owned())
            .collect();
        let want: Vec<String> = jobs.into_iter().collect();
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, want, "{}", rel.display());
    }
}

#[test]
fn jobs_enabled_false_emits_nothing() {
    let routes = ROUTES.replace("  timeout: 2s", "  enabled: false\n  timeout: 2s");
    let out = run_with(
        &routes,
        events("3008.4/c3_state_sls_failing.bin"),
        End::Flush,
    );
    assert!(summaries(&out).is_empty());
}

#[test]
fn the_summary_in_docs_jobs_md_is_the_real_one() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/jobs.md"))
        .unwrap();
    let example = doc
        .split("## The summary event")
        .nth(1)
        .and_then(|s| s.split("```json\n").nth(1))
        .and_then(|s| s.split("\n```").next())
        .unwrap();
    let documented: Value = serde_json::from_str(example).unwrap();
    let (real, _) = only_summary("3008.4/c3_state_sls_failing.bin", End::Flush);
    assert_eq!(documented, real);
}
