//! Building what a routes file describes: the route table, its sinks and
//! its source, with every problem located in the file. Shared by
//! `validate`, `run` and `demo`.

use std::path::Path;

use crate::delivery::DeliverySettings;
use crate::route::{load_file, ConfigError, ConfigErrors, RouteTable};
use crate::sink::Sink;

/// A sink ready to start: its name, the sink, and its delivery settings.
pub struct ConfiguredSink<T> {
    pub name: String,
    pub sink: T,
    pub delivery: DeliverySettings,
}

/// Loads `path` and builds every sink it defines.
pub fn load(path: &Path) -> Result<(RouteTable, Vec<ConfiguredSink<Sink>>), ConfigErrors> {
    let table = load_file(path)?;
    let sinks = build_sinks(path, &table)?;
    Ok((table, sinks))
}

/// Loads `path` and checks every sink's settings without connecting anywhere.
pub fn check(path: &Path) -> Result<RouteTable, ConfigErrors> {
    let table = load_file(path)?;
    each_sink(path, &table, |name, settings| {
        Sink::check_config(name, settings).map(|_| ())
    })?;
    Ok(table)
}

/// Builds the sinks of `table`; errors point at the sink's line.
pub fn build_sinks(
    path: &Path,
    table: &RouteTable,
) -> Result<Vec<ConfiguredSink<Sink>>, ConfigErrors> {
    each_sink(path, table, Sink::from_config)
}

/// Splits each sink's delivery settings off, hands the rest to `make`.
pub fn each_sink<T>(
    path: &Path,
    table: &RouteTable,
    mut make: impl FnMut(&str, &serde_json::Value) -> Result<T, crate::sink::SinkConfigError>,
) -> Result<Vec<ConfiguredSink<T>>, ConfigErrors> {
    let mut built = Vec::new();
    let mut errors = Vec::new();
    for (name, settings) in table.sinks() {
        let (line, column) = table.sink_location(name).unwrap_or((0, 0));
        let located = |field: &str, message: String| ConfigError {
            line,
            column,
            ..ConfigError::new(path, None, field, message)
        };
        let mut settings = settings.clone();
        let delivery = match DeliverySettings::split_from(&mut settings) {
            Ok(d) => d,
            Err(e) => {
                errors.push(located(&format!("sinks.{name}"), e));
                continue;
            }
        };
        match make(name, &settings) {
            Ok(sink) => built.push(ConfiguredSink {
                name: name.clone(),
                sink,
                delivery,
            }),
            Err(e) => {
                let field = if e.field.is_empty() {
                    format!("sinks.{name}")
                } else {
                    format!("sinks.{name}.{}", e.field)
                };
                errors.push(located(&field, e.message));
            }
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The source to read: `arg` (`--source`), else the routes file's
/// `source:`, else the master's default socket.
pub fn choose_source(
    arg: Option<crate::source::SourceSpec>,
    table: &RouteTable,
) -> anyhow::Result<crate::source::SourceSpec> {
    use anyhow::Context;
    Ok(match (arg, table.source()) {
        (Some(s), _) => s,
        (None, Some(s)) => s.parse().context("source in the routes file")?,
        (None, None) => crate::source::SourceSpec::default(),
    })
}
