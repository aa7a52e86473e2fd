//! Unit tests of the twin filter, with data shaped as in the captures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

const J: &str = "20261126141257294921";
const MS: Duration = Duration::from_millis(1);
const WINDOW: Duration = Duration::from_secs(2);

fn ev(tag: &str, data: Value) -> Event {
    Event::synthetic(tag, data, Arc::from("test"))
}

fn filter() -> TwinFilter {
    TwinFilter::new(TwinConfig::default())
}

fn without(kind: TwinKind) -> TwinFilter {
    let mut cfg = TwinConfig::default();
    cfg.enabled.remove(&kind);
    TwinFilter::new(cfg)
}

/// What a verdict list says, in order: `+tag` passed, `-tag` dropped.
fn said(vs: &[TwinVerdict]) -> Vec<String> {
    vs.iter()
        .map(|v| match v {
            TwinVerdict::Pass(e) => format!("+{}", e.tag()),
            TwinVerdict::Dropped { event, .. } => format!("-{}", event.tag()),
        })
        .collect()
}

fn state_result() -> Value {
    json!({
        "name": "bad_state", "changes": {}, "result": false, "comment": "Failure!",
        "__sls__": "failing", "__run_num__": 1, "start_time": "13:58:07.831275",
        "duration": 0.805, "__id__": "bad_state", "retcode": 2,
        "_stamp": "2026-11-26T13:58:07.860051+00:00"
    })
}

fn state_error(minion: &str, result: &Value) -> Event {
    let mut data = result.clone();
    let o = data.as_object_mut().unwrap();
    o.insert("_stamp".into(), "2026-11-26T13:58:07.868173+00:00".into());
    for (k, v) in [
        ("jid", json!(J)),
        ("id", json!(minion)),
        ("success", json!(false)),
        ("return", json!("Error: test.fail_without_changes")),
        ("fun", json!("state.sls")),
        ("user", json!("root")),
    ] {
        o.insert(k.into(), v);
    }
    ev(&format!("salt/job/{J}/sub/{minion}/error/state.sls"), data)
}

fn job_return() -> Value {
    json!({"cmd": "_return", "id": "m1", "success": true, "return": true, "retcode": 0,
           "jid": J, "fun": "test.ping", "fun_args": [], "_stamp": "x"})
}

fn new_job() -> Value {
    json!({"jid": J, "tgt_type": "glob", "tgt": "*", "user": "root", "fun": "test.ping",
           "arg": [], "minions": ["m1"], "_stamp": "x"})
}

fn minion_start(tag: &str, second: u32) -> Event {
    ev(
        tag,
        json!({"id": "m1", "cmd": "_minion_event", "pretag": null,
               "data": format!("Minion m1 started at Thu Nov 26 13:56:{second} 2026"),
               "tag": tag, "ts": 1795701381, "_stamp": "x"}),
    )
}

/// (kind, legacy event, its namespaced twin) for every kind.
fn pairs() -> Vec<(TwinKind, Event, Event)> {
    let new_tag = format!("salt/job/{J}/new");
    vec![
        (
            TwinKind::BareJidNew,
            ev(J, json!({"minions": ["m1"], "_stamp": "x"})),
            ev(&new_tag, new_job()),
        ),
        (
            TwinKind::NewJob,
            ev("new_job", new_job()),
            ev(&new_tag, new_job()),
        ),
        (
            TwinKind::BareJidRet,
            ev(J, job_return()),
            ev(&format!("salt/job/{J}/ret/m1"), job_return()),
        ),
        (
            TwinKind::StateFailure,
            ev("test.fail_without_changes", state_result()),
            state_error("m1", &state_result()),
        ),
        (
            TwinKind::MinionStart,
            minion_start("minion_start", 21),
            minion_start("salt/minion/m1/start", 22),
        ),
    ]
}

fn counts(f: &TwinFilter) -> Vec<u64> {
    TwinKind::ALL.iter().map(|&k| f.dropped(k)).collect()
}

#[test]
fn each_kind_legacy_first_drops_the_legacy_event() {
    for (kind, legacy, twin) in pairs() {
        let (lt, tt) = (legacy.tag().to_owned(), twin.tag().to_owned());
        let mut f = filter();
        let t0 = Instant::now();
        assert!(f.push(legacy, t0).is_empty(), "{kind}: legacy is held");
        assert_eq!(f.held(), 1);
        assert_eq!(f.next_deadline(), Some(t0 + WINDOW));
        let out = f.push(twin, t0 + 5 * MS);
        assert_eq!(said(&out), [format!("-{lt}"), format!("+{tt}")], "{kind}");
        match &out[0] {
            TwinVerdict::Dropped {
                kind: k, twin_of, ..
            } => {
                assert_eq!((*k, twin_of.as_str()), (kind, tt.as_str()));
            }
            v => panic!("{kind}: {v:?}"),
        }
        assert_eq!((f.held(), f.next_deadline()), (0, None));
        assert_eq!(f.dropped(kind), 1);
        assert_eq!(
            counts(&f).iter().sum::<u64>(),
            1,
            "{kind}: only its own count"
        );
        assert!(f.tick(t0 + 10 * WINDOW).is_empty());
        assert!(f.flush().is_empty());
    }
}

#[test]
fn each_kind_namespaced_first_drops_the_late_legacy_event() {
    for (kind, legacy, twin) in pairs() {
        let (lt, tt) = (legacy.tag().to_owned(), twin.tag().to_owned());
        let mut f = filter();
        let t0 = Instant::now();
        assert_eq!(said(&f.push(twin, t0)), [format!("+{tt}")], "{kind}");
        assert_eq!(f.held(), 0);
        let out = f.push(legacy, t0 + WINDOW - MS);
        assert_eq!(said(&out), [format!("-{lt}")], "{kind}");
        match &out[0] {
            TwinVerdict::Dropped { twin_of, .. } => assert_eq!(twin_of, &tt),
            v => panic!("{kind}: {v:?}"),
        }
        assert_eq!(f.dropped(kind), 1, "{kind}");
        assert_eq!(f.held(), 0);
    }
}

#[test]
fn legacy_without_twin_is_released_when_the_window_ends_and_not_before() {
    for (kind, legacy, _) in pairs() {
        let lt = legacy.tag().to_owned();
        let mut f = filter();
        let t0 = Instant::now();
        assert!(f.push(legacy, t0).is_empty());
        assert!(f.tick(t0 + WINDOW - MS).is_empty(), "{kind}: too early");
        assert_eq!(f.held(), 1);
        assert_eq!(said(&f.tick(t0 + WINDOW)), [format!("+{lt}")], "{kind}");
        assert_eq!((f.held(), f.dropped(kind), f.released(kind)), (0, 0, 1));
    }
}

#[test]
fn an_expired_hold_is_released_before_the_next_event_and_a_late_twin_passes() {
    let (kind, legacy, twin) = pairs().remove(4);
    let mut f = filter();
    let t0 = Instant::now();
    f.push(legacy, t0);
    let out = f.push(twin, t0 + WINDOW);
    assert_eq!(
        said(&out),
        ["+minion_start", "+salt/minion/m1/start"],
        "twins further apart than the window both pass"
    );
    assert_eq!((f.dropped(kind), f.released(kind)), (0, 1));
}

#[test]
fn namespaced_without_legacy_passes_at_once_and_is_forgotten_after_the_window() {
    let (_, legacy, twin) = pairs().remove(3);
    let mut f = filter();
    let t0 = Instant::now();
    assert_eq!(said(&f.push(twin, t0)).len(), 1);
    assert_eq!((f.held(), f.remembered(), f.next_deadline()), (0, 1, None));
    assert!(
        f.push(legacy, t0 + WINDOW).is_empty(),
        "key forgotten: held"
    );
    assert_eq!((f.held(), f.remembered()), (1, 0));
}

#[test]
fn a_kind_switched_off_passes_both_twins_untouched() {
    for (kind, legacy, twin) in pairs() {
        let (lt, tt) = (legacy.tag().to_owned(), twin.tag().to_owned());
        for legacy_first in [true, false] {
            let mut f = without(kind);
            let t0 = Instant::now();
            let (a, b) = if legacy_first {
                (legacy.clone(), twin.clone())
            } else {
                (twin.clone(), legacy.clone())
            };
            let mut out = said(&f.push(a, t0));
            out.extend(said(&f.push(b, t0 + MS)));
            let want = if legacy_first {
                [format!("+{lt}"), format!("+{tt}")]
            } else {
                [format!("+{tt}"), format!("+{lt}")]
            };
            assert_eq!(out, want, "{kind} off");
            assert_eq!((f.held(), f.dropped(kind)), (0, 0));
        }
    }
}

#[test]
fn switching_one_kind_off_leaves_the_others_on() {
    let mut f = without(TwinKind::NewJob);
    let t0 = Instant::now();
    assert!(f.push(ev(J, json!({"minions": ["m1"]})), t0).is_empty());
    assert_eq!(said(&f.push(ev("new_job", new_job()), t0)), ["+new_job"]);
    let out = f.push(ev(&format!("salt/job/{J}/new"), new_job()), t0 + MS);
    assert_eq!(said(&out), [format!("-{J}"), format!("+salt/job/{J}/new")]);
}

#[test]
fn user_events_that_look_like_twins_are_not_dropped() {
    let t0 = Instant::now();
    let mut f = filter();
    // Not shaped like a Salt legacy event: passes at once.
    for (tag, data) in [
        ("my.tag", json!({"x": 1})),
        ("salt.foo", json!({"result": false})),
        ("my.tag", json!({"result": true, "__run_num__": 1})),
        ("my.tag", json!("not a map")),
        (J, json!({"x": 1})),
        (J, json!({"minions": ["m1"], "extra": 1})),
        (
            J,
            json!({"id": "m1", "return": true, "jid": "20261126141257294999"}),
        ),
        ("new_job", json!({"no": "jid"})),
        ("minion_start", json!({"id": 5})),
        ("saltbridge/bus/gap", json!({"seconds": 1})),
    ] {
        assert_eq!(said(&f.push(ev(tag, data), t0)), [format!("+{tag}")]);
    }
    assert_eq!(f.held(), 0);
    // Shaped like one but its twin never comes: late, never lost.
    f.push(ev("my.tag", state_result()), t0);
    f.push(ev(J, json!({"minions": []})), t0 + MS);
    // A different state's failure, and another job's /new, are not its twin.
    let mut other = state_result();
    other["__run_num__"] = json!(2);
    let out = f.push(state_error("m1", &other), t0 + 2 * MS);
    assert_eq!(said(&out).len(), 1);
    let out = f.push(
        ev("salt/job/20261126141257294922/new", new_job()),
        t0 + 3 * MS,
    );
    assert_eq!(said(&out).len(), 1);
    assert_eq!(
        said(&f.tick(t0 + WINDOW + MS)),
        ["+my.tag", &format!("+{J}")]
    );
    assert_eq!(counts(&f), [0; TwinKind::ALL.len()]);
}

#[test]
fn pairing_is_one_to_one() {
    let t0 = Instant::now();
    // The same state failing identically on two minions, interleaved by two
    // master workers: each error event takes one legacy event.
    let mut f = filter();
    f.push(ev("test.fail_without_changes", state_result()), t0);
    f.push(ev("test.fail_without_changes", state_result()), t0);
    assert_eq!(f.held(), 2);
    let a = f.push(state_error("m1", &state_result()), t0 + MS);
    let b = f.push(state_error("m2", &state_result()), t0 + MS);
    assert_eq!(said(&a).len() + said(&b).len(), 4);
    assert_eq!((f.held(), f.dropped(TwinKind::StateFailure)), (0, 2));
    // A return sent twice, namespaced first each time: two drops, no more.
    let mut f = filter();
    let ret = ev(&format!("salt/job/{J}/ret/m1"), job_return());
    for _ in 0..2 {
        f.push(ret.clone(), t0);
        f.push(ret.clone(), t0);
    }
    assert!(f.push(ev(J, job_return()), t0).len() == 1);
    assert!(f.push(ev(J, job_return()), t0).len() == 1);
    assert!(f.push(ev(J, job_return()), t0).len() == 1);
    assert!(f.push(ev(J, job_return()), t0).len() == 1);
    assert!(f.push(ev(J, job_return()), t0).is_empty(), "fifth is held");
    assert_eq!(f.dropped(TwinKind::BareJidRet), 4);
}

#[test]
fn one_new_event_is_the_twin_of_both_bare_jid_and_new_job() {
    let t0 = Instant::now();
    let new = ev(&format!("salt/job/{J}/new"), new_job());
    // 2014.7 order: bare jid, new_job, salt/job/J/new.
    let mut f = filter();
    f.push(ev(J, json!({"minions": ["m1"]})), t0);
    f.push(ev("new_job", new_job()), t0);
    let out = f.push(new.clone(), t0 + MS);
    assert_eq!(
        said(&out),
        [
            format!("-{J}"),
            "-new_job".into(),
            format!("+salt/job/{J}/new")
        ]
    );
    // Namespaced first: remembered once per kind.
    let mut f = filter();
    f.push(new, t0);
    assert_eq!(f.remembered(), 2);
    assert_eq!(said(&f.push(ev("new_job", new_job()), t0)), ["-new_job"]);
    let out = f.push(ev(J, json!({"minions": ["m1"]})), t0);
    assert_eq!(said(&out), [format!("-{J}")]);
    assert_eq!(counts(&f), [1, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn new_job_stands_in_when_salt_job_new_never_comes() {
    let t0 = Instant::now();
    let bare = || ev(J, json!({"minions": ["m1"]}));
    // In bus order: the bare-jid event waits longest and goes first.
    let mut f = filter();
    f.push(bare(), t0);
    f.push(ev("new_job", new_job()), t0 + MS);
    assert_eq!(said(&f.tick(t0 + WINDOW)), [format!("-{J}")]);
    assert_eq!(said(&f.tick(t0 + WINDOW + MS)), ["+new_job"]);
    // Reordered: new_job expires first and takes the bare-jid event along.
    let mut f = filter();
    f.push(ev("new_job", new_job()), t0);
    f.push(bare(), t0 + MS);
    assert_eq!(said(&f.tick(t0 + WINDOW)), ["+new_job", &format!("-{J}")]);
    // And at the end of input.
    let mut f = filter();
    f.push(bare(), t0);
    f.push(ev("new_job", new_job()), t0);
    assert_eq!(said(&f.flush()), [format!("-{J}"), "+new_job".into()]);
    assert_eq!(
        (
            f.dropped(TwinKind::BareJidNew),
            f.released(TwinKind::NewJob)
        ),
        (1, 1)
    );
    // Another job's new_job is not a stand-in.
    let mut f = filter();
    f.push(bare(), t0);
    let mut other = new_job();
    other["jid"] = json!("20261126141257294999");
    f.push(ev("new_job", other), t0);
    assert_eq!(said(&f.flush()), [format!("+{J}"), "+new_job".into()]);
}

#[test]
fn eviction_at_the_entry_cap_releases_the_oldest_held_event() {
    let t0 = Instant::now();
    let mut f = TwinFilter::new(TwinConfig {
        max_entries: 3,
        ..TwinConfig::default()
    });
    let jids: Vec<String> = (0..5).map(|i| format!("2026112614125729492{i}")).collect();
    for j in &jids[..3] {
        assert!(f.push(ev(j, json!({"minions": []})), t0).is_empty());
    }
    let out = f.push(ev(&jids[3], json!({"minions": []})), t0);
    assert_eq!(said(&out), [format!("+{}", jids[0])]);
    assert_eq!(
        (f.held(), f.evicted(), f.released(TwinKind::BareJidNew)),
        (3, 1, 1)
    );
    // A remembered key counts too; the oldest entry goes whichever it is.
    let out = f.push(ev("salt/minion/m9/start", json!({})), t0);
    assert_eq!(
        said(&out),
        [format!("+{}", jids[1]), "+salt/minion/m9/start".into()]
    );
    // Held j2 still pairs (its new_job side is remembered: 3 entries).
    let out = f.push(ev(&format!("salt/job/{}/new", jids[2]), json!({})), t0);
    let new2 = format!("+salt/job/{}/new", jids[2]);
    assert_eq!(said(&out), [format!("-{}", jids[2]), new2]);
    // The evicted event's twin passes alone; remembering its two kinds
    // pushes out held j3 and the remembered m9 key.
    let out = f.push(ev(&format!("salt/job/{}/new", jids[0]), json!({})), t0);
    let new0 = format!("+salt/job/{}/new", jids[0]);
    assert_eq!(said(&out), [format!("+{}", jids[3]), new0]);
    assert_eq!((f.held(), f.remembered(), f.evicted()), (0, 3, 4));
    assert_eq!(f.dropped(TwinKind::BareJidNew), 1);
}

#[test]
fn eviction_at_the_byte_cap_releases_the_oldest_held_event() {
    let t0 = Instant::now();
    let mut f = TwinFilter::new(TwinConfig {
        max_held_bytes: 300,
        ..TwinConfig::default()
    });
    let (a, b) = ("20261126141257294920", "20261126141257294921");
    let (c, d) = ("20261126141257294922", "20261126141257294923");
    // 38 bytes each (tag and JSON data): both held.
    assert!(f.push(ev(a, json!({"minions": ["m1"]})), t0).is_empty());
    assert!(f.push(ev(b, json!({"minions": ["m1"]})), t0).is_empty());
    // 235 bytes: 311 in all, so the oldest goes.
    let out = f.push(ev(c, json!({"minions": ["x".repeat(200)]})), t0);
    assert_eq!(
        (said(&out), f.held(), f.evicted()),
        (vec![format!("+{a}")], 2, 1)
    );
    // Larger than the cap alone: everything goes, in arrival order.
    let out = f.push(ev(d, json!({"minions": ["x".repeat(400)]})), t0);
    let want: Vec<String> = [b, c, d].iter().map(|t| format!("+{t}")).collect();
    assert_eq!((said(&out), f.held(), f.evicted()), (want, 0, 4));
}

#[test]
fn flush_releases_in_arrival_order() {
    let t0 = Instant::now();
    let mut f = filter();
    let other = "20261126141257294999";
    let tags = [
        other,
        "new_job",
        "minion_start",
        "test.fail_without_changes",
        J,
    ];
    f.push(ev(other, json!({"minions": ["m1"]})), t0);
    f.push(ev(tags[1], new_job()), t0 + MS);
    f.push(minion_start("minion_start", 21), t0 + 2 * MS);
    f.push(ev(tags[3], state_result()), t0 + 3 * MS);
    f.push(ev(J, job_return()), t0 + 4 * MS);
    assert_eq!(f.held(), 5);
    let want: Vec<String> = tags.iter().map(|t| format!("+{t}")).collect();
    assert_eq!(said(&f.flush()), want);
    assert_eq!((f.held(), f.remembered(), f.next_deadline()), (0, 0, None));
    assert_eq!(TwinKind::ALL.map(|k| f.released(k)), [1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(counts(&f), [0; TwinKind::ALL.len()]);
}

#[test]
fn counts_per_kind() {
    let t0 = Instant::now();
    let mut f = filter();
    for (i, (_, legacy, twin)) in pairs().into_iter().enumerate() {
        let t = t0 + (i as u32) * 10 * WINDOW;
        f.push(legacy, t);
        f.push(twin, t + MS);
    }
    let (_, legacy, _) = pairs().remove(4);
    f.push(legacy, t0 + 100 * WINDOW);
    f.flush();
    assert_eq!(counts(&f), [1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(TwinKind::ALL.map(|k| f.released(k)), [0, 0, 0, 0, 1, 0, 0]);
}

#[test]
fn a_clock_going_backwards_is_treated_as_standing_still() {
    let t0 = Instant::now();
    let mut f = filter();
    f.push(ev("minion_start", json!({"id": "m1"})), t0 + WINDOW);
    assert!(f.tick(t0).is_empty());
    assert!(f.push(ev("x/y", json!({})), t0).len() == 1);
    assert_eq!(f.next_deadline(), Some(t0 + 2 * WINDOW));
    assert_eq!(said(&f.tick(t0 + 2 * WINDOW)), ["+minion_start"]);
}

#[test]
fn kind_names_match_serde() {
    for k in TwinKind::ALL {
        let s = serde_json::to_value(k).unwrap();
        assert_eq!(s, json!(k.name()));
        assert_eq!(TwinKind::from_name(k.name()), Some(k));
        assert_eq!(serde_json::from_value::<TwinKind>(s).unwrap(), k);
    }
    assert_eq!(TwinKind::from_name("nope"), None);
}

/// A bridge of master `id` where `masters.minion_events` is `designated`.
fn multi_master(id: &str, designated: Option<&str>) -> TwinFilter {
    filter().with_master(MasterIdentity {
        id: Some(Arc::from(id)),
        peers: Vec::new(),
        minion_events: designated.map(Arc::from),
    })
}

#[test]
fn minion_fired_events_go_only_through_the_designated_masters_bridge() {
    let t0 = Instant::now();
    let start = || {
        ev(
            "salt/minion/m1/start",
            json!({"id": "m1", "cmd": "_minion_event", "pretag": null, "data": "Minion m1 started", "_stamp": "s"}),
        )
    };
    let sent = || {
        ev(
            "my/tag",
            json!({"id": "m1", "tag": "my/tag", "data": {"x": 1}, "cmd": "_minion_event", "_stamp": "s"}),
        )
    };
    let ret = || {
        ev(
            &format!("salt/job/{J}/ret/m1"),
            json!({"cmd": "_return", "id": "m1", "return": true}),
        )
    };
    let auth = || {
        ev(
            "salt/auth",
            json!({"act": "accept", "id": "m1", "_stamp": "s"}),
        )
    };
    let mut other = multi_master("b", Some("a"));
    let mut out = Vec::new();
    for e in [start(), sent(), ret(), auth()] {
        out.extend(other.push(e, t0));
    }
    assert_eq!(
        said(&out),
        [
            "-salt/minion/m1/start",
            "-my/tag",
            &format!("+salt/job/{J}/ret/m1"),
            "+salt/auth"
        ]
    );
    assert!(matches!(
        out[0],
        TwinVerdict::Dropped {
            kind: TwinKind::OtherMaster,
            ..
        }
    ));
    assert_eq!(other.dropped(TwinKind::OtherMaster), 2);
    // The designated master's bridge, and a bridge without the setting, keep them.
    for mut f in [multi_master("a", Some("a")), multi_master("b", None)] {
        let out: Vec<_> = [start(), sent()]
            .into_iter()
            .flat_map(|e| f.push(e, t0))
            .collect();
        assert_eq!(said(&out), ["+salt/minion/m1/start", "+my/tag"]);
    }
    // `twins: {other_master: false}` turns it off.
    let mut cfg = TwinConfig::default();
    cfg.enabled.remove(&TwinKind::OtherMaster);
    let mut off = TwinFilter::new(cfg).with_master(MasterIdentity {
        id: Some(Arc::from("b")),
        peers: Vec::new(),
        minion_events: Some(Arc::from("a")),
    });
    assert_eq!(said(&off.push(sent(), t0)), ["+my/tag"]);
    // A return whose data merely mentions `_minion_event` is not minion-fired.
    let tricky = ev(
        "salt/job/1/ret/m1",
        json!({"cmd": "_return", "return": "_minion_event"}),
    );
    let mut f = multi_master("b", Some("a"));
    assert_eq!(said(&f.push(tricky, t0)), ["+salt/job/1/ret/m1"]);
}
