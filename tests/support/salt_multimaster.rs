//! Two hot Salt masters (`mm1` on 127.0.0.1, `mm2` on 127.0.0.2, the same
//! ports) and one minion `hh-minion` with `master: [127.0.0.1, 127.0.0.2]`
//! (multi-master, hot/hot), for the multi-master test. The masters are not
//! a cluster: each has its own pki, cache and bus, and accepts the minion's
//! key itself (`auto_accept`). They share the master key pair, as Salt's
//! multi-master tutorial says: master 2 starts with master 1's
//! `master.pem`/`master.pub`. Every daemon runs in its own process group
//! ([`super::process`]); dropping the harness, a panic included, stops them.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::process::ProcessGroup;
use super::salt_sandbox::{current_user, salt_cli, spawn_salt_daemon};

pub const IDS: [&str; 2] = ["mm1", "mm2"];
pub const ADDRS: [&str; 2] = ["127.0.0.1", "127.0.0.2"];
pub const MINION: &str = "hh-minion";

pub struct HotMasters {
    venv: PathBuf,
    root: tempfile::TempDir,
    masters: Vec<ProcessGroup>,
    minion: Option<ProcessGroup>,
    pub publish_port: u16,
    pub ret_port: u16,
}

impl HotMasters {
    /// Writes the configs and starts both masters (not the minion: see
    /// [`HotMasters::start_minion`]); returns once both buses accept readers.
    pub fn start(venv: &Path, timeout: Duration) -> io::Result<HotMasters> {
        let root = tempfile::Builder::new().prefix("sbmm").tempdir()?;
        let mut h = HotMasters {
            venv: venv.to_owned(),
            root,
            masters: Vec::new(),
            minion: None,
            publish_port: free_port(),
            ret_port: free_port(),
        };
        for n in 1..=2 {
            h.write_master(n)?;
        }
        h.write_minion()?;
        let deadline = Instant::now() + timeout;
        h.spawn_master(1)?;
        h.wait_for_bus(1, deadline)?;
        // The shared master key pair (3008 also keeps it as `<id>.pem`).
        let pki1 = h.master_dir(1).join("pki");
        let pki2 = h.master_dir(2).join("pki");
        for (mine, shared) in [("mm1.pem", "master.pem"), ("mm1.pub", "master.pub")] {
            let from = if pki1.join(shared).exists() {
                pki1.join(shared)
            } else {
                pki1.join(mine)
            };
            fs::copy(&from, pki2.join(shared))?;
        }
        h.spawn_master(2)?;
        h.wait_for_bus(2, deadline)?;
        Ok(h)
    }

    /// Starts (or restarts) the minion; returns once it answers
    /// `test.ping` through both masters.
    pub fn start_minion(&mut self, timeout: Duration) -> io::Result<()> {
        if let Some(mut m) = self.minion.take() {
            // A minion's SIGTERM handler sleeps 5 s: SIGKILL.
            m.kill_group();
        }
        let dir = self.minion_dir();
        // A killed minion's pid files name a dead process, and the next
        // one exits with "An instance is already running".
        for e in fs::read_dir(&dir)?.flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                let _ = fs::remove_file(e.path());
            }
        }
        let minion = spawn_salt_daemon(&self.venv, "salt-minion", &dir, &dir.join("console.log"))?;
        self.minion = Some(minion);
        let deadline = Instant::now() + timeout;
        for n in 1..=2 {
            loop {
                let out = self.salt(n, &[MINION, "test.ping", "-t", "5"]);
                if String::from_utf8_lossy(&out.stdout).contains("True") {
                    break;
                }
                if Instant::now() > deadline {
                    let log = fs::read_to_string(dir.join("minion.log")).unwrap_or_default();
                    return Err(io::Error::other(format!(
                        "{MINION} never answered master {n}; minion.log:\n{log}"
                    )));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    pub fn master_dir(&self, n: usize) -> PathBuf {
        self.root.path().join(format!("m{n}"))
    }

    /// The master config file of master `n` (what `ipc:` reads).
    pub fn master_config(&self, n: usize) -> PathBuf {
        self.master_dir(n).join("master")
    }

    pub fn pub_socket(&self, n: usize) -> PathBuf {
        self.master_dir(n).join("run").join("master_event_pub.ipc")
    }

    fn minion_dir(&self) -> PathBuf {
        self.root.path().join("n")
    }

    /// `salt ARGS` on master `n`.
    pub fn salt(&self, n: usize, args: &[&str]) -> Output {
        salt_cli(
            &self.venv,
            "salt",
            &self.master_dir(n),
            args,
            Duration::from_secs(90),
        )
    }

    fn spawn_master(&mut self, n: usize) -> io::Result<()> {
        let dir = self.master_dir(n);
        let master = spawn_salt_daemon(&self.venv, "salt-master", &dir, &dir.join("console.log"))?;
        self.masters.push(master);
        Ok(())
    }

    fn wait_for_bus(&self, n: usize, deadline: Instant) -> io::Result<()> {
        while std::os::unix::net::UnixStream::connect(self.pub_socket(n)).is_err() {
            if Instant::now() > deadline {
                let log =
                    fs::read_to_string(self.master_dir(n).join("master.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "master {n}'s bus never opened; master.log:\n{log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    fn write_master(&self, n: usize) -> io::Result<()> {
        let d = self.master_dir(n);
        for sub in ["pki", "cache", "run", "srv"] {
            fs::create_dir_all(d.join(sub))?;
        }
        let p = |x: &Path| x.display().to_string();
        let text = format!(
            "id: {id}\ninterface: {addr}\npublish_port: {pub_}\nret_port: {ret}\nroot_dir: {d}\n\
             pki_dir: {d}/pki\ncachedir: {d}/cache\nsock_dir: {d}/run\npidfile: {d}/master.pid\n\
             log_file: {d}/master.log\nlog_level_logfile: info\nuser: {user}\nauto_accept: True\n\
             worker_threads: 2\nfile_roots: {{base: [{d}/srv]}}\n",
            id = IDS[n - 1],
            addr = ADDRS[n - 1],
            pub_ = self.publish_port,
            ret = self.ret_port,
            d = p(&d),
            user = current_user(),
        );
        fs::write(self.master_config(n), text)
    }

    fn write_minion(&self) -> io::Result<()> {
        let d = self.minion_dir();
        for sub in ["pki", "cache", "sock"] {
            fs::create_dir_all(d.join(sub))?;
        }
        let p = |x: &Path| x.display().to_string();
        let text = format!(
            "id: {MINION}\nmaster: [{a}, {b}]\nmaster_port: {ret}\npublish_port: {pub_}\n\
             root_dir: {d}\npki_dir: {d}/pki\ncachedir: {d}/cache\nsock_dir: {d}/sock\n\
             pidfile: {d}/minion.pid\nlog_file: {d}/minion.log\nlog_level_logfile: info\n\
             user: {user}\nenable_fqdns_grains: False\nenable_gpu_grains: False\n\
             acceptance_wait_time: 1\nrandom_reauth_delay: 0\n",
            a = ADDRS[0],
            b = ADDRS[1],
            ret = self.ret_port,
            pub_ = self.publish_port,
            d = p(&d),
            user = current_user(),
        );
        fs::write(d.join("minion"), text)
    }
}

impl Drop for HotMasters {
    fn drop(&mut self) {
        if let Some(mut m) = self.minion.take() {
            m.kill_group();
        }
        for m in self.masters.iter_mut().rev() {
            m.terminate(Duration::from_secs(3));
        }
        if std::thread::panicking() {
            for n in 1..=2 {
                let log =
                    fs::read_to_string(self.master_dir(n).join("master.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                eprintln!(
                    "master {n} log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}
