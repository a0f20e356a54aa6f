//! plcvault's vault: a synchronous, offline store of signed, compressed, content-addressed
//! snapshots with a hash-chained log. No network, no async runtime.
//!
//! The byte-level format is in `FORMAT.md` beside this crate.

pub mod append;
pub mod atomic;
pub mod catalog;
pub mod chunker;
pub mod error;
pub mod finding;
pub mod fsread;
pub mod guard;
pub mod hash;
pub mod history;
pub mod index;
pub mod json;
pub mod key;
pub mod log;
pub mod manifest;
pub mod pack;
pub mod parallel;
pub mod prune;
pub mod replica;
pub mod repository;
pub mod restore;
pub mod state;
pub mod storage;
pub mod tiles;
pub mod tlog;
pub mod verify;
pub mod writer;

pub use error::VaultError;
pub use finding::{Finding, FindingKind};
pub use hash::Hash;
pub use history::{ApprovalRecord, DrillRecord, History, SnapshotRecord};
pub use index::Index;
pub use key::{PublicKey, Role, SecretKey, TrustedKey};
pub use manifest::{ArtifactEntry, ArtifactKind, ArtifactMeta, ArtifactStatus, Manifest};
pub use repository::{Hold, Trust, Vault};
pub use restore::{RestoreOptions, RestoreReport, read_artifact, restore, write_artifact};
pub use verify::{VerifyOptions, VerifyReport, verify};
pub use writer::{Scratch, StoreError, Stored, Writer};
