//! The vault's error type. Messages say what failed and what to do next.
//!
//! Integrity problems found while verifying are findings in a report, not errors: an
//! `Err` from this crate means an operation could not be carried out.

use std::io;
use std::path::{Path, PathBuf};

use crate::key::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    // The I/O error is part of the message and deliberately not a `#[source]`: printed as
    // a chain (`{:#}`), it would appear twice.
    #[error("cannot {op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error(
        "{path} is damaged: {why}\nfix: run `plcvault verify --read-data` to see all that is affected, \
         then restore the vault folder from a good copy"
    )]
    Corrupt { path: PathBuf, why: String },
    #[error(
        "{path} is not a plcvault vault (no VAULT file)\nfix: check [vault] path in the config; \
         `plcvault collect` creates a new vault at that path on first use"
    )]
    NotAVault { path: PathBuf },
    #[error(
        "the vault marker {path} is damaged: {why}\nfix: put VAULT back from a copy of this \
         vault. Its `id` line must be the `vault` field every log entry carries (see the first \
         line of log/00000000000000000001.entry); `plcvault verify` checks the rest once it opens"
    )]
    MarkerDamaged { path: PathBuf, why: String },
    #[error(
        "vault {path} uses format {found}; this plcvault reads formats 1 and 2\nfix: use the plcvault \
         release that wrote this vault"
    )]
    Version { path: PathBuf, found: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no snapshot `{id}`{device}\nfix: list snapshots with `plcvault snapshots`")]
    SnapshotNotFound { id: String, device: String },
    #[error("snapshot id `{0}` matches more than one snapshot\nfix: give more digits of the id")]
    AmbiguousSnapshot(String),
    #[error(
        "another writer kept appending to the log ({0} attempts)\nfix: make sure only one \
         plcvault collects into this vault at a time, then run again"
    )]
    Contended(u32),
    #[error("{0}")]
    Refused(String),
    #[error(
        "refusing to write: {why}\nfix: find out what happened to the vault first (`plcvault verify` \
         names it). If a good copy exists, put it back. If this state is deliberate (an older \
         copy restored on purpose), have an approver record that in the log with \
         `plcvault recover --key APPROVER.key --reason TEXT`; writing resumes after that"
    )]
    HeadMismatch { why: String },
    #[error(
        "the verifier state {path} is damaged: {why}\nfix: if a copy of the state folder exists, \
         put it back; otherwise delete the file: the next verify then trusts the vault as it \
         finds it (a rollback made before then goes unnoticed on this host)"
    )]
    StateDamaged { path: PathBuf, why: String },
    #[error(
        "the verifier state folder {path} cannot be written ({error}); nothing was written to the \
         vault, since the head of what would be written could not be remembered\nfix: make the \
         folder writable by this user, or point [vault] state at a folder that is"
    )]
    StateNotWritable { path: PathBuf, error: io::Error },
    #[error(
        "there is no vault at {path}, but the verifier state remembers vault {id} (entry {seq}, \
         seen {seen}): the vault was deleted, moved or its disk not mounted\nfix: mount or put \
         back the vault (or a copy of it); if it is truly lost, start a new one with \
         `plcvault recover --key APPROVER.key --reason TEXT`, which records in the new log \
         which vault it replaces"
    )]
    RememberedVaultMissing {
        path: PathBuf,
        id: String,
        seq: u64,
        seen: String,
    },
}

/// Shorthand: a closure mapping an `io::Error` to `VaultError::Io` for `op` on `path`.
pub fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VaultError + 'a {
    move |error| VaultError::Io {
        op,
        path: path.to_owned(),
        error,
    }
}

pub fn corrupt(path: &Path, why: impl Into<String>) -> VaultError {
    VaultError::Corrupt {
        path: path.to_owned(),
        why: why.into(),
    }
}
