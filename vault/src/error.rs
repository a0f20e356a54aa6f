//! The vault's error type. Messages say what failed and what to do next.
//!
//! Integrity problems found while verifying are findings in a report, not errors: an
//! `Err` from this crate means an operation could not be carried out.

use std::io;
use std::path::{Path, PathBuf};

use crate::key::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
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
        "vault {path} uses format {found}; this plcvault reads format 1\nfix: use the plcvault \
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
}

/// Shorthand: a closure mapping an `io::Error` to `VaultError::Io` for `op` on `path`.
pub fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VaultError + 'a {
    move |source| VaultError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

pub fn corrupt(path: &Path, why: impl Into<String>) -> VaultError {
    VaultError::Corrupt {
        path: path.to_owned(),
        why: why.into(),
    }
}
