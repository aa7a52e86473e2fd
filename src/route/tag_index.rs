//! Finding, among thousands of tag globs, the few that match a tag, in time
//! that hardly grows with their number.
//!
//! A `globset::GlobSet` costs O(patterns) per tag once globs need its regex
//! strategy (`salt/job/*/ret/web-01` does): its pattern-set iteration walks
//! every slot. Measured with 10,000 routes, that made routing 10x slower
//! than with 10. Here each glob is filed under its most selective literal
//! part: the whole text when it has no wildcard (a hash lookup), else the
//! longer of its literal prefix and literal suffix, looked up in a hash map
//! for each distinct prefix (or suffix) length in use: a handful of lookups
//! per tag. Only the globs found that way are then matched, with
//! [`Fnmatch`]; globs with no literal end (`*ret*`) are always tried.

use std::collections::{BTreeSet, HashMap};

use crate::salt::Fnmatch;

/// Globs filed by a literal part, and the byte lengths of those parts.
#[derive(Debug, Clone, Default)]
struct ByLiteral {
    ids: HashMap<String, Vec<usize>>,
    lengths: Vec<usize>,
}

impl ByLiteral {
    fn new(entries: Vec<(String, usize)>) -> Self {
        let mut ids: HashMap<String, Vec<usize>> = HashMap::new();
        let mut lengths = BTreeSet::new();
        for (lit, id) in entries {
            lengths.insert(lit.len());
            ids.entry(lit).or_default().push(id);
        }
        ByLiteral {
            ids,
            lengths: lengths.into_iter().collect(),
        }
    }

    /// Ids filed under each literal that `part(len)` yields.
    fn lookup<'t>(&self, part: impl Fn(usize) -> Option<&'t str>, mut each: impl FnMut(usize)) {
        for &len in &self.lengths {
            if let Some(ids) = part(len).and_then(|p| self.ids.get(p)) {
                ids.iter().for_each(|&id| each(id));
            }
        }
    }
}

/// An index over globs; ids are positions in the list given to [`TagIndex::new`].
#[derive(Debug, Clone)]
pub struct TagIndex {
    globs: Vec<Fnmatch>,
    exact: HashMap<String, Vec<usize>>,
    prefixes: ByLiteral,
    suffixes: ByLiteral,
    always: Vec<usize>,
}

impl TagIndex {
    pub fn new(globs: Vec<Fnmatch>) -> TagIndex {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let (mut pre, mut suf, mut always) = (vec![], vec![], vec![]);
        for (id, g) in globs.iter().enumerate() {
            if g.is_literal() {
                exact.entry(g.as_str().to_owned()).or_default().push(id);
                continue;
            }
            let (p, s) = (g.literal_prefix(), g.literal_suffix());
            if p.is_empty() && s.is_empty() {
                always.push(id);
            } else if p.len() >= s.len() {
                pre.push((p, id));
            } else {
                suf.push((s, id));
            }
        }
        TagIndex {
            globs,
            exact,
            prefixes: ByLiteral::new(pre),
            suffixes: ByLiteral::new(suf),
            always,
        }
    }

    pub fn glob(&self, id: usize) -> &Fnmatch {
        &self.globs[id]
    }

    /// Appends the ids of every glob that matches `tag` (unsorted, no repeats).
    pub fn matches_into(&self, tag: &str, out: &mut Vec<usize>) {
        if let Some(ids) = self.exact.get(tag) {
            out.extend_from_slice(ids);
        }
        let mut check = |id: usize| {
            if self.globs[id].is_match(tag) {
                out.push(id);
            }
        };
        self.prefixes.lookup(|n| tag.get(..n), &mut check);
        self.suffixes.lookup(
            |n| tag.len().checked_sub(n).and_then(|at| tag.get(at..)),
            &mut check,
        );
        self.always.iter().for_each(|&id| check(id));
    }

    pub fn is_match(&self, tag: &str) -> bool {
        let mut out = Vec::new();
        self.matches_into(tag, &mut out);
        !out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_exactly_the_matching_globs() {
        let pats = [
            "salt/auth",
            "salt/job/*/ret/web-01",
            "salt/job/*",
            "*/start",
            "*ret*",
            "minion/refresh/*",
            "salt/auth",
        ];
        let idx = TagIndex::new(pats.iter().map(|p| Fnmatch::new(p)).collect());
        for tag in [
            "salt/auth",
            "salt/job/1/ret/web-01",
            "salt/minion/a/start",
            "minion/refresh/x",
            "other",
        ] {
            let mut got = Vec::new();
            idx.matches_into(tag, &mut got);
            got.sort();
            let want: Vec<usize> = (0..pats.len())
                .filter(|&i| Fnmatch::new(pats[i]).is_match(tag))
                .collect();
            assert_eq!(got, want, "{tag}");
        }
    }
}
