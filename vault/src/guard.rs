//! Appending to a vault guarded by the verifier's memory: a writer refuses a log that was
//! rolled back, cut, rewritten or replaced (`check`), appends, then advances the memory;
//! and a vault that the memory remembers is never silently created anew
//! (`open_for_append`).

use std::path::Path;

use crate::error::VaultError;
use crate::hash::Hash;
use crate::key::SecretKey;
use crate::log::{Entry, Event};
use crate::repository::Vault;
use crate::state;

/// Opens the vault at `root` for writing, guarded by the memory in `state_dir`, or
/// creates it when there is none — unless the memory remembers a vault, since then the
/// remembered one was deleted or moved.
///
/// Fails when the vault cannot be opened or created, or with `RememberedVaultMissing`.
pub fn open_for_append(root: &Path, state_dir: &Path) -> Result<Vault, VaultError> {
    if !root.join("VAULT").exists() {
        let remembered = state::remembered(state_dir)?;
        if let Some((id, mem)) = remembered.into_iter().next() {
            return Err(VaultError::RememberedVaultMissing {
                path: root.to_owned(),
                id,
                seq: mem.seq,
                seen: mem.seen,
            });
        }
        if state::remembers_any(state_dir) {
            return Err(VaultError::RememberedVaultMissing {
                path: root.to_owned(),
                id: "(its memory is damaged)".into(),
                seq: 0,
                seen: "?".into(),
            });
        }
    }
    Ok(Vault::open_or_create(root)?.remembering(state_dir))
}

/// Before an append: the log must extend the remembered head, and the vault must be the
/// one remembered. A no-op for a vault opened without a state folder.
///
/// Fails with `HeadMismatch` naming the remembered and the found head, or when the state
/// or the log cannot be read.
pub fn check(vault: &Vault) -> Result<(), VaultError> {
    let Some(dir) = vault.state_dir() else {
        return Ok(());
    };
    let memory = state::Memory::load(dir, vault.id())?;
    if memory.this.is_none() && memory.retired.is_none() && memory.others.is_empty() {
        return Ok(());
    }
    let newest = crate::log::newest(vault.root())?;
    let hash_at = |seq: u64| {
        crate::log::read(vault.root(), seq)
            .ok()
            .map(|(bytes, _)| Hash::of(&bytes))
    };
    match memory.problem(newest, hash_at) {
        None => Ok(()),
        Some(p) => Err(VaultError::HeadMismatch {
            why: format!("{}: {}", p.kind(), p.message()),
        }),
    }
}

/// Appends `event`, signed by `key`, after the newest entry. Retries when another writer
/// takes the next number first. When the vault is guarded by a verifier state, first
/// refuses a log that does not extend the remembered head (`check`), and afterwards
/// remembers the new entry.
///
/// Fails on I/O errors, with `HeadMismatch` for a rolled-back, diverged or replaced log,
/// or with `Contended` after many lost races.
pub fn append(vault: &Vault, key: &SecretKey, event: &Event) -> Result<Entry, VaultError> {
    check(vault)?;
    let entry = crate::append::append_unguarded(vault.root(), vault.id(), key, event)?;
    if let Some(dir) = vault.state_dir() {
        state::remember(dir, vault.id(), (entry.file_seq, entry.hash))?;
    }
    Ok(entry)
}
