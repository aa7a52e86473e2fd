//! Batching: a batch is one JSON array (or an array of renders); without batching,
//! one request an event.

use super::*;

#[tokio::test]
async fn a_batch_is_one_json_array() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/bulk"), "batch": {"max_events": 10}}));
    let b = s.config().batch.as_ref().unwrap();
    assert_eq!(
        (b.max_events, b.max_bytes, b.max_wait),
        (10, 1024 * 1024, Duration::from_secs(1))
    );
    let batch = [failing_state_ret(), cmd_exit3_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("x-saltbridge-key"), Some(batch[0].key()));
    assert_eq!(r.header("x-saltbridge-batch-size"), Some("3"));
    let body = r.json();
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (item, o) in items.iter().zip(&batch) {
        assert_eq!(item["key"], o.key());
        assert_eq!(item["tag"], o.event.tag());
        assert_eq!(&item["data"], o.event.data());
    }
}

#[tokio::test]
async fn a_batch_with_a_body_template_is_an_array_of_renders() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/bulk"), "batch": {},
        "body": "{\"minion\": {{ data.id | tojson }}, \"rc\": {{ data.retcode }}, \"key\": \"{{ key }}\"}"}),
    );
    let batch = [cmd_exit3_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let body = rx.wait_for(1, WAIT).await[0].json();
    assert_eq!(
        body,
        json!([
            {"minion": "lab-minion", "rc": 3, "key": batch[0].key()},
            {"minion": "lab-minion", "rc": 0, "key": batch[1].key()}
        ])
    );
    let s = sink(
        json!({"type": "webhook", "url": rx.url("/bulk"), "batch": {}, "body": "rc={{ data.retcode }}"}),
    );
    let r = s.send(&batch).await;
    assert!(matches!(r, Err(SendError::Reject { .. })), "{r:?}");
}

#[tokio::test]
async fn without_batching_each_event_is_its_own_request() {
    let rx = Receiver::start().await.unwrap();
    let s = sink(json!({"type": "webhook", "url": rx.url("/one")}));
    assert!(s.config().batch.is_none());
    assert_eq!(s.concurrency(), 4);
    let batch = [cmd_exit3_ret(), test_ping_ret()];
    s.send(&batch).await.unwrap();
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got[0].json()["key"], batch[0].key());
    assert_eq!(got[1].json()["key"], batch[1].key());
}
