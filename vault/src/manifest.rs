//! Snapshot manifests: what one collection from one device contained.
//!
//! A manifest is canonical JSON stored at `manifests/<sha256>.json` and named in the log by
//! its hash. It describes content only (when it was collected is in the log entry), so an
//! unchanged device yields the same manifest night after night and stores nothing new
//! but its signed log entry. The plain data types here (`ArtifactKind`, `ArtifactMeta`) are shared with the
//! adapters.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{VaultError, corrupt, io_err};
use crate::hash::Hash;

pub const MANIFEST_VERSION: u32 = 1;

/// What an artifact is, for classifying changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    Logic,
    Config,
    Recipe,
    Values,
    Identity,
    Image,
    Other,
}

impl ArtifactKind {
    pub const ALL: [ArtifactKind; 7] = [
        ArtifactKind::Logic,
        ArtifactKind::Config,
        ArtifactKind::Recipe,
        ArtifactKind::Values,
        ArtifactKind::Identity,
        ArtifactKind::Image,
        ArtifactKind::Other,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            ArtifactKind::Logic => "logic",
            ArtifactKind::Config => "config",
            ArtifactKind::Recipe => "recipe",
            ArtifactKind::Values => "values",
            ArtifactKind::Identity => "identity",
            ArtifactKind::Image => "image",
            ArtifactKind::Other => "other",
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ArtifactKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArtifactKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown artifact kind `{s}`; use one of: {}",
                    ArtifactKind::ALL.map(|k| k.as_str()).join(", ")
                )
            })
    }
}

/// Descriptive metadata recorded with an artifact. Never evidence of integrity: the
/// content hash is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactMeta {
    /// Unix permission bits, for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Modification time, RFC 3339, for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<String>,
    /// What an adapter records about an artifact beyond these (a block's author, a tag's
    /// CIP type, a server's file date), by name; absent when empty, so manifests of
    /// adapters that record nothing are unchanged.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// Whether an artifact was read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactStatus {
    /// Read completely and consistently.
    Ok,
    /// The source kept changing while it was read; the stored bytes may mix versions.
    Unstable,
}

/// One artifact in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactEntry {
    pub name: String,
    pub kind: ArtifactKind,
    pub size: u64,
    /// SHA-256 of the whole content.
    pub sha256: Hash,
    pub status: ArtifactStatus,
    #[serde(default)]
    pub meta: ArtifactMeta,
    /// The chunks in order: id and plain length.
    pub chunks: Vec<(Hash, u32)>,
}

/// One snapshot of one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub v: u32,
    pub device: String,
    pub adapter: String,
    /// Where the data came from (a folder, an address), for the record.
    pub source: String,
    /// False when anything could not be read whole.
    pub complete: bool,
    pub warnings: Vec<String>,
    /// Sorted by name, names unique.
    pub artifacts: Vec<ArtifactEntry>,
}

impl Manifest {
    /// Canonical bytes: compact JSON with artifacts sorted by name, and a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.artifacts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = serde_json::to_vec(&m).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    /// Parses stored bytes and checks them against the hash the log names.
    ///
    /// Fails with `Corrupt` when the bytes do not hash to `id` or do not parse.
    pub fn from_bytes(bytes: &[u8], id: &Hash, path: &Path) -> Result<Manifest, VaultError> {
        if Hash::of(bytes) != *id {
            return Err(corrupt(
                path,
                "manifest does not match the SHA-256 the log names",
            ));
        }
        crate::json::check_no_repeated_keys(bytes)
            .map_err(|e| corrupt(path, format!("manifest does not parse: {e}")))?;
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(path, format!("manifest does not parse: {e}")))?;
        if m.v != MANIFEST_VERSION {
            return Err(corrupt(path, format!("manifest version {} is not 1", m.v)));
        }
        if m.artifacts.len() > MAX_ARTIFACTS {
            return Err(corrupt(
                path,
                format!(
                    "manifest lists {} artifacts, more than the {MAX_ARTIFACTS} this version reads",
                    m.artifacts.len()
                ),
            ));
        }
        Ok(m)
    }

    pub fn total_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size).sum()
    }

    /// Checks that the artifacts form a tree a restore can write: sorted by name, every
    /// name once, and no name that is both a file and the folder of another.
    ///
    /// Fails naming the first offending artifact.
    pub fn check_tree(&self) -> Result<(), String> {
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, a) in self.artifacts.iter().enumerate() {
            if i > 0 && self.artifacts[i - 1].name >= a.name {
                return Err(if self.artifacts[i - 1].name == a.name {
                    format!("`{}` is listed twice", a.name)
                } else {
                    format!("the artifacts are not sorted by name (`{}`)", a.name)
                });
            }
            if let Some(parent) = folder_conflict(&a.name, |p| seen.contains(p)) {
                return Err(format!(
                    "`{parent}` is both a file and the folder of `{}`",
                    a.name
                ));
            }
            seen.insert(&a.name);
        }
        Ok(())
    }
}

/// The first folder of `name` (`a` and `a/b` of `a/b/c`) that `is_file` says is a file.
pub fn folder_conflict(name: &str, is_file: impl Fn(&str) -> bool) -> Option<&str> {
    name.match_indices('/')
        .map(|(i, _)| &name[..i])
        .find(|p| is_file(p))
}

/// The largest manifest this version reads (about 200,000 artifacts).
pub const MAX_MANIFEST_SIZE: u64 = 256 * 1024 * 1024;
/// The most artifacts one manifest may list.
pub const MAX_ARTIFACTS: usize = 1_000_000;

/// Checks that an artifact's chunk lengths are each 1 to `MAX_PLAIN_LEN` bytes and add
/// up, without overflow, to its size.
///
/// Fails with a message saying which rule is broken.
pub fn check_chunk_lengths(a: &ArtifactEntry) -> Result<(), String> {
    let max = crate::pack::MAX_PLAIN_LEN;
    if let Some((_, len)) = a.chunks.iter().find(|(_, len)| *len == 0 || *len > max) {
        return Err(format!(
            "a chunk of {len} bytes is listed; chunks are 1 to {max} bytes"
        ));
    }
    let sum = a
        .chunks
        .iter()
        .try_fold(0u64, |sum, (_, len)| sum.checked_add(u64::from(*len)));
    match sum {
        Some(sum) if sum == a.size => Ok(()),
        Some(sum) => Err(format!(
            "chunks add up to {sum} bytes, the manifest says {}",
            a.size
        )),
        None => Err("chunk lengths overflow when added".into()),
    }
}

/// `manifests/<hex>.json`
pub fn manifest_path(root: &Path, id: &Hash) -> std::path::PathBuf {
    root.join("manifests").join(format!("{}.json", id.to_hex()))
}

/// Reads and checks a manifest.
///
/// Fails when it is missing, unreadable, or does not match `id`.
pub fn load(root: &Path, id: &Hash) -> Result<Manifest, VaultError> {
    let path = manifest_path(root, id);
    // Hashed in pieces first: a large file put in a manifest's place is damage found
    // without holding it in memory; only the genuine manifest is read whole.
    let (hash, _) = crate::fsread::hash_regular(&path, MAX_MANIFEST_SIZE)
        .map_err(io_err("read manifest", &path))?;
    if hash != *id {
        return Err(corrupt(
            &path,
            "manifest does not match the SHA-256 the log names",
        ));
    }
    let bytes = crate::fsread::read_regular(&path, MAX_MANIFEST_SIZE)
        .map_err(io_err("read manifest", &path))?;
    Manifest::from_bytes(&bytes, id, &path)
}

/// Checks that an artifact name is a safe relative path: no empty, `.` or `..`
/// components, not absolute, no backslash or NUL. Restore relies on this.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.starts_with('/') {
        return Err(format!("`{name}` is absolute"));
    }
    if name.contains('\\') || name.contains('\0') {
        return Err(format!("`{name}` contains a backslash or NUL"));
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("`{name}` has an empty, `.` or `..` component"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_tree_with_a_name_twice_or_a_file_that_is_a_folder_is_refused() {
        let e = |n: &str| ArtifactEntry {
            name: n.into(),
            kind: ArtifactKind::Other,
            size: 0,
            sha256: Hash::of(b""),
            status: ArtifactStatus::Ok,
            meta: ArtifactMeta::default(),
            chunks: Vec::new(),
        };
        let m = |names: &[&str]| Manifest {
            v: MANIFEST_VERSION,
            device: "d".into(),
            adapter: "ftp".into(),
            source: String::new(),
            complete: true,
            warnings: Vec::new(),
            artifacts: names.iter().map(|n| e(n)).collect(),
        };
        assert_eq!(
            m(&["a", "a/b"]).check_tree().unwrap_err(),
            "`a` is both a file and the folder of `a/b`"
        );
        assert!(m(&["a", "a"]).check_tree().unwrap_err().contains("twice"));
        assert!(
            m(&["b", "a"])
                .check_tree()
                .unwrap_err()
                .contains("not sorted")
        );
        assert_eq!(m(&["a", "a-b", "a.c/d", "b/c"]).check_tree(), Ok(()));
    }

    use super::*;

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a/.",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for good in ["a", "a/b.c", "PLC1/OB1.awl", "..a/b..", "a b/c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn canonical_bytes_round_trip_and_detect_tampering() {
        let m = Manifest {
            v: 1,
            device: "d".into(),
            adapter: "files".into(),
            source: "/x".into(),
            complete: true,
            warnings: vec![],
            artifacts: vec![ArtifactEntry {
                name: "b".into(),
                kind: ArtifactKind::Logic,
                size: 3,
                sha256: Hash::of(b"abc"),
                status: ArtifactStatus::Ok,
                meta: ArtifactMeta::default(),
                chunks: vec![(Hash::of(b"abc"), 3)],
            }],
        };
        let bytes = m.to_bytes();
        let id = Hash::of(&bytes);
        assert_eq!(
            Manifest::from_bytes(&bytes, &id, Path::new("m")).unwrap(),
            m
        );
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert!(Manifest::from_bytes(&bad, &id, Path::new("m")).is_err());
    }
}
