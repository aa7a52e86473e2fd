//! Salt's command-line tools (`salt`, `salt-run`, ...) against the sandbox,
//! each killed after a timeout.

use super::*;

impl SaltSandbox {
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
}

/// Runs `<venv>/bin/<bin> -c <conf> args...` (killed after `timeout`):
/// for the harnesses of several masters, which have no [`SaltSandbox`].
pub fn salt_cli(venv: &Path, bin: &str, conf: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(venv.join("bin").join(bin));
    cmd.arg("-c").arg(conf).args(args);
    run_with_timeout(cmd, timeout)
}

/// Starts the Salt daemon `<venv>/bin/<bin> -c <conf>` (a master, minion
/// or syndic) in its own process group, its output into `console`.
pub fn spawn_salt_daemon(
    venv: &Path,
    bin: &str,
    conf: &Path,
    console: &Path,
) -> io::Result<ProcessGroup> {
    let out = fs::File::create(console)?;
    let mut cmd = Command::new(venv.join("bin").join(bin));
    cmd.arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .env_remove("PYTHONPATH");
    process::spawn(&mut cmd)
}

pub(super) fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONUNBUFFERED", "1");
    let mut child = match process::spawn(&mut cmd) {
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
