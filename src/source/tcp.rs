//! The event bus of an `ipc_mode: tcp` master (`tcp_master_pub_port`, 4512).
//!
//! The bytes are exactly those of the unix socket.

use super::reconnect::{run_reconnecting, Outlet};
use super::{EventSender, ReaderOptions, SourceError};
use crate::shutdown::Shutdown;

/// Reads `host:port` until shutdown, reconnecting as needed.
pub async fn run(
    addr: String,
    opts: ReaderOptions,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    read(addr, &opts, &mut sender, &mut shutdown).await;
    Ok(())
}

/// Reads until shutdown, reconnecting as needed, into `outlet`.
pub(crate) async fn read(
    addr: String,
    opts: &ReaderOptions,
    outlet: &mut impl Outlet,
    shutdown: &mut Shutdown,
) {
    let connect = || async {
        let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
        // Events are small and latency matters more than packet count.
        s.set_nodelay(true)?;
        Ok::<_, std::io::Error>(s)
    };
    run_reconnecting(&addr, connect, opts, outlet, shutdown).await;
}
