//! `saltbridge demo`: what saltbridge does, on a machine with no Salt master
//! and no Kafka. It replays four recorded Salt 3008.4 sessions (embedded in
//! the binary) through the routes file and the real pipeline, delivers to
//! the webhook sinks for real (to a receiver in this process), and prints,
//! event by event, what came in, which twins were dropped, which routes
//! matched and what each sink received. Kafka sinks are not connected: the
//! record each would produce is shown.
//!
//! The replay, the sessions, the receiver and the sinks are in the library
//! (`saltbridge::demo`); here are the arguments and `print` (text and JSON
//! output).

mod print;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{Color, EX_CONFIG};
use print::Printer;
use saltbridge::demo::sessions::SESSIONS;
use saltbridge::demo::{self, sinks, Shown};
use saltbridge::pipeline::Pipeline;

/// Arguments of `saltbridge demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// The routes file [default: routes.yaml if it exists, else a built-in copy of the example].
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// `text` for people; `json` for one object per event.
    #[arg(long, short, value_enum, default_value_t = DemoFormat::Text)]
    pub format: DemoFormat,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoFormat {
    Text,
    Json,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let (config, routes_path, built_in) = match demo::load_routes(args.config.as_deref()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let mut receiver = saltbridge::demo::start_receiver()
        .await
        .context("cannot start the demo's webhook receiver on 127.0.0.1")?;
    let sinks = match sinks::build(&routes_path, &config, &receiver.base_url()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let mut printer = Printer::new(args.format, args.color.enabled());
    printer.header(
        &routes_path,
        built_in,
        &config.routes,
        &sinks,
        &receiver.base_url(),
    )?;

    let window = config.twins.window;
    let mut pipeline = Pipeline::new(config, true);
    for (n, session) in SESSIONS.iter().enumerate() {
        printer.session(n + 1, SESSIONS.len(), session.name, session.what)?;
        let mut show = |shown: Shown| match shown {
            Shown::Step(step) => printer.step(&step),
            Shown::Note(text) => printer.note(&text),
        };
        demo::replay(
            session,
            &mut pipeline,
            &sinks,
            &mut receiver,
            window,
            &mut show,
        )
        .await?;
    }
    let failed = printer.summary()?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
