//! The settings of a `type: webhook` sink, as written under `sinks.<name>` in
//! routes.yaml, and the checks that can be made before any event arrives.
//!
//! Parsing goes through `serde_path_to_error` so that every problem names the
//! field it is about (`auth.hmac.secret`, `batch.max_events`); the checks that
//! serde cannot express (a preset together with a body, a secret without a
//! signing preset, a zero concurrency) are made in [`WebhookConfig::check`]
//! and reported the same way. Secrets never appear in `Debug` output.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sink::cloudevents::{CloudEventsConfig, Format, Mode};
use crate::sink::SinkConfigError;

pub(crate) mod redact;

/// Default signature header of `auth: {hmac: ...}`.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Saltbridge-Signature";
/// Default timestamp header of `auth: {hmac: ...}`.
pub const DEFAULT_TIMESTAMP_HEADER: &str = "X-Saltbridge-Timestamp";

/// Settings of a `type: webhook` sink, as written under `sinks.<name>` in routes.yaml.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Always `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to send: a template over the event (minijinja).
    pub url: String,
    /// The HTTP method, default `POST`; a template is fine.
    #[serde(default)]
    pub method: Option<String>,
    /// Extra request headers; the values are templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body as a template. Without it (and without `preset`) the
    /// body is the event as JSON (see `docs/sinks-webhook.md`).
    #[serde(default)]
    pub body: Option<String>,
    /// A chat message format: slack, teams, teams_connector, dingtalk or
    /// feishu (alias lark).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// How the request proves where it comes from.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// The signing secret of a DingTalk or Feishu robot (`SEC...` on DingTalk).
    #[serde(default)]
    pub secret: Option<String>,
    /// Per-request timeout, connection and response body included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// How many requests the delivery layer may have in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Send several events per request, as one JSON array.
    #[serde(default)]
    pub batch: Option<BatchConfig>,
    /// The longest header value built from an event (`X-Saltbridge-Tag`,
    /// `X-Saltbridge-Key`, a header template), in bytes: longer tags are
    /// cut, a longer rendered template rejects only that event.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// `json` (the default body) or `cloudevents`.
    #[serde(default)]
    pub format: Format,
    /// CloudEvents mode and source, with `format: cloudevents`.
    #[serde(default)]
    pub cloudevents: Option<CloudEventsConfig>,
    /// The CA to trust and the client certificate to present (mutual TLS).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `tls:` files, PEM; see "TLS and mutual TLS" in `docs/sinks-webhook.md`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Trust only these CAs instead of the built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client certificate (chain) to present.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// The chat formats a webhook sink can produce by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Slack incoming webhook: `text` + `blocks`.
    Slack,
    /// Microsoft Teams through a Workflows webhook ("Post to a channel when
    /// a webhook request is received"): an Adaptive Card message.
    Teams,
    /// A legacy Office 365 connector incoming webhook: a MessageCard.
    TeamsConnector,
    /// DingTalk custom robot: a markdown message, signed when `secret` is set.
    Dingtalk,
    /// Feishu / Lark custom bot: an interactive card, signed when `secret` is set.
    #[serde(alias = "lark")]
    Feishu,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Slack => "slack",
            Preset::Teams => "teams",
            Preset::TeamsConnector => "teams_connector",
            Preset::Dingtalk => "dingtalk",
            Preset::Feishu => "feishu",
        }
    }
}

/// `auth:` one of `bearer: {token}`, `basic: {username, password}`,
/// `hmac: {secret, ...}`, `oauth2: {token_url, client_id, client_secret, ...}`.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// An HMAC-SHA256 signature of the timestamp and the body.
    Hmac(HmacAuth),
    /// `Authorization: Bearer <token>` from an OAuth 2.0 client-credentials grant.
    Oauth2(OAuth2Auth),
}

/// `auth: {oauth2: {...}}`: see "OAuth 2.0" in `docs/sinks-webhook.md`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Auth {
    /// The token endpoint, `https://...`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Sent as `scope` when set (Entra ID: `api://<app>/.default`).
    #[serde(default)]
    pub scope: Option<String>,
    /// Sent as `audience` when set (Auth0, Okta).
    #[serde(default)]
    pub audience: Option<String>,
}

/// `auth: {hmac: {...}}`: see "Signed requests" in `docs/sinks-webhook.md`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacAuth {
    pub secret: String,
    /// Carries `sha256=<hex>`.
    #[serde(default = "default_signature_header")]
    pub header: String,
    /// Carries the Unix time in seconds that the signature covers.
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
}

/// `batch:` limits for one request; the delivery layer fills batches within them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// At most this many events per request.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// At most about this many bytes of body per request (a single larger event goes alone).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// How long the first event of a batch may wait for more.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            max_wait: default_max_wait(),
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_concurrency() -> usize {
    4
}
fn default_signature_header() -> String {
    DEFAULT_SIGNATURE_HEADER.to_owned()
}
fn default_timestamp_header() -> String {
    DEFAULT_TIMESTAMP_HEADER.to_owned()
}
/// 1 KiB: far below the 8 KiB per header line that nginx, Apache and
/// Node accept, which leaves room for the other headers.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1024;
fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn default_max_events() -> usize {
    100
}
fn default_max_bytes() -> usize {
    1024 * 1024
}
fn default_max_wait() -> Duration {
    Duration::from_secs(1)
}

/// Upper bound on `concurrency`, so a typo cannot open thousands of sockets.
pub const MAX_CONCURRENCY: usize = 1024;

impl WebhookConfig {
    /// Parses the sink's settings; errors name the field.
    pub fn parse(name: &str, value: &serde_json::Value) -> Result<WebhookConfig, SinkConfigError> {
        let cfg: WebhookConfig = crate::sink::parse_settings(name, value)?;
        cfg.check(name)?;
        Ok(cfg)
    }

    /// The checks serde cannot express. Templates are compiled elsewhere.
    // Over 80 lines: one check per field, in the order docs/sinks-webhook.md lists them.
    fn check(&self, name: &str) -> Result<(), SinkConfigError> {
        if self.kind != "webhook" {
            return Err(SinkConfigError::new(
                name,
                "type",
                format!("expected `webhook`, found `{}`", self.kind),
            ));
        }
        if self.url.trim().is_empty() {
            return Err(SinkConfigError::new(name, "url", "must not be empty"));
        }
        if self.preset.is_some() && self.body.is_some() {
            return Err(SinkConfigError::new(
                name,
                "body",
                "cannot be combined with `preset`: the preset writes the body",
            ));
        }
        if self.preset.is_some() && self.batch.is_some() {
            return Err(SinkConfigError::new(
                name,
                "batch",
                "cannot be combined with `preset`: chat webhooks take one message per request",
            ));
        }
        if let Some(secret) = &self.secret {
            if !matches!(self.preset, Some(Preset::Dingtalk | Preset::Feishu)) {
                return Err(SinkConfigError::new(
                    name,
                    "secret",
                    "is only used by the dingtalk and feishu presets; to sign requests to other \
                     receivers use `auth: {hmac: {secret: ...}}`",
                ));
            }
            if secret.is_empty() {
                return Err(SinkConfigError::new(name, "secret", "must not be empty"));
            }
        }
        if self.timeout.is_zero() {
            return Err(SinkConfigError::new(name, "timeout", "must be more than 0"));
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(SinkConfigError::new(
                name,
                "concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        if self.max_header_bytes < 64 {
            return Err(SinkConfigError::new(
                name,
                "max_header_bytes",
                "must be at least 64",
            ));
        }
        if let Some(b) = &self.batch {
            if b.max_events == 0 {
                return Err(SinkConfigError::new(
                    name,
                    "batch.max_events",
                    "must be at least 1",
                ));
            }
            if b.max_bytes == 0 {
                return Err(SinkConfigError::new(
                    name,
                    "batch.max_bytes",
                    "must be at least 1",
                ));
            }
        }
        self.check_cloudevents(name)?;
        match &self.auth {
            Some(Auth::Bearer { token }) if token.is_empty() => {
                return Err(SinkConfigError::new(
                    name,
                    "auth.bearer.token",
                    "must not be empty",
                ));
            }
            Some(Auth::Basic { username, .. }) if username.contains(':') => {
                return Err(SinkConfigError::new(
                    name,
                    "auth.basic.username",
                    "must not contain `:` (RFC 7617)",
                ));
            }
            Some(Auth::Hmac(h)) => {
                if h.secret.is_empty() {
                    return Err(SinkConfigError::new(
                        name,
                        "auth.hmac.secret",
                        "must not be empty",
                    ));
                }
                if h.header.eq_ignore_ascii_case(&h.timestamp_header) {
                    return Err(SinkConfigError::new(
                        name,
                        "auth.hmac.timestamp_header",
                        "must differ from `header`",
                    ));
                }
            }
            Some(Auth::Oauth2(o)) => check_oauth2(name, o)?,
            _ => {}
        }
        for header in self.headers.keys() {
            let lower = header.to_ascii_lowercase();
            let field = format!("headers.{header}");
            if matches!(
                lower.as_str(),
                "content-length" | "transfer-encoding" | "host" | "connection"
            ) {
                return Err(SinkConfigError::new(
                    name,
                    &field,
                    "is set by the HTTP client and cannot be overridden",
                ));
            }
            let taken_by_auth = match &self.auth {
                Some(Auth::Bearer { .. } | Auth::Basic { .. } | Auth::Oauth2(_)) => {
                    lower == "authorization"
                }
                Some(Auth::Hmac(h)) => {
                    lower == h.header.to_ascii_lowercase()
                        || lower == h.timestamp_header.to_ascii_lowercase()
                }
                None => false,
            };
            if taken_by_auth {
                return Err(SinkConfigError::new(
                    name,
                    &field,
                    "is set by `auth`; remove one of the two",
                ));
            }
        }
        Ok(())
    }
}

impl WebhookConfig {
    /// `format: cloudevents` writes the body itself, one event per request
    /// in binary mode; `cloudevents:` needs it.
    fn check_cloudevents(&self, name: &str) -> Result<(), SinkConfigError> {
        if self.format != Format::Cloudevents {
            if self.cloudevents.is_some() {
                return Err(SinkConfigError::new(
                    name,
                    "cloudevents",
                    "is only used with `format: cloudevents`",
                ));
            }
            return Ok(());
        }
        let clash = if self.preset.is_some() {
            Some("preset")
        } else if self.body.is_some() {
            Some("body")
        } else {
            None
        };
        if let Some(field) = clash {
            return Err(SinkConfigError::new(
                name,
                field,
                "cannot be combined with `format: cloudevents`, which writes the body",
            ));
        }
        let ce = self.cloudevents.clone().unwrap_or_default();
        if ce.mode == Mode::Binary && self.batch.is_some() {
            return Err(SinkConfigError::new(
                name,
                "cloudevents.mode",
                "binary mode sends one event per request: remove `batch` or use `structured`",
            ));
        }
        if ce.source.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(SinkConfigError::new(
                name,
                "cloudevents.source",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// `auth.oauth2`: an http(s) token URL and non-empty credentials.
fn check_oauth2(name: &str, o: &OAuth2Auth) -> Result<(), SinkConfigError> {
    let url_ok = reqwest::Url::parse(o.token_url.trim())
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if !url_ok {
        return Err(SinkConfigError::new(
            name,
            "auth.oauth2.token_url",
            "must be an http:// or https:// URL",
        ));
    }
    for (field, value) in [
        ("auth.oauth2.client_id", &o.client_id),
        ("auth.oauth2.client_secret", &o.client_secret),
    ] {
        if value.is_empty() {
            return Err(SinkConfigError::new(name, field, "must not be empty"));
        }
    }
    Ok(())
}
