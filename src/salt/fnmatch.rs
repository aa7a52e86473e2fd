//! One tag glob, matched exactly as Python's `fnmatch.fnmatchcase` does,
//! which is what Salt's reactor uses: `*` matches any run of characters
//! (`/` included), `?` one character, `[seq]` one character in the set
//! (ranges `a-z`; a `]` right after `[` or `[!` is part of the set),
//! `[!seq]` one character not in it; a `[` with no closing `]` is literal;
//! backslash is an ordinary character.
//!
//! Matching walks the pattern once with single-star backtracking, so it is
//! linear in practice and never blows up. A table of Python's own verdicts
//! (`tests/fixtures/fnmatch_table.json`) checks it.

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fnmatch {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Fnmatch {
    /// Compiles `pattern`. Every string is a valid fnmatch pattern.
    pub fn new(pattern: &str) -> Fnmatch {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::Any);
                    i += 1;
                }
                '[' => match class(&chars, i) {
                    Some((tok, next)) => {
                        tokens.push(tok);
                        i = next;
                    }
                    None => {
                        tokens.push(Token::Char('['));
                        i += 1;
                    }
                },
                c => {
                    tokens.push(Token::Char(c));
                    i += 1;
                }
            }
        }
        Fnmatch {
            text: pattern.to_owned(),
            tokens,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The literal text every match starts with.
    pub fn literal_prefix(&self) -> String {
        self.tokens
            .iter()
            .map_while(|t| {
                if let Token::Char(c) = t {
                    Some(*c)
                } else {
                    None
                }
            })
            .collect()
    }

    /// The literal text every match ends with.
    pub fn literal_suffix(&self) -> String {
        let mut s: Vec<char> = self
            .tokens
            .iter()
            .rev()
            .map_while(|t| {
                if let Token::Char(c) = t {
                    Some(*c)
                } else {
                    None
                }
            })
            .collect();
        s.reverse();
        s.into_iter().collect()
    }

    /// True when the pattern has no wildcard at all.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Char(_)))
    }

    pub fn is_match(&self, tag: &str) -> bool {
        // Salt tags are nearly always ASCII: match on bytes without collecting chars.
        if tag.is_ascii() {
            self.run(tag.as_bytes())
        } else {
            self.run(&tag.chars().collect::<Vec<char>>())
        }
    }

    fn run<C: Copy + Into<char>>(&self, s: &[C]) -> bool {
        let p = &self.tokens;
        let (mut si, mut pi) = (0, 0);
        // Where to resume after the last star: (pattern index after it, string index).
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(Token::Star) => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    continue;
                }
                Some(t) if t.matches(s[si].into()) => {
                    si += 1;
                    pi += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, ss)) => {
                    pi = sp;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|t| *t == Token::Star)
    }
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Char(x) => *x == c,
            Token::Any => true,
            Token::Star => false,
            Token::Class { negated, items } => {
                items.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
        }
    }
}

/// Parses `[...]` at `start`; `None` when it is not closed (then `[` is literal).
fn class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = chars.get(i) == Some(&'!');
    if negated {
        i += 1;
    }
    let first = i;
    let mut items = Vec::new();
    loop {
        let c = *chars.get(i)?;
        if c == ']' && i > first {
            return Some((Token::Class { negated, items }, i + 1));
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            let hi = chars[i + 2];
            // Python drops a reversed range (it can match nothing).
            if c <= hi {
                items.push((c, hi));
            }
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Fnmatch::new(p).is_match(s)
    }

    #[test]
    fn the_basics() {
        assert!(m("salt/job/*/ret/*", "salt/job/1/ret/a/b"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "a_b_b_c"));
        assert!(!m("a*b*c", "a_b_b_"));
        assert!(m("?", "é"));
        assert!(m("[]a]", "]"));
        assert!(m("[!]a]", "b"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[a", "[a"), "unclosed [ is literal");
        assert!(m("a-[z-a]", "a-z") == m("a-[z-a]", "a-z"));
        assert!(m(r"a\b", r"a\b"));
    }

    #[test]
    fn literals() {
        let f = Fnmatch::new("salt/job/*/ret/web-?1");
        assert_eq!(f.literal_prefix(), "salt/job/");
        assert_eq!(f.literal_suffix(), "1");
        assert!(Fnmatch::new("salt/auth").is_literal());
    }
}
