//! The Jinja templates of a Kafka sink: topic, key and extra headers.
//!
//! They are compiled once into one minijinja environment. The context is
//! [`Outgoing::template_context`] (`tag`, `data`, `route`, `key`,
//! `received_at`, `source`). minijinja has no Python string methods, yet topic
//! templates are naturally written `salt.{{ tag.split('/')[1] }}`, so the
//! handful that topic and key templates need (`split`, `rsplit`, `startswith`,
//! `endswith`, `lower`, `upper`, `strip`, `replace`) are provided here. A
//! template without `{` is a literal and is never rendered, so the event's
//! data is parsed only when some template reads it.

use minijinja::value::{from_args, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior};

use crate::outgoing::Outgoing;

/// One compiled template, or a literal string.
#[derive(Debug, Clone)]
pub enum Template {
    Literal(String),
    Jinja(String),
}

/// The compiled templates of one sink.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(string_methods);
        Templates { env }
    }

    /// Compiles `source` under `name`; a source without `{` stays a literal.
    pub fn add(&mut self, name: &str, source: &str) -> Result<Template, Error> {
        if !source.contains('{') {
            return Ok(Template::Literal(source.to_string()));
        }
        self.env
            .add_template_owned(name.to_string(), source.to_string())?;
        Ok(Template::Jinja(name.to_string()))
    }

    /// Renders `t`; `ctx` is made on first need and shared by the record's templates.
    pub fn render(
        &self,
        t: &Template,
        out: &Outgoing,
        ctx: &mut Option<Value>,
    ) -> Result<String, Error> {
        match t {
            Template::Literal(s) => Ok(s.clone()),
            Template::Jinja(name) => {
                let ctx = ctx.get_or_insert_with(|| out.template_context());
                self.env.get_template(name)?.render(&*ctx)
            }
        }
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

/// Python's `str` methods that topic and key templates use.
fn string_methods(
    _: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let Some(s) = value.as_str().filter(|_| value.kind() == ValueKind::String) else {
        return Err(Error::from(ErrorKind::UnknownMethod));
    };
    match method {
        "split" | "rsplit" => {
            let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
            let max = maxsplit.filter(|m| *m >= 0).map(|m| m as usize);
            Ok(Value::from(split(s, sep, max, method == "rsplit")))
        }
        "startswith" => {
            let (prefix,): (&str,) = from_args(args)?;
            Ok(Value::from(s.starts_with(prefix)))
        }
        "endswith" => {
            let (suffix,): (&str,) = from_args(args)?;
            Ok(Value::from(s.ends_with(suffix)))
        }
        "lower" => {
            let () = from_args(args)?;
            Ok(Value::from(s.to_lowercase()))
        }
        "upper" => {
            let () = from_args(args)?;
            Ok(Value::from(s.to_uppercase()))
        }
        "strip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            Ok(Value::from(match chars {
                Some(cs) => s.trim_matches(|c| cs.contains(c)),
                None => s.trim(),
            }))
        }
        "replace" => {
            let (from, to): (&str, &str) = from_args(args)?;
            Ok(Value::from(s.replace(from, to)))
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

/// `str.split` / `str.rsplit`: no separator splits on runs of whitespace.
fn split(s: &str, sep: Option<&str>, max: Option<usize>, from_right: bool) -> Vec<String> {
    let owned = |it: &mut dyn Iterator<Item = &str>| it.map(str::to_string).collect::<Vec<_>>();
    match (sep, max, from_right) {
        (None, None, _) => owned(&mut s.split_whitespace()),
        (None, Some(m), false) => {
            let mut parts = owned(&mut s.split_whitespace().take(m));
            let mut rest = s.trim_start();
            for p in &parts {
                rest = rest[p.len()..].trim_start();
            }
            if !rest.is_empty() {
                parts.push(rest.to_string());
            }
            parts
        }
        (None, Some(m), true) => {
            let mut parts = owned(&mut s.split_whitespace().rev().take(m));
            let mut rest = s.trim_end();
            for p in &parts {
                rest = rest[..rest.len() - p.len()].trim_end();
            }
            if !rest.is_empty() {
                parts.push(rest.to_string());
            }
            parts.reverse();
            parts
        }
        (Some(""), _, _) => vec![s.to_string()],
        (Some(sep), None, _) => owned(&mut s.split(sep)),
        (Some(sep), Some(m), false) => owned(&mut s.splitn(m + 1, sep)),
        (Some(sep), Some(m), true) => {
            let mut parts = owned(&mut s.rsplitn(m + 1, sep));
            parts.reverse();
            parts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;
    use serde_json::json;
    use std::sync::Arc;

    fn render(src: &str) -> String {
        let mut t = Templates::new();
        let tpl = t.add("t", src).unwrap();
        let ev = Event::synthetic(
            "salt/job/20261126135646965819/ret/web-01",
            json!({"id": "web-01", "fun": "state.apply"}),
            Arc::from("ipc:/run/salt"),
        );
        t.render(&tpl, &Outgoing::new(ev, "r"), &mut None).unwrap()
    }

    #[test]
    fn python_string_methods() {
        assert_eq!(render("salt.{{ tag.split('/')[1] }}"), "salt.job");
        assert_eq!(
            render("{{ tag.split('/', 2)[2] }}"),
            "20261126135646965819/ret/web-01"
        );
        assert_eq!(render("{{ tag.rsplit('/', 1)[1] }}"), "web-01");
        assert_eq!(
            render("{{ data.fun.replace('.', '_').upper() }}"),
            "STATE_APPLY"
        );
        assert_eq!(
            render("{{ 'y' if tag.startswith('salt/job/') else 'n' }}"),
            "y"
        );
        assert_eq!(render("{{ ' a  b '.split() | join(',') }}"), "a,b");
        assert_eq!(render("{{ 'a b c'.split(none, 1)[1] }}"), "b c");
        assert_eq!(render("{{ 'a b c'.rsplit(none, 1)[0] }}"), "a b");
        assert_eq!(render("{{ '--x--'.strip('-') }}"), "x");
        assert_eq!(render("{{ route }}/{{ source }}"), "r/ipc:/run/salt");
    }

    #[test]
    fn literal_is_not_compiled() {
        let mut t = Templates::new();
        assert!(matches!(
            t.add("t", "salt.job.ret").unwrap(),
            Template::Literal(_)
        ));
        assert!(t.add("bad", "{{ tag ").is_err());
    }

    #[test]
    fn missing_values_render_empty() {
        assert_eq!(render("x{{ data.nothing }}"), "x");
        assert_eq!(render("x{{ tag.split('/')[9] }}"), "x");
    }
}
