//! Log tails for failure messages, and the minion's "ready" line.

use super::*;

impl SaltSandbox {
    /// Last lines of the master's log file and of its stdout/stderr.
    pub fn master_log_tail(&self) -> String {
        format!(
            "--- {0}/master.log (tail) ---\n{1}--- {0}/console.log (tail) ---\n{2}",
            self.master_dir.display(),
            tail(&self.master_dir.join("master.log"), 40),
            tail(&self.master_dir.join("console.log"), 20)
        )
    }

    pub fn minion_log_tail(&self, id: &str) -> String {
        let dir = self.minion_config_dir(id);
        format!(
            "--- {0}/minion.log (tail) ---\n{1}--- {0}/console.log (tail) ---\n{2}",
            dir.display(),
            tail(&dir.join("minion.log"), 30),
            tail(&dir.join("console.log"), 15)
        )
    }
}

/// Has minion.log, past byte `offset`, got the "ready" line?
pub(super) fn log_has_since(path: &Path, offset: u64, needle: &str) -> bool {
    let Ok(b) = fs::read(path) else { return false };
    let start = (offset as usize).min(b.len());
    String::from_utf8_lossy(&b[start..]).contains(needle)
}

pub(super) fn tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let lines: Vec<&str> = s.lines().collect();
            let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
            out.push('\n');
            out
        }
        Err(e) => format!("({e})\n"),
    }
}
