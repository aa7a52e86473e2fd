//! `tls: {ca_file, cert_file, key_file}`: whom a webhook sink trusts and the
//! client certificate it presents (mutual TLS), read once when the sink is
//! built, so a missing or unreadable file is an error at `validate` time,
//! named by its field, never at the first event.
//!
//! `ca_file` replaces the built-in roots (a private CA is the reason to set
//! it); `cert_file` and `key_file` (PEM: the certificate chain, and its
//! PKCS#8, PKCS#1 or SEC1 key) go together. A receiver that refuses the
//! certificate does not change its mind: `classify` rejects that at once.

use std::path::Path;

use reqwest::{Certificate, ClientBuilder, Identity};

use super::config::TlsConfig;
use crate::sink::SinkConfigError;

/// The largest PEM file read (a CA bundle is about 200 KB).
const MAX_PEM_BYTES: u64 = 4 * 1024 * 1024;

fn read_pem(sink: &str, field: &str, path: &Path) -> Result<Vec<u8>, SinkConfigError> {
    let err = |m: String| SinkConfigError::new(sink, field, m);
    let len = std::fs::metadata(path)
        .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(err(format!(
            "{} is {len} bytes, more than {MAX_PEM_BYTES}",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))
}

/// `builder` with the sink's CA and client certificate.
pub fn configure(
    sink: &str,
    tls: &TlsConfig,
    mut builder: ClientBuilder,
) -> Result<ClientBuilder, SinkConfigError> {
    if let Some(ca) = &tls.ca_file {
        let pem = read_pem(sink, "tls.ca_file", ca)?;
        let certs = Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| SinkConfigError::new(sink, "tls.ca_file", "holds no PEM certificate"))?;
        builder = builder.tls_certs_only(certs);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read_pem(sink, "tls.cert_file", cert)?;
            pem.push(b'\n');
            pem.extend(read_pem(sink, "tls.key_file", key)?);
            // The error may quote the PEM: it is not shown, the key is in it.
            let identity = Identity::from_pem(&pem).map_err(|_| {
                SinkConfigError::new(
                    sink,
                    "tls.cert_file",
                    "is not a PEM certificate matching a PEM private key in key_file",
                )
            })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(SinkConfigError::new(
                sink,
                "tls.key_file",
                "is needed with cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(SinkConfigError::new(
                sink,
                "tls.cert_file",
                "is needed with key_file",
            ))
        }
    }
    Ok(builder)
}
