//! The verifier's catalog of a vault's log: the log folded (per device: latest snapshot,
//! baseline, drills, failures, and every record in a file of its own) and kept in the
//! state folder, outside the vault, at the size of a signed checkpoint whose root it
//! reproduced. A command then reads and checks only the entries after it, and folds
//! them in: O(devices + new entries), not O(history).
//!
//! The catalog is derived and never trusted on its own. It is saved only when the tree of
//! the entries it folded gives the root of the vault's signed checkpoint of that size, and
//! a later opening folds the entries since onto its compact range of that tree: unless
//! that reproduces the root of the current signed checkpoint (so the vault's log extends
//! what was folded), it is rebuilt from the entries. An edited summary fails its digest, an
//! edited record file its running digest, and both are rebuilt.
//!
//! Layout: `<state>/<vault id>.catalog/summary` (one line of JSON, then the SHA-256 of that
//! line in hex) and `<state>/<vault id>.catalog/<32 hex>.records` per device (JSON lines).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{VaultError, io_err};
use crate::hash::Hash;
use crate::history::{FileStat, History, Store, Summary};
use crate::repository::{Trust, Vault};

/// The catalog's format.
pub const VERSION: u32 = 4;

/// The largest summary a reader reads.
const MAX_SUMMARY: u64 = 512 * 1024 * 1024;

/// The catalog folder of a vault in a state folder.
pub fn dir(state_dir: &Path, vault_id: &str) -> PathBuf {
    state_dir.join(format!("{vault_id}.catalog"))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    v: u32,
    /// The SHA-256 of the trusted keys (name, role, key) the entries were checked with:
    /// another set of keys trusts other entries, so the catalog is rebuilt.
    trust: Hash,
    summary: Summary,
}

/// A digest of the trusted keys, names and roles.
fn trust_digest(trust: &Trust) -> Hash {
    let mut keys: Vec<String> = trust
        .keys
        .iter()
        .map(|k| format!("{}\n{}\n{}\n", k.name, k.role, k.key.to_hex()))
        .collect();
    keys.sort();
    Hash::of(keys.concat().as_bytes())
}

/// The saved summary, if there is one and it is whole and of this vault.
fn load(dir: &Path, vault_id: &str, trust: &Hash) -> Option<Summary> {
    let bytes = crate::fsread::read_regular(&dir.join("summary"), MAX_SUMMARY).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (body, digest) = text.strip_suffix('\n')?.rsplit_once('\n')?;
    if Hash::of(body.as_bytes()).to_hex() != digest {
        return None;
    }
    let saved: Saved = serde_json::from_str(body).ok()?;
    (saved.v == VERSION && saved.summary.vault == vault_id && saved.trust == *trust)
        .then_some(saved.summary)
}

/// Saves the summary (records are written before it).
fn save(dir: &Path, summary: &Summary, trust: Hash) -> Result<(), VaultError> {
    let body = serde_json::to_string(&Saved {
        v: VERSION,
        trust,
        summary: summary.clone(),
    })
    .expect("summaries serialize");
    let text = format!("{body}\n{}\n", Hash::of(body.as_bytes()).to_hex());
    let path = dir.join("summary");
    crate::atomic::write_replace_derived(dir, &path, text.as_bytes())
        .map_err(io_err("write", &path))
}

/// Marks the catalog as not to be used: the next opening rebuilds it.
pub fn discard(state_dir: &Path, vault_id: &str) {
    let _ = fs::remove_file(dir(state_dir, vault_id).join("summary"));
}

/// Empties the catalog folder for a rebuild.
fn clear(dir: &Path) -> Result<(), VaultError> {
    if let Ok(rd) = fs::read_dir(dir) {
        for item in rd.flatten() {
            let name = item.file_name();
            if name.to_string_lossy().ends_with(".records") || name == "summary" {
                let p = item.path();
                fs::remove_file(&p).map_err(io_err("remove", &p))?;
            }
        }
    }
    Ok(())
}

/// The checked log, from the catalog in `state_dir` and the entries after it; the catalog
/// is brought up to the vault's signed checkpoint and saved. Without a state folder, a
/// writable catalog folder or a trusted checkpoint (a vault from before log v2, or one
/// verify reports), every entry is read (`History::load`).
///
/// Fails when the log or the catalog cannot be read (I/O error); damage to the log is in
/// the history's findings.
pub fn open(vault: &Vault, trust: &Trust, state_dir: Option<&Path>) -> Result<History, VaultError> {
    open_as(vault, trust, state_dir, Want::New)
}

/// Which entries a reading must hold checked (`History::entries`, `leaves`, `times`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Those after the catalog (none when it is rebuilt): for commands.
    New,
    /// Those after this entry number: for a verifier that verified up to it.
    Since(u64),
    /// Rebuild the catalog from every entry, holding only the times of all: for
    /// `verify --full`.
    Rebuild,
}

/// `open`, holding the entries `want` asks for.
///
/// Fails as `open` does.
pub fn open_as(
    vault: &Vault,
    trust: &Trust,
    state_dir: Option<&Path>,
    want: Want,
) -> Result<History, VaultError> {
    let Some(state) = state_dir else {
        return History::load(vault, trust);
    };
    let Ok((cp, _)) = crate::tiles::trusted_checkpoint(vault.root(), vault.id(), &trust.writers())
    else {
        return History::load(vault, trust);
    };
    let dir = dir(state, vault.id());
    if fs::create_dir_all(&dir).is_err() {
        return History::load(vault, trust);
    }
    // A lock that cannot be taken (not a regular file, a folder that cannot be
    // written): every entry is read instead, never a hang.
    let Ok(lock) = crate::fsread::open_lock(&dir.join("lock")) else {
        return History::load(vault, trust);
    };
    lock.lock().map_err(io_err("lock", &dir.join("lock")))?;

    let digest = trust_digest(trust);
    // The files the entries are read from, before they are read: what the catalog saves
    // is what was there when folding began, and only if it is still there after.
    let before = stat_files(vault.root(), cp.size)?;
    let saved = load(&dir, vault.id(), &digest)
        .filter(|_| want != Want::Rebuild)
        .filter(|s| {
            s.size <= cp.size && records_whole(&dir, s) && files_unchanged(vault.root(), s)
        });
    let resumed = saved.is_some();
    let fold = |summary: Summary| -> Result<History, VaultError> {
        let keep = match (want, summary.size) {
            (Want::Since(m), size) => m.max(size),
            (_, 0) => u64::MAX,
            (_, size) => size,
        };
        let mut h = History::start(summary, Store::Dir(dir.clone(), Default::default()), keep);
        h.fold_log(vault, trust, Some(cp.size))?;
        Ok(h)
    };
    let matches = |h: &History| {
        h.summary.size == cp.size && h.summary.leaves == cp.size && h.summary.root() == cp.root
    };
    let mut h = match saved {
        Some(s) => fold(s)?,
        None => {
            clear(&dir)?;
            fold(Summary::new(vault.id()))?
        }
    };
    if !matches(&h) && resumed {
        // The log does not extend what the catalog folded (rewritten, forked, or the
        // catalog edited): start over from the entries.
        clear(&dir)?;
        h = fold(Summary::new(vault.id()))?;
    }
    if !matches(&h) {
        // The log itself does not give its checkpoint's root: verify reports it; read it
        // all, keep nothing.
        clear(&dir)?;
        drop(lock);
        return History::load(vault, trust);
    }
    h.flush()?;
    if stat_files(vault.root(), cp.size)? == before {
        h.summary.files = before;
        save(&dir, &h.summary, digest)?;
    } else {
        // A writer moved entries meanwhile: saved next time.
        discard(state, vault.id());
    }
    drop(lock);
    h.rebuilt = h.since == 0;
    h.matched = Some((cp.size, cp.root));
    if let Want::Since(m) = want
        && m < h.since
    {
        h.recheck(vault, trust, m, h.since)?;
    }
    // Entries after the checkpoint (a write whose tree update has not run yet): folded,
    // never saved.
    h.freeze();
    h.fold_log(vault, trust, None)?;
    h.finish();
    Ok(h)
}

/// Every device's record file is at least as long as the summary says (a file cut short
/// or removed means the catalog is damaged).
fn records_whole(dir: &Path, s: &Summary) -> bool {
    s.devices.iter().all(|(name, d)| {
        d.records.count == 0
            || fs::metadata(crate::history::record_path(dir, name))
                .is_ok_and(|m| m.len() >= d.records.bytes)
    })
}

fn stat(root: &Path, rel: &str) -> Option<FileStat> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(root.join(rel)).ok()?;
    Some(FileStat {
        path: rel.to_string(),
        len: m.len(),
        ino: m.ino(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        hash: None,
    })
}

/// The files entries 1 to `size` are read from: bundles, and loose entry files with the
/// hash of their bytes.
///
/// Fails when the log cannot be listed.
fn stat_files(root: &Path, size: u64) -> Result<Vec<FileStat>, VaultError> {
    let mut out = Vec::new();
    let (groups, _) = crate::log::list_bundles(root)?;
    for g in groups
        .into_iter()
        .filter(|g| (g + 1) * crate::log::BUNDLE <= size)
    {
        let rel = format!("tlog/tile/entries/{}", crate::tlog::index_path(g));
        out.extend(stat(root, &rel));
    }
    let (loose, _) = crate::log::list_loose(root)?;
    for seq in loose.into_iter().filter(|s| *s <= size) {
        let rel = format!("log/{seq:020}.entry");
        if let Some(mut st) = stat(root, &rel) {
            st.hash = crate::log::read_loose(root, seq)
                .ok()
                .map(|(b, _)| Hash::of(&b));
            out.push(st);
        }
    }
    Ok(out)
}

/// Every file the catalog's entries were read from is as it was, or is a loose entry now
/// in a bundle byte for byte: an entry changed in place (a flipped bit, an edit, a file put
/// back) makes the catalog rebuilt, so its damage is found.
fn files_unchanged(root: &Path, s: &Summary) -> bool {
    let mut reader = crate::log::Reader::new(root);
    s.files.iter().all(|f| {
        let seq = f
            .path
            .strip_prefix("log/")
            .and_then(|n| n.strip_suffix(".entry"))
            .and_then(|n| n.parse::<u64>().ok());
        // A loose entry a bundle now holds is read from the bundle: it must be the bytes
        // recorded, whatever happened to the loose file.
        if let (Some(seq), Some(hash)) = (seq, f.hash)
            && fs::symlink_metadata(crate::log::bundle_path(
                root,
                (seq - 1) / crate::log::BUNDLE,
            ))
            .is_ok()
        {
            return reader.read(seq).is_ok_and(|(b, _, _)| Hash::of(&b) == hash);
        }
        stat(root, &f.path).is_some_and(|st| FileStat { hash: f.hash, ..st } == *f)
    })
}
