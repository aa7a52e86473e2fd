//! What `saltbridge --version` prints: the version and how this binary was
//! built, so a bug report says exactly which build it is about. `build.rs`
//! supplies the build part: the git commit and its date when built from a
//! clone, the rustc version, the target and the cargo profile.

/// `0.1.0 (abc1234 2026-11-26, rustc 1.95.0, x86_64-unknown-linux-gnu, release)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SALTBRIDGE_BUILD_INFO"),
    ")"
);
