//! Telling every task that saltbridge is stopping.
//!
//! One [`ShutdownSignal`] is triggered (by SIGINT/SIGTERM, or by the end of a
//! finite source); every task holds a cheap [`Shutdown`] clone and selects on
//! [`Shutdown::wait`] beside its own work, as in mini-redis.

use tokio::sync::watch;

/// The sending side: trigger once, every listener wakes.
#[derive(Debug)]
pub struct ShutdownSignal(watch::Sender<bool>);

/// The listening side, one clone per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl ShutdownSignal {
    pub fn new() -> (ShutdownSignal, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownSignal(tx), Shutdown(rx))
    }

    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// A listener that never fires, for callers with no shutdown of their own.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive for the life of the program.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is triggered (or the signal is dropped).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|&stop| stop).await;
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
