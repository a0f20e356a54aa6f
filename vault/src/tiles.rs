//! The Merkle tree of the log stored as static tiles in the C2SP `tlog-tiles` layout, and
//! its signed checkpoint in the C2SP `tlog-checkpoint` / `signed-note` format, under
//! `tlog/` in the vault:
//!
//! - `tlog/tile/<L>/<N>` holds the 256 hashes (32 bytes each) of tree level `8·L`, nodes
//!   `256·N … 256·N + 255`; the right edge of each level is a partial tile
//!   `tlog/tile/<L>/<N>.p/<W>` of `W` hashes. `N` is written in groups of three digits,
//!   all but the last prefixed with `x` (`1234067` → `x001/x234/067`).
//! - `tlog/checkpoint` is a signed note: `ORIGIN\nSIZE\nBASE64(ROOT)\n\n` then one line
//!   `— NAME BASE64(KEYID ‖ SIGNATURE)\n` per signer, where the Ed25519 signature covers
//!   the text up to and including the blank line's first newline, and KEYID is the first
//!   four bytes of SHA-256(NAME ‖ 0x0A ‖ 0x01 ‖ PUBLIC KEY).
//!
//! Tiles and checkpoint are derived from the log entries and authenticated by the
//! checkpoint's signature; a reader never trusts them without it, and verify recomputes
//! them from the entries.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic;
use crate::hash::Hash;
use crate::key::{PublicKey, SecretKey};
use crate::tlog::{Subtrees, node_hash};

/// Hashes per full tile, and the tree levels a tile spans.
pub const WIDTH: u64 = 256;
pub const HEIGHT: u32 = 8;

/// The largest checkpoint a reader reads.
pub const MAX_CHECKPOINT: u64 = 64 * 1024;

pub use crate::tlog::index_path;

/// The tiles of a vault's log.
pub struct Tiles {
    dir: PathBuf,
}

impl Tiles {
    /// The tiles under `root/tlog`.
    pub fn of(root: &Path) -> Tiles {
        Tiles {
            dir: root.join("tlog"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of tile `(level, index)` holding `width` hashes.
    pub fn path(&self, level: u32, index: u64, width: u64) -> PathBuf {
        let base = self.dir.join(format!("tile/{level}/{}", index_path(index)));
        if width == WIDTH {
            base
        } else {
            PathBuf::from(format!("{}.p/{width}", base.display()))
        }
    }

    /// The hashes of tile `(level, index)`, at least `need` of them: the full tile, else
    /// the widest partial one.
    ///
    /// Fails when no stored tile holds that many, or one is malformed.
    pub fn read(&self, level: u32, index: u64, need: u64) -> Result<Vec<Hash>, String> {
        // A writer replaces a partial tile by a wider one and then removes the narrower:
        // a tile listed but gone by the time it is opened is looked for again.
        let mut last = String::new();
        for _ in 0..3 {
            match self.read_once(level, index, need) {
                Ok(t) => return Ok(t),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn read_once(&self, level: u32, index: u64, need: u64) -> Result<Vec<Hash>, String> {
        let full = self.path(level, index, WIDTH);
        let mut candidates = vec![(WIDTH, full.clone())];
        let partial = PathBuf::from(format!("{}.p", full.display()));
        if let Ok(rd) = fs::read_dir(&partial) {
            let mut widths: Vec<u64> = rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|w| (1..WIDTH).contains(w))
                .collect();
            widths.sort_unstable_by(|a, b| b.cmp(a));
            candidates.extend(widths.into_iter().map(|w| (w, partial.join(w.to_string()))));
        }
        for (w, p) in candidates {
            if w < need {
                continue;
            }
            let Ok(bytes) = crate::fsread::read_regular(&p, WIDTH * 32) else {
                continue;
            };
            if bytes.len() as u64 != w * 32 {
                return Err(format!(
                    "{} holds {} bytes, not {}",
                    p.display(),
                    bytes.len(),
                    w * 32
                ));
            }
            return Ok(bytes
                .chunks_exact(32)
                .map(|c| Hash(c.try_into().expect("32 bytes")))
                .collect());
        }
        Err(format!(
            "no tile {level}/{} with {need} hashes",
            index_path(index)
        ))
    }

    /// Adds `leaves` to a tree of `size` leaves whose tiles are stored: writes every tile
    /// that changes (full tiles, and each level's new right edge), then removes the partial
    /// tiles they replace. Tiles of the old size stay readable until then.
    ///
    /// Fails when a tile of the old size is missing or a file cannot be written.
    pub fn extend(&self, size: u64, leaves: &[Hash], tmp: &Path) -> Result<(), String> {
        let mut nodes: Vec<Hash> = leaves.to_vec();
        let mut start = size;
        let mut level = 0u32;
        let mut replaced = Vec::new();
        while !nodes.is_empty() {
            let first = start / WIDTH;
            let have = start % WIDTH;
            let mut tile = if have == 0 {
                Vec::new()
            } else {
                let mut t = self.read(level, first, have)?;
                t.truncate(have as usize);
                replaced.push(self.path(level, first, have));
                t
            };
            let mut index = first;
            let mut above = Vec::new();
            for h in nodes {
                tile.push(h);
                if tile.len() as u64 == WIDTH {
                    self.write(level, index, &tile, tmp)?;
                    above.push(subtree_of(&tile));
                    tile.clear();
                    index += 1;
                }
            }
            if !tile.is_empty() {
                self.write(level, index, &tile, tmp)?;
            }
            nodes = above;
            start = first;
            level += 1;
        }
        for p in replaced {
            // A partial tile that a wider one replaced.
            let _ = fs::remove_file(p);
        }
        Ok(())
    }

    fn write(&self, level: u32, index: u64, hashes: &[Hash], tmp: &Path) -> Result<(), String> {
        let path = self.path(level, index, hashes.len() as u64);
        let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
        let parent = path.parent().expect("a tile has a folder");
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        atomic::write_replace_derived(tmp, &path, &bytes)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The root of a full tile's 256 hashes: the subtree 8 levels up.
fn subtree_of(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

impl Subtrees for Tiles {
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, String> {
        // Level k lives in tiles of level k / 8, as the subtree of 2^(k mod 8) hashes.
        let (tl, h) = (level / HEIGHT, level % HEIGHT);
        let first = index << h;
        let (tile, at) = (first / WIDTH, first % WIDTH);
        let count = 1u64 << h;
        let hashes = self.read(tl, tile, at + count)?;
        Ok(subtree_of(&hashes[at as usize..(at + count) as usize]))
    }
}

/// A checkpoint: the tree's size and root hash for a vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// The origin line of a vault's checkpoints.
pub fn origin(vault_id: &str) -> String {
    format!("plcvault/{vault_id}")
}

/// The name a key signs a vault's checkpoints under: the origin and the key's first 16
/// hex digits (a note's key name has no spaces).
pub fn key_name(vault_id: &str, key: &PublicKey) -> String {
    format!("{}/{}", origin(vault_id), &key.to_hex()[..16])
}

/// The note key id of `key` under `name`: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[..4].
pub fn key_id(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut m = name.as_bytes().to_vec();
    m.push(b'\n');
    m.push(1);
    m.extend_from_slice(&key.0);
    Hash::of(&m).0[..4].try_into().expect("4 bytes")
}

impl Checkpoint {
    /// The checkpoint's text (what is signed).
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, base64(&self.root.0))
    }

    /// The signed note: the text, a blank line and one signature by `key`.
    pub fn sign(&self, vault_id: &str, key: &SecretKey) -> String {
        let text = self.text();
        let public = key.public();
        let name = key_name(vault_id, &public);
        let mut sig = key_id(&name, &public).to_vec();
        sig.extend_from_slice(&key.sign(text.as_bytes()));
        format!("{text}\n\u{2014} {name} {}\n", base64(&sig))
    }
}

/// A signed checkpoint as read: its text's fields and the keys whose signature verifies.
#[derive(Clone, Debug)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The keys among those offered whose signature line verifies.
    pub signers: Vec<PublicKey>,
    /// Signature lines of keys not offered (witnesses, other tools), by name.
    pub others: Vec<String>,
}

/// Parses a signed note and checks its signatures against `keys` (the vault's trusted
/// keys, named as `key_name` names them).
///
/// Fails when the note is malformed; a signature that does not verify is no signer.
pub fn open(note: &str, vault_id: &str, keys: &[PublicKey]) -> Result<SignedCheckpoint, String> {
    let (text, sigs) = note
        .split_once("\n\n")
        .ok_or("the checkpoint has no blank line before its signatures")?;
    let text = format!("{text}\n");
    let mut lines = text.lines();
    let origin = lines
        .next()
        .ok_or("the checkpoint has no origin")?
        .to_string();
    let size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .filter(|_| true)
        .ok_or("the checkpoint's second line is not a tree size")?;
    let root = lines
        .next()
        .and_then(unbase64)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(Hash)
        .ok_or("the checkpoint's third line is not a base64 SHA-256 root")?;
    if !sigs.ends_with('\n') {
        return Err("the checkpoint's signature lines do not end with a newline".into());
    }
    let mut signers = Vec::new();
    let mut others = Vec::new();
    for line in sigs.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or("a checkpoint signature line does not start with an em dash")?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or("a checkpoint signature line has no signature")?;
        let sig = unbase64(b64).ok_or("a checkpoint signature is not base64")?;
        let known = keys.iter().find(|k| {
            key_name(vault_id, k) == name && sig.len() == 68 && sig[..4] == key_id(name, k)
        });
        match known {
            Some(k) => {
                let s: [u8; 64] = sig[4..].try_into().expect("64 bytes");
                // A key counts once, however many of its lines a note repeats.
                if k.verify(text.as_bytes(), &s) && !signers.contains(k) {
                    signers.push(*k);
                }
            }
            None => others.push(name.to_string()),
        }
    }
    Ok(SignedCheckpoint {
        checkpoint: Checkpoint { origin, size, root },
        signers,
        others,
    })
}

/// The checkpoint file of a vault.
pub fn checkpoint_path(root: &Path) -> PathBuf {
    root.join("tlog/checkpoint")
}

/// Reads a vault's checkpoint note; `None` when there is none (a vault before tiles).
pub fn read_checkpoint(root: &Path) -> io::Result<Option<String>> {
    match crate::fsread::read_regular(&checkpoint_path(root), MAX_CHECKPOINT) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| io::Error::other("the checkpoint is not UTF-8")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Brings tiles and checkpoint up to the log's entry `newest` and signs the checkpoint
/// with `key`, under a lock so that concurrent writers take turns. The checkpoint as
/// found gives the size the tiles have; tiles that do not give its root (a power cut, a
/// vault before tiles) are rebuilt from the entries, which are never changed.
///
/// Fails when the checkpoint covers more entries than the log has (the log was cut:
/// verify reports it; the checkpoint is not rewritten over it), or on I/O errors.
pub fn sync(root: &Path, vault_id: &str, key: &SecretKey, newest: u64) -> Result<(), String> {
    let tiles = Tiles::of(root);
    fs::create_dir_all(tiles.dir()).map_err(|e| format!("{}: {e}", tiles.dir().display()))?;
    let _lock = Lock::take(&tiles.dir().join("lock"))?;
    let tmp = root.join("tmp");
    let found = read_checkpoint(root)
        .ok()
        .flatten()
        .and_then(|n| open(&n, vault_id, &[]).ok())
        .map(|c| c.checkpoint);
    let mut size = match &found {
        Some(c) if c.size > newest => {
            return Err(format!(
                "the checkpoint covers {} entries, the log has {newest}",
                c.size
            ));
        }
        Some(c) if crate::tlog::tree_hash(&tiles, c.size).ok() == Some(c.root) => c.size,
        _ => 0,
    };
    if size == 0 {
        // The hash tiles are rebuilt; the entry bundles beside them are log entries and
        // are never removed here.
        if let Ok(rd) = fs::read_dir(tiles.dir().join("tile")) {
            for level in rd.flatten().filter(|e| e.file_name() != "entries") {
                let _ = fs::remove_dir_all(level.path());
            }
        }
    }
    // In steps, so that a first build of a long log holds few entries at a time.
    while size < newest {
        let upto = newest.min(size + 65_536);
        let mut leaves = Vec::with_capacity((upto - size) as usize);
        let mut reader = crate::log::Reader::new(root);
        for seq in size + 1..=upto {
            match reader.read_raw(seq) {
                Ok((b, None, _)) => leaves.push(crate::tlog::leaf_hash(&b)),
                // A gap or a malformed entry: the tree ends before it (verify reports it).
                _ => break,
            }
        }
        if leaves.is_empty() {
            break;
        }
        tiles.extend(size, &leaves, &tmp)?;
        size += leaves.len() as u64;
        if size < upto {
            break;
        }
    }
    let c = Checkpoint {
        origin: origin(vault_id),
        size,
        root: crate::tlog::tree_hash(&tiles, size)?,
    };
    atomic::write_replace_derived(
        &tmp,
        &checkpoint_path(root),
        c.sign(vault_id, key).as_bytes(),
    )
    .map_err(|e| format!("checkpoint: {e}"))?;
    // A marker put back to format 1 over a log with bundles is marked again.
    if crate::log::bundle_path(root, 0).exists() {
        crate::repository::mark_bundled(root).map_err(|e| e.to_string())?;
    }
    bundle(root, &tiles, size, &tmp)
}

/// Moves every full group of 256 loose entries that the tree covers, after the newest
/// bundle, into a bundle: written and synced, read back and checked entry by entry
/// against the tree's leaf hashes, and only then are the loose files removed. A group
/// holding an entry too long for a bundle (over 65,535 bytes) stays loose.
///
/// Fails on I/O errors; the loose entries stay then.
fn bundle(root: &Path, tiles: &Tiles, size: u64, tmp: &Path) -> Result<(), String> {
    use crate::log::{BUNDLE, MAX_BUNDLED_ENTRY, bundle_path, entry_path, read_loose};
    let err = |e: crate::error::VaultError| e.to_string();
    let (loose, _) = crate::log::list_loose(root).map_err(err)?;
    let Some(&first) = loose.first() else {
        return Ok(());
    };
    let mut group = (first - 1) / BUNDLE;
    while (group + 1) * BUNDLE <= size {
        let path = bundle_path(root, group);
        if path.exists() {
            // Loose copies a bundling cut short left behind go once they match.
            if let Ok(Ok(bundled)) =
                crate::fsread::read_regular(&path, 1 << 24).map(|b| crate::log::split_bundle(&b))
            {
                for (i, seq) in (group * BUNDLE + 1..=(group + 1) * BUNDLE).enumerate() {
                    if loose.binary_search(&seq).is_ok()
                        && read_loose(root, seq).is_ok_and(|(b, _)| b == bundled[i])
                    {
                        let _ = fs::remove_file(entry_path(root, seq));
                    }
                }
            }
            group += 1;
            continue;
        }
        let leaves = tiles.read(0, group, WIDTH)?;
        let mut entries = Vec::with_capacity(BUNDLE as usize);
        for (i, seq) in (group * BUNDLE + 1..=(group + 1) * BUNDLE).enumerate() {
            match read_loose(root, seq) {
                Ok((b, Ok(_)))
                    if b.len() <= MAX_BUNDLED_ENTRY && crate::tlog::leaf_hash(&b) == leaves[i] =>
                {
                    entries.push(b)
                }
                _ => break,
            }
        }
        if entries.len() as u64 == BUNDLE {
            // Releases that read only loose entries must refuse the vault from now on.
            crate::repository::mark_bundled(root).map_err(err)?;
            let bytes = crate::log::encode_bundle(&entries);
            atomic::write_replace(tmp, &path, &bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let back = crate::fsread::read_regular(&path, bytes.len() as u64)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if back != bytes {
                let _ = fs::remove_file(&path);
                return Err(format!("{}: read back differs", path.display()));
            }
            for seq in group * BUNDLE + 1..=(group + 1) * BUNDLE {
                let _ = fs::remove_file(entry_path(root, seq));
            }
            let _ = atomic::sync_dir(&root.join("log"));
        }
        group += 1;
    }
    Ok(())
}

/// An inclusion or consistency proof against the vault's signed checkpoint, as
/// `plcvault proof` prints it (hashes in hex; RFC 9162 order, from the leaf up).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Proof {
    /// `inclusion` or `consistency`.
    pub kind: &'static str,
    /// Inclusion: the entry number (from 1) and its leaf hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<Hash>,
    /// Consistency: the older tree's size and root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_root: Option<Hash>,
    /// The signed checkpoint's size and root.
    pub size: u64,
    pub root: Hash,
    pub proof: Vec<Hash>,
    /// The signed checkpoint the proof is against, as stored.
    pub checkpoint: String,
}

/// The vault's checkpoint, checked: signed by one of `keys`, for this vault, and its root
/// the root of the stored tiles.
///
/// Fails saying which of these does not hold.
pub fn trusted_checkpoint(
    root: &Path,
    vault_id: &str,
    keys: &[PublicKey],
) -> Result<(Checkpoint, String), String> {
    let note = read_checkpoint(root)
        .map_err(|e| format!("the checkpoint cannot be read: {e}"))?
        .ok_or("the vault has no signed checkpoint yet (the next write adds one)")?;
    let c = open(&note, vault_id, keys)?;
    if c.signers.is_empty() {
        return Err("the checkpoint is not signed by a trusted key: run `plcvault verify`".into());
    }
    if c.checkpoint.origin != origin(vault_id) {
        return Err(format!("the checkpoint is for {:?}", c.checkpoint.origin));
    }
    let t = Tiles::of(root);
    if crate::tlog::tree_hash(&t, c.checkpoint.size)? != c.checkpoint.root {
        return Err("the tiles do not give the checkpoint's root: run `plcvault verify`".into());
    }
    Ok((c.checkpoint, note))
}

/// The proof that log entry `entry` (from 1) is in the tree of the signed checkpoint,
/// checked before it is returned.
///
/// Fails when the checkpoint is not trusted, does not cover the entry, or the entry
/// cannot be read.
pub fn prove_inclusion(
    root: &Path,
    vault_id: &str,
    keys: &[PublicKey],
    entry: u64,
) -> Result<Proof, String> {
    let (c, note) = trusted_checkpoint(root, vault_id, keys)?;
    if entry == 0 || entry > c.size {
        return Err(format!(
            "entry {entry} is not in the signed checkpoint (entries 1 to {})",
            c.size
        ));
    }
    let (bytes, _, path) = crate::log::Reader::new(root)
        .read(entry)
        .map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        return Err(format!("{}: entry {entry} cannot be read", path.display()));
    }
    let leaf = crate::tlog::leaf_hash(&bytes);
    let t = Tiles::of(root);
    let proof = crate::tlog::inclusion_proof(&t, entry - 1, c.size)?;
    if !crate::tlog::check_inclusion(&leaf, entry - 1, c.size, &proof, &c.root) {
        return Err(format!(
            "entry {entry} is not the one the checkpoint covers: run `plcvault verify`"
        ));
    }
    Ok(Proof {
        kind: "inclusion",
        entry: Some(entry),
        leaf: Some(leaf),
        from: None,
        old_root: None,
        size: c.size,
        root: c.root,
        proof,
        checkpoint: note,
    })
}

/// The proof that the tree of the first `from` entries is a prefix of the signed
/// checkpoint's tree, with that older root.
///
/// Fails when the checkpoint is not trusted or `from` is not 1 to its size.
pub fn prove_consistency(
    root: &Path,
    vault_id: &str,
    keys: &[PublicKey],
    from: u64,
) -> Result<Proof, String> {
    let (c, note) = trusted_checkpoint(root, vault_id, keys)?;
    if from == 0 || from > c.size {
        return Err(format!(
            "no consistency proof from {from}: the signed checkpoint has {} entries",
            c.size
        ));
    }
    let t = Tiles::of(root);
    let old_root = crate::tlog::tree_hash(&t, from)?;
    let proof = crate::tlog::consistency_proof(&t, from, c.size)?;
    debug_assert!(crate::tlog::check_consistency(
        from, &old_root, c.size, &c.root, &proof
    ));
    Ok(Proof {
        kind: "consistency",
        entry: None,
        leaf: None,
        from: Some(from),
        old_root: Some(old_root),
        size: c.size,
        root: c.root,
        proof,
        checkpoint: note,
    })
}

/// The folder of witnessed checkpoints: `tlog/witnessed/<size, 20 digits>.checkpoint`,
/// the writer's checkpoint of that size with one more signature line per witness.
pub fn witnessed_dir(root: &Path) -> PathBuf {
    root.join("tlog/witnessed")
}

/// What a witness found when asked to cosign.
#[derive(Debug)]
pub enum CosignError {
    /// The checkpoint cannot be trusted or read (not signed by a writer, tiles damaged).
    Untrusted(String),
    /// The checkpoint cannot be true together with the one the witness cosigned before:
    /// a smaller tree, the same size with another root, or no consistency proof — the
    /// log was forked or rewritten.
    Fork(String),
    /// Writing the cosigned checkpoint failed.
    Io(String),
}

/// A witness's cosignature of the vault's current checkpoint: checks it (signed by one
/// of `writers`, the tiles give its root) and, when the witness cosigned one before
/// (`seen`, as it remembered it), that a consistency proof joins that one to it; then
/// adds its signature and stores the result under `tlog/witnessed/`. Returns the
/// cosigned note, for the witness to remember.
///
/// Fails with `Fork` when the two checkpoints cannot both be true.
pub fn cosign(
    root: &Path,
    vault_id: &str,
    writers: &[PublicKey],
    witness: &SecretKey,
    seen: Option<&str>,
) -> Result<(Checkpoint, String), CosignError> {
    let (c, note) = trusted_checkpoint(root, vault_id, writers).map_err(CosignError::Untrusted)?;
    if let Some(seen) = seen {
        let old = open(seen, vault_id, &[])
            .map_err(|e| {
                CosignError::Untrusted(format!(
                    "the checkpoint this witness remembered does not parse: {e}"
                ))
            })?
            .checkpoint;
        let t = Tiles::of(root);
        let joined = old.size <= c.size
            && crate::tlog::consistency_proof(&t, old.size.max(1), c.size).is_ok_and(|p| {
                old.size == 0
                    || crate::tlog::check_consistency(old.size, &old.root, c.size, &c.root, &p)
            });
        if !joined {
            return Err(CosignError::Fork(format!(
                "the checkpoint of {} entries (root {}) cannot be true together with the one of {} entries (root {}) this witness cosigned before: the log was forked or rewritten",
                c.size,
                c.root.to_hex(),
                old.size,
                old.root.to_hex()
            )));
        }
    }
    let public = witness.public();
    let name = key_name(vault_id, &public);
    let mut sig = key_id(&name, &public).to_vec();
    sig.extend_from_slice(&witness.sign(c.text().as_bytes()));
    let line = format!("\u{2014} {name} {}\n", base64(&sig));
    // Another witness may have cosigned this size already: its line stays.
    let path = witnessed_dir(root).join(format!("{:020}.checkpoint", c.size));
    let base = match fs::read_to_string(&path) {
        Ok(existing) if existing.starts_with(&c.text()) => existing,
        _ => note.clone(),
    };
    let cosigned = if base.contains(&format!("\u{2014} {name} ")) {
        base
    } else {
        format!("{base}{line}")
    };
    fs::create_dir_all(witnessed_dir(root)).map_err(|e| CosignError::Io(e.to_string()))?;
    atomic::write_replace(&root.join("tmp"), &path, cosigned.as_bytes())
        .map_err(|e| CosignError::Io(format!("{}: {e}", path.display())))?;
    Ok((c, format!("{note}{line}")))
}

/// An exclusive lock on a file (`flock`), released when dropped.
struct Lock {
    _file: fs::File,
}

impl Lock {
    fn take(path: &Path) -> Result<Lock, String> {
        let f = crate::fsread::open_lock(path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.lock().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Lock { _file: f })
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Standard base64 with padding; `None` for anything else.
pub fn unbase64(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| B64.iter().position(|&x| x == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    for (i, q) in b.chunks(4).enumerate() {
        let last = i == b.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    // One spelling only: the unused bits of the last symbol are zero.
    (base64(&out) == s).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{MemoryTree, leaf_hash, tree_hash};

    #[test]
    fn tile_paths_follow_the_c2sp_layout() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(1234067), "x001/x234/067");
        assert_eq!(index_path(999), "999");
        assert_eq!(index_path(1000), "x001/000");
        let t = Tiles::of(Path::new("/v"));
        assert_eq!(t.path(0, 5, WIDTH), PathBuf::from("/v/tlog/tile/0/005"));
        assert_eq!(t.path(1, 5, 17), PathBuf::from("/v/tlog/tile/1/005.p/17"));
    }

    #[test]
    fn tiles_extended_in_steps_give_every_root_of_the_tree_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let tiles = Tiles::of(dir.path());
        let mut mem = MemoryTree::new();
        let mut size = 0u64;
        // Steps that cross tile edges on two levels (256 and 65,536 leaves).
        for step in [1u64, 254, 1, 1, 300, 65_000, 1, 3] {
            let leaves: Vec<Hash> = (size..size + step)
                .map(|i| leaf_hash(&i.to_le_bytes()))
                .collect();
            tiles.extend(size, &leaves, &tmp).unwrap();
            for l in &leaves {
                mem.push(*l);
            }
            size += step;
            assert_eq!(
                tree_hash(&tiles, size).unwrap(),
                tree_hash(&mem, size).unwrap(),
                "size {size}"
            );
        }
        // Only each level's newest partial tile is left: 65,561 leaves are 256 full
        // level-0 tiles and 25 hashes, one full level-1 tile, and 1 hash on level 2.
        let partials = walk(&dir.path().join("tlog"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".p/"))
            .count();
        assert_eq!(partials, 2);
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn checkpoints_sign_and_open_and_a_changed_byte_is_no_signature() {
        let key = SecretKey::generate().unwrap();
        let id = "0123456789abcdef0123456789abcdef";
        let c = Checkpoint {
            origin: origin(id),
            size: 12,
            root: Hash::of(b"root"),
        };
        let note = c.sign(id, &key);
        let o = open(&note, id, &[key.public()]).unwrap();
        assert_eq!(o.checkpoint, c);
        assert_eq!(o.signers, [key.public()]);
        let bent = note.replacen("12\n", "13\n", 1);
        assert!(open(&bent, id, &[key.public()]).unwrap().signers.is_empty());
        let other = SecretKey::generate().unwrap();
        let o = open(&note, id, &[other.public()]).unwrap();
        assert!(o.signers.is_empty());
        assert_eq!(o.others.len(), 1);
        assert!(open("garbage", id, &[]).is_err());
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let e = base64(data);
            if !data.is_empty() {
                assert_eq!(unbase64(&e).unwrap(), data);
            }
        }
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert!(unbase64("Zm9=").is_none());
    }
}
