//! `saltbridge run` as a child process for the fault tests, and what a
//! webhook receiver got from it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http_receiver::Receiver;

/// A running `saltbridge run`, its stderr appended to a log file.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `run -c config [-s source] --state-dir state`.
    pub fn run(config: &Path, source: Option<&str>, state: &Path, log: &Path) -> Daemon {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_saltbridge"));
        cmd.args(["run", "-c"]).arg(config);
        if let Some(s) = source {
            cmd.args(["-s", s]);
        }
        let child = cmd
            .arg("--state-dir")
            .arg(state)
            .args(["--shutdown-timeout", "2s"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_owned(),
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the log (with the end-of-run summary).
    pub fn term(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
