// Over 500 lines only with its tests: the predicate language (parser and evaluator) is about 420.
//! `match.where`: predicates over an event's data.
//!
//! A predicate is a map of `path: condition` entries (all must hold), a list
//! (all must hold), or `any: [...]`, `all: [...]`, `not: {...}`. A path is
//! dotted (`fun`, `return.retcode`), may index lists (`arg[0]`), quote keys
//! that contain dots (`return["file_|-/etc/motd_|-/etc/motd_|-managed"]`)
//! and use `*` for "any key or element" (`return.*.result`: some state's
//! result). A condition is a plain value (equals) or a map of operators:
//! `eq`, `ne`, `in`, `glob`, `regex`, `exists`, `gt`, `ge`, `lt`, `le`.
//!
//! Comparisons are loose the way YAML users expect: `retcode: 0` matches
//! `0` and `0.0`, `jid: 20261126135646965819` matches the string jid, and
//! numeric operators accept numeric strings. Globs and regexes are compiled
//! while the file is parsed, so a bad one is reported at its line.

use std::fmt;

use crate::salt::Fnmatch;
use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// A compiled predicate.
#[derive(Debug, Clone)]
pub enum Predicate {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    Field { path: Path, cond: Condition },
}

/// A compiled condition on one value.
#[derive(Debug, Clone)]
pub enum Condition {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Glob(Fnmatch),
    Regex(Regex),
    Exists(bool),
    Cmp(CmpOp, f64),
    /// Several operators in one map: all must hold.
    All(Vec<Condition>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// Operator names, for messages and "did you mean".
pub const OPERATORS: &[&str] = &[
    "eq", "ne", "in", "glob", "regex", "exists", "gt", "ge", "lt", "le",
];

/// A parsed path into the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Any,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut steps = Vec::new();
        let mut rest = text;
        let bad = |why: &str| Err(format!("path {text:?}: {why}"));
        if rest.is_empty() {
            return bad("empty");
        }
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = if let Some(quoted) = r.strip_prefix('"') {
                    match quoted.find("\"]") {
                        Some(i) => {
                            steps.push(Step::Key(quoted[..i].to_owned()));
                            i + 3
                        }
                        None => return bad("unclosed [\"...\"]"),
                    }
                } else {
                    let Some(i) = r.find(']') else {
                        return bad("unclosed [");
                    };
                    match &r[..i] {
                        "*" => steps.push(Step::Any),
                        n => match n.parse() {
                            Ok(n) => steps.push(Step::Index(n)),
                            Err(_) => return bad("[...] holds a number, * or a \"quoted key\""),
                        },
                    }
                    i + 1
                };
                rest = &r[end..];
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                match &rest[..end] {
                    "" => return bad("empty segment"),
                    "*" => steps.push(Step::Any),
                    k => steps.push(Step::Key(k.to_owned())),
                }
                rest = &rest[end..];
            }
            if let Some(r) = rest.strip_prefix('.') {
                if r.is_empty() {
                    return bad("ends with '.'");
                }
                rest = r;
            }
        }
        Ok(Path {
            text: text.to_owned(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The top-level key the path starts with, if it starts with one.
    pub fn first_key(&self) -> Option<&str> {
        match self.steps.first() {
            Some(Step::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Every value the path reaches (more than one through `*`).
    fn resolve<'v>(&self, data: &'v Value, out: &mut Vec<&'v Value>) {
        fn walk<'v>(v: &'v Value, steps: &[Step], out: &mut Vec<&'v Value>) {
            let Some((step, rest)) = steps.split_first() else {
                out.push(v);
                return;
            };
            match (step, v) {
                (Step::Key(k), Value::Object(m)) => {
                    if let Some(c) = m.get(k) {
                        walk(c, rest, out);
                    }
                }
                (Step::Index(i), Value::Array(a)) => {
                    if let Some(c) = a.get(*i) {
                        walk(c, rest, out);
                    }
                }
                (Step::Any, Value::Object(m)) => m.values().for_each(|c| walk(c, rest, out)),
                (Step::Any, Value::Array(a)) => a.iter().for_each(|c| walk(c, rest, out)),
                _ => {}
            }
        }
        walk(data, &self.steps, out);
    }
}

impl Predicate {
    /// Adds the top-level keys of the data this predicate reads to `keys`;
    /// false when it may read anything (a path starting with `*` or `[n]`).
    pub fn top_keys(&self, keys: &mut Vec<String>) -> bool {
        match self {
            Predicate::All(ps) | Predicate::Any(ps) => ps.iter().all(|p| p.top_keys(keys)),
            Predicate::Not(p) => p.top_keys(keys),
            Predicate::Field { path, .. } => match path.first_key() {
                Some(k) => {
                    keys.push(k.to_owned());
                    true
                }
                None => false,
            },
        }
    }

    /// True when the predicate holds for `data`.
    pub fn eval(&self, data: &Value) -> bool {
        self.explain(data, None)
    }

    /// Like [`eval`](Self::eval); pushes a line per leaf that held to `why`.
    pub fn explain(&self, data: &Value, mut why: Option<&mut Vec<String>>) -> bool {
        match self {
            Predicate::All(ps) => ps.iter().all(|p| p.explain(data, why.as_deref_mut())),
            Predicate::Any(ps) => ps.iter().any(|p| p.explain(data, why.as_deref_mut())),
            Predicate::Not(p) => !p.explain(data, None),
            Predicate::Field { path, cond } => {
                let mut found = Vec::new();
                path.resolve(data, &mut found);
                let held = cond.holds(&found);
                if held {
                    if let Some(w) = why {
                        w.push(format!("{} {}", path.as_str(), cond));
                    }
                }
                held
            }
        }
    }
}

impl Condition {
    /// Holds when some reached value satisfies it (`exists: false` and `ne`
    /// hold when none is reached).
    fn holds(&self, found: &[&Value]) -> bool {
        match self {
            Condition::Exists(want) => found.is_empty() != *want,
            Condition::Ne(v) => !found.iter().any(|f| loose_eq(f, v)),
            Condition::All(cs) => cs.iter().all(|c| c.holds(found)),
            _ => found.iter().any(|f| self.holds_one(f)),
        }
    }

    fn holds_one(&self, f: &Value) -> bool {
        match self {
            Condition::Eq(v) => loose_eq(f, v),
            Condition::In(vs) => vs.iter().any(|v| loose_eq(f, v)),
            Condition::Glob(g) => text_of(f).is_some_and(|t| g.is_match(t.as_ref())),
            Condition::Regex(r) => text_of(f).is_some_and(|t| r.is_match(t.as_ref())),
            Condition::Cmp(op, n) => number_of(f).is_some_and(|x| match op {
                CmpOp::Gt => x > *n,
                CmpOp::Ge => x >= *n,
                CmpOp::Lt => x < *n,
                CmpOp::Le => x <= *n,
            }),
            Condition::Exists(_) | Condition::Ne(_) | Condition::All(_) => self.holds(&[f]),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Eq(v) => write!(f, "== {v}"),
            Condition::Ne(v) => write!(f, "!= {v}"),
            Condition::In(vs) => write!(f, "in {}", Value::Array(vs.clone())),
            Condition::Glob(g) => write!(f, "matches glob {:?}", g.as_str()),
            Condition::Regex(r) => write!(f, "matches regex {:?}", r.as_str()),
            Condition::Exists(true) => write!(f, "exists"),
            Condition::Exists(false) => write!(f, "does not exist"),
            Condition::Cmp(op, n) => {
                let s = match op {
                    CmpOp::Gt => ">",
                    CmpOp::Ge => ">=",
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                };
                write!(f, "{s} {n}")
            }
            Condition::All(cs) => {
                let parts: Vec<String> = cs.iter().map(|c| c.to_string()).collect();
                write!(f, "{}", parts.join(" and "))
            }
        }
    }
}

fn text_of(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(b.to_string().into()),
        _ => None,
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Equality as a YAML author means it: numbers by value, a number against
/// a numeric string by text, everything else exactly.
fn loose_eq(data: &Value, want: &Value) -> bool {
    match (data, want) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            *s == n.to_string()
        }
        _ => data == want,
    }
}

/// Closest known name to `got`, for "did you mean".
pub fn did_you_mean<'a>(got: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(got, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

impl<'de> Deserialize<'de> for Predicate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PredicateVisitor)
    }
}

struct PredicateVisitor;

impl<'de> Visitor<'de> for PredicateVisitor {
    type Value = Predicate;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of `path: condition`, a list of them, or any/all/not")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Predicate, A::Error> {
        let mut all = Vec::new();
        while let Some(p) = seq.next_element::<Predicate>()? {
            all.push(p);
        }
        Ok(Predicate::All(all))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Predicate, A::Error> {
        let mut all = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let p = match key.as_str() {
                "any" => Predicate::Any(map.next_value::<Vec<Predicate>>()?),
                "all" => Predicate::All(map.next_value::<Vec<Predicate>>()?),
                "not" => Predicate::Not(Box::new(map.next_value::<Predicate>()?)),
                _ => {
                    let path = Path::parse(&key).map_err(de::Error::custom)?;
                    let cond = map.next_value::<Condition>()?;
                    Predicate::Field { path, cond }
                }
            };
            all.push(p);
        }
        Ok(match all.len() {
            1 => all.remove(0),
            _ => Predicate::All(all),
        })
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Condition::from_value(v).map_err(de::Error::custom)
    }
}

impl Condition {
    fn from_value(v: Value) -> Result<Condition, String> {
        if let Some(f) = v
            .as_f64()
            .filter(|f| v.is_f64() && f.fract() == 0.0 && f.abs() >= 9007199254740992.0)
        {
            return Err(format!(
                "the number {f} is too large to keep all its digits (a jid?): quote it, e.g. '20261126135646965819'"
            ));
        }
        let ops = match v {
            Value::Object(ops) => ops,
            Value::Array(_) => {
                return Err(
                    "a list is not a condition: for one of several values write `{in: [...]}`"
                        .into(),
                )
            }
            scalar => return Ok(Condition::Eq(scalar)),
        };
        let mut conds = Vec::new();
        for (op, arg) in ops {
            let number =
                |a: &Value| number_of(a).ok_or_else(|| format!("`{op}` needs a number, got {a}"));
            let text = |a: &Value| match a {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`{op}` needs a string, got {other}")),
            };
            conds.push(match op.as_str() {
                "eq" => Condition::Eq(arg),
                "ne" => Condition::Ne(arg),
                "in" => match arg {
                    Value::Array(vs) => Condition::In(vs),
                    other => return Err(format!("`in` needs a list, got {other}")),
                },
                "glob" => Condition::Glob(Fnmatch::new(&text(&arg)?)),
                "regex" => {
                    let r = text(&arg)?;
                    Condition::Regex(Regex::new(&r).map_err(|e| format!("bad regex {r:?}: {e}"))?)
                }
                "exists" => match arg {
                    Value::Bool(b) => Condition::Exists(b),
                    other => return Err(format!("`exists` needs true or false, got {other}")),
                },
                "gt" => Condition::Cmp(CmpOp::Gt, number(&arg)?),
                "ge" => Condition::Cmp(CmpOp::Ge, number(&arg)?),
                "lt" => Condition::Cmp(CmpOp::Lt, number(&arg)?),
                "le" => Condition::Cmp(CmpOp::Le, number(&arg)?),
                other => {
                    let hint = did_you_mean(other, OPERATORS)
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "unknown operator `{other}`, expected one of {}{hint}",
                        OPERATORS.join(", ")
                    ));
                }
            });
        }
        match conds.len() {
            0 => Err("an empty operator map; write a value, or e.g. `{exists: true}`".into()),
            1 => Ok(conds.remove(0)),
            _ => Ok(Condition::All(conds)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(yaml: &str) -> Predicate {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn paths() {
        let data = json!({"fun": "state.apply", "arg": ["web", {"test": true}],
            "return": {"a.b_|-x": {"result": true}, "c": {"result": false}}});
        let got = |path: &str| {
            let mut out = Vec::new();
            Path::parse(path).unwrap().resolve(&data, &mut out);
            out.into_iter().cloned().collect::<Vec<_>>()
        };
        assert_eq!(got("fun"), vec![json!("state.apply")]);
        assert_eq!(got("arg[0]"), vec![json!("web")]);
        assert_eq!(got("arg[1].test"), vec![json!(true)]);
        assert_eq!(got("return.*.result"), vec![json!(true), json!(false)]);
        assert_eq!(got("return[\"a.b_|-x\"].result"), vec![json!(true)]);
        assert!(got("nope.x").is_empty());
        for bad in ["", "a.", "a..b", "arg[x]", "a[\"b"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_and_combinators() {
        let ret = json!({"fun": "state.apply", "retcode": 2, "success": false, "jid": "20261126135646965819",
            "id": "web-01", "return": {"s1": {"result": true}, "s2": {"result": false}}});
        let cases = [
            ("fun: state.apply", true),
            ("{retcode: {gt: 0}}", true),
            ("{retcode: {ge: 2, lt: 3}}", true),
            ("{success: true}", false),
            ("{jid: '20261126135646965819'}", true),
            ("{retcode: '2'}", true),
            ("{id: {glob: 'web-*'}}", true),
            ("{id: {regex: '^db'}}", false),
            ("{fun: {in: [state.sls, state.apply]}}", true),
            ("{return.*.result: false}", true),
            ("{missing: {exists: false}}", true),
            ("{fun: {ne: test.ping}}", true),
            ("[{fun: state.apply}, {retcode: 0}]", false),
            ("{any: [{retcode: 0}, {success: false}]}", true),
            ("{not: {fun: state.apply}}", false),
        ];
        for (yaml, want) in cases {
            assert_eq!(p(yaml).eval(&ret), want, "{yaml}");
        }
    }

    #[test]
    fn explain_names_the_leaves_that_held() {
        let mut why = Vec::new();
        let held = p("{fun: state.apply, retcode: {gt: 0}}")
            .explain(&json!({"fun": "state.apply", "retcode": 1}), Some(&mut why));
        assert!(held);
        assert_eq!(why, vec!["fun == \"state.apply\"", "retcode > 0"]);
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        let err = |yaml: &str| {
            serde_saphyr::from_str::<Predicate>(yaml)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{retcode: {gtt: 0}}").contains("did you mean `gt`?"));
        assert!(err("{id: {regex: '('}}").contains("bad regex"));
        assert!(err("{fun: [a, b]}").contains("{in: [...]}"));
        assert!(err("{retcode: {gt: lots}}").contains("needs a number"));
        assert!(err("{jid: 20261126135646965819}").contains("quote it"));
    }
}
