//! Baselines: signed approvals by a named person, and comparisons against them.
//!
//! `baseline approve` appends an `approval` entry signed by a key the config trusts as
//! `approver` (a collector key is refused), naming the snapshot, ticket, reason and the
//! comparison rules in force. `diff` and `collect` compare with the newest approval using
//! the rules recorded in it, so editing the config cannot silence detection.

use std::path::Path;

use anyhow::{Context, Result, bail};
use vault::manifest::ArtifactStatus;
use vault::{ApprovalRecord, ArtifactEntry, History, Index, Manifest, Vault};

use crate::config::{Config, DeviceConfig};
use crate::output::{Out, Outcome};
use crate::review::diff::{
    Class, Comparison, DiffFinding, Rules, Severity, View, compare, view_limit,
};
use crate::review::html::{Review, print, write_html};

/// The rules recorded in an approval (defaults when unreadable, with a note).
fn approved_rules(a: &ApprovalRecord) -> (Rules, Option<String>) {
    match serde_json::from_value::<Rules>(a.rules.clone()) {
        Ok(mut r) => {
            // Classes that did not exist when it was approved take their defaults, as
            // the approval would have had them.
            for c in crate::config::rules::Class::ALL {
                r.severity
                    .entry(c)
                    .or_insert(crate::config::rules::default_severity(c));
            }
            (r, None)
        }
        Err(e) => (
            Rules::default(),
            Some(format!(
                "the approval's rules could not be read ({e}); default rules used"
            )),
        ),
    }
}

/// Compares `current` (a manifest and a way to read its contents) with the device's
/// baseline. Without a baseline the review holds one `no-baseline` finding.
pub fn review_against_baseline(
    vault: &Vault,
    index: &Index,
    history: &History,
    device: &DeviceConfig,
    current: &Manifest,
    current_label: String,
    read_current: &crate::review::diff::Reader,
) -> Result<Review> {
    let baseline = history.baseline(&device.name);
    // An untrusted (altered, malformed, missing) entry after the baseline may have been a
    // newer approval: a comparison with an older baseline is then suspect, never quiet.
    let doubts = history.doubts_after(baseline.as_ref().map_or(0, |b| b.seq));
    let doubt = (!doubts.is_empty()).then(|| DiffFinding {
        device: device.name.clone(),
        artifact: String::new(),
        change: "untrusted-log".into(),
        class: Class::Suspect,
        severity: Severity::Critical,
        summary: format!(
            "the comparison may use an older baseline than was approved: {} — run `plcvault verify`",
            doubts.join("; ")
        ),
        view: View::None,
    });
    let Some(baseline) = baseline else {
        let mut comparison = Comparison::default();
        comparison.findings.extend(doubt);
        comparison.findings.push(DiffFinding {
            device: device.name.clone(),
            artifact: String::new(),
            change: "no-baseline".into(),
            // About the device's approval, not its configuration.
            class: Class::Metadata,
            severity: Severity::Info,
            summary: format!(
                "`{}` has no approved baseline yet; review it, then approve it with the command this comparison shows",
                device.name
            ),
            view: View::None,
        });
        // A first approval signs the config's rules: what differs from the defaults is
        // shown, so that nobody signs a silenced device unawares.
        // (The kinds show in the artifact list the preview prints.)
        let defaults = crate::config::rules::Rules {
            kinds: device.rules.kinds.clone(),
            ..Default::default()
        };
        let (changes, weaker) = device.rules.changes_from(&defaults);
        let rules_note = (!changes.is_empty()).then(|| {
            format!(
                "an approval signs these comparison rules, which differ from the defaults: {}{}",
                changes.join("; "),
                if weaker {
                    " — WEAKER: some changes would no longer be reported"
                } else {
                    ""
                }
            )
        });
        return Ok(Review {
            device: device.name.clone(),
            against: "no baseline".into(),
            current: current_label,
            baseline: None,
            rules_note,
            comparison,
            content: content_of(current),
            rules: rules_value(device),
        });
    };
    let (rules, mut note) = approved_rules(&baseline);
    if note.is_none() && rules != device.rules {
        let (changes, weaker) = device.rules.changes_from(&rules);
        note = Some(format!(
            "the config's comparison rules differ from the approved ones ({}){}; the approved rules are used until an approval signs the new ones",
            changes.join("; "),
            if weaker {
                " — WEAKER: approving signs rules under which some changes are no longer reported"
            } else {
                ""
            }
        ));
    }
    let old = vault::manifest::load(vault.root(), &baseline.manifest)
        .with_context(|| format!("cannot read the baseline of `{}`", device.name))?;
    let read_old = |a: &ArtifactEntry| vault::read_artifact(vault, index, a, view_limit(a)).ok();
    let mut comparison = compare(&device.name, &old, current, &rules, &read_old, read_current);
    comparison.findings.splice(0..0, doubt);
    Ok(Review {
        device: device.name.clone(),
        against: format!("baseline {}", baseline.snapshot),
        current: current_label,
        baseline: Some(baseline),
        rules_note: note,
        comparison,
        content: content_of(current),
        rules: rules_value(device),
    })
}

/// What `baseline approve` was asked to do.
pub struct ApproveOptions<'a> {
    pub device: &'a str,
    pub snapshot: Option<&'a str>,
    pub key: &'a Path,
    pub ticket: &'a str,
    pub reason: &'a str,
    pub accept_suspect: bool,
    /// Ask on the terminal before signing (`--live` without `--yes`).
    pub confirm: bool,
    /// The digest (a prefix of at least 12 hex digits) of the review this approval
    /// follows: what would be signed must have the same.
    pub review: Option<&'a str>,
    /// The snapshot was collected just now for this approval (`--live`).
    pub live: bool,
}

/// `baseline approve`.
pub fn approve(cfg: &Config, o: &ApproveOptions, out: &Out) -> Result<Outcome> {
    let ApproveOptions {
        device,
        snapshot,
        key: key_path,
        ticket,
        reason,
        accept_suspect,
        confirm,
        ..
    } = *o;
    let dev = cfg.one(device)?;
    let (key, name) = cfg.approver_key(key_path)?;
    if ticket.trim().is_empty() {
        bail!("an approval needs a change ticket\nfix: pass --ticket CHG-1234");
    }
    let vault = cfg.vault_for_writing(false)?;
    let history = cfg.history(&vault)?;
    if !history.findings.is_empty() {
        // "The newest" cannot be told on a damaged log; a snapshot the approver names (and
        // reviewed) can still be approved, since damage that cannot be repaired (a signed
        // entry altered) must not block approvals for good.
        if snapshot.is_none_or(|s| s == "latest") {
            bail!(
                "refusing to approve: the log has {} integrity finding(s), so the newest trusted snapshot may not be the newest one collected\nfix: run `plcvault verify`; repair the vault, or approve the snapshot you reviewed by its id with --snapshot ID",
                history.findings.len()
            );
        }
        out.warn(format!(
            "the log has {} integrity finding(s) (see `plcvault verify`); approving the named snapshot anyway",
            history.findings.len()
        ));
    }
    let Some(snapshot) = snapshot else {
        let newest = history.find_snapshot(Some(&dev.name), None).ok();
        bail!(
            "name the snapshot you reviewed{}\nfix: pass --snapshot ID (or --snapshot latest for the newest), or --live to collect, review and approve in one step",
            newest
                .map(|n| format!(
                    " (the newest of `{}` is {}, collected {})",
                    dev.name, n.id, n.time
                ))
                .unwrap_or_default()
        );
    };
    let snap = cfg.find_snapshot(&history, &dev.name, Some(snapshot))?;
    let manifest = vault::manifest::load(vault.root(), &snap.manifest)?;
    // Show what is about to be signed: this snapshot against the current baseline.
    let (index, _) = Index::load_reading(&vault, &history);
    let read = |a: &ArtifactEntry| vault::read_artifact(&vault, &index, a, view_limit(a)).ok();
    let review = review_against_baseline(
        &vault,
        &index,
        &history,
        dev,
        &manifest,
        format!("snapshot {}", snap.id),
        &read,
    )?;
    out.say(format!(
        "About to approve snapshot {} of `{}` as its baseline:",
        snap.id, dev.name
    ));
    crate::review::html::print(out, std::slice::from_ref(&review), "approval-preview");
    if review.baseline.is_none() {
        // Nothing to compare with: the approver sees every artifact that becomes the baseline.
        out.say(format!(
            "the first baseline of `{}` will be these {} artifacts ({}):",
            dev.name,
            manifest.artifacts.len(),
            crate::output::human_bytes(manifest.total_size())
        ));
        crate::review::html::print_artifacts(out, &dev.name, &snap.id, &manifest);
    }
    let digest = review.digest();
    out.say(format!("review digest {}", digest.to_hex()));
    if let Some(want) = o.review
        && (want.len() < 12 || !want.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        bail!(
            "--review {want}: a review digest is at least 12 hex digits, as the review prints it\nfix: copy the approve command the review printed"
        );
    }
    if let Some(want) = o.review
        && !digest.to_hex().starts_with(&want.to_ascii_lowercase())
    {
        bail!(
            "what would be signed is not what was reviewed: this comparison has digest {}, the review named {want}{}\nfix: review again (plcvault diff {}) and approve by the command it prints",
            &digest.to_hex()[..16],
            if o.live {
                " (the device changed since the live review)"
            } else {
                " (the baseline or the snapshot changed since the review)"
            },
            dev.name
        );
    }
    if confirm
        && !ask(&format!(
            "Sign snapshot {} of `{}` as its baseline? [y/N] ",
            snap.id, dev.name
        ))?
    {
        bail!("not approved: the answer was not yes\nfix: run again and answer y, or pass --yes");
    }
    let mut suspect = Vec::new();
    if !manifest.complete {
        suspect.push("the collection was incomplete".to_string());
    }
    for a in &manifest.artifacts {
        if a.status == ArtifactStatus::Unstable {
            suspect.push(format!("{} kept changing while it was read", a.name));
        }
    }
    if !suspect.is_empty() && !accept_suspect {
        bail!(
            "snapshot {} of `{}` is suspect: {}\nfix: collect again, or approve it anyway with --accept-suspect (recorded in the approval)",
            snap.id,
            dev.name,
            suspect.join("; ")
        );
    }
    let rules = review.rules.clone();
    let event = vault::log::Event::Approval {
        device: dev.name.clone(),
        snapshot: snap.entry,
        manifest: snap.manifest,
        approver: name.to_string(),
        ticket: ticket.to_string(),
        reason: reason.to_string(),
        rules,
        accepted_suspect: !suspect.is_empty(),
        review: Some(digest),
    };
    vault::guard::append(&vault, &key, &event)?;
    let history = cfg.history(&vault)?;
    let record = history
        .baseline(&dev.name)
        .context("the approval just written is not readable")?;
    out.record("approval", &record, || {
        format!(
            "approved snapshot {} of `{}` as baseline: signed by {} (key {}), ticket {}, log entry {}{}",
            record.snapshot,
            record.device,
            record.approver,
            record.key,
            record.ticket,
            record.seq,
            if record.accepted_suspect { " — accepted although suspect" } else { "" }
        )
    });
    Ok(Outcome::Clean)
}

/// SHA-256 of a manifest's artifacts as (name, SHA-256) pairs, in order.
pub fn content_of(m: &Manifest) -> vault::Hash {
    // By name: a live read lists artifacts in the adapter's order, a stored manifest
    // sorted; the same content must give the same digest.
    let mut list: Vec<(&str, &vault::Hash)> = m
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), &a.sha256))
        .collect();
    list.sort_unstable();
    vault::Hash::of(&serde_json::to_vec(&list).expect("pairs serialize"))
}

/// The rules an approval of `device` records (the config's current ones), as signed.
pub fn rules_value(device: &DeviceConfig) -> serde_json::Value {
    serde_json::to_value(&device.rules).expect("rules serialize")
}

/// What refuses an approval before anything is collected for it (`--live`): the device,
/// an approver key, a ticket, and a terminal to ask on unless `--yes`.
///
/// Fails as `approve` would.
pub fn check_approver(
    cfg: &Config,
    device: &str,
    key: &Path,
    ticket: &str,
    ask_needed: bool,
) -> Result<()> {
    cfg.one(device)?;
    cfg.approver_key(key)?;
    if ticket.trim().is_empty() {
        bail!("an approval needs a change ticket\nfix: pass --ticket CHG-1234");
    }
    if ask_needed && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "refusing to approve without asking: standard input is not a terminal\nfix: pass --yes to approve what was shown without a prompt"
        );
    }
    Ok(())
}

/// Asks a yes/no question on the terminal.
///
/// Fails when standard input is not a terminal (a script must pass `--yes`).
fn ask(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to approve without asking: standard input is not a terminal\nfix: pass --yes to approve what was shown without a prompt"
        );
    }
    crate::output::to_stderr(question);
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn show_record(out: &Out, r: &ApprovalRecord) {
    out.record("approval", r, || {
        format!(
            "{}  snapshot {}  approved by {} (key {})  ticket {}{}{}\n    rules: {}",
            r.time,
            r.snapshot,
            r.approver,
            r.key,
            r.ticket,
            if r.reason.is_empty() {
                String::new()
            } else {
                format!("  reason: {}", r.reason)
            },
            if r.accepted_suspect {
                "  (accepted although suspect)"
            } else {
                ""
            },
            r.rules
        )
    });
}

/// `baseline show` and `baseline history`.
pub fn show(cfg: &Config, device: &str, all: bool, out: &Out) -> Result<Outcome> {
    let dev = cfg.one(device)?;
    let vault = cfg.vault_for_reading()?;
    if let Some(d) = cfg.head_doubt(&vault) {
        out.warn(format!(
            "{d}; newer approvals may be missing — run `plcvault verify`"
        ));
    }
    let history = cfg.history(&vault)?;
    let list = history.approvals(Some(&dev.name));
    if list.is_empty() {
        out.say(format!("`{}` has no approved baseline", dev.name));
        return Ok(Outcome::Findings);
    }
    if all {
        for r in &list {
            show_record(out, r);
        }
    } else {
        let r = list.last().expect("not empty");
        show_record(out, r);
        let (rules, _) = approved_rules(r);
        if rules != dev.rules {
            out.say(
                "note: the config's comparison rules for this device differ from the approved ones",
            );
        }
    }
    Ok(Outcome::Clean)
}

/// A live read of a device (done by the CLI, which may touch devices), or why it failed.
pub type LiveRead = Result<(vault::Manifest, crate::review::diff::LiveData)>;

/// `diff`: each device (its newest snapshot, another one, or a live read) against its
/// baseline or a snapshot; one page for all with `--html`. In a batch a device that
/// cannot be compared is reported and the others are (exit 2 at the end).
///
/// Fails when a single device cannot be compared, or `--snapshot`/`--against ID` is given
/// for several devices.
pub fn diff(
    cfg: &Config,
    targets: Vec<(&DeviceConfig, Option<LiveRead>)>,
    snapshot: Option<&str>,
    against: &str,
    html: Option<&Path>,
    out: &Out,
) -> Result<Outcome> {
    let single = targets.len() == 1;
    if !single && (snapshot.is_some() || against != "baseline") {
        bail!("--snapshot and --against name one device's snapshots\nfix: name one device");
    }
    let vault = cfg.vault_for_reading()?;
    let history = cfg.history(&vault)?;
    let (index, _) = Index::load_reading(&vault, &history);
    // Untrusted entries are never acted on; say so rather than silently comparing an older
    // snapshot (or an older baseline) than the log shows. Entries missing at the end of
    // the log are found through the remembered head.
    let head_doubt = cfg.head_doubt(&vault);
    let untrusted = history.findings.len() + usize::from(head_doubt.is_some());
    if let Some(d) = &head_doubt {
        out.warn(format!(
            "{d}; this comparison may use an older snapshot or baseline than was written — run `plcvault verify`"
        ));
    }
    if !history.findings.is_empty() {
        out.warn(format!(
            "the log has {} integrity finding(s): entries that do not verify are left out, so this comparison may use an older snapshot or baseline than the log shows — run `plcvault verify`",
            history.findings.len()
        ));
    }
    let mut outcome = Outcome::Clean;
    let mut reviews = Vec::new();
    let mut not_compared: Vec<(String, String)> = Vec::new();
    let ctx = DiffContext {
        cfg,
        vault: &vault,
        history: &history,
        index: &index,
        head_doubt: head_doubt.as_deref(),
    };
    for (dev, live) in targets {
        // A live read that failed is a device not collected (exit 3), in a batch or alone.
        let live = match live {
            Some(Err(e)) => {
                let why = format!("{e:#}");
                out.record(
                    "diff-skipped",
                    &serde_json::json!({"device": dev.name, "error": why}),
                    || format!("NOT READ `{}`: {why}", dev.name),
                );
                not_compared.push((dev.name.clone(), why));
                outcome = outcome.worst(Outcome::NotCollected);
                continue;
            }
            other => other,
        };
        match review_one(&ctx, dev, live, snapshot, against) {
            Ok(r) => reviews.push(r),
            Err(e) if single => return Err(e),
            Err(e) => {
                let why = format!("{e:#}");
                out.record(
                    "diff-skipped",
                    &serde_json::json!({"device": dev.name, "error": why}),
                    || format!("SKIPPED `{}`: {why}", dev.name),
                );
                not_compared.push((dev.name.clone(), why));
                outcome =
                    outcome.worst(if e.downcast_ref::<crate::config::NoSnapshot>().is_some() {
                        Outcome::NotCollected
                    } else {
                        Outcome::Failed
                    });
            }
        }
    }
    print(out, &reviews, "summary");
    if let Some(path) = html {
        let title = match reviews.as_slice() {
            [one] if single => format!("plcvault change review: {}: {}", cfg.site, one.device),
            _ => format!("plcvault change review: {}", cfg.site),
        };
        write_html(path, &title, &reviews, &not_compared)?;
        out.info(format!("wrote the change review page {}", path.display()));
    }
    if reviews.iter().any(|r| r.comparison.drift()) || untrusted > 0 {
        outcome = outcome.worst(Outcome::Findings);
    }
    Ok(outcome)
}

/// One device's change-review page: `snapshot` (default the newest) against the
/// baseline or a snapshot id, as `diff --html` writes it; for the dashboard.
///
/// Fails when the vault cannot be read or the snapshots are not there.
pub fn review_page(
    cfg: &Config,
    history: &History,
    dev: &DeviceConfig,
    snapshot: Option<&str>,
    against: &str,
) -> Result<String> {
    let vault = cfg.vault_for_reading()?;
    let (index, _) = Index::load_reading(&vault, history);
    let head_doubt = cfg.head_doubt(&vault);
    let ctx = DiffContext {
        cfg,
        vault: &vault,
        history,
        index: &index,
        head_doubt: head_doubt.as_deref(),
    };
    let r = review_one(&ctx, dev, None, snapshot, against)?;
    let title = format!("plcvault change review: {}: {}", cfg.site, dev.name);
    Ok(crate::review::html::render_html(&title, &[r], &[]))
}

/// What every device's comparison in one `diff` reads.
struct DiffContext<'a> {
    cfg: &'a Config,
    vault: &'a Vault,
    history: &'a History,
    index: &'a Index,
    head_doubt: Option<&'a str>,
}

/// One device's review for `diff`.
///
/// Fails when the device has no such snapshot, its live read failed, or a manifest cannot
/// be read.
fn review_one(
    ctx: &DiffContext,
    dev: &DeviceConfig,
    live: Option<LiveRead>,
    snapshot: Option<&str>,
    against: &str,
) -> Result<Review> {
    let DiffContext {
        cfg,
        vault,
        history,
        index,
        head_doubt,
    } = *ctx;
    // The current side.
    let live = live.transpose()?;
    let (current, label, live_data) = if let Some((m, data)) = live {
        (m, "live".to_string(), Some(data))
    } else {
        let snap = cfg.find_snapshot(history, &dev.name, snapshot)?;
        (
            vault::manifest::load(vault.root(), &snap.manifest)?,
            format!("snapshot {}", snap.id),
            None,
        )
    };
    let read_current = |a: &ArtifactEntry| match &live_data {
        Some(data) => data.get(&a.name).cloned().flatten(),
        None => vault::read_artifact(vault, index, a, view_limit(a)).ok(),
    };
    let review = if against == "baseline" {
        review_against_baseline(vault, index, history, dev, &current, label, &read_current)?
    } else {
        let other = cfg.find_snapshot(history, &dev.name, Some(against))?;
        let old = vault::manifest::load(vault.root(), &other.manifest)?;
        let read_old =
            |a: &ArtifactEntry| vault::read_artifact(vault, index, a, view_limit(a)).ok();
        let comparison = compare(
            &dev.name,
            &old,
            &current,
            &dev.rules,
            &read_old,
            &read_current,
        );
        Review {
            device: dev.name.clone(),
            against: format!("snapshot {}", other.id),
            current: label,
            baseline: None,
            rules_note: Some(
                "compared with a snapshot, not a baseline: the config's current rules are used"
                    .into(),
            ),
            comparison,
            content: content_of(&current),
            rules: rules_value(dev),
        }
    };
    let mut review = review;
    if let Some(d) = head_doubt {
        review.comparison.findings.insert(
            0,
            DiffFinding {
                device: dev.name.clone(),
                artifact: String::new(),
                change: "untrusted-log".into(),
                class: Class::Suspect,
                severity: Severity::Critical,
                summary: format!("the log does not extend what this host saw: {d}"),
                view: View::None,
            },
        );
    }
    Ok(review)
}

/// What a comparison with the baseline concluded, kept by `collect` in the state folder
/// (`<state>/reviews/`) so that `report` need not compare the same snapshot again. It is
/// signed with the collector key and used only when a trusted collector key signed it, for
/// exactly the snapshot, the approval and the config rules it was made with, and never
/// when the log has doubts; anything else is compared anew.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReviewSummary {
    /// SHA-256 over what decided it: snapshot entry, approval entry, the config's rules.
    pub key: String,
    /// Findings at warning or above.
    pub serious: usize,
    pub rules_note: Option<String>,
}

/// A summary as kept: its JSON, the signer and the signature over
/// `plcvault-review-v1\0` + the JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct SignedSummary {
    summary: String,
    signer: vault::PublicKey,
    signature: String,
}

const SUMMARY_CONTEXT: &[u8] = b"plcvault-review-v1\0";

/// The key of a comparison of `snapshot` with `approval` under the device's config rules.
pub fn summary_key(
    snapshot: &vault::Hash,
    approval: &vault::Hash,
    device: &DeviceConfig,
) -> String {
    let rules = serde_json::to_string(&device.rules).expect("rules serialize");
    vault::Hash::of(
        format!(
            "plcvault-review-v1\0{snapshot}\0{approval}\0{}\0{rules}",
            device.name
        )
        .as_bytes(),
    )
    .to_hex()
}

fn summary_path(state: &Path, device: &str) -> std::path::PathBuf {
    state.join("reviews").join(format!(
        "{}.json",
        vault::Hash::of(device.as_bytes()).to_hex()
    ))
}

/// Keeps what `review` concluded, signed. Failing to keep it only costs a later comparison.
pub fn store_summary(state: &Path, key: String, review: &Review, signer: &vault::SecretKey) {
    let summary = ReviewSummary {
        key,
        serious: review
            .comparison
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .count(),
        rules_note: review.rules_note.clone(),
    };
    let json = serde_json::to_string(&summary).expect("summaries serialize");
    let mut msg = SUMMARY_CONTEXT.to_vec();
    msg.extend_from_slice(json.as_bytes());
    let signed = SignedSummary {
        signature: vault::hash::hex(&signer.sign(&msg)),
        signer: signer.public(),
        summary: json,
    };
    let path = summary_path(state, &review.device);
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let bytes = serde_json::to_vec(&signed).expect("summaries serialize");
        let _ = vault::atomic::write_replace(dir, &path, &bytes);
    }
}

/// The kept summary for `key`, if there is one signed by a key `trust` names as collector.
pub fn cached_summary(
    state: &Path,
    trust: &vault::Trust,
    device: &str,
    key: &str,
) -> Option<ReviewSummary> {
    let bytes = vault::fsread::read_regular(&summary_path(state, device), 64 * 1024).ok()?;
    let signed: SignedSummary = serde_json::from_slice(&bytes).ok()?;
    let (_, roles) = trust.lookup(&signed.signer)?;
    if !roles.contains(&vault::Role::Collector) {
        return None;
    }
    let sig: [u8; 64] = vault::hash::unhex(&signed.signature)?.try_into().ok()?;
    let mut msg = SUMMARY_CONTEXT.to_vec();
    msg.extend_from_slice(signed.summary.as_bytes());
    if !signed.signer.verify(&msg, &sig) {
        return None;
    }
    serde_json::from_str::<ReviewSummary>(&signed.summary)
        .ok()
        .filter(|s| s.key == key)
}
