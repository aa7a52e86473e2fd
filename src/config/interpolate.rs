//! `${ENV_VAR}`, `${ENV_VAR:-default}` and `${file:/path}` in a routes
//! file, so that secrets stay out of it.
//!
//! Substitution happens on the text before YAML parsing, as Vector does, so
//! it works in every field, sinks included. A value must fit on one line
//! (a file's trailing newline is dropped), which keeps every line number
//! the parser reports true. `$${` writes a literal `${`. Quote a
//! placeholder whose value may hold YAML punctuation: `url: "${HOOK_URL}"`.

/// A placeholder that could not be filled; `line` and `column` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Replaces every placeholder in `text`; reports every one that fails.
pub fn interpolate(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<String, Vec<InterpolationError>> {
    interpolate_tracked(text, env, read_file).map(|(text, _)| text)
}

/// [`interpolate`], also returning a [`Redactor`] that turns every
/// substituted value back into its placeholder, for errors.
pub fn interpolate_tracked(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
    read_file: impl Fn(&str) -> std::io::Result<String>,
) -> Result<(String, Redactor), Vec<InterpolationError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut redactor = Redactor::default();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 1u64;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            col += rest[..i].chars().count() as u64;
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = t;
                col += 3;
                continue;
            }
            let Some(body) = tail.strip_prefix("${") else {
                out.push('$');
                rest = &tail[1..];
                col += 1;
                continue;
            };
            let err = |message: String| InterpolationError {
                line: n as u64 + 1,
                column: col,
                message,
            };
            let Some(end) = body.find('}') else {
                errors.push(err("unclosed `${`".into()));
                out.push_str(tail);
                rest = "";
                break;
            };
            let name = &body[..end];
            let value = lookup(name, &env, &read_file).map_err(err);
            match value {
                Ok(v) if v.contains('\n') => {
                    errors.push(err(format!("`${{{name}}}`: the value spans several lines")))
                }
                Ok(v) => {
                    let placeholder = &tail[..3 + end];
                    let out_col = out[out.rfind('\n').map_or(0, |i| i + 1)..].chars().count();
                    redactor.add(n as u64 + 1, out_col as u64 + 1, &v, placeholder);
                    out.push_str(&v);
                }
                Err(e) => errors.push(e),
            }
            col += 3 + body[..end].chars().count() as u64;
            rest = &body[end + 1..];
        }
        out.push_str(rest);
    }
    if errors.is_empty() {
        Ok((out, redactor))
    } else {
        Err(errors)
    }
}

/// The value of `${name}` (`VAR`, `VAR:-default` or `file:/path`), or
/// what is wrong with it.
fn lookup(
    name: &str,
    env: &impl Fn(&str) -> Option<String>,
    read_file: &impl Fn(&str) -> std::io::Result<String>,
) -> Result<String, String> {
    let (name, default) = match name.split_once(":-") {
        Some((n, d)) if !n.starts_with("file:") => (n, Some(d)),
        _ => (name, None),
    };
    if let Some(path) = name.strip_prefix("file:") {
        read_file(path)
            .map(|v| v.strip_suffix('\n').map(str::to_owned).unwrap_or(v))
            .map_err(|e| format!("`${{{name}}}`: cannot read {path}: {e}"))
    } else if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Err(format!(
            "`${{{name}}}`: expected ${{ENV_VAR}} or ${{file:/path}}"
        ))
    } else {
        env(name)
            .or_else(|| default.map(str::to_owned))
            .ok_or_else(|| {
                format!("environment variable {name} is not set (used as `${{{name}}}`)")
            })
    }
}

/// One substitution: where its value starts in the substituted text
/// (1-based line and column), the value, and the placeholder as written.
#[derive(Clone, PartialEq, Eq)]
struct Substitution {
    line: u64,
    column: u64,
    value: String,
    placeholder: String,
}

/// Every value `interpolate` put into the text, so that errors can show
/// the file as written: a `${TOKEN}` stays `${TOKEN}` in a message, a
/// snippet and a column, whatever the token is.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    subs: Vec<Substitution>,
}

/// Never prints the values.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.subs.len())
    }
}

impl Redactor {
    fn add(&mut self, line: u64, column: u64, value: &str, placeholder: &str) {
        self.subs.push(Substitution {
            line,
            column,
            value: value.to_owned(),
            placeholder: placeholder.to_owned(),
        });
    }

    /// `text` with every substituted value replaced by its placeholder
    /// (the longest value first where several start at one place).
    pub fn redact(&self, text: &str) -> String {
        let mut values: Vec<&Substitution> =
            self.subs.iter().filter(|s| !s.value.is_empty()).collect();
        if values.is_empty() {
            return text.to_owned();
        }
        values.sort_by_key(|s| std::cmp::Reverse(s.value.len()));
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while let Some(c) = rest.chars().next() {
            for s in &values {
                if let Some(after) = rest.strip_prefix(s.value.as_str()) {
                    out.push_str(&s.placeholder);
                    rest = after;
                    continue 'scan;
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }

    /// The column in the file as written of `column` (1-based) on `line`
    /// of the substituted text.
    pub fn column(&self, line: u64, column: u64) -> u64 {
        let mut shift: i64 = 0;
        for s in self
            .subs
            .iter()
            .filter(|s| s.line == line && s.column < column)
        {
            let value = s.value.chars().count() as i64;
            let written = s.placeholder.chars().count() as i64;
            if column < s.column + value as u64 {
                // Inside the value: point at its placeholder.
                return (s.column as i64 + shift).max(1) as u64;
            }
            shift += written - value;
        }
        (column as i64 + shift).max(1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, Vec<InterpolationError>> {
        interpolate(
            text,
            |k| (k == "TOKEN").then(|| "s3cret".to_owned()),
            |p| {
                if p == "/run/secret" {
                    Ok("from-file\n".into())
                } else {
                    Err(std::io::Error::other("no such file"))
                }
            },
        )
    }

    #[test]
    fn env_file_and_escape() {
        assert_eq!(
            run("a: ${TOKEN}\nb: ${file:/run/secret}\nc: $${TOKEN} $5\n").unwrap(),
            "a: s3cret\nb: from-file\nc: ${TOKEN} $5\n"
        );
        assert_eq!(
            run("a: ${NOPE:-http://x:1/y} ${TOKEN:-z}").unwrap(),
            "a: http://x:1/y s3cret"
        );
    }

    #[test]
    fn redactor_shows_the_file_as_written() {
        let (text, r) = interpolate_tracked(
            "a: ${TOKEN} x\nb: [${TOKEN}, ${file:/run/secret}] y\n",
            |k| (k == "TOKEN").then(|| "s3cret".to_owned()),
            |_| Ok("from-file\n".into()),
        )
        .unwrap();
        assert_eq!(text, "a: s3cret x\nb: [s3cret, from-file] y\n");
        assert_eq!(
            r.redact("bad: \"s3cret\" and from-file"),
            "bad: \"${TOKEN}\" and ${file:/run/secret}"
        );
        assert!(!format!("{r:?}").contains("s3cret"));
        // `y` is at column 24 substituted, 36 as written.
        assert_eq!(r.column(2, 24), 36);
        assert_eq!(r.column(2, 6), 5);
        assert_eq!(r.column(2, 8), 5);
        assert_eq!(r.column(1, 1), 1);
    }

    #[test]
    fn errors_have_positions() {
        let e = run("x: 1\nurl: https://h/${NOPE}/${TOKEN}/${file:/nope}\n").unwrap_err();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].line, e[0].column), (2, 16));
        assert!(e[0].message.contains("NOPE is not set"));
        assert_eq!((e[1].line, e[1].column), (2, 33));
        assert!(run("a: ${bad name}").unwrap_err()[0]
            .message
            .contains("expected"));
    }
}
