//! plcvault's device adapters: read-only collectors, one folder and cargo feature per
//! protocol, behind one registry (`registry`).
//!
//! An adapter owns its settings (it deserialises its part of a `[[device]]` table, unknown
//! keys refused), lists what a device holds and hands back artifact sources; it never
//! writes to the device, except through a `Writer` that needs a `WritePermit`, which only
//! a `writable = true` in the config creates. The orchestrator in the binary streams the
//! sources into the vault. Adapters use the vault's plain data types (`ArtifactKind`,
//! `ArtifactMeta`) but never its storage. Network adapters pace every request through
//! `pace`.

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

pub use vault::manifest::{ArtifactKind, ArtifactMeta};

pub mod device;
#[cfg(feature = "enip")]
pub mod enip;
#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "ftp")]
pub mod ftp;
#[cfg(feature = "modbus")]
pub mod modbus;
#[cfg(feature = "opcua")]
pub mod opcua;
pub mod pace;
pub mod registry;
#[cfg(feature = "s7")]
pub mod s7;
pub mod settings;

pub use device::{Device, WritePermit};

/// A boxed future, so that collectors and writers can live behind trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream an adapter opens when the orchestrator is ready to store it (a file on a
/// server, a block uploaded from a PLC): never held whole in memory. Blocking reads, on
/// the orchestrator's worker threads.
pub trait OpenStream: Send + Sync {
    /// Opens the stream from its start; each call starts again (a retry after a change).
    ///
    /// Fails when the source cannot be opened.
    fn open(&self) -> std::io::Result<Box<dyn Read + Send>>;
    /// The size the listing gave, to detect a source that changed while read.
    fn listed_size(&self) -> Option<u64>;
    /// Where it comes from, for messages.
    fn describe(&self) -> String;
}

/// Where an artifact's bytes come from.
#[derive(Clone)]
pub enum SourceData {
    /// Already read (registers, identification records).
    Bytes(Vec<u8>),
    /// A local file to be streamed, with a stability check (see `files::read_stable`).
    File(FileRef),
    /// A stream of any size from a network source, opened when it is stored.
    Stream(Arc<dyn OpenStream>),
}

impl fmt::Debug for SourceData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceData::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            SourceData::File(r) => write!(f, "File({:?})", r.path()),
            SourceData::Stream(s) => write!(f, "Stream({})", s.describe()),
        }
    }
}

impl PartialEq for SourceData {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SourceData::Bytes(a), SourceData::Bytes(b)) => a == b,
            (SourceData::File(a), SourceData::File(b)) => a == b,
            (SourceData::Stream(a), SourceData::Stream(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for SourceData {}

/// A stream read to its end, and whether it was stable (its length was the listed size).
#[derive(Debug)]
pub struct StreamRead<T> {
    pub value: T,
    pub stable: bool,
}

/// Why reading a stream failed: it could not be opened, or the reader gave up.
#[derive(Debug)]
pub enum StreamError<E> {
    Open(std::io::Error),
    Read(E),
}

/// Reads `source` with `read`, again (up to `attempts` times, `pause` apart) when the
/// bytes read differ in number from the size the listing gave (the source changed while it
/// was read: the last read is kept and marked unstable, as the files adapter does), or
/// when opening or reading it failed in a way `retry` says another try may fix (a dropped
/// connection). Every try reads from the first byte into a fresh `read`.
///
/// Fails when the stream cannot be opened or `read` fails, after the tries.
pub fn read_stream<T, E>(
    source: &dyn OpenStream,
    attempts: u32,
    pause: std::time::Duration,
    retry: impl Fn(&E) -> bool,
    mut read: impl FnMut(&mut dyn Read) -> Result<T, E>,
) -> Result<StreamRead<T>, StreamError<E>> {
    let mut attempt = 1;
    loop {
        let last = attempt >= attempts.max(1);
        let opened = match source.open() {
            Ok(r) => r,
            Err(_) if !last => {
                attempt += 1;
                std::thread::sleep(pause);
                continue;
            }
            Err(e) => return Err(StreamError::Open(e)),
        };
        let mut counted = Counted {
            inner: opened,
            n: 0,
        };
        let value = match read(&mut counted) {
            Ok(v) => v,
            Err(e) if !last && retry(&e) => {
                attempt += 1;
                std::thread::sleep(pause);
                continue;
            }
            Err(e) => return Err(StreamError::Read(e)),
        };
        let stable = source.listed_size().is_none_or(|s| s == counted.n);
        if stable || attempt >= attempts.max(1) {
            return Ok(StreamRead { value, stable });
        }
        attempt += 1;
        std::thread::sleep(pause);
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// A file as it was listed: where it lies beneath the device folder and which file it was,
/// so that reading it opens exactly that file, never one swapped in since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    /// The device folder, canonical.
    pub root: PathBuf,
    /// The file's canonical path relative to `root` (for a followed link, its target's).
    pub rel: PathBuf,
    /// Device and inode at listing.
    pub dev: u64,
    pub ino: u64,
    /// Size at listing.
    pub size: u64,
}

impl FileRef {
    /// The full path, for messages.
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.rel)
    }
}

/// One named byte stream from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSource {
    pub name: String,
    pub kind: ArtifactKind,
    pub meta: ArtifactMeta,
    pub data: SourceData,
    /// Expected size in bytes when known before reading (for scheduling only).
    pub size_hint: Option<u64>,
}

/// What a collection found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    pub artifacts: Vec<ArtifactSource>,
    /// Things skipped or odd, each a sentence naming the item.
    pub warnings: Vec<String>,
    /// False when something that should have been read could not be.
    pub complete: bool,
}

/// Why a collection (or a write) could not run at all, told apart so that the log and
/// the report say what to look at: the network, the device's answer, a login, a pinned
/// identity, the device's protocol, or the config.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("device `{device}` is unreachable: {why}\nfix: {fix}")]
    Unreachable {
        device: String,
        why: String,
        fix: String,
    },
    #[error("device `{device}` did not answer in time: {why}\nfix: {fix}")]
    Timeout {
        device: String,
        why: String,
        fix: String,
    },
    #[error("device `{device}` refused: {why}\nfix: {fix}")]
    Refused {
        device: String,
        why: String,
        fix: String,
    },
    #[error("device `{device}`: login failed: {why}\nfix: {fix}")]
    Auth {
        device: String,
        why: String,
        fix: String,
    },
    #[error("device `{device}`: its identity is not trusted: {why}\nfix: {fix}")]
    Identity {
        device: String,
        why: String,
        fix: String,
    },
    #[error("nothing could be read from device `{device}`: {why}\nfix: {fix}")]
    NothingRead {
        device: String,
        why: String,
        fix: String,
    },
    #[error("device `{device}` answered what its protocol does not allow: {why}\nfix: {fix}")]
    Protocol {
        device: String,
        why: String,
        fix: String,
    },
    /// The source is not there and the config marks it optional (a share mounted only
    /// at times): nothing to collect, which is not a failure.
    #[error(
        "device `{device}` is not there: {why}; it is marked optional, so nothing was collected"
    )]
    Absent { device: String, why: String },
    #[error("device `{device}`: invalid setting `{key}`: {why}")]
    Config {
        device: String,
        key: String,
        why: String,
    },
}

impl AdapterError {
    /// The same error with a sentence added to what it says happened (what was done
    /// before it, say).
    pub fn noted(mut self, note: &str) -> AdapterError {
        match &mut self {
            AdapterError::Unreachable { why, .. }
            | AdapterError::Timeout { why, .. }
            | AdapterError::Refused { why, .. }
            | AdapterError::Auth { why, .. }
            | AdapterError::Identity { why, .. }
            | AdapterError::NothingRead { why, .. }
            | AdapterError::Protocol { why, .. }
            | AdapterError::Absent { why, .. }
            | AdapterError::Config { why, .. } => {
                why.push_str("; ");
                why.push_str(note);
            }
        }
        self
    }

    /// The kind, as the log's `collect-failed` entry and the report name it.
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterError::Unreachable { .. } => "unreachable",
            AdapterError::Timeout { .. } => "timeout",
            AdapterError::Refused { .. } => "refused",
            AdapterError::Auth { .. } => "auth",
            AdapterError::Identity { .. } => "identity",
            AdapterError::NothingRead { .. } => "nothing-read",
            AdapterError::Protocol { .. } => "protocol",
            AdapterError::Config { .. } => "config",
            AdapterError::Absent { .. } => "absent",
        }
    }
}

/// A read-only collector for one device; object safe, built by the registry.
pub trait Collector: Send + Sync {
    /// The adapter's name as written in the config (`files`, `modbus`).
    fn adapter(&self) -> &'static str;
    /// Where the data comes from, for the record (a folder, an address).
    fn source(&self) -> String;
    /// The only protocol operations this collector sends.
    fn read_functions(&self) -> &'static [&'static str];
    /// Lists (and for small artifacts reads) what the device holds.
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>>;
    /// What `config check` can tell without contacting the device (a folder that does not
    /// exist yet), one sentence each.
    fn preflight(&self) -> Vec<String> {
        Vec::new()
    }
    /// What makes `config check` fail although the config parses (a device folder that
    /// does not exist and is not marked optional), one sentence each with its fix.
    /// Collections still run: one missing share never stops the other devices.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One artifact of a snapshot, to be written back onto a device.
#[derive(Clone, Debug)]
pub struct RestoreItem {
    pub name: String,
    pub kind: ArtifactKind,
    pub bytes: Vec<u8>,
}

/// One artifact that did not come back as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreFailure {
    /// Empty when it concerns the whole device.
    pub artifact: String,
    pub error: String,
}

/// What writing a snapshot back onto a device did.
#[derive(Clone, Debug, Default)]
pub struct DeviceRestore {
    /// Artifacts written (for Modbus: ranges).
    pub items: u64,
    /// Values or bytes written.
    pub written: u64,
    pub requests: u64,
    /// Items of read-only parts that were compared, not written.
    pub compared_only: Vec<String>,
    pub write_ms: u64,
    pub verify_ms: u64,
    pub failures: Vec<RestoreFailure>,
}

/// Writes a snapshot back onto a device and reads it back (restores and drills onto a
/// spare CPU or simulator). Only usable with a `WritePermit`.
pub trait Writer: Send + Sync {
    /// Whether an artifact of a snapshot is something this writer writes back (Modbus:
    /// register ranges, not the identification).
    fn takes(&self, name: &str, kind: ArtifactKind) -> bool;
    /// Writes `items`, reads them back through the adapter's read-only path, and compares.
    ///
    /// Fails before writing when nothing in `items` can be written; fails when the device
    /// cannot be reached or refuses a write.
    fn restore<'a>(
        &'a self,
        items: &'a [RestoreItem],
        permit: &'a WritePermit,
    ) -> BoxFuture<'a, Result<DeviceRestore, AdapterError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A source whose content changes on each of the first `changes` opens.
    struct Changing {
        listed: u64,
        opens: Mutex<u32>,
        changes: u32,
    }

    impl OpenStream for Changing {
        fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
            let mut n = self.opens.lock().unwrap();
            *n += 1;
            let len = if *n <= self.changes {
                self.listed + 1
            } else {
                self.listed
            };
            Ok(Box::new(std::io::Cursor::new(vec![7u8; len as usize])))
        }
        fn listed_size(&self) -> Option<u64> {
            Some(self.listed)
        }
        fn describe(&self) -> String {
            "test".into()
        }
    }

    fn read_all(r: &mut dyn Read) -> Result<usize, std::io::Error> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v.len())
    }

    #[test]
    fn a_stream_that_changes_while_read_is_read_again_then_marked_unstable() {
        let pause = std::time::Duration::ZERO;
        let s = Changing {
            listed: 10,
            opens: Mutex::new(0),
            changes: 1,
        };
        let r = read_stream(&s, 3, pause, |_| true, read_all).unwrap();
        assert_eq!((r.value, r.stable, *s.opens.lock().unwrap()), (10, true, 2));
        let s = Changing {
            listed: 10,
            opens: Mutex::new(0),
            changes: 9,
        };
        let r = read_stream(&s, 3, pause, |_| true, read_all).unwrap();
        assert_eq!(
            (r.value, r.stable, *s.opens.lock().unwrap()),
            (11, false, 3)
        );
    }
}
