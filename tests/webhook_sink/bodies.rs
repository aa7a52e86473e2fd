//! Bodies and templates: the default body, url/method/headers/body templates, and a template that fails to render.

use super::*;

#[tokio::test]
async fn default_body_is_the_event_as_json() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/hook")}));
    let o = failing_state_ret();
    s.send(std::slice::from_ref(&o)).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-saltbridge-key"), Some(o.key()));
    assert_eq!(
        r.header("x-saltbridge-tag"),
        Some("salt/job/20261126135807141393/ret/lab-minion")
    );
    assert!(r.header("user-agent").unwrap().starts_with("saltbridge/"));
    assert_eq!(r.header("x-saltbridge-batch-size"), None);
    let body = r.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["tag", "data", "route", "key", "received_at", "source"]
    );
    assert_eq!(body["tag"], o.event.tag());
    assert_eq!(&body["data"], o.event.data());
    assert_eq!(body["route"], "failed-jobs-to-chat");
    assert_eq!(body["key"], o.key());
    assert_eq!(body["source"], "capture:test");
    let received = body["received_at"].as_str().unwrap();
    humantime::parse_rfc3339(received).unwrap();
    assert_eq!(r.answer, Answer::Status(200));
}

#[tokio::test]
async fn url_method_headers_and_body_are_templates() {
    let rx = Receiver::start().await.unwrap();
    let base = rx.url("");
    let s = sink(json!({
        "type": "webhook",
        "url": format!("{base}/minion/{{{{ data.id }}}}?fun={{{{ data.fun | urlencode }}}}&route={{{{ route }}}}"),
        "method": "{{ 'put' if data.retcode > 0 else 'post' }}",
        "headers": {
            "X-Jid": "{{ data.jid }}",
            "X-Static": "yes",
            "Content-Type": "text/plain; charset=utf-8"
        },
        "body": "{{ data.id }} {{ data.fun }} rc={{ data.retcode }} failed={{ data.return | failed_states | map(attribute='id') | join(',') }} comment={{ (data.return | failed_states)[0].comment }} tag={{ tag }} key={{ key }}"
    }));
    let o = failing_state_ret();
    s.send(std::slice::from_ref(&o)).await.unwrap();
    let r = &rx.wait_for(1, WAIT).await[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/minion/lab-minion");
    assert_eq!(r.query_param("fun").as_deref(), Some("state.sls"));
    assert_eq!(
        r.query_param("route").as_deref(),
        Some("failed-jobs-to-chat")
    );
    assert_eq!(r.header("x-jid"), Some("20261126135807141393"));
    assert_eq!(r.header("x-static"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.body_str(),
        format!(
            "lab-minion state.sls rc=2 failed=bad_state comment=Failure! tag={} key={}",
            o.event.tag(),
            o.key()
        )
    );
}

#[tokio::test]
async fn a_template_that_fails_to_render_rejects() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/"), "body": "{{ data.nope.deeper }}"}));
    let err = s.send(&[test_ping_ret()]).await.unwrap_err();
    let SendError::Reject { reason, status } = err else {
        panic!("{err:?}")
    };
    assert_eq!(status, None);
    assert!(reason.contains("template `body`"), "{reason}");
    let s = sink(json!({"type": "webhook", "url": "{{ data.id }}"}));
    let err = s.send(&[test_ping_ret()]).await.unwrap_err();
    assert!(matches!(err, SendError::Reject { .. }), "{err:?}");
    assert_eq!(rx.count(), 0);
}
