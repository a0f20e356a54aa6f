//! Reading the log back: every entry checked against the pinned keys and the hash chain,
//! and what the trusted ones say folded into a summary per device.
//!
//! Everything that reads the vault (listing, restore, the writer, verify) goes through a
//! `History` — built from every entry (`History::load`), or from the verifier's catalog
//! and the entries since (`catalog::open`) — so an entry with a bad signature, an unknown
//! or wrong-role signer, or from another vault is never acted on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Hash>,
}

/// A restore drill as the log records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// A failed collection as the log records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub seq: u64,
    pub time: String,
    /// The error's first line.
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Snapshots of a device that a trusted `forget` entry forgot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForgottenRecord {
    pub seq: u64,
    pub time: String,
    /// Entry numbers of the snapshots forgotten.
    pub snapshots: Vec<u64>,
}

/// One trusted entry about a device, as the catalog keeps it: one line of JSON each, in
/// log order, in the device's record file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    Snapshot(SnapshotRecord),
    Approval(ApprovalRecord),
    Drill(DrillRecord),
    Failure(FailureRecord),
    Forgotten(ForgottenRecord),
}

/// Where a device's records are and what they hash to: `count` lines, `bytes` long, whose
/// running SHA-256 (each step hashing the previous digest and the line) is `digest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordFile {
    pub count: u64,
    pub bytes: u64,
    pub digest: Hash,
}

/// What the log says about one device, folded entry by entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub snapshots: u64,
    pub latest: Option<SnapshotRecord>,
    pub latest_complete: Option<SnapshotRecord>,
    pub approvals: u64,
    /// The newest trusted approval.
    pub baseline: Option<ApprovalRecord>,
    pub drills: u64,
    pub last_drill: Option<DrillRecord>,
    pub last_passed_drill: Option<DrillRecord>,
    pub last_failure: Option<FailureRecord>,
    pub records: RecordFile,
    /// Snapshots retention forgot (counted in `snapshots` too).
    #[serde(default)]
    pub forgotten: u64,
}

/// The log folded: what every command needs without reading the entries again.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The vault's id.
    pub vault: String,
    /// The highest entry number folded, and how many well-formed entries there were.
    pub size: u64,
    #[serde(default)]
    pub count: u64,
    /// The Merkle tree of the entries folded, as the roots of its complete subtrees from
    /// the left (its compact range), and how many leaves it has.
    pub frontier: Vec<Hash>,
    pub leaves: u64,
    /// The newest entry folded and the SHA-256 of its bytes, whatever they were (the
    /// next entry's `prev` must name it).
    pub prev: Option<(u64, Hash)>,
    /// The newest well-formed entry and its time.
    pub head: Option<(u64, Hash)>,
    pub newest_time: Option<String>,
    pub devices: BTreeMap<String, DeviceSummary>,
    /// Entries that cannot be trusted, and entries findings are about.
    pub untrusted: Vec<u64>,
    pub accepted: Vec<AcceptedRecord>,
    /// Trusted recovery entries: number, signer, time, what they accepted, why.
    pub recoveries: Vec<(u64, String, String, Vec<crate::log::Accepted>, String)>,
    /// Packs named by any well-formed snapshot entry, and by trusted ones.
    pub packs_read: Vec<PackRef>,
    pub packs_committed: Vec<PackRef>,
    /// The findings so far, at most `MAX_PER_KIND` per kind, and how many of each kind.
    pub findings: Vec<Finding>,
    pub counts: BTreeMap<FindingKind, usize>,
    /// The newest copy to each offline disk, by the disk's id.
    #[serde(default)]
    pub copies: BTreeMap<String, CopyRecord>,
    /// The files the folded entries were read from, as they were (see `catalog`).
    #[serde(default)]
    pub files: Vec<FileStat>,
}

/// A replica written to an offline disk, as the log records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CopyRecord {
    pub seq: u64,
    pub time: String,
    pub disk: String,
    pub label: String,
    pub target: String,
    /// The replica holds entries 1 to `size`.
    pub size: u64,
    pub total_bytes: u64,
}

/// A file entries were read from: its path in the vault, size, inode, modification and
/// change times, and for a loose entry the SHA-256 of its bytes (so that its move into a
/// bundle can be checked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub path: String,
    pub len: u64,
    pub ino: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
}

impl Summary {
    pub fn new(vault: &str) -> Summary {
        Summary {
            vault: vault.to_string(),
            ..Summary::default()
        }
    }

    /// The root of the tree of the entries folded.
    pub fn root(&self) -> Hash {
        let mut it = self.frontier.iter().rev();
        match it.next() {
            None => crate::tlog::empty_root(),
            Some(last) => it.fold(*last, |r, h| crate::tlog::node_hash(h, &r)),
        }
    }

    fn push_leaf(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut n = self.leaves;
        while n & 1 == 1 {
            let left = self.frontier.pop().expect("one subtree per set bit");
            h = crate::tlog::node_hash(&left, &h);
            n >>= 1;
        }
        self.frontier.push(h);
        self.leaves += 1;
    }

    fn finding(&mut self, f: Finding) {
        let n = self.counts.entry(f.kind).or_default();
        *n += 1;
        if *n <= crate::finding::MAX_PER_KIND {
            self.findings.push(f);
        }
    }

    /// The findings, with one per kind that had more than were kept.
    pub fn all_findings(&self) -> Vec<Finding> {
        let mut out = self.findings.clone();
        for (kind, n) in &self.counts {
            if *n > crate::finding::MAX_PER_KIND {
                out.push(Finding::new(
                    *kind,
                    format!(
                        "{} more findings of this kind (the first {} are listed)",
                        n - crate::finding::MAX_PER_KIND,
                        crate::finding::MAX_PER_KIND
                    ),
                ));
            }
        }
        out
    }
}

/// Checks entry `seq` (its parse as read, and whether its signature verifies) against trust, its number, its vault
/// and the entry before it (`prev`: the number and hash of the entry read before, if
/// any). Returns the checked entry, if well formed, and what was found.
pub fn check_entry(
    vault_id: &str,
    trust: &Trust,
    prev: Option<(u64, Hash)>,
    (seq, parsed, path): (u64, Result<(Entry, bool), String>, &Path),
) -> (Option<Checked>, Vec<Finding>) {
    let mut found = Vec::new();
    let (entry, signature_ok) = match parsed {
        Ok(e) => e,
        Err(why) => {
            found.push(
                Finding::new(
                    FindingKind::MalformedEntry,
                    format!("log entry {seq} is malformed: {why}"),
                )
                .seq(seq)
                .path(path.display()),
            );
            return (None, found);
        }
    };
    let mut trusted = true;
    let mut flag = |kind, msg: String| {
        trusted = false;
        found.push(Finding::new(kind, msg).seq(seq).path(path.display()));
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
    if entry.header.vault != vault_id {
        flag(
            FindingKind::WrongVault,
            format!(
                "log entry {seq} belongs to vault {}, not this vault {vault_id}",
                entry.header.vault,
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
    if !signature_ok {
        flag(
            FindingKind::BadSignature,
            format!("log entry {seq} has a signature that does not verify (altered entry?)"),
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
        found.push(
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
    let mut entry = entry;
    entry.slim(trusted);
    (
        Some(Checked {
            entry,
            signer_name,
            trusted,
        }),
        found,
    )
}

/// Where device records go as they are folded: kept in memory, or appended to files of
/// a catalog folder.
#[derive(Debug)]
pub enum Store {
    Memory(BTreeMap<String, Vec<Record>>),
    /// One device's records only (the others are counted in the summary, not kept).
    Only(String, Vec<Record>),
    /// The folder, and lines not written yet per device.
    Dir(PathBuf, BTreeMap<String, Vec<u8>>),
}

impl Default for Store {
    fn default() -> Self {
        Store::Memory(BTreeMap::new())
    }
}

/// The first `len` bytes of the regular file `path` (fewer when it is shorter).
fn read_prefix(path: &Path, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = crate::fsread::open_regular(path)?;
    let mut out = Vec::new();
    f.take(len).read_to_end(&mut out)?;
    Ok(out)
}

/// The file of a device's records in a catalog folder: named by the SHA-256 of the
/// device's name, since a name may be `..`.
pub fn record_path(dir: &Path, device: &str) -> PathBuf {
    dir.join(format!(
        "{}.records",
        &Hash::of(device.as_bytes()).to_hex()[..32]
    ))
}

/// Entries read (number, bytes, why they are not an entry if reading tells, where) and
/// their parses with whether their signatures verify.
#[allow(clippy::type_complexity)]
type Batch = (
    Vec<(u64, Vec<u8>, Option<String>, PathBuf)>,
    Vec<Result<(Entry, bool), String>>,
);

/// Reads the next entries of `seqs` (at most `BATCH_ENTRIES`, or `BATCH_BYTES` of them)
/// and parses them and checks their signatures on `threads` threads; `None` at the end.
///
/// Fails when an entry cannot be read (I/O error).
fn read_batch(
    reader: &mut log::Reader,
    seqs: &mut impl Iterator<Item = u64>,
    threads: usize,
) -> Result<Option<Batch>, VaultError> {
    let (mut raw, mut bytes) = (Vec::new(), 0usize);
    while raw.len() < BATCH_ENTRIES && bytes < BATCH_BYTES {
        let Some(seq) = seqs.next() else { break };
        let (b, bad, p) = reader.read_raw(seq)?;
        bytes += b.len();
        raw.push((seq, b, bad, p));
    }
    if raw.is_empty() {
        return Ok(None);
    }
    let parsed = crate::parallel::map_with(
        &raw,
        threads,
        crate::key::KeyCache::default,
        |keys, (seq, b, bad, p)| {
            let parsed = match bad {
                Some(why) => Err(why.clone()),
                None => log::parse(*seq, p, b),
            };
            let sig = parsed.as_ref().is_ok_and(|e| e.signature_ok_cached(keys));
            parsed.map(|e| (e, sig))
        },
    );
    Ok(Some((raw, parsed)))
}

/// How many entries, and how many bytes of them, are parsed at a time.
const BATCH_ENTRIES: usize = 4096;
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Lines held in memory before a `Store::Dir` writes them out.
const MAX_PENDING: usize = 16 * 1024 * 1024;

/// The checked log.
#[derive(Debug, Default)]
pub struct History {
    /// The entries read and checked by this reading (all of them, for `load`; those
    /// after the catalog's, for `catalog::open`).
    pub entries: Vec<Checked>,
    pub findings: Vec<Finding>,
    /// Files in `log/` that are not entries.
    pub strays: Vec<String>,
    /// The Merkle leaf hash of every entry read, by entry number, in order.
    pub leaves: Vec<(u64, Hash)>,
    pub summary: Summary,
    pub store: Store,
    /// `entries`, `leaves` and `times` hold what was read after this entry number (0:
    /// every entry).
    pub since: u64,
    /// The time of every trusted entry read, by number, in order.
    pub times: Vec<(u64, SystemTime)>,
    /// The catalog was rebuilt from every entry in this reading.
    pub rebuilt: bool,
    /// The signed checkpoint the catalog reproduced: its size and root.
    pub matched: Option<(u64, Hash)>,
    /// Keep every checked entry in `entries` (else only those after `keep_after`).
    keep_after: u64,
    pending: usize,
    frozen: bool,
    /// The vault read and the keys, for entries not held in memory.
    root: Option<PathBuf>,
    trust: Option<Trust>,
    read_seen: HashSet<Hash>,
    committed_seen: HashSet<Hash>,
}

impl History {
    /// Reads and checks every entry.
    ///
    /// Fails only when the log folder or an entry cannot be read at all (I/O error);
    /// damage is reported in `findings`.
    pub fn load(vault: &Vault, trust: &Trust) -> Result<History, VaultError> {
        let mut h = History::start(Summary::new(vault.id()), Store::default(), 0);
        h.fold_log(vault, trust, None)?;
        h.finish();
        Ok(h)
    }

    /// A history continuing `summary`, whose records are in `store`; entries folded after
    /// `keep_after` are kept in `entries`.
    pub fn start(summary: Summary, store: Store, keep_after: u64) -> History {
        let read_seen = summary.packs_read.iter().map(|p| p.id).collect();
        let committed_seen = summary.packs_committed.iter().map(|p| p.id).collect();
        History {
            since: summary.size,
            summary,
            store,
            keep_after,
            read_seen,
            committed_seen,
            ..History::default()
        }
    }

    /// Reads, checks and folds the entries after the summary's, up to `upto` (or all),
    /// and lists the strays. Returns the highest entry number present.
    ///
    /// Fails when the log cannot be listed or an entry cannot be read (I/O error).
    pub fn fold_log(
        &mut self,
        vault: &Vault,
        trust: &Trust,
        upto: Option<u64>,
    ) -> Result<u64, VaultError> {
        let from = self.summary.size;
        let (seqs, strays) = if from == 0 {
            log::list(vault.root())?
        } else {
            // Entries after the catalog's: the loose ones, and bundles made since.
            let (mut loose, mut strays) = log::list_loose(vault.root())?;
            for seq in &loose {
                if log::bundle_path(vault.root(), (seq - 1) / log::BUNDLE).exists() {
                    strays.push(format!("{seq:020}.entry (entry {seq} is in a bundle)"));
                }
            }
            loose.retain(|s| !log::bundle_path(vault.root(), (s - 1) / log::BUNDLE).exists());
            // The bundles listed (not every number up to the newest name: a bundle named
            // far ahead is a gap, not a loop over billions of numbers).
            let (groups, _) = log::list_bundles(vault.root())?;
            let mut seqs: Vec<u64> = groups
                .into_iter()
                .filter(|g| (g + 1) * log::BUNDLE > from)
                .flat_map(|g| (g * log::BUNDLE + 1..=(g + 1) * log::BUNDLE).filter(|s| *s > from))
                .collect();
            loose.retain(|s| *s > from);
            seqs.extend(loose);
            seqs.sort_unstable();
            seqs.dedup();
            (seqs, strays)
        };
        if from == 0 {
            for s in strays.iter().filter(|s| log::looks_like_entry(s)) {
                self.summary.finding(Finding::new(
                    FindingKind::MalformedEntry,
                    format!(
                        "log/{s} is not a valid entry number (1 to {}): a log file put there by hand",
                        log::MAX_SEQ
                    ),
                ));
            }
        }
        self.strays = strays;
        self.root = Some(vault.root().to_owned());
        self.trust = Some(trust.clone());
        let newest = seqs.last().copied().unwrap_or(from);
        let seqs: Vec<u64> = seqs
            .into_iter()
            .filter(|s| *s > from && upto.is_none_or(|u| *s <= u))
            .collect();
        // Read in order, parse and check signatures on every core, and fold in order on
        // this thread while the next batch is parsed.
        let threads =
            crate::parallel::threads(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let root = vault.root();
        let seqs = &seqs;
        std::thread::scope(|scope| -> Result<(), VaultError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let spawn = std::thread::Builder::new();
            let producer = (threads > 1).then(|| {
                spawn.spawn_scoped(scope, move || {
                    let mut reader = log::Reader::new(root);
                    let mut it = seqs.iter().copied();
                    while let Some(batch) = read_batch(&mut reader, &mut it, threads)? {
                        if tx.send(batch).is_err() {
                            break;
                        }
                    }
                    Ok::<(), VaultError>(())
                })
            });
            let mut fold_batch = |(raw, parsed): Batch| -> Result<(), VaultError> {
                for ((seq, bytes, _, path), parsed) in raw.iter().zip(parsed) {
                    self.fold(vault.id(), trust, *seq, bytes, parsed, path)?;
                }
                Ok(())
            };
            match producer {
                Some(Ok(producer)) => {
                    for batch in rx {
                        fold_batch(batch)?;
                    }
                    producer.join().expect("the log reader does not panic")
                }
                // One thread, or none to spare: one batch at a time.
                _ => {
                    let mut reader = log::Reader::new(root);
                    let mut it = seqs.iter().copied();
                    while let Some(batch) = read_batch(&mut reader, &mut it, threads)? {
                        fold_batch(batch)?;
                    }
                    Ok(())
                }
            }
        })?;
        Ok(newest)
    }

    /// Checks and folds entry `seq`.
    ///
    /// Fails when a record cannot be written to the catalog folder.
    pub fn fold(
        &mut self,
        vault_id: &str,
        trust: &Trust,
        seq: u64,
        bytes: &[u8],
        parsed: Result<(Entry, bool), String>,
        path: &Path,
    ) -> Result<(), VaultError> {
        let expected = self.summary.prev.map_or(1, |(s, _)| s + 1);
        if seq != expected {
            let range = if seq - 1 == expected {
                format!("entry {expected} is")
            } else {
                format!("entries {expected} to {} are", seq - 1)
            };
            self.summary.finding(
                Finding::new(
                    FindingKind::MissingEntry,
                    format!("{range} missing from the log (deleted?)"),
                )
                .seq(expected),
            );
            self.summary.untrusted.push(expected);
        }
        let leaf = crate::tlog::leaf_hash(bytes);
        if seq == expected {
            self.summary.push_leaf(leaf);
        }
        self.leaves.push((seq, leaf));
        let (checked, found) = check_entry(vault_id, trust, self.summary.prev, (seq, parsed, path));
        self.summary.size = seq;
        self.summary.prev = Some((seq, Hash::of(bytes)));
        let doubtful = found.iter().any(|f| {
            matches!(
                f.kind,
                FindingKind::MalformedEntry
                    | FindingKind::MissingEntry
                    | FindingKind::BrokenChain
                    | FindingKind::Reordered
                    | FindingKind::WrongVault
            )
        });
        for f in found {
            self.summary.finding(f);
        }
        let Some(c) = checked else {
            self.summary.untrusted.push(seq);
            return Ok(());
        };
        if !c.trusted || doubtful {
            self.summary.untrusted.push(seq);
        }
        self.summary.head = Some((seq, c.entry.hash));
        self.summary.count += 1;
        if c.trusted
            && let Some(t) = c.entry.time()
        {
            self.times.push((seq, t));
        }
        self.summary.newest_time = Some(c.entry.header.time.clone());
        match &c.entry.event {
            Ok(Event::Snapshot { packs, .. }) => self.add_packs(packs, c.trusted),
            // A trusted prune's removed packs are no longer part of the vault, its new
            // ones are. An untrusted one changes nothing: the packs it names as removed
            // stay expected, so their absence is a finding.
            Ok(Event::Prune { removed, packs, .. }) if c.trusted => {
                let gone: HashSet<Hash> = removed.iter().copied().collect();
                self.summary.packs_read.retain(|p| !gone.contains(&p.id));
                self.summary
                    .packs_committed
                    .retain(|p| !gone.contains(&p.id));
                for id in &gone {
                    self.read_seen.remove(id);
                    self.committed_seen.remove(id);
                }
                self.add_packs(packs, true);
            }
            _ => {}
        }
        if c.trusted
            && let Ok(ev) = &c.entry.event
        {
            self.apply(&c, ev)?;
        }
        if seq > self.keep_after {
            self.entries.push(c);
        }
        Ok(())
    }

    fn add_packs(&mut self, packs: &[PackRef], trusted: bool) {
        for p in packs {
            if self.read_seen.insert(p.id) {
                self.summary.packs_read.push(p.clone());
            }
            if trusted && self.committed_seen.insert(p.id) {
                self.summary.packs_committed.push(p.clone());
            }
        }
    }

    /// Folds a trusted entry's event into the summary and the device's records.
    fn apply(&mut self, c: &Checked, ev: &Event) -> Result<(), VaultError> {
        if let Event::Forget { forgotten, .. } = ev {
            for f in forgotten {
                let record = Record::Forgotten(ForgottenRecord {
                    seq: c.entry.file_seq,
                    time: c.entry.header.time.clone(),
                    snapshots: f.snapshots.clone(),
                });
                self.add_record(f.device.clone(), record)?;
            }
            return Ok(());
        }
        if let Event::Copy {
            disk,
            label,
            target,
            size,
            total_bytes,
            ..
        } = ev
        {
            self.summary.copies.insert(
                disk.clone(),
                CopyRecord {
                    seq: c.entry.file_seq,
                    time: c.entry.header.time.clone(),
                    disk: disk.clone(),
                    label: label.clone(),
                    target: target.clone(),
                    size: *size,
                    total_bytes: *total_bytes,
                },
            );
            return Ok(());
        }
        if let Event::Recovery { accepted, reason } = ev {
            let signer = c.signer_name.clone().unwrap_or_default();
            let (seq, time) = (c.entry.file_seq, c.entry.header.time.clone());
            for a in accepted {
                self.summary.accepted.push(AcceptedRecord {
                    seq,
                    time: time.clone(),
                    approver: signer.clone(),
                    reason: reason.clone(),
                    accepted: a.clone(),
                });
            }
            self.summary
                .recoveries
                .push((seq, signer, time, accepted.clone(), reason.clone()));
            return Ok(());
        }
        let Some(record) = record_of(c, ev) else {
            return Ok(());
        };
        let device = ev.device().expect("a device event").to_string();
        self.add_record(device, record)
    }

    /// Adds a record to the device's summary and file.
    fn add_record(&mut self, device: String, record: Record) -> Result<(), VaultError> {
        let d = self.summary.devices.entry(device.clone()).or_default();
        match &record {
            Record::Snapshot(s) => {
                d.snapshots += 1;
                d.latest = Some(s.clone());
                if s.complete {
                    d.latest_complete = Some(s.clone());
                }
            }
            Record::Approval(a) => {
                d.approvals += 1;
                d.baseline = Some(a.clone());
            }
            Record::Drill(r) => {
                d.drills += 1;
                d.last_drill = Some(r.clone());
                if r.passed {
                    d.last_passed_drill = Some(r.clone());
                }
            }
            Record::Failure(f) => d.last_failure = Some(f.clone()),
            Record::Forgotten(f) => d.forgotten += f.snapshots.len() as u64,
        }
        let line = record_line(&record);
        d.records.count += 1;
        d.records.bytes += line.len() as u64;
        d.records.digest = chain_digest(&d.records.digest, &line);
        match &mut self.store {
            Store::Memory(m) => m.entry(device).or_default().push(record),
            Store::Only(d, v) => {
                if *d == device {
                    v.push(record)
                }
            }
            Store::Dir(_, pending) => {
                self.pending += line.len();
                pending.entry(device).or_default().extend_from_slice(&line);
                if self.pending > MAX_PENDING && !self.frozen {
                    self.flush()?;
                }
            }
        }
        Ok(())
    }

    /// Writes the records held in memory to the catalog folder.
    ///
    /// Fails when a file cannot be written.
    pub fn flush(&mut self) -> Result<(), VaultError> {
        use std::os::unix::fs::FileExt;
        if let Store::Dir(dir, pending) = &mut self.store {
            for (device, lines) in std::mem::take(pending) {
                let path = record_path(dir, &device);
                let total = self
                    .summary
                    .devices
                    .get(&device)
                    .map_or(0, |d| d.records.bytes);
                // What the summary covers stays; anything after it (lines of a run that
                // never saved its summary) is overwritten.
                let before = total - lines.len() as u64;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(crate::error::io_err("write", &path))?;
                let len = f
                    .metadata()
                    .map_err(crate::error::io_err("read", &path))?
                    .len();
                if len < before {
                    return Err(crate::error::corrupt(
                        &path,
                        "the catalog's records are shorter than its summary says",
                    ));
                }
                f.set_len(before)
                    .and_then(|()| f.write_all_at(&lines, before))
                    .map_err(crate::error::io_err("write", &path))?;
            }
        }
        self.pending = 0;
        Ok(())
    }

    /// From now on records stay in memory: what is folded after a saved summary is never
    /// written.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Ends folding: the findings as the summary has them.
    pub fn finish(&mut self) {
        self.findings = self.summary.all_findings();
        self.summary.untrusted.sort_unstable();
        self.summary.untrusted.dedup();
    }

    /// Reads and checks entries `from + 1` to `to` again, without folding them (they are
    /// in the summary already), and puts them before what this reading holds: for a
    /// verifier that last verified entry `from`.
    ///
    /// Fails when an entry cannot be read (I/O error).
    pub fn recheck(
        &mut self,
        vault: &Vault,
        trust: &Trust,
        from: u64,
        to: u64,
    ) -> Result<(), VaultError> {
        if from >= to {
            return Ok(());
        }
        let mut reader = log::Reader::new(vault.root());
        let mut prev = match from {
            0 => None,
            f => {
                let (b, _, _) = reader.read(f)?;
                Some((f, Hash::of(&b)))
            }
        };
        let (mut entries, mut leaves, mut times) = (Vec::new(), Vec::new(), Vec::new());
        for seq in from + 1..=to {
            let (bytes, parsed, path) = reader.read(seq)?;
            leaves.push((seq, crate::tlog::leaf_hash(&bytes)));
            let parsed = parsed.map(|e| {
                let ok = e.signature_ok();
                (e, ok)
            });
            let (checked, _) = check_entry(vault.id(), trust, prev, (seq, parsed, &path));
            prev = Some((seq, Hash::of(&bytes)));
            if let Some(c) = checked {
                if c.trusted
                    && let Some(t) = c.entry.time()
                {
                    times.push((seq, t));
                }
                entries.push(c);
            }
        }
        entries.append(&mut self.entries);
        leaves.append(&mut self.leaves);
        times.append(&mut self.times);
        (self.entries, self.leaves, self.times) = (entries, leaves, times);
        self.since = from;
        Ok(())
    }

    /// The trusted snapshots among the entries this reading holds that no entry of it
    /// forgot, oldest first.
    pub fn snapshots_read(&self) -> Vec<SnapshotRecord> {
        let forgotten: HashSet<(&str, u64)> = self
            .entries
            .iter()
            .filter(|c| c.trusted)
            .filter_map(|c| match &c.entry.event {
                Ok(Event::Forget { forgotten, .. }) => Some(forgotten),
                _ => None,
            })
            .flatten()
            .flat_map(|f| f.snapshots.iter().map(|s| (f.device.as_str(), *s)))
            .collect();
        self.entries
            .iter()
            .filter(|c| c.trusted)
            .filter_map(
                |c| match c.entry.event.as_ref().ok().and_then(|ev| record_of(c, ev)) {
                    Some(Record::Snapshot(s))
                        if !forgotten.contains(&(s.device.as_str(), s.seq)) =>
                    {
                        Some(s)
                    }
                    _ => None,
                },
            )
            .collect()
    }

    /// The time of entry `seq`, if it is well formed.
    pub fn time_of(&self, seq: u64) -> Option<SystemTime> {
        if let Some(c) = self.entries.iter().find(|c| c.entry.file_seq == seq) {
            return c.entry.time();
        }
        match log::read(self.root.as_deref()?, seq) {
            Ok((_, Ok(e))) => e.time(),
            _ => None,
        }
    }

    /// A device's records, oldest first.
    ///
    /// Fails when the catalog's file of them is damaged or cannot be read.
    pub fn records(&self, device: &str) -> Result<Vec<Record>, VaultError> {
        match &self.store {
            Store::Memory(m) => Ok(m.get(device).cloned().unwrap_or_default()),
            Store::Only(d, v) => Ok(if d == device { v.clone() } else { Vec::new() }),
            Store::Dir(dir, pending) => {
                let Some(d) = self.summary.devices.get(device) else {
                    return Ok(Vec::new());
                };
                let path = record_path(dir, device);
                let written = d.records.bytes - pending.get(device).map_or(0, |p| p.len() as u64);
                // Never more than the summary says was written, and only from a regular
                // file (a FIFO or a link to /dev/zero in its place is damage, not a hang).
                let mut bytes = match read_prefix(&path, written) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        return self.rebuilt_records(dir, device);
                    }
                    Err(e) => return Err(crate::error::io_err("read", &path)(e)),
                };
                if (bytes.len() as u64) < written {
                    return self.rebuilt_records(dir, device);
                }
                bytes.truncate(written as usize);
                if let Some(p) = pending.get(device) {
                    bytes.extend_from_slice(p);
                }
                match parse_records(&bytes, &d.records) {
                    Ok(r) => Ok(r),
                    Err(_) => self.rebuilt_records(dir, device),
                }
            }
        }
    }

    /// A device's records read from every entry, for a catalog whose file of them is
    /// damaged: the catalog is discarded, and the next opening rebuilds it.
    fn rebuilt_records(&self, dir: &Path, device: &str) -> Result<Vec<Record>, VaultError> {
        let _ = std::fs::remove_file(dir.join("summary"));
        let (Some(root), Some(trust)) = (&self.root, &self.trust) else {
            return Err(crate::error::corrupt(
                &record_path(dir, device),
                "the catalog's records do not match its summary (edited?)",
            ));
        };
        // Every entry read again, keeping only this device's records.
        let vault = Vault::open(root)?;
        let mut full = History::start(
            Summary::new(vault.id()),
            Store::Only(device.to_string(), Vec::new()),
            u64::MAX,
        );
        full.fold_log(&vault, trust, None)?;
        full.records(device)
    }

    fn all_records(&self) -> Vec<Record> {
        let mut all: Vec<Record> = self
            .summary
            .devices
            .keys()
            .flat_map(|d| self.records(d).unwrap_or_default())
            .collect();
        all.sort_by_key(record_seq);
        all
    }

    /// The hash of the entry in file `seq`, if it was readable and well formed.
    pub fn hash_of(&self, seq: u64) -> Option<Hash> {
        if let Some(c) = self.entries.iter().find(|c| c.entry.file_seq == seq) {
            return Some(c.entry.hash);
        }
        if self.summary.head.is_some_and(|(s, _)| s == seq) {
            return self.summary.head.map(|h| h.1);
        }
        let root = self.root.as_deref()?;
        match log::read(root, seq) {
            Ok((_, Ok(e))) => Some(e.hash),
            _ => None,
        }
    }

    /// The newest entry file's number and hash.
    pub fn head(&self) -> Option<(u64, Hash)> {
        self.summary.head
    }

    pub fn newest_time(&self) -> Option<SystemTime> {
        self.summary
            .newest_time
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
    }

    /// Trusted snapshot entries that retention did not forget, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotRecord> {
        let mut all: Vec<SnapshotRecord> = self
            .summary
            .devices
            .keys()
            .flat_map(|d| self.snapshots_of(d))
            .collect();
        all.sort_by_key(|s| s.seq);
        all
    }

    /// A device's trusted snapshot entries that retention did not forget, oldest first.
    pub fn snapshots_of(&self, device: &str) -> Vec<SnapshotRecord> {
        kept_snapshots(self.records(device).unwrap_or_default())
    }

    /// A device's forgotten snapshots: entry number of the snapshot, and of the `forget`
    /// entry that forgot it.
    pub fn forgotten_of(&self, device: &str) -> HashMap<u64, u64> {
        forgotten_in(&self.records(device).unwrap_or_default())
    }

    /// What the log says about a device, if it names it.
    pub fn device(&self, device: &str) -> Option<&DeviceSummary> {
        self.summary.devices.get(device)
    }

    /// One device's records, or every device's in log order. A catalog file that cannot
    /// be read at all gives none (`records` says why).
    fn records_of(&self, device: Option<&str>) -> Vec<Record> {
        match device {
            Some(d) => self.records(d).unwrap_or_default(),
            None => self.all_records(),
        }
    }

    /// Trusted approvals, oldest first, optionally of one device.
    pub fn approvals(&self, device: Option<&str>) -> Vec<ApprovalRecord> {
        self.records_of(device)
            .into_iter()
            .filter_map(|r| match r {
                Record::Approval(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Trusted drill records, oldest first, optionally of one device.
    pub fn drills(&self, device: Option<&str>) -> Vec<DrillRecord> {
        self.records_of(device)
            .into_iter()
            .filter_map(|r| match r {
                Record::Drill(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Findings accepted by trusted `recovery` entries, oldest first.
    pub fn accepted(&self) -> Vec<AcceptedRecord> {
        self.summary.accepted.clone()
    }

    /// Why a device's newest trusted approval, at entry `after`, may not be its newest
    /// approval: every later entry that cannot be trusted (altered, of an unknown signer,
    /// malformed, missing, or where the hash chain breaks). Nothing an untrusted entry says (its type, its device) is
    /// believed, so any of them may have been an approval. Empty when nothing casts doubt;
    /// a new approval after the damage clears it.
    pub fn doubts_after(&self, after: u64) -> Vec<String> {
        let mut seqs: Vec<u64> = self
            .summary
            .untrusted
            .iter()
            .copied()
            .filter(|s| *s > after)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.iter()
            .map(|s| format!("log entry {s} cannot be trusted"))
            .collect()
    }

    /// The device's baseline: its newest trusted approval.
    pub fn baseline(&self, device: &str) -> Option<ApprovalRecord> {
        self.summary
            .devices
            .get(device)
            .and_then(|d| d.baseline.clone())
    }

    /// Packs to read chunks from: those named by any well-formed snapshot entry, trusted
    /// or not. Reading is safe from any pack (every chunk read is checked against its
    /// SHA-256, which a trusted manifest names), and one damaged old entry must not make
    /// later snapshots that reuse its chunks unrestorable. Writers deduplicate only
    /// against `committed_packs`, so no new snapshot comes to depend on a pack that only
    /// an untrusted entry names.
    pub fn packs_for_reading(&self) -> Vec<PackRef> {
        self.summary.packs_read.clone()
    }

    /// Packs named by trusted snapshot entries: what writers deduplicate against.
    pub fn committed_packs(&self) -> Vec<PackRef> {
        self.summary.packs_committed.clone()
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
        let not_found = |id: &str| VaultError::SnapshotNotFound {
            id: id.to_string(),
            device: device
                .map(|d| format!(" of device `{d}`"))
                .unwrap_or_default(),
        };
        if let (Some(d), None | Some("latest")) = (device, id) {
            return self
                .device(d)
                .and_then(|s| s.latest.clone())
                .ok_or_else(|| not_found("latest"));
        }
        let all = match device {
            Some(d) => self.snapshots_of(d),
            None => self.snapshots(),
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
                    0 => Err(self
                        .forgotten_error(device, &prefix)
                        .unwrap_or_else(|| not_found(&prefix))),
                    1 => Ok(hits[0].clone()),
                    _ => Err(VaultError::AmbiguousSnapshot(prefix)),
                }
            }
        }
    }
}

impl History {
    /// Why snapshot `prefix` is not found, when retention forgot it.
    fn forgotten_error(&self, device: Option<&str>, prefix: &str) -> Option<VaultError> {
        let devices: Vec<&String> = match device {
            Some(d) => self.summary.devices.keys().filter(|k| *k == d).collect(),
            None => self.summary.devices.keys().collect(),
        };
        devices.into_iter().find_map(|d| {
            let records = self.records(d).unwrap_or_default();
            let forgotten = forgotten_in(&records);
            self.forgotten_hit(&records, &forgotten, prefix)
        })
    }

    fn forgotten_hit(
        &self,
        records: &[Record],
        forgotten: &HashMap<u64, u64>,
        prefix: &str,
    ) -> Option<VaultError> {
        records.iter().find_map(|r| match r {
            Record::Snapshot(s) if s.entry.to_hex().starts_with(prefix) => {
                let by = forgotten.get(&s.seq)?;
                Some(VaultError::Refused(format!(
                    "snapshot {} of `{}` (log entry {}) was forgotten by retention in log entry {by}; its data may be pruned: pick a kept one with `plcvault snapshots {}`",
                    s.id, s.device, s.seq, s.device
                )))
            }
            _ => None,
        })
    }
}

/// Snapshot entry number → the `forget` entry that forgot it, from a device's records.
fn forgotten_in(records: &[Record]) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    for r in records {
        if let Record::Forgotten(f) = r {
            for s in &f.snapshots {
                out.entry(*s).or_insert(f.seq);
            }
        }
    }
    out
}

/// The snapshot records among `records` that no forgotten record names.
fn kept_snapshots(records: Vec<Record>) -> Vec<SnapshotRecord> {
    let forgotten = forgotten_in(&records);
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Snapshot(s) if !forgotten.contains_key(&s.seq) => Some(s),
            _ => None,
        })
        .collect()
}

/// The record a trusted entry's event makes for its device, if it is about one.
pub fn record_of(c: &Checked, ev: &Event) -> Option<Record> {
    let signer = c.signer_name.clone().unwrap_or_default();
    let seq = c.entry.file_seq;
    let time = c.entry.header.time.clone();
    Some(match ev {
        Event::Snapshot {
            device,
            started,
            finished,
            manifest,
            complete,
            artifacts,
            bytes,
            ..
        } => Record::Snapshot(SnapshotRecord {
            id: c.entry.hash.short(),
            entry: c.entry.hash,
            seq,
            time,
            started: started.clone(),
            finished: finished.clone(),
            device: device.clone(),
            manifest: *manifest,
            complete: *complete,
            artifacts: *artifacts,
            bytes: *bytes,
            signer,
        }),
        Event::Approval {
            device,
            snapshot,
            manifest,
            ticket,
            reason,
            rules,
            accepted_suspect,
            review,
            ..
        } => Record::Approval(ApprovalRecord {
            seq,
            id: c.entry.hash.short(),
            entry: c.entry.hash,
            time,
            device: device.clone(),
            snapshot: snapshot.short(),
            snapshot_entry: *snapshot,
            manifest: *manifest,
            approver: signer,
            key: c.entry.header.signer.fingerprint(),
            ticket: ticket.clone(),
            reason: reason.clone(),
            rules: rules.clone(),
            accepted_suspect: *accepted_suspect,
            review: *review,
        }),
        Event::Drill {
            device,
            snapshot,
            target,
            passed,
            artifacts,
            bytes,
            restore_ms,
            verify_ms,
            failures,
            ..
        } => Record::Drill(DrillRecord {
            seq,
            id: c.entry.hash.short(),
            entry: c.entry.hash,
            time,
            device: device.clone(),
            snapshot: snapshot.short(),
            target: target.clone(),
            passed: *passed,
            artifacts: *artifacts,
            bytes: *bytes,
            restore_ms: *restore_ms,
            verify_ms: *verify_ms,
            failures: failures.clone(),
        }),
        Event::CollectFailed {
            device: _,
            error,
            kind,
        } => Record::Failure(FailureRecord {
            seq,
            time,
            error: error.lines().next().unwrap_or_default().to_string(),
            kind: kind.clone(),
        }),
        Event::Recovery { .. }
        | Event::Heartbeat { .. }
        | Event::Copy { .. }
        | Event::Forget { .. }
        | Event::Prune { .. } => return None,
    })
}

fn record_seq(r: &Record) -> u64 {
    match r {
        Record::Snapshot(s) => s.seq,
        Record::Approval(a) => a.seq,
        Record::Drill(d) => d.seq,
        Record::Failure(f) => f.seq,
        Record::Forgotten(f) => f.seq,
    }
}

/// One record as its file holds it: JSON and a newline.
fn record_line(r: &Record) -> Vec<u8> {
    let mut line = serde_json::to_vec(r).expect("records always serialize");
    line.push(b'\n');
    line
}

/// The running digest after one more line.
fn chain_digest(prev: &Hash, line: &[u8]) -> Hash {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(prev.0);
    h.update(line);
    Hash::from_hasher(h)
}

/// Parses a device's record lines, which must be what `file` says.
pub fn parse_records(bytes: &[u8], file: &RecordFile) -> Result<Vec<Record>, String> {
    let mut out = Vec::with_capacity(file.count as usize);
    let mut digest = Hash::default();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        digest = chain_digest(&digest, line);
        out.push(
            serde_json::from_slice(line).map_err(|e| format!("a record does not parse ({e})"))?,
        );
    }
    if out.len() as u64 != file.count || digest != file.digest {
        return Err("the catalog's records do not match its summary (edited?)".into());
    }
    Ok(out)
}
