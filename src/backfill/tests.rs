//! The backfill against a job cache laid out as Salt's `local_cache` writes
//! it (msgpack files in sha256-named folders), and through a pipeline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sha2::Digest;

use super::*;
use crate::pipeline::{Outcome, Pipeline};

fn jid_dir(jobs: &Path, jid: &str) -> PathBuf {
    let h: String = sha2::Sha256::digest(jid.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    jobs.join(&h[..2]).join(&h[2..])
}

fn write_msgpack(path: &Path, v: &Value) {
    std::fs::write(path, rmp_serde::to_vec_named(v).unwrap()).unwrap();
}

fn set_mtime(path: &Path, t: SystemTime) {
    File::open(path).unwrap().set_modified(t).unwrap();
}

/// A job as Salt's `save_load`, `save_minions` and `returner` leave it;
/// `returns` are `(minion, written at)`.
fn cache_job(
    cachedir: &Path,
    jid: &str,
    minions: &[&str],
    returns: &[(&str, SystemTime)],
) -> PathBuf {
    let dir = jid_dir(&cachedir.join("jobs"), jid);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("jid"), jid).unwrap();
    let load = json!({"fun": "cmd.run", "arg": ["sleep 1"], "tgt": "*", "tgt_type": "glob",
                      "user": "root", "jid": jid});
    write_msgpack(&dir.join(".load.p"), &load);
    write_msgpack(&dir.join(".minions.p"), &json!(minions));
    let mut last = SystemTime::UNIX_EPOCH;
    for (m, at) in returns {
        std::fs::create_dir_all(dir.join(m)).unwrap();
        let ret = json!({"return": format!("hello from {m}"), "retcode": 0, "success": true});
        let p = dir.join(m).join("return.p");
        write_msgpack(&p, &ret);
        set_mtime(&p, *at);
        last = last.max(*at);
    }
    set_mtime(&dir, last.max(jid_time(jid)));
    dir
}

fn jid_time(jid: &str) -> SystemTime {
    rebuild::jid_time(jid).unwrap()
}

fn at(jid: &str, secs: u64) -> SystemTime {
    jid_time(jid) + Duration::from_secs(secs)
}

fn backfill<T>(cachedir: &Path) -> Backfill<T> {
    let cfg = BackfillConfig {
        cachedir: Some(cachedir.to_owned()),
        ..BackfillConfig::default()
    };
    Backfill::for_master(cfg, Some(Arc::from("m1"))).unwrap()
}

const JID: &str = "20261201210000000000";

#[test]
fn the_returns_written_in_the_gap_are_routed_and_the_others_only_tracked() {
    let d = tempfile::tempdir().unwrap();
    // Published at 0 s, one return at 1 s (read on the bus), one at 30 s (in the gap).
    cache_job(
        d.path(),
        JID,
        &["a", "b"],
        &[("a", at(JID, 1)), ("b", at(JID, 30))],
    );
    // Done long before the gap.
    let old = "20261201200000000000";
    cache_job(d.path(), old, &["a"], &[("a", at(old, 1))]);
    let mut b: Backfill = backfill(d.path());
    let steps = b.after_gap(at(JID, 20), at(JID, 40));
    let shown: Vec<(String, bool)> = steps
        .iter()
        .map(|s| match s {
            Step::Announce(e) => (e.tag().to_owned(), false),
            Step::Return { event, route } => (event.tag().to_owned(), *route),
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (format!("salt/job/{JID}/new"), false),
            (format!("salt/job/{JID}/ret/a"), false),
            (format!("salt/job/{JID}/ret/b"), true),
        ]
    );
    let Step::Return { event, .. } = &steps[2] else {
        panic!()
    };
    assert!(event.provenance().backfilled);
    assert_eq!(event.master(), Some("m1"));
    let data = event.data();
    assert_eq!(data["return"], json!("hello from b"));
    assert_eq!(data["fun"], json!("cmd.run"));
    assert_eq!(data["fun_args"], json!(["sleep 1"]));
    assert_eq!(data["id"], json!("b"));
    assert_eq!(b.counts().returns, 1);
    assert_eq!(b.counts().bad_files, 0);
}

#[test]
fn a_rebuilt_return_has_the_bus_events_key() {
    let d = tempfile::tempdir().unwrap();
    cache_job(d.path(), JID, &["a"], &[("a", at(JID, 30))]);
    let found = backfill::<()>(d.path()).returns_of(JID, &["a".to_string()]);
    assert_eq!(found.len(), 1);
    let bus = Event::synthetic(
        format!("salt/job/{JID}/ret/a"),
        json!({"cmd": "_return", "id": "a", "fun": "cmd.run", "return": "hello from a",
               "retcode": 0, "success": true, "jid": JID, "_stamp": "2026-12-01T21:00:30.123456+00:00"}),
        Arc::from("ipc:/x"),
    );
    assert_eq!(found[0].idempotency_key(), bus.idempotency_key());
}

#[test]
fn bad_and_oversized_files_are_counted_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    let dir = cache_job(
        d.path(),
        JID,
        &["a", "b", "c"],
        &[("a", at(JID, 30)), ("b", at(JID, 31))],
    );
    std::fs::write(dir.join("a").join("return.p"), b"\xc1\xc1 not msgpack").unwrap();
    std::fs::create_dir_all(dir.join("c")).unwrap();
    std::fs::write(dir.join("c").join("return.p"), vec![0xc4; 4096]).unwrap();
    set_mtime(&dir, at(JID, 31));
    let cfg = BackfillConfig {
        cachedir: Some(d.path().to_owned()),
        max_file_bytes: 1024,
        ..BackfillConfig::default()
    };
    let mut b: Backfill = Backfill::for_master(cfg, None).unwrap();
    let routed: Vec<String> = b
        .after_gap(at(JID, 20), at(JID, 40))
        .into_iter()
        .filter_map(|s| match s {
            Step::Return { event, route: true } => Some(event.tag().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(routed, vec![format!("salt/job/{JID}/ret/b")]);
    assert_eq!(b.counts().bad_files, 2);
}

#[test]
fn another_job_cache_or_no_cachedir_means_no_backfill() {
    let other = BackfillConfig {
        cachedir: Some("/nonexistent".into()),
        master_job_cache: Some("redis".into()),
        ..BackfillConfig::default()
    };
    assert!(Backfill::<()>::for_master(other, None).is_none());
    assert!(Backfill::<()>::for_master(BackfillConfig::default(), None).is_none());
    let off = BackfillConfig {
        enabled: false,
        cachedir: Some("/x".into()),
        ..BackfillConfig::default()
    };
    assert!(Backfill::<()>::for_master(off, None).is_none());
}

#[test]
fn reading_the_cache_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = cache_job(d.path(), JID, &["a"], &[("a", at(JID, 30))]);
    let before = listing(d.path());
    let mut b: Backfill = backfill(d.path());
    b.after_gap(at(JID, 20), at(JID, 40));
    b.returns_of(JID, &["a".to_string()]);
    assert_eq!(listing(d.path()), before);
    assert!(dir.join("a").join("return.p").exists());
}

fn listing(root: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::metadata(&p).unwrap();
        out.push((p.clone(), m.modified().unwrap()));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

fn pipeline(cachedir: &Path) -> Pipeline {
    let yaml = "sinks:\n  out: {type: blackhole}\nroutes:\n  - {name: all, match: {tag: '*'}, to: [out]}\n";
    let config = crate::config::load_str(Path::new("r.yaml"), yaml, |_| None).unwrap();
    Pipeline::new(config, false).with_backfill(Some(backfill(cachedir)))
}

fn routed(out: &[Outcome]) -> Vec<&Event> {
    out.iter()
        .filter_map(|o| match o {
            Outcome::Routed { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

#[test]
fn a_gap_marker_brings_the_lost_returns_and_the_jobs_summary() {
    let d = tempfile::tempdir().unwrap();
    cache_job(
        d.path(),
        JID,
        &["a", "b"],
        &[("a", at(JID, 30)), ("b", at(JID, 31))],
    );
    let mut p = pipeline(d.path());
    let stamp = |t: SystemTime| humantime::format_rfc3339_micros(t).to_string();
    let gap = Event::synthetic(
        crate::source::GAP_TAG,
        json!({"disconnected_at": stamp(at(JID, 0)), "reconnected_at": stamp(at(JID, 40))}),
        Arc::from("ipc:/x"),
    );
    let out = p.push(gap, Instant::now());
    let tags: Vec<&str> = routed(&out).iter().map(|e| e.tag()).collect();
    let summary = format!("saltbridge/job/{JID}/summary");
    let ret_a = format!("salt/job/{JID}/ret/a");
    let ret_b = format!("salt/job/{JID}/ret/b");
    assert_eq!(tags, vec![crate::source::GAP_TAG, &ret_a, &ret_b, &summary]);
    let s = routed(&out)[3].data();
    assert_eq!(s["counts"]["returned"], json!(2));
    assert_eq!(s["counts"]["did_not_return"], json!(0));
    assert_eq!(s["fun"], json!("cmd.run"));
}

#[test]
fn a_silent_minion_is_looked_up_in_the_cache_before_the_summary() {
    let d = tempfile::tempdir().unwrap();
    let mut p = pipeline(d.path());
    let t0 = Instant::now();
    let new = Event::synthetic(
        format!("salt/job/{JID}/new"),
        json!({"jid": JID, "fun": "test.ping", "minions": ["a", "b"], "tgt": "*", "_stamp": "2026-12-01T21:00:00.000000"}),
        Arc::from("ipc:/x"),
    );
    p.push(new, t0);
    // The bus lost b's return (an overflow, say); the cache has it.
    cache_job(d.path(), JID, &["a", "b"], &[("b", at(JID, 1))]);
    let ret_a = Event::synthetic(
        format!("salt/job/{JID}/ret/a"),
        json!({"id": "a", "jid": JID, "fun": "test.ping", "return": true, "success": true, "retcode": 0}),
        Arc::from("ipc:/x"),
    );
    p.push(ret_a, t0);
    let out = p.tick(t0 + Duration::from_secs(3600));
    let events = routed(&out);
    assert_eq!(events[0].tag(), format!("salt/job/{JID}/ret/b"));
    assert!(events[0].provenance().backfilled);
    let s = events[1].data();
    assert_eq!(s["counts"]["did_not_return"], json!(0), "{s}");
    assert_eq!(s["closed"], json!("returned"));
}

#[test]
fn a_trimmed_return_waits_for_its_return_file_on_the_completing_route_only() {
    let d = tempfile::tempdir().unwrap();
    let yaml = "sinks:\n  now: {type: blackhole}\n  whole: {type: blackhole}\nroutes:\n  \
        - {name: now, match: {tag: '*'}, to: [now], continue: true}\n  \
        - {name: whole, match: {tag: '*'}, to: [whole], complete_trimmed: true}\n";
    let config = crate::config::load_str(Path::new("r.yaml"), yaml, |_| None).unwrap();
    let mut p = Pipeline::new(config, false).with_backfill(Some(backfill(d.path())));
    let t0 = Instant::now();
    let trimmed = Event::synthetic(
        format!("salt/job/{JID}/ret/b"),
        json!({"id": "b", "jid": JID, "fun": "cmd.run", "return": "VALUE_TRIMMED", "retcode": 0,
               "success": true, "_stamp": "2026-12-01T21:00:01.000000"}),
        Arc::from("ipc:/x"),
    );
    let key = trimmed.idempotency_key();
    // The event is read before the master wrote `return.p`.
    let out = p.push(trimmed, t0);
    let sinks = |out: &[Outcome]| -> Vec<(String, String)> {
        out.iter()
            .filter_map(|o| match o {
                Outcome::Routed { event, routing } => Some((event, routing)),
                _ => None,
            })
            .flat_map(|(e, r)| {
                let ret = e.data()["return"].as_str().unwrap_or_default().to_owned();
                r.sinks.iter().map(move |s| (s.clone(), ret.clone()))
            })
            .collect()
    };
    assert_eq!(sinks(&out), vec![("now".into(), "VALUE_TRIMMED".into())]);
    assert_eq!(p.held(), 1);
    let due = p.next_deadline().unwrap();
    assert!(sinks(&p.tick(due)).is_empty(), "not written yet");
    cache_job(d.path(), JID, &["b"], &[("b", at(JID, 1))]);
    let due = p.next_deadline().unwrap();
    let out = p.tick(due);
    assert_eq!(sinks(&out), vec![("whole".into(), "hello from b".into())]);
    let Outcome::Routed { event, routing } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(event.idempotency_key(), key);
    assert_eq!(routing.matches.len(), 1);
    assert_eq!(p.held(), 0);
    let counts = p.backfill_counts().unwrap();
    assert_eq!(counts.trimmed.completed, 1);
    assert_eq!(counts.returns, 0);
}
