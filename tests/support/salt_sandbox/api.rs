//! salt-api (rest_cherrypy, plain HTTP) beside a sandbox's master, for the
//! `saltapi:` source's tests. It reads the master's config (its
//! `master.d/`), so [`api_config`] goes into
//! `SandboxOptions::extra_master_config`.
//!
//! salt-api after SIGTERM stops listening but keeps serving open `/events`
//! streams, and its RunNetapi child outlives a SIGKILLed parent
//! (measured on 3006.29 and 3008.4): stopping it therefore kills its whole
//! process group, and `Drop` and the watchdog do the same.

use super::*;

/// The eauth user the tests log in as; `auto` takes any password,
/// `sharedsecret` only [`API_SHARED_SECRET`].
pub const API_USER: &str = "saltdev";
pub const API_SHARED_SECRET: &str = "lab-shared-secret";

/// Master config for salt-api on 127.0.0.1:`port`, with `auto` and
/// `sharedsecret` eauth and tokens that live `token_expire` seconds.
pub fn api_config(port: u16, token_expire: u64) -> String {
    format!(
        "# salt-api for the saltapi: source tests\n\
         token_expire: {token_expire}\n\
         sharedsecret: '{API_SHARED_SECRET}'\n\
         external_auth:\n  auto:\n    {API_USER}: ['.*', '@wheel', '@runner', '@jobs']\n  \
         sharedsecret:\n    {API_USER}: ['.*', '@wheel', '@runner', '@jobs']\n\
         rest_cherrypy:\n  host: 127.0.0.1\n  port: {port}\n  disable_ssl: True\n"
    )
}

impl SaltSandbox {
    /// Starts `salt-api` in the foreground, its own process group, and waits
    /// until `port` accepts connections. Needs CherryPy in the venv
    /// (scripts/test installs it).
    pub fn start_api(&mut self, port: u16) -> io::Result<()> {
        if self.api.as_mut().is_some_and(|p| p.exited().is_none()) {
            return Ok(());
        }
        self.kill_api();
        let extra = format!(
            "api_pidfile: {}\napi_logfile: {}\n",
            config::yaml_path(&self.master_dir.join("salt-api.pid")),
            config::yaml_path(&self.master_dir.join("api.log"))
        );
        fs::write(self.master_dir.join("master.d").join("98-api.conf"), extra)?;
        let console = self.master_dir.join("api-console.log");
        let proc = self.spawn("salt-api", &self.master_dir.clone(), "api", &console)?;
        self.api = Some(proc);
        let deadline = Instant::now() + self.opts.start_timeout;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(status) = self.api.as_mut().and_then(Proc::exited) {
                let log = fs::read_to_string(&console).unwrap_or_default();
                self.kill_api();
                return Err(io::Error::other(format!(
                    "salt-api exited during start ({status})\n{log}"
                )));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = fs::read_to_string(&console).unwrap_or_default();
                self.kill_api();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("salt-api not listening on {addr}\n{log}"),
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// SIGKILL to salt-api's whole process group (a SIGTERM would leave
    /// its open streams running).
    pub fn kill_api(&mut self) {
        if let Some(p) = self.api.as_mut() {
            terminate(&mut [p], Duration::ZERO);
        }
        self.api = None;
    }

    /// salt-api's log, for messages on failure.
    pub fn api_log_tail(&self) -> String {
        let log = fs::read_to_string(self.master_dir.join("api.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}
