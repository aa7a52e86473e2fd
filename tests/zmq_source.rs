//! The `zmq:` source against a real ZeroMQ PUB socket publishing the
//! ZeroMQ-era messages of a 2014-2015 master.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use saltbridge::event::Event;
use saltbridge::shutdown::ShutdownSignal;
use saltbridge::source::EventReceiver;
use saltbridge::source::{self, ReaderOptions, SourceSpec, GAP_TAG};
use serde_json::Value;
use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

const PROBE: &[u8] = b"saltbridge-test/probe\n\n\x80";

fn legacy_messages() -> Vec<(Vec<u8>, String, Value)> {
    let mut out = Vec::new();
    for name in ["test_ping.padded.jsonl", "test_ping.tagend.jsonl"] {
        let text = std::fs::read_to_string(support::fixtures::fixtures().join("legacy").join(name))
            .unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap();
            let b = base64::engine::general_purpose::STANDARD
                .decode(v["b64"].as_str().unwrap())
                .unwrap();
            out.push((b, v["tag"].as_str().unwrap().to_owned(), v["data"].clone()));
        }
    }
    out
}

/// PUB/SUB drops what is sent before the subscription arrives: publish a
/// probe until the reader sees one, then the stream is live.
async fn wait_until_subscribed(publisher: &mut PubSocket, rx: &mut EventReceiver) -> Vec<Event> {
    let mut before = Vec::new();
    for _ in 0..200 {
        publisher
            .send(ZmqMessage::from(PROBE.to_vec()))
            .await
            .unwrap();
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            if ev.tag() == "saltbridge-test/probe" {
                // Drain further probes already on their way.
                tokio::time::sleep(Duration::from_millis(100)).await;
                while rx.try_recv().is_ok() {}
                return before;
            }
            before.push(ev);
        }
    }
    panic!("the SUB socket never received a probe");
}

#[tokio::test]
async fn legacy_messages_over_a_real_pub_socket_and_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!(
        "ipc://{}",
        dir.path().join("master_event_pub.ipc").display()
    );
    let mut publisher = PubSocket::new();
    publisher.bind(&endpoint).await.unwrap();
    let (signal, shutdown) = ShutdownSignal::new();
    let opts = ReaderOptions {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ReaderOptions::default()
    };
    let mut src = source::spawn(SourceSpec::Zmq(endpoint.clone()), opts, shutdown);
    wait_until_subscribed(&mut publisher, &mut src.events).await;

    let messages = legacy_messages();
    for (bytes, _, _) in &messages {
        publisher
            .send(ZmqMessage::from(bytes.clone()))
            .await
            .unwrap();
    }
    for (_, tag, data) in &messages {
        let ev = tokio::time::timeout(Duration::from_secs(5), src.events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ev.tag(), tag);
        assert!(support::fixtures::same_in_order(ev.data(), data), "{tag}");
        assert!(ev.raw().is_some());
    }

    // The master restarts: a new PUB socket on the same endpoint.
    drop(publisher);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = std::fs::remove_file(dir.path().join("master_event_pub.ipc"));
    let mut publisher = PubSocket::new();
    publisher.bind(&endpoint).await.unwrap();
    let before = wait_until_subscribed(&mut publisher, &mut src.events).await;
    let gap = before
        .iter()
        .find(|e| e.tag() == GAP_TAG)
        .expect("a gap marker after the reconnect");
    assert!(gap.data()["seconds"].as_f64().unwrap() > 0.2);
    let (bytes, tag, _) = &messages[2];
    publisher
        .send(ZmqMessage::from(bytes.clone()))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), src.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.tag(), tag);
    assert_eq!(
        &*Arc::<str>::from(ev.source()),
        endpoint_spec(&endpoint).as_str()
    );
    signal.trigger();
}

fn endpoint_spec(endpoint: &str) -> String {
    format!("zmq:{endpoint}")
}
