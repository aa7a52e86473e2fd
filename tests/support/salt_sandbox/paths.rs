//! Where things are: config folders, sockets, ports, pids.

use super::*;

impl SaltSandbox {
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
}
