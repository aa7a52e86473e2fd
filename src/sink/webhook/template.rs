//! The templates of a webhook sink (url, method, header values, body),
//! compiled once when the sink is built, and the default JSON body.
//!
//! Templates are minijinja (Jinja2 syntax) over `Outgoing::template_context`:
//! `tag`, `data`, `route`, `key`, `received_at`, `source`. Undefined values
//! print as empty text, as in the routes' `dedup` keys; looking inside an
//! undefined value is an error, and the event is rejected. A text without
//! `{{`, `{%` or `{#` is used as is, and checked when the sink is built.
//! Besides minijinja's own filters (`tojson`, `default`, `join`, `urlencode`,
//! ...) the sink adds `failed_states`, `state_results` and `truncate`.

use std::borrow::Cow;

use minijinja::value::Serde;
use minijinja::{Environment, Value};

use crate::event::json::write_str;
use crate::outgoing::Outgoing;
use crate::salt::returns::{self as salt, StateResult};

/// A text that is either fixed or a compiled template (by name).
#[derive(Debug, Clone)]
pub enum Text {
    Static(String),
    Template(String),
}

/// True if `s` contains template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// A minijinja environment with the sink's filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Lenient);
    // Template names carry no extension, so nothing is auto-escaped.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("state_results", state_results_filter);
    env.add_filter("failed_states", failed_states_filter);
    env.add_filter("truncate", truncate_filter);
    env.add_filter("urlencode", urlencode_filter);
    env.set_formatter(url_formatter);
    env
}

/// In the `url` template every interpolated value is percent-encoded
/// (everything but `A-Z a-z 0-9 - _ . ~`), so that event data stays one
/// path segment, query value or fragment: an id of `../../admin?all=1#`
/// cannot rewrite the request, and a value of `.` or `..` (a dot segment
/// once parsed, encoded or not) is a render error: the event is rejected. `| safe` inserts a value as is (a whole
/// URL taken from the event, trusted); `| urlencode` is not encoded twice.
/// Other templates print values as they are.
fn url_formatter(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if state.name() != URL_TEMPLATE || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    let text = value.to_string();
    // `.` and `..` are left as they are by the encoding, and a URL parser
    // reads them (and `%2e`) as dot segments: `/minions/../x` is sent to
    // `/x`. Such a value cannot be encoded, so it is refused.
    if matches!(text.as_str(), "." | "..") {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("a value of `{text}` in the url would change its path"),
        ));
    }
    let mut encoded = String::new();
    percent_encode(&text, &mut encoded);
    out.write_str(&encoded)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
}

/// The name the sink compiles its `url` template under.
pub const URL_TEMPLATE: &str = "url";

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~` (RFC 3986's unreserved).
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Renders every template once over an empty event with chainable
/// undefined values, to find unknown filters, tests and functions (which
/// minijinja only reports when it meets them) before the first event does.
pub fn dry_run(
    env: &Environment<'static>,
    names: &[&str],
) -> Result<(), (String, minijinja::Error)> {
    let mut probe = env.clone();
    probe.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    let ctx = minijinja::context! {
        tag => "", data => Value::from(Serde(serde_json::json!({}))),
        route => "", key => "", received_at => "", source => "",
    };
    for name in names {
        let Ok(tpl) = probe.get_template(name) else {
            continue;
        };
        if let Err(e) = tpl.render(&ctx) {
            use minijinja::ErrorKind::*;
            if matches!(e.kind(), UnknownFilter | UnknownTest | UnknownFunction) {
                return Err(((*name).to_owned(), e));
            }
        }
    }
    Ok(())
}

/// Adds `source` to `env` as template `name`, or keeps it as fixed text.
pub fn compile(
    env: &mut Environment<'static>,
    name: &str,
    source: &str,
) -> Result<Text, minijinja::Error> {
    if !is_template(source) {
        return Ok(Text::Static(source.to_owned()));
    }
    env.add_template_owned(name.to_owned(), source.to_owned())?;
    Ok(Text::Template(name.to_owned()))
}

/// Renders `t`; the error is a one-line reason naming the template.
pub fn render<'a>(
    env: &Environment<'static>,
    t: &'a Text,
    ctx: &Value,
) -> Result<Cow<'a, str>, String> {
    match t {
        Text::Static(s) => Ok(Cow::Borrowed(s)),
        Text::Template(name) => env
            .get_template(name)
            .and_then(|tpl| tpl.render(ctx))
            .map(Cow::Owned)
            .map_err(|e| format!("template `{name}`: {e}")),
    }
}

fn states_of(ret: &serde_json::Value) -> Vec<StateResult> {
    salt::state_results(ret).unwrap_or_default()
}

/// `{{ data.return | state_results }}`: every state of a state run, in order,
/// as `{id, name, function, result, comment, changed, sls, run_num}`.
fn state_results_filter(ret: Serde<serde_json::Value>) -> Value {
    Value::from(Serde(states_of(&ret)))
}

/// `{{ data.return | failed_states }}`: the states whose result is false.
fn failed_states_filter(ret: Serde<serde_json::Value>) -> Value {
    let failed: Vec<StateResult> = states_of(&ret)
        .into_iter()
        .filter(|s| s.result == Some(false))
        .collect();
    Value::from(Serde(failed))
}

/// `{{ text | truncate(200) }}`: at most that many characters, `…` marking a cut.
fn truncate_filter(s: String, max: Option<usize>) -> String {
    salt::truncate(&s, max.unwrap_or(255))
}

/// `{{ data.fun | urlencode }}`: percent-encodes everything but
/// `A-Z a-z 0-9 - _ . ~`; a map becomes `k=v&k=v`.
fn urlencode_filter(v: Value) -> Value {
    let mut out = String::new();
    if v.kind() == minijinja::value::ValueKind::Map {
        if let Ok(keys) = v.try_iter() {
            for (i, k) in keys.enumerate() {
                if i > 0 {
                    out.push('&');
                }
                percent_encode(&k.to_string(), &mut out);
                out.push('=');
                let val = v.get_item(&k).unwrap_or_default();
                percent_encode(&val.to_string(), &mut out);
            }
        }
    } else if !v.is_undefined() && !v.is_none() {
        percent_encode(&v.to_string(), &mut out);
    }
    // Encoded already: the `url` template's formatter leaves it alone.
    Value::from_safe_string(out)
}

/// Appends the default body of one event:
/// `{"tag","data","route","key","received_at","source"}`, with `data` as
/// the decoder wrote it.
pub fn write_default_event(out: &mut Vec<u8>, o: &Outgoing) {
    let received = humantime::format_rfc3339_micros(o.event.received_at()).to_string();
    out.extend_from_slice(b"{\"tag\":");
    write_str(out, o.event.tag());
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(o.event.data_json().as_bytes());
    out.extend_from_slice(b",\"route\":");
    write_str(out, &o.route);
    out.extend_from_slice(b",\"key\":");
    write_str(out, o.key());
    out.extend_from_slice(b",\"received_at\":");
    write_str(out, &received);
    out.extend_from_slice(b",\"source\":");
    write_str(out, o.event.source());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_url(source: &str, data: serde_json::Value) -> String {
        let mut env = environment();
        let t = compile(&mut env, URL_TEMPLATE, source).unwrap();
        let ctx = minijinja::context! { data => Value::from(Serde(data)), tag => "a/b" };
        render(&env, &t, &ctx).unwrap().into_owned()
    }

    #[test]
    fn url_templates_escape_event_data() {
        let data =
            serde_json::json!({"id": "../../admin/delete?all=1#", "n": 7, "q": {"a b": "c&d"}});
        assert_eq!(
            render_url(
                "https://h/minions/{{ data.id }}/x?n={{ data.n }}",
                data.clone()
            ),
            "https://h/minions/..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23/x?n=7"
        );
        assert_eq!(
            render_url("https://h/?{{ data.q | urlencode }}", data.clone()),
            "https://h/?a%20b=c%26d"
        );
        assert_eq!(
            render_url(
                "{{ data.url | safe }}",
                serde_json::json!({"url": "https://h/a?b=c"})
            ),
            "https://h/a?b=c"
        );
        assert_eq!(render_url("https://h/{{ data.none }}", data), "https://h/");
        for dots in [".", ".."] {
            let mut env = environment();
            let t = compile(&mut env, URL_TEMPLATE, "https://h/minions/{{ data.id }}/x").unwrap();
            let data = serde_json::json!({ "id": dots });
            let ctx = minijinja::context! { data => Value::from(Serde(data)) };
            let e = render(&env, &t, &ctx).unwrap_err().to_string();
            assert!(e.contains("would change its path"), "{e}");
        }
        assert_eq!(
            render_url("https://h/{{ data.id }}", serde_json::json!({"id": "..."})),
            "https://h/..."
        );
    }
}
