//! `validate`, `explain` and `test` as a user runs them, and hot reload.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_saltbridge"));
    c.env("RUST_LOG", "info");
    c
}

fn top() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_says_ok_or_exits_78_with_located_errors() {
    let out = bin()
        .args(["validate", "-c"])
        .arg(top().join("routes.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (4 routes, 3 sinks)"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("routes.yaml");
    std::fs::write(&bad, "sinks:\n  chat: {type: webhook}\nroutes:\n  - name: a\n    contine: true\n    to: [caht]\n").unwrap();
    let out = bin().args(["validate", "-c"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:5:5: routes[0].contine: unknown field `contine`",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `continue`?"), "{err}");
}

fn explain_json(capture: &str) -> Vec<String> {
    let out = bin()
        .args(["explain", "-f", "json", "-c"])
        .arg(top().join("routes.yaml"))
        .args(["--master-id", "lab-master", "--source"])
        .arg(format!(
            "capture:{}",
            top().join("tests/fixtures").join(capture).display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn line(
    tag: &str,
    twin_of: Option<&str>,
    dropped_by: Option<&str>,
    routes: &[&str],
    sinks: &[&str],
) -> String {
    serde_json::json!({"tag": tag, "twin_of": twin_of, "dropped_by": dropped_by, "routes": routes, "sinks": sinks,
        "master": "lab-master", "syndic": null, "backfilled": false}).to_string()
}

#[test]
fn explain_json_on_real_captures() {
    let j = "salt/job/20261126135807141393";
    assert_eq!(
        explain_json("3008.4/c3_state_sls_failing.bin"),
        vec![
            line(&format!("{j}/new"), None, None, &[], &[]),
            line(&format!("{j}/publish"), None, None, &[], &[]),
            line(
                "minion/refresh/lab-minion",
                None,
                Some("drop.minion_refresh"),
                &[],
                &[]
            ),
            line(
                &format!("{j}/ret/lab-minion"),
                None,
                None,
                &["job-returns-to-kafka", "failed-jobs-to-chat"],
                &["pipeline", "chat"]
            ),
            line(
                "saltbridge/job/20261126135807141393/summary",
                None,
                None,
                &["failed-job-summaries-to-chat"],
                &["chat"]
            ),
            line(
                "test.fail_without_changes",
                Some("state_failure"),
                None,
                &[],
                &[]
            ),
            line(
                &format!("{j}/sub/lab-minion/error/state.sls"),
                None,
                None,
                &[],
                &[]
            ),
        ]
    );
    let (j, f) = (
        "salt/job/20261126135712226574",
        "salt/job/20261126135714324081",
    );
    assert_eq!(
        explain_json("3008.4/b_timeout_find_job.bin"),
        vec![
            line(&format!("{j}/new"), None, None, &[], &[]),
            line(&format!("{j}/publish"), None, None, &[], &[]),
            line(&format!("{f}/new"), None, Some("drop.find_job"), &[], &[]),
            line(
                &format!("{f}/publish"),
                None,
                Some("drop.find_job"),
                &[],
                &[]
            ),
            line(
                &format!("{f}/ret/lab-minion"),
                None,
                Some("drop.find_job"),
                &[],
                &[]
            ),
            line(
                &format!("{j}/ret/lab-minion"),
                None,
                None,
                &["job-returns-to-kafka"],
                &["pipeline"]
            ),
            line(
                "saltbridge/job/20261126135712226574/summary",
                None,
                None,
                &[],
                &[]
            ),
        ]
    );
    let startup = explain_json("3008.4/00_startup.bin");
    assert_eq!(
        startup[0],
        line("salt/auth", None, Some("drop.auth"), &[], &[])
    );
    assert_eq!(
        startup[3],
        line("minion_start", Some("minion_start"), None, &[], &[])
    );
    assert_eq!(
        startup[4],
        line(
            "salt/minion/lab-minion/start",
            None,
            None,
            &["minion-start-to-cmdb"],
            &["cmdb"]
        )
    );
    let j = "20261126141257294921";
    assert_eq!(
        explain_json("3006.29/a_test_ping.bin"),
        vec![
            line(j, Some("bare_jid_new"), None, &[], &[]),
            line(&format!("salt/job/{j}/new"), None, None, &[], &[]),
            line(
                &format!("salt/job/{j}/ret/lab-minion"),
                None,
                None,
                &["job-returns-to-kafka"],
                &["pipeline"]
            ),
            line(&format!("saltbridge/job/{j}/summary"), None, None, &[], &[]),
        ]
    );
}

#[test]
fn explain_text_says_why() {
    let out = bin()
        .args(["explain", "-c"])
        .arg(top().join("routes.yaml"))
        .arg("-s")
        .arg(format!(
            "capture:{}",
            top()
                .join("tests/fixtures/3008.4/c2_cmd_exit3.bin")
                .display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("route failed-jobs-to-chat: glob \"salt/job/*/ret/*\"; retcode > 0"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("twins dropped: bare_jid_new=0"), "{err}");
    assert!(err.contains("job summaries: 1 (0 incomplete)"), "{err}");
    assert!(
        text.contains("saltbridge/job/") && text.contains("route failed-job-summaries-to-chat"),
        "{text}"
    );
}

#[test]
fn route_unit_tests_pass_and_fail_with_a_diff() {
    let out = bin()
        .args(["test", "-c"])
        .arg(top().join("routes.yaml"))
        .arg("--cases")
        .arg(top().join("tests/fixtures/routes/cases.yaml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("9 cases, 9 passed, 0 failed"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: wrong on purpose\n    event: {tag: salt/job/1/ret/a, data: {retcode: 0, success: true}}\n    expect: [chat]\n",
    )
    .unwrap();
    let out = bin()
        .args(["test", "-c"])
        .arg(top().join("routes.yaml"))
        .arg("--cases")
        .arg(&cases)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL wrong on purpose\n  - expected: [\"chat\"]\n  + got:      [\"pipeline\"] (routes: job-returns-to-kafka)"), "{text}");
}

/// One bare-map frame of an event, as Salt 3008 publishes it.
fn frame(tag: &str, data: serde_json::Value) -> Vec<u8> {
    let mut body = format!("{tag}\n\n").into_bytes();
    body.extend(rmp_serde::to_vec_named(&data).unwrap());
    let mut f = vec![
        0x82, 0xa4, b'h', b'e', b'a', b'd', 0x80, 0xa4, b'b', b'o', b'd', b'y', 0xc5,
    ];
    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
    f.extend(body);
    f
}

fn wait_for(lines: &Mutex<Vec<String>>, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lines.lock().unwrap().iter().any(|l| pred(l)) {
        assert!(
            Instant::now() < deadline,
            "no {what}: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn routes_file(path: &Path, route_name: &str) {
    let text = format!(
        "sinks:\n  cmdb: {{type: webhook, url: 'http://x'}}\nroutes:\n  - name: {route_name}\n    match: {{tag: 'salt/minion/*/start'}}\n    to: [cmdb]\n"
    );
    std::fs::write(path, text).unwrap();
}

#[test]
fn reload_on_change_and_sighup_keeps_old_routes_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pub.ipc");
    let config = dir.path().join("routes.yaml");
    routes_file(&config, "first");
    let listener = UnixListener::bind(&sock).unwrap();
    // Its own process group, killed on drop (panics included).
    let mut child = support::process::spawn(
        bin()
            .args(["explain", "-f", "json", "-c"])
            .arg(&config)
            .arg("-s")
            .arg(format!("ipc:{}", sock.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let lines = Arc::new(Mutex::new(Vec::new()));
    let logs = Arc::new(Mutex::new(Vec::new()));
    for (stream, sink) in [
        (
            Box::new(out) as Box<dyn std::io::Read + Send>,
            lines.clone(),
        ),
        (Box::new(err), logs.clone()),
    ] {
        std::thread::spawn(move || {
            for l in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
    }
    let (mut conn, _) = listener.accept().unwrap();
    let start = |n: u32| {
        frame(
            &format!("salt/minion/m{n}/start"),
            serde_json::json!({"id": format!("m{n}")}),
        )
    };

    conn.write_all(&start(1)).unwrap();
    wait_for(&lines, "first route", |l| {
        l.contains("m1/start") && l.contains("\"first\"")
    });

    // A good edit is picked up by itself (the file is polled every second).
    std::thread::sleep(Duration::from_millis(1100));
    routes_file(&config, "second");
    wait_for(&logs, "reload log", |l| l.contains("routes reloaded"));
    conn.write_all(&start(2)).unwrap();
    wait_for(&lines, "second route", |l| {
        l.contains("m2/start") && l.contains("\"second\"")
    });

    // A bad file is refused on SIGHUP; the routes in use stay.
    std::fs::write(&config, "routes:\n  - name: broken\n    to: [nowhere]\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for(&logs, "refusal", |l| l.contains("NOT reloaded"));
    assert!(logs
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("unknown sink `nowhere`")));
    conn.write_all(&start(3)).unwrap();
    wait_for(&lines, "old route kept", |l| {
        l.contains("m3/start") && l.contains("\"second\"")
    });

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
