//! `tls: {ca_file, cert_file, key_file}` against a TLS server inside the
//! test (rustls, certificates made by rcgen): mutual TLS delivers; a server
//! that refuses the client certificate, or a server whose certificate is not
//! from `ca_file`, is a reject at once (dead-lettered, not retried).

use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::certs::{ca, pem, Ca};
use super::*;

/// A certificate for `name` signed by `ca`, for a server or a client.
fn leaf(
    ca: &Ca,
    name: &str,
    purpose: ExtendedKeyUsagePurpose,
) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![purpose];
    let cert = p.signed_by(&key, ca).unwrap();
    (cert.der().clone(), key)
}

/// An HTTPS server on loopback that answers 200 to each request it reads,
/// asking for a client certificate from `client_ca` when given. Counts the
/// requests it answered; it ends with the test's runtime.
async fn tls_server(ca: &Ca, client_ca: Option<&Ca>) -> (u16, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(c) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(c.der().clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let (cert, key) = leaf(ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = builder.with_single_cert(vec![cert], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then the body by Content-Length.
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                let _ = tls.write_all(answer).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, served)
}

/// `tls` settings with `ca`'s certificate as `ca_file` and, when given, a
/// client certificate from `client`.
fn tls_settings(dir: &Path, ca: &Ca, client: Option<&Ca>) -> Value {
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, pem(ca.der())).unwrap();
    let mut tls = json!({"ca_file": ca_file});
    if let Some(c) = client {
        let (cert, key) = leaf(c, "saltbridge", ExtendedKeyUsagePurpose::ClientAuth);
        let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client.key"));
        std::fs::write(&cert_file, pem(&cert)).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        tls["cert_file"] = json!(cert_file);
        tls["key_file"] = json!(key_file);
    }
    tls
}

fn tls_sink(port: u16, tls: Value) -> WebhookSink {
    sink(json!({"type": "webhook", "url": format!("https://localhost:{port}/hook"), "tls": tls}))
}

#[tokio::test]
async fn mutual_tls_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("test root");
    let (port, served) = tls_server(&root, Some(&root)).await;
    let s = tls_sink(port, tls_settings(dir.path(), &root, Some(&root)));
    s.send(&[test_ping_ret()]).await.unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_client_certificate_is_rejected_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (root, other) = (ca("test root"), ca("someone else"));
    let (port, served) = tls_server(&root, Some(&root)).await;
    for client in [Some(&other), None] {
        let s = tls_sink(port, tls_settings(dir.path(), &root, client));
        let e = s.send(&[test_ping_ret()]).await.unwrap_err();
        let SendError::Reject { reason, .. } = &e else {
            panic!("not rejected: {e:?}")
        };
        assert!(
            reason.contains("refused the client certificate"),
            "{reason}"
        );
    }
    assert_eq!(served.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_from_another_ca_is_rejected_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (root, other) = (ca("test root"), ca("someone else"));
    let (port, served) = tls_server(&root, None).await;
    let s = tls_sink(port, tls_settings(dir.path(), &other, None));
    let e = s.send(&[test_ping_ret()]).await.unwrap_err();
    let SendError::Reject { reason, .. } = &e else {
        panic!("not rejected: {e:?}")
    };
    assert!(reason.contains("certificate is refused"), "{reason}");
    assert_eq!(served.load(Ordering::SeqCst), 0);
}

#[test]
fn tls_settings_that_cannot_work_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = |tls: Value| json!({"type": "webhook", "url": "https://x/", "tls": tls});
    let missing = dir.path().join("missing.pem");
    assert_eq!(
        config_error(base(json!({"ca_file": missing}))).field,
        "tls.ca_file"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let e = config_error(base(json!({"ca_file": empty})));
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        ("tls.ca_file", "holds no PEM certificate")
    );
    assert_eq!(
        config_error(base(json!({"cert_file": empty}))).field,
        "tls.key_file"
    );
    assert_eq!(
        config_error(base(json!({"key_file": empty}))).field,
        "tls.cert_file"
    );
    let e = config_error(base(json!({"cert_file": empty, "key_file": empty})));
    assert_eq!(e.field, "tls.cert_file");
    assert!(!e.message.contains("not a certificate"), "{e}");
}
