//! Hot reload: SIGHUP, or a change of the file, loads the routes again.
//!
//! A file that does not validate is rejected: the errors are logged and
//! the routes in use stay. A good one is handed over whole on a channel, so
//! the router swaps tables between two events, never in the middle of one.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::{load_file, Config};
use crate::shutdown::Shutdown;

/// How often the file's modification time and size are looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// Watches `path`; every good reload comes out of the returned channel.
pub fn watch(path: PathBuf, mut shutdown: Shutdown) -> mpsc::Receiver<Config> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let stamp = |p: &PathBuf| -> Option<(SystemTime, u64)> {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        let mut last = stamp(&path);
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut poll = tokio::time::interval(POLL);
        loop {
            let hangup = async {
                #[cfg(unix)]
                if let Some(h) = hup.as_mut() {
                    h.recv().await;
                    return;
                }
                std::future::pending::<()>().await
            };
            let why = tokio::select! {
                _ = shutdown.wait() => return,
                _ = hangup => "SIGHUP",
                _ = poll.tick() => {
                    let now = stamp(&path);
                    if now == last { continue; }
                    last = now;
                    "the file changed"
                }
            };
            match load_file(&path) {
                Ok(table) => {
                    tracing::info!(file = %path.display(), reason = why, routes = table.routes.route_names().count(), "routes reloaded");
                    if tx.send(table).await.is_err() {
                        return;
                    }
                }
                Err(errors) => {
                    tracing::error!(file = %path.display(), reason = why, "routes NOT reloaded, the previous routes stay in use:\n{errors}");
                }
            }
        }
    });
    rx
}
