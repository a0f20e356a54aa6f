//! Output: results on stdout (text, or JSON Lines with `--json`), logs and progress on
//! stderr; and the exit status, where the worst outcome of a run wins.

use std::io::Write;

use serde::Serialize;

/// How a run ended, in exit-code order: 0 done, 1 findings, 2 could not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Clean = 0,
    Findings = 1,
    Failed = 2,
}

impl Outcome {
    pub fn worst(self, other: Outcome) -> Outcome {
        self.max(other)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Out {
    /// One result: a JSON line `{"type": ty, "data": data}`, or the human text.
    pub fn record<T: Serialize>(&self, ty: &str, data: &T, human: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let line = if self.json {
            format!(
                "{{\"type\":{},\"data\":{}}}",
                serde_json::to_string(ty).expect("strings serialize"),
                serde_json::to_string(data).expect("records serialize")
            )
        } else {
            let text = human();
            if text.is_empty() {
                return;
            }
            text
        };
        // A closed stdout (e.g. piped into `head`) must not turn into a panic.
        let _ = writeln!(stdout, "{line}");
    }

    /// Human-only text on stdout (nothing in JSON mode).
    pub fn say(&self, text: impl AsRef<str>) {
        if !self.json {
            let _ = writeln!(std::io::stdout().lock(), "{}", text.as_ref());
        }
    }

    /// Progress and logs on stderr, unless `-q`.
    pub fn info(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// Detail on stderr with `-v` only.
    pub fn debug(&self, text: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        eprintln!("warning: {}", text.as_ref());
    }
}

/// `1234567` -> `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_outcomes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(Outcome::Clean.worst(Outcome::Failed), Outcome::Failed);
        assert_eq!(Outcome::Findings.worst(Outcome::Clean), Outcome::Findings);
    }
}
