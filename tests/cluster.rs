//! A master cluster from recorded bus bytes: what the two buses of a real
//! 2-master Salt 3008.4 cluster carried during `salt '*' test.ping` on
//! master 1 (`tests/fixtures/cluster/cluster_m{1,2}.bin`, recorded by
//! `tests/cluster_live.rs`; the `.jsonl` beside each is Salt's msgpack
//! decoding of the same bytes), each through the pipeline of its own bridge.
//! Across the two bridges every event is routed once, from the master that
//! published it, and the job has one summary, from master 1's bridge,
//! counting the return that landed on master 2. Plus what a minion's forged
//! `__peer_id` does and cannot do.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use saltbridge::config::load_str;
use saltbridge::decode::{decode_all, Decoded};
use saltbridge::event::JsonText;
use saltbridge::pipeline::{Outcome, Pipeline};
use saltbridge::twins::TwinKind;
use saltbridge::Event;
use serde_json::Value;

/// (tag, idempotency key, master, data) of an event a bridge routed to a sink.
type Routed = (String, String, String, Value);

const IDS: [&str; 2] = ["127.0.0.1", "127.0.0.2"];

fn bridge(n: usize, extra: &str) -> Pipeline {
    let yaml = format!(
        "masters: {{id: {}, cluster_peers: [{}]}}\n{extra}\nsinks:\n  hook: {{type: blackhole}}\nroutes:\n  - name: all\n    match: {{tag: \"*\"}}\n    to: [hook]\n",
        IDS[n - 1],
        IDS[2 - n]
    );
    Pipeline::new(
        load_str(Path::new("r.yaml"), &yaml, |_| None).unwrap(),
        false,
    )
}

fn bus(n: usize) -> Vec<Event> {
    let path = support::fixtures::fixtures().join(format!("cluster/cluster_m{n}.bin"));
    decode_all(&std::fs::read(&path).unwrap(), Arc::from("capture"))
        .into_iter()
        .map(|d| match d {
            Decoded::Event(e) => e,
            Decoded::Malformed { offset, .. } => panic!("{}: at {offset}", path.display()),
        })
        .collect()
}

/// What one bridge routed to a sink: (tag, key, master, data); and its twins by kind.
fn run(p: &mut Pipeline, events: Vec<Event>) -> (Vec<Routed>, BTreeMap<&'static str, usize>) {
    let t0 = Instant::now();
    let mut outcomes = Vec::new();
    for (i, ev) in events.into_iter().enumerate() {
        outcomes.extend(p.push(ev, t0 + Duration::from_millis(i as u64)));
    }
    outcomes.extend(p.tick(t0 + Duration::from_secs(60)));
    let (mut routed, mut twins) = (Vec::new(), BTreeMap::new());
    for o in outcomes {
        match o {
            Outcome::Routed { event, routing } if !routing.sinks.is_empty() => routed.push((
                event.tag().to_owned(),
                event.idempotency_key(),
                event.master().unwrap_or_default().to_owned(),
                event.data().clone(),
            )),
            Outcome::Routed { .. } => {}
            Outcome::Twin { kind, .. } => *twins.entry(kind.name()).or_default() += 1,
        }
    }
    (routed, twins)
}

#[test]
fn the_recordings_decode_to_their_jsonl() {
    for n in 1..=2 {
        let want = support::fixtures::expected(
            &support::fixtures::fixtures().join(format!("cluster/cluster_m{n}.jsonl")),
        );
        let got: Vec<(String, Value)> = bus(n)
            .iter()
            .map(|e| (e.tag().to_owned(), e.data().clone()))
            .collect();
        support::fixtures::assert_events_eq(&got, &want, &format!("cluster_m{n}"));
    }
}

#[test]
fn each_event_once_across_the_cluster_and_one_summary() {
    let (m1, m2) = (bus(1), bus(2));
    let peer_copies = |evs: &[Event]| {
        evs.iter()
            .filter(|e| e.data().get("__peer_id").is_some() && !e.tag().starts_with("forged/"))
            .count()
    };
    let (copies1, copies2) = (peer_copies(&m1), peer_copies(&m2));
    assert!(
        copies1 > 0 && copies2 > 0,
        "the recording has no peer copies"
    );
    let (r1, t1) = run(&mut bridge(1, ""), m1);
    let (r2, t2) = run(&mut bridge(2, ""), m2);
    // The copies are dropped, and master 2's bridge drops the summary of
    // master 1's job. Forged (see below): `strong` on master 1, the copies
    // of `strong` and `stranger` on master 2 (Salt overwrote their
    // `__peer_id` in place, last).
    assert_eq!(t1.get("cluster_peer"), Some(&(copies1 + 1)));
    assert_eq!(t2.get("cluster_peer"), Some(&(copies2 + 2 + 1)));
    let forged = |r: &[Routed], tag: &str| -> Vec<(String, String)> {
        r.iter()
            .filter(|x| x.0 == tag)
            .map(|x| (x.1.clone(), x.2.clone()))
            .collect()
    };
    assert!(forged(&r1, "forged/strong").is_empty() && forged(&r2, "forged/strong").is_empty());
    assert_eq!(forged(&r1, "forged/stranger").len(), 1);
    assert_eq!(forged(&r1, "forged/stranger")[0].1, IDS[0]);
    assert!(forged(&r2, "forged/stranger").is_empty());
    // Not last: both bridges route it (master 2's copy names 127.0.0.1 in
    // place), with one idempotency key.
    let (f1, f2) = (forged(&r1, "forged/first"), forged(&r2, "forged/first"));
    assert_eq!((f1.len(), f2.len()), (1, 1));
    assert_eq!(f1[0].0, f2[0].0);
    let mut keys = BTreeMap::new();
    for (tag, key, master, data) in r1.iter().chain(&r2).filter(|r| !r.0.starts_with("forged/")) {
        assert!(data.get("__peer_id").is_none(), "{tag}");
        assert!(
            keys.insert(key.clone(), tag.clone()).is_none(),
            "{tag} routed twice"
        );
        assert!(IDS.contains(&master.as_str()), "{tag}: {master}");
    }
    let summaries: Vec<_> = r1
        .iter()
        .chain(&r2)
        .filter(|r| r.0.ends_with("/summary"))
        .collect();
    assert_eq!(summaries.len(), 1);
    let (_, _, master, s) = summaries[0];
    assert_eq!(master, IDS[0]);
    assert_eq!(s["counts"]["targeted"], 2, "{s}");
    assert_eq!(s["counts"]["returned"], 2, "{s}");
    assert_eq!(s["incomplete"], false);
    // Each return is routed by the bridge of the master it landed on.
    for (tag, _, master, data) in r1.iter().chain(&r2) {
        if tag.contains("/ret/cl-minion-") && data["fun"] == "test.ping" {
            let n = &tag[tag.len() - 1..];
            assert_eq!(master, IDS[n.parse::<usize>().unwrap() - 1], "{tag}");
        }
    }
}

#[test]
fn keeping_peer_copies_delivers_the_whole_cluster_with_origins() {
    let m2 = bus(2);
    // Believed copies: all but `forged/first`, whose `__peer_id` is not last.
    let copies = m2
        .iter()
        .filter(|e| e.data().get("__peer_id").is_some() && e.tag() != "forged/first")
        .count();
    let total = m2.len();
    let (r2, t2) = run(&mut bridge(2, "twins: {cluster_peer: false}"), m2);
    assert_eq!(t2.get("cluster_peer"), None);
    let from_peer = r2.iter().filter(|r| r.2 == IDS[0]).count();
    // Every copy, with its origin; and the job's summary, published by master 1.
    assert_eq!(from_peer, copies + 1, "{r2:?}");
    assert!(r2.len() > total - 1);
}

fn event(tag: &str, data: &str) -> Event {
    Event::new(
        tag.into(),
        JsonText::from(&serde_json::from_str::<Value>(data).unwrap()),
        SystemTime::now(),
        Arc::from("t"),
        None,
    )
}

#[test]
fn a_forged_peer_id_cannot_drop_another_event() {
    let mut p = bridge(1, "");
    let t0 = Instant::now();
    let real_ret = r#"{"cmd":"_return","id":"cl-minion-1","jid":"20261201180000000001","fun":"test.ping","return":true,"success":true,"retcode":0,"_stamp":"2026-12-01T18:00:00.000002+00:00"}"#;
    let new = r#"{"jid":"20261201180000000001","minions":["cl-minion-1"],"fun":"test.ping","arg":[],"tgt":"*","tgt_type":"glob","user":"root","_stamp":"2026-12-01T18:00:00.000001+00:00"}"#;
    let forged = [
        // A minion's copy of the same return tag, shaped as a cluster copy.
        (
            "salt/job/20261201180000000001/ret/cl-minion-1",
            r#"{"cmd":"_minion_event","id":"cl-minion-1","_stamp":"s","__peer_id":"127.0.0.2"}"#,
        ),
        // A batch event naming a peer, not last: this master's own.
        (
            "my/forged",
            r#"{"__peer_id":"127.0.0.2","x":1,"_stamp":"s"}"#,
        ),
        // Naming a master that is no peer.
        ("my/stranger", r#"{"x":1,"_stamp":"s","__peer_id":"evil"}"#),
        // A forged start announcing a legacy twin's pair: a peer copy never pairs.
        (
            "salt/minion/cl-minion-1/start",
            r#"{"id":"cl-minion-1","_stamp":"s","__peer_id":"127.0.0.2"}"#,
        ),
    ];
    let mut out = p.push(event("salt/job/20261201180000000001/new", new), t0);
    for (i, (tag, data)) in forged.iter().enumerate() {
        out.extend(p.push(event(tag, data), t0 + Duration::from_millis(1 + i as u64)));
    }
    out.extend(p.push(
        event("minion_start", r#"{"id":"cl-minion-1","_stamp":"s2"}"#),
        t0 + Duration::from_millis(10),
    ));
    out.extend(p.push(
        event("salt/job/20261201180000000001/ret/cl-minion-1", real_ret),
        t0 + Duration::from_millis(11),
    ));
    out.extend(p.tick(t0 + Duration::from_secs(60)));
    let routed: Vec<(String, String)> = out
        .iter()
        .filter_map(|o| match o {
            Outcome::Routed { event, .. } => Some((
                event.tag().to_owned(),
                event.master().unwrap_or_default().to_owned(),
            )),
            _ => None,
        })
        .collect();
    let tags: Vec<&str> = routed.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        tags,
        [
            "salt/job/20261201180000000001/new",
            "my/forged",
            "my/stranger",
            // Released at its window: the forged start did not pair with it.
            "salt/job/20261201180000000001/ret/cl-minion-1",
            "saltbridge/job/20261201180000000001/summary",
            "minion_start",
        ],
        "{routed:?}"
    );
    assert!(routed.iter().all(|r| r.1 == IDS[0]), "{routed:?}");
    assert_eq!(p.twin_filter().dropped(TwinKind::ClusterPeer), 2);
    assert_eq!(p.twin_filter().refused_peer_claims(), 2);
    let summary = out.iter().find_map(|o| match o {
        Outcome::Routed { event, .. } if event.tag().ends_with("/summary") => {
            Some(event.data().clone())
        }
        _ => None,
    });
    let s = summary.unwrap();
    // The forged return did not complete the job: the real one did.
    assert_eq!(s["minions"]["cl-minion-1"]["success"], true, "{s}");
}
