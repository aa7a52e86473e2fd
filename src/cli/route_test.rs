//! `saltbridge test -c FILE --cases CASES.yaml`: unit tests for routes, as
//! `vector test` does for transforms. The cases' format and how they run are
//! `saltbridge::route_cases`'s; this file parses the arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EX_CONFIG;
use saltbridge::route_cases;

/// Arguments of `saltbridge test`.
#[derive(Args)]
pub struct TestArgs {
    /// The routes file.
    #[arg(long, short, value_name = "FILE", default_value = "routes.yaml")]
    pub config: PathBuf,
    /// The cases file.
    #[arg(long, value_name = "CASES.yaml")]
    pub cases: PathBuf,
}

pub fn run(args: TestArgs) -> ExitCode {
    let totals = route_cases::run(&args.config, &args.cases, |case| {
        if case.ok {
            println!("ok   {}", case.name);
        } else {
            println!(
                "FAIL {}\n  - expected: {}\n  + got:      {} ({})",
                case.name, case.want, case.got, case.detail
            );
        }
    });
    let totals = match totals {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    println!(
        "{} cases, {} passed, {} failed",
        totals.cases,
        totals.cases - totals.failed,
        totals.failed
    );
    if totals.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
