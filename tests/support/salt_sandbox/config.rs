//! The master and minion config files, and the ports they get.

use super::*;

impl SaltSandbox {
    pub(super) fn write_master_config(&self) -> io::Result<()> {
        let d = &self.master_dir;
        let p = &self.ports;
        let mut c = String::from("# written by saltbridge tests/support/salt_sandbox/config.rs\n");
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

    pub(super) fn create_minion(&self, id: &str) -> io::Result<PathBuf> {
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
        let mut c = String::from("# written by saltbridge tests/support/salt_sandbox/config.rs\n");
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

pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

pub(super) fn validate_id(id: &str) -> io::Result<()> {
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

pub(super) fn kv(c: &mut String, k: &str, v: &str) {
    c.push_str(k);
    c.push_str(": ");
    c.push_str(v);
    c.push('\n');
}

pub(super) fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(super) fn yaml_path(p: &Path) -> String {
    yaml_str(&p.to_string_lossy())
}

/// The user to put in `user:` (Salt refuses to start as another user
/// unless it is root).
pub fn current_user() -> String {
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

pub(super) fn alloc_ports(tcp: bool) -> io::Result<SandboxPorts> {
    let mut used = used_ports();
    // Hold every listener until all are picked, so they are distinct.
    let mut held: Vec<TcpListener> = Vec::new();
    let publish_port = take_port(&mut used, &mut held, None)?;
    let ret_port = take_port(&mut used, &mut held, None)?;
    let mut ports = SandboxPorts {
        publish_port,
        ret_port,
        tcp_master_pub_port: None,
        tcp_master_pull_port: None,
        tcp_master_publish_pull: None,
        tcp_master_workers: None,
    };
    if tcp {
        ports.tcp_master_pub_port = Some(take_port(&mut used, &mut held, None)?);
        ports.tcp_master_pull_port = Some(take_port(&mut used, &mut held, None)?);
        ports.tcp_master_publish_pull = Some(take_port(&mut used, &mut held, None)?);
        ports.tcp_master_workers = Some(take_port(
            &mut used,
            &mut held,
            Some(DEFAULT_POOL_PORT_OFFSET),
        )?);
    }
    Ok(ports)
}
