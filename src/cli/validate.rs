//! `saltbridge validate -c FILE`: exit 0 when the routes file is good;
//! otherwise print every problem with its file, line, column and field, and
//! exit 78.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EX_CONFIG;
use saltbridge::config;

/// Arguments of `saltbridge validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The routes file.
    #[arg(long, short, value_name = "FILE", default_value = "routes.yaml")]
    pub config: PathBuf,
}

pub fn run(args: ValidateArgs) -> ExitCode {
    match config::check(&args.config) {
        Ok(table) => {
            println!(
                "{}: ok ({} routes, {} sinks)",
                args.config.display(),
                table.routes.route_names().count(),
                table.sinks().len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            let n = errors.0.len();
            eprintln!(
                "{}: {n} problem{}",
                args.config.display(),
                if n == 1 { "" } else { "s" }
            );
            ExitCode::from(EX_CONFIG)
        }
    }
}
