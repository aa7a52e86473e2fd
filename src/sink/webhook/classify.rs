//! What a webhook's answer means for delivery: delivered, retry later, or
//! rejected for good.
//!
//! - 2xx: delivered. DingTalk and Feishu answer HTTP 200 even when they
//!   refuse a message, with an error code in the JSON body; for those presets
//!   the code decides (their rate limits are retried, anything else rejected).
//!   A legacy Teams connector (`teams_connector`) says it failed in the text
//!   of a 200: its throttling is retried, another failure rejected.
//! - 408, 429 and 5xx: retry. On 429 and 503 the server's `Retry-After`
//!   (delay-seconds or an HTTP-date) is passed on.
//! - 3xx: rejected. Redirects are not followed (a POST turned into a GET by
//!   a redirect would lose the event silently), so the reason names the
//!   `Location` to put into `url`.
//! - other statuses: rejected.
//! - connection errors, timeouts, a connection closed before the answer:
//!   retry.
//! - a TLS certificate that does not verify, or a server that refuses our
//!   client certificate: rejected at once.
//!
//! Every reason names the status, the host (never the URL's path or query,
//! where webhook tokens live) and a short excerpt of the response body.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;

use super::config::Preset;
use crate::sink::SendError;

/// How much of a response body is read; the rest is dropped.
pub const MAX_BODY: usize = 64 * 1024;
/// How many characters of the body a reason quotes.
const EXCERPT_CHARS: usize = 200;

/// The delay a `Retry-After` value asks for: delay-seconds or an HTTP-date
/// (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The first characters of a body, on one line.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_CHARS * 4)]);
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    crate::salt::returns::truncate(&one_line, EXCERPT_CHARS)
}

fn with_excerpt(mut reason: String, body: &[u8]) -> String {
    let e = excerpt(body);
    if !e.is_empty() {
        reason.push_str(": ");
        reason.push_str(&e);
    }
    reason
}

/// Classifies a response whose body has been read (up to [`MAX_BODY`]).
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    host: &str,
    preset: Option<Preset>,
    now: SystemTime,
) -> Result<(), SendError> {
    let code = status.as_u16();
    let what = format!("HTTP {status} from {host}");
    if status.is_success() {
        return match preset {
            Some(Preset::Dingtalk) => dingtalk_answer(body, &what, code),
            Some(Preset::Feishu) => feishu_answer(body, &what, code),
            Some(Preset::TeamsConnector) => teams_connector_answer(body, &what, code),
            _ => Ok(()),
        };
    }
    if status.is_redirection() {
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(super::config::redact::redact_url)
            .unwrap_or_else(|| "nowhere".to_owned());
        return Err(SendError::Reject {
            reason: with_excerpt(
                format!(
                    "{what}: redirect to {location} not followed; set `url` to the final address"
                ),
                body,
            ),
            status: Some(code),
        });
    }
    if code == 429 || code == 408 || status.is_server_error() {
        let retry_after = if code == 429 || code == 503 {
            headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now))
        } else {
            None
        };
        return Err(SendError::Retry {
            reason: with_excerpt(what, body),
            status: Some(code),
            retry_after,
        });
    }
    Err(SendError::Reject {
        reason: with_excerpt(what, body),
        status: Some(code),
    })
}

/// DingTalk: `{"errcode": 0, "errmsg": "ok"}`. 130101 ("send too fast", the
/// 20-a-minute limit) is retried after a minute.
fn dingtalk_answer(body: &[u8], what: &str, code: u16) -> Result<(), SendError> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    let Some(errcode) = v.get("errcode").and_then(|c| c.as_i64()) else {
        return Ok(());
    };
    match errcode {
        0 => Ok(()),
        130101 => Err(SendError::Retry {
            reason: with_excerpt(format!("{what}: DingTalk rate limit"), body),
            status: Some(code),
            retry_after: Some(Duration::from_secs(60)),
        }),
        _ => Err(SendError::Reject {
            reason: with_excerpt(format!("{what}: DingTalk error {errcode}"), body),
            status: Some(code),
        }),
    }
}

/// Feishu: `{"code": 0, "msg": "success"}` (older bots: `StatusCode`).
/// 11232 (frequency limited) and 230020 (chat rate limit) are retried.
fn feishu_answer(body: &[u8], what: &str, code: u16) -> Result<(), SendError> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(());
    };
    let Some(errcode) = v
        .get("code")
        .or_else(|| v.get("StatusCode"))
        .and_then(|c| c.as_i64())
    else {
        return Ok(());
    };
    match errcode {
        0 => Ok(()),
        11232 | 230020 => Err(SendError::Retry {
            reason: with_excerpt(format!("{what}: Feishu rate limit"), body),
            status: Some(code),
            retry_after: None,
        }),
        _ => Err(SendError::Reject {
            reason: with_excerpt(format!("{what}: Feishu error {errcode}"), body),
            status: Some(code),
        }),
    }
}

/// A legacy Teams connector answers `1` with HTTP 200, and also HTTP 200
/// with `Webhook message delivery failed with error: Microsoft Teams
/// endpoint returned HTTP error 429 ...` when it throttles (Microsoft's
/// "Rate limiting for connectors"): that is retried; another delivery
/// failure is rejected; any other body counts as delivered.
fn teams_connector_answer(body: &[u8], what: &str, code: u16) -> Result<(), SendError> {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    if !text
        .trim_start()
        .starts_with("Webhook message delivery failed")
    {
        return Ok(());
    }
    if text.contains("HTTP error 429") {
        return Err(SendError::Retry {
            reason: with_excerpt(format!("{what}: Teams connector rate limit"), body),
            status: Some(code),
            retry_after: None,
        });
    }
    Err(SendError::Reject {
        reason: with_excerpt(format!("{what}: Teams connector refused the message"), body),
        status: Some(code),
    })
}

/// TLS alerts (rustls `AlertDescription` names) by which a server refuses
/// a client certificate.
const CERT_ALERTS: [&str; 7] = [
    "CertificateRequired",
    "BadCertificate",
    "UnsupportedCertificate",
    "CertificateRevoked",
    "CertificateExpired",
    "CertificateUnknown",
    "UnknownCA",
];

/// Classifies a request that got no (complete) answer.
pub fn classify_error(e: &reqwest::Error, host: &str, timeout: Duration) -> SendError {
    let chain = error_chain(e);
    if e.is_builder() {
        return SendError::Reject {
            reason: format!("cannot build the request to {host}: {chain}"),
            status: None,
        };
    }
    // rustls: "invalid peer certificate: UnknownIssuer" (rustls
    // src/error.rs, `Error::InvalidCertificate`): an expired, self-signed
    // or wrong-name certificate does not heal by waiting; dead-letter now.
    if chain.contains("invalid peer certificate") {
        return SendError::Reject {
            reason: format!("TLS: {host}'s certificate is refused: {chain}"),
            status: None,
        };
    }
    // The server refused our client certificate (mutual TLS): rustls shows
    // the alert it got, "received fatal alert: CertificateRequired".
    if CERT_ALERTS
        .iter()
        .any(|a| chain.contains(&format!("received fatal alert: {a}")))
    {
        return SendError::Reject {
            reason: format!("TLS: {host} refused the client certificate: {chain}"),
            status: None,
        };
    }
    let reason = if e.is_timeout() {
        format!(
            "no answer from {host} within {}",
            humantime::format_duration(timeout)
        )
    } else if e.is_connect() {
        format!("cannot connect to {host}: {chain}")
    } else {
        format!("request to {host} failed: {chain}")
    };
    SendError::Retry {
        reason,
        status: None,
        retry_after: None,
    }
}

/// `error sending request: connection reset by peer`, without the URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = match err.downcast_ref::<reqwest::Error>() {
            // reqwest's Display names the URL; tokens live there.
            Some(re) => strip_url(&re.to_string()),
            None => err.to_string(),
        };
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn strip_url(s: &str) -> String {
    match s.find(" for url (") {
        Some(i) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn excerpt_is_one_short_line() {
        assert_eq!(excerpt(b"  bad\n\tpayload  "), "bad payload");
        let long = vec![b'x'; 5000];
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS);
    }

    #[test]
    fn chat_api_errors_inside_http_200() {
        let h = HeaderMap::new();
        let now = SystemTime::now();
        let ok = StatusCode::OK;
        let ding = Some(Preset::Dingtalk);
        assert!(classify(ok, &h, br#"{"errcode":0,"errmsg":"ok"}"#, "x", ding, now).is_ok());
        assert!(matches!(
            classify(
                ok,
                &h,
                br#"{"errcode":310000,"errmsg":"sign not match"}"#,
                "x",
                ding,
                now
            ),
            Err(SendError::Reject { .. })
        ));
        assert!(matches!(
            classify(
                ok,
                &h,
                br#"{"errcode":130101,"errmsg":"send too fast"}"#,
                "x",
                ding,
                now
            ),
            Err(SendError::Retry { .. })
        ));
        let feishu = Some(Preset::Feishu);
        assert!(classify(ok, &h, br#"{"code":0,"msg":"success"}"#, "x", feishu, now).is_ok());
        assert!(classify(ok, &h, br#"{"StatusCode":0}"#, "x", feishu, now).is_ok());
        let Err(SendError::Reject { reason, .. }) = classify(
            ok,
            &h,
            br#"{"code":19021,"msg":"sign match fail"}"#,
            "x",
            feishu,
            now,
        ) else {
            panic!("not rejected")
        };
        assert!(
            reason.contains("19021") && reason.contains("sign match fail"),
            "{reason}"
        );
        // Other presets and plain webhooks: any 2xx is delivered.
        assert!(classify(ok, &h, br#"{"errcode":1}"#, "x", None, now).is_ok());
    }

    #[test]
    fn teams_connector_failures_inside_http_200() {
        let h = HeaderMap::new();
        let now = SystemTime::now();
        let ok = StatusCode::OK;
        let conn = Some(Preset::TeamsConnector);
        assert!(classify(ok, &h, b"1", "x", conn, now).is_ok());
        let throttled = b"Webhook message delivery failed with error: Microsoft Teams endpoint \
            returned HTTP error 429 with ContextId tcid=0,server=msgapi,cv=x.0.";
        assert!(matches!(
            classify(ok, &h, throttled, "x", conn, now),
            Err(SendError::Retry { .. })
        ));
        let refused = b"Webhook message delivery failed with error: Microsoft Teams endpoint \
            returned HTTP error 413 with ContextId tcid=0.";
        assert!(matches!(
            classify(ok, &h, refused, "x", conn, now),
            Err(SendError::Reject { .. })
        ));
        // A Workflows webhook answers 202 with no body.
        let accepted = StatusCode::ACCEPTED;
        assert!(classify(accepted, &h, b"", "x", Some(Preset::Teams), now).is_ok());
    }
}
