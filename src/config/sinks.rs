//! The sinks a routes file defines: each one's delivery settings split off
//! and the rest handed to the sink, every problem located at the sink's line.

use std::path::Path;

use super::error::{ConfigError, ConfigErrors};
use super::Config;
use crate::delivery::DeliverySettings;
use crate::route::predicate::did_you_mean;
use crate::sink::Sink;

/// A sink ready to start: its name, the sink, and its delivery settings.
pub struct ConfiguredSink<T> {
    pub name: String,
    pub sink: T,
    pub delivery: DeliverySettings,
}

/// Builds the sinks of `config`; errors point at the sink's line.
pub fn build_sinks(
    path: &Path,
    config: &Config,
) -> Result<Vec<ConfiguredSink<Sink>>, ConfigErrors> {
    each_sink(path, config, Sink::from_config)
}

/// Splits each sink's delivery settings off, hands the rest to `make`.
pub fn each_sink<T>(
    path: &Path,
    config: &Config,
    mut make: impl FnMut(&str, &serde_json::Value) -> Result<T, crate::sink::SinkConfigError>,
) -> Result<Vec<ConfiguredSink<T>>, ConfigErrors> {
    let mut built = Vec::new();
    let mut errors = Vec::new();
    for (name, settings) in &config.sinks {
        let (line, column) = config.sink_location(name).unwrap_or((0, 0));
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
                let hint = sink_hint(&e.message);
                errors.push(located(&field, e.message).with_hint(hint));
            }
        }
    }
    if errors.is_empty() {
        Ok(built)
    } else {
        Err(config.redact(ConfigErrors(errors)))
    }
}

/// "did you mean" for a sink's misspelt field or value, from serde's own
/// message: "unknown field `urll`, expected one of `url`, ..." (and the
/// same for an unknown variant such as a preset or a format).
fn sink_hint(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (got, rest) = rest.split_once('`')?;
    let known: Vec<&str> = rest
        .split_once("expected ")?
        .1
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    did_you_mean(got, &known).map(|k| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::sink_hint;

    #[test]
    fn misspelt_sink_fields_and_values_get_a_hint() {
        let m = "unknown field `urll`, expected one of `type`, `url`, `method`";
        assert_eq!(sink_hint(m).as_deref(), Some("did you mean `url`?"));
        let m =
            "unknown variant `teams_conector`, expected one of `slack`, `teams`, `teams_connector`";
        assert_eq!(
            sink_hint(m).as_deref(),
            Some("did you mean `teams_connector`?")
        );
        assert_eq!(sink_hint("unknown field `zzzzzz`, expected `url`"), None);
        assert_eq!(sink_hint("must not be empty"), None);
    }
}
