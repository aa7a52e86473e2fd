//! `saltbridge test -c FILE --cases CASES.yaml`: unit tests for routes, as
//! `vector test` does for transforms. Each case gives one event and the
//! sinks it must reach (in any order), or `dropped`. Each case runs against
//! a freshly loaded table, so cases do not see each other's dedup state.
//!
//! ```yaml
//! cases:
//!   - name: a failed state run goes to chat
//!     event:
//!       tag: salt/job/20261126135807141393/ret/web-01
//!       data: {fun: state.apply, success: false, retcode: 2}
//!     expect: [chat]
//!   - name: find_job polling is noise
//!     event: {tag: salt/job/20261126135807141394/new, data: {fun: saltutil.find_job}}
//!     expect: dropped
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use serde::Deserialize;

use super::EX_CONFIG;
use saltbridge::config::load_file;
use saltbridge::event::Event;
use saltbridge::pipeline::{Outcome, Pipeline};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasesFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    event: CaseEvent,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseEvent {
    tag: String,
    #[serde(default = "empty_map")]
    data: serde_json::Value,
}

fn empty_map() -> serde_json::Value {
    serde_json::json!({})
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(untagged)]
enum Expect {
    Sinks(Vec<String>),
    Word(String),
}

// Over 80 lines: load, run each case, print its result and the totals, in the order a person reads them.
pub fn run(args: TestArgs) -> ExitCode {
    if let Err(e) = load_file(&args.config) {
        eprintln!("{e}");
        return ExitCode::from(EX_CONFIG);
    }
    let cases: CasesFile = match std::fs::read_to_string(&args.cases)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_saphyr::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", args.cases.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    let mut failed = 0;
    for case in &cases.cases {
        if let Expect::Word(w) = &case.expect {
            if w != "dropped" {
                eprintln!(
                    "{}: case {:?}: expect is a list of sinks or `dropped`, got `{w}`",
                    args.cases.display(),
                    case.name
                );
                return ExitCode::from(EX_CONFIG);
            }
        }
        let table = match load_file(&args.config) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        let mut pipeline = Pipeline::new(table, true);
        let ev = Event::synthetic(
            case.event.tag.clone(),
            case.event.data.clone(),
            Arc::from("test"),
        );
        let now = Instant::now();
        let mut outcomes = pipeline.push(ev, now);
        outcomes.extend(pipeline.flush(now));
        // A case is about its own event: a job announcement flushed alone
        // makes an incomplete job summary, which is not what it tests.
        outcomes.retain(|o| match o {
            Outcome::Routed { event, .. } | Outcome::Twin { event, .. } => {
                event.tag() == case.event.tag
            }
        });
        let (mut got, detail) = describe(&outcomes);
        got.sort();
        let ok = match &case.expect {
            Expect::Word(_) => got.is_empty(),
            Expect::Sinks(want) => {
                let mut want = want.clone();
                want.sort();
                want == got
            }
        };
        if ok {
            println!("ok   {}", case.name);
        } else {
            failed += 1;
            let want = match &case.expect {
                Expect::Word(w) => w.clone(),
                Expect::Sinks(s) => format!("{s:?}"),
            };
            let got_text = if got.is_empty() {
                "dropped".to_owned()
            } else {
                format!("{got:?}")
            };
            println!(
                "FAIL {}\n  - expected: {want}\n  + got:      {got_text} ({detail})",
                case.name
            );
        }
    }
    println!(
        "{} cases, {} passed, {failed} failed",
        cases.cases.len(),
        cases.cases.len() - failed
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The sinks reached, and a line on why.
fn describe(outcomes: &[Outcome]) -> (Vec<String>, String) {
    let mut sinks = Vec::new();
    let mut why = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Twin { kind, twin_of, .. } => {
                why.push(format!("dropped as a {} twin of {twin_of}", kind.name()))
            }
            Outcome::Routed { routing, .. } => {
                sinks.extend(routing.sinks.iter().cloned());
                if let Some(by) = &routing.dropped_by {
                    why.push(format!("dropped by {by}"));
                } else if routing.unmatched {
                    why.push("no route matched".into());
                } else {
                    let names: Vec<&str> =
                        routing.matches.iter().map(|m| m.route.as_str()).collect();
                    why.push(format!("routes: {}", names.join(", ")));
                }
            }
        }
    }
    (sinks, why.join("; "))
}
