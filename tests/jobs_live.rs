//! Job summaries from a real Salt 3008.4 master with two minions (`alpha`
//! and `beta`, each with its own id and folder), delivered by the real
//! `saltbridge run` to a webhook on the loopback receiver:
//!
//! - `test.ping` on both: one summary, both returned;
//! - `cmd.run` exiting 3 on alpha only: alpha failed (retcode 3), beta succeeded;
//! - a command that outlives `-t` on alpha: the master polls with
//!   `saltutil.find_job`, alpha says it still runs it, then returns: the
//!   summary waits for it (past `timeout + gather_job_timeout`);
//! - beta stopped: after the timeout, beta did not return and alpha succeeded.
//!
//! The master's `gather_job_timeout` is 3 s (and saltbridge's `jobs:` says
//! so) to keep the test short. Skips without a Salt 3008.4 virtualenv,
//! fails under CI=true.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::receiver::Receiver;
use serde_json::{json, Value};
use support::daemon::{self, Daemon};
use support::salt_sandbox::{SaltSandbox, SandboxOptions};

/// The summaries received so far, in delivery order.
fn summaries(receiver: &Receiver) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["tag"].as_str().is_some_and(|t| t.ends_with("/summary")))
        .map(|b| b["data"].clone())
        .collect()
}

async fn wait_for_summaries(receiver: &Receiver, n: usize, daemon: &Daemon) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got = summaries(receiver);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{n} summaries expected, got {got:#?}\nsaltbridge log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn salt(s: &Arc<SaltSandbox>, args: &[&str]) -> String {
    let s = s.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.salt(&args)
    })
    .await
    .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_summary_per_job_with_two_real_minions() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let receiver = Receiver::start().await.unwrap();
    let opts = SandboxOptions {
        extra_master_config: "gather_job_timeout: 3\n".into(),
        ..SandboxOptions::with_minions(&["alpha", "beta"])
    };
    let salt_box = tokio::task::spawn_blocking(move || SaltSandbox::start(&venv, opts))
        .await
        .unwrap()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            r#"
source: "ipc:{master}"
jobs:
  timeout: 3s
  gather_job_timeout: 3s
sinks:
  hook: {{type: webhook, url: "{hook}"}}
routes:
  - name: summaries
    match: {{tag: "saltbridge/job/*/summary"}}
    to: [hook]
"#,
            master = salt_box.master_config_file().display(),
            hook = receiver.url("/jobs"),
        ),
    )
    .unwrap();
    let mut run = daemon::command();
    run.args(["run", "-c"])
        .arg(&routes)
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    let daemon = Daemon::spawn(run, &dir.path().join("run.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("connected to the master's event bus") {
        assert!(
            Instant::now() < deadline,
            "run never connected: {}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sb = Arc::new(salt_box);

    // 1. Both return.
    salt(&sb, &["*", "test.ping"]).await;
    let s = wait_for_summaries(&receiver, 1, &daemon).await;
    let ping = &s[0];
    assert_eq!(ping["fun"], "test.ping");
    assert_eq!(ping["closed"], "returned");
    assert_eq!(ping["success"], true);
    assert_eq!(
        ping["counts"],
        json!({"targeted": 2, "returned": 2, "succeeded": 2, "failed": 0, "did_not_return": 0})
    );

    // 2. One exits 3.
    let cmd = "exit {{ 3 if grains.id == 'alpha' else 0 }}";
    salt(&sb, &["*", "cmd.run", cmd, "template=jinja"]).await;
    let s = wait_for_summaries(&receiver, 2, &daemon).await;
    let exit3 = &s[1];
    assert_eq!(exit3["fun"], "cmd.run");
    assert_eq!(exit3["success"], false);
    assert_eq!(exit3["counts"]["failed"], 1);
    assert_eq!(exit3["counts"]["succeeded"], 1);
    assert_eq!(exit3["failed_minions"], json!(["alpha"]));
    assert_eq!(exit3["minions"]["alpha"]["retcode"], 3);
    assert_eq!(exit3["minions"]["beta"]["success"], true);

    // 3. Alpha runs past `-t 3` plus gather_job_timeout (3 s + 3 s), says so
    //    when polled, and returns: the summary waits for it.
    let cmd = "sleep {{ 9 if grains.id == 'alpha' else 0 }}; echo done";
    let out = salt(&sb, &["-t", "3", "*", "cmd.run", cmd, "template=jinja"]).await;
    assert!(out.contains("done"), "{out}");
    let s = wait_for_summaries(&receiver, 3, &daemon).await;
    let slow = &s[2];
    assert_eq!(slow["closed"], "returned", "{slow:#}");
    assert_eq!(slow["success"], true);
    assert!(slow["find_job_polls"].as_u64().unwrap() >= 1, "{slow:#}");
    // `find_job` is the LAST poll's answer (docs/jobs.md). The master polls
    // about every gather_job_timeout, so on a loaded machine its last poll
    // can race alpha's end and hear "not_running". That the summary waited
    // for alpha (closed "returned" after more than timeout +
    // gather_job_timeout, below) is what proves a poll heard "running".
    let answer = &slow["minions"]["alpha"]["find_job"];
    assert!(
        answer == "running" || answer == "not_running",
        "alpha was polled and answered: {slow:#}"
    );
    let took = slow["minions"]["alpha"]["duration"].as_f64().unwrap();
    assert!(took > 6.0, "alpha returned after the default wait: {took}");
    assert_eq!(slow["counts"]["did_not_return"], 0);

    // 4. Beta is down: it did not return, alpha succeeded.
    let Ok(mut only) = Arc::try_unwrap(sb) else {
        panic!("the sandbox is still shared");
    };
    let sb = tokio::task::spawn_blocking(move || {
        only.kill_minion("beta");
        Arc::new(only)
    })
    .await
    .unwrap();
    let out = salt(&sb, &["-t", "3", "*", "test.ping"]).await;
    assert!(out.contains("did not return"), "{out}");
    let s = wait_for_summaries(&receiver, 4, &daemon).await;
    let down = &s[3];
    assert_eq!(down["fun"], "test.ping");
    assert_eq!(down["closed"], "timeout", "{down:#}");
    assert_eq!(down["success"], false);
    assert_eq!(down["did_not_return_minions"], json!(["beta"]));
    assert_eq!(down["minions"]["alpha"]["success"], true);
    assert_eq!(down["minions"]["beta"]["returned"], false);
    assert_eq!(
        down["counts"],
        json!({"targeted": 2, "returned": 1, "succeeded": 1, "failed": 0, "did_not_return": 1})
    );

    // The find_job polls are not jobs of their own: four jobs, four summaries.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, log) = tokio::task::spawn_blocking(move || daemon.stop(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(status.is_some_and(|s| s.success()), "{log}");
    let all = summaries(&receiver);
    assert_eq!(all.len(), 4, "{all:#?}");
}
