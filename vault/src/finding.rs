//! Integrity findings: what verification found wrong, as data rather than errors.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kinds of damage verification tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A log entry cannot be read or parsed.
    MalformedEntry,
    /// A log entry's signature does not verify.
    BadSignature,
    /// A log entry is signed by a key the config does not trust.
    UnknownSigner,
    /// A log entry is signed by a trusted key whose role may not sign that event.
    WrongRole,
    /// A log entry does not name the hash of the entry before it.
    BrokenChain,
    /// Sequence numbers have a gap: entries were deleted.
    MissingEntry,
    /// An entry sits under another sequence number than it claims: entries were moved.
    Reordered,
    /// An entry belongs to another vault.
    WrongVault,
    /// The log is older or shorter than the head this verifier saw before.
    Rollback,
    /// The log's history differs from the head this verifier saw before.
    Diverged,
    /// The vault is not the one the verifier remembers (deleted and created anew, swapped).
    ReplacedVault,
    /// An entry is dated ahead of the verifier's clock (beyond the allowed skew).
    FutureTime,
    /// An entry is dated before the entry it follows (beyond the allowed skew).
    TimeBackwards,
    /// The newest entry is older than the expected run interval.
    Stale,
    /// A manifest named by the log is missing.
    MissingManifest,
    /// A manifest does not match its hash or does not parse.
    CorruptManifest,
    /// A pack named by the log is missing.
    MissingPack,
    /// A pack is shorter or longer than the log says.
    TruncatedPack,
    /// A pack's bytes do not match its name, or its trailer is malformed.
    CorruptPack,
    /// A chunk a manifest needs is in no pack.
    MissingChunk,
    /// A chunk does not decompress or does not match its SHA-256.
    CorruptChunk,
    /// A manifest is inconsistent with itself (sizes, names).
    BadManifest,
    /// The signed checkpoint is malformed, not signed by a trusted key, covers more
    /// entries than the log has, or names a root that is not the log's tree.
    BadCheckpoint,
    /// A tile of the log's Merkle tree differs from the tree of the entries (derived
    /// data: the next write rebuilds it).
    BadTile,
    /// Entries older than the grace period are covered by no checkpoint that enough
    /// witnesses cosigned.
    Unwitnessed,
}

impl FindingKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FindingKind::MalformedEntry => "malformed-entry",
            FindingKind::BadSignature => "bad-signature",
            FindingKind::UnknownSigner => "unknown-signer",
            FindingKind::WrongRole => "wrong-role",
            FindingKind::BrokenChain => "broken-chain",
            FindingKind::MissingEntry => "missing-entry",
            FindingKind::Reordered => "reordered",
            FindingKind::WrongVault => "wrong-vault",
            FindingKind::Rollback => "rollback",
            FindingKind::Diverged => "diverged",
            FindingKind::ReplacedVault => "replaced-vault",
            FindingKind::FutureTime => "future-time",
            FindingKind::TimeBackwards => "time-backwards",
            FindingKind::Stale => "stale",
            FindingKind::MissingManifest => "missing-manifest",
            FindingKind::CorruptManifest => "corrupt-manifest",
            FindingKind::MissingPack => "missing-pack",
            FindingKind::TruncatedPack => "truncated-pack",
            FindingKind::CorruptPack => "corrupt-pack",
            FindingKind::MissingChunk => "missing-chunk",
            FindingKind::CorruptChunk => "corrupt-chunk",
            FindingKind::BadManifest => "bad-manifest",
            FindingKind::BadCheckpoint => "bad-checkpoint",
            FindingKind::BadTile => "bad-tile",
            FindingKind::Unwitnessed => "unwitnessed",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing found wrong, with where it was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

impl Finding {
    pub fn new(kind: FindingKind, message: impl Into<String>) -> Finding {
        Finding {
            kind,
            message: message.into(),
            seq: None,
            path: None,
            device: None,
            snapshot: None,
        }
    }
    pub fn seq(mut self, seq: u64) -> Finding {
        self.seq = Some(seq);
        self
    }
    pub fn path(mut self, path: impl fmt::Display) -> Finding {
        self.path = Some(path.to_string());
        self
    }
    pub fn device(mut self, device: &str) -> Finding {
        self.device = Some(device.to_string());
        self
    }
    pub fn snapshot(mut self, id: impl fmt::Display) -> Finding {
        self.snapshot = Some(id.to_string());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind, self.message)
    }
}

/// Findings kept one by one per kind; the rest are counted in one more finding of that kind.
pub const MAX_PER_KIND: usize = 1000;

/// Keeps the first `MAX_PER_KIND` findings of each kind and adds, per kind that had more,
/// one finding saying how many more there were: a log padded with forged entries cannot
/// fill memory or bury the report.
pub fn cap_per_kind(findings: Vec<Finding>) -> Vec<Finding> {
    let mut sink = Sink::default();
    for f in findings {
        sink.push(f);
    }
    sink.finish()
}

/// Collects findings with the per-kind cap applied as they arrive, so that memory stays
/// bounded while a long, damaged log is read.
#[derive(Default)]
pub struct Sink {
    list: Vec<Finding>,
    counts: std::collections::HashMap<FindingKind, usize>,
}

impl Sink {
    pub fn push(&mut self, f: Finding) {
        let n = self.counts.entry(f.kind).or_default();
        *n += 1;
        if *n <= MAX_PER_KIND {
            self.list.push(f);
        }
    }

    /// The findings kept, and one per kind that had more, counting the rest.
    pub fn finish(self) -> Vec<Finding> {
        let mut out = self.list;
        let mut more: Vec<(FindingKind, usize)> = self
            .counts
            .into_iter()
            .filter(|(_, n)| *n > MAX_PER_KIND)
            .collect();
        more.sort();
        for (kind, n) in more {
            out.push(Finding::new(
                kind,
                format!(
                    "{} more findings of this kind (the first {MAX_PER_KIND} are listed)",
                    n - MAX_PER_KIND
                ),
            ));
        }
        out
    }
}
