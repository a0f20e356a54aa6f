//! Off-site replicas on S3-compatible object storage: `push` writes the vault to a bucket
//! through the same replica code as `copy` (`vault::replica`, over the `Storage` trait
//! implemented here with object_store's S3 client), `verify --remote` checks a replica in
//! place with the public keys alone (nothing written locally), `restore --remote`
//! restores from it.
//!
//! A store's promises are not relied on: every write is checked before (a HEAD: an
//! existing object is never replaced, whether or not the store enforces `If-None-Match`)
//! and read back after (`vault::replica`), and an overwritten or forked remote log is found
//! through the signed checkpoint and the tree of its entries.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};
use serde::Serialize;
use vault::storage::Storage;
use vault::{Finding, FindingKind, Hash, History};

use crate::config::{Config, ReadBack, RemoteConfig};
use crate::output::{Out, Outcome, human_bytes};

/// A bucket and prefix, as a `Storage`.
pub struct S3Storage {
    store: AmazonS3,
    prefix: String,
    url: String,
    /// How a write is proven: read back whole, by the ETag (the MD5 the store computed
    /// of what it received), or by the store's check of the signed payload's SHA-256.
    read_back: ReadBack,
}

/// What a store enforced when probed.
#[derive(Clone, Debug, Serialize)]
pub struct Protections {
    /// A second `If-None-Match: *` PUT of an existing key was refused (412).
    pub conditional_create: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
}

fn io_other(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl S3Storage {
    /// The remote's bucket, with credentials from its file or the environment.
    ///
    /// Fails when no credentials are found, the file is readable by others, or the
    /// client cannot be built.
    pub fn open(r: &RemoteConfig) -> Result<S3Storage> {
        let (id, secret) = match &r.credentials {
            Some(path) => {
                use std::os::unix::fs::PermissionsExt;
                let meta = std::fs::metadata(path).with_context(|| {
                    format!(
                        "remote `{}`: cannot read its credentials file {}",
                        r.name,
                        path.display()
                    )
                })?;
                if meta.permissions().mode() & 0o077 != 0 {
                    bail!(
                        "remote `{}`: the credentials file {} can be read by others\nfix: chmod 600 {}",
                        r.name,
                        path.display(),
                        path.display()
                    );
                }
                let text = vault::fsread::read_regular(path, 64 * 1024)?;
                let c: CredentialsFile = toml::from_str(&String::from_utf8_lossy(&text))
                    .map_err(|e| {
                        anyhow!(
                            "remote `{}`: {} is not a credentials file ({})\nfix: two lines, access-key-id = \"…\" and secret-access-key = \"…\"",
                            r.name,
                            path.display(),
                            e.message()
                        )
                    })?;
                (c.access_key_id, c.secret_access_key)
            }
            None => match (
                std::env::var("AWS_ACCESS_KEY_ID"),
                std::env::var("AWS_SECRET_ACCESS_KEY"),
            ) {
                (Ok(a), Ok(b)) if !a.is_empty() && !b.is_empty() => (a, b),
                _ => bail!(
                    "remote `{}` has no credentials\nfix: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or `credentials = \"FILE\"` in its [[remote]] (never the keys themselves)",
                    r.name
                ),
            },
        };
        // reqwest's TLS needs the process's crypto provider (ring, as everywhere here),
        // even for a client that will only speak plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&r.bucket)
            .with_region(&r.region)
            .with_access_key_id(id)
            .with_secret_access_key(secret)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            );
        if let Some(e) = &r.endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = b.build().map_err(|e| anyhow!("remote `{}`: {e}", r.name))?;
        Ok(S3Storage {
            store,
            prefix: r.prefix.clone(),
            url: r.url(),
            read_back: r.read_back,
        })
    }

    fn key(&self, path: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(path)
        } else {
            Key::from(format!("{}/{path}", self.prefix))
        }
    }

    fn exists(&self, path: &str) -> io::Result<bool> {
        let key = self.key(path);
        match crate::runtime::block_on(self.store.head(&key)).map_err(|e| io_other("runtime", e))? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_other(&format!("HEAD {}", self.describe_key(path)), e)),
        }
    }

    fn describe_key(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    /// Writes a probe object twice with `If-None-Match: *` and removes it: whether the
    /// store refuses the second write.
    ///
    /// Fails when the store cannot be reached or written (wrong credentials, endpoint
    /// down, no such bucket).
    pub fn probe(&self) -> Result<Protections> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| anyhow!("no randomness: {e}"))?;
        let path = format!("tmp/probe-{}", vault::hash::hex(&id));
        let key = self.key(&path);
        let put = |body: &'static [u8]| {
            crate::runtime::block_on(self.store.put_opts(
                &key,
                PutPayload::from_static(body),
                PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                },
            ))
        };
        put(b"plcvault probe 1\n")?.map_err(|e| {
            anyhow!(
                "cannot write to {}: {e}\nfix: check the remote's endpoint, bucket and credentials; the local vault is untouched",
                self.url
            )
        })?;
        let second = put(b"plcvault probe 2\n")?;
        let conditional_create = matches!(
            second,
            Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. })
        );
        let _ = crate::runtime::block_on(self.store.delete(&key));
        Ok(Protections { conditional_create })
    }
}

impl Storage for S3Storage {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn read(&self, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let key = self.key(path);
        let what = format!("GET {}", self.describe_key(path));
        crate::runtime::block_on(async {
            let got = match self.store.get(&key).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(io_other(&what, e)),
            };
            if got.meta.size > max {
                return Err(io_other(
                    &what,
                    format!("{} bytes, more than the {max} it may hold", got.meta.size),
                ));
            }
            let bytes = got.bytes().await.map_err(|e| io_other(&what, e))?;
            if bytes.len() as u64 > max {
                return Err(io_other(&what, "longer than it said"));
            }
            Ok(Some(bytes.to_vec()))
        })
        .map_err(|e| io_other("runtime", e))?
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<(String, u64)>> {
        use futures_util::StreamExt;
        let root = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let key = if prefix.is_empty() {
            (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()))
        } else {
            Some(self.key(prefix))
        };
        crate::runtime::block_on(async {
            let mut out = Vec::new();
            let mut stream = self.store.list(key.as_ref());
            while let Some(m) = stream.next().await {
                let m = m.map_err(|e| io_other(&format!("LIST {}", self.url), e))?;
                let loc = m.location.to_string();
                if let Some(rel) = loc
                    .strip_prefix(&root)
                    .or(root.is_empty().then_some(&loc[..]))
                {
                    out.push((rel.to_string(), m.size));
                }
            }
            Ok(out)
        })
        .map_err(|e| io_other("runtime", e))?
    }

    fn write_exclusive(&self, path: &str, bytes: &[u8]) -> io::Result<bool> {
        // Checked first: a store may accept `If-None-Match: *` without enforcing it.
        if self.exists(path)? {
            return Ok(false);
        }
        let key = self.key(path);
        let what = format!("PUT {}", self.describe_key(path));
        let r = crate::runtime::block_on(self.store.put_opts(
            &key,
            PutPayload::from(bytes.to_vec()),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        ))
        .map_err(|e| io_other("runtime", e))?;
        match r {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(io_other(&what, e)),
        }
    }

    fn write_replace(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let key = self.key(path);
        let what = format!("PUT {}", self.describe_key(path));
        crate::runtime::block_on(self.store.put(&key, PutPayload::from(bytes.to_vec())))
            .map_err(|e| io_other("runtime", e))?
            .map(|_| ())
            .map_err(|e| io_other(&what, e))
    }

    fn holds(&self, path: &str, bytes: &[u8]) -> bool {
        let full = || {
            self.read(path, bytes.len() as u64)
                .ok()
                .flatten()
                .is_some_and(|b| b == bytes)
        };
        if self.read_back == ReadBack::Full {
            return full();
        }
        let key = self.key(path);
        let Ok(Ok(meta)) = crate::runtime::block_on(self.store.head(&key)) else {
            return false;
        };
        if self.read_back == ReadBack::Signed {
            // The PUT was signed with the SHA-256 of these bytes (object_store signs the
            // payload unless told not to) and the store checked it before its 200.
            return meta.size == bytes.len() as u64;
        }
        let md5: String = {
            use md5::Digest;
            md5::Md5::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        match meta.e_tag.as_deref().map(|e| e.trim_matches('"')) {
            // A single-part upload's ETag is the MD5 of its body.
            Some(e) if e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()) => {
                meta.size == bytes.len() as u64 && e.eq_ignore_ascii_case(&md5)
            }
            // Multipart or encrypted: no MD5 to compare, read it back.
            _ => full(),
        }
    }

    fn delete(&self, path: &str) -> io::Result<()> {
        let key = self.key(path);
        let what = format!("DELETE {}", self.describe_key(path));
        match crate::runtime::block_on(self.store.delete(&key))
            .map_err(|e| io_other("runtime", e))?
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_other(&what, e)),
        }
    }
}

impl S3Storage {
    /// The names of the folders directly under this prefix.
    fn subfolders(&self) -> io::Result<Vec<String>> {
        let key = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        let listed = crate::runtime::block_on(self.store.list_with_delimiter(key.as_ref()))
            .map_err(|e| io_other("runtime", e))?
            .map_err(|e| io_other(&format!("LIST {}", self.url), e))?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The same bucket under another prefix (a sibling site's).
    fn sibling(&self, prefix: &str, bucket: &str) -> S3Storage {
        S3Storage {
            store: self.store.clone(),
            prefix: prefix.to_string(),
            url: format!("s3://{bucket}/{prefix}"),
            read_back: self.read_back,
        }
    }
}

/// One site of a fleet bucket, as `report --remote` shows it.
#[derive(Serialize)]
struct SiteStatus {
    prefix: String,
    url: String,
    vault: String,
    intact: bool,
    findings: Vec<String>,
    entries: u64,
    newest: Option<String>,
    devices: Vec<FleetDevice>,
}

#[derive(Serialize)]
struct FleetDevice {
    device: String,
    last_good_backup: Option<String>,
    age_seconds: Option<u64>,
    baseline: Option<String>,
    alarms: Vec<String>,
}

/// `report --remote NAME`: every site that pushes to the remote's bucket (each prefix
/// beside this site's that holds a replica), checked in place with the keys this config
/// pins (a central config pins every site's collector key): integrity, entries, newest
/// entry, and per device the last complete backup, its age and baseline, with the
/// `backup-too-old` / `no-good-backup` alarms. Exit 1 when a site does not verify or has
/// an alarm.
pub fn fleet(cfg: &Config, name: &str, out: &Out) -> Result<Outcome> {
    let r = remote(cfg, name)?;
    let storage = S3Storage::open(r)?;
    // The fleet's root: the remote's prefix without its last component.
    let parent = r.prefix.rsplit_once('/').map_or("", |(p, _)| p).to_string();
    let root = storage.sibling(&parent, &r.bucket);
    let mut prefixes: Vec<String> = Vec::new();
    for p in root.subfolders()? {
        let full = if parent.is_empty() {
            p.clone()
        } else {
            format!("{parent}/{p}")
        };
        if root.sibling(&full, &r.bucket).exists("VAULT")? {
            prefixes.push(p);
        }
    }
    if prefixes.is_empty() {
        bail!(
            "no site has pushed to s3://{}/{parent} yet\nfix: `plcvault push {name}` on each site",
            r.bucket
        );
    }
    let now = std::time::SystemTime::now();
    let mut outcome = Outcome::Clean;
    for p in prefixes {
        let full = if parent.is_empty() {
            p.clone()
        } else {
            format!("{parent}/{p}")
        };
        let site = root.sibling(&full, &r.bucket);
        let c = check_remote(cfg, &site, false)?;
        let mut devices = Vec::new();
        for (d, sum) in &c.history.summary.devices {
            let good = sum.latest_complete.as_ref();
            let age = good.and_then(|s| {
                humantime::parse_rfc3339(&s.time)
                    .ok()
                    .map(|t| now.duration_since(t).unwrap_or_default().as_secs())
            });
            let mut alarms = Vec::new();
            match age {
                None => alarms.push("no-good-backup".to_string()),
                Some(a) if a > cfg.report.backup_max_age.as_secs() => {
                    alarms.push("backup-too-old".to_string())
                }
                _ => {}
            }
            devices.push(FleetDevice {
                device: d.clone(),
                last_good_backup: good.map(|s| s.time.clone()),
                age_seconds: age,
                baseline: sum
                    .baseline
                    .as_ref()
                    .map(|b| format!("{} by {} ({})", b.snapshot, b.approver, b.ticket)),
                alarms,
            });
        }
        let st = SiteStatus {
            prefix: p.clone(),
            url: site.url.clone(),
            vault: c.history.summary.vault.clone(),
            intact: c.findings.is_empty(),
            findings: c.findings.iter().map(|f| f.to_string()).collect(),
            entries: c.size,
            newest: c.history.summary.newest_time.clone(),
            devices,
        };
        if !st.intact || st.devices.iter().any(|d| !d.alarms.is_empty()) {
            outcome = Outcome::Findings;
        }
        out.record("fleet-site", &st, || {
            let mut t = format!(
                "{} {}: {} entries, newest {}",
                if st.intact { "INTACT " } else { "DAMAGED" },
                st.url,
                st.entries,
                st.newest.as_deref().unwrap_or("-")
            );
            for f in &st.findings {
                t.push_str(&format!("\n  FINDING {f}"));
            }
            for d in &st.devices {
                t.push_str(&format!(
                    "\n  {:<20} backup {:<26} baseline {:<40} {}",
                    d.device,
                    d.last_good_backup.as_deref().unwrap_or("none"),
                    d.baseline.as_deref().unwrap_or("none"),
                    if d.alarms.is_empty() {
                        "ok".to_string()
                    } else {
                        format!("alarms: {}", d.alarms.join(", "))
                    }
                ));
            }
            t
        });
    }
    Ok(outcome)
}

fn remote<'a>(cfg: &'a Config, name: &str) -> Result<&'a RemoteConfig> {
    cfg.remotes.iter().find(|r| r.name == name).ok_or_else(|| {
        let names: Vec<&str> = cfg.remotes.iter().map(|r| r.name.as_str()).collect();
        anyhow!(
            "no [[remote]] is named `{name}` in {}\nfix: use one of: {}",
            cfg.file.display(),
            if names.is_empty() {
                "(none: add a [[remote]] with name, url, endpoint and region)".to_string()
            } else {
                names.join(", ")
            }
        )
    })
}

/// `push NAME [--check]`: the vault replicated to the remote (only what is missing, each
/// object read back, the signed checkpoint last), the replica verified in place, and a
/// signed `copy` entry naming it.
///
/// Fails (exit 2, the local vault untouched but for nothing) when the store cannot be
/// reached or written, or the replica does not verify.
pub fn push(cfg: &Config, name: &str, check: bool, out: &Out) -> Result<Outcome> {
    let r = remote(cfg, name)?;
    let key = cfg.signing_key()?;
    let vault = cfg.vault_for_reading()?.hold(vault::Hold::Shared)?;
    vault::guard::check(&vault.clone().remembering(&cfg.vault.state))
        .context("refusing to push")?;
    let storage = S3Storage::open(r)?;
    let protections = storage.probe()?;
    out.info(format!(
        "{}: conditional create (If-None-Match: *) {}; every object is checked before it is written and {}",
        storage.url,
        if protections.conditional_create {
            "enforced"
        } else {
            "NOT enforced by this store"
        },
        match storage.read_back {
            ReadBack::Full => "read back after",
            ReadBack::Etag => "proven by the store's MD5 (ETag) after",
            ReadBack::Signed => "proven by the store's check of its signed SHA-256",
        }
    ));
    cfg.require_intact(
        &vault,
        false,
        ("push", "a replica must be of an intact vault"),
    )?;
    let history = cfg.history(&vault)?;
    let t0 = std::time::Instant::now();
    let report = vault::replica::copy(&vault, &cfg.trust, &history, &storage, check)?;
    let secs = t0.elapsed().as_secs_f64();
    let checked = check_remote(cfg, &storage, false)?;
    if let Some(f) = checked.findings.first() {
        bail!(
            "the replica on {} does not verify: {} problem(s), first: {f}\nfix: run `plcvault push {name} --check`; nothing was signed",
            storage.url,
            checked.findings.len()
        );
    }
    let event = vault::log::Event::Copy {
        disk: report.disk.clone(),
        label: format!("remote {name}"),
        target: storage.url.clone(),
        size: report.size,
        head: report.head,
        root: report.root,
        written: report.written,
        bytes: report.bytes,
        total_bytes: report.total_bytes,
    };
    let entry = vault::guard::append(&vault.remembering(&cfg.vault.state), &key, &event)?;
    out.record(
        "push",
        &serde_json::json!({"remote": name, "url": storage.url, "report": report, "protections": protections, "entry": entry.file_seq, "seconds": secs}),
        || {
            format!(
                "pushed to {} (replica {}): entries 1 to {}, {} objects written ({}), {} already there, {} removed; {} in all; {:.1} s ({}/s); verified in place; signed as log entry {}",
                storage.url,
                &report.disk[..12],
                report.size,
                report.written,
                human_bytes(report.bytes),
                report.present,
                report.removed,
                human_bytes(report.total_bytes),
                secs,
                human_bytes((report.bytes as f64 / secs.max(0.001)) as u64),
                entry.file_seq
            )
        },
    );
    Ok(Outcome::Clean)
}

/// What checking a remote replica found.
pub struct RemoteCheck {
    pub findings: Vec<Finding>,
    pub history: History,
    pub size: u64,
    pub packs: u64,
    pub bytes_read: u64,
}

/// Checks the replica on `storage` with the pinned keys, reading it in place: its signed
/// checkpoint, every entry up to it (signature, role, chain) and their tree against the
/// checkpoint's root, the local vault's tree at that size (a fork or an overwritten log),
/// the size the local log last recorded for it (a rollback), every pack the log names
/// (present, of its size; with `read_data` hashed against its name) and every kept
/// snapshot's manifest (hashed against its name, parsed).
///
/// Fails when the store cannot be read at all.
pub fn check_remote(cfg: &Config, storage: &S3Storage, read_data: bool) -> Result<RemoteCheck> {
    let place = storage.describe();
    let mut findings = Vec::new();
    let marker = storage.read("VAULT", 4096)?.ok_or_else(|| {
        anyhow!("{place} holds no vault replica (no VAULT)\nfix: `plcvault push` first")
    })?;
    let id = String::from_utf8_lossy(&marker)
        .lines()
        .find_map(|l| l.strip_prefix("id ").map(str::to_string))
        .ok_or_else(|| anyhow!("the VAULT marker on {place} is damaged"))?;
    let note = storage
        .read("tlog/checkpoint", vault::tiles::MAX_CHECKPOINT)?
        .ok_or_else(|| {
            anyhow!(
                "{place} has no signed checkpoint (a push that never finished)\nfix: push again"
            )
        })?;
    let cp = match vault::tiles::open(&String::from_utf8_lossy(&note), &id, &cfg.trust.writers()) {
        Ok(c) if !c.signers.is_empty() => c.checkpoint,
        Ok(_) | Err(_) => {
            findings.push(Finding::new(
                FindingKind::BadCheckpoint,
                format!("the checkpoint on {place} is not signed by a pinned key"),
            ));
            return Ok(RemoteCheck {
                findings,
                history: History::start(vault::history::Summary::new(&id), Default::default(), 0),
                size: 0,
                packs: 0,
                bytes_read: 0,
            });
        }
    };
    let n = cp.size;
    // The entries 1..n: full bundles, loose entries for the rest.
    let mut listed: HashMap<String, u64> = HashMap::new();
    for prefix in ["log", "tlog/tile/entries", "packs", "manifests"] {
        listed.extend(storage.list(prefix)?);
    }
    let mut history = History::start(
        vault::history::Summary::new(&id),
        vault::history::Store::Memory(Default::default()),
        0,
    );
    let mut cache = vault::key::KeyCache::default();
    let mut bytes_read = 0u64;
    let mut seq = 1;
    while seq <= n {
        let g = (seq - 1) / vault::log::BUNDLE;
        let bundle = vault::log::bundle_path(Path::new(""), g);
        let bundle = bundle.to_string_lossy().trim_start_matches('/').to_string();
        let mut group: Vec<(u64, Vec<u8>, String)> = Vec::new();
        if (g + 1) * vault::log::BUNDLE <= n && listed.contains_key(&bundle) {
            let bytes = storage
                .read(&bundle, 256 * 65_537)?
                .ok_or_else(|| anyhow!("{bundle} vanished from {place} while it was read"))?;
            bytes_read += bytes.len() as u64;
            match vault::log::split_bundle(&bytes) {
                Ok(entries) if entries.len() as u64 == vault::log::BUNDLE => {
                    for (i, e) in entries.into_iter().enumerate() {
                        group.push((g * vault::log::BUNDLE + 1 + i as u64, e, bundle.clone()));
                    }
                }
                Ok(_) | Err(_) => findings.push(Finding::new(
                    FindingKind::MalformedEntry,
                    format!("the entry bundle {bundle} on {place} is damaged"),
                )),
            }
            seq = (g + 1) * vault::log::BUNDLE + 1;
        } else {
            let rel = format!("log/{seq:020}.entry");
            match storage.read(&rel, vault::log::MAX_ENTRY_SIZE)? {
                Some(b) => {
                    bytes_read += b.len() as u64;
                    group.push((seq, b, rel));
                }
                None => findings.push(
                    Finding::new(
                        FindingKind::MissingEntry,
                        format!("log entry {seq} is missing on {place}"),
                    )
                    .seq(seq),
                ),
            }
            seq += 1;
        }
        for (s, bytes, rel) in group {
            let path = Path::new(&rel);
            let parsed = vault::log::parse(s, path, &bytes).map(|e| {
                let ok = e.signature_ok_cached(&mut cache);
                (e, ok)
            });
            history.fold(&id, &cfg.trust, s, &bytes, parsed, path)?;
        }
    }
    history.finish();
    findings.extend(history.summary.all_findings());
    if history.summary.leaves != n || history.summary.root() != cp.root {
        findings.push(Finding::new(
            FindingKind::BadCheckpoint,
            format!(
                "the entries on {place} do not give the signed checkpoint's root (of {n} entries): an entry was altered, replaced or deleted"
            ),
        ));
    }
    // The local vault, when there is one: the remote must be a prefix of it, and not
    // older than what the local log last recorded for this replica.
    if let Ok(local) = vault::Vault::open(&cfg.vault.path)
        && local.id() == id
    {
        let tiles = vault::tiles::Tiles::of(local.root());
        match vault::tlog::tree_hash(&tiles, n) {
            Ok(root) if root == cp.root => {}
            Ok(_) => findings.push(Finding::new(
                FindingKind::Diverged,
                format!(
                    "the replica on {place} holds a log of {n} entries this vault does not have (another root): it was overwritten or forked"
                ),
            )),
            Err(_) => {}
        }
        if let Ok(h) = cfg.history(&local)
            && let Some(c) = h
                .summary
                .copies
                .values()
                .filter(|c| c.target == place)
                .max_by_key(|c| c.size)
            && c.size > n
        {
            findings.push(Finding::new(
                FindingKind::Rollback,
                format!(
                    "the replica on {place} holds {n} entries, but log entry {} recorded a push of {}: it was rolled back",
                    c.seq, c.size
                ),
            ));
        }
    }
    // Packs and manifests.
    let packs = history.packs_for_reading();
    for p in &packs {
        let rel = format!("packs/{}/{}.pack", &p.id.to_hex()[..2], p.id);
        match listed.get(&rel) {
            None => findings.push(Finding::new(
                FindingKind::MissingPack,
                format!("pack {} is missing on {place}", p.id.short()),
            )),
            Some(s) if *s != p.size => findings.push(Finding::new(
                FindingKind::TruncatedPack,
                format!(
                    "pack {} on {place} is {s} bytes, the log says {}",
                    p.id.short(),
                    p.size
                ),
            )),
            Some(_) if read_data => {
                let ok = storage
                    .read(&rel, vault::pack::MAX_PACK_SIZE)?
                    .inspect(|b| bytes_read += b.len() as u64)
                    .is_some_and(|b| Hash::of(&b) == p.id);
                if !ok {
                    findings.push(Finding::new(
                        FindingKind::CorruptPack,
                        format!(
                            "pack {} on {place} does not match its SHA-256 (altered)",
                            p.id.short()
                        ),
                    ));
                }
            }
            Some(_) => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in history.snapshots() {
        if !seen.insert(s.manifest) {
            continue;
        }
        let rel = format!("manifests/{}.json", s.manifest);
        match storage.read(&rel, vault::manifest::MAX_MANIFEST_SIZE)? {
            None => findings.push(
                Finding::new(
                    FindingKind::MissingManifest,
                    format!(
                        "manifest of snapshot {} of `{}` is missing on {place}",
                        s.id, s.device
                    ),
                )
                .seq(s.seq),
            ),
            Some(b) => {
                bytes_read += b.len() as u64;
                if vault::Manifest::from_bytes(&b, &s.manifest, Path::new(&rel)).is_err() {
                    findings.push(
                        Finding::new(
                            FindingKind::CorruptManifest,
                            format!(
                                "manifest of snapshot {} of `{}` on {place} does not match its SHA-256 or does not parse",
                                s.id, s.device
                            ),
                        )
                        .seq(s.seq),
                    );
                }
            }
        }
    }
    Ok(RemoteCheck {
        findings,
        history,
        size: n,
        packs: packs.len() as u64,
        bytes_read,
    })
}

/// `verify --remote NAME [--read-data]`.
pub fn verify(cfg: &Config, name: &str, read_data: bool, out: &Out) -> Result<Outcome> {
    let r = remote(cfg, name)?;
    let storage = S3Storage::open(r)?;
    let t0 = std::time::Instant::now();
    let c = check_remote(cfg, &storage, read_data)?;
    for f in &c.findings {
        out.record("finding", f, || {
            format!("FINDING [{}] {}", f.kind, f.message)
        });
    }
    let clean = c.findings.is_empty();
    out.record(
        "verify",
        &serde_json::json!({"remote": name, "url": storage.url, "clean": clean, "findings": c.findings.len(), "entries": c.size, "snapshots": c.history.snapshots().len(), "packs": c.packs, "bytes_read": c.bytes_read, "read_data": read_data, "duration_ms": t0.elapsed().as_millis() as u64}),
        || {
            format!(
                "{}: {} on {}: {} log entries, {} snapshots, {} packs{}; {} read in place, nothing written here",
                if clean { "INTACT" } else { "DAMAGED" },
                name,
                storage.url,
                c.size,
                c.history.snapshots().len(),
                c.packs,
                if read_data { " (every pack re-hashed)" } else { "" },
                human_bytes(c.bytes_read)
            )
        },
    );
    Ok(if clean {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `restore --remote NAME DEVICE [--snapshot ID] --to DIR`: the replica checked in place,
/// then the snapshot's manifest and the packs the log names fetched into a temporary
/// folder and restored from there, every chunk and file checked against its SHA-256.
pub fn restore(
    cfg: &Config,
    name: &str,
    device: &str,
    snapshot: &str,
    to: &Path,
    force: bool,
    out: &Out,
) -> Result<Outcome> {
    let r = remote(cfg, name)?;
    let storage = S3Storage::open(r)?;
    let c = check_remote(cfg, &storage, false)?;
    if let Some(f) = c.findings.first() {
        bail!(
            "refusing to restore from {}: it does not verify ({} problem(s), first: {f})\nfix: restore from the vault or another replica",
            storage.url,
            c.findings.len()
        );
    }
    let snap = c.history.find_snapshot(Some(device), Some(snapshot))?;
    let tmp = tempfile::Builder::new()
        .prefix("plcvault-remote-")
        .tempdir()
        .context("cannot make a temporary folder")?;
    let root = tmp.path();
    let fetch = |rel: &str, max: u64| -> Result<()> {
        let bytes = storage
            .read(rel, max)?
            .ok_or_else(|| anyhow!("{rel} vanished from {} while it was read", storage.url))?;
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a relative path has a parent"))?;
        std::fs::write(&path, bytes)?;
        Ok(())
    };
    fetch("VAULT", 4096)?;
    for d in ["log", "manifests", "packs", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let manifest_rel = format!("manifests/{}.json", snap.manifest);
    fetch(&manifest_rel, vault::manifest::MAX_MANIFEST_SIZE)?;
    let manifest = vault::manifest::load(root, &snap.manifest)?;
    let needed: std::collections::HashSet<Hash> = manifest
        .artifacts
        .iter()
        .flat_map(|a| a.chunks.iter().map(|(id, _)| *id))
        .collect();
    // Packs one at a time, kept only when they hold a needed chunk.
    let local = vault::Vault::open(root)?;
    let mut index = vault::Index::default();
    let mut found = std::collections::HashSet::new();
    for p in c.history.packs_for_reading() {
        if found.len() == needed.len() {
            break;
        }
        let rel = format!("packs/{}/{}.pack", &p.id.to_hex()[..2], p.id);
        fetch(&rel, vault::pack::MAX_PACK_SIZE)?;
        let path = root.join(&rel);
        let (_, entries) = vault::pack::read_trailer(&path, Some(p.size))?;
        if entries
            .iter()
            .any(|e| needed.contains(&e.id) && found.insert(e.id))
        {
            index.add_pack(p.id, p.size, &entries);
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    out.info(format!(
        "restoring snapshot {} of `{device}` from {} ({} artifacts, {}) into {}",
        snap.id,
        storage.url,
        manifest.artifacts.len(),
        human_bytes(manifest.total_size()),
        to.display()
    ));
    let report = vault::restore(
        &local,
        &index,
        &manifest,
        to,
        &vault::RestoreOptions {
            force,
            threads: cfg.threads,
            keep_special_bits: false,
        },
    )?;
    // The temporary folder is only a cache of the replica: name the replica instead.
    let tmp_name = root.display().to_string();
    for f in &report.failed {
        let error = f
            .error
            .lines()
            .next()
            .unwrap_or_default()
            .replace(&tmp_name, &storage.url);
        let f = vault::restore::RestoreFailure {
            name: f.name.clone(),
            error: format!(
                "{error} (the replica is damaged: run `plcvault verify --remote {name} --read-data`; restore from the vault or another replica)"
            ),
        };
        out.record("restore-failure", &f, || {
            format!("FAILED  {}: {}", f.name, f.error)
        });
    }
    out.record(
        "restore",
        &serde_json::json!({"remote": name, "device": device, "snapshot": snap.id, "target": to, "artifacts": report.artifacts, "bytes": report.bytes, "failed": report.failed.len()}),
        || {
            crate::ops::commands::restore_summary(
                &report,
                manifest.artifacts.len(),
                &snap.id,
                &format!("from {}", storage.url),
            )
        },
    );
    Ok(crate::ops::commands::restore_outcome(&report))
}
