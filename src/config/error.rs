//! Config errors that name the file, line, column and field, and say what
//! was expected. `validate` prints them and exits 78 (EX_CONFIG, as Vector).

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

/// One problem in a routes file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: u64,
    pub column: u64,
    /// Dotted path of the field, e.g. `routes[2].to[0]`; empty for the whole file.
    pub field: String,
    pub message: String,
    /// A suggestion, e.g. "did you mean `continue`?".
    pub hint: Option<String>,
    /// The offending lines, as the YAML parser rendered them.
    pub snippet: Option<String>,
}

impl ConfigError {
    pub fn new(
        file: &Path,
        loc: Option<Location>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: loc.map_or(0, |l| l.line()),
            column: loc.map_or(0, |l| l.column()),
            field: field.into(),
            message: message.into(),
            hint: None,
            snippet: None,
        }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

/// All the problems found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// An error at the line and column of `at`.
pub(crate) fn located<T>(
    path: &std::path::Path,
    at: &serde_saphyr::Spanned<T>,
    field: &str,
    message: impl Into<String>,
) -> ConfigError {
    ConfigError::new(path, Some(at.referenced), field, message)
}
