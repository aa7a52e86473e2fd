//! `auth: {oauth2: ...}` against a token server and a receiver, both real
//! HTTP servers: the client-credentials form, one token for many requests,
//! renewal when it expires, one renewal on a 401, credentials refused, and
//! no secret in any error.

use saltbridge::receiver::Mode;

use super::*;

const SECRET: &str = "s3cr3t-client-value";

fn token_answer(token: &str, expires_in: u64) -> Mode {
    Mode::json(
        200,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
}

fn oauth_sink(hook: &Receiver, tokens: &Receiver) -> WebhookSink {
    sink(json!({"type": "webhook", "url": hook.url("/hook"),
        "auth": {"oauth2": {"token_url": tokens.url("/token"), "client_id": "saltbridge",
            "client_secret": SECRET, "scope": "api://cmdb/.default", "audience": "cmdb"}}}))
}

#[tokio::test]
async fn one_token_serves_many_requests_and_is_renewed_when_it_expires() {
    let (hook, tokens) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    tokens.set_mode(token_answer("tok-1", 3600));
    let s = oauth_sink(&hook, &tokens);
    for _ in 0..3 {
        s.send(&[test_ping_ret()]).await.unwrap();
    }
    let got = hook.wait_for(3, WAIT).await;
    assert!(got
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer tok-1")));
    let asked = tokens.requests();
    assert_eq!(asked.len(), 1);
    let form = asked[0].body_str();
    assert_eq!(asked[0].method, "POST");
    assert_eq!(
        asked[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(form.starts_with("grant_type=client_credentials&client_id=saltbridge&client_secret="));
    assert!(
        form.contains("&scope=api%3A%2F%2Fcmdb%2F.default&audience=cmdb"),
        "{form}"
    );

    // A token that lives one second is renewed before the next request.
    let (hook, tokens) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    tokens.set_mode(token_answer("short", 1));
    let s = oauth_sink(&hook, &tokens);
    s.send(&[test_ping_ret()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.send(&[test_ping_ret()]).await.unwrap();
    assert_eq!(tokens.count(), 2, "the expired token was not renewed");
}

#[tokio::test]
async fn a_401_renews_the_token_once() {
    let (hook, tokens) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    tokens.set_mode(token_answer("revoked", 3600));
    let s = oauth_sink(&hook, &tokens);
    hook.push_once(Mode::status(401));
    tokens.push_once(token_answer("revoked", 3600));
    tokens.set_mode(token_answer("fresh", 3600));
    s.send(&[test_ping_ret()]).await.unwrap();
    let got = hook.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("authorization"), Some("Bearer revoked"));
    assert_eq!(got[1].header("authorization"), Some("Bearer fresh"));
    assert_eq!(tokens.count(), 2);

    // A receiver that refuses every token: one renewal, then a reject.
    hook.set_mode(Mode::status(401));
    let e = s.send(&[test_ping_ret()]).await.unwrap_err();
    assert!(
        matches!(
            e,
            SendError::Reject {
                status: Some(401),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(tokens.count(), 3);
    assert_eq!(hook.count(), 4);
}

#[tokio::test]
async fn refused_credentials_are_a_reject_without_the_secret() {
    let (hook, tokens) = (
        Receiver::start().await.unwrap(),
        Receiver::start().await.unwrap(),
    );
    tokens.set_mode(Mode::json(
        401,
        json!({"error": "invalid_client", "error_description": format!("bad secret {SECRET}")}),
    ));
    let s = oauth_sink(&hook, &tokens);
    let e = s.send(&[test_ping_ret()]).await.unwrap_err();
    let SendError::Reject { reason, status } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*status, Some(401));
    assert!(reason.contains("invalid_client"), "{reason}");
    assert!(!reason.contains(SECRET), "{reason}");
    assert!(!format!("{s:?}").contains(SECRET));
    assert_eq!(hook.count(), 0);
    // A token endpoint that is down is a retry.
    tokens.set_mode(Mode::status(503));
    let e = s.send(&[test_ping_ret()]).await.unwrap_err();
    assert!(matches!(e, SendError::Retry { .. }), "{e:?}");
}

#[test]
fn oauth2_settings_that_cannot_work_name_their_field() {
    let with = |o: Value| json!({"type": "webhook", "url": "http://x/", "auth": {"oauth2": o}});
    let ok = json!({"token_url": "https://t/", "client_id": "a", "client_secret": "b"});
    let mut bad_url = ok.clone();
    bad_url["token_url"] = json!("ftp://t/");
    assert_eq!(config_error(with(bad_url)).field, "auth.oauth2.token_url");
    let mut no_secret = ok.clone();
    no_secret["client_secret"] = json!("");
    assert_eq!(
        config_error(with(no_secret)).field,
        "auth.oauth2.client_secret"
    );
    let mut header_clash = with(ok);
    header_clash["headers"] = json!({"Authorization": "x"});
    assert_eq!(config_error(header_clash).field, "headers.Authorization");
}
