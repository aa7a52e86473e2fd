//! Issue 12, webhooks and HTTP peers that misbehave: a long tag does not
//! make a request the receiver refuses, event data cannot rewrite a URL,
//! a bad certificate is dead-lettered at once, and `status` reads a
//! bounded answer.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use saltbridge::event::Event;
use saltbridge::outgoing::Outgoing;
use saltbridge::receiver::Receiver;
use saltbridge::sink::webhook::WebhookSink;
use saltbridge::sink::SendError;
use serde_json::json;

fn sink(settings: serde_json::Value) -> WebhookSink {
    WebhookSink::from_config("hook", &settings).unwrap_or_else(|e| panic!("{e}"))
}

fn event(tag: &str, data: serde_json::Value) -> Outgoing {
    Outgoing::new(Event::synthetic(tag, data, Arc::from("test")), "r")
}

#[tokio::test]
async fn a_long_tag_is_cut_in_its_header_and_the_event_delivered() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/hook")}));
    let tag = format!("evil/{}", "x".repeat(100_000));
    s.send(&[event(&tag, json!({"n": 1}))])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let header = got[0].header("x-saltbridge-tag").unwrap_or_default();
    assert!(
        header.len() <= 1024 && header.starts_with("evil/xxx"),
        "{}",
        header.len()
    );
    // The body still carries the whole tag.
    assert_eq!(got[0].json()["tag"].as_str().map(str::len), Some(tag.len()));
    rx.stop().await;
}

#[tokio::test]
async fn event_data_stays_inside_its_url_component() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/minions/{{ data.id }}/done?jid={{ data.jid }}")}),
    );
    s.send(&[event(
        "a/b",
        json!({"id": "../../admin/delete?all=1#", "jid": "1&x=2"}),
    )])
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(
        got[0].path,
        "/minions/..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23/done"
    );
    assert_eq!(got[0].query.as_deref(), Some("jid=1%26x%3D2"));
    rx.stop().await;
}

/// `openssl s_server` with a self-signed certificate, killed on drop.
/// Killed with its process group on every path (`support::process`).
struct TlsServer {
    _child: support::process::ProcessGroup,
    port: u16,
}

fn tls_server(dir: &std::path::Path) -> Option<TlsServer> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !made.success() {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = support::process::spawn(
        Command::new("openssl")
            .args([
                "s_server",
                "-www",
                "-quiet",
                "-accept",
                &port.to_string(),
                "-cert",
            ])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .ok()?;
    let server = TlsServer {
        _child: child,
        port,
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(5) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(server)
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_rejected_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = tls_server(dir.path()) else {
        assert!(std::env::var("CI").is_err(), "openssl is needed in CI");
        eprintln!("skipped: openssl cannot run a TLS server here");
        return;
    };
    let s =
        sink(json!({"type": "webhook", "url": format!("https://localhost:{}/hook", server.port)}));
    match s.send(&[event("a/b", json!({}))]).await {
        Err(SendError::Reject { reason, .. }) => {
            assert!(reason.contains("certificate"), "{reason}")
        }
        other => panic!("expected a reject, got {other:?}"),
    }
}

#[test]
fn status_reads_a_bounded_answer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A peer that answers /metrics with a body without end.
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n");
            let chunk = vec![b'#'; 1 << 20];
            while c.write_all(&chunk).is_ok() {}
        }
    });
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_saltbridge"))
        .args(["status", "--listen", &addr.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("more than"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
