//! Free loopback ports, never handed out twice by one test process: a port
//! from bind(0) is free only until someone binds it, and parallel tests
//! (Salt sandboxes, tansu, `--listen`) would otherwise race for the same one.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Mutex, MutexGuard};

/// Ports handed out by this process.
static USED_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The registry of ports handed out; hold it while taking several.
pub fn used_ports() -> MutexGuard<'static, BTreeSet<u16>> {
    USED_PORTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port of 127.0.0.1 that nothing listens on (yet).
pub fn free_port() -> u16 {
    let mut used = used_ports();
    let mut held = Vec::new();
    take_port(&mut used, &mut held, None).expect("a free port on 127.0.0.1")
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// A free port not in `used`; its listener is pushed to `held` (bound until
/// the caller drops it, so the ports it takes meanwhile are distinct). With
/// `pair_offset`, `port + offset` must be free too, and is taken as well.
pub fn take_port(
    used: &mut BTreeSet<u16>,
    held: &mut Vec<TcpListener>,
    pair_offset: Option<u16>,
) -> io::Result<u16> {
    for _ in 0..200 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = l.local_addr()?.port();
        if used.contains(&port) {
            continue;
        }
        if let Some(offset) = pair_offset {
            let Some(p2) = port.checked_add(offset) else {
                continue;
            };
            if used.contains(&p2) {
                continue;
            }
            match TcpListener::bind((Ipv4Addr::LOCALHOST, p2)) {
                Ok(l2) => {
                    used.insert(p2);
                    held.push(l2);
                }
                Err(_) => continue,
            }
        }
        used.insert(port);
        held.push(l);
        return Ok(port);
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        "no free port found",
    ))
}
