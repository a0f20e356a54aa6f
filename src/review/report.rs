//! The fleet report: per device the last good backup and its age, the last failure, the
//! approved baseline, drift, the last drill, and alarms; as text, JSON, a Prometheus
//! textfile for node_exporter, and an HTML page an auditor reads, mapping the evidence to
//! IEC 62443-3-3 SR 3.4, 7.3, 7.4 and the NIS2 recovery-test duty.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;
use vault::{ApprovalRecord, DrillRecord, Index, SnapshotRecord, VerifyOptions};

use crate::config::Config;
use crate::output::{Out, Outcome};
use crate::review::html::{CSP, esc};

#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub seq: u64,
    pub time: String,
    pub error: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceStatus {
    pub device: String,
    pub adapter: &'static str,
    pub last_collection: Option<SnapshotRecord>,
    pub last_good_backup: Option<SnapshotRecord>,
    pub backup_age_seconds: Option<u64>,
    pub last_failure: Option<Failure>,
    pub baseline: Option<ApprovalRecord>,
    /// `None` without a baseline.
    pub drift: Option<bool>,
    pub drift_findings: usize,
    pub last_drill: Option<DrillRecord>,
    pub last_passed_drill: Option<DrillRecord>,
    pub alarms: Vec<String>,
    /// The drift figures come from the comparison `collect` made and signed for this very
    /// snapshot (false: compared by this report).
    pub compared_at_collect: bool,
    /// Set when the config's comparison rules or kinds differ from the approved ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules_note: Option<String>,
    /// Why the comparison with the baseline could not run (damaged vault), if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison_error: Option<String>,
    /// A writable device never collected: a restore target, exempt from backup alarms.
    pub restore_target: bool,
    /// Part of the nightly run; `false` (`nightly = false`): exempt from the backup,
    /// baseline and drill alarms.
    pub nightly: bool,
}

impl DeviceStatus {
    /// Whether the device counts in the auditor's requirements (a restore target and a
    /// device out of the nightly run do not).
    fn counts(&self) -> bool {
        !self.restore_target && self.nightly
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct LogStatus {
    pub intact: bool,
    pub entries: u64,
    pub head_seq: Option<u64>,
    pub head_hash: Option<vault::Hash>,
    pub findings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `[site] name`.
    pub site: String,
    pub generated: String,
    pub vault: String,
    pub backup_max_age_seconds: u64,
    pub drill_max_age_seconds: u64,
    pub log: LogStatus,
    pub devices: Vec<DeviceStatus>,
    /// Offline copies (`plcvault copy`), newest first, one per disk.
    pub offline: OfflineStatus,
}

/// The site's offline copies and their alarm (IEC 62443-3-3 SR 7.3: backups kept apart
/// from the system they protect).
#[derive(Clone, Debug, serde::Serialize)]
pub struct OfflineStatus {
    pub max_age_seconds: u64,
    pub disks: Vec<DiskStatus>,
    /// `no-offline-copy` when the newest copy is older than the maximum age (or there is
    /// none and `[report] offline-max-age` is set).
    pub alarms: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DiskStatus {
    pub disk: String,
    pub label: String,
    pub target: String,
    pub time: String,
    pub age_seconds: Option<u64>,
    /// The replica holds entries 1 to `size`; `behind`: entries written since.
    pub size: u64,
    pub behind: u64,
    pub bytes: u64,
    /// The log entry that records the copy.
    pub seq: u64,
}

fn age(now: SystemTime, time: &str) -> Option<Duration> {
    humantime::parse_rfc3339(time)
        .ok()
        .map(|t| now.duration_since(t).unwrap_or_default())
}

/// When the report cannot be built (no vault, a config that does not load): never leave
/// an older textfile claiming all is well; an alerting rule on `plcvault_log_intact` or
/// `plcvault_report_success` must fire.
pub fn write_failed_metrics(path: &Path, out: &Out) {
    let text = format!(
        "# HELP plcvault_report_success 1 when the report could be built.\n# TYPE plcvault_report_success gauge\nplcvault_report_success 0\n# HELP plcvault_log_intact 1 when verification found nothing.\n# TYPE plcvault_log_intact gauge\nplcvault_log_intact 0\n# HELP plcvault_report_timestamp_seconds When the report ran.\n# TYPE plcvault_report_timestamp_seconds gauge\nplcvault_report_timestamp_seconds {}\n",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    if let Err(we) = write_textfile(path, &text) {
        out.warn(format!("{we:#}"));
    }
}

/// Writes `text` to `path` through a temp file beside it and a rename.
fn write_textfile(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp-plcvault");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Builds the report.
///
/// Fails when the vault cannot be read.
pub fn build(cfg: &Config, now: SystemTime) -> Result<Report> {
    build_with_history(cfg, now).map(|(report, _)| report)
}

/// `build`, and the history the report was read from (the dashboard draws its pages from
/// both: a page never shows a newer reading of the log than the verification above it).
pub fn build_with_history(cfg: &Config, now: SystemTime) -> Result<(Report, vault::History)> {
    let vault = cfg.vault_for_reading()?;
    // Verify first: its own reading of the log is dropped before this one is made, so a
    // long log is held once, not twice.
    let verify = vault::verify(
        &vault,
        &cfg.trust,
        &VerifyOptions {
            stale_after: cfg.vault.stale_after,
            state_dir: Some(cfg.vault.state.clone()),
            update_state: false,
            now,
            ..Default::default()
        },
    )?;
    let history = cfg.history(&vault)?;
    let (index, _) = Index::load_reading(&vault, &history);
    let log = LogStatus {
        intact: verify.is_clean(),
        entries: verify.entries,
        head_seq: verify.head_seq,
        head_hash: verify.head_hash,
        findings: verify.findings.iter().map(|f| f.to_string()).collect(),
    };
    let ahead = |time: &str| {
        humantime::parse_rfc3339(time).is_ok_and(|t| t > now + vault::verify::DEFAULT_CLOCK_SKEW)
    };
    let mut devices = Vec::new();
    for d in &cfg.devices {
        let summary = history.device(&d.name);
        let last_collection = summary.and_then(|s| s.latest.clone());
        // A backup dated ahead of this clock (a writer's clock was wrong, even if accepted
        // in a recovery) does not count as recent: alarms look at the ones dated before now.
        let last_good_backup = match summary.and_then(|s| s.latest_complete.clone()) {
            Some(s) if ahead(&s.time) => history
                .snapshots_of(&d.name)
                .into_iter()
                .rev()
                .find(|s| s.complete && !ahead(&s.time)),
            s => s,
        };
        let backup_age = last_good_backup.as_ref().and_then(|s| age(now, &s.time));
        let backup_age_seconds = backup_age.map(|a| a.as_secs());
        let last_failure = summary
            .and_then(|s| s.last_failure.clone())
            .map(|f| Failure {
                seq: f.seq,
                time: f.time,
                error: f.error,
            });
        let baseline = history.baseline(&d.name);
        let mut comparison_error = None;
        let mut rules_note = None;
        let mut compared_at_collect = false;
        let (drift, drift_findings) = match (&baseline, &last_collection) {
            // What collect concluded about this very snapshot, approval and rules, when the
            // log is intact and casts no doubt on the baseline.
            (Some(b), Some(s))
                if log.intact
                    && history.doubts_after(b.seq).is_empty()
                    && let Some(c) = crate::review::baseline::cached_summary(
                        &cfg.vault.state,
                        &cfg.trust,
                        &d.name,
                        &crate::review::baseline::summary_key(&s.entry, &b.entry, d),
                    ) =>
            {
                rules_note = c.rules_note;
                compared_at_collect = true;
                (Some(c.serious > 0), c.serious)
            }
            (Some(_), Some(s)) => {
                // A damaged vault is reported, never a reason to report nothing: a
                // comparison that cannot run is an alarm of its own.
                let compared = vault::manifest::load(vault.root(), &s.manifest)
                    .map_err(anyhow::Error::from)
                    .and_then(|m| {
                        let read = |a: &vault::ArtifactEntry| {
                            vault::read_artifact(
                                &vault,
                                &index,
                                a,
                                crate::review::diff::view_limit(a),
                            )
                            .ok()
                        };
                        crate::review::baseline::review_against_baseline(
                            &vault,
                            &index,
                            &history,
                            d,
                            &m,
                            s.id.clone(),
                            &read,
                        )
                    });
                match compared {
                    Ok(rv) => {
                        rules_note = rv.rules_note.clone();
                        let n = rv
                            .comparison
                            .findings
                            .iter()
                            .filter(|f| f.severity >= crate::review::diff::Severity::Warning)
                            .count();
                        (Some(n > 0), n)
                    }
                    Err(e) => {
                        comparison_error = Some(
                            format!("{e:#}")
                                .lines()
                                .next()
                                .unwrap_or_default()
                                .to_string(),
                        );
                        (None, 0)
                    }
                }
            }
            _ => (None, 0),
        };
        let last_drill = summary.and_then(|s| s.last_drill.clone());
        let last_passed_drill = match summary.and_then(|s| s.last_passed_drill.clone()) {
            Some(r) if ahead(&r.time) => history
                .drills(Some(&d.name))
                .into_iter()
                .rev()
                .find(|r| r.passed && !ahead(&r.time)),
            r => r,
        };
        let mut alarms = Vec::new();
        match backup_age {
            None => alarms.push("no-good-backup".to_string()),
            Some(a) if a > cfg.report.backup_max_age => alarms.push("backup-too-old".to_string()),
            _ => {}
        }
        match last_passed_drill.as_ref().and_then(|r| age(now, &r.time)) {
            None => alarms.push("no-passed-drill".to_string()),
            Some(a) if a > cfg.report.drill_max_age => alarms.push("drill-overdue".to_string()),
            _ => {}
        }
        if last_drill.as_ref().is_some_and(|r| !r.passed) {
            alarms.push("last-drill-failed".to_string());
        }
        if baseline.is_none() {
            alarms.push("no-baseline".to_string());
        }
        if drift == Some(true) {
            alarms.push("drift".to_string());
        }
        if comparison_error.is_some() {
            alarms.push("comparison-failed".to_string());
        }
        if !log.intact {
            alarms.push("log-integrity".to_string());
        }
        // A writable device that is never collected is a restore target (a spare CPU or a
        // simulator on the test bench), not a device to back up.
        let restore_target = d.writable() && last_collection.is_none();
        if restore_target || !d.nightly {
            alarms.retain(|a| a == "log-integrity");
        }
        devices.push(DeviceStatus {
            device: d.name.clone(),
            adapter: d.adapter_name(),
            last_collection,
            last_good_backup,
            backup_age_seconds,
            last_failure,
            baseline,
            drift,
            drift_findings,
            last_drill,
            last_passed_drill,
            alarms,
            compared_at_collect,
            rules_note,
            comparison_error,
            restore_target,
            nightly: d.nightly,
        });
    }
    let mut disks: Vec<DiskStatus> = history
        .summary
        .copies
        .values()
        .map(|c| DiskStatus {
            disk: c.disk.clone(),
            label: c.label.clone(),
            target: c.target.clone(),
            time: c.time.clone(),
            age_seconds: age(now, &c.time).map(|a| a.as_secs()),
            size: c.size,
            behind: history.summary.size.saturating_sub(c.size),
            bytes: c.total_bytes,
            seq: c.seq,
        })
        .collect();
    disks.sort_by(|a, b| b.time.cmp(&a.time));
    // A replica on an object store (`push`, target s3://…) is listed too, but is online:
    // only removable media count for the offline alarm.
    let newest = disks
        .iter()
        .find(|d| !d.target.starts_with("s3://"))
        .and_then(|d| d.age_seconds);
    let stale = match newest {
        Some(a) => a > cfg.report.offline_max_age.as_secs(),
        None => cfg.report.offline_asked,
    };
    let offline = OfflineStatus {
        max_age_seconds: cfg.report.offline_max_age.as_secs(),
        disks,
        alarms: if stale {
            vec!["no-offline-copy".to_string()]
        } else {
            Vec::new()
        },
    };
    let report = Report {
        offline,
        site: cfg.site.clone(),
        generated: humantime::format_rfc3339_seconds(now).to_string(),
        vault: vault.root().display().to_string(),
        backup_max_age_seconds: cfg.report.backup_max_age.as_secs(),
        drill_max_age_seconds: cfg.report.drill_max_age.as_secs(),
        log,
        devices,
    };
    Ok((report, history))
}

fn human_age(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        // Under a minute in seconds; longer in whole minutes and up.
        Some(s) if s < 60 => format!("{s}s"),
        Some(s) => humantime::format_duration(Duration::from_secs(s - s % 60)).to_string(),
    }
}

/// The Prometheus text exposition for node_exporter's textfile collector.
pub fn prometheus(r: &Report) -> String {
    let mut m = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(
            m,
            "# HELP plcvault_{name} {help}\n# TYPE plcvault_{name} gauge"
        );
        for (labels, v) in rows {
            let _ = writeln!(m, "plcvault_{name}{labels} {v}");
        }
    };
    let dl = |d: &DeviceStatus| format!("{{device=\"{}\"}}", d.device.replace('"', ""));
    let ts = |t: &str| {
        humantime::parse_rfc3339(t)
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    gauge(
        "report_success",
        "1 when the report could be built.",
        vec![(String::new(), 1.0)],
    );
    gauge(
        "log_intact",
        "1 when verification (as plcvault verify: every entry's signature and chain link, the manifests of entries since the last check) found nothing; verify --full and --read-data check every manifest and pack.",
        vec![(String::new(), r.log.intact as u8 as f64)],
    );
    gauge(
        "log_entries",
        "Entries in the signed log.",
        vec![(String::new(), r.log.entries as f64)],
    );
    gauge(
        "device_monitored",
        "1 when the backup, baseline and drill alarms apply to the device; 0 for a restore target or a device with nightly = false (join alert rules on it).",
        r.devices
            .iter()
            .map(|d| (dl(d), d.counts() as u8 as f64))
            .collect(),
    );
    gauge(
        "last_backup_timestamp_seconds",
        "Time of the last complete snapshot.",
        r.devices
            .iter()
            .filter_map(|d| Some((dl(d), ts(&d.last_good_backup.as_ref()?.time)?)))
            .collect(),
    );
    gauge(
        "backup_age_seconds",
        "Age of the last complete snapshot.",
        r.devices
            .iter()
            .filter_map(|d| Some((dl(d), d.backup_age_seconds? as f64)))
            .collect(),
    );
    gauge(
        "baseline_approved",
        "1 when the device has an approved baseline.",
        r.devices
            .iter()
            .map(|d| (dl(d), d.baseline.is_some() as u8 as f64))
            .collect(),
    );
    gauge(
        "drift",
        "1 when the newest snapshot differs from the approved baseline (warning or above).",
        r.devices
            .iter()
            .filter_map(|d| Some((dl(d), d.drift? as u8 as f64)))
            .collect(),
    );
    gauge(
        "drift_findings",
        "Findings at warning or above against the baseline.",
        r.devices
            .iter()
            .map(|d| (dl(d), d.drift_findings as f64))
            .collect(),
    );
    gauge(
        "last_drill_passed",
        "1 when the last restore drill passed.",
        r.devices
            .iter()
            .filter_map(|d| Some((dl(d), d.last_drill.as_ref()?.passed as u8 as f64)))
            .collect(),
    );
    gauge(
        "last_passed_drill_timestamp_seconds",
        "Time of the last passed restore drill.",
        r.devices
            .iter()
            .filter_map(|d| Some((dl(d), ts(&d.last_passed_drill.as_ref()?.time)?)))
            .collect(),
    );
    gauge(
        "drill_restore_seconds",
        "Time to restore in the last drill.",
        r.devices
            .iter()
            .filter_map(|d| Some((dl(d), d.last_drill.as_ref()?.restore_ms as f64 / 1000.0)))
            .collect(),
    );
    gauge(
        "alarm",
        "1 per active alarm.",
        r.devices
            .iter()
            .flat_map(|d| {
                d.alarms
                    .iter()
                    .map(move |a| (format!("{{device=\"{}\",alarm=\"{a}\"}}", d.device), 1.0))
            })
            .chain(
                r.offline
                    .alarms
                    .iter()
                    .map(|a| (format!("{{device=\"\",alarm=\"{a}\"}}"), 1.0)),
            )
            .collect(),
    );
    gauge(
        "offline_copy_age_seconds",
        "Age of the newest offline copy on each disk (plcvault copy).",
        r.offline
            .disks
            .iter()
            .filter_map(|d| {
                Some((
                    format!(
                        "{{disk=\"{}\",label=\"{}\"}}",
                        d.disk,
                        d.label
                            .chars()
                            .map(|c| if c.is_control() || c == '"' || c == '\\' {
                                '_'
                            } else {
                                c
                            })
                            .collect::<String>()
                    ),
                    d.age_seconds? as f64,
                ))
            })
            .collect(),
    );
    m
}

/// `90 days`, `26 h`, `45 min` — what an auditor reads, not `2months 29days 2h`.
fn limit(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 && s.is_multiple_of(86400) {
        format!("{} days", s / 86400)
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// The auditor's page.
pub fn html(r: &Report) -> String {
    let ok = |b: bool| {
        if b {
            "<span class=\"ok\">met</span>"
        } else {
            "<span class=\"bad\">NOT MET</span>"
        }
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{CSP}<title>plcvault backup and recovery report: {}</title><style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#111}} h1{{font-size:1.4em}} h2{{font-size:1.15em;margin-top:1.5em;border-bottom:1px solid #999}}
table{{border-collapse:collapse}} td,th{{border:1px solid #bbb;padding:.2em .5em;text-align:left;vertical-align:top}} code{{font-size:12px}}
.ok{{color:#070;font-weight:bold}} .bad{{color:#a00;font-weight:bold}} @media print{{body{{margin:1cm}}}}
</style></head><body><h1>plcvault backup and recovery report: {}</h1><p>Generated {} from vault <code>{}</code> by plcvault {}.
Every line cites its evidence: log entry numbers and SHA-256 hashes that <code>plcvault verify</code> checks with the pinned public keys.</p>",
        esc(&r.site),
        esc(&r.site),
        r.generated,
        esc(&r.vault),
        env!("CARGO_PKG_VERSION")
    );
    let _ = write!(
        h,
        "<h2>Log integrity</h2><p>{} — {} entries, head #{} <code>{}</code>.</p>",
        ok(r.log.intact),
        r.log.entries,
        r.log.head_seq.unwrap_or(0),
        r.log.head_hash.map(|x| x.to_hex()).unwrap_or_default()
    );
    for f in &r.log.findings {
        let _ = write!(h, "<p class=\"bad\">{}</p>", esc(f));
    }
    let devices_ok =
        |pred: &dyn Fn(&DeviceStatus) -> bool| r.devices.iter().filter(|d| d.counts()).all(pred);
    let _ = write!(
        h,
        "<h2>IEC 62443-3-3 SR 3.4 — software and information integrity</h2><p>{}: every device has an approved baseline and its newest snapshot matches it.</p><table><tr><th>device</th><th>baseline (approval)</th><th>approved by, ticket</th><th>newest snapshot</th><th>status</th></tr>",
        ok(r.log.intact && devices_ok(&|d| d.drift == Some(false)))
    );
    for d in r.devices.iter().filter(|d| d.counts()) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.device),
            d.baseline
                .as_ref()
                .map(|b| format!(
                    "snapshot {} (approval #{} <code>{}</code>, {})",
                    b.snapshot,
                    b.seq,
                    b.entry.short(),
                    b.time
                ))
                .unwrap_or("none".into()),
            d.baseline
                .as_ref()
                .map(|b| esc(&format!("{}, {}", b.approver, b.ticket)))
                .unwrap_or_default(),
            d.last_collection
                .as_ref()
                .map(|s| format!("{} (#{} <code>{}</code>)", s.time, s.seq, s.entry.short()))
                .unwrap_or("none".into()),
            match d.drift {
                Some(false) => "<span class=\"ok\">matches</span>".to_string(),
                Some(true) => format!(
                    "<span class=\"bad\">drift: {} finding(s)</span>",
                    d.drift_findings
                ),
                None => "<span class=\"bad\">no baseline</span>".into(),
            }
        );
    }
    h.push_str("</table>");
    let max_b = Duration::from_secs(r.backup_max_age_seconds);
    let _ = write!(
        h,
        "<h2>IEC 62443-3-3 SR 7.3 — control system backup</h2><p>{}: every device has a complete, signed backup younger than {}.</p><table><tr><th>device</th><th>last good backup</th><th>age</th><th>evidence</th><th>last failure</th></tr>",
        ok(devices_ok(&|d| d
            .backup_age_seconds
            .is_some_and(|a| a <= r.backup_max_age_seconds))),
        limit(max_b)
    );
    for d in r.devices.iter().filter(|d| d.counts()) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.device),
            d.last_good_backup
                .as_ref()
                .map(|s| s.time.clone())
                .unwrap_or("none".into()),
            human_age(d.backup_age_seconds),
            d.last_good_backup
                .as_ref()
                .map(|s| format!(
                    "log #{} <code>{}</code>, manifest <code>{}</code>",
                    s.seq, s.entry, s.manifest
                ))
                .unwrap_or_default(),
            d.last_failure
                .as_ref()
                .map(|f| esc(&format!("#{} {}: {}", f.seq, f.time, f.error)))
                .unwrap_or("-".into())
        );
    }
    h.push_str("</table>");
    // Offline copies: the backups kept apart from the system they protect.
    let _ = write!(
        h,
        "<p>Offline copies ({}): {}.</p><table><tr><th>disk</th><th>label</th><th>copied</th><th>age</th><th>entries held</th><th>evidence</th></tr>",
        if r.offline.alarms.is_empty() {
            "<span class=\"ok\">current</span>".to_string()
        } else {
            "<span class=\"bad\">no-offline-copy</span>".to_string()
        },
        esc(&format!(
            "the newest must be younger than {}",
            limit(Duration::from_secs(r.offline.max_age_seconds))
        ))
    );
    for d in &r.offline.disks {
        let _ = write!(
            h,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>1 to {} ({} behind)</td><td>log #{}</td></tr>",
            esc(&d.disk),
            esc(&d.label),
            esc(&d.time),
            human_age(d.age_seconds),
            d.size,
            d.behind,
            d.seq
        );
    }
    h.push_str("</table>");
    let max_d = Duration::from_secs(r.drill_max_age_seconds);
    let drill_met = devices_ok(&|d| {
        d.last_passed_drill.is_some()
            && !d
                .alarms
                .iter()
                .any(|a| a == "drill-overdue" || a == "last-drill-failed")
    });
    let _ = write!(
        h,
        "<h2>IEC 62443-3-3 SR 7.4 — control system recovery and reconstitution</h2><p>{}: every device's backup was restored, read back and proved hash-equal within {}.</p><table><tr><th>device</th><th>last drill</th><th>result</th><th>time to restore</th><th>target</th><th>evidence</th></tr>",
        ok(drill_met),
        limit(max_d)
    );
    for d in r.devices.iter().filter(|d| d.counts()) {
        match &d.last_drill {
            Some(x) => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2} s</td><td>{}</td><td>log #{} <code>{}</code>, snapshot {}</td></tr>",
                    esc(&d.device),
                    x.time,
                    if x.passed {
                        "<span class=\"ok\">passed</span>"
                    } else {
                        "<span class=\"bad\">FAILED</span>"
                    },
                    x.restore_ms as f64 / 1000.0,
                    esc(&x.target),
                    x.seq,
                    x.entry,
                    x.snapshot
                );
            }
            None => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td colspan=\"5\" class=\"bad\">no drill recorded</td></tr>",
                    esc(&d.device)
                );
            }
        }
    }
    h.push_str("</table>");
    let _ = write!(
        h,
        "<h2>NIS2 Art. 21(2)(c) — backup management and regular recovery tests with documented results</h2><p>{}: backups are current (SR 7.3 above) and a signed, passed recovery test is on record for every device within {}. The drill records above are the documented results.</p>",
        ok(drill_met
            && devices_ok(&|d| d
                .backup_age_seconds
                .is_some_and(|a| a <= r.backup_max_age_seconds))),
        limit(max_d)
    );
    let outside: Vec<String> = r
        .devices
        .iter()
        .filter(|d| !d.counts())
        .map(|d| {
            format!(
                "<code>{}</code> ({})",
                esc(&d.device),
                if d.restore_target {
                    "a restore target: writable, never collected"
                } else {
                    "nightly = false: not part of the nightly run"
                }
            )
        })
        .collect();
    if !outside.is_empty() {
        let _ = write!(h, "<p>Not counted above: {}.</p>", outside.join(", "));
    }
    h.push_str("<h2>Alarms</h2><ul>");
    let mut any = false;
    for a in &r.offline.alarms {
        any = true;
        let _ = write!(h, "<li class=\"bad\">site: {a}</li>");
    }
    for d in &r.devices {
        for a in &d.alarms {
            any = true;
            let _ = write!(h, "<li class=\"bad\">{}: {a}</li>", esc(&d.device));
        }
    }
    if !any {
        h.push_str("<li class=\"ok\">none</li>");
    }
    h.push_str("</ul></body></html>\n");
    h
}

/// `plcvault report`.
///
/// Fails when the vault cannot be read or an output file cannot be written.
pub fn run(
    cfg: &Config,
    html_out: Option<&Path>,
    prom_out: Option<&Path>,
    out: &Out,
) -> Result<Outcome> {
    let r = match build(cfg, SystemTime::now()) {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = prom_out {
                write_failed_metrics(p, out);
            }
            return Err(e);
        }
    };
    for d in &r.devices {
        if d.restore_target {
            out.record("device-status", d, || {
                format!("{:<16} restore target (writable, not collected)", d.device)
            });
            continue;
        }
        if !d.nightly {
            out.record("device-status", d, || {
                format!(
                    "{:<16} not in the nightly run (nightly = false): no backup, baseline or drill alarms",
                    d.device
                )
            });
            continue;
        }
        out.record("device-status", d, || {
            let note = d
                .rules_note
                .as_ref()
                .map(|n| format!("\n                 note: {n}"))
                .unwrap_or_default();
            format!(
                "{:<16} backup {:<24} age {:<10} baseline {:<26} drift {:<5} drill {:<28} alarms: {}",
                d.device,
                d.last_good_backup.as_ref().map(|s| s.time.as_str()).unwrap_or("none"),
                human_age(d.backup_age_seconds),
                d.baseline.as_ref().map(|b| format!("{} ({})", b.approver, b.ticket)).unwrap_or("none".into()),
                match d.drift {
                    Some(true) => "YES",
                    Some(false) => "no",
                    None => "-",
                },
                d.last_drill
                    .as_ref()
                    .map(|x| format!("{} {}", if x.passed { "passed" } else { "FAILED" }, &x.time[..10.min(x.time.len())]))
                    .unwrap_or("none".into()),
                if d.alarms.is_empty() { "none".to_string() } else { d.alarms.join(", ") }
            ) + &note
        });
    }
    for d in &r.offline.disks {
        out.record("offline-copy", d, || {
            format!(
                "offline copy     disk {} {:<16} {} age {:<10} entries 1 to {} ({} behind), {} bytes",
                &d.disk[..12.min(d.disk.len())],
                if d.label.is_empty() {
                    "-".into()
                } else {
                    crate::output::printable_inline(&d.label)
                },
                d.time,
                human_age(d.age_seconds),
                d.size,
                d.behind,
                d.bytes
            )
        });
    }
    if r.offline.disks.is_empty() && r.offline.alarms.is_empty() {
        out.info("no offline copy yet: `plcvault copy --to DIR` writes one (set [report] offline-max-age to raise no-offline-copy until then)");
    }
    for a in &r.offline.alarms {
        out.record("site-alarm", &serde_json::json!({"alarm": a}), || {
            format!(
                "ALARM {a}: no offline copy newer than {} (`plcvault copy --to DIR` on removable media)",
                human_age(Some(r.offline.max_age_seconds))
            )
        });
    }
    out.record(
        "report",
        &serde_json::json!({"generated": r.generated, "log_intact": r.log.intact, "entries": r.log.entries, "devices": r.devices.len(), "alarms": r.devices.iter().map(|d| d.alarms.len()).sum::<usize>() + r.offline.alarms.len()}),
        || format!("log {}: {} entries; {} device(s)", if r.log.intact { "intact" } else { "DAMAGED" }, r.log.entries, r.devices.len()),
    );
    if let Some(p) = html_out {
        write_textfile(p, &html(&r))?;
        out.info(format!("wrote the audit report {}", p.display()));
    }
    if let Some(p) = prom_out {
        write_textfile(p, &prometheus(&r))?;
        out.info(format!("wrote the Prometheus textfile {}", p.display()));
    }
    let alarms = r.devices.iter().any(|d| !d.alarms.is_empty()) || !r.offline.alarms.is_empty();
    Ok(if alarms || !r.log.intact {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
