//! The commands' arguments and output, one file each; `main.rs` parses the
//! command line and calls them. The work itself is in the library:
//! `saltbridge::daemon`, `saltbridge::config`, `saltbridge::demo`.

pub mod completions;
pub mod demo;
pub mod demo_hint;
pub mod dlq;
pub mod explain;
pub mod man;
pub mod replay;
pub mod route_test;
pub mod run;
pub mod status;
pub mod tail;
pub mod validate;
pub mod version;

use clap::ValueEnum;
use saltbridge::config::{Config, ConfigErrors};

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

/// The routes file as `run`, `replay` and `explain` load it: an error is
/// printed whole and becomes exit 78; `--master-id` wins over `masters.id`.
/// `config_of` finds the [`Config`] in what `loaded` holds.
pub fn load_routes<T>(
    loaded: Result<T, ConfigErrors>,
    master_id: Option<&str>,
    config_of: fn(&mut T) -> &mut Config,
) -> Result<T, std::process::ExitCode> {
    match loaded {
        Ok(mut t) => {
            if let Some(id) = master_id {
                config_of(&mut t).masters.id = Some(id.to_owned());
            }
            Ok(t)
        }
        Err(e) => {
            eprintln!("{e}");
            Err(std::process::ExitCode::from(EX_CONFIG))
        }
    }
}
