//! Where each chunk lives: a map built from the trailers of the packs the log names.
//!
//! The index is a hint derived from packs, never a source of truth: every read re-hashes
//! the chunk it returns. Packs that no trusted log entry names (left by a crashed writer)
//! are not indexed, so a snapshot can never come to depend on them.

use std::collections::HashMap;

use crate::error::VaultError;
use crate::hash::Hash;
use crate::log::PackRef;
use crate::pack::{self, PackEntry};
use crate::repository::Vault;

/// The most chunks indexed from packs that only untrusted log entries name.
pub const MAX_UNTRUSTED_CHUNKS: usize = 100_000;

/// A chunk's place: which pack (by position in `Index::packs`) and where in it.
#[derive(Clone, Copy, Debug)]
pub struct ChunkLoc {
    pub pack: u32,
    pub entry: PackEntry,
}

#[derive(Default, Debug)]
pub struct Index {
    pub packs: Vec<Hash>,
    /// Each pack's size as the log names it (the file had it when indexed).
    pub pack_sizes: Vec<u64>,
    map: HashMap<Hash, ChunkLoc>,
}

/// A pack that could not be indexed, and why.
#[derive(Debug)]
pub struct PackProblem {
    pub pack: PackRef,
    pub error: VaultError,
}

impl Index {
    /// Reads the trailers of `packs`. Packs that are missing, of the wrong size or
    /// malformed are left out and returned as problems.
    pub fn load(vault: &Vault, packs: &[PackRef]) -> (Index, Vec<PackProblem>) {
        let mut index = Index::default();
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for p in packs {
            if !seen.insert(p.id) {
                continue;
            }
            let path = pack::pack_path(vault.root(), &p.id);
            match pack::read_trailer(&path, Some(p.size)) {
                Ok((_, entries)) => index.add_pack(p.id, p.size, &entries),
                Err(error) => problems.push(PackProblem {
                    pack: p.clone(),
                    error,
                }),
            }
        }
        (index, problems)
    }

    /// The packs a reader may take chunks from: every pack a trusted snapshot entry names,
    /// and packs named only by entries that are not trusted (damage stays where it is)
    /// up to `MAX_UNTRUSTED_CHUNKS` chunks in all, so that forged entries naming many
    /// packs of tiny chunks cannot fill memory. Packs over that budget are problems.
    pub fn load_reading(vault: &Vault, history: &crate::History) -> (Index, Vec<PackProblem>) {
        let trusted = history.committed_packs();
        let named: std::collections::HashSet<Hash> = trusted.iter().map(|p| p.id).collect();
        let (mut index, mut problems) = Index::load(vault, &trusted);
        let mut budget = MAX_UNTRUSTED_CHUNKS;
        let mut seen = named;
        for p in history.packs_for_reading() {
            if !seen.insert(p.id) {
                continue;
            }
            let path = pack::pack_path(vault.root(), &p.id);
            match pack::read_trailer(&path, Some(p.size)) {
                Ok((_, entries)) if entries.len() <= budget => {
                    budget -= entries.len();
                    index.add_pack(p.id, p.size, &entries);
                }
                Ok(_) => problems.push(PackProblem {
                    pack: p.clone(),
                    error: crate::error::corrupt(
                        &path,
                        format!(
                            "not indexed: packs named only by untrusted entries hold more than {MAX_UNTRUSTED_CHUNKS} chunks"
                        ),
                    ),
                }),
                Err(error) => problems.push(PackProblem { pack: p, error }),
            }
        }
        (index, problems)
    }

    pub fn add_pack(&mut self, id: Hash, size: u64, entries: &[PackEntry]) {
        let n = self.packs.len() as u32;
        self.packs.push(id);
        self.pack_sizes.push(size);
        for e in entries {
            self.map
                .entry(e.id)
                .or_insert(ChunkLoc { pack: n, entry: *e });
        }
    }

    pub fn get(&self, id: &Hash) -> Option<&ChunkLoc> {
        self.map.get(id)
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.map.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
