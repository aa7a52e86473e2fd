//! Reading a Salt master's local job cache (`master_job_cache: local_cache`,
//! the default): the only file reading of the backfill.
//!
//! Layout, from `salt/returners/local_cache.py` and `salt/utils/jid.py`
//! (read in 3008.4 and 3006.29, the same in both): `<cachedir>/jobs/<h[:2]>/
//! <h[2:]>/` per job, `h` = the hex digest of the jid under the master's
//! `hash_type` (default sha256; `jid_dir`). In it: `jid` (the jid as text,
//! `prep_jid`), `.load.p` (msgpack: the published load, or for a `salt-call`
//! return the return's own load, `save_load`), `.minions.p` (msgpack list of
//! the targeted ids, `save_minions`), `.minions.<syndic id>.p` (those a
//! syndic reported), `nocache` (the job is not cached), and one folder per
//! minion with `return.p` (msgpack `{return, retcode, success}`, written
//! atomically, `returner`) and `out.p`. Salt keeps the first return of a
//! minion; a second one is logged and dropped.
//!
//! The master writes the cache (trusted); what a minion returned is inside
//! it (not trusted): every file read is bounded in bytes
//! ([`BackfillConfig::max_file_bytes`](super::BackfillConfig)), decoded with
//! the bus's own bounded msgpack-to-JSON walker, and a bad file is counted
//! and named in the log, never fatal. Nothing here writes: files are opened
//! read-only and directories only listed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};
use sha2::Digest;

/// One job as the cache has it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedJob {
    pub jid: String,
    /// `.load.p`, when readable and a map.
    pub load: Option<Map<String, Value>>,
    /// `.minions.p` and every `.minions.<syndic>.p`, merged.
    pub minions: Vec<String>,
    /// `(syndic id, its minions)` from `.minions.<syndic>.p`.
    pub syndic_minions: Vec<(String, Vec<String>)>,
    pub returns: Vec<CachedReturn>,
}

/// One minion's `return.p`.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedReturn {
    pub minion: String,
    /// `{return, retcode, success}` as Salt stored them.
    pub data: Map<String, Value>,
    /// The file's modification time: when the master stored the return.
    pub written: SystemTime,
}

/// What the backfill asks of a job cache (a fake in unit tests).
pub trait JobCacheRead: Send {
    /// The jobs whose folder changed at or after `since` (a minion's return
    /// folder made, the load or minion list written), oldest jid first, at
    /// most `max_jobs` of them (the newest kept).
    fn jobs_changed_since(&mut self, since: SystemTime, max_jobs: usize) -> Vec<CachedJob>;
    /// Job `jid`, if the cache has it.
    fn job(&mut self, jid: &str) -> Option<CachedJob>;
    /// Files that could not be read or decoded so far.
    fn bad_files(&self) -> u64;
    /// Minion `minion`'s return to job `jid` alone, if the cache has it
    /// (a trimmed return's completion, looked up until it is written).
    fn find_return(&mut self, jid: &str, minion: &str) -> Option<CachedReturn> {
        self.job(jid)?
            .returns
            .into_iter()
            .find(|r| r.minion == minion)
    }
}

/// The local job cache under a master's `cachedir`.
#[derive(Debug)]
pub struct LocalJobCache {
    jobs: PathBuf,
    hash_type: String,
    max_file_bytes: u64,
    bad_files: u64,
}

impl LocalJobCache {
    pub fn new(cachedir: &Path, hash_type: &str, max_file_bytes: u64) -> Self {
        LocalJobCache {
            jobs: cachedir.join("jobs"),
            hash_type: hash_type.to_owned(),
            max_file_bytes,
            bad_files: 0,
        }
    }

    /// Salt's `jid_dir`: `jobs/<h[:2]>/<h[2:]>`; `None` for a hash type
    /// saltbridge does not know (then jobs are found by listing only).
    fn jid_dir(&self, jid: &str) -> Option<PathBuf> {
        let hex = match self.hash_type.as_str() {
            "sha256" => crate::event::json::hex(&sha2::Sha256::digest(jid.as_bytes())),
            "sha512" => crate::event::json::hex(&sha2::Sha512::digest(jid.as_bytes())),
            "sha384" => crate::event::json::hex(&sha2::Sha384::digest(jid.as_bytes())),
            "sha224" => crate::event::json::hex(&sha2::Sha224::digest(jid.as_bytes())),
            _ => return None,
        };
        Some(self.jobs.join(&hex[..2]).join(&hex[2..]))
    }

    /// Counts and logs a bad file; the backfill goes on without it.
    fn bad(&mut self, path: &Path, why: &str) {
        self.bad_files += 1;
        tracing::warn!(path = %path.display(), bad_files = self.bad_files,
            "job cache: skipping a file that cannot be read: {why}");
    }

    /// The whole file, if it is at most `max_file_bytes`.
    fn read_bounded(&mut self, path: &Path) -> Option<Vec<u8>> {
        let file = match File::open(path) {
            Ok(f) => f,
            // Gone meanwhile (Salt's clean_old_jobs) or never written: not damage.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.bad(path, &e.to_string());
                return None;
            }
        };
        let mut bytes = Vec::new();
        match file.take(self.max_file_bytes + 1).read_to_end(&mut bytes) {
            Ok(n) if n as u64 > self.max_file_bytes => {
                let why = format!(
                    "larger than backfill.max_file_bytes ({})",
                    self.max_file_bytes
                );
                self.bad(path, &why);
                None
            }
            Ok(_) => Some(bytes),
            Err(e) => {
                self.bad(path, &e.to_string());
                None
            }
        }
    }

    /// One msgpack value from `path`, as JSON.
    fn read_msgpack(&mut self, path: &Path) -> Option<Value> {
        let bytes = self.read_bounded(path)?;
        let mut json = Vec::with_capacity(bytes.len() + 16);
        if let Err(e) = crate::decode::json::transcode(&bytes, &mut json) {
            self.bad(path, &format!("not msgpack: {e}"));
            return None;
        }
        match serde_json::from_slice(&json) {
            Ok(v) => Some(v),
            Err(e) => {
                self.bad(path, &format!("not JSON after transcoding: {e}"));
                None
            }
        }
    }

    /// Reads the job in folder `dir`; `jid` when the caller knows it.
    fn read_job(&mut self, dir: &Path, jid: Option<&str>) -> Option<CachedJob> {
        if dir.join("nocache").exists() {
            return None;
        }
        let jid = match jid {
            Some(j) => j.to_owned(),
            None => {
                let bytes = self.read_bounded(&dir.join("jid"))?;
                match String::from_utf8(bytes) {
                    Ok(j) if crate::salt::jid::is_bare_jid(j.trim()) => j.trim().to_owned(),
                    _ => {
                        self.bad(&dir.join("jid"), "not a job id");
                        return None;
                    }
                }
            }
        };
        let load = self
            .read_msgpack(&dir.join(".load.p"))
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            });
        let mut job = CachedJob {
            jid,
            load,
            ..CachedJob::default()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(_) => return Some(job),
        };
        let mut names: Vec<(String, bool)> = entries
            .flatten()
            .filter_map(|e| {
                let is_dir = e.file_type().ok()?.is_dir();
                Some((e.file_name().into_string().ok()?, is_dir))
            })
            .collect();
        names.sort();
        for (name, is_dir) in names {
            if is_dir {
                self.read_return(dir, &name, &mut job);
            } else if name == ".minions.p" {
                let ids = strings(self.read_msgpack(&dir.join(&name)));
                merge(&mut job.minions, &ids);
            } else if let Some(syndic) = name
                .strip_prefix(".minions.")
                .and_then(|s| s.strip_suffix(".p"))
            {
                let ids = strings(self.read_msgpack(&dir.join(&name)));
                merge(&mut job.minions, &ids);
                job.syndic_minions.push((syndic.to_owned(), ids));
            }
        }
        job.minions.sort();
        job.minions.dedup();
        Some(job)
    }

    fn read_return(&mut self, dir: &Path, minion: &str, job: &mut CachedJob) {
        let path = dir.join(minion).join("return.p");
        let written = match std::fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(t) => t,
            Err(_) => return,
        };
        match self.read_msgpack(&path) {
            Some(Value::Object(data)) => job.returns.push(CachedReturn {
                minion: minion.to_owned(),
                data,
                written,
            }),
            Some(_) => self.bad(&path, "not a map"),
            None => {}
        }
    }
}

impl JobCacheRead for LocalJobCache {
    fn jobs_changed_since(&mut self, since: SystemTime, max_jobs: usize) -> Vec<CachedJob> {
        let mut changed: Vec<PathBuf> = Vec::new();
        let tops = match std::fs::read_dir(&self.jobs) {
            Ok(t) => t,
            Err(e) => {
                // No jobs yet is not an error; anything else (permissions) is said.
                if e.kind() != std::io::ErrorKind::NotFound {
                    self.bad(&self.jobs.clone(), &e.to_string());
                }
                return Vec::new();
            }
        };
        for top in tops.flatten() {
            let Ok(finals) = std::fs::read_dir(top.path()) else {
                continue;
            };
            for f in finals.flatten() {
                let modified = f.metadata().and_then(|m| m.modified());
                if modified.is_ok_and(|m| m >= since) {
                    changed.push(f.path());
                }
            }
        }
        let mut jobs: Vec<CachedJob> = changed
            .iter()
            .filter_map(|d| self.read_job(d, None))
            .collect();
        jobs.sort_by(|a, b| a.jid.cmp(&b.jid));
        if jobs.len() > max_jobs {
            let cut = jobs.len() - max_jobs;
            tracing::warn!(
                skipped = cut,
                max_jobs,
                "job cache: more jobs changed during the gap than backfill.max_jobs; the oldest are not backfilled"
            );
            jobs.drain(..cut);
        }
        jobs
    }

    fn job(&mut self, jid: &str) -> Option<CachedJob> {
        let dir = self.jid_dir(jid)?;
        if !dir.is_dir() {
            return None;
        }
        self.read_job(&dir, Some(jid))
    }

    fn bad_files(&self) -> u64 {
        self.bad_files
    }

    /// Reads only `<jid dir>/<minion>/return.p` (not the whole job, which
    /// can have thousands of returns); `minion` is one path component.
    fn find_return(&mut self, jid: &str, minion: &str) -> Option<CachedReturn> {
        if !is_job_and_minion(jid, minion) {
            return None;
        }
        let dir = self.jid_dir(jid)?;
        if dir.join("nocache").exists() {
            return None;
        }
        let mut job = CachedJob::default();
        self.read_return(&dir, minion, &mut job);
        job.returns.pop()
    }
}

/// A bare jid and a minion id that is one plain path component: what
/// may name `<jid dir>/<minion>/` (a minion chooses its id).
pub(crate) fn is_job_and_minion(jid: &str, minion: &str) -> bool {
    let plain =
        !minion.is_empty() && !minion.contains(['/', '\0']) && minion != "." && minion != "..";
    plain && crate::salt::jid::is_bare_jid(jid)
}

/// The strings of a list (a minion list); anything else is empty.
fn strings(v: Option<Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Appends `ids`; the caller sorts and dedups once at the end.
fn merge(into: &mut Vec<String>, ids: &[String]) {
    into.extend_from_slice(ids);
}
