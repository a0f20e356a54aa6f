//! `verify --evidence DIR [--from-checkpoint FILE]`: checks an evidence folder with the
//! public keys alone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vault::{Hash, History, Vault};

use super::{
    CONTEXT, EvidenceIndex, MAX_EVIDENCE_FILE, MAX_INDEX_FILES, MAX_INDEX_SIZE, PROOF_GROUP,
    VERSION, files_under, proofs_path, read_kept_checkpoint,
};
use crate::config::Config;
use crate::output::{Out, Outcome, printable_inline};

/// The most hashes a proof of a tree of up to 2^63 leaves holds.
const MAX_PROOF: usize = 64;

/// Checks the index signature (by a trusted collector key), every file's hash, nothing
/// added or removed; then, for version 2, the checkpoint's signature, every carried
/// entry's signature, role, chain and inclusion proof, the consistency proofs, and the
/// manifests the entries name; for version 1, the whole log's signatures and chain.
///
/// Fails when the folder has no readable index, or `from_checkpoint` cannot be read.
pub fn verify(
    cfg: &Config,
    dir: &Path,
    (from_checkpoint, witnesses): (Option<&Path>, usize),
    out: &Out,
) -> Result<Outcome> {
    let (index, mut problems) = check_index(cfg, dir)?;
    let result = if index.v == 1 {
        if witnesses > 0 {
            problems.push(format!(
                "this evidence is version 1 (no checkpoint): it cannot show the {witnesses} witness cosignature(s) asked for"
            ));
        }
        check_v1(cfg, dir, &index, from_checkpoint, &mut problems)?
    } else {
        check_v2(
            cfg,
            dir,
            &index,
            (from_checkpoint, witnesses),
            &mut problems,
        )?
    };
    for p in &problems {
        out.record(
            "finding",
            &serde_json::json!({"kind": "evidence", "message": p}),
            || format!("FINDING [evidence] {p}"),
        );
    }
    let clean = problems.is_empty();
    let mut data = serde_json::json!({
        "clean": clean, "files": index.files.len(), "entries": result.entries,
        "manifests": result.manifests, "created": index.created, "version": index.v,
    });
    if let Some(v2) = &result.v2 {
        data["first"] = v2.first.into();
        data["size"] = v2.size.into();
        data["context"] = v2.context.into();
        data["witnessed"] = serde_json::json!({"size": v2.witnessed.map(|w| w.0), "witnesses": v2.witnessed.map(|w| w.1)});
        data["from_size"] = v2.from_size.into();
    }
    out.record("verify-evidence", &data, || {
        let mut t = format!(
            "{}: evidence of {} ({} files, {} log entries, {} manifests) exported {}",
            if clean { "INTACT" } else { "TAMPERED" },
            printable_inline(&index.vault),
            index.files.len(),
            result.entries,
            result.manifests,
            printable_inline(&index.created)
        );
        if let Some(v2) = &result.v2 {
            let proven = if clean {
                "each proven in the signed checkpoint"
            } else {
                "carried (see the findings above)"
            };
            let since = index.since.as_deref().map(printable_inline).unwrap_or_default();
            if v2.first > v2.size {
                t.push_str(&format!(
                    "\n  no entry dated from {since} on: the newest entry, {}, is the one before the period, {proven}",
                    v2.size
                ));
            } else if v2.first > 1 {
                t.push_str(&format!(
                    "\n  the period from {since}: entries {} to {} of {}, {proven}, with the entry before it and {} earlier one(s) the baselines in force rest on",
                    v2.first,
                    v2.size,
                    v2.size,
                    v2.context.saturating_sub(1)
                ));
            } else {
                t.push_str(&format!("\n  all {} entries, {proven}", v2.size));
            }
            match v2.witnessed {
                Some((w, n)) => t.push_str(&format!(
                    "\n  the first {w} entries were cosigned by {n} trusted witness(es)"
                )),
                None => t.push_str("\n  no checkpoint cosigned by a trusted witness"),
            }
            match (v2.kept, v2.from_size) {
                (Some(m), _) if clean => t.push_str(&format!(
                    "\n  the log extends your checkpoint of {m} entries"
                )),
                (None, Some(m)) => t.push_str(&format!(
                    "\n  the log extends the checkpoint of {m} entries the export was given (give your own with --from-checkpoint to compare)"
                )),
                _ => {}
            }
            t.push_str("\n  report.json and report.html are the site's report at export: of their claims, the baselines are checked against the carried entries");
            if clean {
                t.push_str(&format!(
                    "\n  keep a copy of {} for the next audit: plcvault verify --evidence NEXT --from-checkpoint COPY",
                    dir.join("checkpoint").display()
                ));
            }
        }
        if !clean {
            t.push_str("\nfix: do not rely on this evidence: ask the site for a new export, and have `plcvault verify --full` run on the vault itself");
        }
        t
    });
    Ok(if clean {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

struct Checked {
    entries: usize,
    manifests: usize,
    v2: Option<V2>,
}

struct V2 {
    first: u64,
    /// The size of the auditor's own checkpoint, when given.
    kept: Option<u64>,
    size: u64,
    context: usize,
    witnessed: Option<(u64, usize)>,
    from_size: Option<u64>,
}

/// The index, read and checked: its signature, and every file it lists against the
/// folder. Returns the problems found.
fn check_index(cfg: &Config, dir: &Path) -> Result<(EvidenceIndex, Vec<String>)> {
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
    if index.v == 0 || index.v > VERSION {
        bail!(
            "EVIDENCE.json is version {}; this plcvault reads versions 1 to {VERSION}\nfix: check it with the plcvault release that exported it",
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
    let mut listed = HashSet::new();
    for f in &index.files {
        listed.insert(f.path.clone());
        // A path that leaves the folder is never read: the index names only its own files.
        if let Err(why) = vault::manifest::check_name(&f.path) {
            problems.push(format!(
                "the index names a file outside the evidence folder: {}",
                printable_inline(&why)
            ));
            continue;
        }
        if f.size > MAX_EVIDENCE_FILE {
            problems.push(format!(
                "{} is listed with {} bytes, more than any evidence file holds ({MAX_EVIDENCE_FILE})",
                printable_inline(&f.path),
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
            problems.push(format!("{} was added after export", printable_inline(&p)));
        }
    }
    Ok((index, problems))
}

/// Version 1: the whole log, against the pinned keys.
fn check_v1(
    cfg: &Config,
    dir: &Path,
    index: &EvidenceIndex,
    kept: Option<&Path>,
    problems: &mut Vec<String>,
) -> Result<Checked> {
    let vault = Vault::open(dir)?;
    let history = History::load(&vault, &cfg.trust)?;
    // The whole log is here: its tree is computed and compared with the auditor's
    // checkpoint.
    if let Some(kept) = kept {
        let (m, old_root, _) = read_kept_checkpoint(kept, vault.id(), &cfg.trust)?;
        let mut tree = vault::tlog::MemoryTree::new();
        for (_, leaf) in &history.leaves {
            tree.push(*leaf);
        }
        if m > tree.size() {
            problems.push(format!(
                "your checkpoint has {m} entries, the evidence's log only {}: the log was rolled back or cut since your last audit",
                tree.size()
            ));
        } else if vault::tlog::tree_hash(&tree, m).ok() != Some(old_root) {
            problems.push(format!(
                "the evidence's first {m} entries are not the tree of your checkpoint: the log was forked or rewritten since your last audit"
            ));
        }
    }
    problems.extend(history.findings.iter().map(|f| f.to_string()));
    if vault.id() != index.vault {
        problems.push(format!(
            "the index is for vault {}, the folder holds vault {}",
            printable_inline(&index.vault),
            vault.id()
        ));
    }
    if history.head() != index.head_seq.zip(index.head_hash) {
        problems.push("the log's newest entry is not the one the index names".into());
    }
    // Counted as export counts them: each distinct manifest once (an unchanged device
    // names the same manifest night after night).
    let mut manifests = 0;
    let mut seen = HashSet::new();
    for s in history.snapshots() {
        let path = vault::manifest::manifest_path(dir, &s.manifest);
        if path.exists() && seen.insert(s.manifest) {
            manifests += 1;
            if let Err(e) = vault::manifest::load(dir, &s.manifest) {
                problems.push(first_line(&e.to_string()));
            }
        }
    }
    Ok(Checked {
        entries: history.entries.len(),
        manifests,
        v2: None,
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Reads a small evidence file the index names: `None` when it is absent.
fn read_small(path: &Path, max: u64) -> Result<Option<String>, String> {
    match vault::fsread::read_regular(path, max) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| format!("{} is not text", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
    }
}

/// Hex hashes, one per line (a consistency proof), or one line's space-separated tail.
fn parse_hashes<'a>(words: impl Iterator<Item = &'a str>) -> Option<Vec<Hash>> {
    let mut out = Vec::new();
    for w in words {
        if out.len() == MAX_PROOF
            || w.len() != 64
            || !w.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        out.push(Hash::from_hex(w)?);
    }
    Some(out)
}

/// Version 2: the checkpoint, each carried entry and its inclusion proof, the chain
/// between carried neighbours, the witnessed checkpoint and the consistency proofs.
fn check_v2(
    cfg: &Config,
    dir: &Path,
    index: &EvidenceIndex,
    (kept, need_witnesses): (Option<&Path>, usize),
    problems: &mut Vec<String>,
) -> Result<Checked> {
    let id = index.vault.as_str();
    match Vault::open(dir) {
        Ok(v) if v.id() == id => {}
        Ok(v) => problems.push(format!(
            "the index is for vault {}, the folder holds vault {}",
            printable_inline(id),
            v.id()
        )),
        Err(e) => problems.push(format!(
            "the folder's VAULT file: {}",
            first_line(&e.to_string())
        )),
    }
    let writers = cfg.trust.writers();
    // The checkpoint: signed by a trusted writer, for this vault, of the size the index says.
    let mut size = index.head_seq.unwrap_or(0);
    let mut root = None;
    match read_small(&dir.join("checkpoint"), vault::tiles::MAX_CHECKPOINT) {
        Ok(Some(note)) => match vault::tiles::open(&note, id, &writers) {
            Ok(s) if s.signers.is_empty() => problems.push(
                "the checkpoint is not signed by a key the config trusts as collector or approver"
                    .into(),
            ),
            Ok(s) if s.checkpoint.origin != vault::tiles::origin(id) => problems.push(format!(
                "the checkpoint is for {}, not for vault {}",
                printable_inline(&s.checkpoint.origin),
                printable_inline(id)
            )),
            Ok(s) => {
                if Some(s.checkpoint.size) != index.head_seq {
                    problems.push(format!(
                        "the checkpoint covers {} entries, the index names entry {} as the newest",
                        s.checkpoint.size,
                        index.head_seq.map_or("none".to_string(), |h| h.to_string())
                    ));
                }
                size = s.checkpoint.size;
                root = Some(s.checkpoint.root);
            }
            Err(e) => problems.push(format!("the checkpoint is malformed: {e}")),
        },
        Ok(None) => problems.push("checkpoint is missing".into()),
        Err(e) => problems.push(e),
    }
    let first = index.first.unwrap_or(1).max(1);
    if index.context.iter().any(|&c| c == 0 || c >= first) || !index.context.is_sorted() {
        problems.push("the index names earlier entries that are not before the period".into());
    }
    if first > size + 1 {
        problems.push(format!(
            "the period starts at entry {first}, after the checkpoint's {size}"
        ));
    }
    let carried: Vec<u64> = index
        .context
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < first)
        .chain(first..=size)
        .collect();
    let wanted: HashSet<u64> = carried.iter().copied().collect();
    // Where the period starts is proven by the entry before it, dated before DATE: without
    // it, entries could have been dropped from the period's start.
    let since = index
        .since
        .as_deref()
        .and_then(|s| super::parse_date(s).ok());
    if first > 1 {
        if !index.context.contains(&(first - 1)) {
            problems.push(format!(
                "the entry before the period (entry {}) is not carried: nothing proves the period starts at entry {first} (entries may have been dropped from its start)",
                first - 1
            ));
        }
        if since.is_none() {
            problems.push(format!(
                "the period starts at entry {first} but the index gives no date it starts from"
            ));
        }
    }
    // Entries present that the index does not carry (the index lists them as files, but a
    // signed index may still not claim them as the period).
    if let Ok(rd) = std::fs::read_dir(dir.join("log")) {
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = name
                .strip_suffix(".entry")
                .filter(|_| vault::log::looks_like_entry(&name))
                .and_then(|s| s.parse::<u64>().ok());
            if !seq.is_some_and(|s| wanted.contains(&s)) {
                problems.push(format!(
                    "log/{} is not an entry of the period the index names",
                    printable_inline(&name)
                ));
            }
        }
    }
    // The proofs, by entry.
    let mut proofs: BTreeMap<u64, Vec<Hash>> = BTreeMap::new();
    let mut groups: Vec<u64> = carried.iter().map(|s| (s - 1) / PROOF_GROUP).collect();
    groups.dedup();
    let proof_files: HashSet<std::path::PathBuf> = groups
        .iter()
        .map(|g| proofs_path(dir, g * PROOF_GROUP + 1))
        .collect();
    if let Ok(rd) = std::fs::read_dir(dir.join("proofs")) {
        for e in rd.filter_map(Result::ok) {
            if !proof_files.contains(&e.path()) {
                problems.push(format!(
                    "proofs/{} is not the proofs file of a carried entry",
                    printable_inline(&e.file_name().to_string_lossy())
                ));
            }
        }
    }
    for g in groups {
        let path = proofs_path(dir, g * PROOF_GROUP + 1);
        let text = match read_small(&path, MAX_EVIDENCE_FILE) {
            Ok(Some(t)) => t,
            Ok(None) => {
                problems.push(format!("{} is missing", path.display()));
                continue;
            }
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for (n, line) in text.lines().enumerate() {
            let mut words = line.split(' ');
            let seq = words.next().and_then(|w| w.parse::<u64>().ok());
            let hashes = parse_hashes(words);
            match (seq, hashes) {
                (Some(s), Some(h)) if wanted.contains(&s) && (s - 1) / PROOF_GROUP == g => {
                    if proofs.insert(s, h).is_some() {
                        problems.push(format!("{} holds two proofs of entry {s}", path.display()));
                    }
                }
                _ => problems.push(format!(
                    "{} line {} is not a proof of a carried entry",
                    path.display(),
                    n + 1
                )),
            }
        }
    }
    // Each entry: well formed, signed by a trusted key in its role, chained to the one
    // before when that one is carried, and in the checkpoint's tree.
    let mut prev: Option<(u64, Hash)> = None;
    let mut cache = vault::key::KeyCache::default();
    let mut manifests = Vec::new();
    // Who names each manifest, and the snapshots trusted forget entries forgot: a
    // manifest only forgotten snapshots name may be gone (pruned).
    let mut origins: Vec<(Hash, Origin)> = Vec::new();
    let mut snapshot_at: HashMap<Hash, (String, u64)> = HashMap::new();
    let mut forgets: HashSet<(String, u64)> = HashSet::new();
    let mut entries = 0;
    let mut head = None;
    let mut times: BTreeMap<u64, std::time::SystemTime> = BTreeMap::new();
    // Trusted entries whose time no clock check can use (before 1970).
    let mut undated: HashSet<u64> = HashSet::new();
    let mut hashes: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut kinds: BTreeMap<u64, (String, Option<Hash>)> = BTreeMap::new();
    for &seq in &carried {
        let path = vault::log::entry_path(dir, seq);
        let bytes = match vault::fsread::read_regular(&path, vault::log::MAX_ENTRY_SIZE) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!("log entry {seq} is missing"));
                prev = None;
                continue;
            }
            Err(e) => {
                problems.push(format!("log entry {seq} cannot be read: {e}"));
                prev = None;
                continue;
            }
        };
        entries += 1;
        let leaf = vault::tlog::leaf_hash(&bytes);
        match (proofs.get(&seq), root) {
            (Some(p), Some(r)) if vault::tlog::check_inclusion(&leaf, seq - 1, size, p, &r) => {}
            (None, _) => problems.push(format!("log entry {seq} has no inclusion proof")),
            (_, None) => {}
            (Some(_), Some(_)) => problems.push(format!(
                "log entry {seq} is not in the signed checkpoint's tree (its inclusion proof fails): the entry was changed or replaced"
            )),
        }
        let parsed = vault::log::parse(seq, &path, &bytes).map(|e| {
            let ok = e.signature_ok_cached(&mut cache);
            (e, ok)
        });
        let (checked, found) =
            vault::history::check_entry(id, &cfg.trust, prev, (seq, parsed, &path));
        problems.extend(found.iter().map(|f| f.to_string()));
        prev = checked.as_ref().map(|c| (seq, c.entry.hash));
        if let Some(c) = checked {
            if seq == size {
                head = Some(c.entry.hash);
            }
            hashes.insert(seq, c.entry.hash);
            if c.trusted {
                match c.entry.time() {
                    Some(t) => {
                        times.insert(seq, t);
                    }
                    None => {
                        undated.insert(seq);
                    }
                }
                let (kind, approves) = match &c.entry.event {
                    Ok(vault::log::Event::Approval { snapshot, .. }) => {
                        ("approval".to_string(), Some(*snapshot))
                    }
                    Ok(ev) => (ev.type_name().to_string(), None),
                    Err(t) => (t.clone(), None),
                };
                kinds.insert(seq, (kind, approves));
                match &c.entry.event {
                    Ok(vault::log::Event::Snapshot {
                        manifest, device, ..
                    }) => {
                        manifests.push(*manifest);
                        origins.push((*manifest, Origin::Snapshot(device.clone(), seq)));
                        snapshot_at.insert(c.entry.hash, (device.clone(), seq));
                    }
                    Ok(vault::log::Event::Approval {
                        manifest, snapshot, ..
                    }) => {
                        manifests.push(*manifest);
                        origins.push((*manifest, Origin::Approval(*snapshot)));
                    }
                    Ok(vault::log::Event::Forget { forgotten, .. }) => {
                        for f in forgotten {
                            forgets.extend(f.snapshots.iter().map(|s| (f.device.clone(), *s)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if size > 0 && head != index.head_hash {
        problems.push("the log's newest entry is not the one the index names".into());
    }
    // An entry no clock check can use is before any period, so never in one, and cannot
    // prove where one starts.
    for &seq in &undated {
        if seq + 1 == first || seq >= first {
            problems.push(format!(
                "entry {seq} is dated before 1970: it cannot show where the period starts or belong to it"
            ));
        }
    }
    // The period's start: the entry before it is dated before DATE.
    if first > 1
        && let (Some(t), Some(s)) = (times.get(&(first - 1)), since)
        && *t >= s
    {
        problems.push(format!(
            "entry {}, carried as the one before the period, is dated within it: the period was cut at its start",
            first - 1
        ));
    }
    // Clocks: no entry dated ahead of now (a date in the future would pass every age
    // check), none of the period dated before its start (an honest export begins after
    // the newest entry dated before DATE).
    let now = std::time::SystemTime::now();
    for (&seq, &t) in &times {
        if t > now + vault::verify::DEFAULT_CLOCK_SKEW {
            problems.push(format!(
                "entry {seq} is dated {} ahead of now: its time cannot be true",
                humantime::format_duration(Duration::from_secs(
                    t.duration_since(now).unwrap_or_default().as_secs()
                ))
            ));
        }
        if seq >= first
            && let Some(s) = since
            && t < s
        {
            problems.push(format!(
                "entry {seq}, in the period, is dated before the period's start: the period was cut"
            ));
        }
    }
    // The earlier entries: approvals, the snapshots they approve, and the boundary.
    let approved: HashSet<Hash> = kinds.values().filter_map(|(_, a)| *a).collect();
    for &c in index.context.iter().filter(|&&c| c + 1 != first) {
        let ok = match kinds.get(&c) {
            Some((k, _)) if k == "approval" => true,
            Some((k, _)) if k == "snapshot" => hashes.get(&c).is_some_and(|h| approved.contains(h)),
            _ => false,
        };
        if !ok {
            problems.push(format!(
                "earlier entry {c} is neither a baseline approval nor the snapshot a carried approval approves"
            ));
        }
    }
    // The baselines the report names are carried, as the log has them.
    if let Ok(Some(text)) = read_small(&dir.join("report.json"), MAX_EVIDENCE_FILE)
        && let Ok(report) = serde_json::from_str::<serde_json::Value>(&text)
    {
        for d in report["devices"].as_array().into_iter().flatten() {
            let b = &d["baseline"];
            let (Some(seq), Some(entry)) = (b["seq"].as_u64(), b["entry"].as_str()) else {
                continue;
            };
            if hashes.get(&seq).map(|h| h.to_hex()).as_deref() != Some(entry) {
                problems.push(format!(
                    "the report names the approval in log entry {seq} as the baseline of {}, and the evidence does not carry that entry",
                    printable_inline(d["device"].as_str().unwrap_or("?"))
                ));
            }
        }
    }
    // The manifests the entries name: all carried, each whole.
    manifests.sort();
    manifests.dedup();
    let forgotten = |o: &Origin| match o {
        Origin::Snapshot(d, s) => forgets.contains(&(d.clone(), *s)),
        Origin::Approval(h) => snapshot_at.get(h).is_some_and(|k| forgets.contains(k)),
    };
    for m in &manifests {
        let only_forgotten = origins
            .iter()
            .filter(|(x, _)| x == m)
            .all(|(_, o)| forgotten(o));
        match vault::manifest::load(dir, m) {
            Err(vault::VaultError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound && only_forgotten => {}
            Err(e) => problems.push(first_line(&e.to_string())),
            Ok(_) => {}
        }
    }
    // The newest witnessed checkpoint, and that the exported one extends it.
    let witnessed = match root {
        Some(r) => check_joined(cfg, dir, id, "witnessed", (size, r), problems, true),
        None => None,
    };
    // Witnesses asked for: the checkpoint joins one that many cosigned, and what came after
    // it is younger than the grace period a vault's verify gives.
    if need_witnesses > 0 {
        match witnessed {
            Some((w, _, n)) if n >= need_witnesses => {
                let grace = vault::VerifyOptions::default().witness_grace;
                let now = std::time::SystemTime::now();
                if let Some((seq, _)) = times
                    .range(w + 1..)
                    .find(|(_, t)| now.duration_since(**t).unwrap_or_default() > grace)
                {
                    problems.push(format!(
                        "entries from {seq} on are not covered by a checkpoint {need_witnesses} witness(es) cosigned, and entry {seq} is older than {}: the witnesses never saw them (a fork?)",
                        humantime::format_duration(grace)
                    ));
                }
            }
            Some((_, _, n)) => problems.push(format!(
                "the newest witnessed checkpoint has {n} trusted witness cosignature(s), {need_witnesses} asked for"
            )),
            None => problems.push(format!(
                "the evidence carries no checkpoint cosigned by a trusted witness, {need_witnesses} asked for: its log was never seen by a witness (a fork?)"
            )),
        }
    }
    // The auditor's last checkpoint, carried by the export and, when given, compared.
    let carried_from = match root {
        Some(r) => check_joined(cfg, dir, id, "from-checkpoint", (size, r), problems, false),
        None => None,
    };
    if carried_from.map(|c| c.0) != index.from_size {
        problems.push(
            "the index and the from-checkpoint file disagree on the earlier checkpoint".into(),
        );
    }
    let mut kept_size = None;
    if let Some(kept) = kept {
        let (m, old_root, _) = read_kept_checkpoint(kept, id, &cfg.trust)?;
        kept_size = Some(m);
        if m > size {
            problems.push(format!(
                "your checkpoint has {m} entries, the evidence's only {size}: the log was rolled back or cut since your last audit"
            ));
        } else if m == size && Some(old_root) != root {
            problems.push(format!(
                "your checkpoint of {m} entries has another root than the evidence's: the log was forked or rewritten since your last audit"
            ));
        } else if m < size {
            match carried_from {
                Some((cm, croot, _)) if cm == m && croot == old_root => {}
                Some((cm, _, _)) if cm == m => problems.push(format!(
                    "the evidence was proven against another checkpoint of {m} entries than yours: the log was forked or rewritten since your last audit"
                )),
                _ => problems.push(format!(
                    "the evidence carries no consistency proof from your checkpoint of {m} entries: ask for an export with `--from-checkpoint` and that checkpoint"
                )),
            }
        }
    }
    // Audits in a row: nothing written since the last audit may be left out.
    if let Some(m) = kept_size.or(carried_from.map(|c| c.0))
        && first > m + 1
    {
        problems.push(format!(
            "entries {} to {} were written after the checkpoint of the last audit ({m} entries) and are not in this evidence: ask for an export whose period begins at or before that audit",
            m + 1,
            first - 1
        ));
    }
    Ok(Checked {
        entries,
        manifests: manifests.len(),
        v2: Some(V2 {
            first,
            size,
            context: carried.iter().filter(|&&s| s < first).count(),
            witnessed: witnessed.map(|w| (w.0, w.2)),
            from_size: carried_from.map(|c| c.0),
            kept: kept_size,
        }),
    })
}

/// An earlier checkpoint in the folder (`name`, with `name.proof`): signed by a writer
/// (and, for `witnessed`, cosigned by trusted witnesses), and joined to the exported
/// checkpoint `(size, root)` by its consistency proof. Returns its size, root and the
/// witnesses that cosigned it; `None` when the folder has none.
fn check_joined(
    cfg: &Config,
    dir: &Path,
    id: &str,
    name: &str,
    (size, root): (u64, Hash),
    problems: &mut Vec<String>,
    witnessed: bool,
) -> Option<(u64, Hash, usize)> {
    let note = match read_small(&dir.join(name), vault::tiles::MAX_CHECKPOINT) {
        Ok(Some(n)) => n,
        Ok(None) => return None,
        Err(e) => {
            problems.push(e);
            return None;
        }
    };
    let all: Vec<_> = cfg.trust.keys.iter().map(|k| k.key).collect();
    let s = match vault::tiles::open(&note, id, &all) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("{name} is malformed: {e}"));
            return None;
        }
    };
    let role_of = |k: &vault::PublicKey| {
        cfg.trust
            .keys
            .iter()
            .filter(|t| t.key == *k)
            .map(|t| t.role)
            .collect::<Vec<_>>()
    };
    let by_writer = s
        .signers
        .iter()
        .any(|k| role_of(k).iter().any(|r| *r != vault::Role::Witness));
    let witnesses = s
        .signers
        .iter()
        .filter(|k| role_of(k).contains(&vault::Role::Witness))
        .count();
    if !by_writer || s.checkpoint.origin != vault::tiles::origin(id) {
        problems.push(format!(
            "{name} is not a checkpoint of this vault signed by a trusted writer"
        ));
        return None;
    }
    if witnessed && witnesses == 0 {
        problems.push(format!("{name} is cosigned by no trusted witness"));
        return None;
    }
    let c = s.checkpoint;
    let proof = match read_small(&dir.join(format!("{name}.proof")), 64 * 65) {
        Ok(Some(t)) => parse_hashes(t.lines()),
        _ => None,
    };
    let joined = c.size <= size
        && c.size > 0
        && proof.is_some_and(|p| vault::tlog::check_consistency(c.size, &c.root, size, &root, &p));
    if !joined {
        problems.push(format!(
            "the exported checkpoint ({size} entries) does not extend {name} ({} entries): the log was forked or rewritten after that checkpoint was signed",
            c.size
        ));
        return None;
    }
    Some((c.size, c.root, witnesses))
}

/// What names a manifest in an evidence folder.
enum Origin {
    /// A snapshot entry: its device and number.
    Snapshot(String, u64),
    /// An approval: the approved snapshot's entry hash.
    Approval(Hash),
}
