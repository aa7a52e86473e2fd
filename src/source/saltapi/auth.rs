//! Logging in to salt-api and keeping a token.
//!
//! `POST /login {"username", "password", "eauth"}` answers
//! `{"return": [{"token", "expire", "start", ...}]}` (rest_cherrypy
//! `Login.POST`); the token is a CherryPy session id that lives in the
//! salt-api process, so it is refused (401) after a salt-api restart and
//! after `token_expire` (12 h by default). With eauth credentials the token
//! is renewed half its life early (at most a minute), and once when
//! `/events` answers 401; a token given as it is (`token`,
//! `SALTBRIDGE_SALTAPI_TOKEN`) cannot be renewed. A login refused (401 or
//! 403: wrong password, unknown user or eauth) is final: the error names the
//! URL, the user and the eauth, and the source stops, rather than asking
//! again for ever. The password and the token appear in no message.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;

use super::settings::{Credentials, Secret};

/// At most this much of a token's life is cut off, to renew it early.
const MAX_MARGIN: Duration = Duration::from_secs(60);
/// The largest `/login` answer read (salt-api's is under 1 KB).
const MAX_LOGIN_RESPONSE: usize = 64 * 1024;

#[derive(Deserialize)]
struct LoginResponse {
    #[serde(rename = "return")]
    ret: Vec<LoginReturn>,
}

#[derive(Deserialize)]
struct LoginReturn {
    token: String,
    #[serde(default)]
    expire: Option<f64>,
    #[serde(default)]
    start: Option<f64>,
}

/// The credentials and the token they gave.
#[derive(Debug)]
pub struct Auth {
    base: String,
    credentials: Credentials,
    token: Option<(HeaderValue, Option<Instant>)>,
}

impl Auth {
    pub fn new(base: String, credentials: Credentials) -> Self {
        Auth {
            base,
            credentials,
            token: None,
        }
    }

    /// Whether a refused token can be replaced by logging in again.
    pub fn can_login(&self) -> bool {
        matches!(self.credentials, Credentials::Eauth { .. })
    }

    /// When the token is to be renewed (eauth credentials only).
    pub fn renew_at(&self) -> Option<Instant> {
        self.token.as_ref().and_then(|(_, at)| *at)
    }

    /// Forgets the token: the next [`Auth::header`] logs in again.
    pub fn forget(&mut self) {
        if self.can_login() {
            self.token = None;
        }
    }

    /// The `X-Auth-Token` value: the one held while fresh, else a new one.
    pub async fn header(
        &mut self,
        client: &reqwest::Client,
        now: Instant,
    ) -> Result<HeaderValue, Failure> {
        if let Some((h, at)) = &self.token {
            if at.is_none_or(|at| now < at) {
                return Ok(h.clone());
            }
        }
        let fresh = match &self.credentials {
            Credentials::Token(t) => (sensitive(t.expose(), &self.base)?, None),
            Credentials::Eauth {
                username,
                password,
                eauth,
            } => self.login(client, username, password, eauth, now).await?,
        };
        let header = fresh.0.clone();
        self.token = Some(fresh);
        Ok(header)
    }

    /// A failure for a token refused by `/events` that cannot be replaced.
    pub fn refused(&self, status: u16) -> Failure {
        let url = &self.base;
        Failure::Fatal(match &self.credentials {
            Credentials::Token(_) => format!(
                "salt-api at {url} refused the token (HTTP {status}): it has expired, or salt-api \
                 restarted (its /login tokens live in its memory); give username, password and \
                 eauth instead, so that saltbridge logs in again itself"
            ),
            Credentials::Eauth {
                username, eauth, ..
            } => format!(
                "salt-api at {url} refused the token it had just given to user {username:?} \
                 (eauth {eauth:?}) (HTTP {status})"
            ),
        })
    }

    async fn login(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &Secret,
        eauth: &str,
        now: Instant,
    ) -> Result<(HeaderValue, Option<Instant>), Failure> {
        let url = format!("{}/login", self.base);
        let body = json!({"username": username, "password": password.expose(), "eauth": eauth});
        let response = client
            .post(&url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("POST {url}: {}", error_text(&e))))?;
        let status = response.status();
        let code = status.as_u16();
        if code == 401 || code == 403 {
            return Err(Failure::Fatal(format!(
                "salt-api at {url} refused the login of user {username:?} with eauth {eauth:?} \
                 (HTTP {code}): check the password, and that the master's external_auth has \
                 {eauth:?} with this user"
            )));
        }
        if status.is_server_error() || code == 429 || code == 408 {
            return Err(Failure::Retry(format!("POST {url}: HTTP {status}")));
        }
        if !status.is_success() {
            return Err(Failure::Fatal(format!(
                "POST {url}: HTTP {status} (is this salt-api's rest_cherrypy or rest_tornado?)"
            )));
        }
        let body = crate::http_body::read_bounded(response, MAX_LOGIN_RESPONSE).await;
        let parsed: LoginResponse = serde_json::from_slice(&body.bytes).map_err(|_| {
            Failure::Retry(format!(
                "POST {url}: HTTP {status} without a token in its answer"
            ))
        })?;
        let first = parsed.ret.into_iter().next().ok_or_else(|| {
            Failure::Retry(format!(
                "POST {url}: HTTP {status} without a token in its answer"
            ))
        })?;
        let renew = match (first.start, first.expire) {
            (Some(start), Some(expire)) => Some(renew_at(now, expire - start)),
            _ => None,
        };
        tracing::info!(url = %url, user = username, eauth, renew_in_s = renew.map(|r| r.saturating_duration_since(now).as_secs()),
            "logged in to salt-api");
        Ok((sensitive(&first.token, &self.base)?, renew))
    }
}

/// `token` as a header value that `Debug` does not show.
fn sensitive(token: &str, url: &str) -> Result<HeaderValue, Failure> {
    let mut h = HeaderValue::from_str(token).map_err(|_| {
        Failure::Fatal(format!(
            "the salt-api token for {url} holds characters a header cannot carry"
        ))
    })?;
    h.set_sensitive(true);
    Ok(h)
}

/// When a token that lives `life` seconds from `now` is renewed: half its
/// life early, at most [`MAX_MARGIN`]. The old stream runs until its first
/// event past the expiry (see `stream`), and the new one must have
/// subscribed by then: a fifth of a 10 s token (2 s) was too little for a
/// salt-api starved of CPU, and an event fell between the two streams
/// (`tests/saltapi_live.rs` in a fresh-clone suite beside a build).
pub fn renew_at(now: Instant, life: f64) -> Instant {
    let life = Duration::try_from_secs_f64(life.max(0.0)).unwrap_or(Duration::ZERO);
    now + life - (life / 2).min(MAX_MARGIN)
}

/// How a connect or a login failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth trying again after the backoff (salt-api down, 5xx, network).
    Retry(String),
    /// Will not get better by itself (refused credentials, not salt-api).
    Fatal(String),
}

/// A reqwest error and its causes. Its URL is the one the spec names (no
/// user, password or query: `settings::check_url`), and reqwest's messages
/// carry no header, so neither token nor password can appear.
pub(crate) fn error_text(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_early_by_half_at_most_a_minute() {
        let now = Instant::now();
        assert_eq!(renew_at(now, 43200.0), now + Duration::from_secs(43140));
        assert_eq!(renew_at(now, 20.0), now + Duration::from_secs(10));
        assert_eq!(renew_at(now, -5.0), now);
    }
}
