//! What a `saltapi:` source needs besides its URL: how to authenticate and
//! whom to trust. Set in the routes file (`source: {spec, saltapi: {...}}`,
//! where `${file:...}` and `${VAR}` keep secrets out of the file), else read
//! from the environment (`SALTBRIDGE_SALTAPI_*`), so `tail` works too.
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print `***`:
//! a spec or a settings struct can be logged whole without leaking them.

use std::fmt;
use std::path::PathBuf;

use reqwest::Url;
use serde::Deserialize;

/// The environment variables read when the routes file sets no credentials.
pub const ENV_TOKEN: &str = "SALTBRIDGE_SALTAPI_TOKEN";
pub const ENV_USERNAME: &str = "SALTBRIDGE_SALTAPI_USERNAME";
pub const ENV_PASSWORD: &str = "SALTBRIDGE_SALTAPI_PASSWORD";
pub const ENV_EAUTH: &str = "SALTBRIDGE_SALTAPI_EAUTH";
pub const ENV_CA_FILE: &str = "SALTBRIDGE_SALTAPI_CA_FILE";

/// A value never shown: not in logs, errors, `explain`, status or metrics.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `source: {saltapi: {...}}` in the routes file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaltApiSettings {
    /// A salt-api token (`X-Auth-Token`), used as it is and never renewed.
    #[serde(default)]
    pub token: Option<Secret>,
    /// eauth credentials for `POST /login`; the token they give is renewed.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub eauth: Option<String>,
    /// PEM CA bundle that replaces the built-in roots for an `https://` URL.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// How the source authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Token(Secret),
    Eauth {
        username: String,
        password: Secret,
        eauth: String,
    },
}

impl SaltApiSettings {
    /// True when the routes file set nothing.
    pub fn is_empty(&self) -> bool {
        *self == SaltApiSettings::default()
    }

    /// The first problem with these settings, as (field, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let eauth_set = self.username.is_some() || self.password.is_some() || self.eauth.is_some();
        if self.token.is_some() && eauth_set {
            return Err((
                "token",
                "set either token or username/password/eauth, not both".into(),
            ));
        }
        if eauth_set {
            for (field, missing) in [
                ("username", self.username.is_none()),
                ("password", self.password.is_none()),
                ("eauth", self.eauth.is_none()),
            ] {
                if missing {
                    return Err((
                        field,
                        "is needed with the other eauth settings (username, password, eauth)"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// These settings completed from the environment (`env`): credentials
    /// when the file set none, the CA file when the file set none.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Credentials, Option<PathBuf>), String> {
        self.check().map_err(|(f, m)| format!("saltapi.{f}: {m}"))?;
        let ca_file = self.ca_file.clone().or_else(|| {
            env(ENV_CA_FILE)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        if let Some(t) = &self.token {
            return Ok((Credentials::Token(t.clone()), ca_file));
        }
        if let (Some(u), Some(p), Some(e)) = (&self.username, &self.password, &self.eauth) {
            return Ok((
                Credentials::Eauth {
                    username: u.clone(),
                    password: p.clone(),
                    eauth: e.clone(),
                },
                ca_file,
            ));
        }
        if let Some(t) = env(ENV_TOKEN).filter(|s| !s.is_empty()) {
            return Ok((Credentials::Token(Secret(t)), ca_file));
        }
        match (env(ENV_USERNAME), env(ENV_PASSWORD), env(ENV_EAUTH)) {
            (Some(username), Some(password), Some(eauth)) => Ok((
                Credentials::Eauth {
                    username,
                    password: Secret(password),
                    eauth,
                },
                ca_file,
            )),
            _ => Err(format!(
                "no credentials: set source.saltapi.token or username/password/eauth in the \
                 routes file, or {ENV_TOKEN}, or {ENV_USERNAME}, {ENV_PASSWORD} and {ENV_EAUTH}"
            )),
        }
    }
}

/// Checks the URL of `saltapi:URL`: http or https, a host, no user or
/// password (it would be shown wherever the spec is), no query (salt-api's
/// `/events` answers 400 to any query parameter) and no fragment.
/// Returns it without a trailing `/`.
pub fn check_url(url: &str) -> Result<String, String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("expected saltapi:https://HOST:PORT (or http://)".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "credentials do not go in the URL: set source.saltapi in the routes file or SALTBRIDGE_SALTAPI_TOKEN"
                .into(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("salt-api's /events takes no query parameters; give the base URL".into());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `spec` with any `user:password@` of its URL shown as `***@`, for errors
/// about a URL that was refused for carrying them.
pub fn redact_userinfo(spec: &str) -> String {
    match (spec.find("://"), spec.rfind('@')) {
        (Some(start), Some(at)) if at > start + 3 => {
            format!("{}***{}", &spec[..start + 3], &spec[at..])
        }
        _ => spec.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = SaltApiSettings {
            token: Some(Secret::new("tok-123")),
            password: Some(Secret::new("pw-456")),
            ..Default::default()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_come_from_the_file_then_the_environment() {
        let none = |_: &str| None;
        assert!(SaltApiSettings::default().resolve(none).is_err());
        let env = |k: &str| (k == ENV_TOKEN).then(|| "t".to_owned());
        let (c, _) = SaltApiSettings::default().resolve(env).unwrap();
        assert_eq!(c, Credentials::Token(Secret::new("t")));
        let file = SaltApiSettings {
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            eauth: Some("pam".into()),
            ..Default::default()
        };
        let (c, _) = file.resolve(env).unwrap();
        assert!(matches!(c, Credentials::Eauth { .. }));
        let half = SaltApiSettings {
            username: Some("u".into()),
            ..Default::default()
        };
        assert_eq!(half.check().unwrap_err().0, "password");
    }

    #[test]
    fn urls() {
        assert_eq!(
            check_url("https://salt:8000/").unwrap(),
            "https://salt:8000"
        );
        assert_eq!(
            check_url("http://127.0.0.1:8000").unwrap(),
            "http://127.0.0.1:8000"
        );
        for bad in [
            "ftp://x",
            "https://u:p@salt:8000",
            "https://salt:8000/?token=x",
            "salt:8000",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
