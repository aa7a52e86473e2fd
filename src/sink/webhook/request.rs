//! The webhook sink's pure request builder: from a batch of events and the
//! time of the attempt to one plain [`Request`] (method, URL, headers, body
//! bytes), with nothing sent and no I/O, so every byte a receiver sees can be
//! checked in a unit test.
//!
//! [`RequestBuilder::new`] compiles the sink's templates and checks its
//! static parts once; [`RequestBuilder::build`] renders them for one attempt:
//! the body (a chat preset, the `body` template or the default JSON, one
//! array when batching), the headers (`X-Saltbridge-Key`/`-Tag` cut to
//! `max_header_bytes`, templated headers, `auth`), and the signatures that
//! depend on the time of the attempt (saltbridge's HMAC over the body,
//! DingTalk's on the URL, Feishu's in the body). The transport in `mod.rs`
//! only sends what this builds. This file imports only its siblings
//! (`config`, `template`, `presets`, `sign`), never the transport.

use std::time::SystemTime;

use base64::Engine as _;
use minijinja::Environment;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Url};

use super::config::{Auth, Preset, WebhookConfig};
use super::template::{self, Text};
use super::{presets, sign};
use crate::event::trace::trace_context;
use crate::outgoing::Outgoing;
use crate::sink::cloudevents::{CloudEventsConfig, Format};
use crate::sink::{SendError, SinkConfigError};

/// Carries the event's idempotency key (a batch: its first event's).
pub const KEY_HEADER: &str = "x-saltbridge-key";
/// Carries the event's tag (a batch: its first event's).
pub const TAG_HEADER: &str = "x-saltbridge-tag";
/// The id of the master that published the (first) event.
pub const MASTER_HEADER: &str = "x-saltbridge-master";
/// The syndic that relayed the (first) event to this master of masters, if any.
pub const SYNDIC_HEADER: &str = "x-saltbridge-syndic";
/// On batched requests: how many events the body holds.
pub const BATCH_SIZE_HEADER: &str = "x-saltbridge-batch-size";

/// One HTTP request, ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A sink's compiled templates and auth, ready to build requests.
pub struct RequestBuilder {
    env: Environment<'static>,
    url: Text,
    method: Option<Text>,
    headers: Vec<(HeaderName, Text)>,
    body: Option<Text>,
    /// `Authorization` for bearer and basic auth.
    authorization: Option<HeaderValue>,
    /// Signature and timestamp header names, and the secret, for hmac auth.
    hmac: Option<(HeaderName, HeaderName, String)>,
    preset: Option<Preset>,
    /// The DingTalk or Feishu robot's signing secret.
    secret: Option<String>,
    batched: bool,
    max_header_bytes: usize,
    /// `format: cloudevents`: its mode and source.
    cloudevents: Option<CloudEventsConfig>,
    /// Some text is a template, so each build needs the event's context.
    needs_context: bool,
}

fn template_error(sink: &str, field: &str, e: &minijinja::Error) -> SinkConfigError {
    SinkConfigError::new(sink, field, format!("bad template: {e}"))
}

/// An `http` or `https` URL with a host.
pub fn check_url(s: &str) -> Result<Url, String> {
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

impl RequestBuilder {
    /// Compiles the templates of sink `name` and checks what is static
    /// (URL, method, header names and values, auth). Errors name the field.
    pub fn new(name: &str, config: &WebhookConfig) -> Result<RequestBuilder, SinkConfigError> {
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
        let headers = compile_headers(name, config, &mut env)?;
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
        let (authorization, hmac) = compile_auth(name, config.auth.as_ref())?;
        Ok(RequestBuilder {
            env,
            url,
            method,
            headers,
            body,
            authorization,
            hmac,
            preset: config.preset,
            secret: config.secret.clone(),
            batched: config.batch.is_some(),
            max_header_bytes: config.max_header_bytes,
            cloudevents: (config.format == Format::Cloudevents)
                .then(|| config.cloudevents.clone().unwrap_or_default()),
            needs_context,
        })
    }

    /// The request for `batch` (one event, or several when batching), as
    /// sent at `now`. Anything that cannot be rendered rejects the batch.
    pub fn build(&self, batch: &[Outgoing], now: SystemTime) -> Result<Request, SendError> {
        let Some(first) = batch.first() else {
            return Err(SendError::reject("nothing to send"));
        };
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
        if let (Some(Preset::Dingtalk), Some(secret)) = (self.preset, &self.secret) {
            let ts = sign::unix_millis(now);
            let signature =
                sign::dingtalk_sign(secret, ts).map_err(|_| SendError::reject("cannot sign"))?;
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &signature);
        }
        let headers = self.headers(batch, &ctx, &body, now)?;
        Ok(Request {
            method,
            url,
            headers,
            body,
        })
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
        if let Some(preset) = self.preset {
            return self.preset_body(preset, first, now);
        }
        if let Some(ce) = &self.cloudevents {
            return Ok(cloudevents::body(ce, batch, self.batched));
        }
        let mut out = Vec::new();
        match (&self.body, self.batched) {
            (Some(t), false) => {
                out = template::render(&self.env, t, ctx)
                    .map_err(SendError::reject)?
                    .into_owned()
                    .into_bytes();
            }
            (Some(t), true) => self.batch_template_body(t, batch, ctx, &mut out)?,
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

    /// A chat preset's message, signed in the body for Feishu.
    fn preset_body(
        &self,
        preset: Preset,
        first: &Outgoing,
        now: SystemTime,
    ) -> Result<Vec<u8>, SendError> {
        let mut v = presets::render(preset, first);
        if let (Preset::Feishu, Some(secret), Some(obj)) = (preset, &self.secret, v.as_object_mut())
        {
            let ts = sign::unix_seconds(now);
            let signature =
                sign::feishu_sign(secret, ts).map_err(|_| SendError::reject("cannot sign"))?;
            obj.insert("timestamp".into(), ts.to_string().into());
            obj.insert("sign".into(), signature.into());
        }
        serde_json::to_vec(&v).map_err(|e| SendError::reject(format!("preset body: {e}")))
    }

    /// A JSON array of the `body` template rendered once per event; each
    /// must be JSON.
    fn batch_template_body(
        &self,
        t: &Text,
        batch: &[Outgoing],
        ctx: &minijinja::Value,
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
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
                    i,
                    o.key()
                )));
            }
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(text.as_bytes());
        }
        out.push(b']');
        Ok(())
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
        let max = self.max_header_bytes;
        if let Some(first) = batch.first() {
            h.insert(
                HeaderName::from_static(KEY_HEADER),
                lossy_header_value(first.key(), max),
            );
            h.insert(
                HeaderName::from_static(TAG_HEADER),
                lossy_header_value(first.event.tag(), max),
            );
            h.insert(
                HeaderName::from_static(MASTER_HEADER),
                lossy_header_value(first.master(), max),
            );
            if let Some(syndic) = first.event.provenance().syndic.as_deref() {
                h.insert(
                    HeaderName::from_static(SYNDIC_HEADER),
                    lossy_header_value(syndic, max),
                );
            }
        }
        if self.batched {
            h.insert(
                HeaderName::from_static(BATCH_SIZE_HEADER),
                HeaderValue::from(batch.len()),
            );
        }
        if let Some(first) = batch.first() {
            trace_headers(&mut h, first);
            if let Some(ce) = &self.cloudevents {
                cloudevents::headers(&mut h, ce, first, self.batched, max);
            }
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
        if let Some((sig_name, ts_name, secret)) = &self.hmac {
            let ts = sign::unix_seconds(now);
            let sig = sign::saltbridge_signature(secret, ts, body)
                .map_err(|_| SendError::reject("cannot sign"))?;
            h.insert(ts_name.clone(), HeaderValue::from(ts));
            h.insert(sig_name.clone(), lossy_header_value(&sig, usize::MAX));
        }
        Ok(h)
    }
}

/// W3C `traceparent` and `tracestate` from the event's data, when valid.
fn trace_headers(h: &mut HeaderMap, first: &Outgoing) {
    let Some(t) = trace_context(first.event.data_json()) else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&t.traceparent) {
        h.insert(HeaderName::from_static("traceparent"), v);
    }
    if let Some(Ok(v)) = t.tracestate.as_deref().map(HeaderValue::from_str) {
        h.insert(HeaderName::from_static("tracestate"), v);
    }
}

/// The `headers:` templates, compiled; static values checked.
fn compile_headers(
    name: &str,
    config: &WebhookConfig,
    env: &mut Environment<'static>,
) -> Result<Vec<(HeaderName, Text)>, SinkConfigError> {
    let mut headers = Vec::new();
    for (key, value) in &config.headers {
        let field = format!("headers.{key}");
        let header = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| SinkConfigError::new(name, &field, "not a valid header name"))?;
        let t =
            template::compile(env, &field, value).map_err(|e| template_error(name, &field, &e))?;
        if let Text::Static(s) = &t {
            HeaderValue::from_str(s.trim())
                .map_err(|_| SinkConfigError::new(name, &field, "not a valid header value"))?;
        }
        headers.push((header, t));
    }
    Ok(headers)
}

type HmacHeaders = (HeaderName, HeaderName, String);

/// `Authorization` for bearer and basic auth; header names and secret for hmac.
fn compile_auth(
    name: &str,
    auth: Option<&Auth>,
) -> Result<(Option<HeaderValue>, Option<HmacHeaders>), SinkConfigError> {
    match auth {
        // OAuth 2.0 tokens are fetched and added by the transport.
        None | Some(Auth::Oauth2(_)) => Ok((None, None)),
        Some(Auth::Bearer { token }) => {
            let mut v =
                HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                    SinkConfigError::new(name, "auth.bearer.token", "not valid in a header")
                })?;
            v.set_sensitive(true);
            Ok((Some(v), None))
        }
        Some(Auth::Basic { username, password }) => {
            let cred =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            let mut v = HeaderValue::from_str(&format!("Basic {cred}"))
                .map_err(|_| SinkConfigError::new(name, "auth.basic", "not valid in a header"))?;
            v.set_sensitive(true);
            Ok((Some(v), None))
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
            Ok((None, Some((sig, ts, h.secret.clone()))))
        }
    }
}

/// A header value for text from an event (a tag): control characters
/// and `%` percent-encoded, cut to at most `max` bytes (on a character
/// boundary, `...` marking the cut) so that no receiver refuses the request
/// for one long tag (HTTP 431).
pub fn lossy_header_value(s: &str, max: usize) -> HeaderValue {
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

mod cloudevents;
// The unit tests are in request/tests.rs.
#[cfg(test)]
mod tests;
