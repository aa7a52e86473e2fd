//! The real `saltbridge run` binary as a subprocess: started on a routes
//! file and the load generator's socket, watched through /proc for its
//! memory, stopped with SIGTERM, and its final report read back.
//!
//! It is started and stopped by the tests' own helper
//! (`tests/support/daemon.rs`, included as `crate::run_daemon`), so the
//! bench and the tests run the daemon the same way: in its own process
//! group, killed whole when dropped, a panic included.
//!
//! Only `-c`, `--source`, `--state-dir` and `--listen` are passed, so the
//! bench keeps working as `run` gains flags. What was delivered is read from
//! the final report (`sink NAME: N accepted, N delivered ...`) or, live, from
//! `/metrics` ([`Daemon::delivered_now`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::ports::free_addr;
use crate::run_daemon;

/// A running `saltbridge run`, killed on drop.
pub struct Daemon {
    inner: run_daemon::Daemon,
    /// Where its `/metrics` listens.
    listen: std::net::SocketAddr,
}

/// What `run` said when it stopped.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub read: u64,
    pub dropped_by_reader: u64,
    /// Bytes the journal dropped at its bound.
    pub journal_dropped: u64,
    /// Bytes appended to the journal.
    pub journal_appended: u64,
    /// (sink, accepted, delivered, dropped on a full spool)
    pub sinks: Vec<(String, u64, u64, u64)>,
    pub text: String,
}

impl Report {
    pub fn delivered(&self, sink: &str) -> u64 {
        self.sinks.iter().find(|s| s.0 == sink).map_or(0, |s| s.2)
    }
}

/// Memory of a process, from /proc/PID/status, in bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

impl Daemon {
    pub fn start(bin: &Path, routes: &Path, sock: &Path, state_dir: &Path) -> Daemon {
        Daemon::start_source(bin, routes, &format!("ipc:{}", sock.display()), state_dir)
    }

    /// `run` reading `source` (`ipc:PATH`, `capture:FILE`, ...).
    pub fn start_source(bin: &Path, routes: &Path, source: &str, state_dir: &Path) -> Daemon {
        let stderr = state_dir.join("run.stderr");
        // A fresh log a run: the report is parsed from it.
        std::fs::File::create(&stderr).expect("stderr file");
        let listen = free_addr();
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("-c")
            .arg(routes)
            .arg("--source")
            .arg(source)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--listen")
            .arg(listen.to_string())
            .env("RUST_LOG", "warn");
        Daemon {
            inner: run_daemon::Daemon::spawn(cmd, &stderr),
            listen,
        }
    }

    /// What sink `sink` has delivered so far, from `/metrics`.
    pub fn delivered_now(&self, sink: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut c =
            std::net::TcpStream::connect_timeout(&self.listen, Duration::from_secs(1)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        c.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        c.read_to_string(&mut text).ok()?;
        let want = format!("saltbridge_sink_delivered_total{{sink=\"{sink}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&want))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    }

    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// Whether it is still running; if not, what it printed.
    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.inner.exit_status().is_some()
    }

    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.inner.exit_status() {
            None => Ok(()),
            Some(_) => Err(self.inner.log()),
        }
    }

    pub fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Memory {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
        }
    }

    /// CPU seconds (user + system) the process has used so far.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(self.pid())
    }

    /// SIGTERM, wait (at most `patience`, then SIGKILL), read the report.
    pub fn stop(self, patience: Duration) -> Report {
        parse_report(&self.inner.stop(patience).1)
    }

    /// Events `sink` delivered, from the final report. (When `run` serves
    /// `/metrics`, this can read `saltbridge_sink_delivered_total` live.)
    pub fn delivered(report: &Report, sink: &str) -> u64 {
        report.delivered(sink)
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 here; 100 ticks/s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// The numbers in `run`'s final report.
pub fn parse_report(text: &str) -> Report {
    let numbers = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let mut r = Report {
        text: text.to_owned(),
        ..Report::default()
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("saltbridge: read ") {
            let n = numbers(rest);
            r.read = n.first().copied().unwrap_or(0);
            r.dropped_by_reader = n.get(2).copied().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("journal: ") {
            let n = numbers(rest);
            r.journal_appended = n.first().copied().unwrap_or(0);
            r.journal_dropped = n.get(1).copied().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("sink ") {
            let Some((name, counts)) = rest.split_once(": ") else {
                continue;
            };
            let n = numbers(counts);
            let overflow = counts
                .split(", ")
                .find(|p| p.contains("full spool"))
                .and_then(|p| numbers(p).first().copied())
                .unwrap_or(0);
            r.sinks.push((
                name.to_owned(),
                n.first().copied().unwrap_or(0),
                n.get(1).copied().unwrap_or(0),
                overflow,
            ));
        }
    }
    r
}
