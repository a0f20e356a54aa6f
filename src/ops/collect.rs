//! Collection orchestration: run each device's adapter, stream its artifacts into the
//! vault on worker threads, commit a signed snapshot, and record failures in the log.
//!
//! One device failing never stops the others. A device that could not be read at all gets
//! a signed `collect-failed` entry, so "no snapshot" is never silent.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use adapters::files::{BoundedFile, StableError, read_stable};
use adapters::{ArtifactSource, Collection, SourceData, StreamError};
use vault::log::Event;
use vault::manifest::{ArtifactEntry, ArtifactStatus};
use vault::writer::StoreError;
use vault::{Index, Manifest, Scratch, SecretKey, Vault, Writer};

use crate::config::{Config, DeviceConfig};
use crate::ops::device::{READ_ATTEMPTS, READ_PAUSE, adapter_source, admissible, collect_guarded};
use crate::output::{Out, Outcome, human_bytes};

/// What changed against the device's previous snapshot.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Changes {
    pub previous: Option<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The result of collecting one device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub device: String,
    /// `ok`, `incomplete`, `failed` or `skipped` (optional and not there).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub artifacts: u64,
    pub bytes: u64,
    /// Bytes of chunks new to the vault, before compression.
    pub new_bytes: u64,
    /// Bytes of pack files this snapshot added to the vault.
    pub stored_bytes: u64,
    pub duration_ms: u64,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kind of failure, when the adapter told it (`unreachable`, `timeout`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Something outside the approved baseline was found (see the `finding` records);
    /// `null` for a device that was not collected (nothing is known of it).
    pub drift: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub devices: usize,
    pub ok: usize,
    pub incomplete: usize,
    pub failed: usize,
    /// Optional devices that were not there (`optional = true`).
    pub skipped: usize,
    /// Devices whose snapshot is outside the approved baseline.
    pub drift: usize,
    pub bytes: u64,
    pub new_bytes: u64,
    pub stored_bytes: u64,
    pub duration_ms: u64,
}

/// Collects `devices` into the configured vault and prints a record per device and a
/// summary, on a runtime of its own.
///
/// Fails (exit 2) only when the run cannot start: no key, vault cannot be opened.
pub fn run(
    cfg: &Config,
    devices: &[&DeviceConfig],
    out: &Out,
) -> Result<(Outcome, Vec<DeviceReport>)> {
    run_on(&crate::runtime::handle()?, cfg, devices, out)
}

/// A device as stored: its report, and for a snapshot its entry hash and manifest (for
/// the comparison that follows).
type Stored<'a> = (
    DeviceReport,
    &'a DeviceConfig,
    Option<(vault::Hash, Manifest)>,
);

/// What a device task hands to the storing loop.
struct Collected {
    index: usize,
    result: Result<Collection>,
    started: Instant,
}

/// Collects on `handle`'s runtime: devices are read concurrently (at most
/// `[collect] max-devices` at once), and each collection is stored and committed on this
/// thread as soon as it arrives, with the CPU-heavy work on worker threads. Must not be
/// called from an async task (use `spawn_blocking`).
///
/// Fails (exit 2) only when the run cannot start.
/// `baseline approve --live`: collects the one device now into a new snapshot and returns
/// its id, for the approval that follows.
///
/// Fails when the device is not in the config, or could not be collected whole.
pub fn for_approval(cfg: &Config, device: &str, out: &Out) -> Result<String> {
    let dev = cfg.one(device)?;
    let runtime = crate::runtime::get()?;
    let (_, reports) = run_on(runtime.handle(), cfg, &[dev], out)?;
    let r = reports
        .into_iter()
        .next()
        .context("the collection reported nothing")?;
    match (r.status, r.snapshot) {
        ("ok", Some(id)) => Ok(id),
        (status, _) => anyhow::bail!(
            "`{}` could not be collected whole ({status}{}); nothing is approved\nfix: collect again once the device answers, or review and approve a stored snapshot with --snapshot ID",
            dev.name,
            r.error
                .map(|e| format!(": {}", e.lines().next().unwrap_or_default()))
                .unwrap_or_default()
        ),
    }
}

pub fn run_on(
    handle: &tokio::runtime::Handle,
    cfg: &Config,
    devices: &[&DeviceConfig],
    out: &Out,
) -> Result<(Outcome, Vec<DeviceReport>)> {
    let started = Instant::now();
    let key = cfg.signing_key()?;
    let vault = cfg
        .vault_for_writing(true)
        .with_context(|| format!("cannot open the vault at {}", cfg.vault.path.display()))?;
    let history = cfg.history(&vault)?;
    if !history.findings.is_empty() {
        out.warn(format!(
            "the vault's log has {} integrity finding(s); collecting anyway — run `plcvault verify` to see them",
            history.findings.len()
        ));
    }
    let (mut index, problems) = Index::load(&vault, &history.committed_packs());
    for p in &problems {
        out.warn(format!(
            "{}; chunks from it will be stored again",
            p.error.to_string().lines().next().unwrap_or_default()
        ));
    }

    let (tx, rx) = std::sync::mpsc::channel::<Collected>();
    let limit = Arc::new(tokio::sync::Semaphore::new(cfg.max_devices));
    for (i, device) in devices.iter().enumerate() {
        out.debug(format!(
            "collecting `{}` ({})",
            device.name,
            device.adapter_name()
        ));
        let device = (*device).clone();
        let tx = tx.clone();
        let limit = limit.clone();
        handle.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let started = Instant::now();
            let result = collect_guarded(device).await;
            let _ = tx.send(Collected {
                index: i,
                result,
                started,
            });
        });
    }
    drop(tx);

    let progress = Progress::new(out, devices.len());
    // Stored as they arrive; compared with their baselines afterwards, side by side.
    let mut stored: Vec<Stored> = Vec::new();
    for collected in rx {
        let ctx = StoreContext {
            vault: &vault,
            index: &index,
            key: &key,
            cfg,
            out,
        };
        let device = devices[collected.index];
        let previous = history.find_snapshot(Some(&device.name), None).ok();
        let previous_manifest = previous
            .as_ref()
            .and_then(|p| vault::manifest::load(vault.root(), &p.manifest).ok());
        let result = collected
            .result
            .and_then(|collection| store(&ctx, device, collection, previous_manifest.as_ref()));
        let (mut report, done) = match result {
            Ok((mut r, committed, manifest)) => {
                if let (Some(prev), Some(old)) = (&previous, &previous_manifest) {
                    r.changes = Some(compare(old, &manifest, &prev.id));
                }
                // The new packs join the index so that the comparison can read them.
                for p in &committed.packs {
                    if let Ok((_, entries)) = vault::pack::read_trailer(
                        &vault::pack::pack_path(vault.root(), &p.id),
                        Some(p.size),
                    ) {
                        index.add_pack(p.id, p.size, &entries);
                    }
                }
                (r, Some((committed.entry.hash, manifest)))
            }
            Err(e)
                if matches!(
                    e.downcast_ref::<adapters::AdapterError>(),
                    Some(adapters::AdapterError::Absent { .. })
                ) =>
            {
                // Optional and not there: nothing read, nothing failed, nothing signed.
                let mut r = DeviceReport::failed(&device.name, format!("{e:#}"));
                r.status = "skipped";
                r.error_kind = Some("absent".into());
                (r, None)
            }
            Err(e) => {
                let error = format!("{e:#}");
                let kind = e
                    .downcast_ref::<adapters::AdapterError>()
                    .map(|a| a.kind().to_string());
                let event = Event::CollectFailed {
                    device: device.name.clone(),
                    error: error.clone(),
                    kind: kind.clone(),
                };
                if let Err(le) = vault::guard::append(&vault, &key, &event) {
                    out.warn(format!("could not record the failure in the log: {le}"));
                }
                let mut r = DeviceReport::failed(&device.name, error);
                r.error_kind = kind;
                (r, None)
            }
        };
        report.duration_ms = collected.started.elapsed().as_millis() as u64;
        stored.push((report, device, done));
        progress.show(stored.len());
    }
    progress.clear();

    // Every stored device against its baseline, on all threads.
    let reviews: Vec<Option<Result<crate::review::html::Review>>> = vault::parallel::map_with(
        &stored,
        cfg.threads,
        || (),
        |_, (_, device, done)| {
            let (entry, manifest) = done.as_ref()?;
            let read = |a: &ArtifactEntry| {
                vault::read_artifact(&vault, &index, a, crate::review::diff::view_limit(a)).ok()
            };
            let rv = crate::review::baseline::review_against_baseline(
                &vault,
                &index,
                &history,
                device,
                manifest,
                format!("snapshot {}", entry.short()),
                &read,
            );
            if let Ok(rv) = &rv
                && let Some(b) = &rv.baseline
            {
                let id = crate::review::baseline::summary_key(entry, &b.entry, device);
                crate::review::baseline::store_summary(&cfg.vault.state, id, rv, &key);
            }
            Some(rv)
        },
    );

    let mut reports = Vec::new();
    let mut outcome = Outcome::Clean;
    for ((mut report, _, _), review) in stored.into_iter().zip(reviews) {
        outcome = outcome.worst(match report.status {
            "ok" | "skipped" => Outcome::Clean,
            _ => Outcome::NotCollected,
        });
        let review = match review {
            Some(Ok(rv)) => Some(rv),
            Some(Err(e)) => {
                // Not knowing is not "no drift": the run says so (exit 1).
                outcome = outcome.worst(Outcome::Findings);
                report.warnings.push(format!(
                    "could not compare with the baseline (the vault is damaged; run `plcvault verify`): {e:#}"
                ));
                None
            }
            None => None,
        };
        if review.as_ref().is_some_and(|r| r.comparison.drift()) {
            outcome = outcome.worst(Outcome::Findings);
            report.drift = Some(true);
        }
        print_device(out, &report);
        if let Some(rv) = review {
            crate::review::html::print(out, &[rv], "comparison");
        }
        reports.push(report);
    }
    let summary = RunSummary {
        devices: reports.len(),
        ok: reports.iter().filter(|r| r.status == "ok").count(),
        incomplete: reports.iter().filter(|r| r.status == "incomplete").count(),
        failed: reports.iter().filter(|r| r.status == "failed").count(),
        skipped: reports.iter().filter(|r| r.status == "skipped").count(),
        drift: reports.iter().filter(|r| r.drift == Some(true)).count(),
        bytes: reports.iter().map(|r| r.bytes).sum(),
        new_bytes: reports.iter().map(|r| r.new_bytes).sum(),
        stored_bytes: reports.iter().map(|r| r.stored_bytes).sum(),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    out.record("summary", &summary, || {
        format!(
            "collected {} device(s): {} ok, {} incomplete, {} failed{}; {} read, {} new, {} added to the vault in {:.1} s",
            summary.devices,
            summary.ok,
            summary.incomplete,
            summary.failed,
            if summary.skipped > 0 {
                format!(", {} skipped (optional, not there)", summary.skipped)
            } else {
                String::new()
            },
            human_bytes(summary.bytes),
            human_bytes(summary.new_bytes),
            human_bytes(summary.stored_bytes),
            summary.duration_ms as f64 / 1000.0
        )
    });
    Ok((outcome, reports))
}

/// A one-line progress display on stderr, only when stderr is a terminal.
struct Progress {
    on: bool,
    total: usize,
}

impl Progress {
    fn new(out: &Out, total: usize) -> Progress {
        use std::io::IsTerminal;
        let on = !out.quiet && !out.json && std::io::stderr().is_terminal() && total > 1;
        let p = Progress { on, total };
        p.show(0);
        p
    }

    fn show(&self, done: usize) {
        if self.on && done < self.total {
            crate::output::to_stderr(&format!(
                "\r\x1b[Kcollecting: {done}/{} devices done",
                self.total
            ));
        }
    }

    fn clear(&self) {
        if self.on {
            crate::output::to_stderr("\r\x1b[K");
        }
    }
}

impl DeviceReport {
    fn failed(device: &str, error: String) -> DeviceReport {
        DeviceReport {
            device: device.to_string(),
            status: "failed",
            snapshot: None,
            seq: None,
            artifacts: 0,
            bytes: 0,
            new_bytes: 0,
            stored_bytes: 0,
            duration_ms: 0,
            warnings: Vec::new(),
            error: Some(error),
            error_kind: None,
            changes: None,
            drift: None,
        }
    }
}

fn print_device(out: &Out, r: &DeviceReport) {
    out.record("device", r, || {
        let mut s = match r.status {
            "failed" => format!(
                "FAILED  {}: {}",
                r.device,
                r.error.as_deref().unwrap_or("").replace('\n', "\n        ")
            ),
            "skipped" => format!("SKIPPED {}: {}", r.device, r.error.as_deref().unwrap_or("")),
            status => format!(
                "{:<7} {}: snapshot {} ({} artifacts, {}, {} new)",
                if status == "ok" { "OK" } else { "INCOMPLETE" },
                r.device,
                r.snapshot.as_deref().unwrap_or("-"),
                r.artifacts,
                human_bytes(r.bytes),
                human_bytes(r.new_bytes)
            ),
        };
        // Names and warnings come from the device: one line each, whatever they hold.
        let pi = crate::output::printable_inline;
        for w in &r.warnings {
            s.push_str(&format!("\n        warning: {}", pi(w)));
        }
        if let Some(c) = &r.changes {
            if c.is_empty() {
                s.push_str("\n        unchanged since the previous snapshot");
            }
            for (label, names) in [
                ("added", &c.added),
                ("removed", &c.removed),
                ("changed", &c.changed),
            ] {
                for n in names {
                    s.push_str(&format!("\n        {label:<8}{}", pi(n)));
                }
            }
        }
        s
    });
}

/// What every device's storing step shares.
struct StoreContext<'a> {
    vault: &'a Vault,
    index: &'a Index,
    key: &'a SecretKey,
    cfg: &'a Config,
    out: &'a Out,
}

/// Streams a collection into the vault on worker threads and commits the snapshot.
fn store(
    ctx: &StoreContext,
    device: &DeviceConfig,
    collection: Collection,
    previous: Option<&Manifest>,
) -> Result<(DeviceReport, vault::writer::Committed, Manifest)> {
    let collection = admissible(collection);
    let StoreContext {
        vault,
        index,
        key,
        cfg,
        out,
    } = *ctx;
    let started = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut writer = Writer::new(vault, index);
    let mut previous_sizes = HashMap::new();
    if let Some(prev) = previous {
        writer.remember(prev);
        previous_sizes = prev
            .artifacts
            .iter()
            .map(|a| (a.name.as_str(), a.size))
            .collect();
    }
    let writer = writer;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, ArtifactOutcome)>> = Mutex::new(Vec::new());
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let threads = cfg.threads.min(collection.artifacts.len()).max(1);
    // Largest first, so that one big image does not run alone at the end.
    let mut order: Vec<usize> = (0..collection.artifacts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(collection.artifacts[i].size_hint.unwrap_or(0)));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut scratch = match Scratch::new(cfg.vault.compression_level) {
                    Ok(s) => s,
                    Err(e) => {
                        *fatal.lock().expect("lock") = Some(e.into());
                        return;
                    }
                };
                let mut buf = Vec::new();
                loop {
                    if fatal.lock().expect("lock").is_some() {
                        return;
                    }
                    let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let src = &collection.artifacts[i];
                    out.debug(format!("  reading {}", src.name));
                    let same_size = previous_sizes.get(src.name.as_str()).copied();
                    match store_artifact(&writer, &mut scratch, &mut buf, src, same_size) {
                        Ok(r) => results.lock().expect("lock").push((i, r)),
                        Err(e) => {
                            *fatal.lock().expect("lock") = Some(e);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner().expect("lock") {
        return Err(e.context(format!(
            "storing `{}` failed; nothing was committed",
            device.name
        )));
    }
    let mut results = results.into_inner().expect("lock");
    results.sort_by_key(|r| r.0);
    let mut warnings = collection.warnings.clone();
    let mut complete = collection.complete;
    let mut artifacts = Vec::new();
    for (_, r) in results {
        match r {
            Ok(Some(a)) => {
                if a.status == ArtifactStatus::Unstable {
                    complete = false;
                    warnings.push(format!(
                        "{} kept changing while it was read; stored as unstable",
                        a.name
                    ));
                }
                artifacts.push(a);
            }
            Ok(None) => {}
            Err(w) => {
                complete = false;
                warnings.push(w);
            }
        }
    }
    if drop_conflicts(&mut artifacts, &mut warnings) {
        complete = false;
    }
    // Nothing read at all (every request refused or unanswered, every file failed) is a
    // failed collection, not an empty snapshot.
    if !complete && artifacts.is_empty() {
        let why = warnings
            .iter()
            .take(3)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(anyhow::Error::new(adapters::AdapterError::NothingRead {
            device: device.name.clone(),
            why,
            fix: "check that the device answers (address, unit, timeout, login) and that the configured ranges or paths exist".into(),
        }));
    }
    let (adapter, source) = adapter_source(device);
    let finished = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let manifest = Manifest {
        v: vault::manifest::MANIFEST_VERSION,
        device: device.name.clone(),
        adapter,
        source,
        complete,
        warnings: warnings.clone(),
        artifacts,
    };
    let new_bytes = writer.new_bytes();
    let committed = writer.commit(&manifest, (started, finished), key)?;
    let report = DeviceReport {
        device: device.name.clone(),
        status: if complete { "ok" } else { "incomplete" },
        snapshot: Some(committed.entry.hash.short()),
        seq: Some(committed.entry.file_seq),
        artifacts: manifest.artifacts.len() as u64,
        bytes: manifest.total_size(),
        new_bytes,
        stored_bytes: committed.stored_bytes,
        duration_ms: 0,
        warnings,
        error: None,
        error_kind: None,
        changes: None,
        drift: Some(false),
    };
    Ok((report, committed, manifest))
}

/// Keeps the artifacts a restore can write: sorted, each name once (a device that lists a
/// name twice keeps the first), and no name that is a file and another's folder (the file
/// is kept, the entries below it dropped). Returns true when anything was dropped (each
/// named in a warning): the snapshot is then incomplete.
fn drop_conflicts(artifacts: &mut Vec<ArtifactEntry>, warnings: &mut Vec<String>) -> bool {
    artifacts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut kept: Vec<ArtifactEntry> = Vec::with_capacity(artifacts.len());
    let mut files: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut dropped = false;
    for a in artifacts.drain(..) {
        let why = if kept.last().is_some_and(|k| k.name == a.name) {
            Some("the device lists it twice; the first is kept".to_string())
        } else {
            vault::manifest::folder_conflict(&a.name, |p| files.contains(p))
                .map(|p| format!("`{p}` is also a file on the device; the file is kept"))
        };
        match why {
            Some(why) => {
                dropped = true;
                warnings.push(format!("skipped `{}`: {why}", a.name));
            }
            None => {
                files.insert(a.name.clone());
                kept.push(a);
            }
        }
    }
    *artifacts = kept;
    dropped
}

/// An artifact stored, skipped, or unreadable (with the warning to record).
type ArtifactOutcome = Result<Option<ArtifactEntry>, String>;

/// Files up to this size are read into memory once, hashed, and stored from memory.
const IN_MEMORY: u64 = 8 * 1024 * 1024;
/// Files larger than this are chunked on one thread and packed on another.
const PIPELINE_FROM: u64 = 32 * 1024 * 1024;

/// Stores one artifact. `Ok(Err(warning))` when the source could not be read (the
/// snapshot becomes incomplete); `Err` when the vault failed.
///
/// Content is always read and hashed in full (mtime is no evidence). When the whole-file
/// SHA-256 equals that of an artifact in the previous snapshot, or the file is one chunk
/// the vault already holds, its chunk list is reused without hashing chunks again.
fn store_artifact(
    writer: &Writer,
    scratch: &mut Scratch,
    buf: &mut Vec<u8>,
    src: &ArtifactSource,
    previous_size: Option<u64>,
) -> Result<ArtifactOutcome> {
    // The export format (by extension and root element) is recorded from the bytes read,
    // so that the diff chooses its structured view from the collection, never a guess.
    let entry =
        |stored: vault::Stored, status, mut meta: vault::manifest::ArtifactMeta, head: &[u8]| {
            crate::review::formats::record(&mut meta, &src.name, head);
            ArtifactEntry {
                name: src.name.clone(),
                kind: src.kind,
                size: stored.size,
                sha256: stored.sha256,
                status,
                meta,
                chunks: stored.chunks,
            }
        };
    let sniff = crate::review::formats::SNIFF;
    let mut head: Vec<u8> = Vec::new();
    let from_memory = |scratch: &mut Scratch, data: &[u8]| -> Result<vault::Stored, StoreError> {
        let sha256 = vault::Hash::of(data);
        match writer.lookup(&sha256, data.len() as u64) {
            Some(s) => Ok(s),
            None => Ok(writer.store_bytes(scratch, data, sha256)?),
        }
    };
    match &src.data {
        SourceData::Bytes(b) => match from_memory(scratch, b) {
            Ok(s) => Ok(Ok(Some(entry(
                s,
                ArtifactStatus::Ok,
                src.meta.clone(),
                &b[..b.len().min(sniff)],
            )))),
            Err(StoreError::Source(e)) => Ok(Err(format!("cannot read {}: {e}", src.name))),
            Err(StoreError::Vault(e)) => Err(e.into()),
        },
        SourceData::File(file) => {
            let read = |f: &mut BoundedFile| -> Result<vault::Stored, StoreError> {
                let size = f.len();
                if size <= IN_MEMORY {
                    buf.clear();
                    f.read_to_end(buf).map_err(StoreError::Source)?;
                    head.clear();
                    head.extend_from_slice(&buf[..buf.len().min(sniff)]);
                    return from_memory(scratch, buf);
                }
                head.clear();
                (&mut *f)
                    .take(sniff as u64)
                    .read_to_end(&mut head)
                    .map_err(StoreError::Source)?;
                f.rewind().map_err(StoreError::Source)?;
                if previous_size == Some(size) {
                    // Probably unchanged: one hashing pass decides.
                    let (sha256, len) =
                        vault::fsread::hash_reader(f, buf).map_err(StoreError::Source)?;
                    if let Some(s) = writer.lookup(&sha256, len) {
                        return Ok(s);
                    }
                    f.rewind().map_err(StoreError::Source)?;
                }
                if size > PIPELINE_FROM {
                    writer.store_pipelined(scratch, f)
                } else {
                    writer.store(scratch, f)
                }
            };
            match read_stable(file, READ_ATTEMPTS, READ_PAUSE, read) {
                Ok(r) => {
                    let status = if r.stable {
                        ArtifactStatus::Ok
                    } else {
                        ArtifactStatus::Unstable
                    };
                    Ok(Ok(Some(entry(r.value, status, r.meta, &head))))
                }
                Err(StableError::Io(e)) | Err(StableError::Read(StoreError::Source(e))) => {
                    Ok(Err(format!(
                        "cannot read {} (it vanished or is unreadable): {e}",
                        src.name
                    )))
                }
                Err(StableError::Swapped(why)) => {
                    Ok(Err(format!("{} was not stored: {why}", src.name)))
                }
                Err(StableError::Read(StoreError::Vault(e))) => Err(e.into()),
            }
        }
        SourceData::Stream(stream) => {
            // A source that failed mid-read (a dropped connection) is read again from its
            // first byte; a vault error is not retried.
            let source_error = |e: &StoreError| matches!(e, StoreError::Source(_));
            let store = |r: &mut dyn Read| {
                // Each try reads from the first byte.
                head.clear();
                let mut sniffed = Sniffed {
                    inner: r,
                    head: &mut head,
                    want: sniff,
                };
                writer.store(scratch, &mut sniffed)
            };
            match adapters::read_stream(
                stream.as_ref(),
                READ_ATTEMPTS,
                READ_PAUSE,
                source_error,
                store,
            ) {
                Ok(r) => {
                    let status = if r.stable {
                        ArtifactStatus::Ok
                    } else {
                        ArtifactStatus::Unstable
                    };
                    Ok(Ok(Some(entry(r.value, status, src.meta.clone(), &head))))
                }
                Err(StreamError::Open(e)) | Err(StreamError::Read(StoreError::Source(e))) => {
                    Ok(Err(format!(
                        "cannot read {} ({}): {e}",
                        src.name,
                        stream.describe()
                    )))
                }
                Err(StreamError::Read(StoreError::Vault(e))) => Err(e.into()),
            }
        }
    }
}

/// A reader that keeps the first `want` bytes it passes on (to tell an export's format).
struct Sniffed<'a, R: ?Sized> {
    inner: &'a mut R,
    head: &'a mut Vec<u8>,
    want: usize,
}

impl<R: Read + ?Sized> Read for Sniffed<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        if self.head.len() < self.want {
            let take = n.min(self.want - self.head.len());
            self.head.extend_from_slice(&out[..take]);
        }
        Ok(n)
    }
}

pub fn compare(old: &Manifest, new: &Manifest, prev_id: &str) -> Changes {
    let a: BTreeMap<&str, &vault::Hash> = old
        .artifacts
        .iter()
        .map(|x| (x.name.as_str(), &x.sha256))
        .collect();
    let b: BTreeMap<&str, &vault::Hash> = new
        .artifacts
        .iter()
        .map(|x| (x.name.as_str(), &x.sha256))
        .collect();
    Changes {
        previous: Some(prev_id.to_string()),
        added: b
            .keys()
            .filter(|k| !a.contains_key(*k))
            .map(|s| s.to_string())
            .collect(),
        removed: a
            .keys()
            .filter(|k| !b.contains_key(*k))
            .map(|s| s.to_string())
            .collect(),
        changed: b
            .iter()
            .filter(|(k, h)| a.get(*k).is_some_and(|old| old != *h))
            .map(|(k, _)| k.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> ArtifactEntry {
        ArtifactEntry {
            name: name.into(),
            kind: vault::ArtifactKind::Other,
            size: 0,
            sha256: vault::Hash::of(b""),
            status: ArtifactStatus::Ok,
            meta: Default::default(),
            chunks: Vec::new(),
        }
    }

    #[test]
    fn duplicates_and_a_file_that_is_also_a_folder_are_dropped_with_warnings() {
        let mut list: Vec<ArtifactEntry> = ["sub/in.txt", "b", "sub", "b", "sub/x/y", "sub-x"]
            .iter()
            .map(|n| entry(n))
            .collect();
        let mut warnings = Vec::new();
        assert!(drop_conflicts(&mut list, &mut warnings));
        let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["b", "sub", "sub-x"]);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        let m = Manifest {
            v: vault::manifest::MANIFEST_VERSION,
            device: "d".into(),
            adapter: "files".into(),
            source: String::new(),
            complete: false,
            warnings,
            artifacts: list,
        };
        assert_eq!(m.check_tree(), Ok(()));
        let mut clean = vec![entry("a"), entry("b/c")];
        assert!(!drop_conflicts(&mut clean, &mut Vec::new()));
    }
}
