//! Fuzzes the routes file: any bytes through substitution (`${VAR}`,
//! `${file:...}`), parsing, checking, route compilation and every sink's
//! own checks, as `saltbridge validate` does. It must never panic; every
//! error names a line or a field; and no error shows a substituted value
//! (the stand-in secret below) unless the file itself spells it out.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use saltbridge::config::{self, ConfigErrors};
use saltbridge::sink::Sink;

/// What every `${VAR}` and `${file:...}` gives: a secret.
const SECRET: &str = "zq7-secret-f3a";

fn check_errors(text: &str, errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "an error result holds an error");
    for e in &errors.0 {
        assert!(
            e.line > 0 || !e.field.is_empty(),
            "an error names neither a line nor a field: {e:?}"
        );
        if !text.contains(SECRET) {
            let shown = format!("{e}");
            assert!(
                !shown.contains(SECRET),
                "a substituted value in an error: {shown}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // A routes file is read as UTF-8: anything else is refused on reading.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("routes.yaml");
    let env = |_: &str| Some(SECRET.to_owned());
    let read_file = |_: &str| Ok(format!("{SECRET}\n"));
    match config::load_str_with(path, text, env, read_file) {
        Err(errors) => check_errors(text, &errors),
        Ok(cfg) => {
            let sinks = config::each_sink(path, &cfg, |name, settings| {
                Sink::check_config(name, settings)
            });
            if let Err(errors) = sinks {
                check_errors(text, &errors);
            }
        }
    }
});
