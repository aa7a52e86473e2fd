//! The commands, one file each; `main.rs` parses the command line and
//! calls them.

pub mod completions;
pub mod demo;
pub mod demo_hint;
pub mod dlq;
pub mod explain;
pub mod man;
pub mod route_test;
pub mod run;
pub mod setup;
pub mod status;
pub mod tail;
pub mod validate;
pub mod version;

use clap::ValueEnum;

/// Exit status for a bad configuration (sysexits `EX_CONFIG`, as Vector uses).
pub const EX_CONFIG: u8 = 78;

/// Colour in output meant for people.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    /// Whether to colour output on stdout.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none (for `select!`).
pub(crate) async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Receives from `rx`, or waits forever when there is no channel (for `select!`).
pub(crate) async fn recv_opt<T>(rx: &mut Option<tokio::sync::mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The source to read: `--source`, else the routes file's `source:`, else
/// the master's default socket.
pub(crate) fn choose_source(
    arg: Option<crate::source::SourceSpec>,
    table: &crate::route::RouteTable,
) -> anyhow::Result<crate::source::SourceSpec> {
    use anyhow::Context;
    Ok(match (arg, table.source()) {
        (Some(s), _) => s,
        (None, Some(s)) => s.parse().context("source in the routes file")?,
        (None, None) => crate::source::SourceSpec::default(),
    })
}
