//! Reading a peer's HTTP response body with a bound: a peer that sends a
//! body without end (a wrong `--listen`, a misbehaving receiver) costs at
//! most `limit` bytes of memory, never the process. Every response body
//! saltbridge reads goes through here (`status`, the webhook sink).

/// The body of `response`, at most `limit` bytes.
#[derive(Debug)]
pub struct Body {
    pub bytes: Vec<u8>,
    /// The peer sent more than `limit` bytes; the rest was not read.
    pub truncated: bool,
    /// The body broke off before its end (connection reset, timeout).
    pub error: Option<reqwest::Error>,
}

/// Reads up to `limit` bytes of `response`'s body, chunk by chunk; stops
/// (and drops the connection) past the limit.
pub async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Body {
    let mut bytes = Vec::new();
    if let Some(len) = response.content_length() {
        bytes.reserve(len.min(limit as u64) as usize);
    }
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - bytes.len();
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    return Body {
                        bytes,
                        truncated: true,
                        error: None,
                    };
                }
            }
            Ok(None) => {
                return Body {
                    bytes,
                    truncated: false,
                    error: None,
                }
            }
            Err(e) => {
                return Body {
                    bytes,
                    truncated: false,
                    error: Some(e),
                }
            }
        }
    }
}
