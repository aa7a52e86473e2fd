//! The demo's webhook receiver: a real HTTP server (axum) on 127.0.0.1:0,
//! in the same process, that records every request and answers 200 with a
//! body every chat preset counts as accepted. The webhook sinks are pointed
//! at it, so the demo shows what a CMDB or a chat service would receive.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Accepted by Slack-style presets (any 2xx), DingTalk (`errcode` 0) and
/// Feishu (`code` 0) alike.
const ACCEPTED: &str = r#"{"ok":true,"errcode":0,"errmsg":"ok","code":0,"msg":"success"}"#;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// The running receiver; it stops when dropped.
pub struct Receiver {
    base_url: String,
    requests: mpsc::UnboundedReceiver<ReceivedRequest>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, requests) = mpsc::unbounded_channel();
        let app = Router::new().fallback(record).with_state(tx);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the demo's webhook receiver stopped");
            }
        });
        Ok(Receiver {
            base_url: format!("http://{addr}"),
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The requests recorded since the last call. A request is recorded
    /// before it is answered, so once a send has its answer, its request is here.
    pub fn take(&mut self) -> Vec<ReceivedRequest> {
        let mut got = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            got.push(r);
        }
        got
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(tx): State<mpsc::UnboundedSender<ReceivedRequest>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned());
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // The demo holds the receiving end until it exits; a send error only
    // means it is shutting down.
    let _ = tx.send(ReceivedRequest {
        method: method.to_string(),
        path,
        headers,
        body,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        ACCEPTED,
    )
}
