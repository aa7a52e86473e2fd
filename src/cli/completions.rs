//! `saltbridge completions SHELL`: the shell completion script, generated
//! from the command-line definitions so it always matches them.

use std::process::ExitCode;

use clap::Args;

/// Arguments of `saltbridge completions`.
#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the script for `command` (the whole `saltbridge` command line) to stdout.
pub fn run(args: CompletionsArgs, mut command: clap::Command) -> ExitCode {
    let name = command.get_name().to_owned();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    ExitCode::SUCCESS
}
