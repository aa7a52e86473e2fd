//! Events rebuilt from the job cache (pure): the job's announcement, for
//! the job tracker only, and each minion's return, routed like a bus return.
//!
//! The cache keeps less than the bus event had: a return is stored as
//! `{return, retcode, success}` (`local_cache.returner`), so `fun` and
//! `fun_args` come from the job's load, `id` and `jid` from the folder, and
//! `_stamp` is when the master wrote the file. A return's idempotency key
//! is made of its tag alone (`Event::idempotency_key`), so the rebuilt
//! return has the key the bus event had.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::cache::{CachedJob, CachedReturn};
use crate::event::{Event, Provenance};

/// `salt/job/<jid>/new` from the job's load and minion list, when the load
/// is a published job's (it has `fun` and `tgt`); a `salt-call` return's
/// load (it has `return`) announces nothing.
pub fn announcement(
    job: &CachedJob,
    provenance: &Arc<Provenance>,
    source: &Arc<str>,
) -> Option<Event> {
    let load = job.load.as_ref()?;
    if load.contains_key("return") || !load.contains_key("fun") || !load.contains_key("tgt") {
        return None;
    }
    let mut data = Map::new();
    data.insert("jid".into(), job.jid.clone().into());
    for key in ["fun", "arg", "tgt", "tgt_type", "user"] {
        data.insert(key.into(), load.get(key).cloned().unwrap_or(Value::Null));
    }
    let minions = job.minions.iter().cloned().map(Value::from).collect();
    data.insert("minions".into(), Value::Array(minions));
    if let Some(stamp) = jid_stamp(&job.jid) {
        data.insert("_stamp".into(), stamp.into());
    }
    let mut ev = Event::synthetic(
        format!("salt/job/{}/new", job.jid),
        Value::Object(data),
        source.clone(),
    );
    ev.set_provenance(provenance.clone());
    Some(ev)
}

/// `salt/job/<jid>/ret/<minion>` from a cached return.
pub fn return_event(
    job: &CachedJob,
    ret: &CachedReturn,
    provenance: &Arc<Provenance>,
    source: &Arc<str>,
) -> Event {
    let load = job.load.as_ref();
    let field = |k: &str| load.and_then(|l| l.get(k)).cloned();
    let mut data = Map::new();
    data.insert("fun".into(), field("fun").unwrap_or(Value::Null));
    let args = field("arg").or_else(|| field("fun_args"));
    data.insert("fun_args".into(), args.unwrap_or(Value::Array(Vec::new())));
    data.insert("id".into(), ret.minion.clone().into());
    data.insert("jid".into(), job.jid.clone().into());
    for key in ["return", "retcode", "success"] {
        if let Some(v) = ret.data.get(key) {
            data.insert(key.into(), v.clone());
        }
    }
    data.insert("_stamp".into(), stamp(ret.written).into());
    let tag = format!("salt/job/{}/ret/{}", job.jid, ret.minion);
    let mut ev = Event::synthetic(tag, Value::Object(data), source.clone());
    ev.set_provenance(provenance.clone());
    ev
}

/// A time as Salt stamps events: ISO 8601, UTC, microseconds, `+00:00`.
pub fn stamp(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_micros(t).to_string();
    format!("{}+00:00", s.trim_end_matches('Z'))
}

/// When job `jid` was published: a jid is `%Y%m%d%H%M%S%f` in UTC
/// (`salt.utils.jid.gen_jid`).
pub fn jid_time(jid: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(&jid_stamp(jid)?).ok()
}

fn jid_stamp(jid: &str) -> Option<String> {
    let d = jid.get(..20)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}T{}:{}:{}.{}",
        &d[..4],
        &d[4..6],
        &d[6..8],
        &d[8..10],
        &d[10..12],
        &d[12..14],
        &d[14..20]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_jid_is_its_publication_time_in_utc() {
        let t = jid_time("20261201213015123456").unwrap();
        let secs = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(secs.as_secs(), 1_796_160_615);
        assert_eq!(secs.subsec_micros(), 123_456);
        assert_eq!(jid_time("req"), None);
        assert_eq!(
            stamp(UNIX_EPOCH + Duration::from_micros(1)),
            "1970-01-01T00:00:00.000001+00:00"
        );
    }
}
