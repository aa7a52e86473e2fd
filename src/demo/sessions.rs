//! What `saltbridge demo` replays: four recorded Salt 3008.4 sessions, the
//! raw bytes a reader of `master_event_pub.ipc` received, embedded in the
//! binary so the demo needs no master and no files; and a copy of the
//! top-level `routes.yaml` for when there is none in the current directory.

/// One recorded session: the bus bytes and what was run to produce them.
pub struct Session {
    /// The capture's file name in `tests/fixtures/3008.4/`, without `.bin`.
    pub name: &'static str,
    /// What happened on the master, for people.
    pub what: &'static str,
    pub bytes: &'static [u8],
}

/// In replay order: a minion starting first, as on a fresh master.
pub const SESSIONS: [Session; 4] = [
    Session {
        name: "00_startup",
        what: "salt-minion starts: it authenticates, says it started, and answers two test.ping jobs",
        bytes: include_bytes!("../../tests/fixtures/3008.4/00_startup.bin"),
    },
    Session {
        name: "a_test_ping",
        what: "salt '*' test.ping",
        bytes: include_bytes!("../../tests/fixtures/3008.4/a_test_ping.bin"),
    },
    Session {
        name: "b_timeout_find_job",
        what: "salt -t 2 '*' cmd.run 'sleep 6; echo hello world': the job outlives its timeout, so Salt polls it with saltutil.find_job",
        bytes: include_bytes!("../../tests/fixtures/3008.4/b_timeout_find_job.bin"),
    },
    Session {
        name: "c3_state_sls_failing",
        what: "salt '*' state.sls failing: one state of the sls fails",
        bytes: include_bytes!("../../tests/fixtures/3008.4/c3_state_sls_failing.bin"),
    },
];

/// The repository's `routes.yaml`, used when `-c` is not given and there is
/// no `routes.yaml` in the current directory.
pub const BUILT_IN_ROUTES: &str = include_str!("../../routes.yaml");
