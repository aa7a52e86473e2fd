//! `fsync:` as the journal and the spools both take it: `always`, `never`
//! or a duration. Shared vocabulary: imports none of its users.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// When a file on disk is forced to it with fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every write burst, before the writer goes on: nothing written
    /// is lost on a power cut, and the writer is slower.
    Always,
    /// Leave it to the kernel (usually within 30 s).
    Never,
    /// In the background, this often.
    Every(Duration),
}

impl<'de> Deserialize<'de> for Fsync {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "always" => Ok(Fsync::Always),
            "never" => Ok(Fsync::Never),
            other => humantime::parse_duration(other)
                .ok()
                .filter(|d| !d.is_zero())
                .map(Fsync::Every)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "fsync: expected always, never or a duration such as 1s, got `{other}`"
                    ))
                }),
        }
    }
}

/// The files that `fsync: <duration>` syncs in the background: the journal
/// and each spool keep one, and [`sync_every`] drains it.
#[derive(Debug, Default)]
pub struct SyncList {
    files: std::sync::Mutex<Vec<std::sync::Arc<std::fs::File>>>,
}

impl SyncList {
    /// Remembers `file` for the next background sync, under `Fsync::Every`.
    pub fn track(&self, policy: Fsync, file: &std::fs::File) {
        if !matches!(policy, Fsync::Every(_)) {
            return;
        }
        if let Ok(f) = file.try_clone() {
            self.lock().push(std::sync::Arc::new(f));
        }
    }

    /// Every tracked file; the newest stays tracked, as it is still written.
    fn take(&self) -> Vec<std::sync::Arc<std::fs::File>> {
        let mut v = self.lock();
        let keep = v.last().cloned();
        let all = std::mem::take(&mut *v);
        v.extend(keep);
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<std::sync::Arc<std::fs::File>>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The background fsync of `fsync: <duration>`: every `period`, syncs what
/// `list` of `owner` tracks, until `owner` is dropped.
pub async fn sync_every<S: Send + Sync + 'static>(
    owner: std::sync::Weak<S>,
    list: fn(&S) -> &SyncList,
    period: Duration,
    what: &'static str,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(owner) = owner.upgrade() else {
            return;
        };
        let files = list(&owner).take();
        drop(owner);
        let _ = tokio::task::spawn_blocking(move || {
            for f in files {
                if let Err(e) = f.sync_data() {
                    tracing::warn!(error = %e, "{what}: fsync failed");
                }
            }
        })
        .await;
    }
}
