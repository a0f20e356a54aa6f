//! Restoring a snapshot into a folder, every chunk re-hashed on the way out.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{VaultError, io_err};
use crate::index::Index;
use crate::manifest::{ArtifactEntry, Manifest, check_name};
use crate::pack::{ChunkReader, pack_path};
use crate::repository::Vault;

#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Write into a folder that is not empty (existing files with the same names are
    /// replaced).
    pub force: bool,
    pub threads: usize,
    /// Keep setuid, setgid and sticky bits recorded with a file (dropped by default: a
    /// restored export must not come back as a program that runs with its owner's rights).
    pub keep_special_bits: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            force: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            keep_special_bits: false,
        }
    }
}

/// An artifact that could not be restored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreFailure {
    pub name: String,
    pub error: String,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    pub artifacts: u64,
    pub bytes: u64,
    pub failed: Vec<RestoreFailure>,
}

/// Restores every artifact of `manifest` under `target`. Each file is written under a
/// temp name and gets its final name only when its SHA-256 equals the artifact's, so a
/// damaged vault never produces a file that looks whole.
///
/// Fails before writing anything when a name would escape `target`, or when `target` is
/// not empty and `force` is not set. Damage to single artifacts is reported in
/// `RestoreReport::failed`.
pub fn restore(
    vault: &Vault,
    index: &Index,
    manifest: &Manifest,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport, VaultError> {
    let mut names = std::collections::HashSet::new();
    for a in &manifest.artifacts {
        check_name(&a.name).map_err(|why| {
            VaultError::Refused(format!(
                "refusing to restore: artifact name {why} would escape the target folder\n\
                 fix: this manifest was not written by plcvault; run `plcvault verify`"
            ))
        })?;
        names.insert(a.name.as_str());
    }
    for a in &manifest.artifacts {
        let mut prefix = a.name.as_str();
        while let Some((parent, _)) = prefix.rsplit_once('/') {
            if names.contains(parent) {
                return Err(VaultError::Refused(format!(
                    "refusing to restore: `{parent}` is both a file and the folder of `{}`",
                    a.name
                )));
            }
            prefix = parent;
        }
    }
    match fs::read_dir(target) {
        Ok(mut rd) => {
            if rd.next().is_some() && !opts.force {
                return Err(VaultError::Refused(format!(
                    "refusing to restore into {}: the folder is not empty\n\
                     fix: restore into a new folder, or pass --force to replace files there",
                    target.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(target).map_err(io_err("create", target))?;
        }
        Err(e) => return Err(io_err("open", target)(e)),
    }
    let results = crate::parallel::map_with(
        &manifest.artifacts,
        opts.threads.clamp(1, 16),
        || (ChunkReader::new(), HashMap::<u32, File>::new()),
        |(reader, open), a| {
            let reader = reader
                .as_mut()
                .map_err(|e| VaultError::Refused(e.to_string()))?;
            restore_one(vault, index, a, target, reader, open).and_then(|path| {
                match opts.keep_special_bits {
                    true => set_mode(&path, a),
                    false => Ok(()),
                }
            })
        },
    );
    let mut report = RestoreReport::default();
    for (a, result) in manifest.artifacts.iter().zip(results) {
        match result {
            Ok(()) => {
                report.artifacts += 1;
                report.bytes += a.size;
            }
            Err(e) => report.failed.push(RestoreFailure {
                name: a.name.clone(),
                error: e.to_string(),
            }),
        }
    }
    report.failed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(report)
}

/// The open file of pack number `pack`, opening it on first use (at most 64 stay open).
fn open_pack<'a>(
    open: &'a mut HashMap<u32, File>,
    pack: u32,
    path: &Path,
) -> Result<&'a mut File, VaultError> {
    if open.len() > 64 && !open.contains_key(&pack) {
        open.clear();
    }
    match open.entry(pack) {
        std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
        std::collections::hash_map::Entry::Vacant(e) => {
            Ok(e.insert(crate::fsread::open_regular(path).map_err(io_err("open pack", path))?))
        }
    }
}

/// Refuses to write through a symbolic link that already sits inside the target.
fn safe_parent(target: &Path, name: &str) -> Result<PathBuf, VaultError> {
    let mut dir = target.to_path_buf();
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for part in parts {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(VaultError::Refused(format!(
                    "{} is a symbolic link; refusing to restore through it",
                    dir.display()
                )));
            }
            Ok(m) if !m.is_dir() => {
                return Err(VaultError::Refused(format!(
                    "{} exists and is not a folder",
                    dir.display()
                )));
            }
            Ok(_) => {}
            Err(_) => fs::create_dir_all(&dir).map_err(io_err("create", &dir))?,
        }
    }
    Ok(dir)
}

/// Gives a restored file its recorded setuid, setgid and sticky bits too (when asked).
fn set_mode(path: &Path, a: &ArtifactEntry) -> Result<(), VaultError> {
    if let Some(mode) = a.meta.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_err("set mode of", path))?;
    }
    Ok(())
}

/// Restores one artifact; returns its final path.
fn restore_one(
    vault: &Vault,
    index: &Index,
    a: &ArtifactEntry,
    target: &Path,
    reader: &mut ChunkReader,
    open: &mut HashMap<u32, File>,
) -> Result<PathBuf, VaultError> {
    let dir = safe_parent(target, &a.name)?;
    let final_path = target.join(&a.name);
    let tmp = dir.join(crate::atomic::unique_name(".plcvault-restore"));
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    let result = (|| {
        let mut hasher = Sha256::new();
        for (id, len) in &a.chunks {
            let loc = index.get(id).ok_or_else(|| {
                crate::error::corrupt(
                    vault.root(),
                    format!("chunk {} of `{}` is in no pack", id.short(), a.name),
                )
            })?;
            let path = pack_path(vault.root(), &index.packs[loc.pack as usize]);
            let file = open_pack(open, loc.pack, &path)?;
            // The whole file's SHA-256 is checked below; that covers every chunk in it.
            let data = reader.read(file, &path, &loc.entry, false)?;
            if data.len() != *len as usize {
                return Err(crate::error::corrupt(
                    &path,
                    "chunk length differs from the manifest",
                ));
            }
            hasher.update(data);
            out.write_all(data).map_err(io_err("write", &tmp))?;
        }
        if crate::hash::Hash::from_hasher(hasher) != a.sha256 {
            return Err(crate::error::corrupt(
                vault.root(),
                format!("`{}` does not match its SHA-256 after restore", a.name),
            ));
        }
        if let Some(mode) = a.meta.mode {
            // Only the permission bits here: special bits are set on the final name (see
            // `set_mode`), where the caller decides.
            out.set_permissions(fs::Permissions::from_mode(mode & 0o777))
                .map_err(io_err("set mode of", &tmp))?;
        }
        if let Some(t) = a
            .meta
            .mtime
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
        {
            out.set_modified(t).map_err(io_err("set mtime of", &tmp))?;
        }
        drop(out);
        if let Ok(m) = fs::symlink_metadata(&final_path)
            && m.is_dir()
        {
            return Err(VaultError::Refused(format!(
                "{} is a folder; refusing to replace it with a file",
                final_path.display()
            )));
        }
        fs::rename(&tmp, &final_path).map_err(io_err("rename into place", &final_path))?;
        Ok(final_path.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The SHA-256 of an artifact's content as its chunks give it, read chunk by chunk (each
/// checked against its id), never held whole.
///
/// Fails when a chunk is missing or damaged.
pub fn hash_artifact(
    vault: &Vault,
    index: &Index,
    a: &ArtifactEntry,
    reader: &mut ChunkReader,
) -> Result<crate::Hash, VaultError> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    each_chunk(vault, index, a, reader, |plain| {
        hasher.update(plain);
        Ok(())
    })?;
    Ok(crate::Hash::from_hasher(hasher))
}

/// Hands every chunk of `a`, in order, read and checked against its id, to `f`.
///
/// Fails when a chunk is missing or damaged, or `f` fails.
fn each_chunk(
    vault: &Vault,
    index: &Index,
    a: &ArtifactEntry,
    reader: &mut ChunkReader,
    mut f: impl FnMut(&[u8]) -> Result<(), VaultError>,
) -> Result<(), VaultError> {
    let mut open: HashMap<u32, File> = HashMap::new();
    for (id, _) in &a.chunks {
        let loc = index.get(id).ok_or_else(|| {
            crate::error::corrupt(
                vault.root(),
                format!("chunk {} of `{}` is in no pack", id.short(), a.name),
            )
        })?;
        let path = pack_path(vault.root(), &index.packs[loc.pack as usize]);
        let file = open_pack(&mut open, loc.pack, &path)?;
        f(reader.read(file, &path, &loc.entry, true)?)?;
    }
    Ok(())
}

/// Streams an artifact's content into `w`, each chunk checked against its id before it is
/// written and the whole against the artifact's size and SHA-256 at the end (a mismatch
/// there is an error after the bytes were written: the reader must discard them).
///
/// Fails when a chunk is missing or damaged, writing fails, or the whole does not match.
pub fn write_artifact(
    vault: &Vault,
    index: &Index,
    a: &ArtifactEntry,
    w: &mut dyn std::io::Write,
) -> Result<(), VaultError> {
    use sha2::Digest;
    let mut reader = ChunkReader::new()?;
    let mut hasher = sha2::Sha256::new();
    let mut written = 0u64;
    each_chunk(vault, index, a, &mut reader, |plain| {
        written += plain.len() as u64;
        if written > a.size {
            return Err(crate::error::corrupt(
                vault.root(),
                format!("the chunks of `{}` hold more than its size", a.name),
            ));
        }
        hasher.update(plain);
        w.write_all(plain).map_err(|e| VaultError::Io {
            op: "write",
            path: "(output)".into(),
            error: e,
        })
    })?;
    w.flush().map_err(|e| VaultError::Io {
        op: "write",
        path: "(output)".into(),
        error: e,
    })?;
    if written != a.size || crate::Hash::from_hasher(hasher) != a.sha256 {
        return Err(crate::error::corrupt(
            vault.root(),
            format!("`{}` does not match its size and SHA-256", a.name),
        ));
    }
    Ok(())
}

/// Reads an artifact's content into memory (for comparisons), each chunk checked against
/// its id and the whole against the artifact's SHA-256.
///
/// Fails when the artifact is larger than `limit`, or a chunk is missing or damaged.
pub fn read_artifact(
    vault: &Vault,
    index: &Index,
    a: &ArtifactEntry,
    limit: u64,
) -> Result<Vec<u8>, VaultError> {
    if a.size > limit {
        return Err(VaultError::Refused(format!(
            "`{}` is {} bytes, more than the {limit} this comparison reads into memory",
            a.name, a.size
        )));
    }
    let mut reader = ChunkReader::new()?;
    let mut out = Vec::with_capacity(a.size as usize);
    each_chunk(vault, index, a, &mut reader, |plain| {
        out.extend_from_slice(plain);
        if out.len() as u64 > a.size {
            return Err(crate::error::corrupt(
                vault.root(),
                format!("the chunks of `{}` hold more than its size", a.name),
            ));
        }
        Ok(())
    })?;
    if crate::hash::Hash::of(&out) != a.sha256 {
        return Err(crate::error::corrupt(
            vault.root(),
            format!("`{}` does not match its SHA-256", a.name),
        ));
    }
    Ok(out)
}
