//! The `saltapi:` source against a salt-api stand-in inside the test (a
//! unit test may fake a peer; tests/saltapi_live.rs runs the real one):
//! TLS verified against `ca_file` (certificates made by rcgen), a token
//! refused with 401 is replaced by logging in once more, and an event over
//! `max_frame` is refused, counted and costs nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use saltbridge::shutdown::ShutdownSignal;
use saltbridge::source::saltapi::{SaltApiSettings, Secret};
use saltbridge::source::{self, ReaderOptions, SourceHandle, SourceSpec, SourceStats};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod support;
use support::certs::{ca, pem, Ca};

/// What the stand-in answers to one request: status line and headers, body.
type Answer = (String, Vec<u8>);

/// The stand-in's behaviour: request path and lower-cased headers to answer.
type Handler = Arc<dyn Fn(&str, &str) -> Answer + Send + Sync>;

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream;charset=utf-8\r\nconnection: close\r\n\r\n";

fn sse_event(tag: &str, data: &str) -> String {
    format!("tag: {tag}\ndata: {{\"data\": {data}, \"tag\": \"{tag}\"}}\n\n")
}

fn login_answer(token: &str) -> Answer {
    let body = format!(
        r#"{{"return": [{{"token": "{token}", "expire": 2000.0, "start": 1000.0, "user": "u", "eauth": "auto", "perms": []}}]}}"#
    );
    (
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ),
        body.into_bytes(),
    )
}

fn refused() -> Answer {
    (
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: text/html\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
        Vec::new(),
    )
}

/// Serves one connection: reads a request, answers, keeps an event stream open.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, handler: Handler) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let (path, headers) = loop {
        let Ok(n) = s.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let lower = text[..end].to_ascii_lowercase();
            let len: usize = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
                break (path, lower);
            }
        }
    };
    let (head, body) = handler(&path, &headers);
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(&body).await;
    let _ = s.flush().await;
    if head.contains("text/event-stream") {
        // A live stream stays open; the test ends it.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let _ = s.shutdown().await;
}

/// A plain HTTP stand-in on loopback; returns its port.
async fn http_server(handler: Handler) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp, handler.clone()));
        }
    });
    port
}

/// An HTTPS stand-in for `localhost` with a certificate from `ca`.
async fn https_server(ca: &Ca, handler: Handler) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, ca).unwrap().der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls, handler).await;
                }
            });
        }
    });
    port
}

fn opts(max_frame: usize) -> ReaderOptions {
    ReaderOptions {
        max_frame,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ReaderOptions::default()
    }
}

fn spawn(
    url: String,
    settings: SaltApiSettings,
    max_frame: usize,
) -> (SourceHandle, ShutdownSignal) {
    let (signal, shutdown) = ShutdownSignal::new();
    let spec = SourceSpec::SaltApi { url, settings };
    (source::spawn(spec, opts(max_frame), shutdown), signal)
}

async fn next(src: &mut SourceHandle, within: Duration) -> Option<saltbridge::event::Event> {
    tokio::time::timeout(within, src.events.recv())
        .await
        .ok()
        .flatten()
}

fn token(t: &str) -> SaltApiSettings {
    SaltApiSettings {
        token: Some(Secret::new(t)),
        ..Default::default()
    }
}

/// A stand-in streaming `body` to a request with `X-Auth-Token: tok`.
fn stream_to_token(body: String) -> Handler {
    Arc::new(move |path, headers| {
        if path == "/events" && headers.contains("x-auth-token: tok") {
            (SSE_HEAD.into(), format!("retry: 400\n{body}").into_bytes())
        } else {
            refused()
        }
    })
}

#[tokio::test]
async fn https_is_verified_against_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (root, other) = (ca("salt root"), ca("someone else"));
    let body = sse_event("lab/tls", r#"{"x": 1}"#);
    let port = https_server(&root, stream_to_token(body)).await;
    let url = format!("https://localhost:{port}");

    let good = dir.path().join("root.pem");
    std::fs::write(&good, pem(root.der())).unwrap();
    let settings = SaltApiSettings {
        ca_file: Some(good),
        ..token("tok")
    };
    let (mut src, signal) = spawn(url.clone(), settings, 1 << 20);
    let ev = next(&mut src, Duration::from_secs(10))
        .await
        .expect("an event over TLS");
    assert_eq!((ev.tag(), ev.data_json()), ("lab/tls", r#"{"x":1}"#));
    signal.trigger();

    // A server whose certificate is not from ca_file is never read.
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, pem(other.der())).unwrap();
    let settings = SaltApiSettings {
        ca_file: Some(wrong),
        ..token("tok")
    };
    let (mut src, signal) = spawn(url, settings, 1 << 20);
    assert!(next(&mut src, Duration::from_secs(2)).await.is_none());
    assert!(!src.stats.is_connected());
    assert_eq!(SourceStats::get(&src.stats.connects), 0);
    signal.trigger();
}

#[tokio::test]
async fn a_refused_token_is_replaced_by_one_more_login() {
    let logins = Arc::new(AtomicUsize::new(0));
    let count = logins.clone();
    let handler: Handler = Arc::new(move |path, headers| match path {
        "/login" => {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            login_answer(&format!("token{n}"))
        }
        // The first token is refused, as after a salt-api restart.
        "/events" if headers.contains("x-auth-token: token2") => (
            SSE_HEAD.into(),
            format!("retry: 400\n{}", sse_event("lab/relogin", "{}")).into_bytes(),
        ),
        _ => refused(),
    });
    let port = http_server(handler).await;
    let settings = SaltApiSettings {
        username: Some("u".into()),
        password: Some(Secret::new("pw")),
        eauth: Some("auto".into()),
        ..Default::default()
    };
    let (mut src, signal) = spawn(format!("http://127.0.0.1:{port}"), settings, 1 << 20);
    let ev = next(&mut src, Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(ev.tag(), "lab/relogin");
    assert_eq!(logins.load(Ordering::SeqCst), 2);
    signal.trigger();
}

#[tokio::test]
async fn a_refused_static_token_stops_the_source_with_a_clear_error() {
    let port = http_server(Arc::new(|_, _| refused())).await;
    let url = format!("http://127.0.0.1:{port}");
    let (src, _signal) = spawn(url.clone(), token("secret-token-42"), 1 << 20);
    let err = tokio::time::timeout(Duration::from_secs(10), src.task)
        .await
        .expect("the source stops by itself")
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&url) && err.contains("401"), "{err}");
    assert!(!err.contains("secret-token-42"), "{err}");
}

#[tokio::test]
async fn an_event_over_max_frame_is_refused_counted_and_the_next_passes() {
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(4096));
    let body = sse_event("lab/big", &big) + &sse_event("lab/small", r#"{"ok": true}"#);
    let port = http_server(stream_to_token(body)).await;
    let (mut src, signal) = spawn(format!("http://127.0.0.1:{port}"), token("tok"), 1024);
    let ev = next(&mut src, Duration::from_secs(10))
        .await
        .expect("the small event");
    assert_eq!(ev.tag(), "lab/small");
    assert_eq!(SourceStats::get(&src.stats.malformed), 1);
    assert!(SourceStats::get(&src.stats.malformed_bytes) > 4096);
    assert_eq!(SourceStats::get(&src.stats.events), 1);
    signal.trigger();
}
