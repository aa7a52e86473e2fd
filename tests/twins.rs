//! The twin filter on real bus traffic: every capture (3008.4, 3006.29 and
//! the ZeroMQ-era messages) comes out with one event per fact, the exact tags
//! written out below, also when the reader connected or disconnected between
//! two twins, and when the twins arrive in the other order.
//!
//! Events are pushed at the time of their `_stamp` (when Salt fired them), so
//! the window sees the real gaps between events.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use saltbridge::decode::{decode_all, decode_message, BodyStyle, Decoded};
use saltbridge::event::JsonText;
use saltbridge::twins::{TwinConfig, TwinFilter, TwinKind, TwinVerdict};
use saltbridge::Event;
use serde_json::Value;

/// The events of one capture, in bus order. Each event's `source` is its
/// index, so that outputs can be traced back to inputs.
fn events(path: &Path) -> Vec<Event> {
    let raw: Vec<Event> = if path.extension().is_some_and(|e| e == "bin") {
        let bytes = std::fs::read(path).unwrap();
        decode_all(&bytes, Arc::from("capture"))
            .into_iter()
            .map(|d| match d {
                Decoded::Event(e) => e,
                Decoded::Malformed { offset, .. } => panic!("{}: at {offset}", path.display()),
            })
            .collect()
    } else {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let msg = base64::engine::general_purpose::STANDARD
                    .decode(v["b64"].as_str().unwrap())
                    .unwrap();
                let t = SystemTime::UNIX_EPOCH;
                decode_message(Bytes::from(msg), BodyStyle::Zmq, Arc::from("zmq"), t).unwrap()
            })
            .collect()
    };
    raw.into_iter()
        .enumerate()
        .map(|(i, e)| {
            let data = JsonText::from(e.data());
            let at = e.received_at();
            Event::new(e.tag().into(), data, at, Arc::from(i.to_string()), None)
        })
        .collect()
}

/// When Salt fired the event, from its `_stamp`.
fn stamp(ev: &Event) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(ev.data().get("_stamp")?.as_str()?).ok()
}

/// What came out of the filter.
#[derive(Debug, Default)]
struct Run {
    passed: Vec<Event>,
    /// (legacy tag, kind, tag of the twin kept)
    dropped: Vec<(String, TwinKind, String)>,
}

impl Run {
    fn tags(&self) -> Vec<&str> {
        self.passed.iter().map(|e| e.tag()).collect()
    }
}

/// Pushes `events` at their `_stamp` times (`step` apart if `step` is set),
/// ticking at each deadline as a timer would, then flushes.
fn run(events: &[Event], step: Option<Duration>) -> Run {
    let mut f = TwinFilter::new(TwinConfig::default());
    let base = Instant::now();
    let first = events.iter().find_map(stamp);
    let mut now = base;
    let mut out = Run::default();
    let take = |vs: Vec<TwinVerdict>, out: &mut Run| {
        for v in vs {
            match v {
                TwinVerdict::Pass(e) => out.passed.push(e),
                TwinVerdict::Dropped {
                    event,
                    kind,
                    twin_of,
                } => out.dropped.push((event.tag().to_owned(), kind, twin_of)),
            }
        }
    };
    for (i, ev) in events.iter().enumerate() {
        let at = match (step, first, stamp(ev)) {
            (Some(step), _, _) => base + step * i as u32,
            (None, Some(first), Some(s)) => base + s.duration_since(first).unwrap_or_default(),
            _ => now,
        };
        now = now.max(at);
        while let Some(d) = f.next_deadline().filter(|&d| d <= now) {
            take(f.tick(d), &mut out);
        }
        take(f.push(ev.clone(), now), &mut out);
    }
    take(f.flush(), &mut out);
    let dropped: u64 = TwinKind::ALL.iter().map(|&k| f.dropped(k)).sum();
    assert_eq!(dropped as usize, out.dropped.len());
    assert_eq!(
        out.passed.len() + out.dropped.len(),
        events.len(),
        "none lost"
    );
    out
}

/// A capture, the tags that must come out of it, and the (legacy tag, kind)
/// of each event dropped, in order.
type Expected = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, TwinKind)>,
);

/// Every capture and the tags that must come out of it, written out.
fn expectations() -> Vec<Expected> {
    use TwinKind::*;
    vec![
        (
            "3008.4/00_startup.bin",
            vec![
                "salt/auth",
                "minion/refresh/lab-minion",
                "resource/refresh/lab-minion",
                "salt/minion/lab-minion/start",
                "salt/job/20261126135622403713/new",
                "salt/job/20261126135622403713/publish",
                "salt/job/20261126135622403713/ret/lab-minion",
                "salt/job/20261126135625427091/new",
                "salt/job/20261126135625427091/publish",
                "salt/job/20261126135625427091/ret/lab-minion",
            ],
            vec![("minion_start", MinionStart)],
        ),
        (
            "3008.4/a_test_ping.bin",
            vec![
                "salt/job/20261126135646965819/new",
                "salt/job/20261126135646965819/publish",
                "salt/job/20261126135646965819/ret/lab-minion",
            ],
            vec![],
        ),
        (
            "3008.4/b2_timeout_find_job_long.bin",
            vec![
                "salt/job/20261126135734119209/new",
                "salt/job/20261126135734119209/publish",
                "salt/job/20261126135736221531/new",
                "salt/job/20261126135736221531/publish",
                "salt/job/20261126135736221531/ret/lab-minion",
                "salt/job/20261126135746291166/new",
                "salt/job/20261126135746291166/publish",
                "salt/job/20261126135734119209/ret/lab-minion",
                "salt/job/20261126135746291166/ret/lab-minion",
            ],
            vec![],
        ),
        (
            "3008.4/b_timeout_find_job.bin",
            vec![
                "salt/job/20261126135712226574/new",
                "salt/job/20261126135712226574/publish",
                "salt/job/20261126135714324081/new",
                "salt/job/20261126135714324081/publish",
                "salt/job/20261126135714324081/ret/lab-minion",
                "salt/job/20261126135712226574/ret/lab-minion",
            ],
            vec![],
        ),
        (
            "3008.4/c1_state_single.bin",
            vec![
                "salt/job/20261126135755417416/new",
                "salt/job/20261126135755417416/publish",
                "minion/refresh/lab-minion",
                "salt/job/20261126135755417416/ret/lab-minion",
            ],
            vec![],
        ),
        (
            "3008.4/c2_cmd_exit3.bin",
            vec![
                "salt/job/20261126135759714533/new",
                "salt/job/20261126135759714533/publish",
                "salt/job/20261126135759714533/ret/lab-minion",
            ],
            vec![],
        ),
        (
            "3008.4/c3_state_sls_failing.bin",
            vec![
                "salt/job/20261126135807141393/new",
                "salt/job/20261126135807141393/publish",
                "minion/refresh/lab-minion",
                "salt/job/20261126135807141393/ret/lab-minion",
                "salt/job/20261126135807141393/sub/lab-minion/error/state.sls",
            ],
            vec![("test.fail_without_changes", StateFailure)],
        ),
        (
            "3008.4/d1_saltcall_event_send.bin",
            vec![
                "salt/auth",
                "minion/refresh/lab-minion",
                "my/custom/tag",
                "salt/job/20261126135816851925/ret/lab-minion",
            ],
            vec![],
        ),
        (
            "3008.4/d2_saltrun_event_send.bin",
            vec![
                "salt/run/20261126135820998822/new",
                "my/master/tag",
                "salt/run/20261126135820998822/ret",
            ],
            vec![],
        ),
        (
            "3008.4/e_minion_down.bin",
            vec![
                "salt/job/20261126135857839634/new",
                "salt/job/20261126135857839634/publish",
                "salt/job/20261126135900902834/new",
                "salt/job/20261126135900902834/publish",
            ],
            vec![],
        ),
        (
            "3008.4/f_rawfire.bin",
            vec!["raw/fired/small", "raw/fired/bin16", "raw/fired/bin32"],
            vec![],
        ),
        (
            "3008.4/g_ipc_mode_tcp.bin",
            vec![
                "salt/run/20261126140411729646/new",
                "my/master/tag",
                "salt/run/20261126140411729646/ret",
                "raw/fired/tcp",
            ],
            vec![],
        ),
        (
            "3006.29/a_test_ping.bin",
            vec![
                "salt/job/20261126141257294921/new",
                "salt/job/20261126141257294921/ret/lab-minion",
            ],
            vec![("20261126141257294921", BareJidNew)],
        ),
        (
            "legacy/test_ping.padded.jsonl",
            vec![
                "salt/job/20150227111546144547/new",
                "salt/job/20150227111546144547/ret/gs-ssh",
            ],
            vec![
                ("20150227111546144547", BareJidNew),
                ("new_job", NewJob),
                ("20150227111546144547", BareJidRet),
            ],
        ),
        (
            "legacy/test_ping.tagend.jsonl",
            vec![
                "salt/job/20150227111546144547/new",
                "salt/job/20150227111546144547/ret/gs-ssh",
            ],
            vec![
                ("20150227111546144547", BareJidNew),
                ("new_job", NewJob),
                ("20150227111546144547", BareJidRet),
            ],
        ),
    ]
}

/// Every capture file: the `.bin`s the other tests use and the legacy messages.
fn all_captures() -> Vec<String> {
    let mut names: Vec<String> = support::fixtures::captures()
        .into_iter()
        .map(|(bin, _)| {
            let dir = bin.parent().unwrap().file_name().unwrap().to_str().unwrap();
            format!("{dir}/{}", bin.file_name().unwrap().to_str().unwrap())
        })
        .collect();
    for e in std::fs::read_dir(support::fixtures::fixtures().join("legacy")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".jsonl") {
            names.push(format!("legacy/{name}"));
        }
    }
    names.sort();
    names
}

fn load(name: &str) -> Vec<Event> {
    events(&support::fixtures::fixtures().join(name))
}

#[test]
fn every_capture_comes_out_with_one_event_per_fact() {
    let want = expectations();
    let mut covered: Vec<String> = want.iter().map(|w| w.0.to_owned()).collect();
    covered.sort();
    assert_eq!(
        covered,
        all_captures(),
        "every capture has its expected tags"
    );
    for (name, tags, dropped) in want {
        let evs = load(name);
        for step in [None, Some(Duration::from_millis(1))] {
            let out = run(&evs, step);
            assert_eq!(out.tags(), tags, "{name} ({step:?})");
            let got: Vec<(&str, TwinKind)> =
                out.dropped.iter().map(|d| (d.0.as_str(), d.1)).collect();
            assert_eq!(got, dropped, "{name}: dropped");
            for (legacy, _, twin) in &out.dropped {
                assert!(
                    tags.contains(&twin.as_str()),
                    "{name}: {legacy} twin {twin}"
                );
            }
        }
    }
}

/// The fact an event reports, worked out independently of the filter: twins
/// share one, every other event is its own.
fn fact(ev: &Event) -> String {
    let (tag, d) = (ev.tag(), ev.data());
    let s = |k: &str| d.get(k).map(|v| v.to_string()).unwrap_or_default();
    let parts: Vec<&str> = tag.split('/').collect();
    match parts.as_slice() {
        ["salt", "job", jid, "new"] => format!("new {jid}"),
        ["salt", "job", jid, "ret", id] => format!("ret {jid} {id}"),
        ["salt", "job", _, "sub", _, "error", _] => format!("state {}", s("start_time")),
        ["salt", "minion", id, "start"] => format!("start {id}"),
        _ if tag == "new_job" => format!("new {}", d["jid"].as_str().unwrap()),
        _ if tag == "minion_start" => format!("start {}", d["id"].as_str().unwrap()),
        _ if tag.len() == 20 && tag.bytes().all(|b| b.is_ascii_digit()) => match d.get("id") {
            Some(id) => format!("ret {tag} {}", id.as_str().unwrap()),
            None => format!("new {tag}"),
        },
        _ if d.get("__run_num__").is_some() => format!("state {}", s("start_time")),
        _ => format!("event {}", ev.source()),
    }
}

/// Each fact of `input` exactly once in `out`.
fn assert_one_per_fact(input: &[Event], out: &Run, what: &str) {
    let mut want: Vec<String> = input.iter().map(fact).collect();
    want.sort();
    want.dedup();
    let mut got: Vec<String> = out.passed.iter().map(fact).collect();
    got.sort();
    assert_eq!(got, want, "{what}: {:?}", out.tags());
}

#[test]
fn a_reader_that_connects_or_disconnects_between_twins_still_sees_each_fact_once() {
    for name in all_captures() {
        let evs = load(&name);
        for cut in 0..=evs.len() {
            let (before, after) = evs.split_at(cut);
            assert_one_per_fact(after, &run(after, None), &format!("{name} from {cut}"));
            assert_one_per_fact(before, &run(before, None), &format!("{name} to {cut}"));
        }
    }
}

#[test]
fn twins_in_the_other_order_are_still_one_event_per_fact() {
    for name in all_captures() {
        let mut evs = load(&name);
        evs.reverse();
        let out = run(&evs, Some(Duration::from_millis(1)));
        assert_one_per_fact(&evs, &out, &format!("{name} reversed"));
        // Every legacy tag lacks a `/`; every other tag here has one.
        assert!(
            out.passed.iter().all(|e| e.tag().contains('/')),
            "{name}: the namespaced twin is the one kept: {:?}",
            out.tags()
        );
    }
}

/// The capture without the events at indexes `drop`.
fn without(evs: &[Event], drop: &[usize]) -> Vec<Event> {
    evs.iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, e)| e.clone())
        .collect()
}

#[test]
fn the_first_twin_missing_leaves_the_second() {
    // (capture, indexes of the first twin of each pair to remove, tags out)
    let cases: [(&str, &[usize], &[&str]); 4] = [
        (
            "3008.4/00_startup.bin",
            &[2],
            &[
                "salt/auth",
                "minion/refresh/lab-minion",
                "resource/refresh/lab-minion",
                "salt/minion/lab-minion/start",
                "salt/job/20261126135622403713/new",
                "salt/job/20261126135622403713/publish",
                "salt/job/20261126135622403713/ret/lab-minion",
                "salt/job/20261126135625427091/new",
                "salt/job/20261126135625427091/publish",
                "salt/job/20261126135625427091/ret/lab-minion",
            ],
        ),
        (
            "3008.4/c3_state_sls_failing.bin",
            &[4],
            &[
                "salt/job/20261126135807141393/new",
                "salt/job/20261126135807141393/publish",
                "minion/refresh/lab-minion",
                "salt/job/20261126135807141393/ret/lab-minion",
                "salt/job/20261126135807141393/sub/lab-minion/error/state.sls",
            ],
        ),
        (
            "3006.29/a_test_ping.bin",
            &[0],
            &[
                "salt/job/20261126141257294921/new",
                "salt/job/20261126141257294921/ret/lab-minion",
            ],
        ),
        (
            "legacy/test_ping.padded.jsonl",
            &[0, 1, 3],
            &[
                "salt/job/20150227111546144547/new",
                "salt/job/20150227111546144547/ret/gs-ssh",
            ],
        ),
    ];
    for (name, drop, tags) in cases {
        let out = run(&without(&load(name), drop), None);
        assert_eq!(out.tags(), tags, "{name}");
        assert!(out.dropped.is_empty(), "{name}: {:?}", out.dropped);
    }
}

#[test]
fn the_second_twin_missing_releases_the_first_late() {
    // (capture, indexes of the namespaced twin to remove, tags out)
    let cases: [(&str, &[usize], &[&str]); 4] = [
        (
            // minion_start (13:56:22.01) waits 2 s, past the first job's
            // events, and goes out before the second job (13:56:25.42).
            "3008.4/00_startup.bin",
            &[4],
            &[
                "salt/auth",
                "minion/refresh/lab-minion",
                "resource/refresh/lab-minion",
                "salt/job/20261126135622403713/new",
                "salt/job/20261126135622403713/publish",
                "salt/job/20261126135622403713/ret/lab-minion",
                "minion_start",
                "salt/job/20261126135625427091/new",
                "salt/job/20261126135625427091/publish",
                "salt/job/20261126135625427091/ret/lab-minion",
            ],
        ),
        (
            "3008.4/c3_state_sls_failing.bin",
            &[5],
            &[
                "salt/job/20261126135807141393/new",
                "salt/job/20261126135807141393/publish",
                "minion/refresh/lab-minion",
                "salt/job/20261126135807141393/ret/lab-minion",
                "test.fail_without_changes",
            ],
        ),
        (
            "3006.29/a_test_ping.bin",
            &[1],
            &[
                "salt/job/20261126141257294921/ret/lab-minion",
                "20261126141257294921",
            ],
        ),
        (
            // salt/job/J/new and salt/job/J/ret/gs-ssh lost: new_job stands
            // in for the job's announcement, the bare-jid {"minions"} goes.
            "legacy/test_ping.tagend.jsonl",
            &[2, 4],
            &["new_job", "20150227111546144547"],
        ),
    ];
    for (name, drop, tags) in cases {
        let out = run(&without(&load(name), drop), None);
        assert_eq!(out.tags(), tags, "{name}");
        let want: &[(String, TwinKind, String)] = if name.starts_with("legacy/") {
            &[(
                "20150227111546144547".into(),
                TwinKind::BareJidNew,
                "new_job".into(),
            )]
        } else {
            &[]
        };
        assert_eq!(out.dropped, want, "{name}");
    }
}
