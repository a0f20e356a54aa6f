//! Reading the log back: every entry checked against the pinned keys and the hash chain.
//!
//! Everything that reads the vault (listing, restore, the writer, verify) goes through
//! `History::load`, so an entry with a bad signature, an unknown or wrong-role signer, or
//! from another vault is never acted on.

use std::time::SystemTime;

use crate::error::VaultError;
use crate::finding::{Finding, FindingKind};
use crate::hash::Hash;
use crate::log::{self, Entry, Event, PackRef};
use crate::repository::{Trust, Vault};

/// An entry and what checking it found.
#[derive(Clone, Debug)]
pub struct Checked {
    pub entry: Entry,
    /// The trusted key's name, when the signer is pinned.
    pub signer_name: Option<String>,
    /// Signature verifies, signer pinned with the right role, right vault, right number.
    pub trusted: bool,
}

/// A stored snapshot as the log records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SnapshotRecord {
    /// The snapshot id: the first 12 hex digits of its log entry's hash (unique per
    /// collection, even when the content did not change).
    pub id: String,
    /// The full hash of the log entry.
    pub entry: Hash,
    pub seq: u64,
    /// When the entry was signed.
    pub time: String,
    pub started: String,
    pub finished: String,
    pub device: String,
    pub manifest: Hash,
    pub complete: bool,
    pub artifacts: u64,
    pub bytes: u64,
    pub signer: String,
}

/// A baseline approval as the log records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ApprovalRecord {
    pub seq: u64,
    /// The approval entry's hash, short, and whole.
    pub id: String,
    pub entry: Hash,
    pub time: String,
    pub device: String,
    /// The approved snapshot's id (short log entry hash) and full hash.
    pub snapshot: String,
    pub snapshot_entry: Hash,
    pub manifest: Hash,
    /// The name the config gives the signing key.
    pub approver: String,
    /// The approver's public key fingerprint.
    pub key: String,
    pub ticket: String,
    pub reason: String,
    pub rules: serde_json::Value,
    pub accepted_suspect: bool,
    /// The digest of the review shown before signing, when the approval records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Hash>,
}

/// A restore drill as the log records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DrillRecord {
    pub seq: u64,
    pub id: String,
    pub entry: Hash,
    pub time: String,
    pub device: String,
    pub snapshot: String,
    pub target: String,
    pub passed: bool,
    pub artifacts: u64,
    pub bytes: u64,
    pub restore_ms: u64,
    pub verify_ms: u64,
    pub failures: Vec<crate::log::DrillFailure>,
}

/// A finding an approver accepted in a trusted `recovery` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct AcceptedRecord {
    pub seq: u64,
    pub time: String,
    pub approver: String,
    pub reason: String,
    pub accepted: crate::log::Accepted,
}

impl AcceptedRecord {
    /// The note verify prints instead of the finding.
    pub fn note(&self, f: &Finding) -> String {
        format!(
            "{} (accepted by {} in log entry {} on {}: {})",
            f.message, self.approver, self.seq, self.time, self.reason
        )
    }
}

/// The checked log.
#[derive(Debug, Default)]
pub struct History {
    pub entries: Vec<Checked>,
    pub findings: Vec<Finding>,
    /// Files in `log/` that are not entries.
    pub strays: Vec<String>,
    /// The Merkle leaf hash of every entry read, by entry number, in order.
    pub leaves: Vec<(u64, Hash)>,
}

impl History {
    /// Reads and checks every entry.
    ///
    /// Fails only when the log folder or an entry cannot be read at all (I/O error);
    /// damage is reported in `findings`.
    pub fn load(vault: &Vault, trust: &Trust) -> Result<History, VaultError> {
        let (seqs, strays) = log::list(vault.root())?;
        let mut h = History {
            strays,
            ..History::default()
        };
        for s in h.strays.iter().filter(|s| log::looks_like_entry(s)) {
            h.findings.push(Finding::new(
                FindingKind::MalformedEntry,
                format!(
                    "log/{s} is not a valid entry number (1 to {}): a log file put there by hand",
                    log::MAX_SEQ
                ),
            ));
        }
        let mut sink = crate::finding::Sink::default();
        for f in std::mem::take(&mut h.findings) {
            sink.push(f);
        }
        let mut prev: Option<(u64, Hash)> = None;
        let mut expected = 1u64;
        let mut reader = log::Reader::new(vault.root());
        for seq in seqs {
            if seq != expected {
                let range = if seq - 1 == expected {
                    format!("entry {expected} is")
                } else {
                    format!("entries {expected} to {} are", seq - 1)
                };
                sink.push(
                    Finding::new(
                        FindingKind::MissingEntry,
                        format!("{range} missing from the log (deleted?)"),
                    )
                    .seq(expected),
                );
            }
            expected = seq + 1;
            let (bytes, parsed, path) = reader.read(seq)?;
            h.leaves.push((seq, crate::tlog::leaf_hash(&bytes)));
            let entry = match parsed {
                Ok(e) => e,
                Err(why) => {
                    sink.push(
                        Finding::new(
                            FindingKind::MalformedEntry,
                            format!("log entry {seq} is malformed: {why}"),
                        )
                        .seq(seq)
                        .path(path.display()),
                    );
                    prev = Some((seq, Hash::of(&bytes)));
                    continue;
                }
            };
            let mut trusted = true;
            let mut flag = |kind, msg: String| {
                trusted = false;
                sink.push(Finding::new(kind, msg).seq(seq).path(path.display()));
            };
            if entry.header.seq != seq {
                flag(
                    FindingKind::Reordered,
                    format!(
                        "log file {seq} holds entry {} (entries were moved or reordered)",
                        entry.header.seq
                    ),
                );
            }
            if entry.header.vault != vault.id() {
                flag(
                    FindingKind::WrongVault,
                    format!(
                        "log entry {seq} belongs to vault {}, not this vault {}",
                        entry.header.vault,
                        vault.id()
                    ),
                );
            }
            let signer_name = match trust.lookup(&entry.header.signer) {
                None => {
                    flag(
                        FindingKind::UnknownSigner,
                        format!(
                            "log entry {seq} is signed by key {}, which the config does not trust",
                            entry.header.signer.fingerprint()
                        ),
                    );
                    None
                }
                Some((name, roles)) => {
                    if let Ok(ev) = &entry.event {
                        let need = ev.required_role();
                        if !roles.contains(&need) {
                            flag(
                                FindingKind::WrongRole,
                                format!(
                                    "log entry {seq} ({}) is signed by `{name}`, which is not trusted as {need}",
                                    ev.type_name()
                                ),
                            );
                        }
                    }
                    Some(name.to_string())
                }
            };
            if !entry.signature_ok() {
                flag(
                    FindingKind::BadSignature,
                    format!(
                        "log entry {seq} has a signature that does not verify (altered entry?)"
                    ),
                );
            }
            let expected_prev = match prev {
                Some((p, hash)) if p + 1 == seq => Some(hash),
                _ => None,
            };
            let chain_ok = match (seq, entry.header.prev, expected_prev) {
                (1, None, _) => true,
                (_, Some(claimed), Some(actual)) => claimed == actual,
                // The previous entry is missing: the gap is reported already.
                (s, Some(_), None) if s > 1 => true,
                _ => false,
            };
            if !chain_ok {
                sink.push(
                    Finding::new(
                        FindingKind::BrokenChain,
                        format!(
                            "log entry {seq} does not follow entry {}: the chain is broken (entry changed, replaced or inserted)",
                            seq.saturating_sub(1)
                        ),
                    )
                    .seq(seq)
                    .path(path.display()),
                );
            }
            prev = Some((seq, entry.hash));
            let mut entry = entry;
            entry.slim(trusted);
            h.entries.push(Checked {
                entry,
                signer_name,
                trusted,
            });
        }
        h.findings = sink.finish();
        Ok(h)
    }

    /// Trusted entries with an event this version knows, oldest first.
    fn trusted(&self) -> impl Iterator<Item = (&Checked, &Event)> {
        self.entries
            .iter()
            .filter(|c| c.trusted)
            .filter_map(|c| c.entry.event.as_ref().ok().map(|ev| (c, ev)))
    }

    /// The hash of the entry in file `seq`, if it was readable and well formed.
    pub fn hash_of(&self, seq: u64) -> Option<Hash> {
        self.entries
            .iter()
            .find(|c| c.entry.file_seq == seq)
            .map(|c| c.entry.hash)
    }

    /// The newest entry file's number and hash.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.entries
            .last()
            .map(|c| (c.entry.file_seq, c.entry.hash))
    }

    pub fn newest_time(&self) -> Option<SystemTime> {
        self.entries.iter().rev().find_map(|c| c.entry.time())
    }

    /// Trusted snapshot entries, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotRecord> {
        self.trusted()
            .filter_map(|(c, ev)| match ev {
                Event::Snapshot {
                    device,
                    started,
                    finished,
                    manifest,
                    complete,
                    artifacts,
                    bytes,
                    ..
                } => Some(SnapshotRecord {
                    id: c.entry.hash.short(),
                    entry: c.entry.hash,
                    seq: c.entry.file_seq,
                    time: c.entry.header.time.clone(),
                    started: started.clone(),
                    finished: finished.clone(),
                    device: device.clone(),
                    manifest: *manifest,
                    complete: *complete,
                    artifacts: *artifacts,
                    bytes: *bytes,
                    signer: c.signer_name.clone().unwrap_or_default(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Trusted approvals, oldest first, optionally of one device.
    pub fn approvals(&self, device: Option<&str>) -> Vec<ApprovalRecord> {
        self.trusted()
            .filter_map(|(c, ev)| match ev {
                Event::Approval {
                    device: d,
                    snapshot,
                    manifest,
                    ticket,
                    reason,
                    rules,
                    accepted_suspect,
                    review,
                    ..
                } if device.is_none_or(|x| x == d) => Some(ApprovalRecord {
                    seq: c.entry.file_seq,
                    id: c.entry.hash.short(),
                    entry: c.entry.hash,
                    time: c.entry.header.time.clone(),
                    device: d.clone(),
                    snapshot: snapshot.short(),
                    snapshot_entry: *snapshot,
                    manifest: *manifest,
                    approver: c.signer_name.clone().unwrap_or_default(),
                    key: c.entry.header.signer.fingerprint(),
                    ticket: ticket.clone(),
                    reason: reason.clone(),
                    rules: rules.clone(),
                    accepted_suspect: *accepted_suspect,
                    review: *review,
                }),
                _ => None,
            })
            .collect()
    }

    /// Trusted drill records, oldest first, optionally of one device.
    pub fn drills(&self, device: Option<&str>) -> Vec<DrillRecord> {
        self.trusted()
            .filter_map(|(c, ev)| match ev {
                Event::Drill {
                    device: d,
                    snapshot,
                    target,
                    passed,
                    artifacts,
                    bytes,
                    restore_ms,
                    verify_ms,
                    failures,
                    ..
                } if device.is_none_or(|x| x == d) => Some(DrillRecord {
                    seq: c.entry.file_seq,
                    id: c.entry.hash.short(),
                    entry: c.entry.hash,
                    time: c.entry.header.time.clone(),
                    device: d.clone(),
                    snapshot: snapshot.short(),
                    target: target.clone(),
                    passed: *passed,
                    artifacts: *artifacts,
                    bytes: *bytes,
                    restore_ms: *restore_ms,
                    verify_ms: *verify_ms,
                    failures: failures.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Findings accepted by trusted `recovery` entries, oldest first.
    pub fn accepted(&self) -> Vec<AcceptedRecord> {
        self.trusted()
            .flat_map(|(c, ev)| match ev {
                Event::Recovery { accepted, reason } => accepted
                    .iter()
                    .map(|a| AcceptedRecord {
                        seq: c.entry.file_seq,
                        time: c.entry.header.time.clone(),
                        approver: c.signer_name.clone().unwrap_or_default(),
                        reason: reason.clone(),
                        accepted: a.clone(),
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Why a device's newest trusted approval, at entry `after`, may not be its newest
    /// approval: every later entry that cannot be trusted (altered, of an unknown signer,
    /// malformed, missing, or where the hash chain breaks). Nothing an untrusted entry says (its type, its device) is
    /// believed, so any of them may have been an approval. Empty when nothing casts doubt;
    /// a new approval after the damage clears it.
    pub fn doubts_after(&self, after: u64) -> Vec<String> {
        let mut seqs: Vec<u64> = self
            .entries
            .iter()
            .filter(|c| !c.trusted && c.entry.file_seq > after)
            .map(|c| c.entry.file_seq)
            .collect();
        seqs.extend(
            self.findings
                .iter()
                // A chain break or a moved entry means entries from elsewhere (an older copy,
                // another vault) were put in: validly signed, yet not this history.
                .filter(|f| {
                    matches!(
                        f.kind,
                        FindingKind::MalformedEntry
                            | FindingKind::MissingEntry
                            | FindingKind::BrokenChain
                            | FindingKind::Reordered
                            | FindingKind::WrongVault
                    )
                })
                .filter_map(|f| f.seq)
                .filter(|s| *s > after),
        );
        seqs.sort_unstable();
        seqs.dedup();
        seqs.iter()
            .map(|s| format!("log entry {s} cannot be trusted"))
            .collect()
    }

    /// The device's baseline: its newest trusted approval.
    pub fn baseline(&self, device: &str) -> Option<ApprovalRecord> {
        self.approvals(Some(device)).pop()
    }

    /// Packs to read chunks from: those named by any well-formed snapshot entry, trusted
    /// or not. Reading is safe from any pack (every chunk read is checked against its
    /// SHA-256, which a trusted manifest names), and one damaged old entry must not make
    /// later snapshots that reuse its chunks unrestorable. Writers deduplicate only
    /// against `committed_packs`, so no new snapshot comes to depend on a pack that only
    /// an untrusted entry names.
    pub fn packs_for_reading(&self) -> Vec<PackRef> {
        self.entries
            .iter()
            .flat_map(|c| match &c.entry.event {
                Ok(Event::Snapshot { packs, .. }) => packs.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Packs named by trusted snapshot entries: what writers deduplicate against.
    pub fn committed_packs(&self) -> Vec<PackRef> {
        self.trusted()
            .flat_map(|(_, ev)| match ev {
                Event::Snapshot { packs, .. } => packs.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// Finds a snapshot by id (a prefix of its log entry's hash) or `latest`, optionally
    /// of one device.
    ///
    /// Fails when none or more than one matches.
    pub fn find_snapshot(
        &self,
        device: Option<&str>,
        id: Option<&str>,
    ) -> Result<SnapshotRecord, VaultError> {
        let all: Vec<SnapshotRecord> = self
            .snapshots()
            .into_iter()
            .filter(|s| device.is_none_or(|d| s.device == d))
            .collect();
        let not_found = |id: &str| VaultError::SnapshotNotFound {
            id: id.to_string(),
            device: device
                .map(|d| format!(" of device `{d}`"))
                .unwrap_or_default(),
        };
        match id {
            None | Some("latest") => all.last().cloned().ok_or_else(|| not_found("latest")),
            Some(prefix) => {
                let prefix = prefix.to_ascii_lowercase();
                let hits: Vec<&SnapshotRecord> = all
                    .iter()
                    .filter(|s| s.entry.to_hex().starts_with(&prefix))
                    .collect();
                match hits.len() {
                    0 => Err(not_found(&prefix)),
                    1 => Ok(hits[0].clone()),
                    _ => Err(VaultError::AmbiguousSnapshot(prefix)),
                }
            }
        }
    }
}
