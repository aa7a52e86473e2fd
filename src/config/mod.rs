//! The configuration: a routes file read in one place. `${...}` is
//! substituted (`interpolate`), the YAML parsed (`parse`, into the schema of
//! `file`), the whole checked (`check`), every problem located at its line
//! (`error`); then each stage gets its own config: the source's
//! [`SourceSpec`], the twin filter's [`TwinConfig`], the job tracker's
//! [`JobConfig`], the sinks' settings (built by `sinks`) and the compiled
//! [`RouteTable`]. `reload` reads the file again when it changes.

mod check;
pub mod error;
pub mod file;
pub mod interpolate;
mod masters;
mod parse;
pub mod reload;
pub mod sinks;

use std::collections::BTreeMap;
use std::path::Path;

pub use error::{ConfigError, ConfigErrors};
use file::RoutesFile;
use interpolate::{interpolate_tracked, Redactor};
pub use sinks::{build_sinks, each_sink, ConfiguredSink};

use crate::backfill::BackfillConfig;
use crate::jobs::JobConfig;
use crate::journal::JournalSettings;
use crate::route::{self, RouteTable};
use crate::sink::Sink;
use crate::source::saltapi::SaltApiSettings;
use crate::source::SourceSpec;
use crate::twins::{MastersConfig, TwinConfig};

/// A routes file, each stage's part in its own type.
#[derive(Debug)]
pub struct Config {
    /// `source:` (its SPEC), if the file sets one.
    pub source: Option<SourceSpec>,
    /// `source.saltapi:`, the settings of a `saltapi:` source.
    pub saltapi: SaltApiSettings,
    pub twins: TwinConfig,
    /// The master beside the bridge, its id and peers resolved.
    pub masters: MastersConfig,
    pub jobs: JobConfig,
    /// Backfill from the job cache, its `cachedir` and `master_job_cache`
    /// filled in from the Salt master config.
    pub backfill: BackfillConfig,
    /// The bus journal's settings (read at start; a reload does not change them).
    pub journal: JournalSettings,
    /// The sinks' settings by name (their fields belong to the sinks).
    pub sinks: BTreeMap<String, serde_json::Value>,
    /// Where each sink is defined (line, column), for errors found later.
    sink_lines: BTreeMap<String, (u64, u64)>,
    /// The values substituted for `${...}`, kept out of errors found later.
    redactor: Redactor,
    pub routes: RouteTable,
}

impl Config {
    /// The sinks' settings by name.
    pub fn sinks(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.sinks
    }

    /// Where sink `name` is defined in the file: (line, column).
    pub fn sink_location(&self, name: &str) -> Option<(u64, u64)> {
        self.sink_lines.get(name).copied()
    }

    /// `errors` as the file is written: no substituted value (a secret from
    /// `${VAR}` or `${file:...}`) in a message, hint or snippet.
    pub fn redact(&self, errors: ConfigErrors) -> ConfigErrors {
        redact(&self.redactor, errors)
    }
}

/// Every error of `errors` with the substituted values put back as
/// placeholders, and columns counted in the file as written.
fn redact(r: &Redactor, errors: ConfigErrors) -> ConfigErrors {
    ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|e| ConfigError {
                column: if e.line > 0 {
                    r.column(e.line, e.column)
                } else {
                    e.column
                },
                field: r.redact(&e.field),
                message: r.redact(&e.message),
                hint: e.hint.map(|h| r.redact(&h)),
                snippet: e.snippet.map(|s| r.redact(&s)),
                ..e
            })
            .collect(),
    )
}

/// The largest routes file read, in bytes (16 MiB: a hundred times the
/// README's 10,000 routes). Documented in docs/routes.md.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Loads and checks the routes file at `path`, reading `${ENV}` from the environment.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_bounded(path)
        .map_err(|e| ConfigError::new(path, None, "", format!("cannot read: {e}")))?;
    load_str(path, &text, |k| std::env::var(k).ok())
}

/// The text of `path`, refused past [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "the file is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// Loads a routes file from `text`; `path` names the file in messages.
pub fn load_str(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_str_with(path, text, env, |p| std::fs::read_to_string(p))
}

/// [`load_str`], reading `${file:...}` through `read_file` (the fuzz target's
/// stand-in for the file system).
pub fn load_str_with(
    path: &Path,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<Config, ConfigErrors> {
    if text.len() > MAX_FILE_BYTES {
        let why = format!("the file is larger than {MAX_FILE_BYTES} bytes");
        return Err(ConfigError::new(path, None, "", why).into());
    }
    let (text, redactor) = interpolate_tracked(text, env, read_file).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|e| ConfigError {
                    line: e.line,
                    column: e.column,
                    ..ConfigError::new(path, None, "", e.message)
                })
                .collect(),
        )
    })?;
    load_substituted(path, &text, redactor.clone()).map_err(|e| redact(&redactor, e))
}

/// Parses and checks `text`, substituted already.
fn load_substituted(path: &Path, text: &str, redactor: Redactor) -> Result<Config, ConfigErrors> {
    let file = parse::parse(path, text).map_err(|e| ConfigErrors(vec![*e]))?;
    let errors = check::check(path, &file);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let (masters, salt) = masters::resolve(path, file.masters.clone(), file.source.as_ref())
        .map_err(|e| ConfigErrors(vec![*e]))?;
    let RoutesFile {
        source,
        twins,
        masters: _,
        drop,
        jobs,
        mut backfill,
        journal,
        sinks,
        routes,
        unmatched,
    } = file;
    let routes = route::compile(path, routes, drop, unmatched.map(|u| u.value))?;
    let sink_lines = sinks
        .iter()
        .map(|(k, v)| (k.clone(), (v.referenced.line(), v.referenced.column())))
        .collect();
    let saltapi = source
        .as_ref()
        .and_then(|s| s.value.saltapi().cloned())
        .unwrap_or_default();
    if let Some(salt) = salt {
        if backfill.cachedir.is_none() {
            backfill.cachedir = Some(salt.cachedir);
        }
        backfill.master_job_cache = Some(salt.master_job_cache);
    }
    Ok(Config {
        // Checked above: it parses.
        source: source
            .and_then(|s| s.value.spec().and_then(|s| s.parse::<SourceSpec>().ok()))
            .map(|s| s.with_saltapi_settings(&saltapi)),
        saltapi,
        twins,
        masters,
        jobs,
        backfill,
        journal,
        sinks: sinks.into_iter().map(|(k, v)| (k, v.value)).collect(),
        sink_lines,
        redactor,
        routes,
    })
}

/// Loads `path` and builds every sink it defines.
pub fn load(path: &Path) -> Result<(Config, Vec<ConfiguredSink<Sink>>), ConfigErrors> {
    let config = load_file(path)?;
    let sinks = build_sinks(path, &config)?;
    Ok((config, sinks))
}

/// Loads `path` and checks every sink's settings without connecting anywhere.
pub fn check(path: &Path) -> Result<Config, ConfigErrors> {
    let config = load_file(path)?;
    each_sink(path, &config, |name, settings| {
        Sink::check_config(name, settings).map(|_| ())
    })?;
    Ok(config)
}

/// The source to read: `arg` (`--source`), else the routes file's
/// `source:`, else the master's default socket; a `saltapi:` source gets
/// the file's `source.saltapi` settings.
pub fn choose_source(arg: Option<SourceSpec>, config: &Config) -> SourceSpec {
    arg.or_else(|| config.source.clone())
        .unwrap_or_default()
        .with_saltapi_settings(&config.saltapi)
}
