//! The `files` adapter: exports on an engineering workstation or a share.
//!
//! The artifact name is the path relative to the root, with `/` separators. Size, mode
//! and mtime are recorded as metadata, never as evidence: content is always hashed.
//! Symbolic links are followed only when they resolve to a file inside the root. A file
//! that changes while it is read is read again; if it keeps changing it is stored marked
//! `unstable` and the snapshot is incomplete.

use std::fs::{self, File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glob::{MatchOptions, Pattern};

pub(crate) mod settings;

use crate::{
    AdapterError, ArtifactKind, ArtifactMeta, ArtifactSource, BoxFuture, Collection, Collector,
    FileRef, SourceData,
};

/// How globs of a files device match names: `*` stays within one folder.
pub const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Settings of one files device.
#[derive(Clone, Debug)]
pub struct FilesOptions {
    pub device: String,
    pub root: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Glob → kind, first match wins; then the built-in rules by extension.
    pub kinds: Vec<(String, ArtifactKind)>,
    /// `optional = true`: a folder that does not exist (a share mounted only at times) is
    /// a warning of `config check` and a skipped device in `collect`, not a failure.
    pub optional: bool,
}

pub struct FilesCollector {
    opts: FilesOptions,
    select: Selection,
}

fn compile(device: &str, key: &str, globs: &[String]) -> Result<Vec<Pattern>, AdapterError> {
    globs
        .iter()
        .map(|g| {
            Pattern::new(g).map_err(|e| AdapterError::Config {
                device: device.to_string(),
                key: key.to_string(),
                why: format!("`{g}` is not a valid glob: {e}"),
            })
        })
        .collect()
}

/// The built-in kind of a file by its extension.
pub fn default_kind(name: &str) -> ArtifactKind {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "st" | "scl" | "awl" | "stl" | "mc7" | "il" | "ld" | "fbd" | "sfc" | "lad" | "l5x"
        | "l5k" | "acd" | "rss" | "xef" | "project" | "pro" | "gxw" | "ap11" | "ap13" | "ap14"
        | "ap15" | "ap16" | "ap17" | "ap18" | "ap19" | "ap20" | "zap11" | "zap13" | "zap14"
        | "zap15" | "zap16" | "zap17" | "zap18" | "zap19" | "zap20" | "stu" | "sta" | "zef"
        | "prg" => ArtifactKind::Logic,
        "rcp" | "recipe" | "csv" => ArtifactKind::Recipe,
        "img" | "bin" | "hmi" | "mer" | "apa" | "cfi" | "pdz" | "iso" | "vhd" | "vhdx"
        | "qcow2" | "fw" | "hex" | "upd" => ArtifactKind::Image,
        "xml" | "json" | "ini" | "cfg" | "conf" | "toml" | "yaml" | "yml" | "gsd" | "gsdml"
        | "eds" | "par" => ArtifactKind::Config,
        _ => ArtifactKind::Other,
    }
}

/// Which names a tree collector takes and what kind each is: the include and exclude
/// globs and the kind rules, compiled once; shared by every adapter that collects files
/// by name (files, ftp).
pub struct Selection {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    kinds: Vec<(Pattern, ArtifactKind)>,
}

impl Selection {
    /// Fails, naming the key, when a glob does not compile.
    pub fn new(
        device: &str,
        include: &[String],
        exclude: &[String],
        kinds: &[(String, ArtifactKind)],
    ) -> Result<Selection, AdapterError> {
        let globs: Vec<String> = kinds.iter().map(|(g, _)| g.clone()).collect();
        Ok(Selection {
            include: compile(device, "include", include)?,
            exclude: compile(device, "exclude", exclude)?,
            kinds: compile(device, "kind.match", &globs)?
                .into_iter()
                .zip(kinds.iter().map(|(_, k)| *k))
                .collect(),
        })
    }

    /// Included and not excluded.
    pub fn wanted(&self, name: &str) -> bool {
        self.include.iter().any(|p| p.matches_with(name, MATCH))
            && !self.exclude.iter().any(|p| p.matches_with(name, MATCH))
    }

    /// The first kind rule that matches, else the kind by extension.
    pub fn kind_of(&self, name: &str) -> ArtifactKind {
        self.kinds
            .iter()
            .find(|(p, _)| p.matches_with(name, MATCH))
            .map(|(_, k)| *k)
            .unwrap_or_else(|| default_kind(name))
    }
}

impl FilesCollector {
    /// Fails when a glob does not compile.
    pub fn new(opts: FilesOptions) -> Result<FilesCollector, AdapterError> {
        let select = Selection::new(&opts.device, &opts.include, &opts.exclude, &opts.kinds)?;
        Ok(FilesCollector { opts, select })
    }

    /// Walks the root. Blocking; `collect` runs it off the async threads.
    pub fn scan(&self) -> Result<Collection, AdapterError> {
        let root = &self.opts.root;
        let unreachable = |why: String| AdapterError::Unreachable {
            device: self.opts.device.clone(),
            why,
            fix: format!(
                "check that {} exists, is mounted and is readable by this user",
                root.display()
            ),
        };
        if self.opts.optional && fs::symlink_metadata(root).is_err() {
            return Err(AdapterError::Absent {
                device: self.opts.device.clone(),
                why: format!("folder {} does not exist", root.display()),
            });
        }
        let canon_root = fs::canonicalize(root)
            .map_err(|e| unreachable(format!("cannot open folder {}: {e}", root.display())))?;
        if !canon_root.is_dir() {
            return Err(unreachable(format!("{} is not a folder", root.display())));
        }
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
        let walker = walkdir::WalkDir::new(&canon_root)
            .follow_links(false)
            .sort_by_file_name();
        for item in walker {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    out.warnings.push(format!("cannot read {path}: {e}"));
                    out.complete = false;
                    continue;
                }
            };
            if item.depth() == 0 || item.file_type().is_dir() {
                continue;
            }
            let rel = item.path().strip_prefix(&canon_root).unwrap_or(item.path());
            let Some(name) = rel.to_str().map(|s| s.to_string()) else {
                out.warnings.push(format!(
                    "skipped {}: the name is not UTF-8 (rename the file to collect it)",
                    rel.to_string_lossy()
                ));
                // A file left out is never a complete snapshot.
                out.complete = false;
                continue;
            };
            if !self.select.wanted(&name) {
                continue;
            }
            let (path, meta) = if item.file_type().is_symlink() {
                match fs::canonicalize(item.path()) {
                    Ok(target) if target.starts_with(&canon_root) && target.is_file() => {
                        match fs::metadata(&target) {
                            Ok(m) => (target, m),
                            Err(e) => {
                                out.warnings.push(format!("cannot read {name}: {e}"));
                                out.complete = false;
                                continue;
                            }
                        }
                    }
                    Ok(target) if target.starts_with(&canon_root) => {
                        out.warnings.push(format!(
                            "skipped link {name}: it points to a folder (not followed)"
                        ));
                        continue;
                    }
                    Ok(target) => {
                        out.warnings.push(format!(
                            "skipped link {name}: it points outside the device folder, to {}",
                            target.display()
                        ));
                        continue;
                    }
                    Err(_) => {
                        out.warnings
                            .push(format!("skipped link {name}: it points nowhere"));
                        continue;
                    }
                }
            } else if item.file_type().is_file() {
                match item.metadata() {
                    Ok(m) => (item.path().to_owned(), m),
                    Err(e) => {
                        out.warnings.push(format!("cannot read {name}: {e}"));
                        out.complete = false;
                        continue;
                    }
                }
            } else {
                out.warnings
                    .push(format!("skipped {name}: not a regular file"));
                continue;
            };
            let rel = path.strip_prefix(&canon_root).unwrap_or(&path).to_owned();
            out.artifacts.push(ArtifactSource {
                kind: self.select.kind_of(&name),
                meta: file_meta(&meta),
                name,
                data: SourceData::File(FileRef {
                    root: canon_root.clone(),
                    rel,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.len(),
                }),
                size_hint: Some(meta.len()),
            });
        }
        Ok(out)
    }
}

/// Mode and mtime of a file, for the record.
pub fn file_meta(m: &Metadata) -> ArtifactMeta {
    ArtifactMeta {
        mode: Some(m.mode() & 0o7777),
        mtime: m
            .modified()
            .ok()
            .map(|t| humantime::format_rfc3339_nanos(t).to_string()),
        ..ArtifactMeta::default()
    }
}

impl Collector for FilesCollector {
    fn adapter(&self) -> &'static str {
        "files"
    }
    fn source(&self) -> String {
        self.opts.root.display().to_string()
    }
    fn read_functions(&self) -> &'static [&'static str] {
        &["open(O_RDONLY)", "read", "stat", "readdir"]
    }
    fn preflight(&self) -> Vec<String> {
        if self.opts.optional && !self.opts.root.is_dir() {
            vec![format!(
                "folder {} does not exist (yet); it is marked optional",
                self.opts.root.display()
            )]
        } else {
            Vec::new()
        }
    }
    fn problems(&self) -> Vec<String> {
        if self.opts.optional || self.opts.root.is_dir() {
            Vec::new()
        } else {
            vec![format!(
                "folder {} does not exist\nfix: check `path` (relative paths start at the config's folder), or set optional = true for a share that is mounted only at times",
                self.opts.root.display()
            )]
        }
    }
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        // Directory walks block; keep them off the async worker threads.
        Box::pin(async move { tokio::task::block_in_place(|| self.scan()) })
    }
}

/// A file's identity and state: if any part changes, the content may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
    dev: u64,
}

fn fingerprint(m: &Metadata) -> Fingerprint {
    Fingerprint {
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        ino: m.ino(),
        dev: m.dev(),
    }
}

/// How a stable read ended.
#[derive(Debug)]
pub struct StableRead<T> {
    pub value: T,
    /// False when the file changed during every attempt.
    pub stable: bool,
    pub attempts: u32,
    pub meta: ArtifactMeta,
}

/// Why a stable read failed.
#[derive(Debug)]
pub enum StableError<E> {
    /// The file could not be opened or examined (vanished, unreadable).
    Io(std::io::Error),
    /// The file at the listed place is no longer the file that was listed: replaced by a
    /// link, a FIFO, a device or another file. Nothing of it was read.
    Swapped(String),
    /// The reading closure failed.
    Read(E),
}

/// An open file that reads no further than its size when it was opened: a file that grows
/// while it is read is caught by the stability check, never read without end.
pub struct BoundedFile {
    file: File,
    limit: u64,
    pos: u64,
}

impl BoundedFile {
    /// The size when opened: the most this reader returns.
    pub fn len(&self) -> u64 {
        self.limit
    }

    pub fn is_empty(&self) -> bool {
        self.limit == 0
    }
}

impl std::io::Read for BoundedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.limit.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl std::io::Seek for BoundedFile {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

/// Opens `rel` beneath `root` one component at a time without following any link
/// (`openat` with `O_NOFOLLOW`; `rel` is canonical, so a link found on the way was swapped
/// in after listing), non-blocking so that a FIFO cannot hang the collection.
///
/// Fails with the operating system's error; `ELOOP` means a link was met.
pub fn open_beneath(root: &Path, rel: &Path) -> std::io::Result<File> {
    use rustix::fs::{CWD, Mode, OFlags, openat};
    use std::path::Component;
    let mut fd = openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parts: Vec<Component> = rel.components().collect();
    if parts.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty path beneath the device folder",
        ));
    }
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "`{}` is not a plain path beneath the device folder",
                    rel.display()
                ),
            ));
        };
        let last = i + 1 == parts.len();
        let flags = OFlags::RDONLY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | if last {
                OFlags::NONBLOCK | OFlags::NOCTTY
            } else {
                OFlags::DIRECTORY
            };
        fd = openat(&fd, *name, flags, Mode::empty())?;
    }
    Ok(File::from(fd))
}

/// Opens the listed file and checks, on the open file, that it is the one listed.
fn open_listed<E>(file: &FileRef) -> Result<(File, Metadata), StableError<E>> {
    let path = file.path();
    let f = match open_beneath(&file.root, &file.rel) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(StableError::Swapped(format!(
                "{} (or a folder on its path) was replaced by a symbolic link after it was listed",
                path.display()
            )));
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
            return Err(StableError::Swapped(format!(
                "a folder on the path of {} was replaced after it was listed",
                path.display()
            )));
        }
        Err(e) => return Err(StableError::Io(e)),
    };
    let m = f.metadata().map_err(StableError::Io)?;
    if !m.file_type().is_file() {
        return Err(StableError::Swapped(format!(
            "{} is now {}, not the regular file that was listed",
            path.display(),
            vault::fsread::describe_type(m.file_type())
        )));
    }
    if (m.dev(), m.ino()) != (file.dev, file.ino) {
        return Err(StableError::Swapped(format!(
            "{} is another file than the one listed (replaced between listing and reading)",
            path.display()
        )));
    }
    Ok((f, m))
}

/// Opens the listed file (see `open_beneath`; only the regular file with the listed device
/// and inode is read) and runs `read` on it, bounded by its size at opening; if the file
/// changed while it was read (size, mtime, ctime or identity), tries again, up to
/// `attempts` times, pausing `pause` between tries. Returns the last result and whether it
/// was stable.
///
/// Fails when the file cannot be opened, is no longer the listed file, or `read` fails.
pub fn read_stable<T, E>(
    file: &FileRef,
    attempts: u32,
    pause: Duration,
    mut read: impl FnMut(&mut BoundedFile) -> Result<T, E>,
) -> Result<StableRead<T>, StableError<E>> {
    let path = file.path();
    let mut n = 0;
    loop {
        n += 1;
        let (f, before) = open_listed(file)?;
        let mut bounded = BoundedFile {
            file: f,
            limit: before.len(),
            pos: 0,
        };
        let value = read(&mut bounded).map_err(StableError::Read)?;
        let after = bounded.file.metadata().map_err(StableError::Io)?;
        let on_disk = fs::symlink_metadata(&path).map_err(StableError::Io)?;
        let stable = fingerprint(&before) == fingerprint(&after)
            && fingerprint(&after) == fingerprint(&on_disk);
        if stable || n >= attempts.max(1) {
            return Ok(StableRead {
                value,
                stable,
                attempts: n,
                meta: file_meta(&after),
            });
        }
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn opts(root: &Path) -> FilesOptions {
        FilesOptions {
            device: "d".into(),
            root: root.to_owned(),
            include: vec!["**/*".into()],
            exclude: vec!["**/*.tmp".into()],
            kinds: vec![("recipes/**".into(), ArtifactKind::Recipe)],
            optional: false,
        }
    }

    #[test]
    fn scans_with_globs_kinds_and_link_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("recipes")).unwrap();
        fs::create_dir_all(root.join("prog")).unwrap();
        fs::write(root.join("prog/OB1.awl"), b"A I0.0").unwrap();
        fs::write(root.join("recipes/r1.txt"), b"x").unwrap();
        fs::write(root.join("top.xml"), b"<a/>").unwrap();
        fs::write(root.join("prog/junk.tmp"), b"x").unwrap();
        fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("top.xml"), root.join("inside-link.xml")).unwrap();
        let c = FilesCollector::new(opts(&root)).unwrap().scan().unwrap();
        let names: Vec<(&str, ArtifactKind)> = c
            .artifacts
            .iter()
            .map(|a| (a.name.as_str(), a.kind))
            .collect();
        assert_eq!(
            names,
            vec![
                ("inside-link.xml", ArtifactKind::Config),
                ("prog/OB1.awl", ArtifactKind::Logic),
                ("recipes/r1.txt", ArtifactKind::Recipe),
                ("top.xml", ArtifactKind::Config),
            ]
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("escape") && w.contains("outside")),
            "{:?}",
            c.warnings
        );
        assert!(c.complete);
    }

    #[test]
    fn missing_root_is_unreachable_with_a_fix() {
        let err = FilesCollector::new(opts(Path::new("/nonexistent/plcvault")))
            .unwrap()
            .scan()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unreachable") && msg.contains("fix:"), "{msg}");
    }

    #[test]
    fn bad_glob_names_the_key() {
        let mut o = opts(Path::new("/"));
        o.exclude = vec!["[".into()];
        let err = FilesCollector::new(o).err().unwrap().to_string();
        assert!(err.contains("exclude"), "{err}");
    }

    fn listed(root: &Path, rel: &str) -> FileRef {
        let root = fs::canonicalize(root).unwrap();
        let m = fs::metadata(root.join(rel)).unwrap();
        FileRef {
            root,
            rel: rel.into(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
        }
    }

    fn read_all(f: &mut BoundedFile) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        f.read_to_end(&mut v)?;
        Ok(v)
    }

    fn swapped(r: Result<StableRead<Vec<u8>>, StableError<std::io::Error>>) -> String {
        match r {
            Err(StableError::Swapped(why)) => why,
            Err(StableError::Io(e)) => panic!("io error, not a swap: {e}"),
            Err(StableError::Read(e)) => panic!("read error, not a swap: {e}"),
            Ok(r) => panic!("read {} bytes of a swapped file", r.value.len()),
        }
    }

    // Regression (issue 8, case 3): a listed file replaced before it is read must not be
    // read through a link, block on a FIFO, or read a device without end.
    #[test]
    fn a_file_swapped_after_listing_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(dir.path().join("collector.key"), b"SECRET").unwrap();
        let quick = Duration::from_millis(1);
        for (i, swap) in ["link-to-key", "fifo", "dev-zero", "other-file", "dir-link"]
            .iter()
            .enumerate()
        {
            let rel = format!("sub/f{i}.awl");
            let path = root.join(&rel);
            fs::write(&path, b"A I0.0").unwrap();
            let listed = listed(&root, &rel);
            if *swap == "other-file" {
                // Written beside it while the listed file still exists (so it cannot reuse
                // the inode number), then renamed over it, as editors save.
                let tmp = root.join("sub/.save.tmp");
                fs::write(&tmp, b"A I0.0 other inode").unwrap();
                fs::rename(&tmp, &path).unwrap();
            } else {
                fs::remove_file(&path).unwrap();
            }
            match *swap {
                "link-to-key" => {
                    std::os::unix::fs::symlink(dir.path().join("collector.key"), &path).unwrap()
                }
                "fifo" => assert!(
                    std::process::Command::new("mkfifo")
                        .arg(&path)
                        .status()
                        .unwrap()
                        .success()
                ),
                "dev-zero" => std::os::unix::fs::symlink("/dev/zero", &path).unwrap(),
                "other-file" => {}
                _ => {
                    // A folder on the path becomes a link to a folder holding the key.
                    let real = dir.path().join(format!("elsewhere{i}"));
                    fs::create_dir_all(&real).unwrap();
                    fs::write(real.join(format!("f{i}.awl")), b"SECRET").unwrap();
                    fs::rename(root.join("sub"), dir.path().join(format!("old{i}"))).unwrap();
                    std::os::unix::fs::symlink(&real, root.join("sub")).unwrap();
                }
            }
            let why = swapped(read_stable(&listed, 3, quick, read_all));
            assert!(
                why.contains(&format!("f{i}.awl")) || why.contains("sub"),
                "{swap}: {why}"
            );
            if *swap == "dir-link" {
                fs::remove_file(root.join("sub")).unwrap();
                fs::rename(dir.path().join(format!("old{i}")), root.join("sub")).unwrap();
            }
        }
    }

    #[test]
    fn a_growing_file_is_read_no_further_than_its_size_at_opening() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("log.csv"), b"0123456789").unwrap();
        let file = listed(dir.path(), "log.csv");
        let r = read_stable(&file, 1, Duration::from_millis(1), |f| {
            use std::io::Write;
            let mut grow = fs::OpenOptions::new()
                .append(true)
                .open(dir.path().join("log.csv"))?;
            grow.write_all(&[b'x'; 100_000])?;
            read_all(f)
        })
        .unwrap();
        assert_eq!(r.value, b"0123456789");
        assert!(!r.stable, "a file that grew while read is not stable");
    }

    #[test]
    fn a_file_that_keeps_changing_is_reported_unstable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.csv");
        fs::write(&path, b"1").unwrap();
        let mut i = 0;
        let r = read_stable(
            &listed(dir.path(), "live.csv"),
            3,
            Duration::from_millis(1),
            |f: &mut BoundedFile| -> std::io::Result<String> {
                let mut s = String::new();
                f.read_to_string(&mut s)?;
                i += 1;
                // Someone writes to the file while we read it.
                fs::write(&path, format!("{i}{i}{i}"))?;
                Ok(s)
            },
        )
        .unwrap();
        assert!(!r.stable);
        assert_eq!(r.attempts, 3);

        let r = read_stable(
            &listed(dir.path(), "live.csv"),
            3,
            Duration::from_millis(1),
            |f: &mut BoundedFile| -> std::io::Result<String> {
                let mut s = String::new();
                f.read_to_string(&mut s)?;
                Ok(s)
            },
        )
        .unwrap();
        assert!(r.stable);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.value, "333");
    }
}
