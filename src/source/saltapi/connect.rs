//! Opening salt-api's `/events`: the HTTP client (TLS verified, a CA file
//! when set) and the request, with one more login when the token is
//! refused. Each outcome is sorted into what retrying can fix and what it
//! cannot (`Failure`).

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::auth::{error_text, Auth, Failure};

/// How long a connect may take (TCP, TLS and the response headers, which
/// salt-api sends at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client: TLS verified (against `ca_file` alone when it is set),
/// no redirects (rest_tornado redirects an unauthenticated request to
/// `/login`; that is a refusal here), TCP keepalive for a silent stream.
pub(super) fn client(ca_file: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("saltbridge/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("saltapi.ca_file: cannot read {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                format!(
                    "saltapi.ca_file: {} holds no PEM certificate",
                    path.display()
                )
            })?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("saltapi: cannot build the HTTP client: {e}"))
}

/// `GET /events` with a token; logs in again once when it is refused.
pub(super) async fn open(
    client: &reqwest::Client,
    base: &str,
    auth: &mut Auth,
) -> Result<reqwest::Response, Failure> {
    let url = format!("{base}/events");
    for attempt in 0..2 {
        let token = auth.header(client, Instant::now()).await?;
        let get = client
            .get(&url)
            .header("X-Auth-Token", token)
            .header(ACCEPT, "text/event-stream")
            .send();
        let response = tokio::time::timeout(CONNECT_TIMEOUT, get)
            .await
            .map_err(|_| Failure::Retry(format!("GET {url}: no answer in {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| Failure::Retry(format!("GET {url}: {}", error_text(&e))))?;
        let status = response.status();
        let code = status.as_u16();
        if status.is_success() {
            let is_sse = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !is_sse {
                return Err(Failure::Fatal(format!(
                    "GET {url}: HTTP {status} is not an event stream: is this salt-api?"
                )));
            }
            return Ok(response);
        }
        // 401: the token expired or salt-api restarted; 302: rest_tornado's way.
        if code == 401 || status.is_redirection() {
            if auth.can_login() && attempt == 0 {
                tracing::info!(url = %url, "salt-api refused the token (HTTP {code}); logging in again");
                auth.forget();
                continue;
            }
            return Err(auth.refused(code));
        }
        if status.is_server_error() || code == 429 || code == 408 {
            return Err(Failure::Retry(format!("GET {url}: HTTP {status}")));
        }
        return Err(Failure::Fatal(format!(
            "GET {url}: HTTP {status}: is this salt-api (rest_cherrypy or rest_tornado)?"
        )));
    }
    Err(auth.refused(401))
}
