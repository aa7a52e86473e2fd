//! `auth: {oauth2: ...}`: the OAuth 2.0 client-credentials grant (RFC 6749
//! section 4.4) for receivers that take only short-lived bearer tokens.
//!
//! One token is cached per sink and shared by its concurrent requests. It is
//! renewed shortly before `expires_in` runs out (a fifth of its life, at
//! most a minute, early, so that a token never expires in flight), and once
//! when the receiver answers 401 to it: a revoked or rotated token costs one
//! renewal, and a receiver that refuses every token is rejected after that
//! one renewal, not asked again for ever. A token endpoint that is down or
//! answers 5xx/429 is a retry; one that refuses the credentials (400, 401,
//! 403: `invalid_client`, `unauthorized_client`) is a reject, whose reason
//! quotes only the RFC's `error` code, never the body. The token and the
//! client secret are sensitive header values, absent from `Debug`, logs and
//! reasons. This is transport (it does I/O); the request builder never sees
//! the token.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Url;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::config::OAuth2Auth;
use crate::sink::SendError;

/// At most this much of a token's life is cut off, to renew it early.
const MAX_MARGIN: Duration = Duration::from_secs(60);
/// The largest token response read.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A cached access token.
struct Token {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    /// When to fetch a new one; `None` when the server gave no `expires_in`.
    renew_at: Option<Instant>,
}

/// The sink's token endpoint and its cached token.
pub struct TokenSource {
    url: Url,
    form: String,
    cached: Mutex<Option<Token>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("url", &super::config::redact::redact_url(self.url.as_str()))
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

impl TokenSource {
    /// The token source of checked settings (`token_url` is a valid URL).
    pub fn new(cfg: &OAuth2Auth) -> Result<TokenSource, String> {
        let url = Url::parse(cfg.token_url.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
        Ok(TokenSource {
            url,
            form: form_body(cfg),
            cached: Mutex::new(None),
        })
    }

    /// `Bearer <token>`: the cached one while it is fresh, else a new one.
    pub async fn header(
        &self,
        client: &reqwest::Client,
        now: Instant,
    ) -> Result<HeaderValue, SendError> {
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref() {
            if t.renew_at.is_none_or(|at| now < at) {
                return Ok(t.header.clone());
            }
        }
        let token = self.fetch(client, now).await?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }

    /// The receiver refused `used` (401): forget it, unless another request
    /// already renewed it.
    pub async fn forget(&self, used: &HeaderValue) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|t| t.header == *used) {
            *cached = None;
        }
    }

    async fn fetch(&self, client: &reqwest::Client, now: Instant) -> Result<Token, SendError> {
        let host = self.url.host_str().unwrap_or("?").to_owned();
        let what = format!("oauth2 token endpoint {host}");
        let response = client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(self.form.clone())
            .send()
            .await
            .map_err(|e| SendError::retry(format!("{what}: {}", without_url(&e))))?;
        let status = response.status();
        let body = crate::http_body::read_bounded(response, MAX_TOKEN_RESPONSE).await;
        let code = status.as_u16();
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorResponse>(&body.bytes)
                .map(|e| format!(" ({})", safe_code(&e.error)))
                .unwrap_or_default();
            let reason = format!("{what}: HTTP {status}{error}");
            return Err(if code == 429 || code == 408 || status.is_server_error() {
                SendError::Retry {
                    reason,
                    status: Some(code),
                    retry_after: None,
                }
            } else {
                SendError::Reject {
                    reason,
                    status: Some(code),
                }
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body.bytes).map_err(|_| {
            SendError::retry(format!("{what}: HTTP {status} without an access_token"))
        })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {}", parsed.access_token))
            .map_err(|_| {
                SendError::reject(format!("{what}: the token is not valid in a header"))
            })?;
        header.set_sensitive(true);
        Ok(Token {
            header,
            renew_at: parsed.expires_in.map(|s| renew_at(now, s)),
        })
    }
}

/// When a token that lives `expires_in` seconds from `now` is renewed: a
/// fifth of its life early, at most [`MAX_MARGIN`].
pub fn renew_at(now: Instant, expires_in: f64) -> Instant {
    let life = Duration::try_from_secs_f64(expires_in.max(0.0)).unwrap_or(Duration::ZERO);
    now + life - (life / 5).min(MAX_MARGIN)
}

/// `grant_type=client_credentials&client_id=..&client_secret=..[&scope=..][&audience=..]`.
fn form_body(cfg: &OAuth2Auth) -> String {
    // Url's query writer is application/x-www-form-urlencoded.
    let mut u = Url::parse("http://form.invalid/").expect("a constant URL");
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("grant_type", "client_credentials");
        q.append_pair("client_id", &cfg.client_id);
        q.append_pair("client_secret", &cfg.client_secret);
        if let Some(s) = &cfg.scope {
            q.append_pair("scope", s);
        }
        if let Some(a) = &cfg.audience {
            q.append_pair("audience", a);
        }
    }
    u.query().unwrap_or_default().to_owned()
}

/// An RFC 6749 error code is `[\x20-\x21\x23-\x5B\x5D-\x7E]+`; anything else
/// from the server is not quoted.
fn safe_code(s: &str) -> &str {
    let ok = !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        s
    } else {
        "?"
    }
}

/// A request error without its URL (which may hold a query token).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = strip_url(&e.to_string(), e.url());
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&strip_url(&inner.to_string(), e.url()));
        source = inner.source();
    }
    s
}

/// `text` with `url` (which may carry a token) replaced by its host.
fn strip_url(text: &str, url: Option<&Url>) -> String {
    match url {
        Some(u) => text.replace(u.as_str(), u.host_str().unwrap_or("?")),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OAuth2Auth {
        OAuth2Auth {
            token_url: "https://login.example/token".into(),
            client_id: "saltbridge".into(),
            client_secret: "s3cr&t=".into(),
            scope: Some("api://hooks/.default".into()),
            audience: None,
        }
    }

    #[test]
    fn the_form_is_urlencoded() {
        assert_eq!(
            form_body(&cfg()),
            "grant_type=client_credentials&client_id=saltbridge&client_secret=s3cr%26t%3D\
             &scope=api%3A%2F%2Fhooks%2F.default"
        );
    }

    #[test]
    fn tokens_are_renewed_early() {
        let now = Instant::now();
        assert_eq!(renew_at(now, 3600.0), now + Duration::from_secs(3540));
        assert_eq!(renew_at(now, 100.0), now + Duration::from_secs(80));
        assert_eq!(renew_at(now, -5.0), now);
    }

    #[test]
    fn debug_shows_no_secret() {
        let t = TokenSource::new(&cfg()).unwrap();
        let d = format!("{t:?}");
        assert!(!d.contains("s3cr") && !d.contains("/token"), "{d}");
        assert_eq!(safe_code("invalid_client"), "invalid_client");
        assert_eq!(safe_code("bad\nthing"), "?");
    }
}
