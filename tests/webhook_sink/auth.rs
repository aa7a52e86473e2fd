//! Auth and signatures: bearer and basic auth, and the HMAC signature checked the way
//! docs/sinks-webhook.md tells receivers to check it (its Python and openssl snippets).

use super::*;

#[tokio::test]
async fn bearer_and_basic_auth() {
    let rx = Receiver::start().await.unwrap();
    let bearer = sink(
        json!({"type": "webhook", "url": rx.url("/b"), "auth": {"bearer": {"token": "s3cr3t"}}}),
    );
    let basic = sink(json!({"type": "webhook", "url": rx.url("/a"),
        "auth": {"basic": {"username": "salt", "password": "p@ss:word"}}}));
    bearer.send(&[test_ping_ret()]).await.unwrap();
    basic.send(&[test_ping_ret()]).await.unwrap();
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cr3t"));
    let expected = base64::engine::general_purpose::STANDARD.encode("salt:p@ss:word");
    assert_eq!(
        got[1].header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    // Secrets stay out of Debug output.
    let debug = format!("{:?}", bearer.config());
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(!format!("{basic:?}").contains("p@ss"));
}

/// The code block that follows `<!-- marker -->` in docs/sinks-webhook.md.
fn doc_snippet(marker: &str) -> String {
    let doc = std::fs::read_to_string(root().join("docs/sinks-webhook.md")).unwrap();
    let at = doc
        .find(&format!("<!-- {marker} -->"))
        .unwrap_or_else(|| panic!("no {marker} in the docs"));
    let rest = &doc[at..];
    let start = rest.find("```").unwrap();
    let rest = &rest[start..];
    let body_start = rest.find('\n').unwrap() + 1;
    let end = rest[body_start..].find("```").unwrap();
    rest[body_start..body_start + end].to_owned()
}

/// Runs a program if it is installed; outside CI a missing one skips.
fn run_tool(program: &str, args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(envs.iter().copied())
        .output();
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping the {program} check: {e}");
            None
        }
        Err(e) => panic!("{program}: {e}"),
    }
}

#[tokio::test]
async fn hmac_signature_verifies_as_the_docs_say() {
    let rx = Receiver::start().await.unwrap();
    let secret = "whsec_0123456789";
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/signed"), "auth": {"hmac": {"secret": secret}}}),
    );
    s.send(&[failing_state_ret()]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    let ts = r.header("x-saltbridge-timestamp").unwrap().to_owned();
    let sig = r.header("x-saltbridge-signature").unwrap().to_owned();
    // The scheme, in Rust: sha256= hex(HMAC-SHA256(secret, timestamp "." body)).
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    assert_eq!(
        sig,
        format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &signed)))
    );
    let age = now_secs().abs_diff(ts.parse::<u64>().unwrap());
    assert!(age < 60, "timestamp {ts} is {age} s off");

    // The docs' own snippets, run as a receiver would.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body.json"), &r.body).unwrap();
    let python = format!(
        "{}\nimport os, sys\nbody = open('body.json', 'rb').read()\n\
         print(verify(os.environ['SECRET'].encode(), os.environ['TIMESTAMP'], os.environ['SIGNATURE'], body))\n\
         print(verify(b'wrong', os.environ['TIMESTAMP'], os.environ['SIGNATURE'], body))\n",
        doc_snippet("verify:python")
    );
    std::fs::write(dir.path().join("verify.py"), python).unwrap();
    let envs = [
        ("SECRET", secret),
        ("TIMESTAMP", ts.as_str()),
        ("SIGNATURE", sig.as_str()),
    ];
    if let Some(out) = run_tool("python3", &["verify.py"], dir.path(), &envs) {
        assert_eq!(out, "True\nFalse");
    }
    std::fs::write(dir.path().join("verify.sh"), doc_snippet("verify:sh")).unwrap();
    if let Some(out) = run_tool("sh", &["verify.sh"], dir.path(), &envs) {
        assert_eq!(out, "valid");
    }
    let bad = [("SECRET", "wrong"), envs[1], envs[2]];
    if let Some(out) = run_tool("sh", &["verify.sh"], dir.path(), &bad) {
        assert_eq!(out, "INVALID");
    }
}

#[tokio::test]
async fn hmac_header_names_can_be_changed() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/"),
        "auth": {"hmac": {"secret": "k", "header": "X-Hub-Signature-256", "timestamp_header": "X-Hub-Time"}}}));
    s.send(&[test_ping_ret()]).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    let ts = r.header("x-hub-time").unwrap();
    let mut signed = format!("{ts}.").into_bytes();
    signed.extend_from_slice(&r.body);
    assert_eq!(
        r.header("x-hub-signature-256").unwrap(),
        format!("sha256={}", hex(&hmac_sha256(b"k", &signed)))
    );
    assert_eq!(r.header("x-saltbridge-signature"), None);
}
