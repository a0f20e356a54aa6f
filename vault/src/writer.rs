//! Storing artifacts: chunk, hash, deduplicate, compress and pack, then commit a snapshot.
//!
//! A `Writer` is shared by worker threads (`store` takes `&self`); each thread brings its
//! own `Scratch` (chunk buffer, zstd context, output buffer) so nothing is reallocated per
//! chunk. Nothing becomes visible until `commit` has synced the packs and the manifest and
//! appended the signed log entry; a writer dropped before that leaves only unreferenced
//! files that verify ignores.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::chunker::{ChunkError, Chunker};
use crate::error::{VaultError, io_err};
use crate::hash::Hash;
use crate::index::Index;
use crate::key::SecretKey;
use crate::log::{Entry, Event, PackRef};
use crate::manifest::{self, Manifest};
use crate::pack::{Codec, PackInfo, PackWriter, TARGET_SIZE};
use crate::repository::Vault;

/// zstd level used unless the config says otherwise. On PLC exports level 1 stores within
/// 2% of level 3's size (and as small as restic's default) while compressing faster.
pub const DEFAULT_LEVEL: i32 = 1;

/// Per-thread buffers.
pub struct Scratch {
    chunker: Chunker,
    cctx: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
    level: i32,
}

impl Scratch {
    /// Fails only when zstd cannot allocate a context.
    pub fn new(level: i32) -> Result<Scratch, VaultError> {
        Ok(Scratch {
            chunker: Chunker::new(),
            cctx: zstd::bulk::Compressor::new(level).map_err(io_err(
                "start zstd compressor for",
                std::path::Path::new("vault"),
            ))?,
            out: Vec::new(),
            level,
        })
    }
}

/// The result of storing one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: Hash,
    pub chunks: Vec<(Hash, u32)>,
    /// Bytes of chunks that were new to the vault (before compression).
    pub new_bytes: u64,
}

/// Why storing a stream failed: the source or the vault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading the source failed: {0}")]
    Source(std::io::Error),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// What a commit wrote.
#[derive(Clone, Debug)]
pub struct Committed {
    pub entry: Entry,
    pub manifest: Hash,
    pub packs: Vec<PackRef>,
    pub stored_bytes: u64,
}

pub struct Writer<'a> {
    vault: &'a Vault,
    index: &'a Index,
    /// Whole-artifact SHA-256 -> chunk list, from earlier snapshots.
    known: HashMap<Hash, Vec<(Hash, u32)>>,
    claimed: Mutex<HashSet<Hash>>,
    idle: Mutex<Vec<PackWriter>>,
    finished: Mutex<Vec<PackInfo>>,
    new_bytes: std::sync::atomic::AtomicU64,
}

impl<'a> Writer<'a> {
    /// A writer that deduplicates against `index` (the committed packs).
    pub fn new(vault: &'a Vault, index: &'a Index) -> Writer<'a> {
        Writer {
            vault,
            index,
            known: HashMap::new(),
            claimed: Mutex::new(HashSet::new()),
            idle: Mutex::new(Vec::new()),
            finished: Mutex::new(Vec::new()),
            new_bytes: Default::default(),
        }
    }

    /// Lets `lookup` reuse the chunk lists of `manifest`'s artifacts (typically the
    /// device's previous snapshot).
    pub fn remember(&mut self, manifest: &Manifest) {
        for a in &manifest.artifacts {
            self.known.insert(a.sha256, a.chunks.clone());
        }
    }

    /// An artifact whose whole SHA-256 is already known: if an earlier snapshot had the
    /// same content (or it is one chunk the vault holds), returns its chunk list without
    /// reading the content again. `None` when any chunk is not in a committed pack.
    pub fn lookup(&self, sha256: &Hash, size: u64) -> Option<Stored> {
        let chunks = match self.known.get(sha256) {
            Some(c) => c.clone(),
            None if size > 0 && size <= crate::chunker::MIN_SIZE as u64 => {
                vec![(*sha256, size as u32)]
            }
            None => return None,
        };
        let total: u64 = chunks.iter().map(|c| c.1 as u64).sum();
        if total != size || !chunks.iter().all(|(id, _)| self.index.contains(id)) {
            return None;
        }
        Some(Stored {
            size,
            sha256: *sha256,
            chunks,
            new_bytes: 0,
        })
    }

    /// Stores bytes already in memory whose SHA-256 the caller computed.
    ///
    /// Fails when writing to the vault fails.
    pub fn store_bytes(
        &self,
        scratch: &mut Scratch,
        data: &[u8],
        sha256: Hash,
    ) -> Result<Stored, VaultError> {
        let Scratch {
            chunker, cctx, out, ..
        } = scratch;
        let mut chunks = Vec::new();
        let mut new_bytes = 0u64;
        let mut start = 0;
        while start < data.len() {
            let len = chunker.cut(&data[start..]);
            let piece = &data[start..start + len];
            let id = if start == 0 && len == data.len() {
                sha256
            } else {
                Hash::of(piece)
            };
            chunks.push((id, len as u32));
            if self.put_chunk(cctx, out, id, piece)? {
                new_bytes += len as u64;
            }
            start += len;
        }
        self.new_bytes
            .fetch_add(new_bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(Stored {
            size: data.len() as u64,
            sha256,
            chunks,
            new_bytes,
        })
    }

    /// Like `store`, for large streams: chunk boundaries and the whole-stream SHA-256 are
    /// computed on this thread while a helper thread hashes, compresses and packs the
    /// chunks, so one large file uses two cores. Memory stays bounded (four chunks in
    /// flight).
    ///
    /// Fails as `store` does.
    pub fn store_pipelined<R: Read>(
        &self,
        scratch: &mut Scratch,
        reader: R,
    ) -> Result<Stored, StoreError> {
        use std::sync::mpsc;
        let level = scratch.level;
        let mut hasher = Sha256::new();
        let mut lens = Vec::new();
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
            let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
            let helper = s.spawn(move || -> Result<(Vec<Hash>, u64), VaultError> {
                let mut helper_scratch = Scratch::new(level)?;
                let mut ids = Vec::new();
                let mut new_bytes = 0u64;
                for buf in rx {
                    let id = Hash::of(&buf);
                    if self.put_chunk(
                        &mut helper_scratch.cctx,
                        &mut helper_scratch.out,
                        id,
                        &buf,
                    )? {
                        new_bytes += buf.len() as u64;
                    }
                    ids.push(id);
                    let _ = back_tx.send(buf);
                }
                Ok((ids, new_bytes))
            });
            let read = scratch
                .chunker
                .for_each(reader, |data, _| -> Result<(), ()> {
                    hasher.update(data);
                    lens.push(data.len() as u32);
                    let mut buf = back_rx.try_recv().unwrap_or_default();
                    buf.clear();
                    buf.extend_from_slice(data);
                    // The helper stopped (a vault error): stop reading; its error is reported.
                    tx.send(buf).map_err(|_| ())
                });
            drop(tx);
            let helped = helper
                .join()
                .expect("the store helper thread does not panic");
            let (ids, new_bytes) = helped?;
            let size = match read {
                Ok(n) => n,
                Err(ChunkError::Read(e)) => return Err(StoreError::Source(e)),
                Err(ChunkError::Sink(())) => {
                    return Err(StoreError::Vault(VaultError::Refused(
                        "the chunk writer stopped early".into(),
                    )));
                }
            };
            self.new_bytes
                .fetch_add(new_bytes, std::sync::atomic::Ordering::Relaxed);
            Ok(Stored {
                size,
                sha256: Hash::from_hasher(std::mem::take(&mut hasher)),
                chunks: ids.into_iter().zip(lens.iter().copied()).collect(),
                new_bytes,
            })
        })
    }

    /// Stores everything `reader` yields, streaming.
    ///
    /// Fails with `Source` when the reader fails, `Vault` when writing fails.
    pub fn store<R: Read>(&self, scratch: &mut Scratch, reader: R) -> Result<Stored, StoreError> {
        let mut hasher = Sha256::new();
        let mut chunks = Vec::new();
        let mut new_bytes = 0u64;
        let Scratch {
            chunker, cctx, out, ..
        } = scratch;
        let mut single = None;
        let size = chunker
            .for_each(reader, |data, last| -> Result<(), VaultError> {
                let id = Hash::of(data);
                // A one-chunk stream's SHA-256 is its chunk id: hash its bytes once.
                if chunks.is_empty() && last {
                    single = Some(id);
                } else {
                    hasher.update(data);
                }
                chunks.push((id, data.len() as u32));
                if self.put_chunk(cctx, out, id, data)? {
                    new_bytes += data.len() as u64;
                }
                Ok(())
            })
            .map_err(|e| match e {
                ChunkError::Read(e) => StoreError::Source(e),
                ChunkError::Sink(e) => StoreError::Vault(e),
            })?;
        self.new_bytes
            .fetch_add(new_bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(Stored {
            size,
            sha256: single.unwrap_or_else(|| Hash::from_hasher(hasher)),
            chunks,
            new_bytes,
        })
    }

    /// Stores one chunk unless the vault or this writer has it. True when it was new.
    fn put_chunk(
        &self,
        cctx: &mut zstd::bulk::Compressor<'static>,
        out: &mut Vec<u8>,
        id: Hash,
        data: &[u8],
    ) -> Result<bool, VaultError> {
        if self.index.contains(&id) {
            return Ok(false);
        }
        if !self.claimed.lock().expect("claimed set lock").insert(id) {
            return Ok(false);
        }
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        let compressed = cctx
            .compress_to_buffer(data, out)
            .ok()
            .filter(|&n| n + n / 32 < data.len());
        let (codec, stored) = match compressed {
            Some(n) => (Codec::Zstd, &out[..n]),
            None => (Codec::Raw, data),
        };
        let popped = self.idle.lock().expect("idle packs lock").pop();
        let mut pack = match popped {
            Some(p) => p,
            None => PackWriter::create(&self.vault.tmp_dir())?,
        };
        if let Err(e) = pack.add(id, data.len() as u32, codec, stored) {
            pack.abandon();
            return Err(e);
        }
        if pack.len() >= TARGET_SIZE || pack.entries() >= crate::pack::TARGET_ENTRIES {
            let info = pack.finish(self.vault.root())?;
            self.finished
                .lock()
                .expect("finished packs lock")
                .push(info);
        } else {
            self.idle.lock().expect("idle packs lock").push(pack);
        }
        Ok(true)
    }

    /// Bytes of new chunks stored so far (before compression).
    pub fn new_bytes(&self) -> u64 {
        self.new_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes the open packs, writes the manifest and appends the signed snapshot entry.
    /// This is the commit point.
    ///
    /// Fails on I/O errors; then nothing is visible in the log.
    pub fn commit(
        self,
        manifest: &Manifest,
        times: (String, String),
        key: &SecretKey,
    ) -> Result<Committed, VaultError> {
        // Never sign what this vault's own verify would call damaged, or a restore refuse.
        manifest.check_tree().map_err(|why| {
            VaultError::Refused(format!(
                "not committing the snapshot of `{}`: {why}",
                manifest.device
            ))
        })?;
        let idle = std::mem::take(&mut *self.idle.lock().expect("idle packs lock"));
        let mut finished = std::mem::take(&mut *self.finished.lock().expect("finished lock"));
        let mut idle = idle.into_iter();
        while let Some(p) = idle.next() {
            match p.finish(self.vault.root()) {
                Ok(info) => finished.push(info),
                Err(e) => {
                    idle.for_each(PackWriter::abandon);
                    return Err(e);
                }
            }
        }
        let bytes = manifest.to_bytes();
        let id = Hash::of(&bytes);
        let path = manifest::manifest_path(self.vault.root(), &id);
        // Content-addressed: an existing file with this name already holds these bytes
        // (verify checks that), so an unchanged device writes nothing here.
        if !path.exists() {
            crate::atomic::write_replace(&self.vault.tmp_dir(), &path, &bytes)
                .map_err(io_err("write manifest", &path))?;
        }
        let packs: Vec<PackRef> = finished
            .iter()
            .map(|p| PackRef {
                id: p.id,
                size: p.size,
            })
            .collect();
        let stored_bytes = packs.iter().map(|p| p.size).sum();
        let event = Event::Snapshot {
            device: manifest.device.clone(),
            started: times.0,
            finished: times.1,
            manifest: id,
            manifest_size: bytes.len() as u64,
            complete: manifest.complete,
            artifacts: manifest.artifacts.len() as u64,
            bytes: manifest.total_size(),
            packs: packs.clone(),
        };
        let entry = crate::guard::append(self.vault, key, &event)?;
        Ok(Committed {
            entry,
            manifest: id,
            packs,
            stored_bytes,
        })
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if let Ok(mut idle) = self.idle.lock() {
            for p in idle.drain(..) {
                p.abandon();
            }
        }
    }
}
