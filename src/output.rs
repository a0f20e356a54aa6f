//! Output: results on stdout (text, or JSON Lines with `--json`), logs and progress on
//! stderr; and the exit status, where the worst outcome of a run wins.

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

/// How a run ended; the variant's value is the exit code. From better to worse: 0 all
/// good; 1 a finding (drift, damage, a failed drill or restore); 3 a device could not be
/// collected (unreachable, refused, timed out, or not read whole); 2 the command could not
/// run (usage or config error, I/O error, bad key). Across devices the worst wins, so an
/// alerting system that sees 3 knows that some device was not backed up, and 1 that all
/// were and something changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean = 0,
    Findings = 1,
    Failed = 2,
    NotCollected = 3,
}

impl Outcome {
    fn rank(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::NotCollected => 2,
            Outcome::Failed => 3,
        }
    }

    pub fn worst(self, other: Outcome) -> Outcome {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Out {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
}

/// Characters a terminal would act on rather than show: control characters (escape
/// sequences, carriage returns, backspaces) and the bidirectional overrides that make text
/// read differently from its bytes (U+202E).
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            // Bidirectional overrides and marks.
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
            // Invisible: zero-width and joiners, word joiner and invisible operators, BOM,
            // soft hyphen, line and paragraph separators, tags, Hangul and Mongolian fillers.
            | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}'
            | '\u{2028}' | '\u{2029}' | '\u{E0000}'..='\u{E007F}' | '\u{3164}' | '\u{115F}'
            | '\u{1160}' | '\u{FFA0}' | '\u{180E}'
        )
}

fn escape_with(s: &str, also: impl Fn(char) -> bool) -> Cow<'_, str> {
    let bad = |c: char| acts_on_terminal(c) || also(c);
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if bad(c) {
            let _ = std::fmt::Write::write_fmt(&mut o, format_args!("\\u{{{:x}}}", c as u32));
        } else {
            o.push(c);
        }
    }
    Cow::Owned(o)
}

/// Text for a terminal: control characters and bidi overrides shown as `\u{1b}`, so that
/// a file name or a device's identification string cannot move the cursor, recolour or
/// reorder what the reader sees. Newlines and tabs are kept.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// `printable`, and newlines and tabs shown too: for one value (a name) inside a line,
/// which must not start a line or a column of its own.
pub fn printable_inline(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n' || c == '\t')
}

impl Out {
    /// One result: a JSON line `{"type": ty, "data": data}`, or the human text (made
    /// printable, see `printable`).
    pub fn record<T: Serialize>(&self, ty: &str, data: &T, human: impl FnOnce() -> String) {
        self.record_painted(ty, data, || printable(&human()).into_owned());
    }

    /// `record` for text the caller made printable itself and may have coloured.
    pub fn record_painted<T: Serialize>(&self, ty: &str, data: &T, human: impl FnOnce() -> String) {
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
            let _ = writeln!(std::io::stdout().lock(), "{}", printable(text.as_ref()));
        }
    }

    /// Progress and logs on stderr, unless `-q`.
    pub fn info(&self, text: impl AsRef<str>) {
        if !self.quiet {
            to_stderr(&format!("{}\n", printable(text.as_ref())));
        }
    }

    /// Detail on stderr with `-v` only.
    pub fn debug(&self, text: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            to_stderr(&format!("{}\n", printable(text.as_ref())));
        }
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        to_stderr(&format!("warning: {}\n", printable(text.as_ref())));
    }
}

/// Writes to stderr; a closed stderr (`2>&1 | head -1`) loses the text, never panics.
pub fn to_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
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

    // Regression (issue 8, case 13): device strings printed raw escape sequences.
    #[test]
    fn terminal_text_shows_control_characters_instead_of_obeying_them() {
        assert_eq!(printable("OB1\x1b[2J.awl\r"), "OB1\\u{1b}[2J.awl\\u{d}");
        assert_eq!(printable("a\u{202e}txt.exe"), "a\\u{202e}txt.exe");
        assert_eq!(printable("OB\u{200b}1\u{feff}"), "OB\\u{200b}1\\u{feff}");
        assert_eq!(printable("line\n\tnext"), "line\n\tnext");
        assert_eq!(printable_inline("a\nb"), "a\\u{a}b");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn bytes_and_outcomes() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(64 * 1024 * 1024), "64.0 MiB");
        assert_eq!(Outcome::Clean.worst(Outcome::Failed), Outcome::Failed);
        assert_eq!(Outcome::Findings.worst(Outcome::Clean), Outcome::Findings);
    }
}
