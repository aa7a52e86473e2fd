//! Unit tests of the twin filter, with data shaped as in the captures.
//! (Over 500 lines: one test file per stage, one section per twin family.)

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
    assert_eq!(counts(&f), [1, 1, 0, 0, 0, 0, 0, 0]);
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
    assert_eq!(
        TwinKind::ALL.map(|k| f.released(k)),
        [1, 1, 1, 1, 1, 0, 0, 0]
    );
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
    assert_eq!(counts(&f), [1, 1, 1, 1, 1, 0, 0, 0]);
    assert_eq!(
        TwinKind::ALL.map(|k| f.released(k)),
        [0, 0, 0, 0, 1, 0, 0, 0]
    );
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
        order_masters: false,
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
    // A beacon carries no `cmd` (measured on 3008.4): known by its tag.
    let beacon = || {
        ev(
            "salt/beacon/m1/load/",
            json!({"id": "m1", "data": {"1m": 0.5}, "_stamp": "s"}),
        )
    };
    let mut other = multi_master("b", Some("a"));
    let mut out = Vec::new();
    for e in [start(), sent(), ret(), auth(), beacon()] {
        out.extend(other.push(e, t0));
    }
    assert_eq!(
        said(&out),
        [
            "-salt/minion/m1/start",
            "-my/tag",
            &format!("+salt/job/{J}/ret/m1"),
            "+salt/auth",
            "-salt/beacon/m1/load/"
        ]
    );
    assert!(matches!(
        out[0],
        TwinVerdict::Dropped {
            kind: TwinKind::OtherMaster,
            ..
        }
    ));
    assert_eq!(other.dropped(TwinKind::OtherMaster), 3);
    // The designated master's bridge, and a bridge without the setting, keep them.
    for mut f in [multi_master("a", Some("a")), multi_master("b", None)] {
        let out: Vec<_> = [start(), sent(), beacon()]
            .into_iter()
            .flat_map(|e| f.push(e, t0))
            .collect();
        assert_eq!(
            said(&out),
            ["+salt/minion/m1/start", "+my/tag", "+salt/beacon/m1/load/"]
        );
    }
    // `twins: {other_master: false}` turns it off.
    let mut cfg = TwinConfig::default();
    cfg.enabled.remove(&TwinKind::OtherMaster);
    let mut off = TwinFilter::new(cfg).with_master(MasterIdentity {
        id: Some(Arc::from("b")),
        peers: Vec::new(),
        minion_events: Some(Arc::from("a")),
        order_masters: false,
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

/// A bridge on a master of masters (`order_masters`) keeping `keep`.
fn mom(keep: SyndicKeep) -> TwinFilter {
    let cfg = TwinConfig {
        syndic: keep,
        ..TwinConfig::default()
    };
    TwinFilter::new(cfg).with_master(MasterIdentity {
        id: Some(Arc::from("mom")),
        order_masters: true,
        ..MasterIdentity::default()
    })
}

/// `my/tag` as a minion behind syndic `syn` sent it, stamped `stamp` by the
/// master of masters, under `tag` (the original or its `syndic/syn/` copy).
fn relayed(tag: &str, stamp: &str) -> Event {
    ev(
        tag,
        json!({"id": "syn-minion-1", "tag": "my/tag", "data": {"x": 1, "__pub_fun": "event.send"},
               "cmd": "_minion_event", "ts": 1796173351, "_stamp": stamp}),
    )
}

/// (`+`/`-`, tag, syndic id) of each verdict.
fn said_syndic(vs: &[TwinVerdict]) -> Vec<(String, Option<String>)> {
    said(vs)
        .into_iter()
        .zip(vs)
        .map(|(s, v)| {
            (
                s,
                v.event().provenance().syndic.as_deref().map(str::to_owned),
            )
        })
        .collect()
}

fn v(s: &str, syndic: Option<&str>) -> (String, Option<String>) {
    (s.to_owned(), syndic.map(str::to_owned))
}

#[test]
fn a_relayed_event_goes_on_once_under_its_tag_with_the_syndic_id() {
    let t0 = Instant::now();
    // 3006.29: the original first, its copy a millisecond later.
    let mut f = mom(SyndicKeep::Original);
    assert!(f.push(relayed("my/tag", "a"), t0).is_empty());
    assert_eq!(f.held(), 1);
    let out = f.push(relayed("syndic/syn/my/tag", "b"), t0 + MS);
    assert_eq!(
        said_syndic(&out),
        [
            v("-syndic/syn/my/tag", Some("syn")),
            v("+my/tag", Some("syn"))
        ]
    );
    assert_eq!((f.held(), f.dropped(TwinKind::Syndic)), (0, 1));
    // 3008.4's source: the copy first.
    let mut f = mom(SyndicKeep::Original);
    assert!(f.push(relayed("syndic/syn/my/tag", "b"), t0).is_empty());
    let out = f.push(relayed("my/tag", "a"), t0 + MS);
    assert_eq!(
        said_syndic(&out),
        [
            v("-syndic/syn/my/tag", Some("syn")),
            v("+my/tag", Some("syn"))
        ]
    );
    assert_eq!(f.next_deadline(), None);
}

#[test]
fn keep_syndic_keeps_the_copy_and_drops_the_original() {
    let t0 = Instant::now();
    let mut f = mom(SyndicKeep::Syndic);
    assert!(f.push(relayed("my/tag", "a"), t0).is_empty());
    let out = f.push(relayed("syndic/syn/my/tag", "b"), t0 + MS);
    assert_eq!(
        said_syndic(&out),
        [
            v("-my/tag", Some("syn")),
            v("+syndic/syn/my/tag", Some("syn"))
        ]
    );
    // The copy first: it goes on at once, the original is dropped on arrival.
    let out = f.push(relayed("syndic/syn/my/tag", "d"), t0 + 2 * MS);
    assert_eq!(said_syndic(&out), [v("+syndic/syn/my/tag", Some("syn"))]);
    let out = f.push(relayed("my/tag", "c"), t0 + 3 * MS);
    assert_eq!(said_syndic(&out), [v("-my/tag", Some("syn"))]);
    assert_eq!(f.dropped(TwinKind::Syndic), 2);
    assert_eq!(f.held(), 0);
}

#[test]
fn the_masters_own_events_wait_the_window_and_jobs_and_returns_do_not() {
    let t0 = Instant::now();
    let mut f = mom(SyndicKeep::Original);
    // No copy follows the master of masters' own minion's event.
    let own = ev(
        "salt/auth",
        json!({"act": "accept", "id": "m1", "result": true, "_stamp": "a"}),
    );
    assert!(f.push(own, t0).is_empty());
    assert_eq!(f.next_deadline(), Some(t0 + WINDOW));
    assert!(f.tick(t0 + WINDOW - MS).is_empty());
    let out = f.tick(t0 + WINDOW);
    assert_eq!(said_syndic(&out), [v("+salt/auth", None)]);
    assert_eq!(f.released(TwinKind::Syndic), 1);
    // What a syndic never relays goes on at once: returns (`retcode`), and
    // tags the master of masters refuses from minions.
    let at_once = [
        ev(&format!("salt/job/{J}/ret/m1"), job_return()),
        ev(&format!("salt/job/{J}/new"), new_job()),
        ev(&format!("salt/job/{J}/publish"), json!({"_stamp": "x"})),
        ev("salt/run/1/new", json!({"fun": "runner.x", "_stamp": "x"})),
        ev("salt/key", json!({"act": "accept", "_stamp": "x"})),
        ev("saltbridge/bus/gap", json!({})),
    ];
    for e in at_once {
        let tag = e.tag().to_owned();
        let t = t0 + 2 * WINDOW;
        assert_eq!(said(&f.push(e, t)), [format!("+{tag}")], "{tag}");
    }
    // The copy of a blacklisted tag has no original (3008.4 fires only it).
    let copy = ev(&format!("syndic/syn/salt/job/{J}/new"), new_job());
    let out = f.push(copy, t0 + 3 * WINDOW);
    assert_eq!(
        said_syndic(&out),
        [v(&format!("+syndic/syn/salt/job/{J}/new"), Some("syn"))]
    );
    // A copy whose original never comes goes on alone, late.
    assert!(f
        .push(relayed("syndic/syn/my/tag", "z"), t0 + 4 * WINDOW)
        .is_empty());
    let out = f.tick(t0 + 5 * WINDOW);
    assert_eq!(said_syndic(&out), [v("+syndic/syn/my/tag", Some("syn"))]);
    assert_eq!(f.dropped(TwinKind::Syndic), 0);
}

#[test]
fn syndic_pairing_is_inert_off_a_master_of_masters_or_switched_off() {
    let t0 = Instant::now();
    let mut cfg = TwinConfig::default();
    cfg.enabled.remove(&TwinKind::Syndic);
    let off = TwinFilter::new(cfg).with_master(MasterIdentity {
        order_masters: true,
        ..MasterIdentity::default()
    });
    for mut f in [filter(), off] {
        let out = f.push(relayed("my/tag", "a"), t0);
        assert_eq!(said_syndic(&out), [v("+my/tag", None)]);
        let out = f.push(relayed("syndic/syn/my/tag", "b"), t0 + MS);
        assert_eq!(said_syndic(&out), [v("+syndic/syn/my/tag", None)]);
    }
}

#[test]
fn syndic_pairing_is_one_to_one_and_by_data() {
    let t0 = Instant::now();
    let mut f = mom(SyndicKeep::Original);
    // The same minion authenticating twice: identical data but `_stamp`.
    let auth = |tag: &str, stamp: &str| {
        ev(
            tag,
            json!({"act": "accept", "id": "syn-minion-1", "pub": "K", "result": true, "_stamp": stamp}),
        )
    };
    let mut out = Vec::new();
    out.extend(f.push(auth("salt/auth", "1"), t0));
    out.extend(f.push(auth("syndic/syn/salt/auth", "2"), t0 + MS));
    out.extend(f.push(auth("salt/auth", "3"), t0 + 2 * MS));
    out.extend(f.push(auth("syndic/syn/salt/auth", "4"), t0 + 3 * MS));
    let stamps: Vec<_> = out
        .iter()
        .map(|v| {
            (
                said(std::slice::from_ref(v))[0].clone(),
                v.event().data()["_stamp"].clone(),
            )
        })
        .collect();
    assert_eq!(
        stamps,
        [
            ("-syndic/syn/salt/auth".to_owned(), json!("2")),
            ("+salt/auth".to_owned(), json!("1")),
            ("-syndic/syn/salt/auth".to_owned(), json!("4")),
            ("+salt/auth".to_owned(), json!("3")),
        ]
    );
    // Other data: no pair; each goes on alone after the window.
    assert!(f.push(auth("salt/auth", "5"), t0 + 4 * MS).is_empty());
    let other = ev(
        "syndic/syn/salt/auth",
        json!({"act": "reject", "id": "syn-minion-1", "_stamp": "6"}),
    );
    assert!(f.push(other, t0 + 5 * MS).is_empty());
    assert_eq!(f.held(), 2);
    assert_eq!(said(&f.flush()), ["+salt/auth", "+syndic/syn/salt/auth"]);
}

#[test]
fn relayed_legacy_twins_pair_only_with_the_same_syndics_events() {
    let t0 = Instant::now();
    let mut f = mom(SyndicKeep::Original);
    let minions = |ids: &[&str], stamp: &str| json!({"minions": ids, "_stamp": stamp});
    let mut new = new_job();
    new["minions"] = json!(["syn"]);
    // As recorded on the master of masters for `salt '*' test.ping`.
    let bus = [
        ev(J, minions(&["syn"], "1")),
        ev(&format!("salt/job/{J}/new"), new),
        ev(J, minions(&["syn-minion-1"], "3")),
        ev(&format!("syndic/syn/{J}"), minions(&["syn-minion-1"], "4")),
    ];
    let mut out = Vec::new();
    for (i, e) in bus.into_iter().enumerate() {
        out.extend(f.push(e, t0 + (i as u32) * MS));
    }
    out.extend(f.tick(t0 + 10 * WINDOW));
    let got: Vec<_> = out
        .iter()
        .map(|v| {
            let (s, syndic) = said_syndic(std::slice::from_ref(v)).remove(0);
            (s, syndic, v.event().data()["minions"].clone())
        })
        .collect();
    let want = [
        (format!("+salt/job/{J}/new"), None, json!(["syn"])),
        (
            format!("-syndic/syn/{J}"),
            Some("syn".into()),
            json!(["syn-minion-1"]),
        ),
        // The master's own bare jid: the twin of its `salt/job/<jid>/new`.
        (format!("-{J}"), None, json!(["syn"])),
        // The syndic's: its `salt/job/<jid>/new` is never relayed.
        (format!("+{J}"), Some("syn".into()), json!(["syn-minion-1"])),
    ];
    assert_eq!(got, want);
    assert_eq!(f.dropped(TwinKind::BareJidNew), 1);
    // A syndic's `minion_start` pairs with its `salt/minion/<id>/start`.
    let mut f = mom(SyndicKeep::Original);
    let mut out = Vec::new();
    // A copy's data is the original's, its `tag` member included.
    let copy = |tag: &str| {
        ev(
            &format!("syndic/syn/{tag}"),
            minion_start(tag, 21).data().clone(),
        )
    };
    let bus = [
        minion_start("minion_start", 21),
        copy("minion_start"),
        minion_start("salt/minion/m1/start", 21),
        copy("salt/minion/m1/start"),
    ];
    for (i, e) in bus.into_iter().enumerate() {
        out.extend(f.push(e, t0 + (i as u32) * MS));
    }
    assert_eq!(
        said(&out),
        [
            "-syndic/syn/minion_start",
            "-syndic/syn/salt/minion/m1/start",
            "-minion_start",
            "+salt/minion/m1/start"
        ]
    );
}

#[test]
fn the_syndic_setting_reads_keep_original_keep_syndic_or_a_bool() {
    let read = |y: &str| serde_saphyr::from_str::<TwinConfig>(y);
    let c = read("syndic: keep_syndic\n").unwrap();
    assert_eq!(c.syndic, SyndicKeep::Syndic);
    assert!(c.enabled.contains(&TwinKind::Syndic));
    let c = read("syndic: keep_original\n").unwrap();
    assert_eq!(c.syndic, SyndicKeep::Original);
    assert!(!read("syndic: false\n")
        .unwrap()
        .enabled
        .contains(&TwinKind::Syndic));
    assert_eq!(read("syndic: true\n").unwrap().syndic, SyndicKeep::Original);
    let e = read("syndic: keep_both\n").unwrap_err().to_string();
    assert!(e.contains("keep_original, keep_syndic"), "{e}");
}
