//! Finding the bus from a Salt master config file.
//!
//! `--source ipc:/etc/salt/master` reads the same keys Salt does to place the
//! publish socket: `sock_dir`, `cachedir`, `root_dir`, `ipc_mode` and
//! `tcp_master_pub_port`, from the file and then from `master.d/*.conf`
//! beside it (Salt's `default_include`; included files win). Salt's own rules
//! are applied in its order: a `sock_dir` more than 10 characters longer than
//! `cachedir` is replaced by `<cachedir>/.salt-unix`, then `root_dir` is put
//! in front of it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the bus of a configured master is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusAddress {
    Ipc(PathBuf),
    Tcp(String),
}

/// A master config that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MasterConfigError {
    #[error("master config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("master config {path}: {message}")]
    Parse { path: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
struct Keys {
    root_dir: Option<String>,
    sock_dir: Option<String>,
    cachedir: Option<String>,
    ipc_mode: Option<String>,
    tcp_master_pub_port: Option<u16>,
    id: Option<serde_json::Value>,
    cluster_peers: Option<Vec<serde_json::Value>>,
    master_job_cache: Option<String>,
    order_masters: Option<serde_json::Value>,
}

impl Keys {
    fn overlay(&mut self, other: Keys) {
        self.root_dir = other.root_dir.or(self.root_dir.take());
        self.sock_dir = other.sock_dir.or(self.sock_dir.take());
        self.cachedir = other.cachedir.or(self.cachedir.take());
        self.ipc_mode = other.ipc_mode.or(self.ipc_mode.take());
        self.tcp_master_pub_port = other.tcp_master_pub_port.or(self.tcp_master_pub_port);
        self.id = other.id.or(self.id.take());
        self.cluster_peers = other.cluster_peers.or(self.cluster_peers.take());
        self.master_job_cache = other.master_job_cache.or(self.master_job_cache.take());
        self.order_masters = other.order_masters.or(self.order_masters.take());
    }
}

/// What a master config says about the master itself, for the bridge beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterSettings {
    /// `id`, when set (Salt's default is `<fqdn>_master`).
    pub id: Option<String>,
    /// `cluster_peers` (3007+ clusters): the other masters' ids.
    pub cluster_peers: Vec<String>,
    /// `cachedir` with `root_dir` in front, as Salt applies it: the job
    /// cache is its `jobs/` folder.
    pub cachedir: PathBuf,
    /// `master_job_cache` (default `local_cache`).
    pub master_job_cache: String,
    /// `order_masters`: a master of masters, syndics below it.
    pub order_masters: bool,
}

/// Reads what the master config at `path` says about the master.
pub fn master_settings(path: &Path) -> Result<MasterSettings, MasterConfigError> {
    let keys = read_all(path)?;
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let root = keys.root_dir.clone().unwrap_or_else(|| "/".into());
    let cachedir = under_root(
        root.trim_end_matches('/'),
        keys.cachedir
            .clone()
            .unwrap_or_else(|| "/var/cache/salt/master".into()),
    );
    Ok(MasterSettings {
        id: keys.id.as_ref().map(scalar).filter(|s| !s.is_empty()),
        cluster_peers: keys.cluster_peers.iter().flatten().map(scalar).collect(),
        cachedir: PathBuf::from(cachedir),
        master_job_cache: keys
            .master_job_cache
            .unwrap_or_else(|| "local_cache".into()),
        order_masters: keys.order_masters.as_ref().is_some_and(yaml_true),
    })
}

/// A YAML 1.1 true, as Salt's loader reads it (`True`, `yes`, `on`, ...).
fn yaml_true(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(s) => {
            matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "y")
        }
        serde_json::Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// `path` with `root` in front unless it is already under it (Salt's `prepend_root_dir`).
fn under_root(root: &str, path: String) -> String {
    if root.is_empty() || path == root || path.starts_with(&format!("{root}/")) {
        path
    } else {
        format!("{root}/{}", path.trim_start_matches('/'))
    }
}

/// True when `path` is a config file or a config directory rather than a socket.
pub fn looks_like_config(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() || m.is_dir())
}

/// Reads the master config at `path` (a file, or a directory holding `master`).
pub fn bus_address(path: &Path) -> Result<BusAddress, MasterConfigError> {
    Ok(resolve(read_all(path)?))
}

/// The keys of the master config at `path` and of its `master.d/*.conf`.
fn read_all(path: &Path) -> Result<Keys, MasterConfigError> {
    let file = if path.is_dir() {
        path.join("master")
    } else {
        path.to_path_buf()
    };
    let mut keys = read_keys(&file)?;
    let include_dir = file.parent().unwrap_or(Path::new(".")).join("master.d");
    if let Ok(entries) = std::fs::read_dir(&include_dir) {
        let mut confs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        confs.sort();
        for conf in confs {
            keys.overlay(read_keys(&conf)?);
        }
    }
    Ok(keys)
}

fn read_keys(file: &Path) -> Result<Keys, MasterConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| MasterConfigError::Read {
        path: file.display().to_string(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(Keys::default());
    }
    serde_saphyr::from_str::<Option<Keys>>(&text)
        .map(Option::unwrap_or_default)
        .map_err(|e| MasterConfigError::Parse {
            path: file.display().to_string(),
            message: e.to_string(),
        })
}

fn resolve(keys: Keys) -> BusAddress {
    if keys.ipc_mode.as_deref() == Some("tcp") {
        let port = keys.tcp_master_pub_port.unwrap_or(4512);
        return BusAddress::Tcp(format!("127.0.0.1:{port}"));
    }
    let cachedir = keys
        .cachedir
        .unwrap_or_else(|| "/var/cache/salt/master".into());
    let mut sock_dir = keys
        .sock_dir
        .unwrap_or_else(|| "/var/run/salt/master".into());
    if sock_dir.len() > cachedir.len() + 10 {
        sock_dir = format!("{}/.salt-unix", cachedir.trim_end_matches('/'));
    }
    let root = keys.root_dir.unwrap_or_else(|| "/".into());
    sock_dir = under_root(root.trim_end_matches('/'), sock_dir);
    BusAddress::Ipc(Path::new(&sock_dir).join("master_event_pub.ipc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_to_salts_socket() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "master", "interface: 0.0.0.0\n");
        assert_eq!(
            bus_address(&f).unwrap(),
            BusAddress::Ipc("/var/run/salt/master/master_event_pub.ipc".into())
        );
    }

    #[test]
    fn root_dir_and_sock_dir_as_salt_applies_them() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "master",
            "root_dir: /srv/m\ncachedir: /srv/m/cache/master\nsock_dir: /srv/m/sock\n",
        );
        assert_eq!(
            bus_address(&f).unwrap(),
            BusAddress::Ipc("/srv/m/sock/master_event_pub.ipc".into())
        );
        // Only root_dir: the default sock_dir moves under it.
        let f = write(d.path(), "master", "root_dir: /srv/m\n");
        assert_eq!(
            bus_address(&f).unwrap(),
            BusAddress::Ipc("/srv/m/var/run/salt/master/master_event_pub.ipc".into())
        );
        // A sock_dir much longer than cachedir goes to <cachedir>/.salt-unix.
        let f = write(
            d.path(),
            "master",
            "cachedir: /c\nsock_dir: /a/very/long/socket/directory\n",
        );
        assert_eq!(
            bus_address(&f).unwrap(),
            BusAddress::Ipc("/c/.salt-unix/master_event_pub.ipc".into())
        );
    }

    #[test]
    fn ipc_mode_tcp_and_master_d_override() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "master", "ipc_mode: ipc\n");
        write(
            d.path(),
            "master.d/tcp.conf",
            "ipc_mode: tcp\ntcp_master_pub_port: 4600\n",
        );
        assert_eq!(
            bus_address(&f).unwrap(),
            BusAddress::Tcp("127.0.0.1:4600".into())
        );
        assert_eq!(
            bus_address(d.path()).unwrap(),
            BusAddress::Tcp("127.0.0.1:4600".into())
        );
    }

    #[test]
    fn the_masters_own_settings() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "master",
            "id: 127.0.0.1\ncluster_peers: [127.0.0.2, 127.0.0.3]\nroot_dir: /lab\ncachedir: /c\n",
        );
        let s = master_settings(&f).unwrap();
        assert_eq!(s.id.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.cluster_peers, ["127.0.0.2", "127.0.0.3"]);
        assert_eq!(s.cachedir, PathBuf::from("/lab/c"));
        assert_eq!(s.master_job_cache, "local_cache");
        assert!(!s.order_masters);
        let f = write(d.path(), "master", "master_job_cache: redis\n");
        let s = master_settings(&f).unwrap();
        assert_eq!(s.id, None);
        assert_eq!(s.cachedir, PathBuf::from("/var/cache/salt/master"));
        assert_eq!(s.master_job_cache, "redis");
    }

    #[test]
    fn bad_yaml_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "master", "sock_dir: [unclosed\n");
        let e = bus_address(&f).unwrap_err().to_string();
        assert!(e.contains("master config") && e.contains("master"), "{e}");
    }
}
