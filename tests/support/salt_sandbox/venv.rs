//! Finding the Salt virtualenv (`.cache/salt-<version>` or an env override).

use super::*;

impl SaltSandbox {
    /// `.cache/salt-<version>` under `CARGO_MANIFEST_DIR`, or the folder in
    /// env `SALTBRIDGE_SALT_VENV_<version, dots as underscores>` (checked
    /// first), if it has `bin/salt-master`.
    pub fn venv(version: &str) -> Option<PathBuf> {
        venv_candidates(version)
            .into_iter()
            .find(|p| p.join("bin").join("salt-master").is_file())
    }

    /// Like [`venv`](Self::venv), but when missing: with env `CI=true`
    /// panic with a clear message, otherwise print `skipping: ...` to stderr
    /// and return `None` (the caller returns early).
    pub fn require_venv(version: &str) -> Option<PathBuf> {
        if let Some(p) = Self::venv(version) {
            return Some(p);
        }
        let looked: Vec<String> = venv_candidates(version)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let msg = format!(
            "no Salt {version} virtualenv with bin/salt-master (looked at: {}); \
             create one, e.g. `python3 -m venv .cache/salt-{version} && \
             .cache/salt-{version}/bin/pip install salt=={version}`, or point env {} at one",
            looked.join(", "),
            venv_env_var(version)
        );
        if is_ci() {
            panic!("{msg} (CI is set: a missing Salt is a failure here, not a skip)");
        }
        eprintln!("skipping: {msg}");
        None
    }
}

pub(super) fn venv_env_var(version: &str) -> String {
    format!("SALTBRIDGE_SALT_VENV_{}", version.replace(['.', '-'], "_"))
}

pub(super) fn venv_candidates(version: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = env::var_os(venv_env_var(version)) {
        if !p.is_empty() {
            v.push(PathBuf::from(p));
        }
    }
    let mut manifests: Vec<OsString> = Vec::new();
    if let Some(m) = env::var_os("CARGO_MANIFEST_DIR") {
        manifests.push(m);
    }
    manifests.push(OsString::from(env!("CARGO_MANIFEST_DIR")));
    for m in manifests {
        let p = PathBuf::from(m)
            .join(".cache")
            .join(format!("salt-{version}"));
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

pub(super) fn is_ci() -> bool {
    env::var("CI").is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}
