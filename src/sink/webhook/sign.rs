//! Request signatures: saltbridge's own HMAC scheme and the signed-robot
//! schemes of DingTalk and Feishu.
//!
//! All three are HMAC-SHA256 but differ in what is signed and where the
//! result goes, so each has its own function here, written to the letter of
//! the documentation its receivers verify against:
//!
//! - saltbridge (`auth: {hmac: ...}`): `sha256=` + hex of
//!   HMAC(secret, `<unix seconds>` + "." + body), in the style of Stripe and
//!   GitHub, so a receiver checks the exact bytes it got and the age of the
//!   timestamp.
//! - DingTalk: base64 of HMAC(key = secret, message = `<unix ms>` + "\n" +
//!   secret), URL-encoded into `&timestamp=..&sign=..` on the URL.
//! - Feishu / Lark: base64 of HMAC(key = `<unix seconds>` + "\n" + secret,
//!   message = empty), put as `timestamp` and `sign` into the JSON body.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `msg` under `key`. HMAC takes keys of any length, so this
/// cannot fail in practice; the `Err` arm keeps it free of panics.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Result<[u8; 32], SignError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SignError)?;
    mac.update(msg);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// A key HMAC refused (never happens with SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignError;

pub use crate::event::json::hex;

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis(now: SystemTime) -> u128 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// saltbridge's signature header value: `sha256=<hex of HMAC(secret, ts "." body)>`.
pub fn saltbridge_signature(
    secret: &str,
    timestamp: u64,
    body: &[u8],
) -> Result<String, SignError> {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    Ok(format!(
        "sha256={}",
        hex(&hmac_sha256(secret.as_bytes(), &signed)?)
    ))
}

/// DingTalk's `sign` before URL encoding: base64(HMAC(secret, ms "\n" secret)).
pub fn dingtalk_sign(secret: &str, timestamp_ms: u128) -> Result<String, SignError> {
    let to_sign = format!("{timestamp_ms}\n{secret}");
    let mac = hmac_sha256(secret.as_bytes(), to_sign.as_bytes())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Feishu's `sign`: base64(HMAC(key = s "\n" secret, message = "")).
pub fn feishu_sign(secret: &str, timestamp_s: u64) -> Result<String, SignError> {
    let key = format!("{timestamp_s}\n{secret}");
    let mac = hmac_sha256(key.as_bytes(), b"")?;
    Ok(base64::engine::general_purpose::STANDARD.encode(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn saltbridge_signature_covers_timestamp_dot_body() {
        let sig = saltbridge_signature("Jefe", 1700000000, b"{}").unwrap();
        let mac = hmac_sha256(b"Jefe", b"1700000000.{}").unwrap();
        assert_eq!(sig, format!("sha256={}", hex(&mac)));
    }

    #[test]
    fn dingtalk_and_feishu_differ_in_key_and_message() {
        // Values computed with the Python snippets of the two vendors' docs.
        assert_eq!(
            dingtalk_sign("SECabc", 1700000000000).unwrap(),
            "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
        );
        assert_eq!(
            feishu_sign("abc", 1700000000).unwrap(),
            "VIS10b0EBvzzSdFnuk4tznEmK5wHaruvf/WnViv2yR4="
        );
    }
}
