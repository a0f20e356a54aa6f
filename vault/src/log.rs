//! The append-only, signed, hash-chained log: the vault's commit point and its history.
//!
//! Entry `n` is the file `log/<n as 20 digits>.entry` holding exactly
//! `BODY "\n" SIGNATURE_HEX "\n"`, where BODY is one line of JSON and the Ed25519 signature
//! covers `"plcvault-log-entry-v1\0" || BODY`. An entry's hash is the SHA-256 of the whole
//! file; each body names the hash of the entry before it in `prev`. Appending links a
//! synced temp file to the next free name, which fails if another writer took it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{VaultError, io_err};
use crate::hash::{Hash, hex, unhex};
use crate::key::{PublicKey, Role, SecretKey};

/// Domain separation for log signatures.
pub const SIGNATURE_CONTEXT: &[u8] = b"plcvault-log-entry-v1\0";
pub const ENTRY_VERSION: u32 = 1;

/// A pack a snapshot added to the vault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRef {
    pub id: Hash,
    pub size: u64,
}

/// What happened. Serialized with a `type` tag beside the header fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// A snapshot was stored; its manifest is named by hash.
    Snapshot {
        device: String,
        /// When the collection started and finished, RFC 3339.
        started: String,
        finished: String,
        manifest: Hash,
        manifest_size: u64,
        complete: bool,
        artifacts: u64,
        bytes: u64,
        /// Packs this snapshot added (chunks it reuses live in packs named by earlier entries).
        packs: Vec<PackRef>,
    },
    /// A collection failed; nothing was stored for the device in this run.
    CollectFailed {
        device: String,
        error: String,
        /// What kind of failure (`unreachable`, `timeout`, `refused`, `auth`, `identity`,
        /// `protocol`, `config`), when the adapter said; absent in older entries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    },
    /// The collector was alive; written so a quiet plant is not mistaken for a cut log.
    Heartbeat { note: String },
    /// A named person approved a snapshot as the device's baseline, with the comparison
    /// rules in force from then on.
    Approval {
        device: String,
        /// The approved snapshot's log entry hash.
        snapshot: Hash,
        manifest: Hash,
        /// The approver's name as the signing verifier's config knows the key.
        approver: String,
        ticket: String,
        reason: String,
        /// The comparison rules approved with it (volatile ranges, severities …).
        rules: serde_json::Value,
        /// The snapshot was incomplete or suspect and approved anyway.
        accepted_suspect: bool,
        /// SHA-256 of the review the approver was shown before signing (the JSON of the
        /// comparison's findings against the baseline then in force); absent in approvals
        /// written before plcvault showed one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review: Option<Hash>,
    },
    /// A restore drill: a snapshot restored, read back and compared hash by hash.
    Drill {
        device: String,
        /// The drilled snapshot's log entry hash.
        snapshot: Hash,
        manifest: Hash,
        /// Where it was restored: `folder` (a scratch folder) or `device:NAME`.
        target: String,
        passed: bool,
        artifacts: u64,
        bytes: u64,
        /// Time to restore, and to read back and compare, in milliseconds.
        restore_ms: u64,
        verify_ms: u64,
        /// Artifacts that failed, with why.
        failures: Vec<DrillFailure>,
    },
    /// An approver accepted a state of the log that verify reports (an older copy put back
    /// on purpose, a lost vault replaced, a clock that was wrong), so that writing can go on
    /// and every later verifier sees who accepted what and why.
    Recovery {
        accepted: Vec<Accepted>,
        reason: String,
    },
    /// A replica was written or brought up to date on other storage (an offline disk):
    /// it holds entries 1 to `size`, the newest of them hashing to `head`.
    Copy {
        /// The medium's id (its `REPLICA` file) and the label it was given.
        disk: String,
        label: String,
        /// Where it was written, as the collector host saw it.
        target: String,
        size: u64,
        head: Hash,
        root: Hash,
        /// Files and bytes written by this copy; bytes the replica holds.
        written: u64,
        bytes: u64,
        total_bytes: u64,
    },
    /// Retention forgot snapshots: their manifests and the packs only they used may be
    /// deleted by a later `prune`. Their log entries stay (the audit trail).
    Forget {
        /// The snapshots forgotten, device by device, by entry number.
        forgotten: Vec<Forgotten>,
        /// The policy applied, as the config said it (for the auditor).
        policy: serde_json::Value,
    },
    /// Prune deleted packs no kept snapshot needs and wrote the live chunks of sparse
    /// packs into new ones: from this entry on, `removed` packs are not part of the vault
    /// and `packs` are.
    Prune {
        removed: Vec<Hash>,
        packs: Vec<PackRef>,
        /// Bytes of the removed packs, and of the new ones.
        freed: u64,
        written: u64,
    },
}

/// Snapshots of one device that a `forget` entry forgot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    pub device: String,
    /// Entry numbers of the snapshot entries, ascending.
    pub snapshots: Vec<u64>,
}

/// One verification finding an approver accepted in a `recovery` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The finding's kind (`rollback`, `diverged`, `replaced-vault`, `future-time`,
    /// `time-backwards`).
    pub kind: String,
    /// The entry number it is about, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// For a head the verifier remembered: that vault's id and the entry's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<Hash>,
    /// The finding's message as verify printed it.
    pub message: String,
}

/// One artifact a drill could not restore or prove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillFailure {
    pub artifact: String,
    pub error: String,
}

impl Event {
    /// The role a signer must have for this event.
    pub fn required_role(&self) -> Role {
        match self {
            Event::Snapshot { .. }
            | Event::CollectFailed { .. }
            | Event::Heartbeat { .. }
            | Event::Drill { .. }
            | Event::Copy { .. }
            | Event::Forget { .. }
            | Event::Prune { .. } => Role::Collector,
            Event::Approval { .. } | Event::Recovery { .. } => Role::Approver,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Snapshot { .. } => "snapshot",
            Event::CollectFailed { .. } => "collect-failed",
            Event::Heartbeat { .. } => "heartbeat",
            Event::Approval { .. } => "approval",
            Event::Drill { .. } => "drill",
            Event::Recovery { .. } => "recovery",
            Event::Copy { .. } => "copy",
            Event::Forget { .. } => "forget",
            Event::Prune { .. } => "prune",
        }
    }

    pub fn device(&self) -> Option<&str> {
        match self {
            Event::Snapshot { device, .. }
            | Event::CollectFailed { device, .. }
            | Event::Approval { device, .. }
            | Event::Drill { device, .. } => Some(device),
            Event::Heartbeat { .. }
            | Event::Recovery { .. }
            | Event::Copy { .. }
            | Event::Forget { .. }
            | Event::Prune { .. } => None,
        }
    }
}

/// The fields every entry has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub v: u32,
    /// The vault's id (from its VAULT file), so entries cannot be moved between vaults.
    pub vault: String,
    pub seq: u64,
    /// Hash of entry `seq - 1`; absent for entry 1.
    pub prev: Option<Hash>,
    pub time: String,
    pub signer: PublicKey,
}

#[derive(Serialize)]
struct BodyOut<'a> {
    #[serde(flatten)]
    header: &'a Header,
    #[serde(flatten)]
    event: &'a Event,
}

/// One parsed entry, not yet checked against trust.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The sequence number in the file name.
    pub file_seq: u64,
    pub path: PathBuf,
    pub hash: Hash,
    pub header: Header,
    /// `Err(type)` for an event type this version does not know.
    pub event: Result<Event, String>,
    pub signature: [u8; 64],
    body: Vec<u8>,
}

impl Entry {
    /// True when the signature verifies (strictly) under the key the entry names.
    pub fn signature_ok(&self) -> bool {
        self.header
            .signer
            .verify(&signed_message(&self.body), &self.signature)
    }

    /// `signature_ok` with keys decompressed once per `cache`.
    pub fn signature_ok_cached(&self, cache: &mut crate::key::KeyCache) -> bool {
        self.header.signer.verify_parts_cached(
            cache,
            &[SIGNATURE_CONTEXT, &self.body],
            &self.signature,
        )
    }

    pub fn time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.header.time).ok()
    }

    /// The exact stored body bytes (empty once `slim` has run).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Frees what only the checks needed, once they are done: the body bytes, and for an
    /// entry that is not trusted every field but a snapshot's pack list (which readers
    /// still index). Keeps a log of large untrusted entries from filling memory.
    pub fn slim(&mut self, trusted: bool) {
        self.body = Vec::new();
        if !trusted {
            match &self.event {
                Ok(Event::Snapshot { .. }) | Err(_) => {}
                Ok(ev) => self.event = Err(ev.type_name().to_string()),
            }
        }
    }
}

pub fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_CONTEXT.len() + body.len());
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.extend_from_slice(body);
    m
}

pub fn entry_path(root: &Path, seq: u64) -> PathBuf {
    root.join("log").join(format!("{seq:020}.entry"))
}

/// The largest entry number (so that `n + 1` never overflows).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// Whether a file name in `log/` has the shape of an entry (20 digits, `.entry`), whatever
/// its number.
pub fn looks_like_entry(name: &str) -> bool {
    name.strip_suffix(".entry")
        .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The sequence numbers of the entries present, loose in `log/` or in bundles (1 to
/// `MAX_SEQ`), ascending, and the names of files that are not entries (including
/// entry-shaped names out of that range, and loose files of entries a bundle holds).
///
/// Fails when a folder cannot be listed.
pub fn list(root: &Path) -> Result<(Vec<u64>, Vec<String>), VaultError> {
    let (loose, mut strays) = list_loose(root)?;
    let (groups, bundle_strays) = list_bundles(root)?;
    strays.extend(bundle_strays);
    let bundled: std::collections::HashSet<u64> = groups.iter().copied().collect();
    let mut seqs: Vec<u64> = groups
        .iter()
        .flat_map(|g| g * BUNDLE + 1..=(g + 1) * BUNDLE)
        .collect();
    for seq in loose {
        if bundled.contains(&((seq - 1) / BUNDLE)) {
            // Left by a bundling cut short, or put there: the bundle is what is read.
            strays.push(format!("{seq:020}.entry (entry {seq} is in a bundle)"));
        } else {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    strays.sort();
    Ok((seqs, strays))
}

/// The loose entry files in `log/`: their numbers, ascending, and the other names.
///
/// Fails when the folder cannot be listed.
pub fn list_loose(root: &Path) -> Result<(Vec<u64>, Vec<String>), VaultError> {
    let dir = root.join("log");
    let mut seqs = Vec::new();
    let mut strays = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((seqs, strays)),
        Err(e) => return Err(io_err("list", &dir)(e)),
    };
    for item in rd {
        let item = item.map_err(io_err("list", &dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        match name
            .strip_suffix(".entry")
            .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|n| (1..=MAX_SEQ).contains(n))
        {
            Some(seq) => seqs.push(seq),
            None => strays.push(name),
        }
    }
    seqs.sort_unstable();
    strays.sort();
    Ok((seqs, strays))
}

/// Entries per bundle.
pub const BUNDLE: u64 = 256;

/// The largest entry a bundle holds: its length is two bytes.
pub const MAX_BUNDLED_ENTRY: usize = 65_535;

/// The folder of entry bundles.
pub fn bundles_dir(root: &Path) -> PathBuf {
    root.join("tlog/tile/entries")
}

/// The file of bundle `group`: entries `256·group + 1 … 256·group + 256`, in the C2SP
/// `tlog-tiles` layout (`tlog/tile/entries/x001/234`).
pub fn bundle_path(root: &Path, group: u64) -> PathBuf {
    bundles_dir(root).join(crate::tlog::index_path(group))
}

/// A bundle's bytes: each entry as a big-endian two-byte length and the entry.
///
/// Panics when an entry is longer than `MAX_BUNDLED_ENTRY` (callers check).
pub fn encode_bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for e in entries {
        let len = u16::try_from(e.len()).expect("a bundled entry is at most 65,535 bytes");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// The entries of a full bundle. `Err` says why the bytes are not one.
pub fn split_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(BUNDLE as usize);
    let mut rest = bytes;
    while !rest.is_empty() {
        let [a, b, tail @ ..] = rest else {
            return Err(format!(
                "the bundle ends inside the length of entry {} (truncated?)",
                out.len() + 1
            ));
        };
        let len = u16::from_be_bytes([*a, *b]) as usize;
        if tail.len() < len {
            return Err(format!(
                "entry {} of the bundle says {len} bytes, {} are left (truncated?)",
                out.len() + 1,
                tail.len()
            ));
        }
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    if out.len() as u64 != BUNDLE {
        return Err(format!(
            "the bundle holds {} entries, not {BUNDLE}",
            out.len()
        ));
    }
    Ok(out)
}

/// The largest bundle file a reader reads.
const MAX_BUNDLE_SIZE: u64 = BUNDLE * (MAX_BUNDLED_ENTRY as u64 + 2);

/// The bundles present (group numbers, ascending) and the files under the bundles
/// folder that are not bundles.
///
/// Fails when a folder cannot be listed.
pub fn list_bundles(root: &Path) -> Result<(Vec<u64>, Vec<String>), VaultError> {
    let mut groups = Vec::new();
    let mut strays = Vec::new();
    walk_bundles(&bundles_dir(root), "", 0, &mut groups, &mut strays)?;
    groups.sort_unstable();
    Ok((groups, strays))
}

fn walk_bundles(
    dir: &Path,
    shown: &str,
    prefix: u64,
    groups: &mut Vec<u64>,
    strays: &mut Vec<String>,
) -> Result<(), VaultError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for item in rd {
        let item = item.map_err(io_err("list", dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let three = |s: &str| {
            (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
        match (name.strip_prefix('x').and_then(three), three(&name)) {
            // Below 2^63 / 1000 per level keeps the number in range.
            (Some(n), _) if is_dir && prefix < MAX_SEQ / BUNDLE / 1000 => walk_bundles(
                &dir.join(&name),
                &format!("{shown}{name}/"),
                prefix * 1000 + n,
                groups,
                strays,
            )?,
            (_, Some(n)) if !is_dir && (prefix * 1000 + n) < MAX_SEQ / BUNDLE => {
                groups.push(prefix * 1000 + n)
            }
            _ => strays.push(format!("tlog/tile/entries/{shown}{name}")),
        }
    }
    Ok(())
}

/// The number of the newest entry present, loose or bundled; 0 for an empty log. Lists
/// `log/` (which holds only the entries not yet bundled) and descends the bundles folder
/// along its largest names, so it does not list the whole log.
///
/// Fails when a folder cannot be listed.
pub fn newest(root: &Path) -> Result<u64, VaultError> {
    let (loose, _) = list_loose(root)?;
    let mut dir = bundles_dir(root);
    let mut group = 0u64;
    let mut found = false;
    loop {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut best: Option<(u64, String, bool)> = None;
        for item in rd {
            let item = item.map_err(io_err("list", &dir))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
            let n = match name.strip_prefix('x') {
                Some(d) if is_dir => d,
                None if !is_dir => name.as_str(),
                _ => continue,
            };
            if n.len() != 3 || !n.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let n: u64 = n.parse().expect("three digits");
            // A folder `xNNN` is a higher digit group than any file beside it.
            let rank = (u64::from(is_dir), n);
            if best
                .as_ref()
                .is_none_or(|(b, _, d)| (u64::from(*d), *b) < rank)
            {
                best = Some((n, name, is_dir));
            }
        }
        match best {
            Some((n, name, true)) if group < MAX_SEQ / BUNDLE / 1000 => {
                group = group * 1000 + n;
                dir = dir.join(name);
            }
            Some((n, _, false)) if group < MAX_SEQ / BUNDLE / 1000 => {
                group = group * 1000 + n;
                found = group < MAX_SEQ / BUNDLE;
                break;
            }
            _ => break,
        }
    }
    let bundled = if found { (group + 1) * BUNDLE } else { 0 };
    Ok(loose.last().copied().unwrap_or(0).max(bundled))
}

/// Reads entries by number, from their bundle when there is one, else from `log/`,
/// keeping the last bundle read so that reading in order reads each bundle once.
pub struct Reader<'a> {
    root: &'a Path,
    bundle: Option<(u64, Option<Bundle>)>,
}

/// A bundle read: its entries, or why it is damaged.
type Bundle = Result<Vec<Vec<u8>>, String>;

impl<'a> Reader<'a> {
    pub fn new(root: &'a Path) -> Reader<'a> {
        Reader { root, bundle: None }
    }

    /// Entry `seq`'s bytes and parse, and where they were read. The outer `Err` is an I/O
    /// failure; the inner one a malformed entry (or a damaged bundle holding it).
    ///
    /// Fails when a file cannot be read.
    #[allow(clippy::type_complexity)]
    pub fn read(
        &mut self,
        seq: u64,
    ) -> Result<(Vec<u8>, Result<Entry, String>, PathBuf), VaultError> {
        let (bytes, bad, path) = self.read_raw(seq)?;
        let parsed = match bad {
            Some(why) => Err(why),
            None => parse(seq, &path, &bytes),
        };
        Ok((bytes, parsed, path))
    }

    /// Entry `seq`'s bytes, unparsed, with why they cannot be an entry when that is known
    /// from reading (a damaged bundle, a file too large), and where they were read.
    ///
    /// Fails when a file cannot be read.
    pub fn read_raw(&mut self, seq: u64) -> Result<(Vec<u8>, Option<String>, PathBuf), VaultError> {
        let group = (seq.max(1) - 1) / BUNDLE;
        if self.bundle.as_ref().is_none_or(|(g, _)| *g != group) {
            let path = bundle_path(self.root, group);
            let loaded = match crate::fsread::read_regular(&path, MAX_BUNDLE_SIZE) {
                Ok(bytes) => Some(split_bundle(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Some(Err(e.to_string())),
                Err(e) => return Err(io_err("read log bundle", &path)(e)),
            };
            self.bundle = Some((group, loaded));
        }
        let path = bundle_path(self.root, group);
        match &self.bundle {
            Some((_, Some(Ok(entries)))) => {
                Ok((entries[((seq - 1) % BUNDLE) as usize].clone(), None, path))
            }
            Some((_, Some(Err(why)))) => {
                // A damaged bundle: loose copies left by a bundling cut short still count.
                match loose_raw(self.root, seq) {
                    Ok((bytes, bad)) => Ok((bytes, bad, entry_path(self.root, seq))),
                    Err(_) => Ok((
                        Vec::new(),
                        Some(format!("its bundle {} is damaged: {why}", path.display())),
                        path,
                    )),
                }
            }
            _ => {
                let (bytes, bad) = loose_raw(self.root, seq)?;
                Ok((bytes, bad, entry_path(self.root, seq)))
            }
        }
    }
}

/// A loose entry file's bytes, with why they cannot be an entry when reading tells.
fn loose_raw(root: &Path, seq: u64) -> Result<(Vec<u8>, Option<String>), VaultError> {
    let path = entry_path(root, seq);
    match crate::fsread::read_regular(&path, MAX_ENTRY_SIZE) {
        Ok(bytes) => Ok((bytes, None)),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Ok((Vec::new(), Some(e.to_string())))
        }
        Err(e) => Err(io_err("read log entry", &path)(e)),
    }
}

/// Parses the bytes of an entry file. `Err` says why they are not a well-formed entry.
pub fn parse(file_seq: u64, path: &Path, bytes: &[u8]) -> Result<Entry, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "entry is not UTF-8".to_string())?;
    let Some(rest) = text.strip_suffix('\n') else {
        return Err("entry does not end with a newline (truncated?)".into());
    };
    let Some((body, sig_hex)) = rest.split_once('\n') else {
        return Err("entry has no signature line (truncated?)".into());
    };
    // One entry, one spelling: lower-case hex only, so that no byte of an entry file can
    // change without its signature or the chain noticing.
    let signature: [u8; 64] = Some(sig_hex)
        .filter(|h| h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .and_then(unhex)
        .and_then(|v| v.try_into().ok())
        .ok_or("signature line is not 128 lower-case hex digits")?;
    crate::json::check(body.as_bytes(), Some(MAX_ENTRY_VALUES))
        .map_err(|e| format!("entry body is not well-formed JSON: {}", clip(&e)))?;
    let header: Header = serde_json::from_str(body)
        .map_err(|e| format!("entry header does not parse: {}", clip(&e.to_string())))?;
    if header.v != ENTRY_VERSION {
        return Err(format!(
            "entry version {} is not {ENTRY_VERSION} (this plcvault reads format 1)",
            header.v
        ));
    }
    if !(header.vault.len() == 32 && header.vault.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err("entry `vault` is not a vault id (32 hex digits)".into());
    }
    if !is_entry_time(&header.time) {
        return Err("entry `time` is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SS[.fraction]Z)".into());
    }
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        ty: Option<String>,
    }
    let event = match serde_json::from_str::<Event>(body) {
        Ok(ev) => {
            if let Some(d) = ev.device()
                && !is_device_name(d)
            {
                return Err(
                    "entry `device` is not a device name (letters, digits, - _ .; at most 255)"
                        .into(),
                );
            }
            Ok(ev)
        }
        Err(e) => {
            // Only when the event does not parse is its type looked at alone (a known
            // event that parses has a type name).
            let ty = serde_json::from_str::<TypeOnly>(body)
                .ok()
                .and_then(|t| t.ty)
                .filter(|t| {
                    !t.is_empty()
                        && t.len() <= 64
                        && t.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
                .ok_or("entry `type` is missing or not a type name (a-z, 0-9, -)")?;
            let e = clip(&e.to_string());
            match Some(ty.as_str()) {
                Some(t)
                    if ![
                        "snapshot",
                        "collect-failed",
                        "heartbeat",
                        "approval",
                        "drill",
                        "recovery",
                        "copy",
                    ]
                    .contains(&t) =>
                {
                    Err(t.to_string())
                }
                _ => return Err(format!("entry event does not parse: {e}")),
            }
        }
    };
    Ok(Entry {
        file_seq,
        path: path.to_owned(),
        hash: Hash::of(bytes),
        header,
        event,
        signature,
        body: body.as_bytes().to_vec(),
    })
}

/// The most JSON values (numbers, strings, array and object items) one entry body may
/// hold: a parse of it then stays small in memory.
pub const MAX_ENTRY_VALUES: usize = 250_000;

/// An error message cut to a length that cannot fill a report (serde echoes input).
fn clip(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_string();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` in ASCII digits, seconds at most 59.
pub fn is_entry_time(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && b.len() <= 40
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[b.len() - 1] == b'Z'
        && (b.len() == 20 || (b[19] == b'.' && b.len() > 21 && digits(20..b.len() - 1)));
    // And a real date and time: no 30 February, no hour 24 (a time no reader can parse
    // would escape every clock check).
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap_or(u32::MAX);
    if !shape {
        return false;
    }
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    (1..=days).contains(&day) && num(11..13) <= 23 && num(14..16) <= 59 && num(17..19) <= 59
}

/// A device name as the config allows it.
pub fn is_device_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 255
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The largest log entry file this version reads: entries are one line of JSON (a drill
/// with many failures is the largest), far below this.
pub const MAX_ENTRY_SIZE: u64 = 4 * 1024 * 1024;

/// Reads entry `seq`, from its bundle or `log/`. The outer `Err` is an I/O failure; the
/// inner one a malformed entry.
///
/// Fails when a file cannot be read.
pub fn read(root: &Path, seq: u64) -> Result<(Vec<u8>, Result<Entry, String>), VaultError> {
    Reader::new(root).read(seq).map(|(b, p, _)| (b, p))
}

/// Reads entry `seq` from its loose file in `log/`. The outer `Err` is an I/O failure; the inner one a malformed entry
/// (including a file that is not a regular file, or too large to be an entry).
///
/// Fails when the file cannot be read.
pub fn read_loose(root: &Path, seq: u64) -> Result<(Vec<u8>, Result<Entry, String>), VaultError> {
    let (bytes, bad) = loose_raw(root, seq)?;
    let parsed = match bad {
        Some(why) => Err(why),
        None => parse(seq, &entry_path(root, seq), &bytes),
    };
    Ok((bytes, parsed))
}

/// Serializes and signs an entry body.
pub fn encode(header: &Header, event: &Event, key: &SecretKey) -> Vec<u8> {
    let body = serde_json::to_vec(&BodyOut { header, event }).expect("entries always serialize");
    let sig = key.sign(&signed_message(&body));
    let mut out = body;
    out.push(b'\n');
    out.extend_from_slice(hex(&sig).as_bytes());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::is_entry_time;

    // Regression (red team, issue 12): a time of the right shape but no real date escaped
    // every clock check, since no reader could parse it.
    #[test]
    fn entry_times_are_real_times() {
        assert!(is_entry_time("2026-02-28T10:00:00.000Z"));
        assert!(is_entry_time("2028-02-29T23:59:59Z"));
        assert!(
            is_entry_time("1026-01-01T00:00:00Z"),
            "a real date, if an odd one"
        );
        for bad in [
            "2026-02-30T10:00:00.000Z",
            "2027-02-29T10:00:00.000Z",
            "2026-04-31T10:00:00.000Z",
            "2026-13-01T10:00:00Z",
            "2026-01-01T25:00:00Z",
            "2026-01-01T10:61:00Z",
            "2026-01-01 10:00:00Z",
        ] {
            assert!(!is_entry_time(bad), "{bad}");
        }
    }
}
