//! A master of masters from recorded bus bytes: what the bus of a real Salt
//! 3006.29 master of masters (`order_masters: True`) carried while a
//! `salt-syndic` and a minion behind it started, during `salt '*'
//! test.ping` and during a `salt-call event.send` on that minion
//! (`tests/fixtures/syndic/mom.bin`, see the README there; the `.jsonl`
//! beside it is Salt's msgpack decoding of the same bytes). Every event the
//! syndic relayed is on the bus twice, under its tag and as
//! `syndic/syn/<tag>`; through the bridge's pipeline each goes on once,
//! with the syndic's id, and the job's summary counts the minion behind the
//! syndic, not the syndic.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::config::load_str;
use saltbridge::decode::{decode_all, Decoded};
use saltbridge::pipeline::{Outcome, Pipeline};
use saltbridge::Event;
use serde_json::Value;

/// (tag, syndic, data) of an event the bridge routed to a sink.
type Routed = (String, Option<String>, Value);

fn bridge(twins: &str) -> Pipeline {
    let yaml = format!(
        "masters: {{id: mom, order_masters: true}}\ntwins: {{{twins}}}\n\
         sinks:\n  hook: {{type: blackhole}}\nroutes:\n  - name: all\n    match: {{tag: \"*\"}}\n    to: [hook]\n"
    );
    Pipeline::new(
        load_str(Path::new("r.yaml"), &yaml, |_| None).unwrap(),
        false,
    )
}

fn bus() -> Vec<Event> {
    let path = support::fixtures::fixtures().join("syndic/mom.bin");
    decode_all(&std::fs::read(&path).unwrap(), Arc::from("capture"))
        .into_iter()
        .map(|d| match d {
            Decoded::Event(e) => e,
            Decoded::Malformed { offset, .. } => panic!("{}: at {offset}", path.display()),
        })
        .collect()
}

/// The events one millisecond apart, then the twin window and the jobs'
/// deadlines passing; what was routed, and the twins dropped by kind.
fn run(p: &mut Pipeline, events: Vec<Event>) -> (Vec<Routed>, BTreeMap<&'static str, usize>) {
    let t0 = Instant::now();
    let n = events.len() as u64;
    let mut outcomes = Vec::new();
    for (i, ev) in events.into_iter().enumerate() {
        outcomes.extend(p.push(ev, t0 + Duration::from_millis(i as u64)));
    }
    outcomes.extend(p.tick(t0 + Duration::from_millis(n) + Duration::from_secs(3)));
    outcomes.extend(p.tick(t0 + Duration::from_secs(600)));
    let (mut routed, mut twins) = (Vec::new(), BTreeMap::new());
    for o in outcomes {
        match o {
            Outcome::Routed { event, routing } if !routing.sinks.is_empty() => routed.push((
                event.tag().to_owned(),
                event.provenance().syndic.as_deref().map(str::to_owned),
                event.data().clone(),
            )),
            Outcome::Routed { .. } => {}
            Outcome::Twin { kind, .. } => *twins.entry(kind.name()).or_default() += 1,
        }
    }
    (routed, twins)
}

fn tags(r: &[Routed], syndic: Option<&str>) -> Vec<String> {
    r.iter()
        .filter(|x| x.1.as_deref() == syndic)
        .map(|x| x.0.clone())
        .collect()
}

#[test]
fn the_recording_decodes_to_its_jsonl() {
    let want = support::fixtures::expected(&support::fixtures::fixtures().join("syndic/mom.jsonl"));
    let got: Vec<(String, Value)> = bus()
        .iter()
        .map(|e| (e.tag().to_owned(), e.data().clone()))
        .collect();
    support::fixtures::assert_events_eq(&got, &want, "syndic/mom");
    let syn = support::fixtures::expected(&support::fixtures::fixtures().join("syndic/syn.jsonl"));
    assert!(syn.iter().all(|(t, _)| !t.starts_with("syndic/")));
}

#[test]
fn each_relayed_event_once_under_its_tag_with_the_syndic_id() {
    let events = bus();
    let copies = events
        .iter()
        .filter(|e| e.tag().starts_with("syndic/"))
        .count();
    assert_eq!(copies, 6, "the recording's relayed copies");
    let (routed, twins) = run(&mut bridge(""), events);
    assert_eq!(twins.get("syndic"), Some(&copies), "{twins:?}");
    let jid = routed
        .iter()
        .find(|r| r.0.ends_with("/new") && r.2["fun"] == "test.ping")
        .map(|r| r.2["jid"].as_str().unwrap().to_owned())
        .expect("the job's announcement");
    // What the syndic relayed: once each, with its id, in bus order but
    // its bare-jid announcement, which waited for a twin that never comes
    // (the syndic master's `salt/job/<jid>/new` is not relayed).
    // `minion_start` is the legacy twin of the minion's start, relayed too.
    assert_eq!(
        tags(&routed, Some("syn")),
        [
            "salt/minion/syn-minion-1/start".to_owned(),
            "salt/auth".into(),
            "minion/refresh/syn-minion-1".into(),
            "my/tag".into(),
            jid.clone(),
        ]
    );
    assert_eq!(twins.get("minion_start"), Some(&1));
    let my = routed.iter().find(|r| r.0 == "my/tag").unwrap();
    assert_eq!(my.2["data"]["x"], 1);
    // The master of masters' own events: never labelled with a syndic.
    let own = tags(&routed, None);
    for tag in [
        "salt/auth",
        "minion/refresh/syn",
        "syndic_start",
        "salt/syndic/syn/start",
    ] {
        assert!(own.iter().any(|t| t == tag), "{tag} in {own:?}");
    }
    assert!(own.iter().all(|t| !t.starts_with("syndic/")), "{own:?}");
    // Returns come once, from `_syndic_return`.
    let rets = own
        .iter()
        .filter(|t| t.contains("/ret/syn-minion-1"))
        .count();
    assert_eq!(rets, 2, "{own:?}");
    // The summary: the minion behind the syndic returned; the syndic's own
    // id, listed by the master of masters, is no minion.
    let summary = routed
        .iter()
        .find(|r| r.0 == saltbridge::jobs::summary_tag(&jid))
        .unwrap_or_else(|| panic!("no summary in {routed:?}"));
    let s = &summary.2;
    assert_eq!(s["counts"]["targeted"], 1, "{s}");
    assert_eq!(s["counts"]["returned"], 1, "{s}");
    assert_eq!(s["counts"]["did_not_return"], 0, "{s}");
    assert_eq!(s["closed"], "returned", "{s}");
    assert!(s["minions"].get("syn-minion-1").is_some(), "{s}");
    assert!(s["minions"].get("syn").is_none(), "{s}");
}

#[test]
fn keep_syndic_delivers_the_relayed_copies_and_the_same_summary() {
    let (routed, twins) = run(&mut bridge("syndic: keep_syndic"), bus());
    assert_eq!(twins.get("syndic"), Some(&6), "{twins:?}");
    let relayed = tags(&routed, Some("syn"));
    assert!(
        relayed.iter().all(|t| t.starts_with("syndic/syn/")),
        "{relayed:?}"
    );
    for tag in [
        "syndic/syn/my/tag",
        "syndic/syn/salt/auth",
        "syndic/syn/salt/minion/syn-minion-1/start",
    ] {
        assert_eq!(
            relayed.iter().filter(|t| *t == tag).count(),
            1,
            "{tag} in {relayed:?}"
        );
    }
    assert!(!routed.iter().any(|r| r.0 == "my/tag"));
    let s = &routed
        .iter()
        .find(|r| r.0.ends_with("/summary") && r.2["fun"] == "test.ping")
        .expect("summary")
        .2;
    assert_eq!(
        (
            s["counts"]["targeted"].clone(),
            s["counts"]["returned"].clone()
        ),
        (1.into(), 1.into()),
        "{s}"
    );
}

#[test]
fn off_a_master_of_masters_both_copies_go_on() {
    let yaml = "masters: {id: mom}\nsinks:\n  hook: {type: blackhole}\nroutes:\n  - name: all\n    match: {tag: \"*\"}\n    to: [hook]\n";
    let mut p = Pipeline::new(
        load_str(Path::new("r.yaml"), yaml, |_| None).unwrap(),
        false,
    );
    let (routed, twins) = run(&mut p, bus());
    assert_eq!(twins.get("syndic"), None);
    assert_eq!(
        routed.iter().filter(|r| r.0.starts_with("syndic/")).count(),
        6
    );
}
