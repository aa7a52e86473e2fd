//! Parsing only the part of an event's data that the `where` predicates read.
//!
//! Routing a job return through `where: {success: true}` used to parse its
//! whole data into a `serde_json::Value`: measured with callgrind on 300 B
//! job returns, that was a third of saltbridge's instructions per event
//! (`scripts/bench`, docs/benchmarks.md). Most predicates read a few
//! top-level keys (`fun`, `retcode`, `success`, `return...`), so the table
//! collects those keys once and, per event, builds an object holding only
//! them: the other values are skipped by the JSON scanner without being
//! allocated. A predicate whose path starts with `*` or `[n]` needs all the
//! data, and then the table uses [`crate::event::Event::data`] as before.
//! The Kafka sink's default record key (`id`, `jid`) is read the same way.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json::write_str;

/// The top-level keys of the data that some predicate reads.
#[derive(Debug, Clone, Default)]
pub struct WantedKeys(Vec<String>);

impl WantedKeys {
    pub fn new(mut keys: Vec<String>) -> WantedKeys {
        keys.sort_unstable();
        keys.dedup();
        WantedKeys(keys)
    }

    fn wants(&self, key: &str) -> bool {
        self.0.iter().any(|k| k == key)
    }

    /// The data as JSON text, reduced to the wanted top-level keys. Data
    /// that is not an object is parsed whole (the predicates see what they
    /// would have seen). `text` is valid JSON (an `Event`'s data), so an
    /// error cannot happen; `Null` stands in, as in `Event::data`.
    pub fn parse(&self, text: &str) -> Value {
        let mut de = serde_json::Deserializer::from_str(text);
        Picked(self).deserialize(&mut de).unwrap_or(Value::Null)
    }
}

struct Picked<'k>(&'k WantedKeys);

impl<'de> DeserializeSeed<'de> for Picked<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Picked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.wants(&key) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(out))
    }

    // Anything but an object is kept whole.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        serde::Deserialize::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// The raw JSON text of the top-level members of the object `text` named in
/// `keys`, borrowed from `text`, in the order of `keys`; `None` when `text` is
/// not an object. A repeated key gives its last value, as a parse into a
/// `Value` keeps. The other members are skipped without being allocated, and
/// so are the wanted ones: the caller parses only the values it reads (the
/// job tracker, `jobs::classify`, reads a 5 KB state return's `return` only
/// for a job it follows).
pub fn raw_members<'t, const N: usize>(
    text: &'t str,
    keys: &[&str; N],
) -> Option<[Option<&'t RawValue>; N]> {
    let mut de = serde_json::Deserializer::from_str(text);
    RawMembers(keys).deserialize(&mut de).ok()
}

struct RawMembers<'k, const N: usize>(&'k [&'k str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for RawMembers<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for RawMembers<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; N];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.0.iter().position(|k| *k == key) {
                Some(i) => out[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// `data_json` without its top-level members named in `keys`, the others
/// byte for byte in their order. Borrowed when there is none of them (or
/// the text is not an object). What a master adds to data it fires again
/// (`__peer_id` of a cluster copy, `_stamp` of a syndic's relayed copy) is
/// left out this way, so a copy and its original compare equal.
pub fn without_members<'a>(data_json: &'a str, keys: &[&str]) -> Cow<'a, str> {
    if !keys.iter().any(|k| data_json.contains(k)) {
        return Cow::Borrowed(data_json);
    }
    let Some(members) = object_members(data_json) else {
        return Cow::Borrowed(data_json);
    };
    let cut = |k: &String| keys.contains(&k.as_str());
    if !members.iter().any(|(k, _)| cut(k)) {
        return Cow::Borrowed(data_json);
    }
    let mut out = Vec::with_capacity(data_json.len());
    out.push(b'{');
    let kept = members.iter().filter(|(k, _)| !cut(k));
    for (i, (k, v)) in kept.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, k);
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
    // Keys are written by the JSON writer and values copied from valid JSON.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| data_json.to_owned()))
}

/// The members of a JSON object text in order, values unparsed; `None` if
/// the text is not an object.
pub fn object_members(text: &str) -> Option<Vec<(String, &RawValue)>> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Members).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_the_wanted_keys() {
        let keys = WantedKeys::new(vec!["success".into(), "return".into(), "success".into()]);
        let text = r#"{"id":"m\"1","success":true,"return":{"a":{"result":false}},"fun":"x","n":[1,{"b":2}]}"#;
        assert_eq!(
            keys.parse(text),
            json!({"success": true, "return": {"a": {"result": false}}})
        );
    }

    /// Routing with the partial parse decides as routing on the whole data
    /// does (`explain` mode always uses the whole data).
    #[test]
    fn routes_as_the_whole_data_would() {
        use crate::event::Event;
        use std::time::Instant;
        let yaml = r#"
sinks:
  a: {type: blackhole}
  b: {type: blackhole}
  c: {type: blackhole}
routes:
  - {name: ok, match: {tag: "t/*", where: {success: true}}, to: [a], continue: true}
  - {name: failed, match: {tag: "t/*", where: {any: [{retcode: {gt: 0}}, {return.*.result: false}]}}, to: [b], continue: true}
  - {name: absent, match: {tag: "t/*", where: {not: {fun: {exists: true}}}}, to: [c]}
"#;
        let mut table = crate::config::load_str(std::path::Path::new("r.yaml"), yaml, |_| None)
            .unwrap()
            .routes;
        let datas = [
            json!({"success": true, "retcode": 0, "fun": "x"}),
            json!({"success": false, "retcode": 2, "return": {"s": {"result": true}}}),
            json!({"id": "m", "return": {"s1": {"result": true}, "s2": {"result": false}}}),
            json!({"success": "true", "retcode": "1"}),
            json!([{"success": true}]),
            json!("text"),
            json!({}),
        ];
        let now = Instant::now();
        let mut outcomes = std::collections::BTreeSet::new();
        for data in datas {
            let ev = || Event::synthetic("t/1", data.clone(), "test".into());
            // A fresh event each time: `synthetic` events come parsed, so
            // drop that by going through the JSON text.
            let fresh = || {
                let e = ev();
                Event::new(
                    e.tag().to_owned(),
                    crate::event::JsonText::trusted(e.data_json().to_owned()),
                    e.received_at(),
                    "test".into(),
                    None,
                )
            };
            let fast = table.route(&fresh(), now, false).sinks;
            let whole = table.route(&fresh(), now, true).sinks;
            assert_eq!(fast, whole, "{data}");
            outcomes.insert(fast);
        }
        // The events do take different ways: the comparison is not vacuous.
        assert!(outcomes.len() >= 3, "{outcomes:?}");
    }

    #[test]
    fn raw_members_borrow_the_wanted_values_last_one_wins() {
        let text = r#"{"a": {"x": [1, 2]}, "b\u0022": "q", "c": 1, "a": "again", "d": null}"#;
        let [a, quote, c, missing] = raw_members(text, &["a", "b\"", "c", "z"]).unwrap();
        assert_eq!(a.map(RawValue::get), Some(r#""again""#));
        assert_eq!(quote.map(RawValue::get), Some(r#""q""#));
        assert_eq!(c.map(RawValue::get), Some("1"));
        assert!(missing.is_none());
        assert!(raw_members("[1]", &["a"]).is_none());
        assert!(raw_members("\"a\"", &["a"]).is_none());
        assert!(raw_members("{}", &["a"]).is_some_and(|[a]| a.is_none()));
    }

    #[test]
    fn data_that_is_not_an_object_stays_whole() {
        let keys = WantedKeys::new(vec!["fun".into()]);
        assert_eq!(
            keys.parse(r#"[1,"a",{"fun":2}]"#),
            json!([1, "a", {"fun": 2}])
        );
        assert_eq!(keys.parse("\"text\""), json!("text"));
        assert_eq!(keys.parse("null"), Value::Null);
    }
}
