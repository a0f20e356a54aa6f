//! Pack files: immutable containers of stored chunks, named by the SHA-256 of their bytes.
//!
//! Layout (all integers little-endian):
//! `"PLCVPACK" u32:version=1`, then the stored chunks back to back, then one 49-byte trailer
//! entry per chunk (`id[32] offset:u64 stored_len:u32 plain_len:u32 codec:u8`), then a
//! 24-byte footer (`trailer_offset:u64 count:u32 reserved:u32=0 "PLCVEND1"`).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::atomic;
use crate::error::{VaultError, corrupt, io_err};
use crate::hash::Hash;

pub const MAGIC: &[u8; 8] = b"PLCVPACK";
pub const VERSION: u32 = 1;
pub const FOOTER_MAGIC: &[u8; 8] = b"PLCVEND1";
pub const HEADER_LEN: u64 = 12;
pub const ENTRY_LEN: usize = 49;
pub const FOOTER_LEN: usize = 24;
/// A pack is closed once it holds this many bytes, or this many chunks.
pub const TARGET_SIZE: u64 = 32 * 1024 * 1024;
pub const TARGET_ENTRIES: usize = 100_000;
/// The largest pack a reader accepts, and the most chunks in one (writers stay far below
/// both): a pack the log names with a larger size is damage, never read.
pub const MAX_PACK_SIZE: u64 = 128 * 1024 * 1024;
pub const MAX_PACK_ENTRIES: u64 = 1_000_000;

/// How a chunk's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Raw = 0,
    Zstd = 1,
}

/// Where one chunk lives inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: Hash,
    pub offset: u64,
    pub stored_len: u32,
    pub plain_len: u32,
    pub codec: Codec,
}

/// A finished pack.
#[derive(Clone, Debug)]
pub struct PackInfo {
    pub id: Hash,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

/// `packs/ab/abcdef....pack`
pub fn pack_path(root: &Path, id: &Hash) -> PathBuf {
    let hex = id.to_hex();
    root.join("packs")
        .join(&hex[..2])
        .join(format!("{hex}.pack"))
}

/// Writes one pack into a temp file; `finish` names it by its hash and moves it in place.
pub struct PackWriter {
    file: File,
    tmp: PathBuf,
    hasher: Sha256,
    len: u64,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    /// Starts a pack in `tmp_dir`.
    ///
    /// Fails when the temp file cannot be created.
    pub fn create(tmp_dir: &Path) -> Result<PackWriter, VaultError> {
        let (file, tmp) =
            atomic::create_temp(tmp_dir, "pack").map_err(io_err("create", tmp_dir))?;
        let mut w = PackWriter {
            file,
            tmp,
            hasher: Sha256::new(),
            len: 0,
            entries: Vec::new(),
        };
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&VERSION.to_le_bytes());
        w.write(&header)?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), VaultError> {
        self.file
            .write_all(bytes)
            .map_err(io_err("write", &self.tmp))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Appends a stored chunk.
    ///
    /// Fails on a write error.
    pub fn add(
        &mut self,
        id: Hash,
        plain_len: u32,
        codec: Codec,
        stored: &[u8],
    ) -> Result<(), VaultError> {
        let offset = self.len;
        self.write(stored)?;
        self.entries.push(PackEntry {
            id,
            offset,
            stored_len: stored.len() as u32,
            plain_len,
            codec,
        });
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Chunks added so far.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// Writes the trailer, syncs, and renames the pack to `packs/xx/<sha256>.pack`.
    ///
    /// Fails on a write, sync or rename error; the temp file is removed then.
    pub fn finish(mut self, root: &Path) -> Result<PackInfo, VaultError> {
        let trailer_offset = self.len;
        let mut trailer = Vec::with_capacity(self.entries.len() * ENTRY_LEN + FOOTER_LEN);
        for e in &self.entries {
            trailer.extend_from_slice(&e.id.0);
            trailer.extend_from_slice(&e.offset.to_le_bytes());
            trailer.extend_from_slice(&e.stored_len.to_le_bytes());
            trailer.extend_from_slice(&e.plain_len.to_le_bytes());
            trailer.push(e.codec as u8);
        }
        trailer.extend_from_slice(&trailer_offset.to_le_bytes());
        trailer.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        trailer.extend_from_slice(&0u32.to_le_bytes());
        trailer.extend_from_slice(FOOTER_MAGIC);
        let result = (|| {
            self.write(&trailer)?;
            self.file.sync_all().map_err(io_err("sync", &self.tmp))?;
            let id = Hash::from_hasher(std::mem::take(&mut self.hasher));
            let dest = pack_path(root, &id);
            let dir = dest.parent().expect("pack path has a parent");
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            fs::rename(&self.tmp, &dest).map_err(io_err("rename into place", &dest))?;
            atomic::sync_dir(dir).map_err(io_err("sync", dir))?;
            Ok(PackInfo {
                id,
                size: self.len,
                entries: std::mem::take(&mut self.entries),
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result
    }

    /// Throws the unfinished pack away.
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// The largest plain chunk (the chunker's maximum); a trailer entry claiming more is damage.
pub const MAX_PLAIN_LEN: u32 = crate::chunker::MAX_SIZE as u32;

/// Reads and checks a pack's trailer. Returns the file size and the entries. With
/// `expected_size` (the size the log names) a file of another size is refused before
/// anything else is read.
///
/// Every number in the footer and trailer is checked before it is used: the trailer lies
/// inside the file, `count` entries fit in it exactly, the entries cover the data without
/// gaps, and every chunk is at most `MAX_PLAIN_LEN` bytes (stored raw at exactly its plain
/// length, or compressed to fewer bytes). Memory used is bounded by the file size.
///
/// Fails when the file cannot be read or its header, footer or trailer is malformed.
pub fn read_trailer(
    path: &Path,
    expected_size: Option<u64>,
) -> Result<(u64, Vec<PackEntry>), VaultError> {
    let f = crate::fsread::open_regular(path).map_err(io_err("open", path))?;
    let size = f.metadata().map_err(io_err("stat", path))?.len();
    if let Some(expected) = expected_size.filter(|&e| e != size) {
        return Err(corrupt(
            path,
            format!("pack is {size} bytes, the log says {expected}"),
        ));
    }
    let entries = parse_trailer(f, size, path)?;
    Ok((size, entries))
}

/// Checks the header, footer and trailer of a pack of `size` bytes read from `f` (a file,
/// or the pack's bytes already in memory), and returns the trailer's entries.
///
/// Fails when they are malformed or cannot be read.
pub fn parse_trailer<R: Read + Seek>(
    mut f: R,
    size: u64,
    path: &Path,
) -> Result<Vec<PackEntry>, VaultError> {
    let footer_len = FOOTER_LEN as u64;
    if size > MAX_PACK_SIZE {
        return Err(corrupt(
            path,
            format!("pack is {size} bytes, more than the {MAX_PACK_SIZE} a pack can hold"),
        ));
    }
    if size < HEADER_LEN + footer_len {
        return Err(corrupt(path, format!("pack is truncated ({size} bytes)")));
    }
    let mut header = [0u8; 12];
    f.read_exact(&mut header).map_err(io_err("read", path))?;
    if &header[..8] != MAGIC || header[8..12] != VERSION.to_le_bytes() {
        return Err(corrupt(path, "pack header is not PLCVPACK version 1"));
    }
    let mut footer = [0u8; FOOTER_LEN];
    f.seek(SeekFrom::Start(size - footer_len))
        .and_then(|_| f.read_exact(&mut footer))
        .map_err(io_err("read", path))?;
    if &footer[16..24] != FOOTER_MAGIC {
        return Err(corrupt(path, "pack footer is missing (truncated pack?)"));
    }
    let trailer_offset = u64::from_le_bytes(footer[0..8].try_into().expect("8 bytes"));
    let count = u64::from(u32::from_le_bytes(
        footer[8..12].try_into().expect("4 bytes"),
    ));
    // The trailer runs from `trailer_offset` to the footer: it must lie inside the file
    // and hold exactly `count` entries. No arithmetic here can wrap.
    let trailer_len = (size - footer_len).checked_sub(trailer_offset);
    match trailer_len {
        Some(len)
            if trailer_offset >= HEADER_LEN
                && count <= MAX_PACK_ENTRIES
                && len == count * ENTRY_LEN as u64 => {}
        _ => {
            return Err(corrupt(
                path,
                format!(
                    "pack trailer does not match the file size (footer claims {count} entries \
                     at offset {trailer_offset} in a file of {size} bytes)"
                ),
            ));
        }
    }
    f.seek(SeekFrom::Start(trailer_offset))
        .map_err(io_err("read", path))?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, f);
    // Grows as entries are read, never sized from `count` alone.
    let mut entries = Vec::new();
    let mut expected_offset = HEADER_LEN;
    let mut raw = [0u8; ENTRY_LEN];
    for n in 0..count {
        reader.read_exact(&mut raw).map_err(io_err("read", path))?;
        let e = PackEntry {
            id: Hash(raw[0..32].try_into().expect("32 bytes")),
            offset: u64::from_le_bytes(raw[32..40].try_into().expect("8 bytes")),
            stored_len: u32::from_le_bytes(raw[40..44].try_into().expect("4 bytes")),
            plain_len: u32::from_le_bytes(raw[44..48].try_into().expect("4 bytes")),
            codec: match raw[48] {
                0 => Codec::Raw,
                1 => Codec::Zstd,
                c => return Err(corrupt(path, format!("unknown codec {c} in pack trailer"))),
            },
        };
        if e.offset != expected_offset {
            return Err(corrupt(
                path,
                format!("pack trailer entry {n} is not where the previous chunk ended"),
            ));
        }
        let lengths_ok = e.plain_len >= 1
            && e.plain_len <= MAX_PLAIN_LEN
            && match e.codec {
                Codec::Raw => e.stored_len == e.plain_len,
                Codec::Zstd => e.stored_len >= 1 && e.stored_len < e.plain_len,
            };
        if !lengths_ok {
            return Err(corrupt(
                path,
                format!(
                    "pack trailer entry {n} has impossible lengths (stored {}, plain {}, at \
                     most {MAX_PLAIN_LEN})",
                    e.stored_len, e.plain_len
                ),
            ));
        }
        // Both terms are below 2^33 here, and the sum is compared with the trailer offset.
        expected_offset += u64::from(e.stored_len);
        if expected_offset > trailer_offset {
            return Err(corrupt(
                path,
                "pack trailer entries run past the pack's data",
            ));
        }
        entries.push(e);
    }
    if expected_offset != trailer_offset {
        return Err(corrupt(path, "pack trailer does not cover the pack's data"));
    }
    Ok(entries)
}

/// Reusable buffers for reading chunks back.
pub struct ChunkReader {
    stored: Vec<u8>,
    plain: Vec<u8>,
    dctx: zstd::bulk::Decompressor<'static>,
}

impl ChunkReader {
    /// Fails only when zstd cannot allocate its context.
    pub fn new() -> Result<ChunkReader, VaultError> {
        Ok(ChunkReader {
            stored: Vec::new(),
            plain: Vec::new(),
            dctx: zstd::bulk::Decompressor::new()
                .map_err(io_err("start zstd decompressor for", Path::new("pack")))?,
        })
    }

    /// Reads the chunk `entry` from the open pack `file` and decompresses it. With
    /// `check_id` its SHA-256 must be its id; without, only its length is checked (for
    /// callers that hash the whole artifact anyway). Returns the plain bytes.
    ///
    /// Fails when the read fails or the bytes do not match (`VaultError::Corrupt`).
    pub fn read(
        &mut self,
        file: &mut File,
        path: &Path,
        entry: &PackEntry,
        check_id: bool,
    ) -> Result<&[u8], VaultError> {
        if entry.stored_len > MAX_PLAIN_LEN || entry.plain_len > MAX_PLAIN_LEN {
            return Err(corrupt(path, "chunk is larger than the format allows"));
        }
        self.stored.resize(entry.stored_len as usize, 0);
        file.seek(SeekFrom::Start(entry.offset))
            .and_then(|_| file.read_exact(&mut self.stored))
            .map_err(io_err("read", path))?;
        self.decode(path, entry, check_id)
    }

    /// Whether stored bytes in hand decode to the entry's length and id, without copying
    /// them (verify's streaming read).
    pub fn check(&mut self, stored: &[u8], entry: &PackEntry) -> bool {
        let want = entry.plain_len as usize;
        if entry.plain_len > MAX_PLAIN_LEN || stored.len() != entry.stored_len as usize {
            return false;
        }
        match entry.codec {
            Codec::Raw => stored.len() == want && Hash::of(stored) == entry.id,
            Codec::Zstd => {
                self.plain.resize(want, 0);
                matches!(
                    self.dctx.decompress_to_buffer(stored, &mut self.plain[..want]),
                    Ok(n) if n == want && Hash::of(&self.plain[..n]) == entry.id
                )
            }
        }
    }

    /// Decodes stored bytes already in hand (`stored`) and checks them against the entry.
    pub fn decode_from(
        &mut self,
        stored: &[u8],
        path: &Path,
        entry: &PackEntry,
    ) -> Result<&[u8], VaultError> {
        self.stored.clear();
        self.stored.extend_from_slice(stored);
        self.decode(path, entry, true)
    }

    fn decode(
        &mut self,
        path: &Path,
        entry: &PackEntry,
        check_id: bool,
    ) -> Result<&[u8], VaultError> {
        let plain: &[u8] = match entry.codec {
            Codec::Raw => &self.stored,
            Codec::Zstd => {
                // The output buffer is exactly `plain_len` (at most MAX_PLAIN_LEN) bytes:
                // a frame that would decompress to more fails instead of growing it.
                let want = (entry.plain_len.min(MAX_PLAIN_LEN)) as usize;
                self.plain.resize(want, 0);
                let n = self
                    .dctx
                    .decompress_to_buffer(&self.stored[..], &mut self.plain[..want])
                    .map_err(|e| {
                        corrupt(
                            path,
                            format!("chunk {} does not decompress: {e}", entry.id.short()),
                        )
                    })?;
                &self.plain[..n]
            }
        };
        if plain.len() != entry.plain_len as usize || (check_id && Hash::of(plain) != entry.id) {
            return Err(corrupt(
                path,
                format!("chunk {} does not match its SHA-256", entry.id.short()),
            ));
        }
        Ok(plain)
    }
}
