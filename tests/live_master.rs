//! `saltbridge tail` against REAL Salt masters (3008.4 bare maps, 3006.29
//! length-prefixed frames, `ipc_mode: tcp`) and a real libzmq PUB socket.
//!
//! Needs the Salt virtualenvs that the README's test command installs under
//! `.cache/`; outside CI a missing one skips with the reason, under CI=true
//! it fails.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::process::{self, ProcessGroup};
use support::salt_sandbox::{SaltSandbox, SandboxOptions};

/// A running `saltbridge tail --format json` and every line it printed.
struct Tail {
    child: ProcessGroup,
    lines: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Tail {
    fn start(spec: &str) -> Tail {
        let mut child = process::spawn(
            Command::new(env!("CARGO_BIN_EXE_saltbridge"))
                .args(["tail", "--source", spec, "--format", "json"])
                .env("RUST_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let line = line.unwrap();
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                l.lock().unwrap().push(v);
            }
        });
        let e = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = e.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Tail {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for an event that `pred` accepts, among those after `from`.
    fn wait_for(
        &self,
        from: usize,
        what: &str,
        pred: impl Fn(&str, &Value) -> bool,
    ) -> (usize, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let lines = self.lines.lock().unwrap();
                for (i, v) in lines.iter().enumerate().skip(from) {
                    if pred(v["tag"].as_str().unwrap_or(""), &v["data"]) {
                        return (i, v.clone());
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 60 s; tail printed:\n{}\nstderr:\n{}",
                self.tags().join("\n"),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_connected(&self, nth: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self
            .stderr
            .lock()
            .unwrap()
            .matches("connected to the master")
            .count()
            < nth
        {
            assert!(
                Instant::now() < deadline,
                "tail never connected: {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn len(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    fn tags(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["tag"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// SIGTERM, as systemd stops it; tail must exit 0.
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "tail exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "tail did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn is_job_new(tag: &str, data: &Value, fun: &str) -> bool {
    tag.starts_with("salt/job/") && tag.ends_with("/new") && data["fun"] == fun
}

fn job_ret(jid: &str, id: &str) -> impl Fn(&str, &Value) -> bool {
    let want = format!("salt/job/{jid}/ret/{id}");
    move |tag, _| tag == want
}

fn salt_ok(sandbox: &SaltSandbox, args: &[&str]) {
    let out = sandbox.salt(args);
    assert!(
        out.status.success(),
        "salt {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// test.ping, a job past its timeout with find_job, a master restart.
fn live_roundtrip(version: &str, opts: SandboxOptions, spec_of: impl Fn(&SaltSandbox) -> String) {
    let Some(venv) = SaltSandbox::require_venv(version) else {
        return;
    };
    let mut salt = SaltSandbox::start(&venv, opts).unwrap();
    let tail = Tail::start(&spec_of(&salt));
    tail.wait_connected(1);

    salt_ok(&salt, &["*", "test.ping"]);
    let (i, new) = tail.wait_for(0, "test.ping new", |t, d| is_job_new(t, d, "test.ping"));
    let jid = new["data"]["jid"].as_str().unwrap().to_owned();
    assert_eq!(new["data"]["minions"], serde_json::json!(["alpha"]));
    let (_, ret) = tail.wait_for(i, "test.ping ret", job_ret(&jid, "alpha"));
    assert_eq!(ret["data"]["return"], true);
    if version.starts_with("3006") {
        // 3006 still fires the bare-jid twin of salt/job/<jid>/new.
        tail.wait_for(0, "bare-jid twin", |t, _| t == jid);
    }

    salt_ok(&salt, &["-t", "2", "*", "cmd.run", "sleep 4; echo hi"]);
    let (i, new) = tail.wait_for(i, "cmd.run new", |t, d| is_job_new(t, d, "cmd.run"));
    let jid = new["data"]["jid"].as_str().unwrap().to_owned();
    let (_, find_job) = tail.wait_for(i, "find_job for the job", |t, d| {
        is_job_new(t, d, "saltutil.find_job") && d["arg"] == serde_json::json!([jid.as_str()])
    });
    assert_eq!(find_job["data"]["minions"], serde_json::json!(["alpha"]));
    let (_, ret) = tail.wait_for(i, "cmd.run ret", job_ret(&jid, "alpha"));
    assert_eq!(ret["data"]["return"], "hi");

    // The master goes away and comes back: the reader reconnects by itself,
    // says there was a gap, and sees the next job.
    let before = tail.len();
    salt.stop_master();
    std::thread::sleep(Duration::from_secs(1));
    salt.start_master().unwrap();
    salt.wait_for_minions(&["alpha"], Duration::from_secs(60))
        .unwrap();
    // A master that is shutting down may still accept a connection and close
    // it at once (seen with ipc_mode: tcp): that is a gap marker of its own;
    // the one that covers the downtime is at least as long as the sleep.
    let (g, _) = tail.wait_for(before, "gap marker covering the restart", |t, d| {
        t == "saltbridge/bus/gap" && d["seconds"].as_f64().unwrap_or(0.0) >= 1.0
    });
    let after = tail.len();
    salt_ok(&salt, &["*", "test.ping"]);
    let (i, new) = tail.wait_for(after.max(g), "test.ping after restart", |t, d| {
        is_job_new(t, d, "test.ping")
    });
    let jid = new["data"]["jid"].as_str().unwrap().to_owned();
    tail.wait_for(i, "ret after restart", job_ret(&jid, "alpha"));
    tail.stop();
}

#[test]
fn salt_3008_bare_maps_from_the_master_config() {
    // `ipc:<master config>`: saltbridge finds sock_dir the way Salt does.
    live_roundtrip("3008.4", SandboxOptions::with_minions(&["alpha"]), |s| {
        format!("ipc:{}", s.master_config_file().display())
    });
}

#[test]
fn salt_3006_length_prefixed_frames() {
    live_roundtrip("3006.29", SandboxOptions::with_minions(&["alpha"]), |s| {
        format!("ipc:{}", s.pub_socket().display())
    });
}

#[test]
fn salt_3008_ipc_mode_tcp() {
    let opts = SandboxOptions {
        ipc_mode_tcp: true,
        ..SandboxOptions::with_minions(&["alpha"])
    };
    live_roundtrip("3008.4", opts, |s| {
        // Reading the master config must find ipc_mode: tcp and the port.
        let spec = format!("ipc:{}", s.master_config_file().display());
        let port = s.tcp_pub_port().unwrap();
        assert!(
            resolved(&spec).ends_with(&format!(":{port}")),
            "{spec} resolved to {}",
            resolved(&spec)
        );
        spec
    });
}

fn resolved(spec: &str) -> String {
    spec.parse::<saltbridge::source::SourceSpec>()
        .unwrap()
        .to_string()
}

/// Real libzmq (pyzmq, as 2014-2015 masters used) publishing ZeroMQ-era
/// messages; saltbridge's pure-Rust SUB must read them.
#[test]
fn libzmq_pub_socket_with_legacy_messages() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!(
        "ipc://{}",
        dir.path().join("master_event_pub.ipc").display()
    );
    let flag = dir.path().join("subscribed");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy");
    let script = r#"
import base64, json, os, sys, time, zmq
endpoint, flag, files = sys.argv[1], sys.argv[2], sys.argv[3:]
ctx = zmq.Context(); pub = ctx.socket(zmq.PUB); pub.bind(endpoint)
deadline = time.time() + 30
while not os.path.exists(flag) and time.time() < deadline:
    pub.send(b"saltbridge-test/probe\n\n\x80"); time.sleep(0.05)
for f in files:
    for line in open(f):
        if line.strip():
            pub.send(base64.b64decode(json.loads(line)["b64"]))
time.sleep(0.5)
"#;
    let files: Vec<String> = ["test_ping.padded.jsonl", "test_ping.tagend.jsonl"]
        .iter()
        .map(|f| fixtures.join(f).display().to_string())
        .collect();
    let mut publisher = process::spawn(
        Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(script)
            .arg(&endpoint)
            .arg(&flag)
            .args(&files),
    )
    .unwrap();
    let tail = Tail::start(&format!("zmq:{endpoint}"));
    let (probe, _) = tail.wait_for(0, "probe", |t, _| t == "saltbridge-test/probe");
    std::fs::write(&flag, b"").unwrap();
    let mut want = Vec::new();
    for f in &files {
        for line in std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
        {
            let v: Value = serde_json::from_str(line).unwrap();
            want.push((v["tag"].as_str().unwrap().to_owned(), v["data"].clone()));
        }
    }
    let legacy = || -> Vec<(String, Value)> {
        tail.lines.lock().unwrap()[probe..]
            .iter()
            .filter(|v| v["tag"] != "saltbridge-test/probe")
            .map(|v| (v["tag"].as_str().unwrap().to_owned(), v["data"].clone()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while legacy().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(legacy(), want);
    assert!(publisher.wait().unwrap().success());
    tail.stop();
}
