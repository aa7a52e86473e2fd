//! Tag globs for `tail --tag`: a set of fnmatch globs (see [`Fnmatch`]),
//! indexed so that many of them cost little more than one.

use super::tag_index::TagIndex;
use crate::salt::Fnmatch;

/// A set of compiled tag globs.
#[derive(Debug, Clone)]
pub struct TagGlobs {
    index: TagIndex,
}

impl TagGlobs {
    /// Compiles `patterns`; an empty list matches nothing. Every string is a
    /// valid fnmatch pattern, so this cannot fail.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        TagGlobs {
            index: TagIndex::new(patterns.iter().map(|p| Fnmatch::new(p.as_ref())).collect()),
        }
    }

    pub fn is_match(&self, tag: &str) -> bool {
        self.index.is_match(tag)
    }

    /// Indexes (into the patterns given to [`TagGlobs::new`]) of every glob that matches, ascending.
    pub fn matches(&self, tag: &str) -> Vec<usize> {
        let mut out = Vec::new();
        self.index.matches_into(tag, &mut out);
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, tag: &str) -> bool {
        TagGlobs::new(&[p]).is_match(tag)
    }

    #[test]
    fn fnmatch_semantics() {
        assert!(m(
            "salt/job/*/ret/*",
            "salt/job/20261126135646965819/ret/web-01"
        ));
        assert!(m("salt/*", "salt/job/1/ret/a/b"), "* crosses /");
        assert!(m("salt/job/?/new", "salt/job/1/new"));
        assert!(!m("salt/job/?/new", "salt/job/12/new"));
        assert!(m("minion/refresh/[ab]*", "minion/refresh/alpha"));
        assert!(!m("minion/refresh/[!ab]*", "minion/refresh/alpha"));
        assert!(m(r"a\b", r"a\b"), "backslash is literal");
        assert!(!m("salt/job", "salt/job/1"), "anchored at both ends");
        assert!(!m("salt/**/new", "salt/new"), "** is just *");
    }

    #[test]
    fn several_globs() {
        let g = TagGlobs::new(&["salt/auth", "salt/job/*/new", "*"]);
        assert_eq!(g.matches("salt/auth"), vec![0, 2]);
        assert_eq!(g.matches("salt/job/1/new"), vec![1, 2]);
    }
}
