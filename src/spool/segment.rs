//! Segment files: a spool is a directory of `<first seq>.seg` files, each a
//! run of records. Naming by first sequence number makes the order and
//! every record's number follow from the file names and record counts, so
//! nothing else has to be kept in step with them.

use std::io;
use std::path::{Path, PathBuf};

/// One segment file as the spool sees it.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Sequence number of its first record.
    pub first: u64,
    /// Records in it (valid ones, for a scanned file).
    pub records: u64,
    /// Bytes in it.
    pub bytes: u64,
    /// Shared: the reader copies a segment at each look-up.
    pub path: std::sync::Arc<Path>,
}

impl Segment {
    /// One past its last record's sequence number.
    pub fn end(&self) -> u64 {
        self.first + self.records
    }
}

pub fn file_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// The segment files in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}
