//! Prune: deletes what no kept snapshot needs, in the order every writer of the vault
//! keeps: data first, the signed log entry next, deletions last.
//!
//! 1. Plan: the chunks of every kept (not forgotten) snapshot's manifest are live; each
//!    committed pack is used (all its chunks live), sparse (some), or unused (none). Packs
//!    are repacked, sparsest first, until the unused bytes left in kept packs are at most
//!    `max_unused` of the bytes kept. Files no entry names (leftovers of failed or killed
//!    runs) are deleted once older than `grace`, so that a writer's fresh files are never
//!    touched (the exclusive writers' lock, `Hold::Exclusive`, keeps writers out on this
//!    host; the grace covers what it cannot see).
//! 2. Repack: live chunks of the sparse packs chosen are copied, each checked against its
//!    SHA-256, into new packs, synced and renamed into place.
//! 3. Commit: signed `prune` entries name the new packs and the packs removed (new packs
//!    before the packs they replace, at most `ITEMS_PER_ENTRY` hashes per entry).
//! 4. Delete: the removed packs, manifests only forgotten snapshots named, old leftovers.
//!
//! A kill at any point loses nothing kept: before step 3 the new packs are leftovers and
//! the old ones are still named; after it the old ones are leftovers, deleted next time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{VaultError, io_err};
use crate::hash::Hash;
use crate::history::History;
use crate::key::SecretKey;
use crate::log::{Event, PackRef};
use crate::manifest;
use crate::pack::{self, ChunkReader, PackEntry, PackWriter};
use crate::repository::Vault;

/// Hashes named by one `prune` entry (new packs and removed ones together), so that an
/// entry stays well below the bundle limit of 65,535 bytes.
pub const ITEMS_PER_ENTRY: usize = 600;

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Plan and report only.
    pub dry_run: bool,
    /// Unused bytes tolerated in kept packs, as a share of the bytes kept (0.05: 5%).
    pub max_unused: f64,
    /// Files no entry names are deleted only when older than this.
    pub grace: Duration,
    pub now: SystemTime,
}

/// What prune found and did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Snapshots kept, and the distinct manifests they name.
    pub kept_snapshots: u64,
    pub kept_manifests: u64,
    /// Packs the log names, and their bytes, before.
    pub packs_before: u64,
    pub bytes_before: u64,
    /// Packs removed because no kept snapshot uses them, and their bytes.
    pub packs_unused: u64,
    pub bytes_unused: u64,
    /// Sparse packs repacked, their bytes, and the new packs written.
    pub packs_repacked: u64,
    pub bytes_repacked: u64,
    pub packs_written: u64,
    pub bytes_written: u64,
    /// Manifests deleted (only forgotten snapshots named them).
    pub manifests_removed: u64,
    /// Leftovers deleted (files no entry names, older than the grace period), and their
    /// bytes; leftovers kept because they are younger.
    pub leftovers_removed: u64,
    pub leftover_bytes: u64,
    pub leftovers_young: u64,
    /// Bytes of packs the log names, after; unused bytes still in them.
    pub bytes_after: u64,
    pub unused_after: u64,
    /// Bytes freed on disk (packs, manifests, leftovers).
    pub freed: u64,
    /// `prune` entries appended.
    pub entries: Vec<u64>,
}

/// A pack as the plan sees it.
struct PackUse {
    pack: PackRef,
    /// Live chunks (the first copy of a live chunk in the log's order) and their bytes.
    live: Vec<PackEntry>,
    live_bytes: u64,
}

/// Prunes `vault`, whose log `history` holds (read after the exclusive hold was taken).
///
/// Fails when a kept snapshot's manifest or a pack cannot be read (verify first), on I/O
/// errors, or when the entry cannot be appended; what was deleted before a failure was
/// not needed.
pub fn prune(
    vault: &Vault,
    history: &History,
    key: &SecretKey,
    opts: &PruneOptions,
) -> Result<PruneReport, VaultError> {
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..PruneReport::default()
    };
    // Live chunks: those of every kept snapshot's manifest.
    let mut kept_manifests: HashSet<Hash> = HashSet::new();
    let mut forgotten_manifests: HashSet<Hash> = HashSet::new();
    for device in history.summary.devices.keys() {
        let kept = history.snapshots_of(device);
        report.kept_snapshots += kept.len() as u64;
        kept_manifests.extend(kept.iter().map(|s| s.manifest));
    }
    for device in history.summary.devices.keys() {
        let forgotten = history.forgotten_of(device);
        for r in history.records(device)? {
            if let crate::history::Record::Snapshot(s) = r
                && forgotten.contains_key(&s.seq)
                && !kept_manifests.contains(&s.manifest)
            {
                forgotten_manifests.insert(s.manifest);
            }
        }
    }
    report.kept_manifests = kept_manifests.len() as u64;
    let mut live: HashSet<Hash> = HashSet::new();
    for m in &kept_manifests {
        let manifest = manifest::load(vault.root(), m).map_err(|e| {
            VaultError::Refused(format!(
                "not pruning: the manifest {} of a kept snapshot cannot be read ({e}); run `plcvault verify` and repair the vault first",
                m.short()
            ))
        })?;
        for a in &manifest.artifacts {
            live.extend(a.chunks.iter().map(|(id, _)| *id));
        }
    }

    // Each committed pack's use, in the log's order (the first copy of a chunk is the one
    // readers use).
    let committed = history.committed_packs();
    let mut placed: HashSet<Hash> = HashSet::new();
    let mut uses = Vec::new();
    for p in &committed {
        let path = pack::pack_path(vault.root(), &p.id);
        let (_, entries) = pack::read_trailer(&path, Some(p.size)).map_err(|e| {
            VaultError::Refused(format!(
                "not pruning: pack {} cannot be read ({e}); run `plcvault verify --read-data` and repair the vault first",
                p.id.short()
            ))
        })?;
        let mut u = PackUse {
            pack: p.clone(),
            live: Vec::new(),
            live_bytes: 0,
        };
        for e in entries {
            if live.contains(&e.id) && placed.insert(e.id) {
                u.live_bytes += u64::from(e.stored_len);
                u.live.push(e);
            }
        }
        uses.push(u);
    }
    let missing = live.iter().filter(|id| !placed.contains(id)).count();
    if missing > 0 {
        return Err(VaultError::Refused(format!(
            "not pruning: {missing} chunk(s) of kept snapshots are in no pack the log names; run `plcvault verify` and repair the vault first"
        )));
    }
    report.packs_before = uses.len() as u64;
    report.bytes_before = uses.iter().map(|u| u.pack.size).sum();

    // Unused packs go; sparse ones are repacked, sparsest first, while the unused bytes
    // left are over the limit.
    let mut removed: Vec<PackRef> = Vec::new();
    let mut sparse: Vec<&PackUse> = Vec::new();
    for u in &uses {
        if u.live.is_empty() {
            report.packs_unused += 1;
            report.bytes_unused += u.pack.size;
            removed.push(u.pack.clone());
        } else if u.live_bytes < u.pack.size.saturating_sub(overhead(u.live.len())) {
            sparse.push(u);
        }
    }
    let unused_of = |u: &PackUse| {
        u.pack
            .size
            .saturating_sub(u.live_bytes + overhead(u.live.len()))
    };
    sparse.sort_by(|a, b| {
        let share = |u: &PackUse| unused_of(u) as f64 / u.pack.size.max(1) as f64;
        share(b).total_cmp(&share(a))
    });
    let kept_bytes: u64 = uses
        .iter()
        .filter(|u| !u.live.is_empty())
        .map(|u| u.pack.size)
        .sum();
    let mut unused: u64 = sparse.iter().map(|u| unused_of(u)).sum();
    let mut to_repack: Vec<&PackUse> = Vec::new();
    for u in sparse {
        let live_total = kept_bytes.saturating_sub(unused) as f64;
        if (unused as f64) <= opts.max_unused * live_total {
            break;
        }
        unused -= unused_of(u);
        to_repack.push(u);
    }
    report.packs_repacked = to_repack.len() as u64;
    report.bytes_repacked = to_repack.iter().map(|u| u.pack.size).sum();

    // Leftovers and manifests to delete.
    let named_packs: HashSet<Hash> = committed.iter().map(|p| p.id).collect();
    let mut deletions: Vec<(PathBuf, u64)> = Vec::new();
    let leftovers = leftovers(vault, &named_packs, &kept_manifests, &forgotten_manifests)?;
    for (path, len, named_by_forgotten, modified) in leftovers {
        let old = opts
            .now
            .duration_since(modified)
            .is_ok_and(|age| age >= opts.grace);
        if named_by_forgotten {
            report.manifests_removed += 1;
            deletions.push((path, len));
        } else if old {
            report.leftovers_removed += 1;
            report.leftover_bytes += len;
            deletions.push((path, len));
        } else {
            report.leftovers_young += 1;
        }
    }

    if opts.dry_run {
        let written: u64 = to_repack
            .iter()
            .map(|u| u.live_bytes + overhead(u.live.len()))
            .sum();
        report.packs_written = u64::from(!to_repack.is_empty());
        report.bytes_written = written;
        report.bytes_after =
            report.bytes_before - report.bytes_unused - report.bytes_repacked + written;
        report.unused_after = unused;
        report.freed = report.bytes_unused + report.bytes_repacked - written
            + deletions.iter().map(|(_, n)| n).sum::<u64>();
        return Ok(report);
    }

    // Repack: the live chunks, checked, into new packs.
    let mut new_packs: Vec<PackRef> = Vec::new();
    let mut reader = ChunkReader::new()?;
    let mut writer: Option<PackWriter> = None;
    let result = (|| -> Result<(), VaultError> {
        for u in &to_repack {
            let path = pack::pack_path(vault.root(), &u.pack.id);
            let mut file = crate::fsread::open_regular(&path).map_err(io_err("open", &path))?;
            for e in &u.live {
                use std::io::{Read, Seek, SeekFrom};
                let mut stored = vec![0u8; e.stored_len as usize];
                file.seek(SeekFrom::Start(e.offset))
                    .and_then(|_| file.read_exact(&mut stored))
                    .map_err(io_err("read", &path))?;
                if !reader.check(&stored, e) {
                    return Err(VaultError::Refused(format!(
                        "not pruning: chunk {} in pack {} does not match its SHA-256; run `plcvault verify --read-data`",
                        e.id.short(),
                        u.pack.id.short()
                    )));
                }
                let w = match &mut writer {
                    Some(w) => w,
                    None => writer.insert(PackWriter::create(&vault.tmp_dir())?),
                };
                w.add(e.id, e.plain_len, e.codec, &stored)?;
                if w.len() >= pack::TARGET_SIZE || w.entries() >= pack::TARGET_ENTRIES {
                    let info = writer
                        .take()
                        .expect("a pack is open")
                        .finish(vault.root())?;
                    new_packs.push(PackRef {
                        id: info.id,
                        size: info.size,
                    });
                }
            }
            removed.push(u.pack.clone());
        }
        if let Some(w) = writer.take() {
            let info = w.finish(vault.root())?;
            new_packs.push(PackRef {
                id: info.id,
                size: info.size,
            });
        }
        Ok(())
    })();
    if let Err(e) = result {
        if let Some(w) = writer.take() {
            w.abandon();
        }
        return Err(e);
    }
    report.packs_written = new_packs.len() as u64;
    report.bytes_written = new_packs.iter().map(|p| p.size).sum();

    // Commit: new packs first, then the removed ones, a bounded number per entry.
    let mut items: Vec<Item> = new_packs.iter().cloned().map(Item::New).collect();
    items.extend(removed.iter().map(|p| Item::Removed(p.clone())));
    for batch in items.chunks(ITEMS_PER_ENTRY) {
        let packs: Vec<PackRef> = batch
            .iter()
            .filter_map(|i| match i {
                Item::New(p) => Some(p.clone()),
                Item::Removed(_) => None,
            })
            .collect();
        let gone: Vec<&PackRef> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Removed(p) => Some(p),
                Item::New(_) => None,
            })
            .collect();
        let event = Event::Prune {
            removed: gone.iter().map(|p| p.id).collect(),
            freed: gone.iter().map(|p| p.size).sum(),
            written: packs.iter().map(|p| p.size).sum(),
            packs,
        };
        let entry = crate::guard::append(vault, key, &event)?;
        report.entries.push(entry.file_seq);
    }

    // Delete: the removed packs, then manifests and leftovers, never a pack just written
    // (a killed prune's leftover has the very name a repack of the same chunks gives).
    for p in &removed {
        deletions.push((pack::pack_path(vault.root(), &p.id), p.size));
    }
    let written: HashSet<PathBuf> = new_packs
        .iter()
        .map(|p| pack::pack_path(vault.root(), &p.id))
        .collect();
    deletions.retain(|(path, _)| !written.contains(path));
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for (path, len) in &deletions {
        match std::fs::remove_file(path) {
            Ok(()) => {
                report.freed += len;
                if let Some(d) = path.parent() {
                    dirs.insert(d.to_owned());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete", path)(e)),
        }
    }
    for d in dirs {
        crate::atomic::sync_dir(&d).map_err(io_err("sync", &d))?;
    }
    report.freed = report.freed.saturating_sub(report.bytes_written);
    report.bytes_after =
        report.bytes_before - report.bytes_unused - report.bytes_repacked + report.bytes_written;
    report.unused_after = unused;
    Ok(report)
}

enum Item {
    New(PackRef),
    Removed(PackRef),
}

/// A pack's bytes beyond its chunks: header, trailer and footer.
fn overhead(chunks: usize) -> u64 {
    12 + 49 * chunks as u64 + 24
}

/// Files of `packs/`, `manifests/` and `tmp/` that no kept snapshot needs: path, size,
/// whether only forgotten snapshots named it (a manifest), and when it was modified.
#[allow(clippy::type_complexity)]
fn leftovers(
    vault: &Vault,
    packs: &HashSet<Hash>,
    kept: &HashSet<Hash>,
    forgotten: &HashSet<Hash>,
) -> Result<Vec<(PathBuf, u64, bool, SystemTime)>, VaultError> {
    let mut out = Vec::new();
    let stat = |path: &Path| -> Option<(u64, SystemTime)> {
        let m = std::fs::symlink_metadata(path).ok()?;
        m.file_type()
            .is_file()
            .then(|| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
    };
    let list = |dir: &Path| -> Result<Vec<PathBuf>, VaultError> {
        match std::fs::read_dir(dir) {
            Ok(rd) => Ok(rd.flatten().map(|e| e.path()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io_err("list", dir)(e)),
        }
    };
    let named_hash = |path: &Path, ext: &str| -> Option<Hash> {
        let name = path.file_name()?.to_str()?;
        Hash::from_hex(name.strip_suffix(ext)?)
    };
    for sub in list(&vault.root().join("packs"))? {
        if !sub.is_dir() {
            continue;
        }
        for path in list(&sub)? {
            if named_hash(&path, ".pack").is_some_and(|h| packs.contains(&h)) {
                continue;
            }
            if let Some((len, t)) = stat(&path) {
                out.push((path, len, false, t));
            }
        }
    }
    for path in list(&vault.root().join("manifests"))? {
        let h = named_hash(&path, ".json");
        if h.is_some_and(|h| kept.contains(&h)) {
            continue;
        }
        if let Some((len, t)) = stat(&path) {
            out.push((path, len, h.is_some_and(|h| forgotten.contains(&h)), t));
        }
    }
    for path in list(&vault.tmp_dir())? {
        if let Some((len, t)) = stat(&path) {
            out.push((path, len, false, t));
        }
    }
    Ok(out)
}
