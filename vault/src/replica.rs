//! Replicas: a whole copy of the vault on other storage (removable media today), written
//! so that a kill at any moment leaves a replica that is an older state of the vault or
//! the new one, never a mix a verifier would take for whole: the data first (packs, then
//! manifests), then the log (bundles, loose entries, tiles, witnessed checkpoints), the
//! signed checkpoint last. Only what is missing is written; every file written is read
//! back and compared.

use std::collections::{BTreeSet, HashMap};

use crate::error::VaultError;
use crate::hash::Hash;
use crate::history::History;
use crate::repository::{Trust, Vault};
use crate::storage::Storage;

/// The file in a replica's root naming the medium: `plcvault replica`, `id <32 hex>`,
/// `created <RFC 3339>`. Each disk of a rotation has its own.
pub const REPLICA_FILE: &str = "REPLICA";

/// What a copy did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CopyReport {
    /// The medium's id (its `REPLICA` file), and whether this copy created the replica.
    pub disk: String,
    pub new_replica: bool,
    /// The replica's log now: entries 1 to `size`, the newest's hash, the checkpoint's root.
    pub size: u64,
    pub head: Hash,
    pub root: Hash,
    /// The replica's log before this copy.
    pub from_size: u64,
    /// Files written (and read back), and their bytes; files already there.
    pub written: u64,
    pub bytes: u64,
    pub present: u64,
    /// The bytes of every file the replica holds for this state.
    pub total_bytes: u64,
    /// Packs and manifests deleted from the replica because the vault's log no longer
    /// needs them (pruned, or only forgotten snapshots named them), and their bytes.
    pub removed: u64,
    pub removed_bytes: u64,
}

fn refused(msg: String) -> VaultError {
    VaultError::Refused(msg)
}

fn io(target: &dyn Storage, what: &str) -> impl Fn(std::io::Error) -> VaultError {
    let place = format!("{} on {}", what, target.describe());
    move |e| {
        refused(format!(
            "cannot write {place}: {e}\nfix: check the medium (mounted, writable, space left), then copy again; what was copied stays valid"
        ))
    }
}

/// The id in a `REPLICA` file.
fn disk_id(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    (lines.next()? == "plcvault replica").then_some(())?;
    lines
        .find_map(|l| l.strip_prefix("id "))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

/// The vault id in a `VAULT` marker.
fn vault_id(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .map(str::to_string)
}

/// Writes or updates on `target` a replica of `vault` as of its signed checkpoint.
/// `history` names the packs and manifests the log needs; `check` re-reads every file the
/// replica already holds and compares it with the vault's (else a file of the right size
/// is taken as there: content-addressed files and log files never change).
///
/// Fails when the vault's checkpoint is not trusted, the target holds another vault or
/// a log this vault does not extend (a fork, or a newer state: the vault was rolled back),
/// a vault file does not match its name, or the target cannot be written or read back.
pub fn copy(
    vault: &Vault,
    trust: &Trust,
    history: &History,
    target: &(dyn Storage + Sync),
    check: bool,
) -> Result<CopyReport, VaultError> {
    let root = vault.root();
    let src = crate::storage::LocalDir::new(root);
    let (cp, note) = crate::tiles::trusted_checkpoint(root, vault.id(), &trust.writers())
        .map_err(|why| {
            refused(format!(
                "refusing to copy: {why}\nfix: run `plcvault verify`; a copy is made of a verified vault"
            ))
        })?;
    let n = cp.size;
    if n == 0 {
        return Err(refused(
            "refusing to copy: the vault's log is empty\nfix: collect first".into(),
        ));
    }
    let place = target.describe();
    // The marker: a new replica gets the vault's; an existing one must be of this vault.
    let marker = src
        .read("VAULT", 4096)
        .map_err(crate::error::io_err("read", &root.join("VAULT")))?
        .unwrap_or_default();
    let theirs = target.read("VAULT", 4096).map_err(|e| {
        refused(format!(
            "cannot read VAULT on {place}: {e}\nfix: check the medium"
        ))
    })?;
    let new_replica = theirs.is_none();
    match &theirs {
        None => {
            let listed = target
                .list("")
                .map_err(|e| refused(format!("cannot list {place}: {e}\nfix: check the medium")))?;
            // A first copy killed before its marker leaves only these behind.
            if listed
                .iter()
                .any(|(p, _)| p != REPLICA_FILE && !p.starts_with("tmp/"))
            {
                return Err(refused(format!(
                    "{place} is not empty and holds no vault\nfix: copy to an empty folder, or to a replica of this vault"
                )));
            }
        }
        Some(b) if vault_id(b).as_deref() != Some(vault.id()) => {
            return Err(refused(format!(
                "{place} holds a replica of another vault ({})\nfix: use another medium for this vault, or the one that holds its replica",
                vault_id(b).unwrap_or_else(|| "a damaged VAULT marker".into())
            )));
        }
        Some(_) => {}
    }
    if new_replica {
        // The marker first: from here on the folder is a replica of this vault.
        target
            .write_exclusive("VAULT", &marker)
            .map_err(io(target, "VAULT"))?;
    }
    // The medium's own id.
    let disk = match target
        .read(REPLICA_FILE, 4096)
        .map_err(|e| refused(format!("cannot read {REPLICA_FILE} on {place}: {e}")))?
    {
        Some(b) => disk_id(&b).ok_or_else(|| {
            refused(format!(
                "{REPLICA_FILE} on {place} is damaged\nfix: put it back from the report's list of disks (`plcvault report` shows each disk's id), or copy to a new medium"
            ))
        })?,
        None => {
            let mut id = [0u8; 16];
            getrandom::fill(&mut id).map_err(|e| refused(format!("no randomness: {e}")))?;
            let id = crate::hash::hex(&id);
            let text = format!(
                "plcvault replica\nid {id}\ncreated {}\n",
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            );
            target
                .write_exclusive(REPLICA_FILE, text.as_bytes())
                .map_err(io(target, REPLICA_FILE))?;
            id
        }
    };
    // The replica's log must be an older state of this one.
    let tiles = crate::tiles::Tiles::of(root);
    let from_size = match target
        .read("tlog/checkpoint", crate::tiles::MAX_CHECKPOINT)
        .map_err(|e| refused(format!("cannot read the checkpoint on {place}: {e}")))?
    {
        None => 0,
        Some(b) => {
            let old = crate::tiles::open(&String::from_utf8_lossy(&b), vault.id(), &[])
                .map_err(|e| {
                    refused(format!(
                        "the checkpoint on {place} is damaged ({e})\nfix: copy to a new medium; this one's log cannot be trusted"
                    ))
                })?
                .checkpoint;
            if old.size > n {
                return Err(refused(format!(
                    "the replica on {place} holds {} log entries, the vault only {n}: the vault was rolled back or cut since that copy\nfix: run `plcvault verify`; the replica may be the better copy",
                    old.size
                )));
            }
            let ours = crate::tlog::tree_hash(&tiles, old.size).map_err(refused)?;
            if old.size > 0 && ours != old.root {
                return Err(refused(format!(
                    "the replica on {place} holds a log of {} entries that this vault does not extend (another root): one of them was forked or rewritten\nfix: run `plcvault verify` on both; never copy over it",
                    old.size
                )));
            }
            old.size
        }
    };

    let mut report = CopyReport {
        disk,
        new_replica,
        size: n,
        head: Hash([0; 32]),
        root: cp.root,
        from_size,
        written: 0,
        bytes: 0,
        present: 0,
        total_bytes: 0,
        removed: 0,
        removed_bytes: 0,
    };
    if !new_replica && theirs.as_deref() != Some(&marker[..]) {
        // The vault's marker moved on (format 2): the replica's follows.
        target
            .write_replace("VAULT", &marker)
            .map_err(io(target, "VAULT"))?;
    }
    let mut sizes: HashMap<String, u64> = HashMap::new();
    for prefix in ["packs", "manifests", "log", "tlog"] {
        for (p, s) in target
            .list(prefix)
            .map_err(|e| refused(format!("cannot list {prefix} on {place}: {e}")))?
        {
            sizes.insert(p, s);
        }
    }
    // A file of the right size is taken as there, unless it holds log entries the
    // replica's checkpoint does not cover (`last`: the newest entry it holds), which are
    // compared byte for byte: a fork's entry may well have the same size.
    // Whether `rel` is taken as there (`Some(size)`), else whether it is new.
    let present = |rel: &str, last: u64| -> Result<Option<u64>, bool> {
        let there = sizes.get(rel).copied();
        let src_size = std::fs::metadata(root.join(rel)).map(|m| m.len()).ok();
        if !check && there.is_some() && there == src_size && last <= from_size {
            Ok(there)
        } else {
            Err(there.is_none())
        }
    };
    let copy_with = |rel: String, named: Option<Hash>, last: u64, report: &mut CopyReport| {
        let mut t = Tally::default();
        match present(&rel, last) {
            Ok(size) => {
                t.present += 1;
                t.total_bytes += size.unwrap_or(0);
            }
            Err(new) => put(&src, target, &rel, named, &mut t, new)?,
        }
        t.add_to(report);
        Ok::<(), VaultError>(())
    };
    let copy_one = |rel: String, named: Option<Hash>, report: &mut CopyReport| {
        copy_with(rel, named, 0, report)
    };
    // Data first: every pack the log names, every manifest a trusted entry names.
    let mut packs = BTreeSet::new();
    for p in history.packs_for_reading() {
        packs.insert(p.id);
    }
    // Packs, the bulk of the bytes, several at a time (an object store answers each
    // request after a round trip; a disk does not mind).
    let mut to_put = Vec::new();
    for id in &packs {
        let rel = format!("packs/{}/{id}.pack", &id.to_hex()[..2]);
        match present(&rel, 0) {
            Ok(size) => Tally {
                present: 1,
                total_bytes: size.unwrap_or(0),
                ..Tally::default()
            }
            .add_to(&mut report),
            Err(new) => to_put.push((rel, *id, new)),
        }
    }
    let results = crate::parallel::map_with(
        &to_put,
        PUTS_AT_ONCE,
        || (),
        |_, (rel, id, new)| {
            let mut t = Tally::default();
            put(&src, target, rel, Some(*id), &mut t, *new).map(|()| t)
        },
    );
    for r in results {
        r?.add_to(&mut report);
    }
    let mut manifests = BTreeSet::new();
    for s in history.snapshots() {
        manifests.insert(s.manifest);
    }
    // Approved snapshots' manifests are kept snapshots' (forget keeps the baseline); an
    // older approval's may have been pruned with its forgotten snapshot.
    for a in history.approvals(None) {
        if root.join(format!("manifests/{}.json", a.manifest)).exists() {
            manifests.insert(a.manifest);
        }
    }
    for m in &manifests {
        let rel = format!("manifests/{m}.json");
        if root.join(&rel).exists() {
            copy_one(rel, Some(*m), &mut report)?;
        }
    }
    // Then the log up to the checkpoint: full bundles, loose entries, the tree's tiles and
    // the witnessed checkpoints.
    let (groups, _) = crate::log::list_bundles(root)?;
    let bundled: BTreeSet<u64> = groups
        .into_iter()
        .filter(|g| (g + 1) * crate::log::BUNDLE <= n)
        .collect();
    for g in &bundled {
        copy_with(
            rel_of(root, &crate::log::bundle_path(root, *g)),
            None,
            (g + 1) * crate::log::BUNDLE,
            &mut report,
        )?;
    }
    let mut late = BTreeSet::new();
    for seq in 1..=n {
        let g = (seq - 1) / crate::log::BUNDLE;
        if bundled.contains(&g) || late.contains(&g) {
            continue;
        }
        let path = crate::log::entry_path(root, seq);
        if !path.exists() && crate::log::bundle_path(root, g).exists() {
            // Bundled by a writer since the listing: the bundle instead.
            copy_with(
                rel_of(root, &crate::log::bundle_path(root, g)),
                None,
                (g + 1) * crate::log::BUNDLE,
                &mut report,
            )?;
            late.insert(g);
            continue;
        }
        copy_with(rel_of(root, &path), None, seq, &mut report)?;
    }
    let bundled: BTreeSet<u64> = bundled.union(&late).copied().collect();
    for prefix in ["tlog/tile", "tlog/witnessed"] {
        for (rel, _) in src
            .list(prefix)
            .map_err(crate::error::io_err("list", &root.join(prefix)))?
        {
            if !rel.starts_with("tlog/tile/entries/") {
                copy_one(rel, None, &mut report)?;
            }
        }
    }
    // The replica's tree gives the checkpoint's root before the checkpoint is written.
    if let Some(local) = target.local_root() {
        let got = crate::tlog::tree_hash(&crate::tiles::Tiles::of(local), n);
        if got.as_ref() != Ok(&cp.root) {
            return Err(refused(format!(
                "the tiles written to {place} do not give the checkpoint's root\nfix: run `plcvault copy --check` to read every file of the replica again"
            )));
        }
    }
    // The signed checkpoint last: from here on the replica is the vault as of entry n.
    target
        .write_replace("tlog/checkpoint", note.as_bytes())
        .map_err(io(target, "tlog/checkpoint"))?;
    if target
        .read("tlog/checkpoint", crate::tiles::MAX_CHECKPOINT)
        .ok()
        .flatten()
        .as_deref()
        != Some(note.as_bytes())
    {
        return Err(refused(format!(
            "the checkpoint read back from {place} is not the one written\nfix: check the medium"
        )));
    }
    report.total_bytes += note.len() as u64;
    // Loose entries the replica holds that a bundle now holds go (the bundle was read back).
    for g in &bundled {
        for seq in g * crate::log::BUNDLE + 1..=(g + 1) * crate::log::BUNDLE {
            let rel = rel_of(root, &crate::log::entry_path(root, seq));
            if sizes.contains_key(&rel) {
                target.delete(&rel).map_err(io(target, &rel))?;
            }
        }
    }
    // Packs prune removed and manifests only forgotten snapshots named go too, once the
    // replica's checkpoint holds every entry the history was read from (else its log may
    // still name them).
    if history.summary.size <= n {
        for (rel, size) in &sizes {
            let stale = match rel.split('/').collect::<Vec<_>>()[..] {
                ["packs", _, name] => name
                    .strip_suffix(".pack")
                    .and_then(Hash::from_hex)
                    .is_some_and(|h| !packs.contains(&h)),
                ["manifests", name] => name
                    .strip_suffix(".json")
                    .and_then(Hash::from_hex)
                    .is_some_and(|h| !manifests.contains(&h)),
                _ => false,
            };
            if stale {
                target.delete(rel).map_err(io(target, rel))?;
                report.removed += 1;
                report.removed_bytes += size;
            }
        }
    }
    let (bytes, _, _) = crate::log::Reader::new(root).read(n)?;
    report.head = Hash::of(&bytes);
    Ok(report)
}

fn rel_of(root: &std::path::Path, path: &std::path::Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Copies one file of the vault to the target and reads it back: a content-addressed
/// file (`named`) must hash to its name on both sides.
/// Packs copied at the same time.
const PUTS_AT_ONCE: usize = 4;

/// What copying some files did.
#[derive(Default)]
struct Tally {
    present: u64,
    written: u64,
    bytes: u64,
    total_bytes: u64,
}

impl Tally {
    fn add_to(&self, r: &mut CopyReport) {
        r.present += self.present;
        r.written += self.written;
        r.bytes += self.bytes;
        r.total_bytes += self.total_bytes;
    }
}

fn put(
    src: &crate::storage::LocalDir,
    target: &dyn Storage,
    rel: &str,
    named: Option<Hash>,
    report: &mut Tally,
    new: bool,
) -> Result<(), VaultError> {
    let max = crate::pack::MAX_PACK_SIZE.max(crate::manifest::MAX_MANIFEST_SIZE);
    let path = src.root().join(rel);
    let bytes = src
        .read(rel, max)
        .map_err(crate::error::io_err("read", &path))?
        .ok_or_else(|| {
            refused(format!(
                "{} disappeared while copying\nfix: copy again",
                path.display()
            ))
        })?;
    if named.is_some_and(|h| Hash::of(&bytes) != h) {
        return Err(crate::error::corrupt(
            &path,
            "its SHA-256 is not its name; it was not copied",
        ));
    }
    let written = if new {
        target
            .write_exclusive(rel, &bytes)
            .map_err(io(target, rel))?
    } else {
        false
    };
    let same = |t: &dyn Storage| t.read(rel, max).ok().flatten().is_some_and(|b| b == bytes);
    if !written {
        // There already: replaced only when it differs (a damaged or cut copy) — never a
        // log entry, which would be another history (a fork kept as evidence).
        if same(target) {
            report.present += 1;
            report.total_bytes += bytes.len() as u64;
            return Ok(());
        }
        if named.is_none() && (rel.starts_with("log/") || rel.starts_with("tlog/tile/entries/")) {
            return Err(refused(format!(
                "{rel} on {} is not this vault's: the replica holds another history (a fork?)\nfix: never copy over it; keep it for the investigation and copy to another medium",
                target.describe()
            )));
        }
        target.write_replace(rel, &bytes).map_err(io(target, rel))?;
    }
    if !target.holds(rel, &bytes) {
        return Err(refused(format!(
            "{rel} read back from {} is not what was written\nfix: check the medium; copy again",
            target.describe()
        )));
    }
    report.written += 1;
    report.bytes += bytes.len() as u64;
    report.total_bytes += bytes.len() as u64;
    Ok(())
}
