//! Text from outside (event data, tags, a receiver's answer) on a log line,
//! escaped: a newline or an ANSI escape in a minion's tag must not forge
//! a second log line or repaint a terminal. Control characters are written
//! as Rust escapes (`\n`, `\u{1b}`), everything else as is. [`fields`]
//! does it for every field of every log line, so no call site has to
//! remember.

use std::fmt;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::Writer;

/// The log line's fields (`message` first, then `key=value`), each value
/// with its control characters escaped: one event, one line.
pub fn fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|w: &mut Writer<'_>, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", Escaped(&text))
        } else {
            write!(w, "{}={}", field.name(), Escaped(&text))
        }
    })
    .delimited(" ")
}

/// Displays the text with its control characters escaped.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| c.is_control()) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_default())?;
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            Escaped("a\nINFO forged\r\u{1b}[2J\tü").to_string(),
            "a\\nINFO forged\\r\\u{1b}[2J\\tü"
        );
        assert_eq!(Escaped("plain/tag").to_string(), "plain/tag");
    }
}
