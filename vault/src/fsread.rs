//! Reading files whose bytes come from outside: only regular files, never blocking on a
//! FIFO or device, never more than a stated limit.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a non-regular file is, for messages.
pub fn describe_type(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device node"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without blocking (a FIFO opens at once) and checks, on the
/// open file, that it is a regular file.
///
/// Fails with `InvalidData` naming what the file is when it is not a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    regular(f, path, "not a regular file")
}

/// Opens (creating it when missing) the lock file `path` for `flock`, without blocking on
/// a FIFO and without following a link: a lock file that is not a regular file is damage
/// (`InvalidData`, saying what it is), never a hang.
///
/// Fails when it cannot be opened or is not a regular file.
pub fn open_lock(path: &Path) -> io::Result<File> {
    let flags = libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY;
    let f = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        // A vault mounted read-only under a reader (the dashboard's unit) or a lock file
        // it may not write: flock takes a read-only descriptor as well, so the reader
        // still holds the lock a prune on the writable side waits for.
        Err(e)
            if e.raw_os_error() == Some(libc::EROFS)
                || e.kind() == io::ErrorKind::PermissionDenied =>
        {
            OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)?
        }
        Err(e) => return Err(e),
    };
    regular(f, path, "not a lock file: remove it (it is made again)")
}

/// `f` if it is a regular file, else `InvalidData` saying what it is and `what`.
fn regular(f: File, path: &Path, what: &str) -> io::Result<File> {
    let ft = f.metadata()?.file_type();
    if !ft.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {}, {what}", path.display(), describe_type(ft)),
        ));
    }
    Ok(f)
}

/// Reads a whole regular file of at most `max` bytes.
///
/// Fails when the file is not regular, is larger than `max`, or cannot be read.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let len = f.metadata()?.len();
    if len > max {
        return Err(too_large(path, len, max));
    }
    let mut out = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large(path, out.len() as u64, max));
    }
    Ok(out)
}

/// SHA-256 and length of everything `r` yields, read in 1 MiB pieces through `buf`
/// (interrupted reads retried): the one streaming hash every reader of files uses.
///
/// Fails when a read fails.
pub fn hash_reader(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<(crate::Hash, u64)> {
    use sha2::Digest;
    buf.resize(1024 * 1024, 0);
    let mut hasher = sha2::Sha256::new();
    let mut n = 0u64;
    loop {
        match r.read(buf) {
            Ok(0) => return Ok((crate::Hash::from_hasher(hasher), n)),
            Ok(k) => {
                hasher.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// SHA-256 and length of a regular file of at most `max` bytes, read in pieces (memory
/// stays small whatever the size).
///
/// Fails when the file is not regular, is larger than `max`, or cannot be read.
pub fn hash_regular(path: &Path, max: u64) -> io::Result<(crate::Hash, u64)> {
    let f = open_regular(path)?;
    let len = f.metadata()?.len();
    if len > max {
        return Err(too_large(path, len, max));
    }
    let (hash, n) = hash_reader(&mut f.take(max.saturating_add(1)), &mut Vec::new())?;
    if n > max {
        return Err(too_large(path, n, max));
    }
    Ok((hash, n))
}

fn too_large(path: &Path, len: u64, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is {len} bytes, more than the {max} such a file can hold",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_and_folder_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read_regular(&fifo, 100).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = read_regular(dir.path(), 100).unwrap_err();
        assert!(e.to_string().contains("a folder"), "{e}");
        let f = dir.path().join("big");
        std::fs::write(&f, vec![0u8; 101]).unwrap();
        let e = read_regular(&f, 100).unwrap_err();
        assert!(e.to_string().contains("101 bytes"), "{e}");
        assert_eq!(read_regular(&f, 101).unwrap().len(), 101);
    }
}
