//! Retention: `forget` decides which snapshots the policy no longer keeps and signs that
//! into the log; `prune` then deletes the data no kept snapshot needs
//! (`vault::prune`). Log entries are never removed: they are the audit trail.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use anyhow::{Result, bail};
use serde::Serialize;
use vault::SnapshotRecord;

use crate::config::{Config, Policy};
use crate::output::{Out, Outcome, human_bytes};

/// Seqs named by one `forget` entry, so that it stays well below the bundle limit.
const SEQS_PER_ENTRY: usize = 2_500;

/// Why a snapshot is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The device's newest snapshot, or newest complete one.
    Newest,
    NewestComplete,
    /// The current baseline, or one of the `keep-approved` before it.
    Baseline,
    ApprovedBefore,
    /// A drill within `drill-max-age` proved it.
    Drilled,
    /// The device drifts from its baseline (or whether it does is unknown): every
    /// snapshot since the approved one is kept until the drift is resolved.
    Drift,
    Last,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// One snapshot's fate.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub snapshot: SnapshotRecord,
    pub keep: Vec<Reason>,
}

/// What protects snapshots of a device beyond the policy.
#[derive(Default)]
pub struct Protect {
    /// Entry numbers of snapshots kept, with why.
    pub seqs: BTreeMap<u64, Vec<Reason>>,
}

impl Protect {
    fn add(&mut self, seq: u64, why: Reason) {
        let v = self.seqs.entry(seq).or_default();
        if !v.contains(&why) {
            v.push(why);
        }
    }
}

/// Applies `policy` to `snapshots` (oldest first), restic's way: the `keep-last` newest;
/// the newest of each of the last `keep-daily` days that have one (and weeks, months,
/// years alike), in `tz`. `protect` adds what must be kept whatever the policy says.
pub fn decide(
    snapshots: &[SnapshotRecord],
    policy: &Policy,
    tz: &jiff::tz::TimeZone,
    protect: &Protect,
) -> Vec<Decision> {
    type Key = fn(&jiff::civil::DateTime) -> (i32, i32, i32);
    let buckets: [(Option<u32>, Reason, Key); 4] = [
        (policy.keep_daily, Reason::Daily, |d| {
            (d.year().into(), d.month().into(), d.day().into())
        }),
        (policy.keep_weekly, Reason::Weekly, |d| {
            let w = d.date().iso_week_date();
            (w.year().into(), w.week().into(), 0)
        }),
        (policy.keep_monthly, Reason::Monthly, |d| {
            (d.year().into(), d.month().into(), 0)
        }),
        (policy.keep_yearly, Reason::Yearly, |d| {
            (d.year().into(), 0, 0)
        }),
    ];
    let mut out: Vec<Decision> = snapshots
        .iter()
        .rev()
        .map(|s| Decision {
            snapshot: s.clone(),
            keep: protect.seqs.get(&s.seq).cloned().unwrap_or_default(),
        })
        .collect();
    let civil: Vec<Option<jiff::civil::DateTime>> = out
        .iter()
        .map(|d| {
            d.snapshot
                .time
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| tz.to_datetime(t))
        })
        .collect();
    if let Some(n) = policy.keep_last {
        for d in out.iter_mut().take(n as usize) {
            d.keep.push(Reason::Last);
        }
    }
    for (n, why, key) in buckets {
        let Some(n) = n else { continue };
        let mut last = None;
        let mut left = n;
        for (d, c) in out.iter_mut().zip(&civil) {
            if left == 0 {
                break;
            }
            // A snapshot whose time does not parse is its own bucket: kept, never merged.
            let k = c.as_ref().map(key);
            if k.is_none() || k != last {
                d.keep.push(why.clone());
                left -= 1;
                last = k;
            }
        }
    }
    out.reverse();
    out
}

/// The protections of `device`: newest and newest complete, the baseline and the
/// `keep-approved` approved before it, snapshots a drill within `drill-max-age` proved,
/// and with drift (`drift` is not `Some(false)`) every snapshot since the approved one.
pub fn protections(
    history: &vault::History,
    device: &str,
    policy: &Policy,
    drift: Option<bool>,
    (now, drill_max_age): (SystemTime, std::time::Duration),
) -> Protect {
    let mut p = Protect::default();
    let snapshots = history.snapshots_of(device);
    if let Some(d) = history.device(device) {
        if let Some(s) = &d.latest {
            p.add(s.seq, Reason::Newest);
        }
        if let Some(s) = &d.latest_complete {
            p.add(s.seq, Reason::NewestComplete);
        }
    }
    let seq_of = |entry: &vault::Hash| snapshots.iter().find(|s| &s.entry == entry).map(|s| s.seq);
    let approvals = history.approvals(Some(device));
    let mut approved: Vec<u64> = Vec::new();
    for a in approvals.iter().rev() {
        if let Some(seq) = seq_of(&a.snapshot_entry)
            && !approved.contains(&seq)
        {
            approved.push(seq);
        }
    }
    for (i, seq) in approved
        .iter()
        .take(1 + policy.keep_approved as usize)
        .enumerate()
    {
        p.add(
            *seq,
            if i == 0 {
                Reason::Baseline
            } else {
                Reason::ApprovedBefore
            },
        );
    }
    for r in history.drills(Some(device)) {
        let recent = humantime::parse_rfc3339(&r.time)
            .ok()
            .is_some_and(|t| now.duration_since(t).unwrap_or_default() <= drill_max_age);
        if r.passed
            && recent
            && let Some(s) = snapshots.iter().find(|s| s.id == r.snapshot)
        {
            p.add(s.seq, Reason::Drilled);
        }
    }
    if drift != Some(false)
        && let Some(b) = history.baseline(device)
        && let Some(from) = seq_of(&b.snapshot_entry)
    {
        for s in snapshots.iter().filter(|s| s.seq >= from) {
            p.add(s.seq, Reason::Drift);
        }
    }
    p
}

#[derive(Serialize)]
struct DeviceForget<'a> {
    device: &'a str,
    policy: &'a Policy,
    kept: usize,
    forgotten: usize,
    decisions: &'a [Decision],
}

/// `forget [--dry-run]`: applies the retention policy and signs what it forgot into the
/// log (one or more `forget` entries). `drift` is each configured device's drift as the
/// report sees it (`None`: unknown, so every snapshot since its baseline is kept).
///
/// Fails when no policy is set, the vault does not verify, or the entry cannot be written.
pub fn forget(
    cfg: &Config,
    devices: Option<&[String]>,
    dry_run: bool,
    drift: &BTreeMap<String, Option<bool>>,
    out: &Out,
) -> Result<Outcome> {
    let r = &cfg.retention;
    if !r.policy.is_set() && !r.devices.values().any(Policy::is_set) {
        bail!(
            "no retention policy: {} has no keep-* key under [retention]\nfix: add for example `[retention]` with `keep-daily = 7` and `keep-weekly = 4` (see config.example.toml)",
            cfg.file.display()
        );
    }
    let key = if dry_run {
        None
    } else {
        Some(cfg.signing_key()?)
    };
    let vault = cfg.vault_for_writing(false)?;
    cfg.require_intact(
        &vault,
        false,
        (
            "forget",
            "retention decides from the log, which must be intact",
        ),
    )?;
    let history = cfg.history(&vault)?;
    let now = SystemTime::now();
    let tz = cfg.zone.tz();
    let wanted: Option<HashSet<&str>> =
        devices.map(|d| d.iter().map(String::as_str).collect::<HashSet<_>>());
    let mut forgotten: Vec<vault::log::Forgotten> = Vec::new();
    let (mut kept_n, mut forgot_n) = (0usize, 0usize);
    for device in history.summary.devices.keys() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(device.as_str()))
        {
            continue;
        }
        let policy = r.policy_for(device);
        if !policy.is_set() {
            continue;
        }
        let protect = protections(
            &history,
            device,
            policy,
            drift.get(device).copied().flatten(),
            (now, cfg.report.drill_max_age),
        );
        let decisions = decide(&history.snapshots_of(device), policy, &tz, &protect);
        let gone: Vec<u64> = decisions
            .iter()
            .filter(|d| d.keep.is_empty())
            .map(|d| d.snapshot.seq)
            .collect();
        let kept = decisions.len() - gone.len();
        kept_n += kept;
        forgot_n += gone.len();
        out.record(
            "forget-device",
            &DeviceForget {
                device,
                policy,
                kept,
                forgotten: gone.len(),
                decisions: &decisions,
            },
            || {
                let mut text = format!(
                    "{device}: keep {kept}, forget {} ({})",
                    gone.len(),
                    policy_text(policy)
                );
                for d in decisions.iter().rev().filter(|d| !d.keep.is_empty()) {
                    text.push_str(&format!(
                        "\n  keep   {} {} ({})",
                        d.snapshot.id,
                        d.snapshot.time,
                        d.keep
                            .iter()
                            .map(reason_text)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let n = gone.len();
                if n > 0 {
                    text.push_str(&format!(
                        "\n  forget {n} snapshot(s), from {} to {}",
                        decisions
                            .iter()
                            .find(|d| d.keep.is_empty())
                            .map_or("", |d| d.snapshot.time.as_str()),
                        decisions
                            .iter()
                            .rev()
                            .find(|d| d.keep.is_empty())
                            .map_or("", |d| d.snapshot.time.as_str())
                    ));
                }
                text
            },
        );
        for chunk in gone.chunks(SEQS_PER_ENTRY) {
            forgotten.push(vault::log::Forgotten {
                device: device.clone(),
                snapshots: chunk.to_vec(),
            });
        }
    }
    let mut entries = Vec::new();
    if let Some(key) = &key {
        // Group per entry without splitting a device's chunk.
        let mut batch: Vec<vault::log::Forgotten> = Vec::new();
        let mut n = 0;
        let policy = serde_json::json!({
            "policy": r.policy,
            "devices": r.devices,
            "zone": tz.iana_name().unwrap_or("local"),
        });
        let mut flush = |batch: &mut Vec<vault::log::Forgotten>| -> Result<()> {
            if batch.is_empty() {
                return Ok(());
            }
            let event = vault::log::Event::Forget {
                forgotten: std::mem::take(batch),
                policy: policy.clone(),
            };
            entries.push(vault::guard::append(&vault, key, &event)?.file_seq);
            Ok(())
        };
        for f in forgotten {
            if n + f.snapshots.len() > SEQS_PER_ENTRY {
                flush(&mut batch)?;
                n = 0;
            }
            n += f.snapshots.len();
            batch.push(f);
        }
        flush(&mut batch)?;
    }
    out.record(
        "summary",
        &serde_json::json!({"command": "forget", "dry_run": dry_run, "kept": kept_n, "forgotten": forgot_n, "entries": entries}),
        || match (dry_run, forgot_n, entries.as_slice()) {
            (true, _, _) => format!(
                "dry run: would keep {kept_n} snapshot(s) and forget {forgot_n}; nothing was signed"
            ),
            (false, 0, _) => format!("kept all {kept_n} snapshot(s); nothing to forget"),
            (false, _, e) => format!(
                "kept {kept_n} snapshot(s), forgot {forgot_n}: signed as log entr{} {}; `plcvault prune` deletes the data only they used",
                if e.len() == 1 { "y" } else { "ies" },
                e.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
        },
    );
    Ok(Outcome::Clean)
}

fn policy_text(p: &Policy) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (p.keep_last, "last"),
        (p.keep_daily, "daily"),
        (p.keep_weekly, "weekly"),
        (p.keep_monthly, "monthly"),
        (p.keep_yearly, "yearly"),
    ] {
        if let Some(n) = n {
            parts.push(format!("keep-{what} {n}"));
        }
    }
    parts.push(format!("keep-approved {}", p.keep_approved));
    parts.join(", ")
}

fn reason_text(r: &Reason) -> String {
    match r {
        Reason::Newest => "newest",
        Reason::NewestComplete => "newest complete",
        Reason::Baseline => "baseline",
        Reason::ApprovedBefore => "approved before",
        Reason::Drilled => "drill within drill-max-age",
        Reason::Drift => "unresolved drift",
        Reason::Last => "last",
        Reason::Daily => "daily",
        Reason::Weekly => "weekly",
        Reason::Monthly => "monthly",
        Reason::Yearly => "yearly",
    }
    .to_string()
}

/// `prune [--dry-run] [--max-unused P] [--grace D]`: deletes what no kept snapshot needs
/// (see `vault::prune`), alone on the vault.
///
/// Fails when another command is writing the vault, the vault does not verify, or on I/O
/// errors (nothing kept is lost: see `vault::prune`).
pub fn prune(
    cfg: &Config,
    dry_run: bool,
    max_unused: Option<f64>,
    grace: Option<std::time::Duration>,
    out: &Out,
) -> Result<Outcome> {
    let key = cfg.signing_key()?;
    let vault = vault::Vault::open(&cfg.vault.path)?
        .remembering(&cfg.vault.state)
        .hold(vault::Hold::Exclusive)?;
    vault::state::check_writable(&cfg.vault.state)?;
    vault::guard::check(&vault)?;
    cfg.require_intact(
        &vault,
        false,
        (
            "prune",
            "prune deletes what the log says no kept snapshot needs, so the log must be intact",
        ),
    )?;
    let history = cfg.history(&vault)?;
    let opts = vault::prune::PruneOptions {
        dry_run,
        max_unused: max_unused.unwrap_or(cfg.retention.max_unused),
        grace: grace.unwrap_or(cfg.retention.grace),
        now: SystemTime::now(),
    };
    let r = vault::prune::prune(&vault, &history, &key, &opts)?;
    out.record("prune", &r, || {
        let verb = if dry_run { "would free" } else { "freed" };
        let mut text = format!(
            "{} kept snapshot(s) use {} manifest(s); {} pack(s), {} before",
            r.kept_snapshots,
            r.kept_manifests,
            r.packs_before,
            human_bytes(r.bytes_before)
        );
        text.push_str(&format!(
            "\n  unused packs: {} ({}); repacked: {} ({}) into {} new ({})",
            r.packs_unused,
            human_bytes(r.bytes_unused),
            r.packs_repacked,
            human_bytes(r.bytes_repacked),
            r.packs_written,
            human_bytes(r.bytes_written)
        ));
        text.push_str(&format!(
            "\n  manifests only forgotten snapshots named: {}; leftovers of failed or killed runs: {} ({}), {} younger than the grace period kept",
            r.manifests_removed,
            r.leftovers_removed,
            human_bytes(r.leftover_bytes),
            r.leftovers_young
        ));
        text.push_str(&format!(
            "\n{verb} {}; packs now {} ({} unused)",
            human_bytes(r.freed),
            human_bytes(r.bytes_after),
            human_bytes(r.unused_after)
        ));
        if !r.entries.is_empty() {
            text.push_str(&format!(
                "; signed as log entr{} {}",
                if r.entries.len() == 1 { "y" } else { "ies" },
                r.entries
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if dry_run {
            text.push_str("; dry run: nothing was deleted or signed");
        }
        text
    });
    Ok(Outcome::Clean)
}
