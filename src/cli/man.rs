//! `saltbridge man`: the manual page, in roff, generated from the
//! command-line definitions so it always matches them. It prints
//! saltbridge(1); with `--dir` it writes one page per command there.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// Arguments of `saltbridge man`.
#[derive(Args)]
pub struct ManArgs {
    /// Write saltbridge.1 and one page per command (saltbridge-run.1, ...) into DIR.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Renders the pages of `command` (the whole `saltbridge` command line).
pub fn run(args: ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    match args.dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot write the manual page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            println!("manual pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
