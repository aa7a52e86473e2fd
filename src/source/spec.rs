//! The `--source SPEC` syntax every command shares.
//!
//! `ipc:PATH` (a socket, or a master config file whose `sock_dir` and
//! `ipc_mode` are read), `tcp:HOST:PORT`, `zmq:ENDPOINT`, `jsonl:PATH` (`-` is
//! stdin), `capture:PATH` and `journal:DIR` (the bus journal a `run` keeps,
//! or its state directory), `saltapi:URL` (salt-api's `/events`, its
//! settings from the routes file or the environment: `saltapi::settings`).
//! An empty `ipc:` or `tcp:` means Salt's default.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::SystemTime;

use super::master_config::{self, BusAddress};
use super::saltapi::settings::{check_url, redact_userinfo};
use super::saltapi::SaltApiSettings;

/// The master's publish socket when nothing else is configured.
pub const DEFAULT_IPC_SOCKET: &str = "/var/run/salt/master/master_event_pub.ipc";
/// `ipc_mode: tcp` masters publish here (`tcp_master_pub_port`).
pub const DEFAULT_TCP_ADDR: &str = "127.0.0.1:4512";

/// Where to read events from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A unix socket: the master's `master_event_pub.ipc`.
    Ipc(PathBuf),
    /// `HOST:PORT` of an `ipc_mode: tcp` master.
    Tcp(String),
    /// A ZeroMQ endpoint (`ipc://...` or `tcp://...`) of a 2014-2015 master.
    Zmq(String),
    /// JSON lines; `None` reads stdin.
    Jsonl(Option<PathBuf>),
    /// Raw bytes as captured from the socket.
    Capture(PathBuf),
    /// salt-api's `/events` at `url` (`https://HOST:8000`, no trailing `/`),
    /// with the settings the routes file gives (credentials, CA file).
    SaltApi {
        url: String,
        settings: SaltApiSettings,
    },
    /// The history in a bus journal (`replay`, `tail`, `explain`): what
    /// was read from `since` to `until`; it ends at the journal's end.
    Journal {
        dir: PathBuf,
        since: Option<SystemTime>,
        until: Option<SystemTime>,
    },
}

/// A SPEC that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "source {0:?}: expected ipc:PATH, tcp:HOST:PORT, zmq:ENDPOINT, saltapi:https://HOST:PORT, jsonl:PATH (jsonl:- for stdin), capture:PATH or journal:DIR"
    )]
    Syntax(String),
    #[error("source {spec:?}: {reason}")]
    Invalid { spec: String, reason: String },
    #[error(transparent)]
    MasterConfig(#[from] master_config::MasterConfigError),
}

impl SourceSpec {
    /// `self` with the routes file's `source.saltapi` settings, when it is
    /// a `saltapi:` source given without any (on the command line).
    pub fn with_saltapi_settings(mut self, from_file: &SaltApiSettings) -> Self {
        if let SourceSpec::SaltApi { settings, .. } = &mut self {
            if settings.is_empty() {
                *settings = from_file.clone();
            }
        }
        self
    }

    /// Live sources talk to a master and must never fall behind it.
    /// Whether the daemon reads it through the journal: a byte stream
    /// from a master (unix socket or TCP). ZeroMQ (2014-2015 masters) is
    /// read as before, and files need no journal: they can be read again.
    pub fn is_journaled(&self) -> bool {
        matches!(self, SourceSpec::Ipc(_) | SourceSpec::Tcp(_))
    }

    pub fn is_live(&self) -> bool {
        matches!(
            self,
            SourceSpec::Ipc(_)
                | SourceSpec::Tcp(_)
                | SourceSpec::Zmq(_)
                | SourceSpec::SaltApi { .. }
        )
    }
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec::Ipc(PathBuf::from(DEFAULT_IPC_SOCKET))
    }
}

impl FromStr for SourceSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| SpecError::Syntax(s.into()))?;
        let invalid = |reason: &str| SpecError::Invalid {
            spec: s.into(),
            reason: reason.into(),
        };
        Ok(match scheme {
            "ipc" if rest.is_empty() => SourceSpec::default(),
            "ipc" => {
                let path = PathBuf::from(rest);
                if master_config::looks_like_config(&path) {
                    match master_config::bus_address(&path)? {
                        BusAddress::Ipc(p) => SourceSpec::Ipc(p),
                        BusAddress::Tcp(a) => SourceSpec::Tcp(a),
                    }
                } else {
                    SourceSpec::Ipc(path)
                }
            }
            "tcp" if rest.is_empty() => SourceSpec::Tcp(DEFAULT_TCP_ADDR.into()),
            "tcp" => {
                let port = rest.rsplit_once(':').map(|(_, p)| p);
                if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                    return Err(invalid("expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:4512"));
                }
                SourceSpec::Tcp(rest.into())
            }
            "zmq" => {
                if !(rest.starts_with("ipc://") || rest.starts_with("tcp://")) {
                    return Err(invalid(
                        "expected zmq:ipc://PATH or zmq:tcp://HOST:PORT, \
                         e.g. zmq:ipc:///var/run/salt/master/master_event_pub.ipc",
                    ));
                }
                SourceSpec::Zmq(rest.into())
            }
            "saltapi" => SourceSpec::SaltApi {
                url: check_url(rest).map_err(|reason| SpecError::Invalid {
                    spec: redact_userinfo(s),
                    reason,
                })?,
                settings: SaltApiSettings::default(),
            },
            "jsonl" if rest == "-" => SourceSpec::Jsonl(None),
            "jsonl" if !rest.is_empty() => SourceSpec::Jsonl(Some(rest.into())),
            "capture" if !rest.is_empty() => SourceSpec::Capture(rest.into()),
            "journal" if !rest.is_empty() => {
                let dir = PathBuf::from(rest);
                // A state directory holds its journal in `journal/`.
                let inner = dir.join("journal");
                SourceSpec::Journal {
                    dir: if inner.is_dir() { inner } else { dir },
                    since: None,
                    until: None,
                }
            }
            "jsonl" | "capture" | "journal" => return Err(invalid("a path is required")),
            _ => return Err(SpecError::Syntax(s.into())),
        })
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Ipc(p) => write!(f, "ipc:{}", p.display()),
            SourceSpec::Tcp(a) => write!(f, "tcp:{a}"),
            SourceSpec::Zmq(e) => write!(f, "zmq:{e}"),
            SourceSpec::SaltApi { url, .. } => write!(f, "saltapi:{url}"),
            SourceSpec::Jsonl(None) => write!(f, "jsonl:-"),
            SourceSpec::Jsonl(Some(p)) => write!(f, "jsonl:{}", p.display()),
            SourceSpec::Capture(p) => write!(f, "capture:{}", p.display()),
            SourceSpec::Journal { dir, .. } => write!(f, "journal:{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme_and_round_trips() {
        for s in [
            "ipc:/run/x.ipc",
            "tcp:127.0.0.1:4512",
            "zmq:ipc:///var/run/salt/master/master_event_pub.ipc",
            "zmq:tcp://10.0.0.1:4510",
            "saltapi:https://salt.example.com:8000",
            "saltapi:http://127.0.0.1:8000",
            "jsonl:-",
            "jsonl:events.jsonl",
            "capture:a.bin",
            "journal:/nonexistent/state",
        ] {
            let spec: SourceSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!("ipc:".parse::<SourceSpec>().unwrap(), SourceSpec::default());
        assert_eq!(
            "tcp:".parse::<SourceSpec>().unwrap(),
            SourceSpec::Tcp(DEFAULT_TCP_ADDR.into())
        );
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for s in [
            "/run/x.ipc",
            "http://x",
            "tcp:host",
            "zmq:/path",
            "capture:",
            "saltapi:",
            "saltapi:https://u:secret@salt:8000",
        ] {
            assert!(s.parse::<SourceSpec>().is_err(), "{s}");
        }
        let e = "saltapi:https://u:secret@salt:8000"
            .parse::<SourceSpec>()
            .unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
