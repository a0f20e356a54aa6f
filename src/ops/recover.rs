//! `plcvault recover`: an approver's signed acceptance of a log state that verify reports
//! and writers refuse — an older vault copy put back on purpose, a lost vault replaced by
//! a new one, an entry dated by a wrong clock — so that writing can go on, and every
//! later verifier sees who accepted what, when and why.

use std::path::Path;

use anyhow::{Result, bail};
use vault::log::{Accepted, Event};
use vault::state::{HeadProblem, Memory};
use vault::{FindingKind, History, VerifyOptions};

use crate::config::Config;
use crate::output::{Out, Outcome};

/// Kinds of findings a recovery may accept. Damage (bad signatures, a broken chain,
/// missing data) is never accepted: it stays a finding.
const ACCEPTABLE: [FindingKind; 2] = [FindingKind::FutureTime, FindingKind::TimeBackwards];

fn accepted_head(p: &HeadProblem) -> Accepted {
    let mem = p.remembered();
    Accepted {
        kind: p.kind().as_str().to_string(),
        seq: Some(mem.seq),
        vault: match p {
            HeadProblem::Replaced { other, .. } => Some(other.clone()),
            HeadProblem::Retired { id, .. } => Some(id.clone()),
            _ => None,
        },
        hash: Some(mem.hash),
        message: p.message(),
    }
}

/// `recover --key APPROVER.key --reason TEXT`.
///
/// Fails when the key is not an approver's, the reason is empty, or the vault cannot be
/// read or written.
pub fn run(cfg: &Config, key_path: &Path, reason: &str, out: &Out) -> Result<Outcome> {
    if reason.trim().is_empty() {
        bail!(
            "a recovery needs a reason, recorded in the log\nfix: pass --reason \"old copy restored after disk failure, ticket INC-7\""
        );
    }
    let (key, approver) = cfg.approver_key(key_path)?;
    let state = &cfg.vault.state;
    // A recovery moves the memory: it must be writable before anything is written.
    vault::state::check_writable(state)?;
    let root = &cfg.vault.path;

    let mut accepted = Vec::new();
    let vault = if root.join("VAULT").exists() {
        let vault = vault::Vault::open(root)?;
        let memory = Memory::load(state, vault.id())?;
        let history = History::load(&vault, &cfg.trust)?;
        // Unlike verify, a remembered entry missing inside the log counts here: writers
        // refuse it, so a recovery must be able to accept it.
        if let Some(p) = memory.problem(history.head().map_or(0, |h| h.0), |seq| {
            history.hash_of(seq)
        }) {
            accepted.push(accepted_head(&p));
        }
        let report = vault::verify(
            &vault,
            &cfg.trust,
            &VerifyOptions {
                stale_after: None,
                state_dir: None,
                update_state: false,
                threads: cfg.threads,
                ..Default::default()
            },
        )?;
        for f in report
            .findings
            .iter()
            .filter(|f| ACCEPTABLE.contains(&f.kind))
        {
            accepted.push(Accepted {
                kind: f.kind.as_str().to_string(),
                seq: f.seq,
                vault: None,
                hash: None,
                message: f.message.clone(),
            });
        }
        let damage: Vec<_> = report
            .findings
            .iter()
            .filter(|f| !ACCEPTABLE.contains(&f.kind))
            .collect();
        if !damage.is_empty() {
            out.warn(format!(
                "{} other finding(s) are damage, not a state a recovery can accept; they stay findings (see `plcvault verify`)",
                damage.len()
            ));
        }
        vault
    } else {
        let remembered = vault::state::remembered(state)?;
        if remembered.is_empty() && vault::state::remembers_any(state) {
            let vault = vault::Vault::open_or_create(root)?;
            accepted.push(Accepted {
                kind: "replaced-vault".into(),
                seq: None,
                vault: None,
                hash: None,
                message: format!(
                    "no vault at {}, and the state's memory of the earlier one is damaged",
                    root.display()
                ),
            });
            return finish(cfg, &vault, &key, &approver, reason, accepted, out);
        }
        let Some((id, mem)) = remembered.into_iter().next() else {
            bail!(
                "there is no vault at {} and the verifier state remembers none: nothing to recover\nfix: `plcvault collect` creates a new vault",
                root.display()
            );
        };
        let vault = vault::Vault::open_or_create(root)?;
        accepted.push(accepted_head(&HeadProblem::Replaced {
            other: id,
            remembered: mem,
        }));
        vault
    };

    finish(cfg, &vault, &key, &approver, reason, accepted, out)
}

/// Signs the recovery entry, moves the memory to it and retires replaced vaults.
fn finish(
    cfg: &Config,
    vault: &vault::Vault,
    key: &vault::SecretKey,
    approver: &str,
    reason: &str,
    accepted: Vec<Accepted>,
    out: &Out,
) -> Result<Outcome> {
    let state = &cfg.vault.state;
    if accepted.is_empty() {
        out.say("nothing to recover: the log extends the remembered head and no entry's time is out of order");
        return Ok(Outcome::Clean);
    }
    let event = Event::Recovery {
        accepted: accepted.clone(),
        reason: reason.to_string(),
    };
    let entry = vault::append::append_unguarded(vault.root(), vault.id(), key, &event)?;
    vault::state::replace(state, vault.id(), (entry.file_seq, entry.hash))?;
    // The log need not extend the checkpoint verified before the accepted state either.
    vault::state::forget_checkpoint(state, vault.id())?;
    // The vaults this one replaces are retired: should one of them come back, it is a
    // vault the state does not know, a `replaced-vault` finding, and not written to.
    vault::state::retire_others(state, vault.id())?;
    for a in &accepted {
        out.record(
            "recovered",
            &serde_json::json!({
                "seq": entry.file_seq,
                "approver": approver,
                "reason": reason,
                "accepted": a,
            }),
            || format!("accepted {}: {}", a.kind, a.message),
        );
    }
    out.say(format!(
        "recovery signed by {approver} as log entry {} ({}); the verifier now remembers that entry, and writing may go on",
        entry.file_seq,
        entry.hash.short()
    ));
    Ok(Outcome::Clean)
}
