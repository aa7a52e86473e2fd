//! The hint `saltbridge run` gives someone trying it by hand where no Salt
//! master is reachable: after a moment without a connection, it suggests
//! `saltbridge demo`. Only when started from a terminal (stdin and stderr
//! both are one): under systemd or in a script, the log says enough.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use saltbridge::source::{SourceSpec, SourceStats};

/// How long the source may try before the hint is given; a master that is
/// up answers well within it.
const HINT_AFTER: Duration = Duration::from_secs(2);

const HINT: &str =
    "saltbridge: still no Salt master on this machine (retrying in the background). \
To see what saltbridge does without one, try `saltbridge demo`.";

/// Gives the hint, once, if `spec` is a live source that has not connected
/// within [`HINT_AFTER`] and saltbridge was started from a terminal.
pub fn suggest_demo_if_no_master(spec: &SourceSpec, stats: &Arc<SourceStats>) {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    // A remote master (salt-api) is not "on this machine".
    let local = !matches!(spec, SourceSpec::SaltApi { .. });
    if !should_hint(spec.is_live() && local, interactive) {
        return;
    }
    let stats = Arc::clone(stats);
    tokio::spawn(async move {
        tokio::time::sleep(HINT_AFTER).await;
        if SourceStats::get(&stats.connects) == 0 {
            eprintln!("{HINT}");
        }
    });
}

/// Files end by themselves and never need a master.
fn should_hint(live_source: bool, interactive: bool) -> bool {
    live_source && interactive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_person_at_a_terminal_waiting_for_a_master_gets_the_hint() {
        assert!(should_hint(true, true));
        assert!(!should_hint(true, false), "under systemd or a script");
        assert!(!should_hint(false, true), "a capture: or jsonl: file");
    }
}
