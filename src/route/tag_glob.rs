//! Tag globs with the semantics of Salt's reactor, which matches tags with
//! Python's `fnmatch`: `*` matches any run of characters *including* `/`,
//! `?` one character, `[seq]` and `[!seq]` a class; backslash is an ordinary
//! character. Compiled once into a `globset::GlobSet`, so matching costs one
//! automaton pass however many globs there are. (`{a,b}` alternation, which
//! fnmatch lacks, is also accepted.) A run of `*` is one `*`, as in fnmatch:
//! globset would read `a/**/b` as "any number of directories", which also
//! matches `a/b`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A set of compiled tag globs.
#[derive(Debug, Clone)]
pub struct TagGlobs {
    set: GlobSet,
    patterns: Vec<String>,
}

/// A glob that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("tag glob {pattern:?}: {message}")]
pub struct TagGlobError {
    pub pattern: String,
    pub message: String,
}

/// Compiles one glob with fnmatch semantics.
pub fn fnmatch_glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    let mut collapsed = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if !(c == '*' && collapsed.ends_with('*')) {
            collapsed.push(c);
        }
    }
    GlobBuilder::new(&collapsed)
        .literal_separator(false)
        .backslash_escape(false)
        .build()
}

impl TagGlobs {
    /// Compiles `patterns`; an empty list matches nothing.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, TagGlobError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let p = p.as_ref();
            let glob = fnmatch_glob(p).map_err(|e| TagGlobError {
                pattern: p.to_owned(),
                message: e.kind().to_string(),
            })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| TagGlobError {
            pattern: patterns
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            message: e.to_string(),
        })?;
        Ok(TagGlobs {
            set,
            patterns: patterns.iter().map(|p| p.as_ref().to_owned()).collect(),
        })
    }

    pub fn is_match(&self, tag: &str) -> bool {
        self.set.is_match(tag)
    }

    /// Indexes (into the patterns given to [`TagGlobs::new`]) of every glob that matches.
    pub fn matches(&self, tag: &str) -> Vec<usize> {
        self.set.matches(tag)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, tag: &str) -> bool {
        TagGlobs::new(&[p]).unwrap().is_match(tag)
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
    }

    #[test]
    fn bad_glob_names_the_pattern() {
        let e = TagGlobs::new(&["salt/[job"]).unwrap_err();
        assert_eq!(e.pattern, "salt/[job");
    }
}
