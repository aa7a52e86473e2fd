//! Spawning the daemons, each the leader of its own process group
//! (through `support::process`), and stopping them: SIGTERM, then SIGKILL to
//! the whole group; plus the watchdog that kills the groups and removes the
//! folder when the test process dies without `Drop`.

use super::*;

impl SaltSandbox {
    pub(super) fn minion_mut(&mut self, id: &str) -> &mut Minion {
        match self.minions.iter().position(|m| m.id == id) {
            Some(i) => &mut self.minions[i],
            None => panic!(
                "salt_sandbox: no minion {id:?} (have {:?})",
                self.minion_ids()
            ),
        }
    }

    pub(super) fn reap_master(&mut self) {
        if let Some(p) = self.master.as_mut() {
            terminate(&mut [p], Duration::ZERO);
        }
        self.master = None;
    }

    pub(super) fn spawn(
        &self,
        bin: &str,
        config_dir: &Path,
        name: &str,
        console: &Path,
    ) -> io::Result<Proc> {
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
            .env("PYTHONUNBUFFERED", "1");
        // Own process group (`process::spawn`): Ctrl-C in the terminal does
        // not reach it, and `kill -- -pgid` reaches all of its subprocesses.
        let child = process::spawn(&mut cmd)
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

    pub(super) fn spawn_minion(&mut self, id: &str) -> io::Result<()> {
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
}

pub(super) fn remove_ipc_files(dir: &Path) {
    remove_files_with_ext(dir, "ipc");
}

/// master.pid / minion.pid / process_responsibility_minion.pid.
pub(super) fn remove_pid_files(dir: &Path) {
    remove_files_with_ext(dir, "pid");
}

pub(super) fn remove_files_with_ext(dir: &Path, ext: &str) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == ext) && p.is_file() {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// SIGTERM to every main process, wait until each has exited and its
/// process group is empty; at `grace` SIGKILL the groups that are left.
/// Never blocks much longer than `grace` + 5 s.
pub(super) fn terminate(procs: &mut [&mut Proc], grace: Duration) {
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
pub(super) fn spawn_watchdog(root: &Path, keep: bool) -> io::Result<(Child, ChildStdin)> {
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
