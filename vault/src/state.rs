//! The verifier's memory, kept outside the vault: the newest log head it has seen.
//!
//! A vault copied back from an older backup, or a log cut short, shows up as a head older
//! than the remembered one (`rollback`); a rewritten history as a different entry at the
//! remembered number (`diverged`). The file is `<state>/<vault id>.head`, JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{VaultError, corrupt, io_err};
use crate::finding::{Finding, FindingKind};
use crate::hash::Hash;
use crate::history::History;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadMemory {
    pub seq: u64,
    pub hash: Hash,
    /// When it was seen, RFC 3339.
    pub seen: String,
}

fn head_path(state_dir: &Path, vault_id: &str) -> PathBuf {
    state_dir.join(format!("{vault_id}.head"))
}

/// The remembered head, if any.
///
/// Fails when the state file exists but cannot be read or parsed.
pub fn load(state_dir: &Path, vault_id: &str) -> Result<Option<HeadMemory>, VaultError> {
    let path = head_path(state_dir, vault_id);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            corrupt(
                &path,
                format!("verifier state does not parse: {e}; if you trust the vault as it is now, delete the file and verify again"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Compares the log with the remembered head.
pub fn check(remembered: &HeadMemory, history: &History) -> Vec<Finding> {
    let newest = history.head().map(|(s, _)| s).unwrap_or(0);
    match history
        .entries
        .iter()
        .find(|c| c.entry.file_seq == remembered.seq)
    {
        Some(c) if c.entry.hash == remembered.hash => Vec::new(),
        Some(_) => vec![
            Finding::new(
                FindingKind::Diverged,
                format!(
                    "log entry {} differs from the one this verifier saw on {} (history rewritten, or an older vault copy written to since)",
                    remembered.seq, remembered.seen
                ),
            )
            .seq(remembered.seq),
        ],
        None if newest < remembered.seq => vec![
            Finding::new(
                FindingKind::Rollback,
                format!(
                    "the log ends at entry {newest}, but this verifier saw entry {} on {} (vault rolled back to an older copy, or log truncated)",
                    remembered.seq, remembered.seen
                ),
            )
            .seq(remembered.seq),
        ],
        // The remembered entry is missing inside the log: the gap finding covers it.
        None => Vec::new(),
    }
}

/// Records `head` as seen, unless an equal or newer head is already remembered.
///
/// Fails when the state folder cannot be written.
pub fn remember(state_dir: &Path, vault_id: &str, head: (u64, Hash)) -> Result<(), VaultError> {
    if let Ok(Some(old)) = load(state_dir, vault_id)
        && old.seq > head.0
    {
        return Ok(());
    }
    std::fs::create_dir_all(state_dir).map_err(io_err("create", state_dir))?;
    let mem = HeadMemory {
        seq: head.0,
        hash: head.1,
        seen: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let bytes = serde_json::to_vec_pretty(&mem).expect("head memory serializes");
    let path = head_path(state_dir, vault_id);
    crate::atomic::write_replace(state_dir, &path, &bytes).map_err(io_err("write", &path))
}
