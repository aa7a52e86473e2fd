//! `masters:` resolved: the master's id and its cluster peers, from the
//! routes file, else the Salt master config (`masters.master_config`, or
//! a `source:` that names a master config), else Salt's own default id,
//! `<hostname>_master` (`salt/config/__init__.py`, `apply_master_config`).

use std::path::Path;

use serde_saphyr::Spanned;

use super::error::{located, ConfigError};
use super::file::SourceSetting;
use crate::source::master_config::{looks_like_config, master_settings, MasterSettings};
use crate::twins::MastersConfig;

/// `masters` with its id and peers filled in, and what the Salt master
/// config says when one is known; an unreadable master config is an error
/// at the field that names it.
pub(super) fn resolve(
    path: &Path,
    masters: Option<Spanned<MastersConfig>>,
    source: Option<&Spanned<SourceSetting>>,
) -> Result<(MastersConfig, Option<MasterSettings>), Box<ConfigError>> {
    let (mut cfg, at) = match masters {
        Some(m) => (m.value, Some(m.referenced)),
        None => (MastersConfig::default(), None),
    };
    let from_source = source.and_then(|s| {
        let p = Path::new(s.value.spec()?.strip_prefix("ipc:")?);
        (!p.as_os_str().is_empty() && looks_like_config(p)).then(|| (p.to_path_buf(), s))
    });
    let salt_config = match (&cfg.master_config, from_source) {
        (Some(p), _) => Some(
            master_settings(p)
                .map_err(|e| ConfigError::new(path, at, "masters.master_config", e.to_string()))?,
        ),
        (None, Some((p, s))) => Some(
            master_settings(&p).map_err(|e| Box::new(located(path, s, "source", e.to_string())))?,
        ),
        (None, None) => None,
    };
    if let Some(salt) = &salt_config {
        if cfg.id.is_none() {
            cfg.id = salt.id.clone();
        }
        if cfg.cluster_peers.is_none() && !salt.cluster_peers.is_empty() {
            cfg.cluster_peers = Some(salt.cluster_peers.clone());
        }
        if cfg.order_masters.is_none() {
            cfg.order_masters = Some(salt.order_masters);
        }
    }
    if cfg.id.as_deref().is_none_or(str::is_empty) {
        cfg.id = Some(format!("{}_master", hostname()));
    }
    Ok((cfg, salt_config))
}

/// This machine's name, as the kernel has it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use std::path::Path;

    #[test]
    fn id_and_peers_come_from_the_file_then_the_master_config() {
        let d = tempfile::tempdir().unwrap();
        let master = d.path().join("master");
        std::fs::write(
            &master,
            "id: m1\ncluster_peers: [m2, m3]\norder_masters: True\n",
        )
        .unwrap();
        let yaml = format!("masters:\n  master_config: {}\n", master.display());
        let c = load_str(Path::new("r.yaml"), &yaml, |_| None).unwrap();
        assert_eq!(c.masters.id.as_deref(), Some("m1"));
        assert_eq!(
            c.masters.cluster_peers.as_deref(),
            Some(&["m2".to_string(), "m3".to_string()][..])
        );
        let yaml = format!("source: ipc:{}\nmasters:\n  id: mine\n", master.display());
        let c = load_str(Path::new("r.yaml"), &yaml, |_| None).unwrap();
        assert_eq!(c.masters.id.as_deref(), Some("mine"));
        assert_eq!(c.masters.identity().peers.len(), 2);
        assert!(c.masters.identity().order_masters);
        let c = load_str(Path::new("r.yaml"), "routes: []\n", |_| None).unwrap();
        assert!(c.masters.id.unwrap().ends_with("_master"));
        let e = load_str(
            Path::new("r.yaml"),
            "masters:\n  master_config: /nonexistent/x\n",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("masters.master_config") && e.contains("/nonexistent/x"),
            "{e}"
        );
    }
}
