//! Child processes that never outlive their test: every process a test
//! starts (saltbridge, salt-master, salt-minion, salt-syndic, salt-api,
//! tansu, Python helpers) goes through [`spawn`], which makes it the leader
//! of its own process group and returns a [`ProcessGroup`] guard.
//!
//! Why a group: Salt daemons fork (a master is nine processes:
//! PubServerChannel, EventMonitor, MWorkers...), so killing the pid we
//! spawned leaves the rest running. The guard's `Drop` (which also runs when
//! the test panics) sends SIGTERM to the whole group, waits briefly, then
//! SIGKILLs whatever is left of it, and reaps the child.
//!
//! `Drop` does not run when the test process itself is killed (SIGKILL, a
//! timeout, `abort`): for that, one `sh` watchdog per test process holds the
//! read end of a pipe and is told each group as it starts (`+PGID`) and
//! ends (`-PGID`). When the pipe closes (the test process is gone, however it
//! ended) the watchdog SIGKILLs every group still listed. The Salt sandbox
//! keeps its own watchdog too, which also removes its folder.
//!
//! ```ignore
//! let mut cmd = Command::new("salt-master");
//! let mut master = process::spawn(&mut cmd)?;   // Deref<Target = Child>
//! master.terminate(Duration::from_secs(5));     // SIGTERM, then SIGKILL the group
//! ```
//!
//! Signals are sent with the `kill` command (no libc dependency).
#![allow(dead_code)]

use std::io::{self, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long `Drop` waits after SIGTERM before SIGKILL.
pub const DROP_GRACE: Duration = Duration::from_secs(1);

/// How long after SIGKILL a group may take to disappear before we give up
/// (a process in uninterruptible sleep); never reached in practice.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// Spawns `cmd` as the leader of a new process group (`process_group(0)`),
/// registered with this test process's watchdog.
pub fn spawn(cmd: &mut Command) -> io::Result<ProcessGroup> {
    let child = cmd.process_group(0).spawn()?;
    let pgid = child.id();
    watchdog_send(&format!("+{pgid}\n"));
    Ok(ProcessGroup {
        child,
        pgid,
        status: None,
    })
}

/// A spawned child and its process group; dropping it kills the group.
/// Derefs to the [`Child`] (for `id`, `stdout`, `try_wait`...).
pub struct ProcessGroup {
    child: Child,
    pgid: u32,
    status: Option<ExitStatus>,
}

impl ProcessGroup {
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// The main process's exit status, once it has exited (reaps it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    /// Main process exited and nothing else is left in its group.
    pub fn finished(&mut self) -> bool {
        self.exit_status().is_some() && !group_alive(self.pgid)
    }

    /// `kill -s SIG` to the main process only (as systemd's stop would).
    pub fn signal(&self, sig: &str) {
        send_signal(i64::from(self.child.id()), sig);
    }

    /// `kill -s SIG` to every process of the group.
    pub fn signal_group(&self, sig: &str) {
        send_signal(-i64::from(self.pgid), sig);
    }

    /// Waits at most `timeout` for the main process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exit_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the main process; after `grace` (or at once when it has
    /// exited) SIGKILL to whatever is left of the group. Returns the main
    /// process's status, `None` when it did not exit within `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exit_status().is_none() {
            self.signal("TERM");
        }
        let status = self.wait_timeout(grace);
        self.kill_group();
        status
    }

    /// SIGKILL to the whole group, then waits until it is gone and reaps.
    pub fn kill_group(&mut self) {
        if !self.finished() {
            self.signal_group("KILL");
            let _ = self.child.kill();
        }
        let deadline = Instant::now() + KILL_PATIENCE;
        while !self.finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
    }

    /// SIGTERM to the whole group, `grace` to go, then `kill_group`.
    pub fn stop_group(&mut self, grace: Duration) {
        if !self.finished() {
            self.signal_group("TERM");
            let deadline = Instant::now() + grace;
            while !self.finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill_group();
    }
}

impl Deref for ProcessGroup {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ProcessGroup {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop_group(DROP_GRACE);
        watchdog_send(&format!("-{}\n", self.pgid));
    }
}

/// Is any live (non-zombie) process in process group `pgid`? Reads /proc.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
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
pub fn send_signal(target: i64, sig: &str) {
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

/// The watchdog: `+PGID` adds a group, `-PGID` removes it; at EOF (this
/// process is gone) every group left is SIGKILLed.
const WATCHDOG: &str = r#"trap '' INT TERM HUP
groups=' '
while IFS= read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) g=${line#-}
        case $groups in *" $g "*) groups="${groups%% $g *} ${groups#* $g }" ;; esac ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"#;

static WATCHDOG_PIPE: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();

fn watchdog_send(line: &str) {
    let pipe = WATCHDOG_PIPE.get_or_init(|| Mutex::new(start_watchdog()));
    let mut pipe = pipe.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(w) = pipe.as_mut() {
        if w.write_all(line.as_bytes()).is_err() {
            *pipe = None;
        }
    }
}

fn start_watchdog() -> Option<ChildStdin> {
    let spawned = Command::new("sh")
        .args(["-c", WATCHDOG, "test-process-watchdog"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group: a Ctrl-C to the test does not stop it before it acts.
        .process_group(0)
        .spawn();
    match spawned {
        // Not reaped: it outlives us by design, and exits at our EOF.
        Ok(mut child) => child.stdin.take(),
        Err(e) => {
            eprintln!("process: no watchdog ({e}); only Drop stops children");
            None
        }
    }
}
