//! Starting and stopping the master and the minions, and waiting for them.

use super::*;

impl SaltSandbox {
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
            api: None,
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
}
