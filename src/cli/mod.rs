//! The commands, one file each; `main.rs` parses the command line and
//! calls them.

pub mod explain;
pub mod route_test;
pub mod tail;
pub mod validate;

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
