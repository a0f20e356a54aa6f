//! Crash-safe file creation: temp file, fsync, rename or exclusive link, fsync of the folder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A name that no other writer will pick: pid, time and random bits.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut rnd = [0u8; 8];
    // A failed RNG only weakens uniqueness; pid and time still separate writers.
    let _ = getrandom::fill(&mut rnd);
    format!(
        "{prefix}-{}-{nanos}-{}.tmp",
        std::process::id(),
        crate::hash::hex(&rnd)
    )
}

/// Creates a fresh temp file in `tmp_dir`.
pub fn create_temp(tmp_dir: &Path, prefix: &str) -> io::Result<(File, PathBuf)> {
    fs::create_dir_all(tmp_dir)?;
    let path = tmp_dir.join(unique_name(prefix));
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&path)?;
    Ok((file, path))
}

/// fsyncs a folder so that a rename or link inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `dest` atomically, replacing any existing file.
pub fn write_replace(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(tmp_dir, dest, bytes, true)
}

/// Writes `bytes` to `dest` by rename, without waiting for the disk: for derived data
/// (the log's tiles and checkpoint) that every writer checks against the log and
/// rebuilds when a power cut left it short.
pub fn write_replace_derived(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(tmp_dir, dest, bytes, false)
}

fn replace(tmp_dir: &Path, dest: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let (mut f, tmp) = create_temp(tmp_dir, "write")?;
    let result = (|| {
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(&tmp, dest)?;
        if durable && let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `dest` only if `dest` does not exist yet (exclusive create through a
/// hard link of a synced temp file). Returns `Ok(false)` when another writer got there first.
pub fn write_exclusive(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<bool> {
    let (mut f, tmp) = create_temp(tmp_dir, "excl")?;
    let result = (|| {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        match fs::hard_link(&tmp, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(true)
    })();
    let _ = fs::remove_file(&tmp);
    result
}
