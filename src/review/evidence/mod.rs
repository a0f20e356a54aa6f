//! Evidence that travels: `evidence export` writes a folder an auditor checks on another
//! machine with `plcvault verify --evidence DIR` and the public keys alone, with a signed
//! index (`EVIDENCE.json` + `EVIDENCE.sig`) naming every file by SHA-256, so that any
//! change, addition or removal is caught.
//!
//! Version 2 (written since log v2) carries the period's entries, not the whole log: the
//! vault's signed checkpoint (and its newest witnessed one), every entry from the period's
//! first to the checkpoint's last with its RFC 9162 inclusion proof, the entries before
//! the period that the baselines in force rest on, and, when the auditor gives the
//! checkpoint of their last audit, the consistency proof from it. Its size grows with the
//! period, not with the history. Version 1 folders (the whole log) still verify.

mod check;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use vault::{Hash, PublicKey, Trust};

use crate::config::Config;
use crate::output::{Out, Outcome};

pub use check::verify;

const CONTEXT: &[u8] = b"plcvault-evidence-v1\0";
/// The index version export writes.
const VERSION: u32 = 2;
/// The largest `EVIDENCE.json` read, and the most files it may list.
pub const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_INDEX_FILES: usize = 1_000_000;
/// The largest file an evidence folder holds (a manifest at most).
pub const MAX_EVIDENCE_FILE: u64 = vault::manifest::MAX_MANIFEST_SIZE;
/// Entries per proofs file (`proofs/<group>.proofs`), as per entry bundle.
const PROOF_GROUP: u64 = 256;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceFile {
    path: String,
    sha256: Hash,
    size: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceIndex {
    v: u32,
    vault: String,
    created: String,
    since: Option<String>,
    head_seq: Option<u64>,
    head_hash: Option<Hash>,
    /// Version 2: the period's first entry; every entry from it to `head_seq` is carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<u64>,
    /// Version 2: entries before the period carried for what they establish (the
    /// approvals of the baselines in force when it began, and the snapshots they approve).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    context: Vec<u64>,
    /// Version 2: the size of the auditor's earlier checkpoint that `from-checkpoint`
    /// holds, with the consistency proof from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_size: Option<u64>,
    signer: PublicKey,
    files: Vec<EvidenceFile>,
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            files_under(&e.path(), base, out)?;
        } else {
            out.push(
                e.path()
                    .strip_prefix(base)
                    .unwrap_or(&e.path())
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

/// The proofs file of entry `seq`'s group.
fn proofs_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("proofs/{:06}.proofs", (seq - 1) / PROOF_GROUP))
}

/// A consistency proof as evidence stores it: one hash in hex per line.
fn proof_text(proof: &[Hash]) -> String {
    proof.iter().map(|h| format!("{}\n", h.to_hex())).collect()
}

/// Copies a vault file that must be a regular file (never blocks on a FIFO in its place).
fn copy_regular(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let bytes = vault::fsread::read_regular(from, vault::manifest::MAX_MANIFEST_SIZE)
        .with_context(|| format!("cannot read {}", from.display()))?;
    write(to, &bytes)
}

fn write(to: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(to, bytes).with_context(|| format!("cannot write {}", to.display()))
}

fn parse_date(s: &str) -> Result<SystemTime> {
    humantime::parse_rfc3339_weak(s)
        .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s} 00:00:00")))
        .with_context(|| {
            format!("`{s}` is not a date\nfix: write it as 2026-01-31 or 2026-01-31T00:00:00Z")
        })
}

/// An earlier checkpoint the auditor kept, checked: signed by a trusted writer, for this
/// vault. Returns its size, root and text.
fn read_kept_checkpoint(path: &Path, vault_id: &str, trust: &Trust) -> Result<(u64, Hash, String)> {
    let bytes = vault::fsread::read_regular(path, vault::tiles::MAX_CHECKPOINT).with_context(|| {
        format!(
            "cannot read the checkpoint {}\nfix: give the `checkpoint` file of the evidence you verified last",
            path.display()
        )
    })?;
    let note = String::from_utf8(bytes)
        .map_err(|_| {
            anyhow::anyhow!(
                "{} is not a checkpoint (not UTF-8)\nfix: give the `checkpoint` file of the evidence you verified last",
                path.display()
            )
        })?;
    let signed = vault::tiles::open(&note, vault_id, &trust.writers()).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a checkpoint: {e}\nfix: give the `checkpoint` file of the evidence you verified last",
            path.display()
        )
    })?;
    if signed.checkpoint.origin != vault::tiles::origin(vault_id) {
        bail!(
            "{} is a checkpoint of {:?}, not of vault {vault_id}\nfix: give the checkpoint of this vault's last audit",
            path.display(),
            crate::output::printable_inline(&signed.checkpoint.origin)
        );
    }
    if signed.signers.is_empty() {
        bail!(
            "{} is not signed by a key the config trusts as collector or approver\nfix: give the `checkpoint` file of the evidence you verified last, and trust the keys that signed it",
            path.display()
        );
    }
    Ok((signed.checkpoint.size, signed.checkpoint.root, note))
}

/// `evidence export [--since DATE] [--from-checkpoint FILE] --out DIR`.
///
/// Fails when DIR is not empty, the vault cannot be read or does not verify, the key
/// cannot sign, or the vault's log does not extend the checkpoint FILE.
pub fn export(
    cfg: &Config,
    since: Option<&str>,
    from_checkpoint: Option<&Path>,
    dir: &Path,
    out: &Out,
) -> Result<Outcome> {
    let since_t = since.map(parse_date).transpose()?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty\nfix: export into a new folder",
            dir.display()
        );
    }
    let key = cfg.signing_key()?;
    let vault = cfg.vault_for_reading()?;
    // Evidence from a rolled-back, rewritten or replaced vault would certify a history the
    // verifier knows to be incomplete: refuse, as writers do.
    vault::guard::check(&vault.clone().remembering(&cfg.vault.state))
        .context("refusing to export evidence")?;
    // Evidence certifies an intact history: the log, the manifests and packs.
    cfg.require_intact(
        &vault,
        true,
        ("export evidence", "evidence certifies an intact history"),
    )?;
    let root = vault.root();
    let writers = cfg.trust.writers();
    let (cp, note) = vault::tiles::trusted_checkpoint(root, vault.id(), &writers).map_err(|why| {
        anyhow::anyhow!(
            "refusing to export evidence: {why}\nfix: collect once (every write signs a checkpoint), then export"
        )
    })?;
    let size = cp.size;
    if size == 0 {
        bail!("the vault's log is empty: there is nothing to certify yet\nfix: collect first");
    }
    let tiles = vault::tiles::Tiles::of(root);
    let tree = vault::tlog::Memo::new(&tiles);
    // The auditor's last checkpoint: the log must extend it.
    let from = match from_checkpoint {
        None => None,
        Some(p) => {
            let (m, old_root, old_note) = read_kept_checkpoint(p, vault.id(), &cfg.trust)?;
            let joined = m <= size
                && (m == 0 || vault::tlog::tree_hash(&tree, m).is_ok_and(|r| r == old_root));
            if !joined {
                bail!(
                    "refusing to export evidence: the vault's log ({size} entries) does not extend the checkpoint {} ({m} entries, root {}): the log was rolled back, forked or rewritten since that audit\nfix: this is what the auditor must see; run `plcvault verify` and report it",
                    p.display(),
                    old_root.to_hex()
                );
            }
            let proof = if m == 0 {
                Vec::new()
            } else {
                vault::tlog::consistency_proof(&tree, m, size).map_err(anyhow::Error::msg)?
            };
            Some((m, old_note, proof))
        }
    };

    // The period: the entries after the newest one dated before DATE (all, without one).
    let mut reader = vault::log::Reader::new(root);
    let mut first = 1;
    if let Some(s) = since_t {
        first = size + 1;
        while first > 1 {
            let (_, parsed, path) = reader.read(first - 1)?;
            let e = parsed.map_err(|why| {
                anyhow::anyhow!("{}: {why}\nfix: run `plcvault verify`", path.display())
            })?;
            if e.time().is_some_and(|t| t < s) {
                break;
            }
            first -= 1;
        }
    }
    // What the period rests on: the baseline of each device in force when it began, and
    // the snapshot that baseline approved.
    let history = cfg.history(&vault)?;
    let mut context = BTreeSet::new();
    let mut manifests = BTreeSet::new();
    if first > 1 {
        // The entry before the period, dated before DATE: what proves where it starts.
        context.insert(first - 1);
        let mut in_force: BTreeMap<String, vault::ApprovalRecord> = BTreeMap::new();
        for a in history.approvals(None) {
            if a.seq < first {
                in_force.insert(a.device.clone(), a);
            }
        }
        for a in in_force.values() {
            context.insert(a.seq);
            manifests.insert(a.manifest);
            if let Some(s) = history
                .snapshots_of(&a.device)
                .iter()
                .find(|s| s.entry == a.snapshot_entry && s.seq < first)
            {
                context.insert(s.seq);
            }
        }
    }
    let carried: Vec<u64> = context.iter().copied().chain(first..=size).collect();

    copy_regular(root.join("VAULT"), dir.join("VAULT"))?;
    write(&dir.join("checkpoint"), note.as_bytes())?;
    let mut proofs: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut head_hash = None;
    for &seq in &carried {
        let (bytes, parsed, path) = reader.read(seq)?;
        let e = parsed.map_err(|why| {
            anyhow::anyhow!("{}: {why}\nfix: run `plcvault verify`", path.display())
        })?;
        let leaf = vault::tlog::leaf_hash(&bytes);
        let proof =
            vault::tlog::inclusion_proof(&tree, seq - 1, size).map_err(anyhow::Error::msg)?;
        if !vault::tlog::check_inclusion(&leaf, seq - 1, size, &proof, &cp.root) {
            bail!(
                "refusing to export evidence: entry {seq} is not the one the signed checkpoint covers\nfix: run `plcvault verify --full`"
            );
        }
        match &e.event {
            Ok(vault::log::Event::Snapshot { manifest, .. })
            | Ok(vault::log::Event::Approval { manifest, .. }) => {
                manifests.insert(*manifest);
            }
            _ => {}
        }
        if seq == size {
            head_hash = Some(e.hash);
        }
        let line = proofs.entry(proofs_path(dir, seq)).or_default();
        let _ = write!(line, "{seq}");
        for h in &proof {
            let _ = write!(line, " {}", h.to_hex());
        }
        line.push('\n');
        write(&vault::log::entry_path(dir, seq), &bytes)?;
    }
    for (path, text) in &proofs {
        write(path, text.as_bytes())?;
    }
    // The newest checkpoint witnesses cosigned, and the proof that the exported one
    // extends it.
    if let Some((w, w_note)) = newest_witnessed(root, vault.id(), &cfg.trust)
        && w <= size
        && w > 0
    {
        let proof = vault::tlog::consistency_proof(&tree, w, size).map_err(anyhow::Error::msg)?;
        write(&dir.join("witnessed"), w_note.as_bytes())?;
        write(&dir.join("witnessed.proof"), proof_text(&proof).as_bytes())?;
    }
    if let Some((_, old_note, proof)) = &from {
        write(&dir.join("from-checkpoint"), old_note.as_bytes())?;
        write(
            &dir.join("from-checkpoint.proof"),
            proof_text(proof).as_bytes(),
        )?;
    }
    // A manifest only forgotten snapshots named may be pruned: the forget entry the
    // period carries says so, and the checker allows its absence.
    let kept: BTreeSet<vault::Hash> = history.snapshots().iter().map(|s| s.manifest).collect();
    let pruned: BTreeSet<vault::Hash> = manifests
        .iter()
        .filter(|m| !kept.contains(m) && !vault::manifest::manifest_path(root, m).exists())
        .copied()
        .collect();
    let manifests: BTreeSet<vault::Hash> = manifests.difference(&pruned).copied().collect();
    for m in &manifests {
        let from = vault::manifest::manifest_path(root, m);
        copy_regular(&from, vault::manifest::manifest_path(dir, m))
            .with_context(|| format!("cannot copy {}", from.display()))?;
    }
    // The report as of now.
    let report = crate::review::report::build(cfg, SystemTime::now())?;
    write(
        &dir.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    write(
        &dir.join("report.html"),
        crate::review::report::html(&report).as_bytes(),
    )?;
    // The signed index.
    let mut paths = Vec::new();
    files_under(dir, dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    let mut bytes_total = 0;
    for p in paths {
        let (sha256, size) = vault::fsread::hash_regular(&dir.join(&p), MAX_EVIDENCE_FILE)
            .with_context(|| format!("cannot read {}", dir.join(&p).display()))?;
        bytes_total += size;
        files.push(EvidenceFile {
            path: p.to_string_lossy().into_owned(),
            sha256,
            size,
        });
    }
    let index = EvidenceIndex {
        v: VERSION,
        vault: vault.id().to_string(),
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        since: since.map(str::to_string),
        head_seq: Some(size),
        head_hash,
        first: Some(first),
        context: context.iter().copied().collect(),
        from_size: from.as_ref().map(|f| f.0),
        signer: key.public(),
        files,
    };
    let body = serde_json::to_vec_pretty(&index)?;
    let mut msg = CONTEXT.to_vec();
    msg.extend_from_slice(&body);
    std::fs::write(dir.join("EVIDENCE.json"), &body)?;
    std::fs::write(
        dir.join("EVIDENCE.sig"),
        format!("{}\n", vault::hash::hex(&key.sign(&msg))),
    )?;
    let entries = carried.len();
    let newest = vault::log::newest(root)?;
    if newest > size {
        out.warn(format!(
            "entries {} to {newest} are newer than the signed checkpoint and not in this evidence: the next write signs them; export again after it",
            size + 1
        ));
    }
    out.record(
        "evidence",
        &serde_json::json!({
            "dir": dir, "files": index.files.len(), "entries": entries, "first": first,
            "context": index.context.len(), "size": size, "manifests": manifests.len(),
            "head_seq": index.head_seq, "from_size": index.from_size, "bytes": bytes_total,
        }),
        || {
            let period = if first == 1 {
                format!("all {size} log entries")
            } else if first > size {
                format!(
                    "no log entry in the period (none dated from {} on), the newest entry before it,",
                    since.unwrap_or_default()
                )
            } else {
                format!(
                    "log entries {first} to {size} of {size}, the one before them and {} earlier one(s) the baselines rest on,",
                    context.len() - 1
                )
            };
            let from = match &from {
                Some((m, _, _)) => format!(", consistent with the checkpoint of {m} entries you gave"),
                None => String::new(),
            };
            format!(
                "exported {} files, {bytes_total} bytes ({period} each with its inclusion proof, {} manifests, the report) to {}{from}, signed by key {}\ncheck it elsewhere with: plcvault verify --evidence {}",
                index.files.len(),
                manifests.len(),
                dir.display(),
                key.public().fingerprint(),
                dir.display()
            )
        },
    );
    Ok(Outcome::Clean)
}

/// The newest checkpoint in `tlog/witnessed/` that a writer signed and a trusted witness
/// cosigned: its size and note.
fn newest_witnessed(root: &Path, vault_id: &str, trust: &Trust) -> Option<(u64, String)> {
    let witnesses = trust.witnesses();
    if witnesses.is_empty() {
        return None;
    }
    let writers = trust.writers();
    let all: Vec<PublicKey> = trust.keys.iter().map(|k| k.key).collect();
    let mut names: Vec<PathBuf> = std::fs::read_dir(vault::tiles::witnessed_dir(root))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "checkpoint"))
        .collect();
    names.sort();
    names.into_iter().rev().find_map(|p| {
        let bytes = vault::fsread::read_regular(&p, vault::tiles::MAX_CHECKPOINT).ok()?;
        let note = String::from_utf8(bytes).ok()?;
        let s = vault::tiles::open(&note, vault_id, &all).ok()?;
        let ok = s.signers.iter().any(|k| writers.contains(k))
            && s.signers.iter().any(|k| witnesses.contains(k));
        ok.then_some((s.checkpoint.size, note))
    })
}
