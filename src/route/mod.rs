//! Deciding where events go: the routes' part of the `routes.yaml` schema,
//! predicates over the data, tag globs with the semantics of Salt's
//! reactor, per-route dedup, and the compiled [`RouteTable`]. Reading the
//! file (substitution, parsing, checks) is `config`'s.

mod compile;
pub mod config;
pub mod predicate;
mod route_dedup;
mod table;
pub mod tag_glob;
mod tag_index;

pub use compile::compile;
pub use table::{RouteMatch, RouteTable, Routing};
pub use tag_glob::TagGlobs;
