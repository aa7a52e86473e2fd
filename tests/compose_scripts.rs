//! The docker-compose stack without Docker: the same scripts its containers
//! run (scripts/container/), run here with a real Salt 3008.4, the receiver
//! script, tansu in Kafka's place, and saltbridge with the stack's own
//! routes file (docker/routes.compose.yaml).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::daemon::{self, Daemon};
use support::ports::free_port;
use support::process::{self, ProcessGroup};
use support::salt_sandbox::SaltSandbox;
use support::tansu::{consume_up_to, Tansu};

fn top() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A child process whose stdout lines are collected; its process group
/// (the Salt daemons the script starts, and theirs) is killed on drop.
struct Proc {
    _child: ProcessGroup,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(mut cmd: Command) -> Proc {
        let mut child = process::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::null())).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (out, l) = (child.stdout.take().unwrap(), lines.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Proc {
            _child: child,
            lines,
        }
    }
}

fn script(name: &str, root: &Path, venv: &Path, ports: (u16, u16)) -> Command {
    let mut c = Command::new(top().join("scripts/container").join(name));
    c.env("SALT_ROOT", root)
        .env("SALT_BIN", venv.join("bin"))
        .env("PUBLISH_PORT", ports.0.to_string())
        .env("RET_PORT", ports.1.to_string())
        .env("INTERFACE", "127.0.0.1")
        .env("MASTER", "127.0.0.1")
        .env("MINION_ID", "minion-1");
    c
}

fn wait(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_compose_stack_scripts_deliver_a_failing_state() {
    let Some(venv) = SaltSandbox::require_venv("3008.4") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(broker) = Tansu::start() else { return };
    rt.block_on(broker.create_topic("salt.job.ret", 1));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lab");
    let ports = (free_port(), free_port());

    let _master = Proc::start(script("salt-master", &root, &venv, ports));
    let sock = root.join("sock/master_event_pub.ipc");
    wait("the master's bus", Duration::from_secs(60), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });

    let http = free_port();
    let receiver = Proc::start({
        let mut c = Command::new("python3");
        c.arg(top().join("scripts/container/webhook-receiver"))
            .arg(http.to_string());
        c
    });
    wait("the receiver", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
    });

    let mut bridge = daemon::command();
    bridge
        .args(["run", "-c"])
        .arg(top().join("docker/routes.compose.yaml"))
        .arg("--source")
        .arg(format!("ipc:{}", sock.display()))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("CHAT_URL", format!("http://127.0.0.1:{http}/chat"))
        .env("CMDB_URL", format!("http://127.0.0.1:{http}/cmdb"))
        .env("KAFKA_BROKERS", broker.brokers());
    let _bridge = Daemon::spawn(bridge, &dir.path().join("saltbridge.log"));

    let _minion = Proc::start(script("salt-minion", &root, &venv, ports));
    let posted = |path: &str| -> Vec<Value> {
        receiver
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["path"] == path)
            .collect()
    };
    // The minion's start reaches the CMDB webhook (its legacy twin does not).
    wait(
        "the minion start at the CMDB",
        Duration::from_secs(60),
        || !posted("/cmdb").is_empty(),
    );
    assert_eq!(
        posted("/cmdb")[0]["body"]["tag"],
        "salt/minion/minion-1/start"
    );

    let salt = |args: &[&str]| {
        Command::new(venv.join("bin/salt"))
            .arg("-c")
            .arg(root.join("master-conf"))
            .args(args)
            .output()
            .unwrap()
    };
    wait("the minion to answer", Duration::from_secs(60), || {
        String::from_utf8_lossy(&salt(&["-t", "5", "minion-1", "test.ping"]).stdout)
            .contains("True")
    });
    let out = salt(&["-t", "30", "minion-1", "state.sls", "failing"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bad_state"),
        "{out:?}"
    );

    wait("the failed state in chat", Duration::from_secs(30), || {
        !posted("/chat").is_empty()
    });
    let chat = posted("/chat");
    assert_eq!(chat.len(), 1);
    assert!(
        chat[0]["body"]["text"]
            .as_str()
            .unwrap()
            .contains("state.sls failed on minion-1"),
        "{}",
        chat[0]
    );
    // Every return goes to Kafka: the readiness pings, then the state run, once.
    let records = rt.block_on(consume_up_to(
        &broker.brokers(),
        "salt.job.ret",
        20,
        Duration::from_secs(5),
    ));
    let funs: Vec<String> = records
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.payload).unwrap()["data"]["fun"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        funs.last().map(String::as_str),
        Some("state.sls"),
        "{funs:?}"
    );
    assert!(
        funs[..funs.len() - 1].iter().all(|f| f == "test.ping"),
        "{funs:?}"
    );
}
