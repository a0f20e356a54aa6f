//! plcvault's device adapters: read-only collectors, one module and cargo feature per
//! protocol.
//!
//! A `Collector` lists what a device holds and hands back artifact sources; it never
//! writes to the device. The orchestrator in the binary streams those sources into the
//! vault. Adapters use the vault's plain data types (`ArtifactKind`, `ArtifactMeta`) but
//! never its storage.

use std::future::Future;
use std::path::PathBuf;

pub use vault::manifest::{ArtifactKind, ArtifactMeta};

#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "modbus")]
pub mod modbus;
#[cfg(feature = "sim")]
pub mod sim;

/// Where an artifact's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceData {
    /// Already read (registers, identification records).
    Bytes(Vec<u8>),
    /// A file to be streamed, with a stability check (see `files::read_stable`).
    File(FileRef),
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

/// Why a collection could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("device `{device}` is unreachable: {why}\nfix: {fix}")]
    Unreachable {
        device: String,
        why: String,
        fix: String,
    },
    #[error("device `{device}`: invalid setting `{key}`: {why}")]
    Config {
        device: String,
        key: String,
        why: String,
    },
}

/// A read-only collector for one device.
pub trait Collector: Send + Sync {
    /// The adapter's name as written in the config (`files`, `modbus`).
    fn adapter(&self) -> &'static str;
    /// Where the data comes from, for the record (a folder, an address).
    fn source(&self) -> String;
    /// The only protocol operations this collector sends.
    fn read_functions(&self) -> &'static [&'static str];
    /// Lists (and for small artifacts reads) what the device holds.
    fn collect(&self) -> impl Future<Output = Result<Collection, AdapterError>> + Send;
}
