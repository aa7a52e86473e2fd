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
//! builders `template` (templates, default body), `presets` (chat messages)
//! and `sign` (HMAC); `classify` (what an answer means); here the transport.

pub mod classify;
pub mod config;
pub mod presets;
pub mod sign;
pub mod template;

use std::time::SystemTime;

use base64::Engine as _;
use minijinja::Environment;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};

pub use config::{Auth, BatchConfig, HmacAuth, Preset, WebhookConfig};
use template::Text;

use crate::outgoing::Outgoing;
use crate::sink::{SendError, SinkConfigError};

/// Carries the event's idempotency key (a batch: its first event's).
pub const KEY_HEADER: &str = "x-saltbridge-key";
/// Carries the event's tag (a batch: its first event's).
pub const TAG_HEADER: &str = "x-saltbridge-tag";
/// The id of the master that published the (first) event.
pub const MASTER_HEADER: &str = "x-saltbridge-master";
/// On batched requests: how many events the body holds.
pub const BATCH_SIZE_HEADER: &str = "x-saltbridge-batch-size";

/// A `type: webhook` sink, ready to send.
pub struct WebhookSink {
    name: String,
    config: WebhookConfig,
    client: reqwest::Client,
    env: Environment<'static>,
    url: Text,
    method: Option<Text>,
    headers: Vec<(HeaderName, Text)>,
    body: Option<Text>,
    /// `Authorization` for bearer and basic auth.
    authorization: Option<HeaderValue>,
    /// Signature and timestamp header names for hmac auth.
    hmac_headers: Option<(HeaderName, HeaderName)>,
    /// Some text is a template, so each send needs the event's context.
    needs_context: bool,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn template_error(sink: &str, field: &str, e: &minijinja::Error) -> SinkConfigError {
    SinkConfigError::new(sink, field, format!("bad template: {e}"))
}

fn check_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "http" | "https" => Err("the URL has no host".to_owned()),
        other => Err(format!("scheme `{other}` is not http or https")),
    }
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{}` is not an HTTP method", s.trim()))
}

impl WebhookSink {
    /// Parses and checks `value` (the sink's settings), compiles the templates
    /// and builds the HTTP client. Errors name the field.
    // Over 80 lines: each field of the settings checked and compiled in turn, each error naming its field.
    pub fn from_config(
        name: &str,
        value: &serde_json::Value,
    ) -> Result<WebhookSink, SinkConfigError> {
        let config = WebhookConfig::parse(name, value)?;
        let mut env = template::environment();

        let url = template::compile(&mut env, template::URL_TEMPLATE, &config.url)
            .map_err(|e| template_error(name, "url", &e))?;
        if let Text::Static(s) = &url {
            check_url(s).map_err(|m| SinkConfigError::new(name, "url", m))?;
        }
        let method = match &config.method {
            None => None,
            Some(m) => {
                let t = template::compile(&mut env, "method", m)
                    .map_err(|e| template_error(name, "method", &e))?;
                if let Text::Static(s) = &t {
                    parse_method(s).map_err(|m| SinkConfigError::new(name, "method", m))?;
                }
                Some(t)
            }
        };
        let mut headers = Vec::new();
        for (key, value) in &config.headers {
            let field = format!("headers.{key}");
            let header = HeaderName::from_bytes(key.as_bytes())
                .map_err(|_| SinkConfigError::new(name, &field, "not a valid header name"))?;
            let t = template::compile(&mut env, &field, value)
                .map_err(|e| template_error(name, &field, &e))?;
            if let Text::Static(s) = &t {
                HeaderValue::from_str(s.trim())
                    .map_err(|_| SinkConfigError::new(name, &field, "not a valid header value"))?;
            }
            headers.push((header, t));
        }
        let body = match &config.body {
            None => None,
            Some(b) => Some(
                template::compile(&mut env, "body", b)
                    .map_err(|e| template_error(name, "body", &e))?,
            ),
        };
        let mut names: Vec<&str> = vec!["url", "method", "body"];
        names.extend(headers.iter().filter_map(|(_, t)| match t {
            Text::Template(n) => Some(n.as_str()),
            Text::Static(_) => None,
        }));
        let needs_context = [Some(&url), method.as_ref(), body.as_ref()]
            .into_iter()
            .flatten()
            .chain(headers.iter().map(|(_, t)| t))
            .any(|t| matches!(t, Text::Template(_)));
        template::dry_run(&env, &names).map_err(|(field, e)| template_error(name, &field, &e))?;
        let (authorization, hmac_headers) = match &config.auth {
            None => (None, None),
            Some(Auth::Bearer { token }) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                        SinkConfigError::new(name, "auth.bearer.token", "not valid in a header")
                    })?;
                v.set_sensitive(true);
                (Some(v), None)
            }
            Some(Auth::Basic { username, password }) => {
                let cred = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                let mut v = HeaderValue::from_str(&format!("Basic {cred}")).map_err(|_| {
                    SinkConfigError::new(name, "auth.basic", "not valid in a header")
                })?;
                v.set_sensitive(true);
                (Some(v), None)
            }
            Some(Auth::Hmac(h)) => {
                let sig = HeaderName::from_bytes(h.header.as_bytes()).map_err(|_| {
                    SinkConfigError::new(name, "auth.hmac.header", "not a valid header name")
                })?;
                let ts = HeaderName::from_bytes(h.timestamp_header.as_bytes()).map_err(|_| {
                    SinkConfigError::new(
                        name,
                        "auth.hmac.timestamp_header",
                        "not a valid header name",
                    )
                })?;
                (None, Some((sig, ts)))
            }
        };
        let client = reqwest::Client::builder()
            .user_agent(concat!("saltbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                SinkConfigError::new(name, "", format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(WebhookSink {
            name: name.to_owned(),
            config,
            client,
            env,
            url,
            method,
            headers,
            body,
            authorization,
            hmac_headers,
            needs_context,
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
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let now = SystemTime::now();
        // Building the context converts the whole event data: skip it when
        // no text is a template.
        let ctx = if self.needs_context {
            first.template_context()
        } else {
            minijinja::Value::UNDEFINED
        };
        let url_text = template::render(&self.env, &self.url, &ctx).map_err(SendError::reject)?;
        let mut url = check_url(&url_text).map_err(|m| SendError::reject(format!("url: {m}")))?;
        let method = match &self.method {
            None => Method::POST,
            Some(t) => {
                let m = template::render(&self.env, t, &ctx).map_err(SendError::reject)?;
                parse_method(&m).map_err(|m| SendError::reject(format!("method: {m}")))?
            }
        };
        let body = self.body(batch, &ctx, now)?;
        if let (Some(Preset::Dingtalk), Some(secret)) = (self.config.preset, &self.config.secret) {
            let ts = sign::unix_millis(now);
            let signature =
                sign::dingtalk_sign(secret, ts).map_err(|_| SendError::reject("cannot sign"))?;
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &signature);
        }
        let headers = self.headers(batch, &ctx, &body, now)?;
        let host = host_of(&url);
        let response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(body)
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
            // holds the answer (DingTalk, Feishu).
            if status.is_success()
                && matches!(self.config.preset, Some(Preset::Dingtalk | Preset::Feishu))
            {
                return Err(classify::classify_error(&e, &host, self.config.timeout));
            }
        }
        let got = body.bytes;
        classify::classify(
            status,
            &resp_headers,
            &got,
            &host,
            self.config.preset,
            SystemTime::now(),
        )
    }

    /// The request body: preset, body template or the default JSON.
    fn body(
        &self,
        batch: &[Outgoing],
        ctx: &minijinja::Value,
        now: SystemTime,
    ) -> Result<Vec<u8>, SendError> {
        let Some(first) = batch.first() else {
            return Ok(Vec::new());
        };
        if let Some(preset) = self.config.preset {
            let mut v = presets::render(preset, first);
            if let (Preset::Feishu, Some(secret), Some(obj)) =
                (preset, &self.config.secret, v.as_object_mut())
            {
                let ts = sign::unix_seconds(now);
                let signature =
                    sign::feishu_sign(secret, ts).map_err(|_| SendError::reject("cannot sign"))?;
                obj.insert("timestamp".into(), ts.to_string().into());
                obj.insert("sign".into(), signature.into());
            }
            return serde_json::to_vec(&v)
                .map_err(|e| SendError::reject(format!("preset body: {e}")));
        }
        let batched = self.config.batch.is_some();
        let mut out = Vec::new();
        match (&self.body, batched) {
            (Some(t), false) => {
                out = template::render(&self.env, t, ctx)
                    .map_err(SendError::reject)?
                    .into_owned()
                    .into_bytes();
            }
            (Some(t), true) => {
                out.push(b'[');
                for (i, o) in batch.iter().enumerate() {
                    let own_ctx;
                    let c = if i == 0 {
                        ctx
                    } else {
                        own_ctx = o.template_context();
                        &own_ctx
                    };
                    let text = template::render(&self.env, t, c).map_err(SendError::reject)?;
                    let text = text.trim();
                    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                        return Err(SendError::reject(format!(
                            "template `body` must render JSON when batching; event {} ({}) gave: {e}",
                            i, o.key
                        )));
                    }
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(text.as_bytes());
                }
                out.push(b']');
            }
            (None, false) => template::write_default_event(&mut out, first),
            (None, true) => {
                out.push(b'[');
                for (i, o) in batch.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    template::write_default_event(&mut out, o);
                }
                out.push(b']');
            }
        }
        Ok(out)
    }

    fn headers(
        &self,
        batch: &[Outgoing],
        ctx: &minijinja::Value,
        body: &[u8],
        now: SystemTime,
    ) -> Result<HeaderMap, SendError> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let max = self.config.max_header_bytes;
        if let Some(first) = batch.first() {
            h.insert(
                HeaderName::from_static(KEY_HEADER),
                lossy_header_value(&first.key, max),
            );
            h.insert(
                HeaderName::from_static(TAG_HEADER),
                lossy_header_value(first.event.tag(), max),
            );
            h.insert(
                HeaderName::from_static(MASTER_HEADER),
                lossy_header_value(first.master(), max),
            );
        }
        if self.config.batch.is_some() {
            h.insert(
                HeaderName::from_static(BATCH_SIZE_HEADER),
                HeaderValue::from(batch.len()),
            );
        }
        for (name, t) in &self.headers {
            let v = template::render(&self.env, t, ctx).map_err(SendError::reject)?;
            if v.trim().len() > max {
                return Err(SendError::reject(format!(
                    "header {name}: the template rendered {} bytes, more than max_header_bytes ({max})",
                    v.trim().len()
                )));
            }
            let v = HeaderValue::from_str(v.trim()).map_err(|_| {
                SendError::reject(format!(
                    "header {name}: the template rendered an invalid header value"
                ))
            })?;
            h.insert(name.clone(), v);
        }
        if let Some(v) = &self.authorization {
            h.insert(AUTHORIZATION, v.clone());
        }
        if let (Some((sig_name, ts_name)), Some(Auth::Hmac(a))) =
            (&self.hmac_headers, &self.config.auth)
        {
            let ts = sign::unix_seconds(now);
            let sig = sign::saltbridge_signature(&a.secret, ts, body)
                .map_err(|_| SendError::reject("cannot sign"))?;
            h.insert(ts_name.clone(), HeaderValue::from(ts));
            h.insert(sig_name.clone(), lossy_header_value(&sig, usize::MAX));
        }
        Ok(h)
    }
}

/// `host[:port]` of a URL, for reasons and logs.
fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// A header value for text from an event (a tag): control characters
/// and `%` percent-encoded, cut to at most `max` bytes (on a character
/// boundary, `...` marking the cut) so that no receiver refuses the request
/// for one long tag (HTTP 431).
fn lossy_header_value(s: &str, max: usize) -> HeaderValue {
    let mut clean = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if (c.is_ascii_control() && c != '\t') || c == '%' {
            clean.push_str(&format!("%{:02X}", c as u32));
        } else {
            clean.push(c);
        }
    }
    if clean.len() > max {
        let mut end = max.saturating_sub(3);
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str("...");
    }
    HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_survive_control_characters() {
        assert_eq!(
            lossy_header_value("salt/job/1/ret/a", 1024),
            "salt/job/1/ret/a"
        );
        assert_eq!(lossy_header_value("my/tag\n%x", 1024), "my/tag%0A%25x");
        assert_eq!(
            lossy_header_value("ünïcode/tag", 1024).as_bytes(),
            "ünïcode/tag".as_bytes()
        );
    }

    #[test]
    fn header_values_from_events_are_bounded() {
        let long = "a/".repeat(40_000);
        let v = lossy_header_value(&long, 1024);
        assert_eq!(v.len(), 1024);
        assert!(v.to_str().unwrap().ends_with("..."));
        let v = lossy_header_value(&"ü".repeat(1000), 100);
        assert!(v.len() <= 100 && v.as_bytes().ends_with(b"..."));
    }

    #[test]
    fn urls_are_shown_without_path_or_query() {
        assert_eq!(
            config::redact_url("https://hooks.slack.com/services/T0/B0/XYZ"),
            "https://hooks.slack.com/..."
        );
        assert_eq!(
            config::redact_url("http://user:pw@127.0.0.1:8080/x?access_token=t"),
            "http://127.0.0.1:8080/..."
        );
        assert_eq!(config::redact_url("{{ data.url }}"), "<url>");
    }
}
