//! Salt's vocabulary, shared by the stages that read events: tag globs as
//! Salt's reactor matches them, job ids, and what a return says. These
//! modules import none of their users.

pub mod fnmatch;
pub mod jid;
pub mod returns;

pub use fnmatch::Fnmatch;
