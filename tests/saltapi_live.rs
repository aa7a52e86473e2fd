//! The `saltapi:` source against a real salt-api (rest_cherrypy, from the
//! Salt 3008.4 and 3006.29 virtualenvs scripts/test installs, with CherryPy)
//! beside a real master: the same job read through `ipc:` and `saltapi:`
//! gives the same events; a salt-api restart gives a gap marker and the
//! stream goes on; a wrong password is a clear error naming the URL and the
//! eauth, at once, not a retry loop. Skipped (saying why) only when CI is
//! unset and a Salt virtualenv is missing.
//!
//! `/events` works on 3006.29 and 3008.4 here (and on 3008.2 when measured
//! by hand): saltstack/salt#69958 ("only a Python exception on 3008.2") is
//! `?token=` in the query string, which these versions refuse with 400 on
//! purpose; saltbridge sends the token in `X-Auth-Token`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use saltbridge::event::Event;
use saltbridge::shutdown::ShutdownSignal;
use saltbridge::source::saltapi::{SaltApiSettings, Secret};
use saltbridge::source::{self, ReaderOptions, SourceHandle, SourceSpec, GAP_TAG};
use support::ports::free_port;
use support::salt_sandbox::api::{api_config, API_SHARED_SECRET, API_USER};
use support::salt_sandbox::{SaltSandbox, SandboxOptions};

/// A sandboxed master with one minion and salt-api on a free port.
fn sandbox(version: &str, token_expire: u64) -> Option<(SaltSandbox, u16)> {
    let venv = SaltSandbox::require_venv(version)?;
    let port = free_port();
    let opts = SandboxOptions {
        extra_master_config: api_config(port, token_expire),
        // Room for a loaded machine (two Salt sandboxes at once on 2 cores).
        start_timeout: Duration::from_secs(180),
        ..SandboxOptions::with_minions(&["api-minion"])
    };
    let mut sb = SaltSandbox::start(&venv, opts).expect("sandbox");
    sb.start_api(port).expect("salt-api");
    Some((sb, port))
}

fn eauth(eauth: &str, password: &str) -> SaltApiSettings {
    SaltApiSettings {
        username: Some(API_USER.into()),
        password: Some(Secret::new(password)),
        eauth: Some(eauth.into()),
        ..Default::default()
    }
}

fn saltapi(port: u16, settings: SaltApiSettings) -> SourceSpec {
    SourceSpec::SaltApi {
        url: format!("http://127.0.0.1:{port}"),
        settings,
    }
}

fn opts() -> ReaderOptions {
    ReaderOptions {
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..ReaderOptions::default()
    }
}

/// Events from `src` until `done` says so or `timeout` passes.
fn collect(
    rt: &tokio::runtime::Runtime,
    src: &mut SourceHandle,
    timeout: Duration,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    rt.block_on(async {
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, src.events.recv()).await {
                Ok(Some(ev)) => got.push(ev),
                Ok(None) | Err(_) => break,
            }
        }
    });
    got
}

/// Fires `tag` on the master's bus until `src` has seen it (a stream is
/// live only once salt-api has subscribed to the bus).
fn fire_until_seen(
    rt: &tokio::runtime::Runtime,
    sb: &SaltSandbox,
    src: &mut SourceHandle,
    tag: &str,
) -> Vec<Event> {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let out = sb.salt_run(&["event.send", tag, "{\"probe\": true}"]);
        assert!(out.status.success(), "salt-run event.send: {out:?}");
        let got = collect(rt, src, Duration::from_secs(3), |evs| {
            evs.iter().any(|e| e.tag() == tag)
        });
        let found = got.iter().any(|e| e.tag() == tag);
        seen.extend(got);
        if found {
            return seen;
        }
    }
    panic!(
        "{tag} never arrived; seen: {:?}\n{}",
        seen.iter().map(Event::tag).collect::<Vec<_>>(),
        sb.api_log_tail()
    );
}

/// (tag, data) of the events that belong to job `jid` or carry `tag`.
fn of_job(evs: &[Event], jid: &str, tag: &str) -> Vec<(String, String)> {
    evs.iter()
        .filter(|e| e.tag().contains(jid) || e.tag() == tag || e.tag() == jid)
        .map(|e| (e.tag().to_owned(), e.data_json().to_owned()))
        .collect()
}

fn same_job_through_ipc_and_saltapi(version: &str) {
    let Some((sb, port)) = sandbox(version, 43200) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let _guard = rt.enter();
    let mut ipc = source::spawn(SourceSpec::Ipc(sb.pub_socket()), opts(), shutdown.clone());
    let mut api = source::spawn(saltapi(port, eauth("auto", "anything")), opts(), shutdown);
    fire_until_seen(&rt, &sb, &mut api, "lab/ready");
    fire_until_seen(&rt, &sb, &mut ipc, "lab/ready");

    let out = sb.salt(&["--async", "*", "test.ping"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let jid = text
        .split_whitespace()
        .last()
        .expect("salt --async prints the jid")
        .to_owned();
    let fired = sb.salt(&[
        "api-minion",
        "event.send",
        "lab/same",
        r#"{"x": 1, "é": [1.5, null]}"#,
    ]);
    assert!(fired.status.success(), "{fired:?}");
    let until_both = |evs: &[Event]| {
        evs.iter().any(|e| e.tag() == "lab/same")
            && evs
                .iter()
                .any(|e| e.tag().starts_with(&format!("salt/job/{jid}/ret/")))
    };
    let from_ipc = collect(&rt, &mut ipc, Duration::from_secs(60), until_both);
    let from_api = collect(&rt, &mut api, Duration::from_secs(60), until_both);
    let (a, b) = (
        of_job(&from_ipc, &jid, "lab/same"),
        of_job(&from_api, &jid, "lab/same"),
    );
    assert!(a.len() >= 3, "too few events of job {jid} on ipc: {a:?}");
    assert_eq!(a, b, "Salt {version}: ipc: and saltapi: differ");
    eprintln!(
        "Salt {version}: {} events of job {jid} and lab/same, tag and data text equal through ipc: and saltapi:",
        a.len()
    );
    assert!(
        from_api
            .iter()
            .all(|e| e.source() == format!("saltapi:http://127.0.0.1:{port}")),
        "the source is named as the spec"
    );
    signal.trigger();
}

#[test]
fn ipc_and_saltapi_give_the_same_events_3008_4() {
    same_job_through_ipc_and_saltapi("3008.4");
}

#[test]
fn ipc_and_saltapi_give_the_same_events_3006_29() {
    same_job_through_ipc_and_saltapi("3006.29");
}

#[test]
fn a_salt_api_restart_gives_a_gap_marker_and_the_stream_resumes() {
    let Some((mut sb, port)) = sandbox("3008.4", 43200) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let _guard = rt.enter();
    let settings = eauth("sharedsecret", API_SHARED_SECRET);
    let mut api = source::spawn(saltapi(port, settings), opts(), shutdown);
    fire_until_seen(&rt, &sb, &mut api, "lab/before");
    let stats = api.stats.clone();
    sb.kill_api();
    // The token from before the restart is refused (401): the source logs
    // in again by itself.
    sb.start_api(port).expect("salt-api again");
    let after = fire_until_seen(&rt, &sb, &mut api, "lab/after");
    let gap = after
        .iter()
        .position(|e| e.tag() == GAP_TAG)
        .expect("a gap marker after the restart");
    let at = after.iter().position(|e| e.tag() == "lab/after").unwrap();
    assert!(gap < at, "the marker comes before the events after the gap");
    let data = after[gap].data();
    assert!(data["seconds"].as_f64().unwrap() > 0.0, "{data}");
    assert_eq!(saltbridge::source::SourceStats::get(&stats.gaps), 1);
    assert!(stats.is_connected());
    signal.trigger();
}

#[test]
fn a_token_is_renewed_before_it_expires_and_nothing_is_lost_or_doubled() {
    // Tokens live 10 s: renewed at 5 s, while the old stream goes on until
    // salt-api ends it after its first event past the expiry.
    let Some((sb, port)) = sandbox("3008.4", 10) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let _guard = rt.enter();
    let mut api = source::spawn(saltapi(port, eauth("auto", "x")), opts(), shutdown);
    let stats = api.stats.clone();
    fire_until_seen(&rt, &sb, &mut api, "lab/t0");
    let mut seen = Vec::new();
    for round in 1..=3 {
        std::thread::sleep(Duration::from_secs(6));
        let tag = format!("lab/t{round}");
        let out = sb.salt_run(&["event.send", &tag, "{}"]);
        assert!(out.status.success(), "{out:?}");
        // Generous: salt-run alone takes seconds on a loaded machine.
        let got = collect(&rt, &mut api, Duration::from_secs(30), |evs| {
            evs.iter().any(|e| e.tag() == tag)
        });
        seen.extend(got.iter().map(|e| e.tag().to_owned()));
    }
    // Any stragglers (a doubled event would come late).
    let rest = collect(&rt, &mut api, Duration::from_secs(5), |_| false);
    seen.extend(rest.iter().map(|e| e.tag().to_owned()));
    for round in 1..=3 {
        let tag = format!("lab/t{round}");
        let n = seen.iter().filter(|t| **t == tag).count();
        assert_eq!(
            n,
            1,
            "{tag} seen {n} times in {seen:?}\n{}",
            sb.api_log_tail()
        );
    }
    assert!(!seen.iter().any(|t| t == GAP_TAG), "a gap: {seen:?}");
    assert_eq!(saltbridge::source::SourceStats::get(&stats.gaps), 0);
    assert!(stats.is_connected());
    signal.trigger();
}

/// `saltbridge` run with `args` and env `env`; it must exit by itself
/// within `limit`. Returns whether it succeeded, and its stdout and stderr.
fn saltbridge(args: &[&str], env: &[(&str, &str)], limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saltbridge"));
    cmd.args(args)
        .env_remove("SALTBRIDGE_SALTAPI_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = support::process::spawn(&mut cmd).expect("saltbridge");
    let status = child.wait_timeout(limit);
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let Some(status) = status else {
        child.kill_group();
        panic!("saltbridge {args:?} did not exit within {limit:?} (a retry loop?): {text}");
    };
    (status.success(), text)
}

#[test]
fn a_wrong_password_is_a_clear_error_naming_url_and_eauth() {
    let Some((sb, port)) = sandbox("3008.4", 43200) else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}");
    let wrong = "not-the-secret-4711";
    // tail: credentials from the environment.
    let (ok, text) = saltbridge(
        &["tail", "--source", &format!("saltapi:{url}")],
        &[
            ("SALTBRIDGE_SALTAPI_USERNAME", API_USER),
            ("SALTBRIDGE_SALTAPI_PASSWORD", wrong),
            ("SALTBRIDGE_SALTAPI_EAUTH", "sharedsecret"),
        ],
        Duration::from_secs(30),
    );
    assert!(!ok, "{text}");
    for needed in [
        format!("{url}/login"),
        "\"sharedsecret\"".into(),
        "401".into(),
    ] {
        assert!(text.contains(&needed), "{needed:?} missing from: {text}");
    }
    assert!(!text.contains(wrong), "the password was shown: {text}");

    // explain: credentials in the routes file, the password from ${file:}.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, wrong).unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "source:\n  spec: saltapi:{url}\n  saltapi:\n    username: {API_USER}\n    \
             password: ${{file:{}}}\n    eauth: sharedsecret\nroutes: []\n",
            secret.display()
        ),
    )
    .unwrap();
    let (ok, text) = saltbridge(
        &["explain", "--config", routes.to_str().unwrap()],
        &[],
        Duration::from_secs(30),
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("{url}/login")) && text.contains("sharedsecret"),
        "{text}"
    );
    assert!(!text.contains(wrong), "the password was shown: {text}");
    drop(sb);
}

/// `saltbridge` started with `args` (output into files in `dir`) until
/// `done` holds for its stdout, then SIGTERM; returns its stdout and stderr.
fn saltbridge_until(
    sb: &SaltSandbox,
    args: &[&str],
    env: &[(&str, &str)],
    dir: &std::path::Path,
    done: impl Fn(&str) -> bool,
) -> (String, String) {
    let (out, err) = (dir.join("out"), dir.join("err"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saltbridge"));
    cmd.args(args)
        .env_remove("SALTBRIDGE_SALTAPI_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = support::process::spawn(&mut cmd).expect("saltbridge");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&std::fs::read_to_string(&out).unwrap_or_default()) {
        assert!(
            Instant::now() < deadline && child.exit_status().is_none(),
            "saltbridge {args:?}: {}{}",
            std::fs::read_to_string(&out).unwrap_or_default(),
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        let fired = sb.salt_run(&["event.send", "lab/cli", "{}"]);
        assert!(fired.status.success(), "{fired:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = child.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "saltbridge {args:?}: {status:?}"
    );
    (
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

#[test]
fn explain_and_run_read_a_saltapi_source_from_the_routes_file() {
    let Some((sb, port)) = sandbox("3008.4", 43200) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, API_SHARED_SECRET).unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "source:\n  spec: saltapi:http://127.0.0.1:{port}\n  saltapi:\n    username: {API_USER}\n    \
             password: ${{file:{}}}\n    eauth: sharedsecret\nsinks:\n  hole: {{type: blackhole}}\n\
             routes:\n  - name: lab\n    match: {{tag: 'lab/*'}}\n    to: [hole]\n",
            secret.display()
        ),
    )
    .unwrap();
    let config = routes.to_str().unwrap();
    let (out, err) = saltbridge_until(
        &sb,
        &["explain", "--config", config, "--format", "json"],
        &[],
        dir.path(),
        |out| out.contains("\"lab/cli\""),
    );
    assert!(out.contains("\"lab\""), "routed by the route: {out}");
    assert!(!format!("{out}{err}").contains(API_SHARED_SECRET));

    let state = dir.path().join("state");
    let metrics = free_port();
    let listen = format!("127.0.0.1:{metrics}");
    let (_, err) = saltbridge_until(
        &sb,
        &[
            "run",
            "--config",
            config,
            "--state-dir",
            state.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &[("RUST_LOG", "info")],
        dir.path(),
        |_| {
            let url = format!("http://{listen}/metrics");
            let body = Command::new("curl").args(["-sf", &url]).output();
            body.is_ok_and(|b| {
                String::from_utf8_lossy(&b.stdout).lines().any(|l| {
                    l.starts_with("saltbridge_route_matches_total")
                        && l.contains("lab")
                        && !l.ends_with(" 0")
                })
            })
        },
    );
    assert!(err.contains("saltapi:http://127.0.0.1"), "{err}");
    assert!(
        !err.contains(API_SHARED_SECRET),
        "the password in the log: {err}"
    );
}
