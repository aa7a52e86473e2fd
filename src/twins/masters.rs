//! `masters:` of a routes file: which master the bridge runs beside, and
//! what it knows of the other masters (cluster peers). Read by the twin
//! filter ([`MasterIdentity`]); `config` fills in what the Salt master
//! config says (`id`, `cluster_peers`) before the pipeline starts.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::MasterIdentity;

/// The bridge's master and its peers; see `masters:` in `docs/routes.md`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MastersConfig {
    /// The master's id; default: `--master-id`, else the master config's
    /// `id`, else `<hostname>_master` as Salt defaults it.
    pub id: Option<String>,
    /// The Salt master config to read `id` and `cluster_peers` from;
    /// default: the `source:` when it names a master config.
    pub master_config: Option<PathBuf>,
    /// The cluster's other masters; default: the master config's
    /// `cluster_peers`. A `__peer_id` naming another master is refused.
    pub cluster_peers: Option<Vec<String>>,
    /// Multi-master (`master: [a, b]` on the minions): the id of the one
    /// master whose bridge routes the events minions fire themselves
    /// (`minion_start`, `salt/minion/<id>/start`, beacons, `event.send`);
    /// the other bridges drop them as `other_master` twins. Default: none,
    /// every bridge routes them.
    pub minion_events: Option<String>,
    /// A master of masters, to which syndics relay their masters' events
    /// (Salt's `order_masters`); default: the master config's
    /// `order_masters`, else false. Syndic twins are paired only on one.
    pub order_masters: Option<bool>,
}

impl MastersConfig {
    /// What the twin filter needs.
    pub fn identity(&self) -> MasterIdentity {
        MasterIdentity {
            id: self.id.as_deref().map(Arc::from),
            peers: self
                .cluster_peers
                .iter()
                .flatten()
                .map(|p| Arc::from(p.as_str()))
                .collect(),
            minion_events: self.minion_events.as_deref().map(Arc::from),
            order_masters: self.order_masters.unwrap_or(false),
        }
    }
}
