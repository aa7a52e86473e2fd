//! Unit tests for routes (`saltbridge test -c FILE --cases CASES.yaml`), as
//! `vector test` does for transforms: each case gives one event and the
//! sinks it must reach (in any order), or `dropped`. Each case runs against
//! a freshly loaded table, so cases do not see each other's dedup state.
//! Moved here from `src/cli/route_test.rs`, which now only prints. It sits on
//! top with `config` and `daemon`: it loads a routes file and runs a pipeline.
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

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use crate::config::load_file;
use crate::event::Event;
use crate::pipeline::{Outcome, Pipeline};

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

/// One case's result, as `saltbridge test` prints it.
pub struct CaseResult {
    pub name: String,
    pub ok: bool,
    /// What the case expected: a list of sinks or `dropped`.
    pub want: String,
    /// What happened: the sinks reached or `dropped`.
    pub got: String,
    /// Why: the routes matched, or what dropped it.
    pub detail: String,
}

/// The totals of a run.
pub struct Totals {
    pub cases: usize,
    pub failed: usize,
}

/// Loads the routes file and the cases and runs every case, handing each
/// result to `report` as it comes. An error (a bad routes file, cases file
/// or case) is the message to print; cases before it were reported.
pub fn run(
    config: &Path,
    cases_path: &Path,
    mut report: impl FnMut(CaseResult),
) -> Result<Totals, String> {
    load_file(config).map_err(|e| e.to_string())?;
    let cases: CasesFile = std::fs::read_to_string(cases_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_saphyr::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", cases_path.display()))?;
    let mut failed = 0;
    for case in &cases.cases {
        if let Expect::Word(w) = &case.expect {
            if w != "dropped" {
                return Err(format!(
                    "{}: case {:?}: expect is a list of sinks or `dropped`, got `{w}`",
                    cases_path.display(),
                    case.name
                ));
            }
        }
        let result = run_case(config, case)?;
        if !result.ok {
            failed += 1;
        }
        report(result);
    }
    Ok(Totals {
        cases: cases.cases.len(),
        failed,
    })
}

/// One case against a freshly loaded table.
fn run_case(config: &Path, case: &Case) -> Result<CaseResult, String> {
    let table = load_file(config).map_err(|e| e.to_string())?;
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
    let want = match &case.expect {
        Expect::Word(w) => w.clone(),
        Expect::Sinks(s) => format!("{s:?}"),
    };
    let got = if got.is_empty() {
        "dropped".to_owned()
    } else {
        format!("{got:?}")
    };
    Ok(CaseResult {
        name: case.name.clone(),
        ok,
        want,
        got,
        detail,
    })
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
