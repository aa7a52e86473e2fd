//! Build information for `saltbridge --version`: the git commit and its date
//! (when building from a clone; a source tarball has no git), the rustc
//! version, the target and the profile, in `SALTBRIDGE_BUILD_INFO`.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let mut parts = Vec::new();
    match git(&["log", "-1", "--format=%h %cs"]) {
        Some(commit_and_date) => {
            parts.push(commit_and_date);
            // Rebuild the line when HEAD moves: HEAD itself, the branch it
            // points at, and packed refs. Only files that exist: cargo
            // reruns on every build for a missing one.
            let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(branch);
            }
            for name in watched {
                if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
                    if std::path::Path::new(&path).exists() {
                        println!("cargo:rerun-if-changed={path}");
                    }
                }
            }
        }
        None => parts.push(format!("built {}", build_date())),
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    if let Some(v) = run(Command::new(rustc).arg("--version")) {
        // "rustc 1.95.0 (hash date)" -> "rustc 1.95.0"
        parts.push(v.split_whitespace().take(2).collect::<Vec<_>>().join(" "));
    }
    for var in ["TARGET", "PROFILE"] {
        if let Ok(v) = std::env::var(var) {
            parts.push(v);
        }
    }
    println!("cargo:rustc-env=SALTBRIDGE_BUILD_INFO={}", parts.join(", "));
}

fn git(args: &[&str]) -> Option<String> {
    run(Command::new("git").args(args))
}

fn run(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `SOURCE_DATE_EPOCH` (reproducible builds) or now, as YYYY-MM-DD.
fn build_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
