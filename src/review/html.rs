//! Rendering comparisons for people and machines: a terminal view (summary first, capped
//! details, colour only on a terminal), JSON Lines (`finding`, `artifact`, `summary`), and
//! a self-contained HTML page for change-review paperwork.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use vault::ApprovalRecord;

use crate::output::Out;
use crate::review::diff::{Comparison, DiffFinding, Severity, View};

/// Lines shown per finding on a terminal before "… N more".
const MAX_LINES: usize = 20;

/// One device's comparison with what it was compared against.
#[derive(Clone, Debug, Serialize)]
pub struct Review {
    pub device: String,
    /// What the current state was compared with: `baseline <id>` or `snapshot <id>`.
    pub against: String,
    /// The current state: `snapshot <id>` or `live`.
    pub current: String,
    pub baseline: Option<ApprovalRecord>,
    /// Set when the config's rules for the device differ from the approved ones.
    pub rules_note: Option<String>,
    pub comparison: Comparison,
    /// SHA-256 of what the current side holds (each artifact's name and SHA-256), so that
    /// the review's digest names the content, not only the differences.
    pub content: vault::Hash,
    /// The comparison rules an approval of this review records (the config's current
    /// ones): in the digest, so that rules edited after the review cannot be signed.
    pub rules: serde_json::Value,
}

#[derive(Serialize)]
struct Summary<'a> {
    device: &'a str,
    against: &'a str,
    current: &'a str,
    findings: usize,
    critical: usize,
    warning: usize,
    info: usize,
    drift: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules_note: &'a Option<String>,
    /// The command that approves exactly what was compared (the snapshot by its id, or
    /// `--live`), when there is something to approve.
    #[serde(skip_serializing_if = "Option::is_none")]
    approve: Option<String>,
}

impl Review {
    fn count(&self, s: Severity) -> usize {
        self.comparison
            .findings
            .iter()
            .filter(|f| f.severity == s)
            .count()
    }

    /// The digest of this review: SHA-256 of what was compared with (the baseline's id),
    /// what the current side holds, and the findings, in order (one JSON object with its
    /// keys sorted). An approval records it, and `approve --review` refuses to sign when
    /// what it would sign has another.
    pub fn digest(&self) -> vault::Hash {
        let v = serde_json::json!({
            "against": self.against,
            "content": self.content,
            "findings": self.comparison.findings,
            "rules": self.rules,
        });
        vault::Hash::of(&serde_json::to_vec(&v).expect("values serialize"))
    }

    /// The command that approves what this review compared: the stored snapshot by its
    /// id, or a new collection with `--live`, bound to this review by its digest (the
    /// approval is refused when what it would sign differs); none when it matches its
    /// baseline.
    pub fn approve_command(&self) -> Option<String> {
        // Approvals compare with the baseline: a review against another snapshot has
        // nothing an approval could match.
        if (self.baseline.is_some() && self.comparison.findings.is_empty())
            || self.against.starts_with("snapshot ")
        {
            return None;
        }
        let what = match self.current.strip_prefix("snapshot ") {
            Some(id) => format!("--snapshot {id}"),
            None => "--live".to_string(),
        };
        Some(format!(
            "plcvault baseline approve {} {what} --review {} --key APPROVER.key --ticket TICKET",
            self.device,
            &self.digest().to_hex()[..16]
        ))
    }

    fn summary(&self) -> Summary<'_> {
        Summary {
            device: &self.device,
            against: &self.against,
            current: &self.current,
            findings: self.comparison.findings.len(),
            critical: self.count(Severity::Critical),
            warning: self.count(Severity::Warning),
            info: self.count(Severity::Info),
            drift: self.comparison.drift(),
            rules_note: &self.rules_note,
            approve: self.approve_command(),
        }
    }
}

/// Every artifact of a snapshot with its kind, size, SHA-256 and status, one line each
/// (records `snapshot-artifact`): `ls`, and the preview of a first approval, which has
/// no baseline to compare with and so must show what it signs.
pub fn print_artifacts(out: &Out, device: &str, snapshot: &str, manifest: &vault::Manifest) {
    for a in &manifest.artifacts {
        out.record(
            "snapshot-artifact",
            &serde_json::json!({
                "device": device, "snapshot": snapshot, "name": a.name, "kind": a.kind,
                "size": a.size, "sha256": a.sha256, "status": a.status,
            }),
            || {
                format!(
                    "{:<8} {:>10}  {}  {}{}",
                    a.kind.as_str(),
                    crate::output::human_bytes(a.size),
                    a.sha256.short(),
                    crate::output::printable_inline(&a.name),
                    if a.status == vault::ArtifactStatus::Ok {
                        ""
                    } else {
                        "  (unstable)"
                    }
                )
            },
        );
    }
}

/// Device-supplied text made printable before it is coloured (see `output::printable`).
fn pi(s: &str) -> std::borrow::Cow<'_, str> {
    crate::output::printable_inline(s)
}

fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The lines of a finding's view, for terminals and HTML.
pub fn view_lines(f: &DiffFinding) -> Vec<String> {
    match &f.view {
        View::None => Vec::new(),
        View::Registers { table, changes, .. } => {
            let mut v = vec![format!(
                "{:>8}  {:>6}  {:>6}",
                format!("{table}"),
                "old",
                "new"
            )];
            v.extend(changes.iter().map(|c| {
                let show = |x: Option<u16>| x.map(|x| x.to_string()).unwrap_or("-".into());
                format!("{:>8}  {:>6}  {:>6}", c.address, show(c.old), show(c.new))
            }));
            v
        }
        View::Item { address, old, new } => {
            let mut v = vec![address.clone()];
            for (sign, side) in [("-", old), ("+", new)] {
                if let Some(t) = side {
                    // A tab in code shows as an arrow, not as an escape on every line.
                    v.extend(
                        t.lines()
                            .map(|l| format!("{sign} {}", l.replace('\t', "→   "))),
                    );
                }
            }
            v
        }
        View::Text { diff, note, .. } => {
            // Line ends stay (a CR that changed is shown, escaped, by the printers); a
            // bare CR ends a line too (old Mac text), so that lines never run together.
            let mut v: Vec<String> = diff
                .split_inclusive('\n')
                .flat_map(|l| {
                    l.strip_suffix('\n')
                        .unwrap_or(l)
                        .split_inclusive('\r')
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            v.extend(note.iter().map(|n| format!("({n})")));
            v
        }
        View::Binary {
            old_size,
            new_size,
            old_sha256,
            new_sha256,
            ranges,
            exact,
            note,
        } => {
            let mut v = vec![
                format!("size    {old_size} -> {new_size} bytes"),
                format!("sha256  {old_sha256}"),
                format!("     -> {new_sha256}"),
                format!(
                    "changed byte ranges{}:",
                    if *exact { "" } else { " (chunk granularity)" }
                ),
            ];
            v.extend(
                ranges
                    .iter()
                    .map(|r| format!("  {}..{} ({} bytes)", r[0], r[1], r[1] - r[0])),
            );
            v.extend(note.iter().map(|n| format!("({n})")));
            v
        }
        View::Identity { fields } => fields
            .iter()
            .map(|c| {
                format!(
                    "{}: {} -> {}",
                    c.field,
                    c.old.as_deref().unwrap_or("(none)"),
                    c.new.as_deref().unwrap_or("(none)")
                )
            })
            .collect(),
    }
}

/// Prints reviews: JSON records (the per-device summary as `summary_type`), or the
/// terminal view.
pub fn print(out: &Out, reviews: &[Review], summary_type: &str) {
    let color = std::io::stdout().is_terminal() && !out.json;
    for r in reviews {
        let s = r.summary();
        out.record_painted(summary_type, &s, || {
            let head = if s.drift {
                paint(color, "1;31", "DRIFT")
            } else if s.findings > 0 {
                paint(color, "33", "NOTE ")
            } else {
                paint(color, "32", "MATCH")
            };
            let mut t = format!(
                "{head} {}: {} compared with {}: {} finding(s) ({} critical, {} warning, {} info)",
                pi(&r.device),
                pi(&r.current),
                pi(&r.against),
                s.findings,
                s.critical,
                s.warning,
                s.info
            );
            if let Some(b) = &r.baseline {
                let _ = write!(
                    t,
                    "\n      baseline approved by {} (key {}) on {}, ticket {}",
                    pi(&b.approver),
                    b.key,
                    pi(&b.time),
                    pi(&b.ticket)
                );
                if !b.reason.is_empty() {
                    let _ = write!(t, ": {}", pi(&b.reason));
                }
            }
            if let Some(n) = &r.rules_note {
                let _ = write!(t, "\n      note: {}", pi(n));
            }
            if summary_type != "approval-preview"
                && let Some(cmd) = &s.approve
            {
                let _ = write!(t, "\n      to approve exactly this: {}", pi(cmd));
            }
            t
        });
        for f in &r.comparison.findings {
            out.record_painted("finding", f, || {
                let sev = match f.severity {
                    Severity::Critical => paint(color, "1;31", "critical"),
                    Severity::Warning => paint(color, "33", "warning "),
                    Severity::Info => paint(color, "2", "info    "),
                };
                let mut t = format!("  [{sev}] {:<9} {}", f.class.as_str(), pi(&f.summary));
                let lines = view_lines(f);
                for l in lines.iter().take(MAX_LINES) {
                    let l = &pi(l).into_owned();
                    // A text view has no file header: a line's first character is its kind.
                    let text = matches!(f.view, View::Text { .. });
                    let l = if color && text && l.starts_with('+') {
                        paint(true, "32", l)
                    } else if color && text && l.starts_with('-') {
                        paint(true, "31", l)
                    } else {
                        l.clone()
                    };
                    let _ = write!(t, "\n        {l}");
                }
                if lines.len() > MAX_LINES {
                    let _ = write!(
                        t,
                        "\n        … {} more line(s); see --json or --html",
                        lines.len() - MAX_LINES
                    );
                }
                t
            });
        }
        if out.json {
            for a in &r.comparison.artifacts {
                out.record("artifact", a, String::new);
            }
        }
    }
}

/// Defence in depth for every HTML page: no script, no external resource, no form, no
/// frame may run or load, whatever an escaped value might still carry.
pub const CSP: &str = "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'\">";

/// HTML text: control characters and bidirectional overrides made visible (as on the
/// terminal), then the markup characters escaped.
pub fn esc(s: &str) -> String {
    crate::output::printable_inline(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes a single self-contained HTML page (no scripts, no external resources) that prints
/// well: summary, the baseline's approver and ticket, and every finding with its view.
///
/// Fails when the file cannot be written.
pub fn write_html(
    path: &Path,
    title: &str,
    reviews: &[Review],
    not_compared: &[(String, String)],
) -> Result<()> {
    let h = render_html(title, reviews, not_compared);
    std::fs::write(path, h).with_context(|| format!("cannot write {}", path.display()))
}

/// The change-review page `write_html` writes, as text.
pub fn render_html(title: &str, reviews: &[Review], not_compared: &[(String, String)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{CSP}<title>{}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}}
h1{{font-size:1.4em}} h2{{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #999}}
table{{border-collapse:collapse;margin:.5em 0}} td,th{{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}}
.critical{{color:#a00;font-weight:bold}} .warning{{color:#a60;font-weight:bold}} .info{{color:#555}}
pre{{background:#f4f4f4;padding:.5em;overflow-x:auto;white-space:pre-wrap}} .add{{color:#070}} .del{{color:#a00}}
table.side{{width:100%;table-layout:fixed}} table.side td:nth-child(1){{width:22%}} table.side td:nth-child(2){{width:14%}} table.side pre{{margin:0}}
h3{{font-size:1em;margin:1.2em 0 .3em}} .sign{{margin-top:3em}} .sign td{{height:2.5em;min-width:14em}}
@media print{{body{{margin:1cm}} pre{{background:none;border:1px solid #ccc}} h2{{page-break-after:avoid}} .finding{{page-break-inside:avoid}}}}
</style></head><body><h1>{}</h1><p>Generated by plcvault {} on {}.</p>",
        esc(title),
        esc(title),
        env!("CARGO_PKG_VERSION"),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    h.push_str("<table><tr><th>device</th><th>compared</th><th>with</th><th>critical</th><th>warning</th><th>info</th><th>result</th></tr>");
    for r in reviews {
        let s = r.summary();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td{}>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.device),
            esc(&r.current),
            esc(&r.against),
            // A count of zero is neutral, not red.
            if s.critical > 0 {
                " class=\"critical\""
            } else {
                ""
            },
            s.critical,
            if s.warning > 0 {
                " class=\"warning\""
            } else {
                ""
            },
            s.warning,
            s.info,
            if s.drift {
                "<span class=\"critical\">drift</span>"
            } else {
                "matches"
            }
        );
    }
    h.push_str("</table>");
    if !not_compared.is_empty() {
        h.push_str(
            "<p class=\"critical\">Not compared:</p><table><tr><th>device</th><th>why</th></tr>",
        );
        for (d, why) in not_compared {
            // The message's lines (what, then the fix) as lines of the cell.
            let why = why.lines().map(esc).collect::<Vec<_>>().join("<br>");
            let _ = write!(h, "<tr><td>{}</td><td>{why}</td></tr>", esc(d));
        }
        h.push_str("</table>");
    }
    for r in reviews {
        let _ = write!(h, "<h2>{}</h2>", esc(&r.device));
        match &r.baseline {
            Some(b) => {
                let _ = write!(
                    h,
                    "<table><tr><th>baseline</th><td>snapshot {} (approval entry {}, log #{})</td></tr><tr><th>approved by</th><td>{} (key {})</td></tr><tr><th>on</th><td>{}</td></tr><tr><th>ticket</th><td>{}</td></tr><tr><th>reason</th><td>{}</td></tr></table>",
                    esc(&b.snapshot),
                    esc(&b.id),
                    b.seq,
                    esc(&b.approver),
                    esc(&b.key),
                    esc(&b.time),
                    esc(&b.ticket),
                    esc(&b.reason)
                );
            }
            None => h.push_str("<p class=\"warning\">No approved baseline.</p>"),
        }
        if let Some(n) = &r.rules_note {
            let _ = write!(h, "<p class=\"warning\">{}</p>", esc(n));
        }
        let _ = write!(
            h,
            "<p>Compared: {} with {}.</p>",
            esc(&r.current),
            esc(&r.against)
        );
        if let Some(cmd) = r.approve_command() {
            let _ = write!(
                h,
                "<p>To approve exactly what this page shows: <code>{}</code></p>",
                esc(&cmd)
            );
        }
        if r.comparison.findings.is_empty() {
            h.push_str("<p>No findings: the device matches.</p>");
        }
        // Changes by address go in one table per program, routine or POU (the first part
        // of the address), old and new side by side, where the first of them stood.
        let section = |f: &DiffFinding| match &f.view {
            View::Item { address, .. } => Some((
                f.artifact.clone(),
                address.split(" / ").next().unwrap_or("").to_string(),
            )),
            _ => None,
        };
        let mut shown = std::collections::HashSet::new();
        for f in &r.comparison.findings {
            if let Some(sec) = section(f) {
                if shown.insert(sec.clone()) {
                    let group: Vec<&DiffFinding> = r
                        .comparison
                        .findings
                        .iter()
                        .filter(|g| section(g).as_ref() == Some(&sec))
                        .collect();
                    side_by_side(&mut h, &sec.0, &sec.1, &group);
                }
                continue;
            }
            let _ = write!(
                h,
                "<div class=\"finding\"><p><span class=\"{}\">{}</span> <b>{}</b> — {}</p>",
                f.severity,
                f.severity,
                f.class,
                esc(&f.summary)
            );
            let lines = view_lines(f);
            if !lines.is_empty() {
                h.push_str("<pre>");
                let text = matches!(f.view, View::Text { .. });
                for l in lines {
                    let class = if text && l.starts_with('+') {
                        "add"
                    } else if text && l.starts_with('-') {
                        "del"
                    } else {
                        ""
                    };
                    let _ = writeln!(h, "<span class=\"{class}\">{}</span>", esc(&l));
                }
                h.push_str("</pre>");
            }
            h.push_str("</div>");
        }
    }
    h.push_str("<table class=\"sign\"><tr><th>reviewed by</th><td></td><th>date</th><td></td></tr><tr><th>approved by</th><td></td><th>ticket</th><td></td></tr></table></body></html>\n");
    h
}

/// One program's, routine's or POU's changes by address: a table with the rest of each
/// address, the change, and the old and new text side by side.
fn side_by_side(h: &mut String, artifact: &str, section: &str, group: &[&DiffFinding]) {
    let _ = write!(
        h,
        "<h3>{} — {}</h3><table class=\"side\"><tr><th>where</th><th>change</th><th>old</th><th>new</th></tr>",
        esc(artifact),
        esc(section)
    );
    for f in group {
        let View::Item { address, old, new } = &f.view else {
            continue;
        };
        let rest = address
            .split_once(" / ")
            .map(|(_, r)| r)
            .unwrap_or("(the item itself)");
        let cell = |t: &Option<String>| match t {
            Some(t) => format!(
                "<pre>{}</pre>",
                t.lines().map(esc).collect::<Vec<_>>().join("\n")
            ),
            None => "<span class=\"info\">(none)</span>".to_string(),
        };
        let _ = write!(
            h,
            "<tr class=\"finding\"><td>{}</td><td><span class=\"{}\">{}</span> <b>{}</b> {}</td><td class=\"del\">{}</td><td class=\"add\">{}</td></tr>",
            esc(rest),
            f.severity,
            f.severity,
            f.class,
            esc(&if f.summary.ends_with("Use=\"Context\")") {
                format!("{} (in a dependency the export carries)", f.change)
            } else {
                f.change.clone()
            }),
            cell(old),
            cell(new)
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::diff::Class;

    // Issue 18, case 8: a CR/LF-only change must stay visible in the review.
    #[test]
    fn text_view_lines_keep_carriage_returns_and_html_shows_them() {
        let f = DiffFinding {
            device: "d".into(),
            artifact: "b.st".into(),
            change: "changed".into(),
            class: Class::Logic,
            severity: Severity::Critical,
            summary: "b.st changed".into(),
            view: View::Text {
                diff: "@@ -1 +1 @@\n-A I0.0\r\n+A I0.0\n".into(),
                added: 1,
                removed: 1,
                note: None,
            },
        };
        let lines = view_lines(&f);
        assert_eq!(lines, ["@@ -1 +1 @@", "-A I0.0\r", "+A I0.0"]);
        assert_eq!(esc(&lines[1]), "-A I0.0\\u{d}");
        assert_eq!(esc("a\u{202e}b<"), "a\\u{202e}b&lt;");
    }
}
