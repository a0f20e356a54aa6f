//! Verification: the log against the pinned keys and the remembered head, every manifest
//! against its hash, every pack against the log, and with `read_data` every chunk against
//! its SHA-256.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::VaultError;
use crate::finding::{Finding, FindingKind};
use crate::hash::Hash;
use crate::history::{History, SnapshotRecord};
use crate::index::Index;
use crate::log::PackRef;
use crate::manifest::{self, ArtifactEntry, Manifest, check_name};
use crate::pack::{self, ChunkReader};
use crate::repository::{Trust, Vault};
use crate::state;

#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Read every pack: hash it whole and re-hash every chunk (implies `full`).
    pub read_data: bool,
    /// Check every entry, manifest and pack, not only what came after the checkpoint
    /// this verifier verified last.
    pub full: bool,
    /// Report the log as stale when its newest entry is older than this.
    pub stale_after: Option<Duration>,
    /// Where the verifier remembers the last head it saw (outside the vault).
    pub state_dir: Option<PathBuf>,
    /// Remember the head after a check that found the log intact.
    pub update_state: bool,
    pub now: SystemTime,
    /// How far an entry's time may run ahead of `now`, or behind the entry before it,
    /// before it is a finding (clocks of two hosts, NTP corrections).
    pub clock_skew: Duration,
    pub threads: usize,
    /// How many witnesses (keys of role `witness`) must have cosigned a checkpoint
    /// covering every entry older than `witness_grace`; 0: none asked for.
    pub witnesses: usize,
    pub witness_grace: Duration,
}

/// The default clock skew allowed between entries and the verifier.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(300);

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            read_data: false,
            full: false,
            stale_after: None,
            state_dir: None,
            update_state: true,
            now: SystemTime::now(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            witnesses: 0,
            witness_grace: Duration::from_secs(48 * 3600),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub findings: Vec<Finding>,
    pub entries: u64,
    pub snapshots: u64,
    pub packs: u64,
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub head_seq: Option<u64>,
    pub head_hash: Option<Hash>,
    /// Things worth knowing that are not damage (leftovers of interrupted runs).
    pub notes: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Kinds that mean the log itself cannot be trusted as it stands.
fn log_level(kind: FindingKind) -> bool {
    !matches!(
        kind,
        FindingKind::Stale
            | FindingKind::FutureTime
            | FindingKind::TimeBackwards
            | FindingKind::MissingManifest
            | FindingKind::CorruptManifest
            | FindingKind::MissingPack
            | FindingKind::TruncatedPack
            | FindingKind::CorruptPack
            | FindingKind::MissingChunk
            | FindingKind::CorruptChunk
            | FindingKind::BadManifest
            | FindingKind::BadTile
            | FindingKind::Unwitnessed
    )
}

/// The signed checkpoint and the tiles against the tree of the entries: the checkpoint
/// must be signed by a trusted key, name this vault, cover no more entries than the log
/// has, and give the root of its first `size` entries; every tile it covers must hold
/// the entries' hashes.
///
/// With the checkpoint this verifier verified last (`remembered`), the current one must
/// extend it: a smaller tree, or one that a consistency proof from the stored tiles does
/// not join to it (history rewritten, or another view of the log shown), is critical.
/// Returns the checkpoint note when it passed, for the verifier to remember.
fn check_tree(
    vault: &Vault,
    trust: &Trust,
    (checkpoint, remembered): (std::io::Result<Option<String>>, Option<String>),
    (history, tree): (&History, &Tree),
    report: &mut VerifyReport,
) -> Option<String> {
    use crate::tiles;
    let note = match checkpoint {
        Ok(Some(n)) => n,
        Ok(None) => {
            if remembered.is_some() {
                report.findings.push(Finding::new(
                    FindingKind::BadCheckpoint,
                    "the vault has no signed checkpoint, but this verifier verified one before: tlog/ was deleted",
                ));
            } else {
                report.notes.push(
                    "no signed checkpoint yet (a vault from before log v2): the next write adds one"
                        .into(),
                );
            }
            return None;
        }
        Err(e) => {
            report.findings.push(Finding::new(
                FindingKind::BadCheckpoint,
                format!("tlog/checkpoint cannot be read: {e}"),
            ));
            return None;
        }
    };
    // Writers sign checkpoints; a witness's signature alone is none.
    let keys = trust.writers();
    let bad = |msg: String| Finding::new(FindingKind::BadCheckpoint, msg).path("tlog/checkpoint");
    let signed = match tiles::open(&note, vault.id(), &keys) {
        Ok(s) => s,
        Err(why) => {
            report
                .findings
                .push(bad(format!("the checkpoint is malformed: {why}")));
            return None;
        }
    };
    let c = &signed.checkpoint;
    if signed.signers.is_empty() {
        report.findings.push(bad(format!(
            "the checkpoint (size {}) is not signed by a trusted key (signature lines: {})",
            c.size,
            if signed.others.is_empty() {
                "none that verify".to_string()
            } else {
                signed.others.join(", ")
            }
        )));
        return None;
    }
    if c.origin != tiles::origin(vault.id()) {
        report.findings.push(bad(format!(
            "the checkpoint is for {:?}, not this vault ({})",
            c.origin,
            tiles::origin(vault.id())
        )));
        return None;
    }
    if c.size > tree.size() {
        report.findings.push(bad(format!(
            "the signed checkpoint covers {} entries, the log holds {} in a row: entries were cut or deleted after it was signed",
            c.size,
            tree.size()
        )));
        return None;
    }
    if !tree.root_is(c.size, &c.root) {
        report.findings.push(bad(format!(
            "the signed checkpoint's root for {} entries is not the tree of the log's first {} entries: the log was rewritten after it was signed, or the checkpoint was forged",
            c.size, c.size
        )));
        return None;
    }
    if c.size < history.summary.size {
        report.notes.push(format!(
            "{} entries after the signed checkpoint (size {}): the next write signs them",
            history.summary.size - c.size,
            c.size
        ));
    }
    let t = tiles::Tiles::of(vault.root());
    let Tree::Memory(tree) = tree else {
        // The tiles of the entries read: the rest were checked when they were new, and
        // the tiles give the root the entries gave.
        check_new_tiles(&t, c.size, history, report);
        return check_extends(vault, trust, remembered, c, &t, report).then_some(note);
    };
    // Every tile the checkpoint covers.
    let mut level = 0u32;
    loop {
        let nodes = c.size >> (tiles::HEIGHT * level);
        if nodes == 0 {
            break;
        }
        let want = tree.level(tiles::HEIGHT * level);
        for index in 0..nodes.div_ceil(tiles::WIDTH) {
            let width = (nodes - index * tiles::WIDTH).min(tiles::WIDTH);
            let lo = (index * tiles::WIDTH) as usize;
            let expected = &want[lo..lo + width as usize];
            let got = t.read(level, index, width);
            let ok = got
                .as_ref()
                .is_ok_and(|g| g.len() as u64 >= width && &g[..width as usize] == expected);
            if !ok {
                report.findings.push(
                    Finding::new(
                        FindingKind::BadTile,
                        format!(
                            "tile {level}/{} differs from the tree of the entries ({}): derived data, rebuilt by the next write",
                            tiles::index_path(index),
                            match got {
                                Err(e) => e,
                                Ok(_) => "other hashes".into(),
                            }
                        ),
                    )
                    .path(t.path(level, index, width).display()),
                );
            }
        }
        level += 1;
    }
    check_extends(vault, trust, remembered, c, &t, report).then_some(note)
}

/// The checkpoint verified last must be a prefix of `c`: else a finding, and false.
fn check_extends(
    vault: &Vault,
    trust: &Trust,
    remembered: Option<String>,
    c: &crate::tiles::Checkpoint,
    t: &crate::tiles::Tiles,
    report: &mut VerifyReport,
) -> bool {
    use crate::tiles;
    let bad = |msg: String| Finding::new(FindingKind::BadCheckpoint, msg).path("tlog/checkpoint");
    let keys: Vec<crate::key::PublicKey> = trust.keys.iter().map(|k| k.key).collect();
    if let Some(old) = remembered.and_then(|n| tiles::open(&n, vault.id(), &keys).ok()) {
        let o = &old.checkpoint;
        let joined = o.size <= c.size
            && crate::tlog::consistency_proof(t, o.size.max(1), c.size).is_ok_and(|p| {
                o.size == 0 || crate::tlog::check_consistency(o.size, &o.root, c.size, &c.root, &p)
            });
        if !joined {
            report.findings.push(bad(if o.size > c.size {
                format!(
                    "the signed checkpoint covers {} entries, but this verifier verified one of {} before: the log was rolled back or cut",
                    c.size, o.size
                )
            } else {
                format!(
                    "the signed checkpoint of {} entries does not extend the one of {} entries this verifier verified before (no consistency proof joins them): history was rewritten, or this is another view of the log",
                    c.size, o.size
                )
            }));
            return false;
        }
    }
    true
}

/// The tree of the log's entries, as far as this reading checked it: every leaf in
/// memory, or the stored tiles, whose root at the catalog's size the entries reproduced.
enum Tree {
    Memory(crate::tlog::MemoryTree),
    Tiles(crate::tiles::Tiles, u64, Hash),
}

impl Tree {
    /// Takes the leaves the reading holds (a tree in memory keeps them).
    fn of(vault: &Vault, history: &mut History) -> Tree {
        match history.matched {
            Some((size, root)) if history.since > 0 => {
                Tree::Tiles(crate::tiles::Tiles::of(vault.root()), size, root)
            }
            _ => {
                // The tree of the entries from 1 on, up to the first gap.
                let mut tree = crate::tlog::MemoryTree::new();
                for (i, (seq, leaf)) in std::mem::take(&mut history.leaves).into_iter().enumerate()
                {
                    if seq != i as u64 + 1 {
                        break;
                    }
                    tree.push(leaf);
                }
                Tree::Memory(tree)
            }
        }
    }

    fn size(&self) -> u64 {
        match self {
            Tree::Memory(t) => t.size(),
            Tree::Tiles(_, size, _) => *size,
        }
    }

    /// Whether the tree's first `m` leaves have root `root`.
    fn root_is(&self, m: u64, root: &Hash) -> bool {
        match self {
            Tree::Memory(t) => {
                m <= t.size() && crate::tlog::tree_hash(t, m).is_ok_and(|r| r == *root)
            }
            Tree::Tiles(_, n, r) if m == *n => r == root,
            Tree::Tiles(_, _, _) if m == 0 => *root == crate::tlog::empty_root(),
            Tree::Tiles(t, n, r) => {
                m < *n
                    && crate::tlog::consistency_proof(t, m, *n)
                        .is_ok_and(|p| crate::tlog::check_consistency(m, root, *n, r, &p))
            }
        }
    }
}

/// The level-0 tiles holding the leaves this reading read hold exactly their hashes.
fn check_new_tiles(
    t: &crate::tiles::Tiles,
    size: u64,
    history: &History,
    report: &mut VerifyReport,
) {
    use crate::tiles::{WIDTH, index_path};
    let mut by_tile: BTreeMap<u64, Vec<(u64, Hash)>> = BTreeMap::new();
    for &(seq, leaf) in history.leaves.iter().filter(|(s, _)| *s <= size) {
        by_tile
            .entry((seq - 1) / WIDTH)
            .or_default()
            .push((seq, leaf));
    }
    for (index, leaves) in by_tile {
        let width = (size - index * WIDTH).min(WIDTH);
        let got = t.read(0, index, width);
        let ok = got.as_ref().is_ok_and(|g| {
            leaves
                .iter()
                .all(|(seq, leaf)| g.get(((seq - 1) % WIDTH) as usize) == Some(leaf))
        });
        if !ok {
            report.findings.push(
                Finding::new(
                    FindingKind::BadTile,
                    format!(
                        "tile 0/{} differs from the tree of the entries ({}): derived data, rebuilt by the next write",
                        index_path(index),
                        match got {
                            Err(e) => e,
                            Ok(_) => "other hashes".into(),
                        }
                    ),
                )
                .path(t.path(0, index, width).display()),
            );
        }
    }
}

/// The witnessed checkpoints (`tlog/witnessed/`): each must be the tree of the log's
/// entries — a witnessed checkpoint the log no longer matches means the log was forked
/// or rewritten after witnesses saw it (critical) — and, when witnesses are asked for,
/// every entry older than the grace period must be covered by one that enough of them
/// cosigned.
fn check_witnessed(
    vault: &Vault,
    trust: &Trust,
    opts: &VerifyOptions,
    (history, tree): (&History, &Tree),
    report: &mut VerifyReport,
) {
    use crate::tiles;
    let dir = tiles::witnessed_dir(vault.root());
    let Ok(rd) = std::fs::read_dir(&dir) else {
        if opts.witnesses > 0 && history.summary.size > 0 {
            check_unwitnessed(opts, history, 0, report);
        }
        return;
    };
    let writers = trust.writers();
    let witnesses = trust.witnesses();
    let all: Vec<_> = trust.keys.iter().map(|k| k.key).collect();
    let mut covered = 0u64;
    let mut names: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    names.sort();
    for path in names
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "checkpoint"))
    {
        let Ok(bytes) = crate::fsread::read_regular(path, tiles::MAX_CHECKPOINT) else {
            continue;
        };
        let note = String::from_utf8_lossy(&bytes);
        let Ok(signed) = tiles::open(&note, vault.id(), &all) else {
            report.findings.push(
                Finding::new(
                    FindingKind::BadCheckpoint,
                    "a witnessed checkpoint is malformed",
                )
                .path(path.display()),
            );
            continue;
        };
        let c = &signed.checkpoint;
        let by_writer = signed.signers.iter().any(|k| writers.contains(k));
        let cosigners = signed
            .signers
            .iter()
            .filter(|k| witnesses.contains(k))
            .count();
        if !by_writer || cosigners == 0 {
            continue;
        }
        let matches = tree.root_is(c.size, &c.root);
        if !matches {
            report.findings.push(
                Finding::new(
                    FindingKind::BadCheckpoint,
                    format!(
                        "a checkpoint of {} entries that {cosigners} witness(es) cosigned is not the tree of this log: the log was forked or rewritten after witnesses saw it",
                        c.size
                    ),
                )
                .path(path.display()),
            );
            continue;
        }
        if cosigners >= opts.witnesses {
            covered = covered.max(c.size);
        }
    }
    if opts.witnesses > 0 {
        check_unwitnessed(opts, history, covered, report);
    }
}

/// The first entry after the newest checkpoint enough witnesses cosigned: older than the
/// grace period, it is a finding.
fn check_unwitnessed(
    opts: &VerifyOptions,
    history: &History,
    covered: u64,
    report: &mut VerifyReport,
) {
    let first = (covered + 1..=history.summary.size)
        .take(16)
        .find_map(|seq| history.time_of(seq).map(|t| (seq, t)));
    if let Some((seq, t)) = first
        && opts.now.duration_since(t).unwrap_or_default() > opts.witness_grace
    {
        report.findings.push(
            Finding::new(
                FindingKind::Unwitnessed,
                format!(
                    "entries from {seq} on are not covered by a checkpoint {} witness(es) cosigned, and entry {seq} is older than the grace period of {}: run `plcvault witness cosign` on the witness hosts",
                    opts.witnesses,
                    humantime::format_duration(opts.witness_grace)
                ),
            )
            .seq(seq),
        );
    }
}

/// Where a chunk is used, for naming what damage affects.
struct Usage {
    device: String,
    snapshot: String,
    artifact: String,
}

/// Checks the whole vault.
///
/// Fails only when the check cannot run (the log folder or the state cannot be read);
/// everything found wrong is in `VerifyReport::findings`.
pub fn verify(
    vault: &Vault,
    trust: &Trust,
    opts: &VerifyOptions,
) -> Result<VerifyReport, VaultError> {
    // The memory is read before the log is listed: a writer appending meanwhile can then
    // only make the log look newer than the memory, never older.
    let memory = match &opts.state_dir {
        Some(dir) => Some(state::Memory::load(dir, vault.id())?),
        None => None,
    };
    // So is the signed checkpoint: read first, it can only cover fewer entries than the
    // log listed after it.
    let checkpoint = crate::tiles::read_checkpoint(vault.root());
    // What this verifier verified last: only what came after it is read again, unless
    // everything is asked for.
    let verified_size = match &opts.state_dir {
        Some(dir) if !opts.full && !opts.read_data => state::verified_checkpoint(dir, vault.id())
            .ok()
            .flatten()
            .and_then(|n| {
                let keys: Vec<_> = trust.keys.iter().map(|k| k.key).collect();
                crate::tiles::open(&n, vault.id(), &keys).ok()
            })
            .filter(|c| !c.signers.is_empty())
            .map(|c| c.checkpoint.size),
        _ => None,
    };
    let want = match verified_size {
        Some(m) => crate::catalog::Want::Since(m),
        None => crate::catalog::Want::Rebuild,
    };
    let mut history = crate::catalog::open_as(vault, trust, opts.state_dir.as_deref(), want)?;
    let accepted = history.accepted();
    let mut report = VerifyReport {
        findings: history.findings.clone(),
        entries: history.summary.count,
        head_seq: history.head().map(|h| h.0),
        head_hash: history.head().map(|h| h.1),
        ..VerifyReport::default()
    };
    if !history.strays.is_empty() {
        report.notes.push(format!(
            "log/ holds files that are not entries (ignored): {}",
            history.strays.join(", ")
        ));
    }

    check_memory(memory.as_ref(), &history, &accepted, &mut report);
    // The checkpoint verified last, unless the remembered head already tells a rollback,
    // divergence or replaced vault (reported, or accepted by a recovery, once).
    let head_problem = memory
        .as_ref()
        .and_then(|m| m.problem_in(&history))
        .is_some();
    let remembered_checkpoint = match &opts.state_dir {
        Some(dir) if !head_problem => state::verified_checkpoint(dir, vault.id())?,
        _ => None,
    };
    let tree = Tree::of(vault, &mut history);
    let verified_note = check_tree(
        vault,
        trust,
        (checkpoint, remembered_checkpoint),
        (&history, &tree),
        &mut report,
    );
    check_witnessed(vault, trust, opts, (&history, &tree), &mut report);
    drop(tree);
    // What the clocks were at the checkpoint remembered next, where the next run resumes.
    let remember_at = verified_note
        .as_deref()
        .and_then(|n| crate::tiles::open(n, vault.id(), &[]).ok())
        .map_or(history.summary.size, |c| c.checkpoint.size);
    let (newest_sane, clocks) =
        check_clocks(vault, &history, &accepted, (opts, remember_at), &mut report);
    note_recoveries(&history, &mut report);
    check_stale(opts, newest_sane, &history, &mut report);

    // Packs named by the log (by any well-formed snapshot entry: chunks of a trusted
    // snapshot may live in a pack an older, damaged entry added).
    let packs: Vec<PackRef> = {
        let mut seen = HashSet::new();
        history
            .packs_for_reading()
            .into_iter()
            .filter(|p| seen.insert(p.id))
            .collect()
    };
    report.packs = packs.len() as u64;
    let index = load_index(vault, &history, &mut report);

    // Manifests of trusted snapshots: of every snapshot, device by device, or of those
    // after what this verifier verified last.
    let mut usage = HashMap::new();
    let mut to_hash = Vec::new();
    let mut named = HashSet::new();
    // One device at a time, so that years of snapshots are never all in memory.
    let groups: Vec<Option<&String>> = if history.since == 0 {
        history.summary.devices.keys().map(Some).collect()
    } else {
        report.notes.push(format!(
            "checked the {} entries after entry {} (verified before) and the manifests they name; `verify --full` checks all",
            history.summary.size.saturating_sub(history.since),
            history.since
        ));
        vec![None]
    };
    for group in groups {
        let snapshots = match group {
            Some(d) => history.snapshots_of(d),
            None => history.snapshots_read(),
        };
        report.snapshots += snapshots.len() as u64;
        named.extend(snapshots.iter().map(|s| s.manifest));
        let (u, h) = check_manifests(vault, &index, &snapshots, opts.read_data, &mut report);
        for (k, v) in u {
            usage.entry(k).or_insert_with(Vec::new).extend(v);
        }
        to_hash.extend(h);
    }
    if history.since > 0 {
        report.snapshots = history.summary.devices.values().map(|d| d.snapshots).sum();
    }

    if opts.read_data {
        read_data(vault, &index, opts.threads, &usage, &mut report);
        artifact_hashes(vault, &index, opts.threads, &to_hash, &mut report);
    }

    if history.since == 0 {
        leftovers(vault, &packs, &named, &mut report);
    }

    if opts.update_state
        && let (Some(dir), Some(head)) = (&opts.state_dir, history.head())
        && !report.findings.iter().any(|f| log_level(f.kind))
    {
        let remembered = state::remember(dir, vault.id(), head)
            .and_then(|()| {
                let path = clocks_path(dir, vault.id());
                let bytes = serde_json::to_vec(&clocks).expect("clocks serialize");
                crate::atomic::write_replace(dir, &path, &bytes)
                    .map_err(crate::error::io_err("write", &path))
            })
            .and_then(|()| match &verified_note {
                Some(n) => state::remember_checkpoint(dir, vault.id(), n),
                None => Ok(()),
            });
        if let Err(e) = remembered {
            report.notes.push(format!(
                "the head (entry {}) could not be remembered: {e}; until it is, a rollback to before it goes unnoticed by this verifier (make {} writable)",
                head.0,
                dir.display()
            ));
        }
    }
    report.findings = crate::finding::cap_per_kind(std::mem::take(&mut report.findings));
    Ok(report)
}

/// The chunk index of every pack the log names; a missing, truncated or damaged pack is a
/// finding.
fn load_index(vault: &Vault, history: &History, report: &mut VerifyReport) -> Index {
    let (index, problems) = Index::load_reading(vault, history);
    for p in problems {
        let path = pack::pack_path(vault.root(), &p.pack.id);
        let kind = match &p.error {
            VaultError::Io { error, .. } if error.kind() == std::io::ErrorKind::NotFound => {
                FindingKind::MissingPack
            }
            VaultError::Corrupt { why, .. }
                if why.contains("bytes, the log says") || why.contains("truncated") =>
            {
                FindingKind::TruncatedPack
            }
            _ => FindingKind::CorruptPack,
        };
        let msg = match kind {
            FindingKind::MissingPack => format!("pack {} is missing", p.pack.id.short()),
            _ => format!(
                "pack {}: {}",
                p.pack.id.short(),
                first_line(&p.error.to_string())
            ),
        };
        report
            .findings
            .push(Finding::new(kind, msg).path(path.display()));
    }

    index
}

/// What the manifests of the trusted snapshots say: each checked once (sorted, safe and
/// unique names, consistent chunk lengths, every chunk in a readable pack). Returns which
/// artifacts use each chunk and, with `read_data`, every distinct artifact version to
/// hash whole.
#[allow(clippy::type_complexity)]
fn check_manifests(
    vault: &Vault,
    index: &Index,
    snapshots: &[SnapshotRecord],
    read_data: bool,
    report: &mut VerifyReport,
) -> (
    HashMap<Hash, Vec<Usage>>,
    Vec<(SnapshotRecord, ArtifactEntry)>,
) {
    let mut usage: HashMap<Hash, Vec<Usage>> = HashMap::new();
    // An unchanged device names the same manifest night after night: check each once.
    // The artifacts and chunk ids of each manifest checked, for the snapshots that name it
    // again.
    #[allow(clippy::type_complexity)]
    let mut chunks_of: HashMap<Hash, Vec<(String, Vec<Hash>)>> = HashMap::new();
    let mut checked = HashSet::new();
    // With all data read: every distinct artifact version, to hash whole from its chunks.
    let mut to_hash: Vec<(SnapshotRecord, ArtifactEntry)> = Vec::new();
    let mut seen_versions = HashSet::new();
    for s in snapshots {
        if !checked.insert(s.manifest) {
            // Checked once; its chunks are still used by this snapshot too, so that damage
            // names every snapshot it hurts.
            for (artifact, ids) in chunks_of
                .get(&s.manifest)
                .into_iter()
                .flatten()
                .filter(|_| read_data)
            {
                for id in ids {
                    usage.entry(*id).or_default().push(Usage {
                        device: s.device.clone(),
                        snapshot: s.id.clone(),
                        artifact: artifact.clone(),
                    });
                }
            }
            continue;
        }
        let path = manifest::manifest_path(vault.root(), &s.manifest);
        let m: Manifest = match manifest::load(vault.root(), &s.manifest) {
            Ok(m) => m,
            Err(VaultError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                report.findings.push(
                    Finding::new(
                        FindingKind::MissingManifest,
                        format!("manifest of snapshot {} of `{}` is missing", s.id, s.device),
                    )
                    .seq(s.seq)
                    .device(&s.device)
                    .snapshot(&s.id)
                    .path(path.display()),
                );
                continue;
            }
            Err(e) => {
                report.findings.push(
                    Finding::new(
                        FindingKind::CorruptManifest,
                        format!(
                            "manifest of snapshot {} of `{}`: {}",
                            s.id,
                            s.device,
                            first_line(&e.to_string())
                        ),
                    )
                    .seq(s.seq)
                    .device(&s.device)
                    .snapshot(&s.id)
                    .path(path.display()),
                );
                continue;
            }
        };
        let bad = |msg: String| {
            Finding::new(FindingKind::BadManifest, msg)
                .seq(s.seq)
                .device(&s.device)
                .snapshot(&s.id)
        };
        if m.device != s.device {
            report.findings.push(bad(format!(
                "snapshot {} is logged for `{}` but its manifest names `{}`",
                s.id, s.device, m.device
            )));
        }
        {
            let mut files = HashSet::new();
            for a in &m.artifacts {
                if let Some(parent) = manifest::folder_conflict(&a.name, |p| files.contains(p)) {
                    report.findings.push(bad(format!(
                        "snapshot {}: `{parent}` is both a file and the folder of `{}` (it cannot be restored)",
                        s.id, a.name
                    )));
                    break;
                }
                files.insert(a.name.as_str());
            }
        }
        if m.artifacts.windows(2).any(|w| w[0].name > w[1].name) {
            report.findings.push(bad(format!(
                "snapshot {}: the manifest's artifacts are not sorted by name",
                s.id
            )));
        }
        let mut names = HashSet::new();
        for a in &m.artifacts {
            if let Err(why) = check_name(&a.name) {
                report.findings.push(bad(format!(
                    "snapshot {} has an unsafe artifact name: {why}",
                    s.id
                )));
            }
            if !names.insert(&a.name) {
                report
                    .findings
                    .push(bad(format!("snapshot {} lists `{}` twice", s.id, a.name)));
            }
            if let Err(why) = manifest::check_chunk_lengths(a) {
                report
                    .findings
                    .push(bad(format!("`{}` in snapshot {}: {why}", a.name, s.id)));
            }
            let mut missing = 0usize;
            for (id, len) in &a.chunks {
                match index.get(id) {
                    None => missing += 1,
                    Some(loc) if loc.entry.plain_len != *len => missing += 1,
                    Some(_) => {}
                }
                // Which artifacts use a chunk names what damage hurts: only reading the
                // data finds such damage.
                if read_data {
                    usage.entry(*id).or_default().push(Usage {
                        device: s.device.clone(),
                        snapshot: s.id.clone(),
                        artifact: a.name.clone(),
                    });
                }
            }
            if read_data {
                chunks_of
                    .entry(s.manifest)
                    .or_default()
                    .push((a.name.clone(), a.chunks.iter().map(|(id, _)| *id).collect()));
            }
            if missing == 0
                && read_data
                && seen_versions.insert((
                    a.sha256,
                    Hash::of(&serde_json::to_vec(&a.chunks).unwrap_or_default()),
                ))
            {
                to_hash.push((s.clone(), a.clone()));
            }
            if missing > 0 {
                report.findings.push(
                    Finding::new(
                        FindingKind::MissingChunk,
                        format!(
                            "`{}` in snapshot {} of `{}`: {missing} of {} chunks are in no readable pack",
                            a.name,
                            s.id,
                            s.device,
                            a.chunks.len()
                        ),
                    )
                    .seq(s.seq)
                    .device(&s.device)
                    .snapshot(&s.id),
                );
            }
        }
    }
    (usage, to_hash)
}

/// The head this verifier remembers, against the log: a rollback, a divergence or a
/// replaced vault is a finding, unless a trusted recovery accepted exactly that.
fn check_memory(
    memory: Option<&state::Memory>,
    history: &History,
    accepted: &[crate::history::AcceptedRecord],
    report: &mut VerifyReport,
) {
    // The remembered head.
    if let Some(p) = memory.and_then(|m| m.problem_in(history)) {
        let mem = p.remembered();
        let other = match &p {
            state::HeadProblem::Replaced { other, .. } => Some(other.as_str()),
            state::HeadProblem::Retired { id, .. } => Some(id.as_str()),
            _ => None,
        };
        // The same lost head may look like a rollback to one verifier and like a
        // divergence to another (entries were appended since): the head decides.
        let hit = accepted.iter().find(|a| {
            ["rollback", "diverged", "replaced-vault"].contains(&a.accepted.kind.as_str())
                && a.accepted.seq == Some(mem.seq)
                && a.accepted.hash == Some(mem.hash)
                && other.is_none_or(|o| a.accepted.vault.as_deref() == Some(o))
        });
        match hit {
            Some(a) => report.notes.push(a.note(&p.finding())),
            None => report.findings.push(p.finding()),
        }
    }
}

/// What a verifier keeps of the entries' clocks between runs (`<state>/<vault id>.clocks`),
/// so that checking only new entries still reports old clock findings: the entries
/// covered, the newest sane entry, the latest-dated entries (any entry dated in the future
/// is among them), and the time-backwards findings so far.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct Clocks {
    pub size: u64,
    pub sane: Option<(u64, String)>,
    pub latest: Vec<(u64, String)>,
    pub backwards: Vec<Finding>,
}

/// The latest-dated entries kept.
const LATEST_KEPT: usize = 64;

fn clocks_path(dir: &std::path::Path, vault_id: &str) -> PathBuf {
    dir.join(format!("{vault_id}.clocks"))
}

fn load_clocks(opts: &VerifyOptions, vault_id: &str, size: u64) -> Option<Clocks> {
    let path = clocks_path(opts.state_dir.as_deref()?, vault_id);
    let bytes = crate::fsread::read_regular(&path, 16 * 1024 * 1024).ok()?;
    serde_json::from_slice::<Clocks>(&bytes)
        .ok()
        .filter(|c| c.size == size)
}

fn parse_time(t: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(t).ok()
}

/// Entries dated in the future or before their predecessor (unless accepted). Returns the
/// time of the newest entry that is not in the future, and what to remember of the clocks.
fn check_clocks(
    vault: &Vault,
    history: &History,
    accepted: &[crate::history::AcceptedRecord],
    (opts, remember_at): (&VerifyOptions, u64),
    report: &mut VerifyReport,
) -> (Option<SystemTime>, Clocks) {
    // Clocks: an entry from the future would switch off the stale check; one dated before
    // its predecessor hides when things happened. Entries are compared with the newest
    // earlier entry that is not in the future (a future-dated entry is its own finding).
    // Only trusted entries count (an altered entry's time means nothing), and an entry an
    // approver accepted as future-dated is never a reference, even once its date has passed.
    let ahead = opts.now + opts.clock_skew;
    let accepted_future: HashSet<u64> = accepted
        .iter()
        .filter(|a| a.accepted.kind == FindingKind::FutureTime.as_str())
        .filter_map(|a| a.accepted.seq)
        .collect();
    let mut clock = Vec::new();
    let future = |seq: u64, time: &str, t: SystemTime| {
        Finding::new(
            FindingKind::FutureTime,
            format!(
                "log entry {seq} is dated {time}, {} ahead of this verifier's clock (a writer's clock was wrong, or the entry was made to look fresh)",
                whole_seconds(t.duration_since(opts.now).unwrap_or_default())
            ),
        )
        .seq(seq)
    };
    // After what was verified before: its clock findings, its future-dated entries, and
    // its newest sane entry as the reference.
    let before = match history.since {
        0 => Clocks::default(),
        s => load_clocks(opts, vault.id(), s).unwrap_or_else(|| Clocks {
            size: s,
            sane: history
                .time_of(s)
                .filter(|t| *t <= ahead && !accepted_future.contains(&s))
                .map(|t| (s, humantime::format_rfc3339_millis(t).to_string())),
            ..Clocks::default()
        }),
    };
    clock.extend(before.backwards.iter().cloned());
    for (seq, time) in &before.latest {
        if let Some(t) = parse_time(time)
            && t > ahead
            && !accepted_future.contains(seq)
        {
            clock.push(future(*seq, time, t));
        }
    }
    let mut sane: Option<(u64, SystemTime)> = before
        .sane
        .as_ref()
        .and_then(|(s, t)| parse_time(t).map(|t| (*s, t)));
    let mut latest: Vec<(u64, SystemTime)> = before
        .latest
        .iter()
        .filter_map(|(s, t)| parse_time(t).map(|t| (*s, t)))
        .collect();
    let fmt = |t: SystemTime| humantime::format_rfc3339_millis(t).to_string();
    let snapshot = |sane: &Option<(u64, SystemTime)>,
                    latest: &mut Vec<(u64, SystemTime)>,
                    clock: &[Finding],
                    size: u64| {
        latest.sort_by_key(|e| std::cmp::Reverse(e.1));
        latest.truncate(LATEST_KEPT);
        Clocks {
            size,
            sane: sane.map(|(s, t)| (s, fmt(t))),
            latest: latest.iter().map(|&(s, t)| (s, fmt(t))).collect(),
            backwards: clock
                .iter()
                .filter(|f| f.kind == FindingKind::TimeBackwards)
                .cloned()
                .collect(),
        }
    };
    let mut remembered = None;
    for &(seq, t) in &history.times {
        if seq > remember_at && remembered.is_none() {
            remembered = Some(snapshot(&sane, &mut latest.clone(), &clock, remember_at));
        }
        let time = humantime::format_rfc3339_millis(t).to_string();
        latest.push((seq, t));
        if latest.len() > 4 * LATEST_KEPT {
            latest.sort_by_key(|e| std::cmp::Reverse(e.1));
            latest.truncate(LATEST_KEPT);
        }
        if accepted_future.contains(&seq) {
            continue;
        }
        if let Some((p, pt)) = sane
            && t + opts.clock_skew < pt
        {
            clock.push(
                Finding::new(
                    FindingKind::TimeBackwards,
                    format!(
                        "log entry {seq} is dated {time}, {} before entry {p} that it follows (a writer's clock went back)",
                        whole_seconds(pt.duration_since(t).unwrap_or_default())
                    ),
                )
                .seq(seq),
            );
        }
        if t > ahead {
            clock.push(future(seq, &time, t));
        } else {
            sane = Some((seq, t));
        }
    }
    let remembered = remembered.unwrap_or_else(|| {
        snapshot(
            &sane,
            &mut latest,
            &clock,
            remember_at.min(history.summary.size),
        )
    });
    clock.sort_by_key(|f| f.seq);
    for f in clock {
        match accepted
            .iter()
            .find(|a| a.accepted.kind == f.kind.as_str() && a.accepted.seq == f.seq)
        {
            Some(a) => report.notes.push(a.note(&f)),
            None => report.findings.push(f),
        }
    }
    (sane.map(|s| s.1), remembered)
}

/// Every recovery stays visible, also to a verifier that never saw what it accepted.
fn note_recoveries(history: &History, report: &mut VerifyReport) {
    for (seq, signer, time, accepted, reason) in &history.summary.recoveries {
        {
            report.notes.push(format!(
                "log entry {seq} is a recovery signed by {} on {time}: accepted {}; reason: {reason}",
                if signer.is_empty() { "?" } else { signer },
                accepted
                    .iter()
                    .map(|a| match a.seq {
                        Some(s) => format!("{} at entry {s}", a.kind),
                        None => a.kind.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}

/// A log whose newest sane entry is older than `stale_after` is a finding.
fn check_stale(
    opts: &VerifyOptions,
    newest_sane: Option<SystemTime>,
    history: &History,
    report: &mut VerifyReport,
) {
    if let Some(limit) = opts.stale_after {
        match newest_sane.or_else(|| history.newest_time()) {
            Some(t) => {
                if let Ok(age) = opts.now.duration_since(t)
                    && age > limit
                {
                    report.findings.push(Finding::new(
                        FindingKind::Stale,
                        format!(
                            "the newest log entry is {} old, more than the expected interval of {} (collector stopped, or log truncated)",
                            humantime::format_duration(Duration::from_secs(age.as_secs())),
                            humantime::format_duration(limit)
                        ),
                    ));
                }
            }
            None => report
                .notes
                .push("the log is empty: nothing collected yet".into()),
        }
    }
}

/// A duration to the second, for messages.
fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Reads every indexed pack whole: its SHA-256 must be its name, and every chunk must
/// decompress to bytes with its own SHA-256.
fn read_data(
    vault: &Vault,
    index: &Index,
    threads: usize,
    usage: &HashMap<Hash, Vec<Usage>>,
    report: &mut VerifyReport,
) {
    let same_file: Mutex<HashMap<(u64, u64), Hash>> = Mutex::new(HashMap::new());
    let items: Vec<usize> = (0..index.packs.len()).collect();
    let results = crate::parallel::map_with(
        &items,
        threads.clamp(1, READ_THREADS),
        ChunkReader::new,
        |reader, &i| {
            let Ok(reader) = reader.as_mut() else {
                return (Vec::new(), 0, 0);
            };
            let pack_id = &index.packs[i];
            let size = index.pack_sizes.get(i).copied().unwrap_or(0);
            let path = pack::pack_path(vault.root(), pack_id);
            let mut local = Vec::new();
            let (mut chunks, mut bytes) = (0u64, 0u64);
            // The same file under two names (hard links) is read once.
            if let Ok(m) = std::fs::metadata(&path) {
                use std::os::unix::fs::MetadataExt;
                let mut files = same_file.lock().expect("files lock");
                if let Some(first) = files.get(&(m.dev(), m.ino())) {
                    local.push(
                        Finding::new(
                            FindingKind::CorruptPack,
                            format!(
                                "pack {} is the same file as pack {} (a hard link): at most one can be right",
                                pack_id.short(),
                                Hash::short(first)
                            ),
                        )
                        .path(path.display()),
                    );
                    return (local, 0, 0);
                }
                files.insert((m.dev(), m.ino()), *pack_id);
            }
            // One pass through the file, in order, never holding more than a
            // chunk: the whole file hashed, every chunk decoded and checked.
            match read_pack_streaming(&path, size, pack_id, reader) {
                Err(e) => local.push(
                    Finding::new(
                        match &e {
                            VaultError::Io { error, .. }
                                if error.kind() == std::io::ErrorKind::NotFound =>
                            {
                                FindingKind::MissingPack
                            }
                            _ => FindingKind::CorruptPack,
                        },
                        format!(
                            "pack {} cannot be read: {}",
                            pack_id.short(),
                            first_line(&e.to_string())
                        ),
                    )
                    .path(path.display()),
                ),
                Ok(pass) => {
                    if !pass.hash_ok {
                        local.push(
                            Finding::new(
                                FindingKind::CorruptPack,
                                format!(
                                    "pack {} does not match its SHA-256 (its bytes changed)",
                                    pack_id.short()
                                ),
                            )
                            .path(path.display()),
                        );
                    }
                    chunks += pass.chunks;
                    bytes += pass.bytes;
                    for id in &pass.bad {
                        local.push(corrupt_chunk_finding(id, pack_id, usage, &path));
                    }
                    if pass.more_bad > 0 {
                        local.push(
                            Finding::new(
                                FindingKind::CorruptChunk,
                                format!(
                                    "pack {}: {} more damaged chunks (the first {MAX_CHUNK_FINDINGS} are listed)",
                                    pack_id.short(),
                                    pass.more_bad
                                ),
                            )
                            .path(path.display()),
                        );
                    }
                }
            }
            (local, chunks, bytes)
        },
    );
    let mut found = Vec::new();
    for (local, chunks, bytes) in results {
        found.extend(local);
        report.chunks_checked += chunks;
        report.bytes_checked += bytes;
    }
    found.sort_by(|a, b| a.message.cmp(&b.message));
    report.findings.extend(found);
}

/// With all data read: every distinct artifact version hashed whole from its chunks,
/// against the SHA-256 its manifest gives (what restore checks before a file gets its
/// name). A mismatch is a manifest its collector signed wrongly.
fn artifact_hashes(
    vault: &Vault,
    index: &Index,
    threads: usize,
    todo: &[(SnapshotRecord, ArtifactEntry)],
    report: &mut VerifyReport,
) {
    let results = crate::parallel::map_with(
        todo,
        threads.clamp(1, READ_THREADS),
        ChunkReader::new,
        |reader, (snap, a)| {
            let reader = reader.as_mut().ok()?;
            // A chunk that cannot be read is reported by the pack checks already.
            let h = crate::restore::hash_artifact(vault, index, a, reader).ok()?;
            (h != a.sha256).then(|| {
                Finding::new(
                    FindingKind::BadManifest,
                    format!(
                        "`{}` in snapshot {} of `{}`: its chunks hash to {}, the manifest says {} (restore would refuse it)",
                        a.name,
                        snap.id,
                        snap.device,
                        h.short(),
                        a.sha256.short()
                    ),
                )
                .seq(snap.seq)
                .device(&snap.device)
                .snapshot(&snap.id)
            })
        },
    );
    let mut found: Vec<Finding> = results.into_iter().flatten().collect();
    found.sort_by(|a, b| a.message.cmp(&b.message));
    report.findings.extend(found);
}

/// Threads that read all data at once, at most: each holds two chunk buffers (8 MiB), so
/// memory stays bounded whatever the host's core count; more would not read faster.
const READ_THREADS: usize = 4;

/// What one streaming pass through a pack found.
struct PackPass {
    hash_ok: bool,
    chunks: u64,
    bytes: u64,
    /// Chunks that do not decompress to their length and id (the first ones), and how many
    /// more there are.
    bad: Vec<Hash>,
    more_bad: u64,
}

/// Damaged chunks reported one by one per pack; more are counted in one finding.
const MAX_CHUNK_FINDINGS: usize = 100;

/// Reads the pack of `size` bytes at `path` once, front to back: its SHA-256 against `id`,
/// and every chunk through `reader` (at most one chunk in memory).
///
/// Fails when the file cannot be read or its trailer is malformed.
fn read_pack_streaming(
    path: &std::path::Path,
    size: u64,
    id: &Hash,
    reader: &mut ChunkReader,
) -> Result<PackPass, VaultError> {
    use sha2::Digest;
    use std::io::Read;
    let (_, entries) = pack::read_trailer(path, Some(size))?;
    let mut f = crate::fsread::open_regular(path)
        .map_err(crate::error::io_err("open", path))?
        .take(size);
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; pack::HEADER_LEN as usize];
    let mut pass = PackPass {
        hash_ok: false,
        chunks: 0,
        bytes: 0,
        bad: Vec::new(),
        more_bad: 0,
    };
    let read_err = crate::error::io_err("read", path);
    f.read_exact(&mut buf).map_err(read_err)?;
    hasher.update(&buf);
    for e in &entries {
        buf.resize(e.stored_len as usize, 0);
        f.read_exact(&mut buf)
            .map_err(crate::error::io_err("read", path))?;
        hasher.update(&buf);
        pass.chunks += 1;
        pass.bytes += u64::from(e.plain_len);
        if !reader.check(&buf, e) {
            if pass.bad.len() < MAX_CHUNK_FINDINGS {
                pass.bad.push(e.id);
            } else {
                pass.more_bad += 1;
            }
        }
    }
    // The trailer and footer, in pieces.
    buf.resize(64 * 1024, 0);
    loop {
        let n = f
            .read(&mut buf)
            .map_err(crate::error::io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    pass.hash_ok = Hash::from_hasher(hasher) == *id;
    Ok(pass)
}

fn corrupt_chunk_finding(
    id: &Hash,
    pack_id: &Hash,
    usage: &HashMap<Hash, Vec<Usage>>,
    path: &std::path::Path,
) -> Finding {
    let users = usage.get(id).map(Vec::as_slice).unwrap_or(&[]);
    let mut affected: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for u in users {
        affected
            .entry((u.device.clone(), u.snapshot.clone()))
            .or_default()
            .push(u.artifact.clone());
    }
    let what = if affected.is_empty() {
        "no snapshot uses it".to_string()
    } else {
        affected
            .iter()
            .map(|((d, s), arts)| format!("`{}` in snapshot {s} of `{d}`", arts.join("`, `")))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut f = Finding::new(
        FindingKind::CorruptChunk,
        format!(
            "chunk {} in pack {} is damaged; affects {what}",
            id.short(),
            pack_id.short()
        ),
    )
    .path(path.display());
    if let Some(((d, s), _)) = affected.iter().next() {
        f = f.device(d).snapshot(s);
    }
    f
}

/// Notes packs, manifests and temp files that no trusted entry names.
fn leftovers(
    vault: &Vault,
    packs: &[PackRef],
    manifests: &HashSet<Hash>,
    report: &mut VerifyReport,
) {
    let named: HashSet<String> = packs.iter().map(|p| format!("{}.pack", p.id)).collect();
    let mut stray_packs = 0;
    if let Ok(rd) = std::fs::read_dir(vault.root().join("packs")) {
        for sub in rd.flatten() {
            if let Ok(files) = std::fs::read_dir(sub.path()) {
                stray_packs += files
                    .flatten()
                    .filter(|f| !named.contains(&f.file_name().to_string_lossy().into_owned()))
                    .count();
            }
        }
    }
    let named: HashSet<String> = manifests.iter().map(|m| format!("{m}.json")).collect();
    let stray_manifests = std::fs::read_dir(vault.root().join("manifests"))
        .map(|rd| {
            rd.flatten()
                .filter(|f| !named.contains(&f.file_name().to_string_lossy().into_owned()))
                .count()
        })
        .unwrap_or(0);
    let temps = std::fs::read_dir(vault.tmp_dir())
        .map(|rd| rd.count())
        .unwrap_or(0);
    if stray_packs + stray_manifests + temps > 0 {
        // Harmless only on a clean log: with findings, a file no trusted entry names may
        // be what an altered or malformed entry named.
        let doubt = !report.findings.is_empty();
        report.notes.push(format!(
            "{stray_packs} pack(s), {stray_manifests} manifest(s) and {temps} temp file(s) are not part of any committed snapshot ({})",
            if doubt {
                "with the findings above, some may be what an entry that does not verify named: keep them until those are resolved"
            } else {
                "left by interrupted or concurrent runs; harmless"
            }
        ));
    }
}
