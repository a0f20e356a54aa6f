//! The dashboard's pages, drawn on the server: the fleet, a device (timeline, snapshots,
//! diff links), a change review, the auditor's page and the metrics.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Built, DiffQuery, FleetQuery, Name, Q, Served, Shared, html};
use crate::review::html::esc;
use crate::review::report::DeviceStatus;

/// The days the device timeline spans.
const TIMELINE_DAYS: u64 = 90;

const STYLE: &str = "<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#111}
header{background:#123;color:#fff;padding:.6em 1.2em} header a{color:#fff;margin-right:1.2em}
main{margin:1em 1.2em} h1{font-size:1.3em} h2{font-size:1.1em;margin-top:1.4em}
table{border-collapse:collapse} td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}
.alarm{color:#a00;font-weight:bold} .ok{color:#070} .muted{color:#666}
.banner{background:#a00;color:#fff;padding:.8em 1.2em;font-weight:bold}
.banner ul{font-weight:normal;margin:.3em 0}
.verified{background:#e8f4e8;padding:.3em 1.2em;font-size:.9em}
form{margin:.6em 0}
</style>";

/// A whole page: the header, the integrity banner (or the verification line), the body.
fn page(title: &str, built: Option<&Built>, body: &str) -> String {
    let mut h = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>{STYLE}</head><body><header><strong>plcvault</strong> &nbsp; <a href=\"/\">fleet</a><a href=\"/audit\">auditor</a><a href=\"/metrics\">metrics</a></header>",
        esc(title)
    );
    match built {
        Some(b) if !b.report.log.intact => {
            let _ = write!(
                h,
                "<div class=\"banner\" id=\"integrity\">LOG INTEGRITY FAILURE: the vault's log does not verify ({} finding(s)). Do not trust what this page shows; run <code>plcvault verify</code>.<ul>",
                b.report.log.findings.len()
            );
            for f in b.report.log.findings.iter().take(20) {
                let _ = write!(h, "<li>{}</li>", esc(f));
            }
            h.push_str("</ul></div>");
        }
        Some(b) => {
            let _ = write!(
                h,
                "<div class=\"verified\" id=\"verified\">log verified: {} entries, head #{} — checked {}</div>",
                b.report.log.entries,
                b.report.log.head_seq.unwrap_or(0),
                humantime::format_rfc3339_seconds(b.at)
            );
        }
        None => {}
    }
    let _ = writeln!(
        h,
        "<main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    h
}

pub fn error(status: StatusCode, why: &str) -> Response {
    error_page(status, why, None)
}

/// An error page drawn after the log was verified: with the banner or the verified line,
/// like every other page of the vault.
fn error_page(status: StatusCode, why: &str, built: Option<&Built>) -> Response {
    html(
        status,
        page(
            &format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
            built,
            &format!("<p>{}</p>", lines(why)),
        ),
    )
}

/// The report, or the page saying why there is none (a vault that cannot be read: never
/// an empty fleet that looks fine).
async fn built(s: &Arc<Served>) -> Result<Arc<Built>, Response> {
    s.current().await.map_err(|why| {
        html(
            StatusCode::SERVICE_UNAVAILABLE,
            page(
                "the vault cannot be read",
                None,
                &format!(
                    "<div class=\"banner\" id=\"integrity\">{}</div>",
                    lines(&why)
                ),
            ),
        )
    })
}

fn age(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 3600 => format!("{}m", s / 60),
        Some(s) if s < 2 * 86400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

fn alarms(d: &DeviceStatus) -> String {
    if d.alarms.is_empty() {
        "<span class=\"ok\">none</span>".into()
    } else {
        format!("<span class=\"alarm\">{}</span>", esc(&d.alarms.join(", ")))
    }
}

/// A path or query that could not be read: the dashboard's own 400 page, with the banner
/// or the verified line as every page of the vault.
async fn bad_request(s: &Arc<Served>, why: String) -> Response {
    let b = match built(s).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    error_page(
        StatusCode::BAD_REQUEST,
        &format!("{why}\nfix: use the dashboard's own links and forms"),
        Some(&b),
    )
}

/// A page that does not exist: said under the banner or the verified line too.
pub async fn not_found(s: Shared) -> Response {
    let b = match built(&s.0).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    error_page(StatusCode::NOT_FOUND, "no such page", Some(&b))
}

pub async fn fleet(s: Shared, q: Q<FleetQuery>) -> Response {
    let s = s.0;
    let q = match q {
        Ok(q) => q.0,
        Err(e) => return bad_request(&s, e.body_text()).await,
    };
    let b = match built(&s).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let tag = q.tag.as_deref().filter(|t| !t.is_empty());
    let alarm = q.alarm.as_deref().filter(|a| !a.is_empty());
    let mut body = format!(
        "<form method=\"get\" action=\"/\">tag <input name=\"tag\" value=\"{}\"> alarm <select name=\"alarm\"><option value=\"\">any</option>",
        esc(tag.unwrap_or(""))
    );
    const ALARMS: [&str; 9] = [
        "drift",
        "no-baseline",
        "no-good-backup",
        "backup-too-old",
        "no-passed-drill",
        "drill-overdue",
        "last-drill-failed",
        "comparison-failed",
        "log-integrity",
    ];
    for a in ALARMS {
        let sel = if alarm == Some(a) { " selected" } else { "" };
        let _ = write!(body, "<option{sel}>{a}</option>");
    }
    body.push_str("</select> <button>filter</button></form>");
    if let Some(a) = alarm.filter(|a| !ALARMS.contains(a)) {
        let _ = write!(
            body,
            "<p class=\"alarm\" id=\"no-such-alarm\">There is no alarm `{}`: the alarms are {}.</p>",
            esc(a),
            ALARMS.join(", ")
        );
    }
    let tags = s.cfg.tags();
    if let Some(t) = tag.filter(|t| !tags.contains(t)) {
        let _ = write!(
            body,
            "<p class=\"alarm\" id=\"no-such-tag\">No device has the tag `{}`: the tags are {}.</p>",
            esc(t),
            if tags.is_empty() {
                "none yet".to_string()
            } else {
                esc(&tags.join(", "))
            }
        );
    }
    body.push_str("<table id=\"fleet\"><tr><th>device</th><th>adapter</th><th>tags</th><th>last good backup</th><th>age</th><th>baseline</th><th>drift</th><th>last drill</th><th>alarms</th></tr>");
    let mut shown = 0;
    for d in &b.report.devices {
        let tags = s
            .cfg
            .devices
            .iter()
            .find(|c| c.name == d.device)
            .map(|c| c.tags.clone())
            .unwrap_or_default();
        if tag.is_some_and(|t| !tags.iter().any(|x| x == t))
            || alarm.is_some_and(|a| !d.alarms.iter().any(|x| x == a))
        {
            continue;
        }
        shown += 1;
        let baseline = d.baseline.as_ref().map_or(
            if d.restore_target || !d.nightly {
                "<span class=\"muted\">-</span>".into()
            } else {
                "<span class=\"alarm\">none</span>".into()
            },
            |a| {
                format!(
                    "{} ({}, {})",
                    esc(&a.snapshot),
                    esc(&a.approver),
                    esc(&a.ticket)
                )
            },
        );
        let drift = match d.drift {
            Some(true) => format!("<span class=\"alarm\">drift ({})</span>", d.drift_findings),
            Some(false) => "<span class=\"ok\">matches</span>".into(),
            None => "-".into(),
        };
        let drill = d.last_drill.as_ref().map_or("-".into(), |r| {
            format!(
                "<span class=\"{}\">{}</span> {}",
                if r.passed { "ok" } else { "alarm" },
                if r.passed { "passed" } else { "FAILED" },
                esc(&r.time)
            )
        });
        let _ = write!(
            body,
            "<tr class=\"device\" data-device=\"{n}\" data-drift=\"{}\"><td><a href=\"/device/{u}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{baseline}</td><td class=\"drift\">{drift}</td><td>{drill}</td><td class=\"alarms\">{}</td></tr>",
            match d.drift {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            },
            d.adapter,
            esc(&tags.join(", ")),
            d.last_good_backup
                .as_ref()
                .map_or("-".into(), |s| esc(&s.time)),
            age(d.backup_age_seconds),
            alarms(d),
            n = esc(&d.device),
            u = url(&d.device),
        );
    }
    body.push_str("</table>");
    let _ = write!(
        body,
        "<p class=\"muted\">{shown} of {} devices shown.</p>",
        b.report.devices.len()
    );
    html(
        StatusCode::OK,
        page(&format!("{}: fleet", b.report.site), Some(&b), &body),
    )
}

/// A path segment: device names are `[A-Za-z0-9._-]`, but escape anything else anyway.
fn url(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One event on the timeline.
struct Event {
    time: SystemTime,
    kind: &'static str,
    label: String,
}

pub async fn device(s: Shared, name: Name) -> Response {
    let s = s.0;
    let name = match name {
        Ok(n) => n.0,
        Err(e) => return bad_request(&s, e.body_text()).await,
    };
    let b = match built(&s).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(d) = b.report.devices.iter().find(|d| d.device == *name) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "no device of that name in the config",
            Some(&b),
        );
    };
    let records = match b.history.records(&name) {
        Ok(r) => r,
        Err(e) => return damaged(&b, &format!("{e:#}")),
    };
    let dc = s.cfg.devices.iter().find(|c| c.name == d.device);
    let now = b.at;
    let from = now - Duration::from_secs(TIMELINE_DAYS * 86400);
    let t = |s: &str| humantime::parse_rfc3339(s).ok();
    let mut events = Vec::new();
    let mut snapshots = Vec::new();
    let mut baseline: Option<vault::Hash> = None;
    for r in &records {
        match r {
            vault::history::Record::Snapshot(x) => {
                snapshots.push(x.clone());
                if let Some(tm) = t(&x.time) {
                    events.push(Event {
                        time: tm,
                        kind: "backup",
                        label: format!(
                            "snapshot {} ({})",
                            x.id,
                            if x.complete { "complete" } else { "incomplete" }
                        ),
                    });
                    // Drift as collect found it against the baseline then in force.
                    if let (Some(a), Some(dc)) = (&baseline, dc)
                        && let Some(c) = crate::review::baseline::cached_summary(
                            &s.cfg.vault.state,
                            &s.cfg.trust,
                            &x.device,
                            &crate::review::baseline::summary_key(&x.entry, a, dc),
                        )
                        && c.serious > 0
                    {
                        events.push(Event {
                            time: tm,
                            kind: "drift",
                            label: format!("snapshot {} drifts: {} finding(s)", x.id, c.serious),
                        });
                    }
                }
            }
            vault::history::Record::Approval(a) => {
                baseline = Some(a.entry);
                if let Some(tm) = t(&a.time) {
                    events.push(Event {
                        time: tm,
                        kind: "approval",
                        label: format!(
                            "baseline {} approved by {} ({})",
                            a.snapshot, a.approver, a.ticket
                        ),
                    });
                }
            }
            vault::history::Record::Drill(r) => {
                if let Some(tm) = t(&r.time) {
                    events.push(Event {
                        time: tm,
                        kind: if r.passed { "drill" } else { "drill-failed" },
                        label: format!(
                            "drill of {} {}",
                            r.snapshot,
                            if r.passed { "passed" } else { "FAILED" }
                        ),
                    });
                }
            }
            vault::history::Record::Failure(f) => {
                if let Some(tm) = t(&f.time) {
                    events.push(Event {
                        time: tm,
                        kind: "failure",
                        label: format!("collection failed: {}", f.error),
                    });
                }
            }
            vault::history::Record::Forgotten(_) => {}
        }
    }
    events.retain(|e| e.time >= from && e.time <= now + Duration::from_secs(300));
    let mut body = String::new();
    if d.restore_target {
        body.push_str("<p id=\"restore-target\">A restore target: writable and never collected (a spare CPU or a test bench), so it has no snapshots of its own and no backup alarms; drills restore onto it.</p>");
    }
    let _ = write!(
        body,
        "<p>adapter {} · last good backup {} ({}) · alarms {}</p>",
        d.adapter,
        d.last_good_backup
            .as_ref()
            .map_or("-".into(), |s| esc(&s.time)),
        age(d.backup_age_seconds),
        alarms(d)
    );
    let _ = write!(
        body,
        "<h2>The last {TIMELINE_DAYS} days</h2>{}",
        timeline(&events, from, now)
    );
    if !snapshots.is_empty() {
        let _ = write!(
            body,
            "<h2>Compare</h2><form id=\"compare\" method=\"get\" action=\"/device/{}/diff\">",
            url(&d.device)
        );
        let options = |sel: Option<&str>| {
            let mut o = String::new();
            for x in snapshots.iter().rev() {
                let s = if sel == Some(x.id.as_str()) {
                    " selected"
                } else {
                    ""
                };
                let _ = write!(
                    o,
                    "<option value=\"{}\"{s}>{} {}</option>",
                    esc(&x.id),
                    esc(&x.id),
                    esc(&x.time)
                );
            }
            o
        };
        let _ = write!(
            body,
            "snapshot <select name=\"snapshot\">{}</select> against <select name=\"against\"><option value=\"baseline\">the baseline</option>{}</select> <button>compare</button></form>",
            options(None),
            options(None)
        );
    }
    body.push_str("<h2>Snapshots</h2><table id=\"snapshots\"><tr><th>id</th><th>time</th><th>complete</th><th>artifacts</th><th>bytes</th><th></th></tr>");
    for x in snapshots.iter().rev() {
        let _ = write!(
            body,
            "<tr class=\"snapshot\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/device/{u}/diff?snapshot={id}&amp;against=baseline\">against the baseline</a></td></tr>",
            esc(&x.time),
            if x.complete {
                "yes"
            } else {
                "<span class=\"alarm\">no</span>"
            },
            x.artifacts,
            crate::output::human_bytes(x.bytes),
            id = esc(&x.id),
            u = url(&d.device),
        );
    }
    body.push_str("</table>");
    html(
        StatusCode::OK,
        page(&format!("{}: {}", b.report.site, d.device), Some(&b), &body),
    )
}

/// The timeline as SVG drawn here: one row per kind of event, one mark per event (its
/// `<title>` the detail), days along the bottom.
fn timeline(events: &[Event], from: SystemTime, to: SystemTime) -> String {
    const W: f64 = 900.0;
    const LEFT: f64 = 90.0;
    let rows = [
        ("backup", "backups", "#2a7"),
        ("failure", "failures", "#c22"),
        ("approval", "approvals", "#24a"),
        ("drill", "drills", "#2a7"),
        ("drill-failed", "failed drills", "#c22"),
        ("drift", "drift", "#d80"),
    ];
    let span = to
        .duration_since(from)
        .unwrap_or_default()
        .as_secs_f64()
        .max(1.0);
    let height = 24.0 * rows.len() as f64 + 30.0;
    let mut s = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"timeline\">",
        W + LEFT + 10.0
    );
    for (i, (kind, label, color)) in rows.iter().enumerate() {
        let y = 24.0 * i as f64 + 16.0;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{label}</text><line x1=\"{LEFT}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>",
            y + 4.0,
            LEFT + W
        );
        for e in events.iter().filter(|e| e.kind == *kind) {
            let x = LEFT
                + W * e
                    .time
                    .duration_since(from)
                    .unwrap_or_default()
                    .as_secs_f64()
                    / span;
            let _ = write!(
                s,
                "<circle class=\"ev ev-{kind}\" cx=\"{x:.1}\" cy=\"{y}\" r=\"5\" fill=\"{color}\"><title>{} {}</title></circle>",
                humantime::format_rfc3339_seconds(e.time),
                esc(&e.label)
            );
        }
    }
    let base = 24.0 * rows.len() as f64 + 16.0;
    for d in (0..=TIMELINE_DAYS).step_by(15) {
        let x = LEFT + W * (d as f64 * 86400.0) / span;
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{base}\" font-size=\"11\" fill=\"#666\">-{}d</text>",
            TIMELINE_DAYS - d
        );
    }
    s.push_str("</svg>");
    s
}

pub async fn diff(s: Shared, name: Name, q: Q<DiffQuery>) -> Response {
    let s = s.0;
    let (name, q) = match (name, q) {
        (Ok(n), Ok(q)) => (n.0, q),
        (Err(e), _) => return bad_request(&s, e.body_text()).await,
        (_, Err(e)) => return bad_request(&s, e.body_text()).await,
    };
    let b = match built(&s).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(dev) = s.cfg.devices.iter().find(|d| d.name == *name).cloned() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "no device of that name in the config",
            Some(&b),
        );
    };
    if b.report
        .devices
        .iter()
        .any(|d| d.device == *name && d.restore_target)
    {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!(
                "`{name}` is a restore target (writable, never collected): it has no snapshots to compare; drills restore onto it"
            ),
            Some(&b),
        );
    }
    let (me, built) = (s.clone(), b.clone());
    let q = q.0;
    let page_html = tokio::task::spawn_blocking(move || {
        // From the history the banner above it verified, not a newer reading.
        crate::review::baseline::review_page(
            &me.cfg,
            &built.history,
            &dev,
            q.snapshot.as_deref().filter(|x| !x.is_empty()),
            q.against
                .as_deref()
                .filter(|x| !x.is_empty())
                .unwrap_or("baseline"),
        )
    })
    .await;
    match page_html {
        Ok(Ok(p)) => html(StatusCode::OK, with_banner(p, &b)),
        // A snapshot that is not there is the visitor's mistake; anything else reading
        // the vault failed on is damage until shown otherwise.
        Ok(Err(e))
            if e.downcast_ref::<crate::config::NoSnapshot>().is_some()
                || format!("{e:#}").starts_with("no snapshot") =>
        {
            error_page(StatusCode::NOT_FOUND, &format!("{e:#}"), Some(&b))
        }
        Ok(Err(e)) => damaged(&b, &format!("{e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// A page the vault could not be read for: said as possible damage, with the banner.
fn damaged(b: &Built, why: &str) -> Response {
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        page(
            "the vault could not be read for this page",
            Some(b),
            &format!(
                "<div class=\"banner\" id=\"damage\">VAULT DAMAGE? {}<br>The log's verification does not read every manifest and pack: run <code>plcvault verify --full --read-data</code>.</div>",
                lines(why)
            ),
        ),
    )
}

/// Text as escaped lines joined by line breaks.
fn lines(s: &str) -> String {
    s.lines().map(esc).collect::<Vec<_>>().join("<br>")
}

/// A page made elsewhere (the change review, the auditor's page) with the dashboard's
/// header and integrity banner put in after its `<body>`.
fn with_banner(p: String, b: &Built) -> String {
    let head = page("", Some(b), "");
    let start = head.find("<header>").unwrap_or(0);
    let end = head.find("<main>").unwrap_or(head.len());
    let bar = &head[start..end];
    match p.find("<body>") {
        Some(i) => format!("{}{STYLE}{bar}{}", &p[..i + 6], &p[i + 6..]),
        None => p,
    }
}

pub async fn audit(s: Shared) -> Response {
    match built(&s.0).await {
        Ok(b) => html(
            StatusCode::OK,
            with_banner(crate::review::report::html(&b.report), &b),
        ),
        Err(r) => r,
    }
}

pub async fn metrics(s: Shared) -> Response {
    match built(&s.0).await {
        Ok(b) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::review::report::prometheus(&b.report),
        )
            .into_response(),
        Err(r) => r,
    }
}
