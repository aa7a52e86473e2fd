//! Unit tests of the tracker on hand-made events; the real captures are in
//! `tests/jobs.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::summary::parse_stamp;
use super::{JobConfig, JobTracker};
use crate::event::Event;
use crate::salt::Fnmatch;

fn ev(tag: &str, data: Value) -> Event {
    Event::synthetic(tag, data, Arc::from("ipc:/test"))
}

fn new(jid: &str, fun: &str, minions: &[&str]) -> Event {
    ev(
        &format!("salt/job/{jid}/new"),
        json!({"jid": jid, "fun": fun, "arg": [], "tgt": "*", "tgt_type": "glob",
               "user": "root", "minions": minions, "missing": [],
               "_stamp": "2026-11-26T13:00:00.000000+00:00"}),
    )
}

fn ret(jid: &str, id: &str, retcode: i64) -> Event {
    ev(
        &format!("salt/job/{jid}/ret/{id}"),
        json!({"jid": jid, "id": id, "fun": "test.ping", "return": true, "retcode": retcode,
               "success": retcode == 0, "_stamp": "2026-11-26T13:00:01.500000+00:00"}),
    )
}

fn find_job_new(fjid: &str, target: &str, minions: &[&str]) -> Event {
    ev(
        &format!("salt/job/{fjid}/new"),
        json!({"jid": fjid, "fun": "saltutil.find_job", "arg": [target], "minions": minions}),
    )
}

fn find_job_ret(fjid: &str, target: &str, id: &str, running: bool) -> Event {
    let answer = if running {
        json!({"jid": target, "fun": "cmd.run", "pid": 1})
    } else {
        json!({})
    };
    ev(
        &format!("salt/job/{fjid}/ret/{id}"),
        json!({"jid": fjid, "id": id, "fun": "saltutil.find_job", "fun_args": [target],
               "return": answer, "retcode": 0, "success": true}),
    )
}

fn tracker() -> JobTracker {
    JobTracker::new(JobConfig::default())
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn summarised_when_every_minion_returned() {
    let mut t = tracker();
    let t0 = Instant::now();
    assert!(t.push(&new("1", "test.ping", &["a", "b"]), t0).is_empty());
    assert!(t.push(&ret("1", "a", 0), t0).is_empty());
    // The same return again changes nothing.
    assert!(t.push(&ret("1", "a", 0), t0).is_empty());
    let out = t.push(&ret("1", "b", 1), t0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].tag(), "saltbridge/job/1/summary");
    assert_eq!(out[0].source(), "ipc:/test");
    let d = out[0].data();
    assert_eq!(d["closed"], "returned");
    assert_eq!(d["counts"]["succeeded"], 1);
    assert_eq!(d["counts"]["failed"], 1);
    assert_eq!(d["failed_minions"], json!(["b"]));
    assert_eq!(d["duration"], 1.5);
    assert_eq!(t.open_jobs(), 0);
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn silent_minions_did_not_return_at_the_deadline() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.push(&new("1", "test.ping", &["a", "b"]), t0);
    t.push(&ret("1", "a", 0), t0 + S(1));
    // timeout + gather_job_timeout = 15 s.
    assert_eq!(t.next_deadline(), Some(t0 + S(15)));
    assert!(t.tick(t0 + S(14)).is_empty());
    let out = t.tick(t0 + S(15));
    assert_eq!(out.len(), 1);
    let d = out[0].data();
    assert_eq!(d["closed"], "timeout");
    assert_eq!(d["did_not_return_minions"], json!(["b"]));
    assert_eq!(d["minions"]["b"]["success"], Value::Null);
    // A late return of a summarised job opens nothing.
    assert!(t.push(&ret("1", "b", 0), t0 + S(16)).is_empty());
    assert!(t
        .push(&new("1", "test.ping", &["a", "b"]), t0 + S(16))
        .is_empty());
    assert_eq!(t.open_jobs(), 0);
}

#[test]
fn a_running_answer_extends_the_deadline_an_empty_one_does_not() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.push(&new("1", "cmd.run", &["a", "b"]), t0);
    t.push(&find_job_new("2", "1", &["a", "b"]), t0 + S(5));
    // The poll is awaited gather_job_timeout: 5 + 10 = 15, the same.
    assert_eq!(t.next_deadline(), Some(t0 + S(15)));
    t.push(&find_job_ret("2", "1", "b", false), t0 + S(6));
    assert_eq!(t.next_deadline(), Some(t0 + S(15)));
    t.push(&find_job_ret("2", "1", "a", true), t0 + S(6));
    // 6 + gather_job_timeout + max(timeout, gather_job_timeout) = 26.
    assert_eq!(t.next_deadline(), Some(t0 + S(26)));
    assert!(t.tick(t0 + S(20)).is_empty());
    let out = t.push(&ret("1", "a", 0), t0 + S(21));
    assert!(out.is_empty(), "b is still awaited");
    let out = t.tick(t0 + S(26));
    let d = out[0].data();
    assert_eq!(d["closed"], "timeout");
    assert_eq!(d["find_job_polls"], 1);
    assert_eq!(d["minions"]["a"]["returned"], true);
    assert_eq!(d["minions"]["b"]["find_job"], "not_running");
    assert_eq!(d["did_not_return_minions"], json!(["b"]));
    // find_job jobs are not summarised themselves.
    assert!(out.iter().all(|e| e.tag() == "saltbridge/job/1/summary"));
}

#[test]
fn per_function_waits_first_match_wins() {
    let cfg = JobConfig {
        waits: vec![
            (Fnmatch::new("state.apply"), S(60)),
            (Fnmatch::new("state.*"), S(600)),
        ],
        ..JobConfig::default()
    };
    assert_eq!(cfg.wait_for("state.apply"), S(60));
    assert_eq!(cfg.wait_for("state.sls"), S(600));
    assert_eq!(cfg.wait_for("test.ping"), S(15));
    let mut t = JobTracker::new(cfg);
    let t0 = Instant::now();
    t.push(&new("1", "state.sls", &["a"]), t0);
    assert_eq!(t.next_deadline(), Some(t0 + S(600)));
}

#[test]
fn missing_minions_did_not_return_and_are_not_awaited() {
    let mut t = tracker();
    let t0 = Instant::now();
    let mut announce = new("1", "test.ping", &["a"]);
    announce = ev(announce.tag(), {
        let mut d = announce.data().clone();
        d["missing"] = json!(["gone"]);
        d
    });
    t.push(&announce, t0);
    let out = t.push(&ret("1", "a", 0), t0);
    let d = out[0].data();
    assert_eq!(d["closed"], "returned");
    assert_eq!(d["counts"]["did_not_return"], 1);
    assert_eq!(d["minions"]["gone"]["missing"], true);
    assert_eq!(d["success"], false);
}

#[test]
fn the_cap_evicts_the_oldest_job_marked_incomplete() {
    let mut t = JobTracker::new(JobConfig {
        max_jobs: 2,
        ..JobConfig::default()
    });
    let t0 = Instant::now();
    t.push(&new("1", "test.ping", &["a"]), t0);
    t.push(&new("2", "test.ping", &["a"]), t0);
    let out = t.push(&new("3", "test.ping", &["a"]), t0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data()["jid"], "1");
    assert_eq!(out[0].data()["closed"], "evicted");
    assert_eq!(out[0].data()["incomplete"], true);
    assert_eq!(t.evicted(), 1);
    assert_eq!(t.open_jobs(), 2);
    let rest = t.flush();
    let jids: Vec<&Value> = rest.iter().map(|e| &e.data()["jid"]).collect();
    assert_eq!(jids, [&json!("2"), &json!("3")]);
    assert!(rest.iter().all(|e| e.data()["closed"] == "shutdown"));
    assert_eq!(t.summarised(), 3);
}

#[test]
fn legacy_forms_are_understood() {
    let mut t = tracker();
    let t0 = Instant::now();
    // 3006's bare-jid announcement, then 2014's new_job, then a bare-jid return.
    let jid = "20150227111546144547";
    t.push(
        &ev(
            jid,
            json!({"minions": ["a"], "_stamp": "2015-02-27T11:15:46.145663"}),
        ),
        t0,
    );
    t.push(
        &ev(
            "new_job",
            json!({"jid": jid, "fun": "test.ping", "arg": [], "tgt": "*",
                              "minions": ["a"], "_stamp": "2015-02-27T11:15:46.147099"}),
        ),
        t0,
    );
    let out = t.push(
        &ev(
            jid,
            json!({"jid": jid, "id": "a", "fun": "test.ping", "return": true,
                        "retcode": 0, "success": true, "_stamp": "2015-02-27T11:15:46.216332"}),
        ),
        t0,
    );
    assert_eq!(out.len(), 1);
    let d = out[0].data();
    assert_eq!(d["fun"], "test.ping");
    assert_eq!(d["tgt"], "*");
    assert_eq!(d["counts"]["succeeded"], 1);
}

#[test]
fn a_state_run_that_did_not_render_failed_with_its_errors() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.push(&new("1", "state.apply", &["a"]), t0);
    let out = t.push(
        &ev(
            "salt/job/1/ret/a",
            json!({"id": "a", "fun": "state.apply", "success": true,
            "return": ["Rendering SLS 'base:x' failed: bad"], "retcode": 0}),
        ),
        t0,
    );
    let d = out[0].data();
    assert_eq!(d["minions"]["a"]["success"], false);
    assert_eq!(
        d["minions"]["a"]["errors"][0],
        "Rendering SLS 'base:x' failed: bad"
    );
}

#[test]
fn disabled_tracks_nothing() {
    let mut t = JobTracker::new(JobConfig {
        enabled: false,
        ..JobConfig::default()
    });
    let t0 = Instant::now();
    t.push(&new("1", "test.ping", &["a"]), t0);
    assert!(t.push(&ret("1", "a", 0), t0).is_empty());
    assert!(t.flush().is_empty());
}

#[test]
fn stamps_of_every_release_parse() {
    let a = parse_stamp("2026-11-26T13:57:12.227092+00:00").unwrap();
    let b = parse_stamp("2026-11-26T13:57:12.227092").unwrap();
    assert_eq!(a, b);
    assert!(parse_stamp("not a time").is_none());
}

#[test]
fn a_find_job_answer_adds_a_minion_only_when_it_runs_the_job() {
    let mut t = tracker();
    let t0 = Instant::now();
    t.push(&new("1", "cmd.run", &["a"]), t0);
    t.push(&find_job_ret("2", "1", "stranger", false), t0 + S(5));
    t.push(&find_job_ret("2", "1", "late", true), t0 + S(5));
    let out = t.push(&ret("1", "a", 0), t0 + S(6));
    assert!(out.is_empty(), "`late` said it runs the job: it is awaited");
    let out = t.push(&ret("1", "late", 0), t0 + S(7));
    let d = out[0].data();
    assert_eq!(d["counts"]["targeted"], 2);
    assert_eq!(d["minions"].get("stranger"), None);
}

/// The bare-jid announcement syndic `syn` relayed to its master of masters.
fn relayed_announcement(jid: &str, minions: &[&str]) -> Event {
    let mut e = ev(jid, json!({"minions": minions, "_stamp": "x"}));
    e.provenance_mut().syndic = Some(Arc::from("syn"));
    e
}

#[test]
fn a_syndics_announcement_replaces_the_syndic_by_its_minions() {
    // Bare-jid announcements carry a real jid.
    const J1: &str = "20261202010216447276";
    const J2: &str = "20261202010216447277";
    let t0 = Instant::now();
    // A master of masters lists the syndic's id; its minion returns before
    // the relayed announcement (held by the twin filter) names it.
    let mut t = tracker();
    assert!(t.push(&new(J1, "test.ping", &["syn", "m0"]), t0).is_empty());
    assert!(t.push(&ret(J1, "syn-minion-1", 0), t0).is_empty());
    assert!(t.push(&ret(J1, "m0", 0), t0).is_empty());
    let out = t.push(&relayed_announcement(J1, &["syn-minion-1"]), t0 + S(2));
    assert_eq!(out.len(), 1);
    let s = out[0].data();
    assert_eq!(s["counts"]["targeted"], 2, "{s}");
    assert_eq!(s["counts"]["returned"], 2, "{s}");
    assert_eq!(s["closed"], "returned");
    assert!(s["minions"].get("syn").is_none(), "{s}");
    // A job that matched none of the master of masters' own keys
    // (`minions: []`) waits for the syndics' minions.
    let mut t = tracker();
    assert!(t.push(&new(J2, "test.ping", &[]), t0).is_empty());
    assert!(t
        .push(&relayed_announcement(J2, &["syn-minion-1"]), t0)
        .is_empty());
    let out = t.push(&ret(J2, "syn-minion-1", 0), t0 + S(1));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data()["counts"]["returned"], 1);
}

/// The event as the decoder makes it: JSON text, not yet parsed.
fn unparsed(e: &Event) -> Event {
    Event::new(
        e.tag().to_owned(),
        crate::event::JsonText::trusted(e.data_json().to_owned()),
        e.received_at(),
        Arc::from(e.source()),
        None,
    )
}

/// The tracker reads only some members of unparsed data (`classify`): it
/// summarises every kind of job as it does from data already parsed.
#[test]
fn unparsed_data_gives_the_summaries_parsed_data_gives() {
    let state_ret = |id: &str, result: bool| {
        ev(
            &format!("salt/job/3/ret/{id}"),
            json!({"id": id, "fun": "state.apply", "success": true, "retcode": 0,
                   "_stamp": "2026-11-26T13:00:02.000000",
                   "return": {"file_|-x_|-/etc/x_|-managed": {"result": result, "changes": {"diff": "+"},
                       "comment": "  done  ", "name": "/etc/x", "__id__": "x", "__run_num__": 0}}}),
        )
    };
    let jid = "20150227111546144547";
    let events = vec![
        new("1", "test.ping", &["a", "b", "c\"q"]),
        ret("1", "a", 0),
        ret("1", "b", 2),
        find_job_new("2", "1", &["c\"q"]),
        find_job_ret("2", "1", "c\"q", true),
        ev(
            "salt/job/1/ret/x",
            json!({"cmd": "_minion_event", "id": "x", "return": true}),
        ),
        new("3", "state.apply", &["a", "b", "d"]),
        state_ret("a", true),
        state_ret("b", false),
        ev(
            "salt/job/3/ret/d",
            json!({"id": "d", "fun": "state.apply", "success": true,
            "return": ["Rendering SLS 'base:x' failed: bad"], "retcode": 0}),
        ),
        ev(
            jid,
            json!({"minions": ["a"], "_stamp": "2015-02-27T11:15:46.145663"}),
        ),
        ev(
            "new_job",
            json!({"jid": jid, "fun": "test.\u{e9}cho", "arg": ["x"], "tgt": "*",
            "minions": ["a"], "missing": ["z"], "_stamp": "2015-02-27T11:15:46.147099"}),
        ),
        ev(
            jid,
            json!({"jid": jid, "id": "a", "fun": "test.echo", "return": "x",
            "retcode": 1.5, "success": "yes", "_stamp": "2015-02-27T11:15:46.216332"}),
        ),
        ev(
            "salt/run/4/new",
            json!({"fun": "runner.jobs.list_jobs", "fun_args": [{"a": 1}],
            "user": "root", "_stamp": "2026-11-26T13:00:00.000000"}),
        ),
        ev(
            "salt/run/4/ret",
            json!({"fun": "runner.jobs.list_jobs", "success": false,
            "return": {"x": 1}, "_stamp": "2026-11-26T13:00:03.000000"}),
        ),
        new("5", "cmd.run", &["a", "b"]),
        ret("5", "a", 0),
        ev("salt/job/6/new", json!("not an object")),
    ];
    let run = |events: Vec<Event>| {
        let mut t = tracker();
        let t0 = Instant::now();
        let mut out: Vec<Value> = Vec::new();
        for e in &events {
            out.extend(t.push(e, t0).iter().map(|s| s.data().clone()));
        }
        out.extend(t.flush().iter().map(|s| s.data().clone()));
        (out, t.counts())
    };
    let unparsed_events = events.iter().map(unparsed).collect();
    let (parsed, parsed_counts) = run(events);
    let (raw, raw_counts) = run(unparsed_events);
    assert_eq!(parsed.len(), 5, "{parsed:#?}");
    assert_eq!(parsed_counts.minion_fired, 1);
    assert_eq!(parsed, raw);
    assert_eq!(parsed_counts, raw_counts);
}
