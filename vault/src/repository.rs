//! The vault folder: creating and opening it, and the trust list used to read it.
//!
//! ```text
//! VAULT                 format marker and vault id
//! log/NNN.entry         signed, hash-chained log (the commit point)
//! manifests/<h>.json    snapshot manifests, named by SHA-256
//! packs/xx/<h>.pack     immutable packs of chunks, named by SHA-256
//! tmp/                  temp files of writers; never read
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{VaultError, io_err};
use crate::hash::hex;
use crate::key::{PublicKey, Role, TrustedKey};

const MARKER: &str = "plcvault vault\nformat 1\n";
/// The marker of a vault whose log holds entry bundles (log v2): a release that reads only
/// loose entries refuses it rather than taking bundled entries for missing ones.
const MARKER_BUNDLED: &str = "plcvault vault\nformat 2\n";

/// Marks the vault at `root` as format 2 before its first entry bundle is written (a
/// no-op when it is already): the same marker with `format 2` on its second line,
/// replaced atomically.
///
/// Fails when the marker cannot be read or written.
pub fn mark_bundled(root: &Path) -> Result<(), VaultError> {
    let marker = root.join("VAULT");
    let text = crate::fsread::read_regular(&marker, 4096).map_err(io_err("read", &marker))?;
    let text = String::from_utf8_lossy(&text);
    let Some(rest) = text.strip_prefix(MARKER) else {
        return Ok(());
    };
    crate::atomic::write_replace(
        &root.join("tmp"),
        &marker,
        format!("{MARKER_BUNDLED}{rest}").as_bytes(),
    )
    .map_err(io_err("write", &marker))
}

/// An opened vault folder.
#[derive(Clone, Debug)]
pub struct Vault {
    root: PathBuf,
    id: String,
    /// The verifier's memory (outside the vault). When set, every append first checks
    /// that the log still holds the remembered head, and then advances it.
    state: Option<PathBuf>,
    /// A shared lock on `lock`, held while this vault is open for writing, so that prune
    /// (which takes it exclusively) never deletes a pack a writer is about to reuse.
    writing: Option<std::sync::Arc<fs::File>>,
}

/// What holds the writers' lock: a shared or an exclusive `flock` on the vault's `lock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Collect, drill, approve, copy, forget: any number at once.
    Shared,
    /// Prune: alone, never waiting (it fails when a writer runs).
    Exclusive,
}

impl Vault {
    /// The same vault with the writers' lock held (see `Hold`) until the last clone of it
    /// is dropped. A shared hold waits for a running prune to finish; an exclusive one
    /// fails at once when another command holds the lock.
    ///
    /// Fails when the lock file cannot be opened, or with `Refused` for an exclusive hold
    /// while a writer runs.
    pub fn hold(mut self, how: Hold) -> Result<Vault, VaultError> {
        let path = self.root.join("lock");
        let f = crate::fsread::open_lock(&path).map_err(io_err("open", &path))?;
        match how {
            Hold::Shared => match f.try_lock_shared() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    eprintln!(
                        "waiting for the prune running on {} to finish",
                        self.root.display()
                    );
                    f.lock_shared().map_err(io_err("lock", &path))?;
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            },
            Hold::Exclusive => match f.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(VaultError::Refused(format!(
                        "another plcvault command (collect, drill, approve, copy, forget, verify, restore, report or another prune) is using {}: run prune again when it has finished",
                        self.root.display()
                    )));
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            },
        }
        self.writing = Some(std::sync::Arc::new(f));
        Ok(self)
    }

    /// Opens an existing vault.
    ///
    /// Fails when `root` has no VAULT file or a format this version cannot read.
    pub fn open(root: &Path) -> Result<Vault, VaultError> {
        let marker = root.join("VAULT");
        let text = match crate::fsread::read_regular(&marker, 4096) {
            Ok(b) => String::from_utf8(b).map_err(|_| VaultError::MarkerDamaged {
                path: marker.clone(),
                why: "it is not UTF-8 text".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::NotAVault {
                    path: root.to_owned(),
                });
            }
            Err(e) => return Err(io_err("read", &marker)(e)),
        };
        let Some(rest) = text
            .strip_prefix(MARKER)
            .or_else(|| text.strip_prefix(MARKER_BUNDLED))
        else {
            // Another release's marker has the same first line and a well-formed `format N`
            // line; anything else (empty, cut, garbled) is damage, not a newer format.
            let mut lines = text.split('\n');
            let format = (lines.next() == Some("plcvault vault"))
                .then(|| lines.next())
                .flatten()
                .and_then(|l| l.strip_prefix("format "))
                .filter(|n| !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()));
            return Err(match format {
                // `format 1` that did not match exactly: other line ends, extra spaces.
                Some("1" | "2") => VaultError::MarkerDamaged {
                    path: marker.clone(),
                    why:
                        "its lines are not exactly `plcvault vault` / `format 1` (other line ends?)"
                            .into(),
                },
                Some(n) => VaultError::Version {
                    path: root.to_owned(),
                    found: n.to_string(),
                },
                None => VaultError::MarkerDamaged {
                    path: marker.clone(),
                    why: "it is empty or does not begin `plcvault vault` / `format 1`".into(),
                },
            });
        };
        let id = rest
            .split('\n')
            .find_map(|l| l.strip_prefix("id "))
            .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| VaultError::MarkerDamaged {
                path: marker.clone(),
                why: "it has no valid `id` line (32 hex digits)".into(),
            })?
            .to_string();
        Ok(Vault {
            root: root.to_owned(),
            id,
            state: None,
            writing: None,
        })
    }

    /// The same vault, guarded by the verifier memory in `state_dir`: appends refuse a
    /// rolled-back, truncated, diverged or replaced log, and advance the memory.
    pub fn remembering(mut self, state_dir: &Path) -> Vault {
        self.state = Some(state_dir.to_owned());
        self
    }

    /// The verifier memory this vault is guarded by, if any.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state.as_deref()
    }

    /// Creates a vault at `root` (which may exist but must not hold a vault), or opens the
    /// one already there.
    ///
    /// Fails when the folder cannot be created or written.
    pub fn open_or_create(root: &Path) -> Result<Vault, VaultError> {
        if root.join("VAULT").exists() {
            return Vault::open(root);
        }
        for sub in ["log", "manifests", "packs", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id)
            .map_err(|e| VaultError::Key(crate::key::KeyError::Random(e.to_string())))?;
        let text = format!(
            "{MARKER}id {}\ncreated {}\n",
            hex(&id),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
        // Exclusive: if two processes create at once, one VAULT file wins and both use it.
        crate::atomic::write_exclusive(&root.join("tmp"), &root.join("VAULT"), text.as_bytes())
            .map_err(io_err("create", &root.join("VAULT")))?;
        Vault::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

/// The keys the config pins. Verification trusts these and nothing found in the vault.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
}

impl Trust {
    pub fn new(keys: Vec<TrustedKey>) -> Trust {
        Trust { keys }
    }

    /// The keys whose checkpoint signatures count: the vault's writers (every role but
    /// witness).
    pub fn writers(&self) -> Vec<crate::key::PublicKey> {
        self.with_role(|r| r != crate::key::Role::Witness)
    }

    /// The keys trusted as witnesses.
    pub fn witnesses(&self) -> Vec<crate::key::PublicKey> {
        self.with_role(|r| r == crate::key::Role::Witness)
    }

    fn with_role(&self, want: impl Fn(crate::key::Role) -> bool) -> Vec<crate::key::PublicKey> {
        self.keys
            .iter()
            .filter(|k| want(k.role))
            .map(|k| k.key)
            .collect()
    }

    /// The name and roles of `key`, if trusted.
    pub fn lookup(&self, key: &PublicKey) -> Option<(&str, Vec<Role>)> {
        let found: Vec<&TrustedKey> = self.keys.iter().filter(|k| k.key == *key).collect();
        let first = found.first()?;
        Some((&first.name, found.iter().map(|k| k.role).collect()))
    }
}
