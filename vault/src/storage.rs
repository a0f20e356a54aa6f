//! Where a replica of a vault is written: a folder on removable media today, an object
//! store next. Paths are the vault's own relative paths (`packs/ab/….pack`,
//! `log/….entry`, `tlog/checkpoint`), `/`-separated. The operations are the few a replica
//! needs, so that every kind of storage is written in the same order by the same code
//! (`replica`): data first, then the log, the signed checkpoint last.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A place that holds a vault's files.
pub trait Storage {
    /// What it is, for messages (a folder's path, a bucket's URL).
    fn describe(&self) -> String;
    /// Its folder, when it is one on this machine (so that a replica's tree can be
    /// checked in place).
    fn local_root(&self) -> Option<&Path> {
        None
    }
    /// The bytes of `path`, at most `max` of them; `None` when there is no such file.
    ///
    /// Fails when it cannot be read, is not a regular file, or is larger than `max`.
    fn read(&self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>>;
    /// Every file under the folder `prefix` (recursively), with its size, as paths
    /// relative to the storage's root; empty when the folder does not exist.
    ///
    /// Fails when it cannot be listed.
    fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64)>>;
    /// Creates `path` holding `bytes`, durably; `false` (nothing written) when it exists.
    ///
    /// Fails when it cannot be written.
    fn write_exclusive(&self, path: &str, bytes: &[u8]) -> io::Result<bool>;
    /// Replaces `path` by `bytes` atomically and durably (a reader sees the old or the
    /// new file, whole).
    ///
    /// Fails when it cannot be written.
    fn write_replace(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Removes `path` (no error when it is already gone).
    ///
    /// Fails when it cannot be removed.
    fn delete(&self, path: &str) -> io::Result<()>;
    /// Whether `path` holds exactly `bytes`: the read-back after a write. By default the
    /// file is read whole and compared; a storage may offer a cheaper proof its user
    /// chose (an object store's digest of what it received).
    fn holds(&self, path: &str, bytes: &[u8]) -> bool {
        self.read(path, bytes.len() as u64)
            .ok()
            .flatten()
            .is_some_and(|b| b == bytes)
    }
}

/// A folder (a vault, or a replica on removable media).
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: &Path) -> LocalDir {
        LocalDir {
            root: root.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp(&self) -> io::Result<PathBuf> {
        self.path("tmp")
    }

    /// The file `rel`, refused when it or a folder on the way (below the root) is a link:
    /// a replica that links back into the vault would hold nothing of its own.
    fn path(&self, rel: &str) -> io::Result<PathBuf> {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|c| !c.is_empty()) {
            if part == ".." || part == "." {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{rel}: not a plain path"),
                ));
            }
            p.push(part);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} is a link: a replica holds its own files, never links (remove it)",
                            p.display()
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

fn list_into(dir: &Path, rel: &str, out: &mut Vec<(String, u64)>) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let path = format!("{rel}/{name}");
        let ft = e.file_type()?;
        if ft.is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is a link: a replica holds its own files, never links (remove it)",
                    e.path().display()
                ),
            ));
        }
        if ft.is_dir() {
            list_into(&e.path(), &path, out)?;
        } else if ft.is_file() {
            out.push((path, e.metadata()?.len()));
        }
    }
    Ok(())
}

impl Storage for LocalDir {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn read(&self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        match crate::fsread::read_regular(&self.path(path)?, max) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let rel = prefix.trim_end_matches('/');
        let base = if rel.is_empty() {
            self.root.clone()
        } else {
            self.path(rel)?
        };
        list_into(&base, rel, &mut out)?;
        for (p, _) in &mut out {
            if let Some(s) = p.strip_prefix('/') {
                *p = s.to_string();
            }
        }
        out.sort();
        Ok(out)
    }

    fn write_exclusive(&self, path: &str, bytes: &[u8]) -> io::Result<bool> {
        let dest = self.path(path)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        crate::atomic::write_exclusive(&self.tmp()?, &dest, bytes)
    }

    fn write_replace(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let dest = self.path(path)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        crate::atomic::write_replace(&self.tmp()?, &dest, bytes)
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        match fs::remove_file(self.path(path)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
