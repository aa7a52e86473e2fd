//! A real, sandboxed Salt master (plus minions) for integration tests.
//!
//! Every sandbox owns a private temp folder (config, pki, cache, sockets,
//! logs) and its own free TCP ports, so several sandboxes can run in parallel
//! in one test process. Salt runs from a virtualenv found by
//! [`SaltSandbox::venv`] / [`SaltSandbox::require_venv`].
//!
//! ```ignore
//! let Some(venv) = SaltSandbox::require_venv("3008.4") else { return };
//! let mut sb = SaltSandbox::start(&venv, SandboxOptions::with_minions(&["alpha", "beta"]))?;
//! let out = sb.salt(&["*", "test.ping"]);
//! // read events from sb.pub_socket() (or 127.0.0.1:sb.tcp_pub_port() with ipc_mode_tcp)
//! sb.stop_master();
//! sb.start_master()?;
//! sb.wait_for_minions(&["alpha", "beta"], Duration::from_secs(60))?;
//! ```
//!
//! Layout of a sandbox (`root_dir()`):
//!
//! ```text
//! <root>/master/master            master config (`master_config_file()`); `-c <root>/master`
//! <root>/master/master.d/         extra config (`SandboxOptions::extra_master_config`)
//! <root>/master/{pki,cache,sock}  pki_dir, cachedir, sock_dir
//! <root>/master/master.log        log_file; console.log = the daemon's stdout/stderr
//! <root>/master/srv/{salt,pillar} file_roots / pillar_roots (`file_root()`)
//! <root>/minions/<id>/minion      one folder per minion, same shape
//! <root>/run/*.pgid               process groups, read by the watchdog
//! ```
//!
//! Daemons run in the foreground (no `-d`) as our own children, each in its
//! own process group, so stopping can always escalate to SIGKILL of the whole
//! group. A tiny `sh` watchdog per sandbox kills those groups and removes the
//! folder if the test process dies without running `Drop` (SIGKILL, abort,
//! a sandbox kept in a `static`).
//!
//! Set `SALTBRIDGE_KEEP_SANDBOX=1` to keep the folder after the test (its
//! path is printed).
//!
//! Only `std` and `tempfile` are used; signals are sent with the `kill`
//! command.
//!
//! Gotchas this module handles (Salt 3006.29 and 3008.4):
//! - `root_dir`, `cachedir` and `sock_dir` are all set: with only `sock_dir`,
//!   or when `len(sock_dir) > len(cachedir) + 10`, Salt silently moves the
//!   sockets to `<cachedir>/.salt-unix`. `start_master()` checks both places
//!   and `sock_dir()` / `pub_socket()` report the real one.
//! - `ipc_mode: tcp` needs `tcp_master_pub_port`, `tcp_master_pull_port`,
//!   `tcp_master_publish_pull` and `tcp_master_workers` (defaults 4512-4515
//!   would collide between sandboxes); 3008 binds `tcp_master_workers + 926`.
//! - After a stop the `.ipc` files stay (connect: "connection refused"); they
//!   and the `*.pid` files are removed before each start (a SIGKILLed
//!   minion's `process_responsibility_minion.pid` can name a zombie, and the
//!   next minion then exits 1 with "An instance is already running").
//! - A minion's SIGTERM handler sleeps 5 s before stopping; `stop_minion`
//!   takes 5-7 s, `kill_minion` and `Drop` use SIGKILL for minions.
//! - `salt` waits `gather_job_timeout` (10 s) past `-t` for minions that do
//!   not answer, and exits 0 even when the master is down.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use super::ports::{take_port, used_ports};
use super::process::{self, group_alive, send_signal, ProcessGroup};

pub mod api;
mod cli;
pub use cli::{salt_cli, spawn_salt_daemon};
pub use config::current_user;
mod config;
mod lifecycle;
mod logs;
mod paths;
mod spawn;
mod venv;

use config::{alloc_ports, invalid, validate_id};
use logs::log_has_since;
use spawn::{remove_ipc_files, remove_pid_files, spawn_watchdog, terminate};

/// File name of the master's event publisher socket (ipc mode).
pub const MASTER_EVENT_PUB: &str = "master_event_pub.ipc";

/// Salt 3008 (worker pools) binds the pool "default" request workers on
/// `tcp_master_workers + adler32("default") % 1000` when `ipc_mode: tcp`.
const DEFAULT_POOL_PORT_OFFSET: u16 = 926;

/// Longest unix socket path the kernel accepts is 107 bytes; keep a margin.
const MAX_SOCK_PATH: usize = 100;

const POLL: Duration = Duration::from_millis(50);

/// How a sandbox is set up. `Default` gives one minion called `minion`.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Minion ids to start (each gets its own folder). May be empty.
    pub minion_ids: Vec<String>,
    /// Master `ipc_mode: tcp`: the event bus is served on
    /// `127.0.0.1:tcp_master_pub_port` (see [`SaltSandbox::tcp_pub_port`])
    /// instead of `<sock_dir>/master_event_pub.ipc`.
    pub ipc_mode_tcp: bool,
    /// Whole of `start()` (master up + every minion answering test.ping);
    /// also the limit for `start_master()` / `start_minion()`.
    pub start_timeout: Duration,
    /// Grace after SIGTERM in `stop_master()` / `stop_minion()` before SIGKILL.
    pub stop_timeout: Duration,
    /// Grace after SIGTERM to the master when the sandbox is dropped
    /// (minions are SIGKILLed at once). `Duration::ZERO` = SIGKILL.
    pub drop_timeout: Duration,
    /// `salt()` / `salt_run()` kill the CLI after this long.
    pub cli_timeout: Duration,
    /// Master `worker_threads` (Salt's default is 5; 2 is plenty for tests).
    pub worker_threads: u32,
    /// `log_level_logfile` for the master and minions. Keep `info` (or
    /// `debug`): readiness waits for the minion's info line "Minion is ready
    /// to receive requests" (else it pings blind after 15 s), and the log
    /// tails in error messages need it.
    pub log_level_logfile: String,
    /// YAML written to `<master dir>/master.d/99-extra.conf` (overrides the
    /// generated keys; a duplicate key in the main file would be an error).
    pub extra_master_config: String,
    /// YAML written to every minion's `minion.d/99-extra.conf`.
    pub extra_minion_config: String,
    /// `start()` waits until every minion answers `test.ping`.
    pub wait_for_minions: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            minion_ids: vec!["minion".to_string()],
            ipc_mode_tcp: false,
            start_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(20),
            drop_timeout: Duration::from_secs(10),
            cli_timeout: Duration::from_secs(120),
            worker_threads: 2,
            log_level_logfile: "info".to_string(),
            extra_master_config: String::new(),
            extra_minion_config: String::new(),
            wait_for_minions: true,
        }
    }
}

impl SandboxOptions {
    /// Default options with these minion ids.
    pub fn with_minions(ids: &[&str]) -> Self {
        SandboxOptions {
            minion_ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }
}

/// The ports a sandbox uses (all on 127.0.0.1).
#[derive(Clone, Copy, Debug)]
pub struct SandboxPorts {
    pub publish_port: u16,
    pub ret_port: u16,
    /// The following are set only with `ipc_mode_tcp`.
    pub tcp_master_pub_port: Option<u16>,
    pub tcp_master_pull_port: Option<u16>,
    pub tcp_master_publish_pull: Option<u16>,
    /// Salt 3008 also binds `tcp_master_workers + 926` (worker pool "default").
    pub tcp_master_workers: Option<u16>,
}

/// Where the master's event bus publisher listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusEndpoint {
    Ipc(PathBuf),
    Tcp(SocketAddr),
}

/// One running daemon: our child, leader of its own process group.
struct Proc {
    /// Derefs to the `Child`; its `Drop` kills the group too.
    child: ProcessGroup,
    pgid: u32,
    pgid_file: PathBuf,
    done: bool,
}

impl Proc {
    /// Main process reaped and nothing left in its process group.
    fn finished(&mut self) -> bool {
        if !self.done {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.done = true;
            }
        }
        self.done && !group_alive(self.pgid)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

struct Minion {
    id: String,
    dir: PathBuf,
    proc: Option<Proc>,
    /// When `proc` was spawned and how long minion.log was then (to find
    /// this run's "ready to receive requests" line).
    spawned: Option<(Instant, u64)>,
}

/// Logged (at info) by 3006 and 3008 minions once they are connected.
const MINION_READY_LINE: &str = "Minion is ready to receive requests";

/// A sandboxed Salt master and its minions. Dropping it stops everything
/// (minions: SIGKILL; master: SIGTERM, SIGKILL after `drop_timeout`) and
/// deletes the folder.
pub struct SaltSandbox {
    venv: PathBuf,
    opts: SandboxOptions,
    root: PathBuf,
    tempdir: Option<tempfile::TempDir>,
    keep: bool,
    master_dir: PathBuf,
    master_cachedir: PathBuf,
    conf_sock_dir: PathBuf,
    /// The directory the master really put `master_event_pub.ipc` in.
    sock_dir: PathBuf,
    ports: SandboxPorts,
    master: Option<Proc>,
    /// salt-api, when a test started it (`api`).
    api: Option<Proc>,
    minions: Vec<Minion>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl Drop for SaltSandbox {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "salt_sandbox: test panicked; sandbox at {}",
                self.root.display()
            );
            eprintln!("{}", self.master_log_tail());
        }
        // A minion's SIGTERM handler sleeps a fixed 5 s before it stops
        // (salt/minion.py stop_async), useless here: SIGKILL the minions,
        // SIGTERM the master (under 1 s), SIGKILL it after drop_timeout.
        {
            let mut procs: Vec<&mut Proc> = Vec::new();
            for m in self.minions.iter_mut() {
                if let Some(p) = m.proc.as_mut() {
                    procs.push(p);
                }
            }
            terminate(&mut procs, Duration::ZERO);
        }
        self.kill_api();
        if let Some(p) = self.master.as_mut() {
            terminate(&mut [p], self.opts.drop_timeout);
        }
        self.master = None;
        for m in self.minions.iter_mut() {
            m.proc = None;
        }
        if let Some((mut child, mut stdin)) = self.watchdog.take() {
            // A full line tells the watchdog that we cleaned up ourselves.
            let _ = stdin.write_all(b"done\n");
            drop(stdin);
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        if self.keep {
            if let Some(td) = self.tempdir.take() {
                eprintln!("salt_sandbox: kept {}", td.path().display());
                std::mem::forget(td);
            }
        }
        // Otherwise `tempdir` removes the folder when the fields drop.
    }
}
