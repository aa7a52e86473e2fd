//! `Debug` for the webhook's settings without their secrets: tokens,
//! passwords, HMAC and OAuth2 secrets are `<redacted>`, and a URL shows only
//! its scheme and host (webhook services keep tokens in the path and query).

use std::fmt;

use super::{Auth, HmacAuth, WebhookConfig};

/// Shows `scheme://host[:port]` of a URL (template), never its path or query,
/// where webhook services keep their tokens.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<url>".to_owned();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/...")
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&String> = self.headers.keys().collect();
        f.debug_struct("WebhookConfig")
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("method", &self.method)
            .field("headers", &headers)
            .field("body", &self.body.as_ref().map(|_| "<template>"))
            .field("preset", &self.preset)
            .field("auth", &self.auth)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("batch", &self.batch)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("format", &self.format)
            .field("cloudevents", &self.cloudevents)
            .field("tls", &self.tls)
            .finish()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}:<redacted>)"),
            Auth::Hmac(h) => f
                .debug_struct("Hmac")
                .field("secret", &"<redacted>")
                .field("header", &h.header)
                .field("timestamp_header", &h.timestamp_header)
                .finish(),
            Auth::Oauth2(o) => f
                .debug_struct("OAuth2")
                .field("token_url", &redact_url(&o.token_url))
                .field("client_id", &o.client_id)
                .field("client_secret", &"<redacted>")
                .field("scope", &o.scope)
                .field("audience", &o.audience)
                .finish(),
        }
    }
}

impl fmt::Debug for HmacAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Auth::Hmac(self.clone()), f)
    }
}
