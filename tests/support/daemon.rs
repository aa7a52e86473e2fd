//! `saltbridge run` as a child process, the one way tests and the pipeline
//! bench (`benches/pipeline/daemon.rs`, through `#[path]`) start it, and
//! what a webhook receiver got from it.
//!
//! The daemon runs in its own process group ([`super::process`]): dropping
//! a [`Daemon`], a panic included, stops it and anything it started.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use serde_json::Value;

use super::process::{self, ProcessGroup};

/// A running `saltbridge`, its stderr appended to a log file; stopped
/// (with its whole process group) on drop.
pub struct Daemon {
    proc: ProcessGroup,
    log: PathBuf,
}

/// `saltbridge` (this build's binary) with `RUST_LOG=info`; add the
/// arguments and environment, then [`Daemon::spawn`] it.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_saltbridge"));
    cmd.env("RUST_LOG", "info");
    cmd
}

impl Daemon {
    /// `run -c config [-s source] --state-dir state --shutdown-timeout 2s`.
    pub fn run(config: &Path, source: Option<&str>, state: &Path, log: &Path) -> Daemon {
        let mut cmd = command();
        cmd.args(["run", "-c"]).arg(config);
        if let Some(s) = source {
            cmd.args(["-s", s]);
        }
        cmd.arg("--state-dir")
            .arg(state)
            .args(["--shutdown-timeout", "2s"]);
        Daemon::spawn(cmd, log)
    }

    /// Spawns `cmd` (usually from [`command`]) with stdin and stdout null
    /// and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(file);
        let proc = process::spawn(&mut cmd).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        Daemon {
            proc,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Waits at most `timeout` for `needle` in the log; whether it came.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its exit status, once it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.proc.exit_status()
    }

    /// `kill -s SIG` to the daemon (not its group), e.g. `HUP`.
    pub fn signal(&self, sig: &str) {
        self.proc.signal(sig);
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        self.proc.kill_group();
    }

    /// SIGTERM (as systemd stops it), at most `patience` to exit, then
    /// SIGKILL; its exit status (`None` when it had to be killed) and log.
    pub fn stop(mut self, patience: Duration) -> (Option<ExitStatus>, String) {
        let status = self.proc.terminate(patience);
        (status, self.log())
    }

    /// SIGTERM, then the log (with the end-of-run summary).
    pub fn term(self) -> String {
        self.stop(Duration::from_secs(30)).1
    }
}

/// Every event the receiver got, `(tag, data, key)`, whether batched
/// (a JSON array) or one a request.
pub fn webhook_events(receiver: &Receiver) -> Vec<(String, Value, String)> {
    let mut out = Vec::new();
    for r in receiver.requests() {
        let items = match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Array(a)) => a,
            Ok(other) => vec![other],
            Err(_) => continue,
        };
        for i in items {
            out.push((
                i["tag"].as_str().unwrap_or("").to_owned(),
                i["data"].clone(),
                i["key"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    out
}

/// The `data.n` of every event the receiver got.
pub fn webhook_numbers(receiver: &Receiver) -> Vec<u64> {
    webhook_events(receiver)
        .iter()
        .filter_map(|(_, d, _)| d["n"].as_u64())
        .collect()
}

/// A duration from the environment variable `name` (humantime, e.g.
/// `10m`), else `default`: how the fault tests are lengthened into soaks.
pub fn env_duration(name: &str, default: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(default)
}
