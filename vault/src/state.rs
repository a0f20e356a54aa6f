//! The verifier's memory, kept outside the vault: the newest log head it has seen.
//!
//! A vault copied back from an older backup, or a log cut short, shows up as a head older
//! than the remembered one (`rollback`); a rewritten history as a different entry at the
//! remembered number (`diverged`); a vault deleted and created anew, or swapped for
//! another, as a vault id the memory does not know while it remembers another
//! (`replaced-vault`). The file is `<state>/<vault id>.head`, JSON.
//!
//! Writers check the memory before every append and refuse to write onto such a log
//! (`guard::check`), then advance it; only `plcvault recover`, signed by an approver, moves the
//! memory to a head that does not extend the remembered one (`replace`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{VaultError, io_err};
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

/// Verifier state files are a few hundred bytes; anything larger is not one.
const MAX_STATE_FILE: u64 = 64 * 1024;

fn head_path(state_dir: &Path, vault_id: &str) -> PathBuf {
    state_dir.join(format!("{vault_id}.head"))
}

fn retired_path(state_dir: &Path, vault_id: &str) -> PathBuf {
    state_dir.join(format!("{vault_id}.retired"))
}

fn is_vault_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The remembered head, if any.
///
/// Fails when the state file exists but cannot be read or parsed.
pub fn load(state_dir: &Path, vault_id: &str) -> Result<Option<HeadMemory>, VaultError> {
    let path = head_path(state_dir, vault_id);
    match crate::fsread::read_regular(&path, MAX_STATE_FILE) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| VaultError::StateDamaged {
                    path: path.clone(),
                    why: format!("it does not parse ({e})"),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(VaultError::StateDamaged {
            path: path.clone(),
            why: e.to_string(),
        }),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

/// Every vault the state folder remembers, by id.
///
/// Fails when the folder exists but cannot be listed.
pub fn remembered(state_dir: &Path) -> Result<Vec<(String, HeadMemory)>, VaultError> {
    let rd = match std::fs::read_dir(state_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", state_dir)(e)),
    };
    let mut out = Vec::new();
    for item in rd {
        let item = item.map_err(io_err("list", state_dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        // A damaged memory of some vault is skipped here (it names no head to compare
        // with); the memory of the vault at hand is loaded strictly by `load`.
        if let Some(id) = name.strip_suffix(".head").filter(|id| is_vault_id(id))
            && let Ok(Some(mem)) = load(state_dir, id)
        {
            out.push((id.to_string(), mem));
        }
    }
    out.sort_by(|a, b| b.1.seen.cmp(&a.1.seen).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Whether the state folder holds the memory of any vault, readable or not: a damaged
/// memory still means a vault was here.
pub fn remembers_any(state_dir: &Path) -> bool {
    std::fs::read_dir(state_dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".head"))
                .is_some_and(is_vault_id)
        })
    })
}

/// What the state folder knows, read before the log is listed (so that a writer appending
/// meanwhile can only make the log look newer than the memory, never older).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// This vault's id.
    pub id: String,
    /// This vault's remembered head.
    pub this: Option<HeadMemory>,
    /// This vault's memory as a recovery retired it (it was replaced by another vault).
    pub retired: Option<HeadMemory>,
    /// Other vaults the folder remembers (newest first).
    pub others: Vec<(String, HeadMemory)>,
}

impl Memory {
    /// Fails when the state folder or one of its files cannot be read.
    pub fn load(state_dir: &Path, vault_id: &str) -> Result<Memory, VaultError> {
        let this = load(state_dir, vault_id)?;
        let mut others = remembered(state_dir)?;
        others.retain(|(id, _)| id != vault_id);
        let retired =
            crate::fsread::read_regular(&retired_path(state_dir, vault_id), MAX_STATE_FILE)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(Memory {
            id: vault_id.to_string(),
            this,
            retired,
            others,
        })
    }

    /// How the log, whose newest entry number is `newest` and whose entry `n` hashes to
    /// `hash_at(n)`, stands against the memory. `None` when it extends it.
    pub fn problem(
        &self,
        newest: u64,
        hash_at: impl Fn(u64) -> Option<Hash>,
    ) -> Option<HeadProblem> {
        match &self.this {
            None if self.retired.is_some() => Some(HeadProblem::Retired {
                id: self.id.clone(),
                remembered: self.retired.clone().expect("checked"),
            }),
            None => self.others.first().map(|(id, mem)| HeadProblem::Replaced {
                other: id.clone(),
                remembered: mem.clone(),
            }),
            Some(mem) => match hash_at(mem.seq) {
                Some(h) if h == mem.hash => None,
                Some(found) => Some(HeadProblem::Diverged {
                    remembered: mem.clone(),
                    found,
                }),
                None if newest < mem.seq => Some(HeadProblem::Rollback {
                    remembered: mem.clone(),
                    newest,
                }),
                // The remembered entry is missing inside the log: the gap finding covers
                // it, and a writer refuses below.
                None => Some(HeadProblem::Rollback {
                    remembered: mem.clone(),
                    newest,
                }),
            },
        }
    }

    /// The memory against the checked log. A remembered entry missing inside the log is
    /// not a problem here: the gap finding reports it.
    pub fn problem_in(&self, history: &History) -> Option<HeadProblem> {
        let newest = history.head().map_or(0, |(s, _)| s);
        match self.problem(newest, |seq| history.hash_of(seq)) {
            Some(HeadProblem::Rollback { remembered, .. }) if remembered.seq <= newest => None,
            p => p,
        }
    }
}

/// A log that does not extend what the verifier remembers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadProblem {
    Rollback {
        remembered: HeadMemory,
        newest: u64,
    },
    Diverged {
        remembered: HeadMemory,
        found: Hash,
    },
    Replaced {
        other: String,
        remembered: HeadMemory,
    },
    /// This very vault was replaced by a recovery, and has come back.
    Retired {
        id: String,
        remembered: HeadMemory,
    },
}

impl HeadProblem {
    pub fn kind(&self) -> FindingKind {
        match self {
            HeadProblem::Rollback { .. } => FindingKind::Rollback,
            HeadProblem::Diverged { .. } => FindingKind::Diverged,
            HeadProblem::Replaced { .. } | HeadProblem::Retired { .. } => {
                FindingKind::ReplacedVault
            }
        }
    }

    /// The remembered head this problem is about: (vault id or None for this vault, memory).
    pub fn remembered(&self) -> &HeadMemory {
        match self {
            HeadProblem::Rollback { remembered, .. }
            | HeadProblem::Diverged { remembered, .. }
            | HeadProblem::Replaced { remembered, .. }
            | HeadProblem::Retired { remembered, .. } => remembered,
        }
    }

    pub fn message(&self) -> String {
        match self {
            HeadProblem::Rollback { remembered, newest } if remembered.seq > *newest => format!(
                "the log ends at entry {newest}, but this verifier saw entry {} ({}) on {} (vault rolled back to an older copy, or log truncated)",
                remembered.seq,
                remembered.hash.short(),
                remembered.seen
            ),
            HeadProblem::Rollback { remembered, .. } => format!(
                "log entry {} ({}), which this verifier saw on {}, is missing (log cut)",
                remembered.seq,
                remembered.hash.short(),
                remembered.seen
            ),
            HeadProblem::Diverged { remembered, found } => format!(
                "log entry {} is {}, but this verifier saw {} there on {} (history rewritten, or an older vault copy written to since)",
                remembered.seq,
                found.short(),
                remembered.hash.short(),
                remembered.seen
            ),
            HeadProblem::Retired { remembered, .. } => format!(
                "this vault was replaced by a new one in a recovery (its memory, entry {} seen {}, was retired): an old vault has come back",
                remembered.seq, remembered.seen
            ),
            HeadProblem::Replaced { other, remembered } => format!(
                "this vault is unknown to the verifier state, which remembers vault {other} (entry {}, seen {}): the vault was deleted and created anew, or swapped for another",
                remembered.seq, remembered.seen
            ),
        }
    }

    pub fn finding(&self) -> Finding {
        let f = Finding::new(self.kind(), self.message());
        match self {
            HeadProblem::Replaced { .. } | HeadProblem::Retired { .. } => f,
            _ => f.seq(self.remembered().seq),
        }
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
    replace(state_dir, vault_id, head)
}

/// Checks that the state folder can be written (creating it), before a writer commits
/// anything whose head it must then remember.
///
/// Fails with `StateNotWritable` naming the folder and the error.
pub fn check_writable(state_dir: &Path) -> Result<(), VaultError> {
    let probe = std::fs::create_dir_all(state_dir)
        .and_then(|()| crate::atomic::create_temp(state_dir, "probe"))
        .and_then(|(f, path)| {
            drop(f);
            std::fs::remove_file(path)
        });
    probe.map_err(|error| VaultError::StateNotWritable {
        path: state_dir.to_owned(),
        error,
    })
}

/// Retires the memory of every vault but `keep` (renamed to `<id>.retired`, kept for the
/// record): after a recovery that replaced a vault, the old one coming back is unknown.
///
/// Fails when the state folder cannot be listed or a file renamed.
pub fn retire_others(state_dir: &Path, keep: &str) -> Result<(), VaultError> {
    let ids: Vec<String> = std::fs::read_dir(state_dir)
        .map_err(io_err("list", state_dir))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            name.strip_suffix(".head")
                .filter(|id| is_vault_id(id))
                .map(str::to_string)
        })
        .collect();
    for id in ids {
        if id != keep {
            let from = head_path(state_dir, &id);
            let to = retired_path(state_dir, &id);
            std::fs::rename(&from, &to).map_err(io_err("retire", &from))?;
        }
    }
    crate::atomic::sync_dir(state_dir).map_err(io_err("sync", state_dir))
}

fn checkpoint_path(state_dir: &Path, vault_id: &str) -> PathBuf {
    state_dir.join(format!("{vault_id}.checkpoint"))
}

/// The signed checkpoint this verifier last verified for the vault (the note as stored),
/// if any.
///
/// Fails when the file exists but cannot be read.
pub fn verified_checkpoint(state_dir: &Path, vault_id: &str) -> Result<Option<String>, VaultError> {
    let path = checkpoint_path(state_dir, vault_id);
    match crate::fsread::read_regular(&path, MAX_STATE_FILE) {
        Ok(b) => String::from_utf8(b)
            .map(Some)
            .map_err(|_| VaultError::StateDamaged {
                path,
                why: "it is not UTF-8".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VaultError::StateDamaged {
            path,
            why: e.to_string(),
        }),
    }
}

/// Remembers `note` as the last verified checkpoint of the vault.
///
/// Fails when the state folder cannot be written.
pub fn remember_checkpoint(state_dir: &Path, vault_id: &str, note: &str) -> Result<(), VaultError> {
    std::fs::create_dir_all(state_dir).map_err(io_err("create", state_dir))?;
    let path = checkpoint_path(state_dir, vault_id);
    crate::atomic::write_replace(state_dir, &path, note.as_bytes()).map_err(io_err("write", &path))
}

/// Forgets the last verified checkpoint: after a recovery an approver signed, the log
/// need not extend it.
///
/// Fails when the file exists and cannot be removed.
pub fn forget_checkpoint(state_dir: &Path, vault_id: &str) -> Result<(), VaultError> {
    let path = checkpoint_path(state_dir, vault_id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
        _ => Ok(()),
    }
}

/// Records `head` as seen, whatever was remembered: for a deliberate recovery only.
///
/// Fails when the state folder cannot be written.
pub fn replace(state_dir: &Path, vault_id: &str, head: (u64, Hash)) -> Result<(), VaultError> {
    std::fs::create_dir_all(state_dir).map_err(io_err("create", state_dir))?;
    let mem = HeadMemory {
        seq: head.0,
        hash: head.1,
        seen: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    let bytes = serde_json::to_vec_pretty(&mem).expect("head memory serializes");
    let path = head_path(state_dir, vault_id);
    crate::atomic::write_replace(state_dir, &path, &bytes).map_err(io_err("write", &path))
}
