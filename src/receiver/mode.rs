//! How the receiver answers ([`Mode`]) and what it recorded ([`Recorded`]).

use std::time::{Duration, Instant, SystemTime};

/// How the receiver answers a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// An HTTP response, after `delay`.
    Reply(Reply),
    /// Read the request, then reset the connection without any response.
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Mode {
    /// 200 with body `ok`.
    pub fn ok() -> Mode {
        Mode::status(200)
    }

    /// `code` with a short text body (`ok` for 2xx, `status <code>` otherwise).
    pub fn status(code: u16) -> Mode {
        let body = if (200..300).contains(&code) {
            "ok".to_owned()
        } else {
            format!("status {code}")
        };
        Mode::Reply(Reply {
            status: code,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
        })
    }

    /// `code` with a JSON body.
    pub fn json(code: u16, body: serde_json::Value) -> Mode {
        Mode::status(code)
            .with_body(body.to_string())
            .with_header("content-type", "application/json")
    }

    /// `code` (429 or 503) with `Retry-After: <secs>`.
    pub fn retry_after_secs(code: u16, secs: u64) -> Mode {
        Mode::status(code).with_header("retry-after", &secs.to_string())
    }

    /// `code` with `Retry-After: <HTTP-date>`.
    pub fn retry_after_date(code: u16, at: SystemTime) -> Mode {
        Mode::status(code).with_header("retry-after", &httpdate::fmt_http_date(at))
    }

    /// 200, after `delay` (for timeout tests).
    pub fn slow(delay: Duration) -> Mode {
        Mode::ok().with_delay(delay)
    }

    /// Reset the connection instead of answering.
    pub fn reset() -> Mode {
        Mode::Reset
    }

    pub fn with_delay(self, delay: Duration) -> Mode {
        self.map_reply(|r| r.delay = delay)
    }

    pub fn with_header(self, name: &str, value: &str) -> Mode {
        self.map_reply(|r| r.headers.push((name.to_owned(), value.to_owned())))
    }

    pub fn with_body(self, body: impl Into<String>) -> Mode {
        let body = body.into();
        self.map_reply(|r| r.body = body)
    }

    fn map_reply(self, f: impl FnOnce(&mut Reply)) -> Mode {
        match self {
            Mode::Reply(mut r) => {
                f(&mut r);
                Mode::Reply(r)
            }
            Mode::Reset => Mode::Reset,
        }
    }
}

/// What the receiver did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Reset,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// Header names in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Empty when bodies are not kept (`set_keep_bodies(false)`).
    pub body: Vec<u8>,
    pub body_len: usize,
    pub at: Instant,
    pub answer: Answer,
}

impl Recorded {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path with `?query` when there is one, as the client sent it.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The body as text (lossy).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or why it is not.
    pub fn try_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as JSON, for assertions in tests.
    ///
    /// # Panics
    /// When the body is not JSON (with the body in the message); use
    /// [`try_json`](Self::try_json) on untrusted input.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_str()))
    }

    /// A query parameter, percent-decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        let url = reqwest::Url::parse(&format!("http://x/?{q}")).ok()?;
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}
