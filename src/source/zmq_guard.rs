//! `--max-frame` for the `zmq:` source: frame lengths are checked before the
//! `zeromq` crate reads them.
//!
//! The crate (0.7) reserves a frame's whole claimed length as soon as it has
//! read the frame header, and it has no maximum message size: a peer that
//! claims 2^40 bytes aborts the process (`memory allocation of 1099511693321
//! bytes failed`) and a 1 GiB claim is buffered (issue 12, finding 2). So the
//! source does not let the crate talk to the master directly. It connects to
//! the master itself and relays the bytes, through a unix socket in a private
//! directory (mode 0700), to the crate, reading every ZMTP 3 frame header
//! from the master on the way (RFC 23: a flags byte, then a 1- or 8-byte
//! length). A frame, or a multi-part message, longer than `max_frame` ends
//! the connection before its header reaches the crate; the source counts it
//! as a malformed message and reconnects. Nothing is buffered: the relay
//! passes each chunk on as it reads it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// Bytes of a ZMTP 3 greeting.
const GREETING: usize = 64;
/// Longest wait for the crate to connect to the relay.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the frame headers of the byte stream a ZMTP 3 peer sends.
#[derive(Debug)]
pub struct FrameGuard {
    max_frame: u64,
    state: State,
    /// Bytes of the message (all its parts) so far.
    message: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Greeting(usize),
    Flags,
    Length {
        more: bool,
        long: bool,
        got: usize,
        len: u64,
    },
    Body {
        left: u64,
    },
}

impl FrameGuard {
    pub fn new(max_frame: usize) -> Self {
        FrameGuard {
            max_frame: max_frame as u64,
            state: State::Greeting(0),
            message: 0,
        }
    }

    /// Reads `bytes`, the next bytes from the peer; `Err(len)` when a frame
    /// or message claims `len` bytes, more than `max_frame`.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), u64> {
        while let Some((&b, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Greeting(n) => {
                    let take = (GREETING - *n).min(bytes.len());
                    *n += take;
                    bytes = &bytes[take..];
                    if *n == GREETING {
                        self.state = State::Flags;
                    }
                    continue;
                }
                State::Flags => {
                    self.state = State::Length {
                        more: b & 0x01 != 0,
                        long: b & 0x02 != 0,
                        got: 0,
                        len: 0,
                    };
                }
                State::Length {
                    more,
                    long,
                    got,
                    len,
                } => {
                    *len = (*len << 8) | u64::from(b);
                    *got += 1;
                    if *got == if *long { 8 } else { 1 } {
                        let (more, len) = (*more, *len);
                        self.message = self.message.saturating_add(len);
                        if len > self.max_frame || self.message > self.max_frame {
                            return Err(self.message);
                        }
                        if !more {
                            self.message = 0;
                        }
                        self.state = match len {
                            0 => State::Flags,
                            left => State::Body { left },
                        };
                    }
                }
                State::Body { left, .. } => {
                    let take = (*left).min(bytes.len() as u64);
                    *left -= take;
                    bytes = &bytes[take as usize..];
                    if *left == 0 {
                        self.state = State::Flags;
                    }
                    continue;
                }
            }
            bytes = rest;
        }
        Ok(())
    }
}

/// A relay between the master and the crate, for one connection.
pub struct Relay {
    dir: PathBuf,
    endpoint: String,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Connects to `upstream` (`tcp://host:port` or `ipc://path`) and
    /// listens for the crate on a private unix socket.
    pub async fn start(upstream: &str, max_frame: usize) -> std::io::Result<Relay> {
        let peer = connect(upstream).await?;
        let dir = private_dir()?;
        let path = dir.join("relay.ipc");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let refused = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve(listener, peer, max_frame, refused.clone()));
        Ok(Relay {
            endpoint: format!("ipc://{}", path.display()),
            dir,
            refused,
            task,
        })
    }

    /// The endpoint the crate connects to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The length of the frame the relay refused, if it did.
    pub fn refused(&self) -> Option<u64> {
        Some(self.refused.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

async fn connect(upstream: &str) -> std::io::Result<Box<dyn Stream>> {
    if let Some(addr) = upstream.strip_prefix("tcp://") {
        return Ok(Box::new(TcpStream::connect(addr).await?));
    }
    if let Some(path) = upstream.strip_prefix("ipc://") {
        return Ok(Box::new(UnixStream::connect(path).await?));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{upstream}: only tcp:// and ipc:// endpoints are supported"),
    ))
}

fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "saltbridge-zmq-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

async fn serve(
    listener: UnixListener,
    peer: Box<dyn Stream>,
    max_frame: usize,
    refused: Arc<AtomicU64>,
) {
    let Ok(Ok((local, _))) = tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()).await else {
        return;
    };
    drop(listener);
    let (mut peer_rx, mut peer_tx) = tokio::io::split(peer);
    let (mut local_rx, mut local_tx) = local.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut local_rx, &mut peer_tx).await;
    };
    let down = async {
        let mut guard = FrameGuard::new(max_frame);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match peer_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Err(len) = guard.feed(&buf[..n]) {
                refused.store(len.max(1), Ordering::Relaxed);
                return;
            }
            if local_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends the relay, and with it both connections.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting() -> Vec<u8> {
        let mut g = vec![0u8; GREETING];
        g[0] = 0xff;
        g[9] = 0x7f;
        g[10] = 3;
        g
    }

    #[test]
    fn frames_within_the_bound_pass_in_any_pieces() {
        let mut s = greeting();
        s.extend_from_slice(&[0x04, 3, b'a', b'b', b'c']); // a short command
        s.extend_from_slice(&[0x01, 2, b'x', b'y']); // a part of a message
        s.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]); // long, last part
        for cut in 1..s.len() {
            let mut g = FrameGuard::new(16);
            assert_eq!(g.feed(&s[..cut]), Ok(()));
            assert_eq!(g.feed(&s[cut..]), Ok(()));
        }
    }

    #[test]
    fn a_huge_frame_header_is_refused_before_its_body() {
        let mut s = greeting();
        s.extend_from_slice(&[0x02, 0, 0, 1, 0, 0, 0, 0, 0]); // 2^40 bytes
        let mut g = FrameGuard::new(1 << 20);
        assert_eq!(g.feed(&s), Err(1 << 40));
    }

    #[test]
    fn a_message_is_bounded_across_its_parts() {
        let mut s = greeting();
        for _ in 0..3 {
            s.extend_from_slice(&[0x01, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        }
        let mut g = FrameGuard::new(20);
        assert_eq!(g.feed(&s), Err(24));
    }
}
