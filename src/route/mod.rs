//! Deciding where events go. So far: tag globs with the semantics of Salt's
//! reactor, shared by `tail --tag` and the routes.

pub mod tag_glob;

pub use tag_glob::{TagGlobError, TagGlobs};
