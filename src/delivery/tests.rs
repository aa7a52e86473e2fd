//! The delivery worker against a scripted sink: retries, Retry-After,
//! rejects, giving up, batching, draining, stopping and restarting.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::event::Event;
use crate::outgoing::Outgoing;
use crate::shutdown::ShutdownSignal;
use crate::sink::SendError;

/// A sink that answers from a script, then succeeds; records every batch.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<(), SendError>>>,
    sent: Mutex<Vec<(Instant, Vec<String>)>>,
    delay: Duration,
}

impl Deliver for Scripted {
    async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.sent.lock().unwrap().push((
            Instant::now(),
            batch.iter().map(|o| o.event.tag().to_owned()).collect(),
        ));
        self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()))
    }
}

fn ev(n: usize) -> Outgoing {
    Outgoing::new(
        Event::synthetic(format!("t/{n}"), json!({"n": n}), Arc::from("test")),
        "r",
    )
}

fn retry(after: Option<u64>) -> Result<(), SendError> {
    Err(SendError::Retry {
        reason: "503".into(),
        status: Some(503),
        retry_after: after.map(Duration::from_millis),
    })
}

fn settings(give_up_ms: u64) -> DeliverySettings {
    DeliverySettings {
        spool: Default::default(),
        retry: RetryPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            give_up_after: Duration::from_millis(give_up_ms),
        },
    }
}

struct Setup {
    sink: Arc<Scripted>,
    handle: SinkHandle,
    dead: std::path::PathBuf,
    signal: ShutdownSignal,
    _dir: tempfile::TempDir,
}

fn setup(sink: Scripted, give_up_ms: u64, batching: Option<Batching>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let sink = Arc::new(sink);
    let (signal, stop) = ShutdownSignal::new();
    let opts = WorkerOptions {
        settings: settings(give_up_ms),
        concurrency: 1,
        batching,
        stop_deadline: Duration::from_millis(500),
        keep_raw: false,
        in_order: false,
    };
    let handle = start(
        "s",
        sink.clone(),
        opts,
        &dir.path().join("spool"),
        DeadLetters::new(&dead),
        stop,
    )
    .unwrap();
    Setup {
        sink,
        handle,
        dead,
        signal,
        _dir: dir,
    }
}

fn dead_lines(p: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn retries_until_delivered_and_honours_retry_after() {
    let s = Scripted::default();
    s.answers
        .lock()
        .unwrap()
        .extend([retry(None), retry(Some(300)), Ok(())]);
    let t = setup(s, 10_000, None);
    assert!(t.handle.spool.offer(ev(1)));
    let stats = t.handle.spool.stats().clone();
    drop(t.handle.spool);
    t.handle.task.await.unwrap();
    let sent = t.sink.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[2].0 - sent[1].0 >= Duration::from_millis(300),
        "Retry-After waited for"
    );
    assert_eq!(SinkStats::get(&stats.delivered), 1);
    assert_eq!(SinkStats::get(&stats.retries), 2);
    assert!(dead_lines(&t.dead).is_empty());
}

#[tokio::test]
async fn a_reject_goes_to_the_dead_letter_file_with_its_status() {
    let s = Scripted::default();
    s.answers.lock().unwrap().push_back(Err(SendError::Reject {
        reason: "400 bad".into(),
        status: Some(400),
    }));
    let t = setup(s, 10_000, None);
    t.handle.spool.offer(ev(1));
    t.handle.spool.offer(ev(2));
    let stats = t.handle.spool.stats().clone();
    drop(t.handle.spool);
    t.handle.task.await.unwrap();
    let dead = dead_lines(&t.dead);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["status"], 400);
    assert_eq!(dead[0]["sink"], "s");
    assert_eq!(dead[0]["event"]["tag"], "t/1");
    assert_eq!(dead[0]["key"], ev(1).key());
    assert_eq!(SinkStats::get(&stats.delivered), 1);
    assert_eq!(SinkStats::get(&stats.dead_lettered), 1);
}

#[tokio::test]
async fn retries_give_up_into_the_dead_letter_file() {
    let s = Scripted::default();
    s.answers
        .lock()
        .unwrap()
        .extend((0..1000).map(|_| retry(None)));
    let t = setup(s, 200, None);
    t.handle.spool.offer(ev(1));
    drop(t.handle.spool);
    tokio::time::timeout(Duration::from_secs(5), t.handle.task)
        .await
        .unwrap()
        .unwrap();
    let dead = dead_lines(&t.dead);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["error"].as_str().unwrap().contains("gave up after"),
        "{}",
        dead[0]
    );
}

#[tokio::test]
async fn batches_take_what_is_queued_up_to_the_bounds() {
    let s = Scripted::default();
    let b = Batching {
        max_events: 3,
        max_bytes: 1 << 20,
        max_wait: Duration::from_millis(100),
    };
    let t = setup(s, 10_000, Some(b));
    for n in 0..7 {
        t.handle.spool.offer(ev(n));
    }
    drop(t.handle.spool);
    t.handle.task.await.unwrap();
    let sizes: Vec<usize> = t
        .sink
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.len())
        .collect();
    assert_eq!(sizes, vec![3, 3, 1]);
}

#[tokio::test]
async fn stop_leaves_what_was_not_delivered_in_the_spool_for_the_next_start() {
    let s = Scripted {
        delay: Duration::from_millis(50),
        ..Default::default()
    };
    s.answers
        .lock()
        .unwrap()
        .extend((0..1000).map(|_| retry(Some(60_000))));
    let t = setup(s, 600_000, None);
    for n in 0..5 {
        t.handle.spool.offer(ev(n));
    }
    t.handle.spool.flush();
    let stats = t.handle.spool.stats().clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.signal.trigger();
    tokio::time::timeout(Duration::from_secs(5), t.handle.task)
        .await
        .unwrap()
        .unwrap();
    drop(t.handle.spool);
    assert!(
        dead_lines(&t.dead).is_empty(),
        "nothing is dead-lettered on stop"
    );
    assert_eq!(
        SinkStats::get(&stats.not_delivered),
        5,
        "all 5 are left in the spool"
    );
    assert_eq!(SinkStats::get(&stats.delivered), 0);

    // The next start sends them, in order, with their keys.
    let again = Arc::new(Scripted::default());
    let (_signal, stop) = ShutdownSignal::new();
    let opts = WorkerOptions {
        settings: settings(10_000),
        concurrency: 1,
        batching: None,
        stop_deadline: Duration::from_millis(500),
        keep_raw: false,
        in_order: false,
    };
    let h = start(
        "s",
        again.clone(),
        opts,
        &t._dir.path().join("spool"),
        DeadLetters::new(&t.dead),
        stop,
    )
    .unwrap();
    assert_eq!(SinkStats::get(&h.spool.stats().queued), 5);
    drop(h.spool);
    h.task.await.unwrap();
    let tags: Vec<String> = again
        .sent
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert_eq!(tags, ["t/0", "t/1", "t/2", "t/3", "t/4"]);
}

#[tokio::test]
async fn a_full_spool_counts_what_it_drops() {
    let s = Scripted {
        delay: Duration::from_millis(200),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (_signal, stop) = ShutdownSignal::new();
    let mut st = settings(10_000);
    st.spool.max_bytes = 2048;
    let opts = WorkerOptions {
        settings: st,
        concurrency: 1,
        batching: None,
        stop_deadline: Duration::from_secs(1),
        keep_raw: false,
        in_order: false,
    };
    let h = start(
        "s",
        Arc::new(s),
        opts,
        dir.path(),
        DeadLetters::new(dir.path().join("d")),
        stop,
    )
    .unwrap();
    let accepted = (0..100).filter(|n| h.spool.offer(ev(*n))).count();
    assert!(accepted < 100 && accepted > 0, "{accepted}");
    assert_eq!(
        SinkStats::get(&h.spool.stats().overflowed),
        100 - accepted as u64
    );
}

/// Rejects every request that holds event `t/3` (as a receiver answers 431
/// to one event's oversized header); records what it took.
#[derive(Default)]
struct Picky {
    took: Mutex<Vec<String>>,
}

impl Deliver for Picky {
    async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        if batch.iter().any(|o| o.event.tag() == "t/3") {
            return Err(SendError::Reject {
                reason: "HTTP 431".into(),
                status: Some(431),
            });
        }
        let mut took = self.took.lock().unwrap();
        took.extend(batch.iter().map(|o| o.event.tag().to_owned()));
        Ok(())
    }
}

#[tokio::test]
async fn one_rejected_event_takes_no_other_of_its_batch_down() {
    let dir = tempfile::tempdir().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let sink = Arc::new(Picky::default());
    let (_signal, stop) = ShutdownSignal::new();
    let opts = WorkerOptions {
        settings: settings(10_000),
        concurrency: 1,
        batching: Some(Batching {
            max_events: 10,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(50),
        }),
        stop_deadline: Duration::from_millis(500),
        keep_raw: false,
        in_order: false,
    };
    let handle = start(
        "s",
        sink.clone(),
        opts,
        &dir.path().join("spool"),
        DeadLetters::new(&dead),
        stop,
    )
    .unwrap();
    for n in 0..6 {
        assert!(handle.spool.offer(ev(n)));
    }
    let stats = handle.spool.stats().clone();
    drop(handle.spool);
    handle.task.await.unwrap();
    let mut took = sink.took.lock().unwrap().clone();
    took.sort();
    assert_eq!(took, ["t/0", "t/1", "t/2", "t/4", "t/5"]);
    let dead = dead_lines(&dead);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(SinkStats::get(&stats.delivered), 5);
    assert_eq!(SinkStats::get(&stats.dead_lettered), 1);
}

/// Hands each batch over at once (recording the order) and acknowledges it
/// after a delay that shrinks batch by batch, so later batches settle first.
#[derive(Default)]
struct Pipelined {
    started: Mutex<Vec<String>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    most_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl Deliver for Pipelined {
    async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        self.start(batch).await.await
    }

    async fn start(&self, batch: &[Outgoing]) -> crate::sink::Outcome {
        use std::sync::atomic::Ordering::SeqCst;
        let mut started = self.started.lock().unwrap();
        started.extend(batch.iter().map(|o| o.event.tag().to_owned()));
        let delay = Duration::from_millis(60u64.saturating_sub(started.len() as u64));
        let (now, most) = (self.in_flight.clone(), self.most_in_flight.clone());
        most.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            now.fetch_sub(1, SeqCst);
            Ok(())
        })
    }
}

#[tokio::test]
async fn an_in_order_sink_gets_batches_in_spool_order_with_several_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Pipelined::default());
    let (_signal, stop) = ShutdownSignal::new();
    let opts = WorkerOptions {
        settings: settings(10_000),
        concurrency: 4,
        batching: Some(Batching {
            max_events: 2,
            max_bytes: usize::MAX,
            max_wait: Duration::ZERO,
        }),
        stop_deadline: Duration::from_millis(500),
        keep_raw: false,
        in_order: true,
    };
    let dead = dir.path().join("dead.jsonl");
    let h = start(
        "s",
        sink.clone(),
        opts,
        &dir.path().join("spool"),
        DeadLetters::new(&dead),
        stop,
    )
    .unwrap();
    for n in 0..40 {
        assert!(h.spool.offer(ev(n)));
    }
    let stats = h.spool.stats().clone();
    drop(h.spool);
    h.task.await.unwrap();
    let want: Vec<String> = (0..40).map(|n| format!("t/{n}")).collect();
    assert_eq!(
        *sink.started.lock().unwrap(),
        want,
        "handed over in spool order"
    );
    assert_eq!(SinkStats::get(&stats.delivered), 40);
    let most = sink
        .most_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        most > 1,
        "acknowledgements were awaited apart ({most} in flight at most)"
    );
    assert!(dead_lines(&dead).is_empty());
}
