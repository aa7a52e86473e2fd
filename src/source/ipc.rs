//! The master's unix-socket event bus (`master_event_pub.ipc`), 2016.3 and later.

use std::path::PathBuf;

use super::reconnect::{run_reconnecting, Outlet};
use super::{EventSender, ReaderOptions, SourceError};
use crate::shutdown::Shutdown;

/// Reads the unix socket at `path` until shutdown, reconnecting as needed.
pub async fn run(
    path: PathBuf,
    opts: ReaderOptions,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    read(path, &opts, &mut sender, &mut shutdown).await;
    Ok(())
}

/// Reads until shutdown, reconnecting as needed, into `outlet`.
pub(crate) async fn read(
    path: PathBuf,
    opts: &ReaderOptions,
    outlet: &mut impl Outlet,
    shutdown: &mut Shutdown,
) {
    let connect = || tokio::net::UnixStream::connect(path.clone());
    let address = path.display().to_string();
    run_reconnecting(&address, connect, opts, outlet, shutdown).await;
}
