//! How every kind of answer is classified: statuses, Retry-After, timeouts, resets,
//! nothing listening, and chat errors inside HTTP 200.

use super::*;

/// The reason, status and Retry-After of a send to be tried again.
fn retried(r: Result<(), SendError>) -> (String, Option<u16>, Option<Duration>) {
    match r {
        Err(SendError::Retry {
            reason,
            status,
            retry_after,
        }) => (reason, status, retry_after),
        other => panic!("expected a retry: {other:?}"),
    }
}

/// The reason of a send rejected with `want`.
fn rejected(r: Result<(), SendError>, want: u16) -> String {
    match r {
        Err(SendError::Reject { reason, status }) if status == Some(want) => reason,
        other => panic!("expected a {want} rejection: {other:?}"),
    }
}

async fn outcome(mode: Mode, timeout: &str) -> Result<(), SendError> {
    let rx = Receiver::start().await.unwrap();
    rx.set_mode(mode);
    let s = sink(json!({"type": "webhook", "url": rx.url("/x"), "timeout": timeout}));
    s.send(&[test_ping_ret()]).await
}

#[tokio::test]
async fn answers_are_classified() {
    let r = outcome(Mode::status(500).with_body("boom\n  today"), "5s").await;
    let (reason, status, retry_after) = retried(r);
    assert_eq!((status, retry_after), (Some(500), None));
    assert!(
        reason.contains("500") && reason.contains("127.0.0.1"),
        "{reason}"
    );
    assert!(reason.ends_with(": boom today"), "{reason}");

    let r = outcome(Mode::retry_after_secs(429, 7), "5s").await;
    assert!(
        matches!(r, Err(SendError::Retry { status: Some(429), retry_after: Some(d), .. }) if d == Duration::from_secs(7)),
        "{r:?}"
    );

    let at = SystemTime::now() + Duration::from_secs(30);
    let r = outcome(Mode::retry_after_date(503, at), "5s").await;
    let (_, status, retry_after) = retried(r);
    assert_eq!(status, Some(503));
    let d = retry_after.expect("a Retry-After");
    assert!(
        d >= Duration::from_secs(27) && d <= Duration::from_secs(30),
        "{d:?}"
    );

    let r = outcome(Mode::status(400).with_body(r#"{"error":"no_text"}"#), "5s").await;
    let reason = rejected(r, 400);
    assert!(
        reason.contains("400") && reason.contains("no_text"),
        "{reason}"
    );

    let r = outcome(Mode::status(204), "5s").await;
    assert!(r.is_ok(), "{r:?}");

    let r = outcome(
        Mode::status(302).with_header("location", "https://elsewhere.example/new?token=x"),
        "5s",
    )
    .await;
    let reason = rejected(r, 302);
    assert!(reason.contains("https://elsewhere.example/..."), "{reason}");
    assert!(!reason.contains("token"), "{reason}");
}

#[tokio::test]
async fn a_slow_server_times_out_and_is_retried() {
    // The server would answer after an hour: the send ending at all (the
    // 60 s guard is a hang guard, not a speed) shows the timeout works.
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        outcome(Mode::slow(Duration::from_secs(3600)), "300ms"),
    )
    .await
    .expect("the send gave up on the silent server by itself");
    let (reason, status, _) = retried(r);
    assert_eq!(status, None);
    assert!(reason.contains("within 300ms"), "{reason}");
}

#[tokio::test]
async fn a_reset_connection_is_retried() {
    let rx = Receiver::start().await.unwrap();
    rx.push_once(Mode::reset());
    let s = sink(json!({"type": "webhook", "url": rx.url("/x")}));
    let r = s.send(&[test_ping_ret()]).await;
    let (reason, status, _) = retried(r);
    assert_eq!(status, None);
    assert!(!reason.contains("/x"), "no URL path in reasons: {reason}");
    // The next request gets the default answer again.
    s.send(&[test_ping_ret()]).await.unwrap();
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].answer, Answer::Reset);
    assert_eq!(got[1].answer, Answer::Status(200));
}

#[tokio::test]
async fn nothing_listening_is_retried() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s =
        sink(json!({"type": "webhook", "url": format!("http://127.0.0.1:{port}/secret-token")}));
    let r = s.send(&[test_ping_ret()]).await;
    let (reason, status, _) = retried(r);
    assert_eq!(status, None);
    assert!(reason.contains("cannot connect"), "{reason}");
    assert!(!reason.contains("secret-token"), "{reason}");
}

#[tokio::test]
async fn receiver_stop_and_resume() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/x")}));
    s.send(&[test_ping_ret()]).await.unwrap();
    rx.stop().await;
    let r = s.send(&[test_ping_ret()]).await;
    assert!(matches!(r, Err(SendError::Retry { .. })), "{r:?}");
    rx.resume().await.unwrap();
    s.send(&[test_ping_ret()]).await.unwrap();
    let got = rx.requests();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got.iter().all(|r| r.answer == Answer::Status(200)));
}

#[tokio::test]
async fn chat_errors_inside_http_200_are_rejected() {
    let rx = Receiver::start().await.unwrap();
    rx.set_mode(Mode::json(
        200,
        json!({"errcode": 310000, "errmsg": "sign not match"}),
    ));
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/robot/send"), "preset": "dingtalk", "secret": "SECx"}),
    );
    let r = s.send(&[test_ping_ret()]).await;
    let reason = rejected(r, 200);
    assert!(
        reason.contains("310000") && reason.contains("sign not match"),
        "{reason}"
    );
}
