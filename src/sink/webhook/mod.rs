//! The webhook sink: one HTTP request per event (or per batch of events),
//! built from templates or a chat preset, signed if asked, and its answer
//! classified for the delivery layer.
//!
//! A sink is built once per routes file: [`WebhookSink::from_config`] parses
//! and checks the settings, compiles every template and builds one HTTP
//! client (rustls, HTTP/1.1 and HTTP/2, connection pool, no redirects, a
//! timeout per request). [`WebhookSink::send`] then only renders, sends and
//! classifies; retries, backoff, concurrency and batching belong to
//! `delivery` (its worker gets `concurrency` and `batch` through `Sink`).
//! The user documentation is `docs/sinks-webhook.md`.
//!
//! Files, as for every sink: `config` (settings and checks); the pure request
//! builder `request` (with `template`: templates and the default body,
//! `presets`: chat messages, `sign`: HMAC), which turns a batch into a plain
//! [`Request`]; `classify` (what an answer means); here only the transport,
//! which sends what `request` built and hands the answer to `classify`.

pub mod classify;
pub mod config;
pub mod oauth2;
pub mod presets;
pub mod request;
pub mod sign;
pub mod template;
pub mod tls;

use std::time::{Instant, SystemTime};

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Url;

pub use config::{Auth, BatchConfig, HmacAuth, OAuth2Auth, Preset, TlsConfig, WebhookConfig};
use oauth2::TokenSource;
pub use request::{
    Request, RequestBuilder, BATCH_SIZE_HEADER, KEY_HEADER, MASTER_HEADER, SYNDIC_HEADER,
    TAG_HEADER,
};

use crate::outgoing::Outgoing;
use crate::sink::{SendError, SinkConfigError};

/// A `type: webhook` sink, ready to send.
pub struct WebhookSink {
    name: String,
    config: WebhookConfig,
    client: reqwest::Client,
    // Boxed: they would make `Sink::Webhook` many times larger than the other sinks.
    requests: Box<RequestBuilder>,
    /// `auth: {oauth2: ...}`: the token endpoint and the cached token.
    tokens: Option<Box<TokenSource>>,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Parses and checks `value` (the sink's settings), compiles the templates
    /// and builds the HTTP client. Errors name the field.
    pub fn from_config(
        name: &str,
        value: &serde_json::Value,
    ) -> Result<WebhookSink, SinkConfigError> {
        let config = WebhookConfig::parse(name, value)?;
        let requests = Box::new(RequestBuilder::new(name, &config)?);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("saltbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(t) = &config.tls {
            builder = tls::configure(name, t, builder)?;
        }
        let client = builder.build().map_err(|e| {
            SinkConfigError::new(name, "", format!("cannot build the HTTP client: {e}"))
        })?;
        let tokens = match &config.auth {
            Some(Auth::Oauth2(o)) => {
                Some(Box::new(TokenSource::new(o).map_err(|m| {
                    SinkConfigError::new(name, "auth.oauth2.token_url", m)
                })?))
            }
            _ => None,
        };
        Ok(WebhookSink {
            name: name.to_owned(),
            config,
            client,
            requests,
            tokens,
        })
    }

    /// Checks settings as [`from_config`](Self::from_config) does.
    pub fn check_config(name: &str, value: &serde_json::Value) -> Result<(), SinkConfigError> {
        Self::from_config(name, value).map(|_| ())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    /// How many requests the delivery layer may have in flight at once.
    pub fn concurrency(&self) -> usize {
        self.config.concurrency
    }

    /// Sends one request for `batch` and classifies the outcome.
    ///
    /// With batching on, the whole slice goes as one JSON array. With it
    /// off, each event goes in its own request, one after the other, and the
    /// first failure ends the call (the delivery layer should pass one event
    /// at a time). See [`classify`] for what counts as delivered, retry and
    /// reject; a template that cannot be rendered rejects the batch.
    pub async fn send(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        if self.config.batch.is_none() && batch.len() > 1 {
            for one in batch {
                self.send_request(std::slice::from_ref(one)).await?;
            }
            return Ok(());
        }
        self.send_request(batch).await
    }

    async fn send_request(&self, batch: &[Outgoing]) -> Result<(), SendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let request = self.requests.build(batch, SystemTime::now())?;
        match &self.tokens {
            None => self.transmit(request).await,
            Some(tokens) => self.transmit_with_token(tokens, request).await,
        }
    }

    /// Sends with the OAuth 2.0 token; on a 401, renews the token once and
    /// sends again.
    async fn transmit_with_token(
        &self,
        tokens: &TokenSource,
        request: Request,
    ) -> Result<(), SendError> {
        let token = tokens.header(&self.client, Instant::now()).await?;
        let outcome = self
            .transmit(with_token(request.clone(), token.clone()))
            .await;
        if !matches!(
            outcome,
            Err(SendError::Reject {
                status: Some(401),
                ..
            })
        ) {
            return outcome;
        }
        tokens.forget(&token).await;
        let renewed = tokens.header(&self.client, Instant::now()).await?;
        self.transmit(with_token(request, renewed)).await
    }

    /// Sends one built request and classifies the answer.
    async fn transmit(&self, request: Request) -> Result<(), SendError> {
        let host = host_of(&request.url);
        let response = self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return Err(classify::classify_error(&e, &host, self.config.timeout)),
        };
        let status = response.status();
        let resp_headers = response.headers().clone();
        let body = crate::http_body::read_bounded(response, classify::MAX_BODY).await;
        if let Some(e) = body.error {
            // A 2xx whose body broke off counts as delivered, unless the body
            // holds the answer (DingTalk, Feishu, a Teams connector).
            if status.is_success()
                && matches!(
                    self.config.preset,
                    Some(Preset::Dingtalk | Preset::Feishu | Preset::TeamsConnector)
                )
            {
                return Err(classify::classify_error(&e, &host, self.config.timeout));
            }
        }
        classify::classify(
            status,
            &resp_headers,
            &body.bytes,
            &host,
            self.config.preset,
            SystemTime::now(),
        )
    }
}

/// `request` with `Authorization: <token>`.
fn with_token(mut request: Request, token: HeaderValue) -> Request {
    request.headers.insert(AUTHORIZATION, token);
    request
}

/// `host[:port]` of a URL, for reasons and logs.
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_path_or_query() {
        assert_eq!(
            config::redact::redact_url("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/..."
        );
        assert_eq!(
            config::redact::redact_url("http://user:pw@127.0.0.1:8080/x?access_token=t"),
            "http://127.0.0.1:8080/..."
        );
        assert_eq!(config::redact::redact_url("{{ data.url }}"), "<url>");
        assert_eq!(
            host_of(&Url::parse("https://h.example:8443/p?q").unwrap()),
            "h.example:8443"
        );
    }
}
