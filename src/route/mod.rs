//! Deciding where events go: the `routes.yaml` schema, `${...}`
//! substitution, predicates over the data, tag globs with the semantics of
//! Salt's reactor, and the compiled [`RouteTable`].

mod check;
pub mod config;
pub mod error;
pub mod interpolate;
mod load;
pub mod predicate;
pub mod reload;
mod route_dedup;
mod table;
pub mod tag_glob;
mod tag_index;

pub use error::{ConfigError, ConfigErrors};
pub use load::{load_file, load_str};
pub use table::{RouteMatch, RouteTable, Routing};
pub use tag_glob::TagGlobs;
