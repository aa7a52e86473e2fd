//! Salt's job ids, as the twin filter and the job tracker both read them.

/// A jid as `salt.utils.jid.gen_jid` makes it: 20 digits (`%Y%m%d%H%M%S%f`),
/// or with `unique_jid: True`, 20 digits, `_` and the master's pid.
pub fn is_bare_jid(tag: &str) -> bool {
    let b = tag.as_bytes();
    if b.len() < 20 || !b[..20].iter().all(u8::is_ascii_digit) {
        return false;
    }
    match &b[20..] {
        [] => true,
        [b'_', pid @ ..] => !pid.is_empty() && pid.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}
