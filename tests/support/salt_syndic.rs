//! A real Salt syndic topology on one machine, for the syndic tests: a
//! master of masters `mom` (127.0.0.1, `order_masters: True`), a syndic
//! master `syn` (127.0.0.2, same ports) running `salt-syndic` towards
//! `mom`, and a minion `syn-minion-1` of `syn`. The config is the one
//! measured to work on Salt 3006.29 (docs/topologies.md, "Syndic"):
//! `salt-syndic` reads `<dir>/master` and `<dir>/minion` (its `id`,
//! `pki_dir`, `sock_dir` and `publish_port` come from the latter);
//! `syndic_wait` and `gather_job_timeout` are low so that `salt` on the
//! master of masters does not wait long for the syndic's own id, which it
//! lists among a job's minions and which never returns. Salt 3008.4's
//! `salt-syndic` hangs at start (`fire_master_syndic_start`), so the tests
//! use 3006.29. Every daemon runs in its own process group
//! ([`super::process`]); dropping the topology, a panic included, stops them.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::process::ProcessGroup;
use super::salt_sandbox::{current_user, salt_cli, spawn_salt_daemon};

pub const MOM: &str = "mom";
pub const SYNDIC: &str = "syn";
pub const MINION: &str = "syn-minion-1";

/// The master of masters, the syndic master with its `salt-syndic`, and its minion.
pub struct SaltSyndic {
    venv: PathBuf,
    root: tempfile::TempDir,
    procs: Vec<ProcessGroup>,
    pub publish_port: u16,
    pub ret_port: u16,
}

impl SaltSyndic {
    /// Writes the configs, starts both masters, then `salt-syndic` and the
    /// minion, and waits (up to `timeout`) until the minion answers
    /// `test.ping` sent from the master of masters.
    pub fn start(venv: &Path, timeout: Duration) -> io::Result<SaltSyndic> {
        let root = tempfile::Builder::new().prefix("sbs").tempdir()?;
        let mut s = SaltSyndic {
            venv: venv.to_owned(),
            root,
            procs: Vec::new(),
            publish_port: free_port(),
            ret_port: free_port(),
        };
        s.write_configs()?;
        let deadline = Instant::now() + timeout;
        for name in [MOM, SYNDIC] {
            let etc = s.dir(name).join("etc");
            s.spawn("salt-master", &etc, &s.dir(name).join("console.log"))?;
        }
        for name in [MOM, SYNDIC] {
            let sock = s.pub_socket_of(name);
            while std::os::unix::net::UnixStream::connect(&sock).is_err() {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "master {name} never opened its bus\n{}\n{}",
                        s.log_tail(name, "master.log"),
                        s.log_tail(name, "console.log")
                    )));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let etc = s.dir(SYNDIC).join("etc");
        s.spawn(
            "salt-syndic",
            &etc,
            &s.dir(SYNDIC).join("syndic-console.log"),
        )?;
        let minion = s.dir(MINION);
        s.spawn("salt-minion", &minion, &minion.join("console.log"))?;
        loop {
            let out = s.salt(&[MINION, "test.ping", "-t", "5"]);
            if String::from_utf8_lossy(&out.stdout).contains("True") {
                break;
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "{MINION} never answered through the syndic\n{}\n{}",
                    s.log_tail(SYNDIC, "syndic.log"),
                    s.log_tail(MINION, "minion.log")
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(s)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// The master of masters' config file (what `ipc:` reads).
    pub fn mom_config(&self) -> PathBuf {
        self.dir(MOM).join("etc").join("master")
    }

    pub fn pub_socket(&self) -> PathBuf {
        self.pub_socket_of(MOM)
    }

    /// The syndic master's bus.
    pub fn syndic_pub_socket(&self) -> PathBuf {
        self.pub_socket_of(SYNDIC)
    }

    fn pub_socket_of(&self, name: &str) -> PathBuf {
        self.dir(name).join("run").join("master_event_pub.ipc")
    }

    /// `salt ARGS` on the master of masters.
    pub fn salt(&self, args: &[&str]) -> Output {
        self.cli("salt", &self.dir(MOM).join("etc"), args)
    }

    /// `salt-call ARGS` on the minion behind the syndic.
    pub fn salt_call(&self, args: &[&str]) -> Output {
        self.cli("salt-call", &self.dir(MINION), args)
    }

    fn log_tail(&self, name: &str, file: &str) -> String {
        let text = fs::read_to_string(self.dir(name).join(file)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{name} {file} ends:\n{}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    fn cli(&self, bin: &str, conf: &Path, args: &[&str]) -> Output {
        salt_cli(&self.venv, bin, conf, args, Duration::from_secs(120))
    }

    fn spawn(&mut self, bin: &str, conf: &Path, console: &Path) -> io::Result<()> {
        self.procs
            .push(spawn_salt_daemon(&self.venv, bin, conf, console)?);
        Ok(())
    }

    fn write_configs(&self) -> io::Result<()> {
        let p = |x: &Path| x.display().to_string();
        // Each master has its own root_dir: with one shared root, both
        // created Salt's default dirs under it at once (`var/cache/salt/
        // master/queues`), and the loser exited "[Errno 17] File exists"
        // (seen once in a suite run: "master syn never opened its bus").
        for (name, ip, extra) in [
            (
                MOM,
                "127.0.0.1",
                "order_masters: True\nsyndic_wait: 1\ngather_job_timeout: 3\n".to_owned(),
            ),
            (
                SYNDIC,
                "127.0.0.2",
                format!(
                    "syndic_master: 127.0.0.1\nsyndic_master_port: {ret}\n\
                     syndic_pidfile: {d}/syndic.pid\nsyndic_log_file: {d}/syndic.log\n",
                    ret = self.ret_port,
                    d = p(&self.dir(SYNDIC)),
                ),
            ),
        ] {
            let d = self.dir(name);
            for sub in ["etc", "pki", "cache", "run"] {
                fs::create_dir_all(d.join(sub))?;
            }
            let text = format!(
                "id: {name}\ninterface: {ip}\npublish_port: {pub_}\nret_port: {ret}\n\
                 root_dir: {d}\npki_dir: {d}/pki\ncachedir: {d}/cache\nsock_dir: {d}/run\n\
                 pidfile: {d}/master.pid\nlog_file: {d}/master.log\nlog_level_logfile: info\n\
                 user: {user}\nauto_accept: True\nworker_threads: 2\n{extra}",
                pub_ = self.publish_port,
                ret = self.ret_port,
                d = p(&d),
                user = current_user(),
            );
            fs::write(d.join("etc").join("master"), text)?;
        }
        let d = self.dir(SYNDIC);
        fs::create_dir_all(d.join("syndic-pki"))?;
        fs::create_dir_all(d.join("srun"))?;
        fs::write(
            d.join("etc").join("minion"),
            format!(
                "id: {SYNDIC}\nroot_dir: {d}\npki_dir: {d}/syndic-pki\nsock_dir: {d}/srun\n\
                 log_file: {d}/syndic.log\nlog_level_logfile: info\npublish_port: {pub_}\nuser: {user}\n",
                d = p(&d),
                pub_ = self.publish_port,
                user = current_user(),
            ),
        )?;
        let d = self.dir(MINION);
        for sub in ["pki", "cache", "sock"] {
            fs::create_dir_all(d.join(sub))?;
        }
        fs::write(
            d.join("minion"),
            format!(
                "id: {MINION}\nmaster: 127.0.0.2\nmaster_port: {ret}\npublish_port: {pub_}\n\
                 root_dir: {d}\npki_dir: {d}/pki\ncachedir: {d}/cache\nsock_dir: {d}/sock\n\
                 pidfile: {d}/minion.pid\nlog_file: {d}/minion.log\nlog_level_logfile: info\n\
                 user: {user}\nenable_fqdns_grains: False\nenable_gpu_grains: False\n\
                 acceptance_wait_time: 1\nrandom_reauth_delay: 0\n",
                ret = self.ret_port,
                pub_ = self.publish_port,
                d = p(&d),
                user = current_user(),
            ),
        )
    }
}

impl Drop for SaltSyndic {
    fn drop(&mut self) {
        // The minion, the syndic, then the masters.
        for p in self.procs.iter_mut().rev() {
            p.terminate(Duration::from_secs(3));
        }
        if std::thread::panicking() {
            for (name, file) in [(MOM, "master.log"), (SYNDIC, "syndic.log")] {
                eprintln!("{}", self.log_tail(name, file));
            }
        }
    }
}
