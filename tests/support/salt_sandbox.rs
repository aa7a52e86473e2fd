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
    child: Child,
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
    minions: Vec<Minion>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl SaltSandbox {
    // ----------------------------------------------------------------- venv

    /// `.cache/salt-<version>` under `CARGO_MANIFEST_DIR`, or the folder in
    /// env `SALTBRIDGE_SALT_VENV_<version, dots as underscores>` (checked
    /// first), if it has `bin/salt-master`.
    pub fn venv(version: &str) -> Option<PathBuf> {
        venv_candidates(version)
            .into_iter()
            .find(|p| p.join("bin").join("salt-master").is_file())
    }

    /// Like [`venv`](Self::venv), but when missing: with env `CI=true`
    /// panic with a clear message, otherwise print `skipping: ...` to stderr
    /// and return `None` (the caller returns early).
    pub fn require_venv(version: &str) -> Option<PathBuf> {
        if let Some(p) = Self::venv(version) {
            return Some(p);
        }
        let looked: Vec<String> = venv_candidates(version)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let msg = format!(
            "no Salt {version} virtualenv with bin/salt-master (looked at: {}); \
             create one, e.g. `python3 -m venv .cache/salt-{version} && \
             .cache/salt-{version}/bin/pip install salt=={version}`, or point env {} at one",
            looked.join(", "),
            venv_env_var(version)
        );
        if is_ci() {
            panic!("{msg} (CI is set: a missing Salt is a failure here, not a skip)");
        }
        eprintln!("skipping: {msg}");
        None
    }

    // ---------------------------------------------------------- lifecycle

    /// Writes the configs, starts the master (waits until its event bus
    /// accepts connections) and every minion, and waits until each minion
    /// answers `test.ping` (unless `opts.wait_for_minions` is false).
    pub fn start(venv: &Path, opts: SandboxOptions) -> io::Result<SaltSandbox> {
        let t0 = Instant::now();
        for bin in ["salt-master", "salt-minion", "salt", "salt-run"] {
            let p = venv.join("bin").join(bin);
            if !p.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is missing", p.display()),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for id in &opts.minion_ids {
            validate_id(id)?;
            if !seen.insert(id.as_str()) {
                return Err(invalid(format!("minion id {id:?} given twice")));
            }
        }

        let keep =
            env::var_os("SALTBRIDGE_KEEP_SANDBOX").is_some_and(|v| v != "0" && !v.is_empty());
        // Unix socket paths are limited to 107 bytes: stay short.
        let mut base = env::temp_dir();
        if base.as_os_str().len() > 40 {
            base = PathBuf::from("/tmp");
        }
        let tempdir = tempfile::Builder::new()
            .prefix("saltsbx-")
            .tempdir_in(&base)?;
        let root = tempdir.path().to_path_buf();
        let master_dir = root.join("master");
        let master_cachedir = master_dir.join("cache");
        let conf_sock_dir = master_dir.join("sock");
        for d in [
            &master_dir,
            &master_cachedir,
            &conf_sock_dir,
            &master_dir.join("pki"),
            &master_dir.join("master.d"),
            &master_dir.join("srv").join("salt"),
            &master_dir.join("srv").join("pillar"),
            &root.join("minions"),
            &root.join("run"),
        ] {
            fs::create_dir_all(d)?;
        }
        let longest = conf_sock_dir.join("master_event_pull.ipc");
        if longest.as_os_str().len() > MAX_SOCK_PATH {
            return Err(invalid(format!(
                "socket path too long: {}",
                longest.display()
            )));
        }

        let ports = alloc_ports(opts.ipc_mode_tcp)?;
        let mut sb = SaltSandbox {
            venv: venv.to_path_buf(),
            opts,
            root,
            tempdir: Some(tempdir),
            keep,
            master_dir,
            master_cachedir,
            sock_dir: conf_sock_dir.clone(),
            conf_sock_dir,
            ports,
            master: None,
            minions: Vec::new(),
            watchdog: None,
        };
        sb.write_master_config()?;
        match spawn_watchdog(&sb.root, keep) {
            Ok(w) => sb.watchdog = Some(w),
            Err(e) => {
                eprintln!("salt_sandbox: no watchdog ({e}); a killed test may leave Salt running")
            }
        }
        // From here on, an error drops `sb`, which stops whatever started.
        // A port picked by bind(0) can be taken by someone else before the
        // master binds it (it then exits with status 4): pick new ones.
        let mut attempt = 1;
        loop {
            match sb.start_master() {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 3 => {
                    eprintln!("salt_sandbox: master could not bind its ports, picking others");
                    attempt += 1;
                    sb.ports = alloc_ports(sb.opts.ipc_mode_tcp)?;
                    sb.write_master_config()?;
                }
                Err(e) => return Err(e),
            }
        }
        let ids = sb.opts.minion_ids.clone();
        for id in &ids {
            let dir = sb.create_minion(id)?;
            sb.minions.push(Minion {
                id: id.clone(),
                dir,
                proc: None,
                spawned: None,
            });
            sb.spawn_minion(id)?;
        }
        if sb.opts.wait_for_minions && !ids.is_empty() {
            let left = sb.opts.start_timeout.saturating_sub(t0.elapsed());
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            sb.wait_for_minions(&refs, left.max(Duration::from_secs(5)))?;
        }
        Ok(sb)
    }

    /// Starts the master (same config, same ports) and waits until its event
    /// bus accepts connections. Removes stale `*.ipc` files first. No-op if
    /// it is running. Minions reconnect by themselves; use
    /// [`wait_for_minions`](Self::wait_for_minions) to wait for them.
    pub fn start_master(&mut self) -> io::Result<()> {
        if let Some(p) = self.master.as_mut() {
            if p.exited().is_none() {
                return Ok(());
            }
            self.reap_master();
        }
        remove_ipc_files(&self.conf_sock_dir);
        remove_ipc_files(&self.master_cachedir.join(".salt-unix"));
        remove_pid_files(&self.master_dir);
        let t0 = Instant::now();
        let deadline = t0 + self.opts.start_timeout;
        let proc = self.spawn(
            "salt-master",
            &self.master_dir,
            "master",
            &self.master_dir.join("console.log"),
        )?;
        self.master = Some(proc);
        let candidates = [
            self.conf_sock_dir.clone(),
            self.master_cachedir.join(".salt-unix"),
        ];
        loop {
            if let Some(status) = self.master.as_mut().and_then(Proc::exited) {
                let msg = format!(
                    "salt-master exited during start ({status})\n{}",
                    self.master_log_tail()
                );
                self.reap_master();
                // salt/cli/daemons.py: shutdown(4, "The ports are not
                // available to bind") when publish_port/ret_port are taken.
                let kind = if status.code() == Some(4) {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(io::Error::new(kind, msg));
            }
            if let Some(port) = self.ports.tcp_master_pub_port {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(());
                }
            } else {
                for dir in &candidates {
                    if UnixStream::connect(dir.join(MASTER_EVENT_PUB)).is_ok() {
                        if dir != &self.conf_sock_dir {
                            eprintln!(
                                "salt_sandbox: the master put its sockets in {} instead of {}",
                                dir.display(),
                                self.conf_sock_dir.display()
                            );
                        }
                        self.sock_dir = dir.clone();
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                let msg = format!(
                    "salt-master: event bus not accepting connections after {:?}\n{}",
                    t0.elapsed(),
                    self.master_log_tail()
                );
                self.kill_master();
                return Err(io::Error::new(io::ErrorKind::TimedOut, msg));
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM to the master, SIGKILL to its process group after
    /// `stop_timeout`. The socket files stay behind (as after a real stop):
    /// connecting to them fails with "connection refused".
    pub fn stop_master(&mut self) {
        if let Some(p) = self.master.as_mut() {
            terminate(&mut [p], self.opts.stop_timeout);
        }
        self.master = None;
    }

    /// SIGKILL to the master's whole process group (a crash, no cleanup).
    pub fn kill_master(&mut self) {
        if let Some(p) = self.master.as_mut() {
            terminate(&mut [p], Duration::ZERO);
        }
        self.master = None;
    }

    /// Is the master process still running?
    pub fn master_running(&mut self) -> bool {
        self.master.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// SIGTERM to the minion, SIGKILL after `stop_timeout` (Salt minions take
    /// 5-7 s to stop). Panics on an id this sandbox never had.
    pub fn stop_minion(&mut self, id: &str) {
        let grace = self.opts.stop_timeout;
        let m = self.minion_mut(id);
        if let Some(p) = m.proc.as_mut() {
            terminate(&mut [p], grace);
        }
        m.proc = None;
    }

    /// SIGKILL to the minion's whole process group.
    pub fn kill_minion(&mut self, id: &str) {
        let m = self.minion_mut(id);
        if let Some(p) = m.proc.as_mut() {
            terminate(&mut [p], Duration::ZERO);
        }
        m.proc = None;
    }

    /// Starts minion `id` and waits until it answers `test.ping` (so the
    /// master must be up). An id the sandbox does not have yet gets a new
    /// minion folder and config (its key is auto-accepted). No-op wait if it
    /// is already running.
    pub fn start_minion(&mut self, id: &str) -> io::Result<()> {
        if !self.minions.iter().any(|m| m.id == id) {
            validate_id(id)?;
            let dir = self.create_minion(id)?;
            self.minions.push(Minion {
                id: id.to_string(),
                dir,
                proc: None,
                spawned: None,
            });
        }
        self.spawn_minion(id)?;
        self.wait_for_minions(&[id], self.opts.start_timeout)
    }

    /// Polls `salt -L <ids> test.ping` until every id answered `True`.
    /// Fails early (with log tails) if the master or one of these minions
    /// exits.
    pub fn wait_for_minions(&mut self, ids: &[&str], timeout: Duration) -> io::Result<()> {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let mut pending: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut last = String::new();
        let mut tries = 0u32;
        while !pending.is_empty() {
            if !self.master_running() {
                return Err(io::Error::other(format!(
                    "waiting for minions {pending:?}: the master is not running\n{}",
                    self.master_log_tail()
                )));
            }
            for id in &pending {
                if let Some(m) = self.minions.iter_mut().find(|m| &m.id == id) {
                    if let Some(status) = m.proc.as_mut().and_then(Proc::exited) {
                        return Err(io::Error::other(format!(
                            "salt-minion {id} exited ({status})\n{}",
                            self.minion_log_tail(id)
                        )));
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let mut msg = format!(
                    "minions {pending:?} did not answer test.ping within {:?}\nlast `salt` output:\n{last}\n{}",
                    t0.elapsed(),
                    self.master_log_tail()
                );
                for id in &pending {
                    msg.push_str(&self.minion_log_tail(id));
                }
                return Err(io::Error::new(io::ErrorKind::TimedOut, msg));
            }
            // Skip minions spawned < 15 s ago that have not logged "ready"
            // yet: a ping before that is wasted (see below).
            let ready: Vec<&str> = pending
                .iter()
                .filter(|id| match self.minions.iter().find(|m| &m.id == *id) {
                    Some(Minion {
                        spawned: Some((at, off)),
                        dir,
                        ..
                    }) => {
                        at.elapsed() > Duration::from_secs(15)
                            || log_has_since(&dir.join("minion.log"), *off, MINION_READY_LINE)
                    }
                    _ => true,
                })
                .map(String::as_str)
                .collect();
            if ready.is_empty() {
                thread::sleep(Duration::from_millis(100));
                continue;
            }
            let list = ready.join(",");
            // `salt` waits gather_job_timeout (10 s) past -t for a minion
            // that does not answer: cut each try short ourselves, with
            // longer tries as they fail (a loaded machine answers slower).
            tries += 1;
            let t = if tries <= 3 { 3 } else { 8 };
            let t_arg = t.to_string();
            let out = self.run_cli(
                "salt",
                &["-t", &t_arg, "--out=txt", "-L", &list, "test.ping"],
                left.min(Duration::from_secs(t + 2)),
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            pending.retain(|id| {
                !stdout.lines().any(|l| {
                    l.strip_prefix(id.as_str())
                        .and_then(|r| r.strip_prefix(':'))
                        .map(str::trim)
                        == Some("True")
                })
            });
            last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
            if !pending.is_empty() {
                thread::sleep(Duration::from_millis(250));
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------- the CLIs

    /// Runs `<venv>/bin/salt -c <master config dir> args...` (killed after
    /// `cli_timeout`; then the status is a SIGKILL one and stderr says so).
    pub fn salt(&self, args: &[&str]) -> Output {
        self.run_cli("salt", args, self.opts.cli_timeout)
    }

    /// Runs `<venv>/bin/salt-run -c <master config dir> args...`.
    pub fn salt_run(&self, args: &[&str]) -> Output {
        self.run_cli("salt-run", args, self.opts.cli_timeout)
    }

    /// Runs `<venv>/bin/<bin> -c <master config dir> args...` for any Salt
    /// CLI that reads the master config (`salt-key`, `salt-cp`, ...).
    pub fn run_cli(&self, bin: &str, args: &[&str], timeout: Duration) -> Output {
        let mut cmd = Command::new(self.venv.join("bin").join(bin));
        cmd.arg("-c").arg(&self.master_dir).args(args);
        run_with_timeout(cmd, timeout)
    }

    // --------------------------------------------------------------- paths

    /// The folder passed as `salt-master -c` / `salt -c`.
    pub fn master_config_dir(&self) -> PathBuf {
        self.master_dir.clone()
    }

    pub fn master_config_file(&self) -> PathBuf {
        self.master_dir.join("master")
    }

    /// The directory the master really used for its sockets (it equals the
    /// configured `sock_dir`; if Salt ever moved them to
    /// `<cachedir>/.salt-unix` this says so).
    pub fn sock_dir(&self) -> PathBuf {
        self.sock_dir.clone()
    }

    /// `<sock_dir>/master_event_pub.ipc`, the real path the master used.
    /// (With `ipc_mode_tcp` there is no such socket: use `tcp_pub_port()`.)
    pub fn pub_socket(&self) -> PathBuf {
        self.sock_dir.join(MASTER_EVENT_PUB)
    }

    /// `tcp_master_pub_port` with `ipc_mode_tcp`, else `None`.
    pub fn tcp_pub_port(&self) -> Option<u16> {
        self.ports.tcp_master_pub_port
    }

    /// Where the event bus publisher listens, for either ipc mode.
    pub fn bus_endpoint(&self) -> BusEndpoint {
        match self.ports.tcp_master_pub_port {
            Some(p) => BusEndpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            None => BusEndpoint::Ipc(self.pub_socket()),
        }
    }

    pub fn ports(&self) -> SandboxPorts {
        self.ports
    }

    /// The sandbox's private folder.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    pub fn venv_dir(&self) -> &Path {
        &self.venv
    }

    /// The master's `file_roots` base folder (put `.sls` files here).
    pub fn file_root(&self) -> PathBuf {
        self.master_dir.join("srv").join("salt")
    }

    /// The master's `pillar_roots` base folder.
    pub fn pillar_root(&self) -> PathBuf {
        self.master_dir.join("srv").join("pillar")
    }

    pub fn minion_ids(&self) -> Vec<String> {
        self.minions.iter().map(|m| m.id.clone()).collect()
    }

    /// Folder passed as `salt-minion -c` for this minion.
    pub fn minion_config_dir(&self, id: &str) -> PathBuf {
        self.root.join("minions").join(id)
    }

    pub fn master_pid(&self) -> Option<u32> {
        self.master.as_ref().map(|p| p.child.id())
    }

    pub fn minion_pid(&self, id: &str) -> Option<u32> {
        self.minions
            .iter()
            .find(|m| m.id == id)?
            .proc
            .as_ref()
            .map(|p| p.child.id())
    }

    // ---------------------------------------------------------------- logs

    /// Last lines of the master's log file and of its stdout/stderr.
    pub fn master_log_tail(&self) -> String {
        format!(
            "--- {0}/master.log (tail) ---\n{1}--- {0}/console.log (tail) ---\n{2}",
            self.master_dir.display(),
            tail(&self.master_dir.join("master.log"), 40),
            tail(&self.master_dir.join("console.log"), 20)
        )
    }

    pub fn minion_log_tail(&self, id: &str) -> String {
        let dir = self.minion_config_dir(id);
        format!(
            "--- {0}/minion.log (tail) ---\n{1}--- {0}/console.log (tail) ---\n{2}",
            dir.display(),
            tail(&dir.join("minion.log"), 30),
            tail(&dir.join("console.log"), 15)
        )
    }

    // ------------------------------------------------------------ private

    fn minion_mut(&mut self, id: &str) -> &mut Minion {
        match self.minions.iter().position(|m| m.id == id) {
            Some(i) => &mut self.minions[i],
            None => panic!(
                "salt_sandbox: no minion {id:?} (have {:?})",
                self.minion_ids()
            ),
        }
    }

    fn reap_master(&mut self) {
        if let Some(p) = self.master.as_mut() {
            terminate(&mut [p], Duration::ZERO);
        }
        self.master = None;
    }

    fn spawn(&self, bin: &str, config_dir: &Path, name: &str, console: &Path) -> io::Result<Proc> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(console)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(self.venv.join("bin").join(bin));
        cmd.arg("-c")
            .arg(config_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.root)
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .env("PYTHONUNBUFFERED", "1")
            // Own process group: Ctrl-C in the terminal does not reach it,
            // and `kill -- -pgid` reaches all of its subprocesses.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {bin}: {e}")))?;
        let pgid = child.id();
        let pgid_file = self.root.join("run").join(format!("{name}.pgid"));
        fs::write(&pgid_file, format!("{pgid}\n"))?;
        Ok(Proc {
            child,
            pgid,
            pgid_file,
            done: false,
        })
    }

    fn spawn_minion(&mut self, id: &str) -> io::Result<()> {
        let idx = self
            .minions
            .iter()
            .position(|m| m.id == id)
            .expect("known minion");
        if let Some(p) = self.minions[idx].proc.as_mut() {
            if p.exited().is_none() {
                return Ok(());
            }
            terminate(&mut [p], Duration::ZERO);
            self.minions[idx].proc = None;
        }
        let dir = self.minions[idx].dir.clone();
        remove_ipc_files(&dir.join("sock"));
        remove_ipc_files(&dir.join("cache").join(".salt-unix"));
        // A killed minion's pidfiles name a process that may linger as a
        // zombie; Salt then says "An instance is already running" and exits 1.
        remove_pid_files(&dir);
        let log_len = fs::metadata(dir.join("minion.log"))
            .map(|m| m.len())
            .unwrap_or(0);
        let proc = self.spawn(
            "salt-minion",
            &dir,
            &format!("minion-{id}"),
            &dir.join("console.log"),
        )?;
        self.minions[idx].proc = Some(proc);
        self.minions[idx].spawned = Some((Instant::now(), log_len));
        Ok(())
    }

    fn write_master_config(&self) -> io::Result<()> {
        let d = &self.master_dir;
        let p = &self.ports;
        let mut c = String::from("# written by saltbridge tests/support/salt_sandbox.rs\n");
        kv(&mut c, "user", &yaml_str(&current_user()));
        kv(&mut c, "root_dir", &yaml_path(d));
        kv(&mut c, "pki_dir", &yaml_path(&d.join("pki")));
        kv(&mut c, "cachedir", &yaml_path(&self.master_cachedir));
        // sock_dir must not be more than 10 chars longer than cachedir, or
        // Salt silently uses <cachedir>/.salt-unix instead.
        kv(&mut c, "sock_dir", &yaml_path(&self.conf_sock_dir));
        kv(&mut c, "pidfile", &yaml_path(&d.join("master.pid")));
        kv(&mut c, "log_file", &yaml_path(&d.join("master.log")));
        kv(&mut c, "key_logfile", &yaml_path(&d.join("key.log")));
        kv(
            &mut c,
            "log_level_logfile",
            &yaml_str(&self.opts.log_level_logfile),
        );
        kv(&mut c, "interface", "127.0.0.1");
        kv(&mut c, "publish_port", &p.publish_port.to_string());
        kv(&mut c, "ret_port", &p.ret_port.to_string());
        kv(&mut c, "auto_accept", "True");
        kv(
            &mut c,
            "worker_threads",
            &self.opts.worker_threads.max(1).to_string(),
        );
        c.push_str(&format!(
            "file_roots:\n  base:\n    - {}\npillar_roots:\n  base:\n    - {}\n",
            yaml_path(&self.file_root()),
            yaml_path(&self.pillar_root())
        ));
        if self.opts.ipc_mode_tcp {
            kv(&mut c, "ipc_mode", "tcp");
            for (k, v) in [
                ("tcp_master_pub_port", p.tcp_master_pub_port),
                ("tcp_master_pull_port", p.tcp_master_pull_port),
                ("tcp_master_publish_pull", p.tcp_master_publish_pull),
                ("tcp_master_workers", p.tcp_master_workers),
            ] {
                kv(&mut c, k, &v.expect("tcp port allocated").to_string());
            }
        }
        fs::write(d.join("master"), c)?;
        if !self.opts.extra_master_config.trim().is_empty() {
            fs::write(
                d.join("master.d").join("99-extra.conf"),
                &self.opts.extra_master_config,
            )?;
        }
        Ok(())
    }

    fn create_minion(&self, id: &str) -> io::Result<PathBuf> {
        let d = self.minion_config_dir(id);
        for sub in ["pki", "cache", "sock", "minion.d"] {
            fs::create_dir_all(d.join(sub))?;
        }
        let longest = d.join("sock").join("minion_event_0123456789_pull.ipc");
        if longest.as_os_str().len() > MAX_SOCK_PATH {
            return Err(invalid(format!(
                "minion id {id:?} makes socket paths too long: {}",
                longest.display()
            )));
        }
        let p = &self.ports;
        let mut c = String::from("# written by saltbridge tests/support/salt_sandbox.rs\n");
        kv(&mut c, "id", &yaml_str(id));
        kv(&mut c, "user", &yaml_str(&current_user()));
        kv(&mut c, "master", "127.0.0.1");
        kv(&mut c, "master_port", &p.ret_port.to_string());
        kv(&mut c, "publish_port", &p.publish_port.to_string());
        kv(&mut c, "root_dir", &yaml_path(&d));
        kv(&mut c, "pki_dir", &yaml_path(&d.join("pki")));
        kv(&mut c, "cachedir", &yaml_path(&d.join("cache")));
        kv(&mut c, "sock_dir", &yaml_path(&d.join("sock")));
        kv(&mut c, "pidfile", &yaml_path(&d.join("minion.pid")));
        kv(&mut c, "log_file", &yaml_path(&d.join("minion.log")));
        kv(
            &mut c,
            "log_level_logfile",
            &yaml_str(&self.opts.log_level_logfile),
        );
        // Faster start (no reverse DNS / lspci for grains) and faster
        // re-auth/reconnect after a master restart.
        kv(&mut c, "enable_fqdns_grains", "False");
        kv(&mut c, "enable_gpu_grains", "False");
        kv(&mut c, "acceptance_wait_time", "1");
        kv(&mut c, "acceptance_wait_time_max", "2");
        kv(&mut c, "random_reauth_delay", "0");
        kv(&mut c, "recon_default", "200");
        kv(&mut c, "recon_max", "1000");
        kv(&mut c, "recon_randomize", "False");
        c.push_str(&format!(
            "file_roots:\n  base:\n    - {}\n",
            yaml_path(&d.join("srv").join("salt"))
        ));
        fs::write(d.join("minion"), c)?;
        if !self.opts.extra_minion_config.trim().is_empty() {
            fs::write(
                d.join("minion.d").join("99-extra.conf"),
                &self.opts.extra_minion_config,
            )?;
        }
        Ok(d)
    }
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

// ------------------------------------------------------------------ helpers

fn venv_env_var(version: &str) -> String {
    format!("SALTBRIDGE_SALT_VENV_{}", version.replace(['.', '-'], "_"))
}

fn venv_candidates(version: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = env::var_os(venv_env_var(version)) {
        if !p.is_empty() {
            v.push(PathBuf::from(p));
        }
    }
    let mut manifests: Vec<OsString> = Vec::new();
    if let Some(m) = env::var_os("CARGO_MANIFEST_DIR") {
        manifests.push(m);
    }
    manifests.push(OsString::from(env!("CARGO_MANIFEST_DIR")));
    for m in manifests {
        let p = PathBuf::from(m)
            .join(".cache")
            .join(format!("salt-{version}"));
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

fn is_ci() -> bool {
    env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn validate_id(id: &str) -> io::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "minion id {id:?}: use 1-40 chars of [A-Za-z0-9._-]"
        )))
    }
}

fn kv(c: &mut String, k: &str, v: &str) {
    c.push_str(k);
    c.push_str(": ");
    c.push_str(v);
    c.push('\n');
}

fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn yaml_path(p: &Path) -> String {
    yaml_str(&p.to_string_lossy())
}

/// The user to put in `user:` (Salt refuses to start as another user
/// unless it is root).
fn current_user() -> String {
    static USER: Mutex<Option<String>> = Mutex::new(None);
    let mut g = USER.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(|| {
        Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| env::var("USER").ok())
            .unwrap_or_else(|| "root".to_string())
    })
    .clone()
}

/// Ports handed out by this process, never handed out twice (bind(0) may
/// return a port another sandbox got a moment ago but has not bound yet).
static USED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn take_port(
    used: &mut BTreeSet<u16>,
    held: &mut Vec<TcpListener>,
    need_pair: bool,
) -> io::Result<u16> {
    for _ in 0..200 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = l.local_addr()?.port();
        if used.contains(&port) {
            continue;
        }
        if need_pair {
            let Some(p2) = port.checked_add(DEFAULT_POOL_PORT_OFFSET) else {
                continue;
            };
            if used.contains(&p2) {
                continue;
            }
            match TcpListener::bind((Ipv4Addr::LOCALHOST, p2)) {
                Ok(l2) => {
                    used.insert(p2);
                    held.push(l2);
                }
                Err(_) => continue,
            }
        }
        used.insert(port);
        held.push(l);
        return Ok(port);
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no free port found",
    ))
}

fn alloc_ports(tcp: bool) -> io::Result<SandboxPorts> {
    let mut used = USED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // Hold every listener until all are picked, so they are distinct.
    let mut held: Vec<TcpListener> = Vec::new();
    let publish_port = take_port(&mut used, &mut held, false)?;
    let ret_port = take_port(&mut used, &mut held, false)?;
    let mut ports = SandboxPorts {
        publish_port,
        ret_port,
        tcp_master_pub_port: None,
        tcp_master_pull_port: None,
        tcp_master_publish_pull: None,
        tcp_master_workers: None,
    };
    if tcp {
        ports.tcp_master_pub_port = Some(take_port(&mut used, &mut held, false)?);
        ports.tcp_master_pull_port = Some(take_port(&mut used, &mut held, false)?);
        ports.tcp_master_publish_pull = Some(take_port(&mut used, &mut held, false)?);
        ports.tcp_master_workers = Some(take_port(&mut used, &mut held, true)?);
    }
    Ok(ports)
}

fn remove_ipc_files(dir: &Path) {
    remove_files_with_ext(dir, "ipc");
}

/// master.pid / minion.pid / process_responsibility_minion.pid.
fn remove_pid_files(dir: &Path) {
    remove_files_with_ext(dir, "pid");
}

fn remove_files_with_ext(dir: &Path, ext: &str) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == ext) && p.is_file() {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// Has minion.log, past byte `offset`, got the "ready" line?
fn log_has_since(path: &Path, offset: u64, needle: &str) -> bool {
    let Ok(b) = fs::read(path) else { return false };
    let start = (offset as usize).min(b.len());
    String::from_utf8_lossy(&b[start..]).contains(needle)
}

/// Is any live (non-zombie) process in process group `pgid`? Reads /proc.
fn group_alive(pgid: u32) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces and ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        let _ppid = f.next();
        let pgrp = f.next().and_then(|s| s.parse::<u32>().ok());
        if pgrp == Some(pgid) && state != Some("Z") && state != Some("X") {
            return true;
        }
    }
    false
}

/// `kill -s SIG -- target` (negative target = process group).
fn send_signal(target: i64, sig: &str) {
    let t = target.to_string();
    let quiet = |c: &mut Command| {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut c = Command::new("kill");
    c.args(["-s", sig, "--", &t]);
    quiet(&mut c);
    if c.status().is_err() {
        let mut c = Command::new("sh");
        c.args(["-c", "kill -s \"$0\" -- \"$1\"", sig, &t]);
        quiet(&mut c);
        let _ = c.status();
    }
}

/// SIGTERM to every main process, wait until each has exited and its
/// process group is empty; at `grace` SIGKILL the groups that are left.
/// Never blocks much longer than `grace` + 5 s.
fn terminate(procs: &mut [&mut Proc], grace: Duration) {
    let start = Instant::now();
    if grace.is_zero() {
        for p in procs.iter_mut() {
            if !p.finished() {
                send_signal(-(p.pgid as i64), "KILL");
                let _ = p.child.kill();
            }
        }
    } else {
        for p in procs.iter_mut() {
            if p.exited().is_none() {
                send_signal(p.child.id() as i64, "TERM");
            }
        }
    }
    let mut killed = grace.is_zero();
    let hard_deadline = start + grace + Duration::from_secs(5);
    loop {
        let mut all = true;
        for p in procs.iter_mut() {
            if !p.finished() {
                all = false;
            }
        }
        if all {
            break;
        }
        let now = Instant::now();
        if !killed && now >= start + grace {
            for p in procs.iter_mut() {
                if !p.finished() {
                    send_signal(-(p.pgid as i64), "KILL");
                    let _ = p.child.kill();
                }
            }
            killed = true;
        }
        if now >= hard_deadline {
            eprintln!("salt_sandbox: processes still alive 5 s after SIGKILL; giving up on them");
            break;
        }
        thread::sleep(if killed {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(25)
        });
    }
    for p in procs.iter_mut() {
        let _ = fs::remove_file(&p.pgid_file);
    }
}

/// Watchdog: `sh` reading our pipe. A line = we cleaned up; EOF without a
/// line = this process died: SIGKILL the recorded process groups and remove
/// the folder.
fn spawn_watchdog(root: &Path, keep: bool) -> io::Result<(Child, ChildStdin)> {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
if IFS= read -r _line; then exit 0; fi
for f in "$1"/run/*.pgid; do
  [ -f "$f" ] || continue
  kill -s KILL -- "-$(cat "$f")" 2>/dev/null
done
if [ "$2" != keep ] && [ -n "$1" ]; then sleep 0.5; rm -rf -- "$1"; fi
"#;
    let mut child = Command::new("sh")
        .args(["-c", SCRIPT, "salt-sandbox-watchdog"])
        .arg(root)
        .arg(if keep { "keep" } else { "clean" })
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let stdin = child.stdin.take().expect("piped stdin");
    Ok((child, stdin))
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONUNBUFFERED", "1");
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                status: ExitStatus::from_raw(127 << 8),
                stdout: Vec::new(),
                stderr: format!("salt_sandbox: cannot run {cmd:?}: {e}\n").into_bytes(),
            }
        }
    };
    let reader = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_t = reader(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err_t = reader(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap_or(ExitStatus::from_raw(9));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => break child.wait().unwrap_or(ExitStatus::from_raw(9)),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let mut stderr = err_t.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(format!("\nsalt_sandbox: killed after {timeout:?}\n").as_bytes());
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
            out.push('\n');
            out
        }
        Err(e) => format!("({e})\n"),
    }
}
