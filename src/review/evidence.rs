//! Evidence that travels: `evidence export` writes a folder an auditor checks on another
//! machine with `plcvault verify --evidence DIR` and the public keys alone — the signed
//! log, the manifests of the snapshots in the period, the drill results (log entries), and
//! the report — with a signed index (`EVIDENCE.json` + `EVIDENCE.sig`) naming every file
//! by SHA-256, so that any change, addition or removal is caught.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use vault::{Hash, History, PublicKey, Vault};

use crate::config::Config;
use crate::output::{Out, Outcome};

const CONTEXT: &[u8] = b"plcvault-evidence-v1\0";
/// The largest `EVIDENCE.json` read, and the most files it may list.
pub const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_INDEX_FILES: usize = 1_000_000;
/// The largest file an evidence folder holds (a manifest at most).
pub const MAX_EVIDENCE_FILE: u64 = vault::manifest::MAX_MANIFEST_SIZE;

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

/// `evidence export [--since DATE] --out DIR`.
///
/// Fails when DIR is not empty, the vault cannot be read or the key cannot sign.
/// Copies a vault file that must be a regular file (never blocks on a FIFO in its place).
fn copy_regular(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let bytes = vault::fsread::read_regular(from, vault::manifest::MAX_MANIFEST_SIZE)
        .with_context(|| format!("cannot read {}", from.display()))?;
    std::fs::write(to, bytes).with_context(|| format!("cannot write {}", to.display()))
}

pub fn export(cfg: &Config, since: Option<&str>, dir: &Path, out: &Out) -> Result<Outcome> {
    let since_t = match since {
        Some(s) => Some(
            humantime::parse_rfc3339_weak(s)
                .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s} 00:00:00")))
                .with_context(|| {
                    format!(
                        "`{s}` is not a date\nfix: write it as 2026-01-31 or 2026-01-31T00:00:00Z"
                    )
                })?,
        ),
        None => None,
    };
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
    // Evidence certifies an intact history: the log, every manifest and every pack.
    let check = vault::verify(
        &vault,
        &cfg.trust,
        &vault::VerifyOptions {
            update_state: false,
            threads: cfg.threads,
            ..Default::default()
        },
    )?;
    if !check.is_clean() {
        bail!(
            "refusing to export evidence: verify finds {} problem(s), first: {}\nfix: run `plcvault verify` and repair the vault first; evidence certifies an intact history",
            check.findings.len(),
            check.findings[0]
        );
    }
    let history = History::load(&vault, &cfg.trust)?;
    for sub in ["log", "manifests"] {
        std::fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    copy_regular(vault.root().join("VAULT"), dir.join("VAULT"))?;
    // The whole log: the chain verifies from entry 1.
    let mut reader = vault::log::Reader::new(vault.root());
    for c in &history.entries {
        let (bytes, _, _) = reader.read(c.entry.file_seq)?;
        let to = vault::log::entry_path(dir, c.entry.file_seq);
        std::fs::write(&to, bytes).with_context(|| format!("cannot write {}", to.display()))?;
    }
    // Manifests of snapshots in the period, and of every baseline.
    let in_period = |t: &str| match since_t {
        None => true,
        Some(s) => humantime::parse_rfc3339(t).is_ok_and(|t| t >= s),
    };
    let mut manifests: Vec<Hash> = history
        .snapshots()
        .iter()
        .filter(|s| in_period(&s.time))
        .map(|s| s.manifest)
        .collect();
    manifests.extend(history.approvals(None).iter().map(|a| a.manifest));
    manifests.sort();
    manifests.dedup();
    for m in &manifests {
        let from = vault::manifest::manifest_path(vault.root(), m);
        copy_regular(&from, vault::manifest::manifest_path(dir, m))
            .with_context(|| format!("cannot copy {}", from.display()))?;
    }
    // The report as of now.
    let report = crate::review::report::build(cfg, SystemTime::now())?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(
        dir.join("report.html"),
        crate::review::report::html(&report),
    )?;
    // The signed index.
    let mut paths = Vec::new();
    files_under(dir, dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let bytes = std::fs::read(dir.join(&p))?;
        files.push(EvidenceFile {
            path: p.to_string_lossy().into_owned(),
            sha256: Hash::of(&bytes),
            size: bytes.len() as u64,
        });
    }
    let head = history.head();
    let index = EvidenceIndex {
        v: 1,
        vault: vault.id().to_string(),
        created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        since: since.map(str::to_string),
        head_seq: head.map(|h| h.0),
        head_hash: head.map(|h| h.1),
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
    out.record(
        "evidence",
        &serde_json::json!({"dir": dir, "files": index.files.len(), "entries": history.entries.len(), "manifests": manifests.len(), "head_seq": index.head_seq}),
        || {
            format!(
                "exported {} files ({} log entries, {} manifests, the report) to {}, signed by key {}\ncheck it elsewhere with: plcvault verify --evidence {}",
                index.files.len(),
                history.entries.len(),
                manifests.len(),
                dir.display(),
                key.public().fingerprint(),
                dir.display()
            )
        },
    );
    Ok(Outcome::Clean)
}

/// `verify --evidence DIR`: the index signature (by a trusted collector key), every
/// file's hash, nothing added or removed, the log's signatures and chain, and every
/// manifest the log names that the folder holds.
///
/// Fails when the folder has no readable index.
pub fn verify(cfg: &Config, dir: &Path, out: &Out) -> Result<Outcome> {
    // Everything in the folder comes from outside: regular files only, never more than
    // the index says (a FIFO or a link to /dev/zero is a problem, not a hang).
    let read = |p: &Path, max: u64| vault::fsread::read_regular(p, max);
    let body = read(&dir.join("EVIDENCE.json"), MAX_INDEX_SIZE).with_context(|| {
        format!(
            "{} has no EVIDENCE.json\nfix: point at a folder written by `plcvault evidence export`",
            dir.display()
        )
    })?;
    let sig_text = read(&dir.join("EVIDENCE.sig"), 4096)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut problems: Vec<String> = Vec::new();
    vault::json::check_no_repeated_keys(&body).map_err(|e| {
        anyhow::anyhow!(
            "EVIDENCE.json does not parse ({e}): the index was altered or is not from plcvault\nfix: export the evidence again from the vault"
        )
    })?;
    let index: EvidenceIndex = serde_json::from_slice(&body).context(
        "EVIDENCE.json does not parse: the index was altered or is not from plcvault\nfix: \
         export the evidence again from the vault",
    )?;
    if index.v != 1 {
        bail!(
            "EVIDENCE.json is version {}; this plcvault reads version 1\nfix: check it with the \
             plcvault release that exported it",
            index.v
        );
    }
    if index.files.len() > MAX_INDEX_FILES {
        bail!(
            "EVIDENCE.json lists {} files, more than the {MAX_INDEX_FILES} an export holds\nfix: \
             the index was altered; export the evidence again",
            index.files.len()
        );
    }
    let mut msg = CONTEXT.to_vec();
    msg.extend_from_slice(&body);
    // Exactly 128 lower-case hex digits and a newline, as export writes it.
    let sig: Option<[u8; 64]> = sig_text
        .strip_suffix('\n')
        .filter(|h| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(vault::hash::unhex)
        .and_then(|v| v.try_into().ok());
    match cfg.trust.lookup(&index.signer) {
        None => problems.push(format!(
            "the index is signed by key {}, which the config does not trust",
            index.signer.fingerprint()
        )),
        Some((_, roles)) if !roles.contains(&vault::Role::Collector) => {
            problems.push("the index is signed by a key not trusted as collector".into())
        }
        Some(_) => {}
    }
    if !sig.is_some_and(|s| index.signer.verify(&msg, &s)) {
        problems.push(
            "EVIDENCE.sig does not verify: the index was altered or the signature is missing"
                .into(),
        );
    }
    let mut listed = std::collections::HashSet::new();
    for f in &index.files {
        listed.insert(f.path.clone());
        // A path that leaves the folder is never read: the index names only its own files.
        if let Err(why) = vault::manifest::check_name(&f.path) {
            problems.push(format!(
                "the index names a file outside the evidence folder: {}",
                crate::output::printable_inline(&why)
            ));
            continue;
        }
        if f.size > MAX_EVIDENCE_FILE {
            problems.push(format!(
                "{} is listed with {} bytes, more than any evidence file holds ({MAX_EVIDENCE_FILE})",
                crate::output::printable_inline(&f.path),
                f.size
            ));
            continue;
        }
        // Hashed in pieces: memory stays small whatever the index claims.
        match vault::fsread::hash_regular(&dir.join(&f.path), f.size) {
            Ok((h, n)) if h == f.sha256 && n == f.size => {}
            Ok(_) => problems.push(format!("{} was changed after export", f.path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("{} is missing", f.path))
            }
            Err(e) => problems.push(format!("{} was changed after export ({e})", f.path)),
        }
    }
    let mut present = Vec::new();
    files_under(dir, dir, &mut present)?;
    for p in present {
        let p = p.to_string_lossy().into_owned();
        if p != "EVIDENCE.json" && p != "EVIDENCE.sig" && !listed.contains(&p) {
            problems.push(format!("{p} was added after export"));
        }
    }
    // The log itself, against the pinned keys.
    let vault = Vault::open(dir)?;
    let history = History::load(&vault, &cfg.trust)?;
    problems.extend(history.findings.iter().map(|f| f.to_string()));
    if vault.id() != index.vault {
        problems.push(format!(
            "the index is for vault {}, the folder holds vault {}",
            crate::output::printable_inline(&index.vault),
            vault.id()
        ));
    }
    if history.head() != index.head_seq.zip(index.head_hash) {
        problems.push("the log's newest entry is not the one the index names".into());
    }
    // Counted as export counts them: each distinct manifest once (an unchanged device
    // names the same manifest night after night).
    let mut manifests = 0;
    let mut seen = std::collections::HashSet::new();
    for s in history.snapshots() {
        let path = vault::manifest::manifest_path(dir, &s.manifest);
        if path.exists() && seen.insert(s.manifest) {
            manifests += 1;
            if let Err(e) = vault::manifest::load(dir, &s.manifest) {
                problems.push(
                    format!("{e}")
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
    }
    for p in &problems {
        out.record(
            "finding",
            &serde_json::json!({"kind": "evidence", "message": p}),
            || format!("FINDING [evidence] {p}"),
        );
    }
    out.record(
        "verify-evidence",
        &serde_json::json!({"clean": problems.is_empty(), "files": index.files.len(), "entries": history.entries.len(), "manifests": manifests, "created": index.created}),
        || {
            format!(
                "{}: evidence of {} ({} files, {} log entries, {} manifests) exported {}",
                if problems.is_empty() { "INTACT" } else { "TAMPERED" },
                index.vault,
                index.files.len(),
                history.entries.len(),
                manifests,
                index.created
            )
        },
    );
    Ok(if problems.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
