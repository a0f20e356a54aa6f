//! Restore drills: restore a device's approved baseline (or a named snapshot) into a
//! scratch folder, read every file back, compare its SHA-256 and size with the manifest,
//! time the recovery, and append a signed `drill` entry with the result. A backup nobody
//! has restored is a hope, not a control (NIS2, IEC 62443-3-3 SR 7.3/7.4).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use vault::log::{DrillFailure, Event};
use vault::{History, Index, RestoreOptions, Vault};

use crate::config::{Config, DeviceConfig};
use crate::output::{Out, Outcome, human_bytes};

#[derive(Serialize)]
struct DrillReport {
    device: String,
    snapshot: String,
    source: String,
    target: String,
    passed: bool,
    artifacts: u64,
    bytes: u64,
    restore_ms: u64,
    verify_ms: u64,
    mib_per_second: f64,
    failures: Vec<DrillFailure>,
    seq: Option<u64>,
}

/// SHA-256 and size of a file, read in 1 MiB pieces.
/// `plcvault drill`: drills each device into `to/DEVICE` (or a temporary folder).
///
/// Fails (exit 2) when the vault or key cannot be opened; a failed drill is exit 1.
pub fn run(
    cfg: &Config,
    devices: &[&DeviceConfig],
    snapshot: Option<&str>,
    to: Option<&Path>,
    onto: Option<&DeviceConfig>,
    out: &Out,
) -> Result<Outcome> {
    let key = cfg.signing_key()?;
    let vault = cfg.vault_for_writing(false)?;
    let history = cfg.history(&vault)?;
    let (index, _) = Index::load_reading(&vault, &history);
    if let Some(dir) = to {
        // A folder that cannot be made is the operator's mistake, not a failed drill.
        if dir.exists() && !dir.is_dir() {
            anyhow::bail!(
                "--to {}: is not a folder\nfix: name a folder (it is created when missing)",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!(
                "--to {}: cannot create the folder ({})\nfix: name a folder this user can write",
                dir.display(),
                e.kind()
            )
        })?;
    }
    let mut outcome = Outcome::Clean;
    for dev in devices {
        // What can be known before the first byte is restored is a usage error, never a
        // signed failed drill: one device stops the command, in a batch it is reported and
        // the others are drilled (exit 2 at the end).
        let prepared =
            pick_snapshot(cfg, &history, dev, snapshot, out).and_then(|(snap, source)| {
                let manifest = vault::manifest::load(vault.root(), &snap.manifest)?;
                if let Some(target) = onto {
                    check_target(&manifest, target, true)?;
                }
                if let Some(dir) = to {
                    let folder = dir.join(&dev.name);
                    if std::fs::read_dir(&folder).is_ok_and(|mut d| d.next().is_some())
                        || (folder.exists() && !folder.is_dir())
                    {
                        anyhow::bail!(
                            "{} is not an empty folder; a drill restores into a new one\nfix: remove it, or name another --to",
                            folder.display()
                        );
                    }
                }
                Ok((snap, source, manifest))
            });
        let (snap, source, manifest) = match prepared {
            Ok(p) => p,
            Err(e) if devices.len() == 1 => return Err(e),
            Err(e) => {
                let why = format!("{e:#}");
                out.record(
                    "drill-skipped",
                    &serde_json::json!({"device": dev.name, "error": why}),
                    || format!("SKIPPED drill `{}`: {why}", dev.name),
                );
                // A device with nothing stored is a device not read (3); a target that
                // does not qualify is a usage error (2).
                outcome =
                    outcome.worst(if e.downcast_ref::<crate::config::NoSnapshot>().is_some() {
                        Outcome::NotCollected
                    } else {
                        Outcome::Failed
                    });
                continue;
            }
        };
        let (target, (failures, restore_ms, verify_ms)) = match onto {
            Some(target) => {
                out.info(format!(
                    "drill `{}`: writing snapshot {} ({}) onto `{}` and reading it back",
                    dev.name, snap.id, source, target.name
                ));
                let read = |a: &vault::ArtifactEntry| -> Result<Vec<u8>> {
                    Ok(vault::read_artifact(&vault, &index, a, 64 * 1024 * 1024)?)
                };
                let timed = match restore_to_device(&manifest, &read, target) {
                    Ok(r) => (r.failures, r.write_ms, r.verify_ms),
                    // A spare that is off or unreachable: the drill did not run, and
                    // proves nothing either way; not signed (exit 3), so that a switched-off
                    // bench CPU never reads as a failed recovery of the device.
                    Err(e)
                        if e.downcast_ref::<adapters::AdapterError>().is_some_and(|a| {
                            matches!(a.kind(), "unreachable" | "timeout" | "refused")
                        }) =>
                    {
                        let why = format!("{e:#}");
                        out.record(
                            "drill-skipped",
                            &serde_json::json!({"device": dev.name, "error": why}),
                            || format!("NOT RUN drill `{}`: the spare `{}` could not be reached: {why}", dev.name, target.name),
                        );
                        outcome = outcome.worst(Outcome::NotCollected);
                        continue;
                    }
                    Err(e) => (vec![failure("", &format!("{e:#}"))], 0, 0),
                };
                (format!("device:{}", target.name), timed)
            }
            None => {
                let _tmp;
                let folder = match to {
                    Some(dir) => dir.join(&dev.name),
                    None => {
                        _tmp = scratch_dir(&cfg.vault.state)?;
                        _tmp.dir.path().join(&dev.name)
                    }
                };
                out.info(format!(
                    "drill `{}`: restoring snapshot {} ({}, {} artifacts, {}) into {}",
                    dev.name,
                    snap.id,
                    source,
                    manifest.artifacts.len(),
                    human_bytes(manifest.total_size()),
                    folder.display()
                ));
                let timed = into_folder(&vault, &index, &manifest, &folder, cfg.threads);
                // What the user asked for, not where this run happened to put it: the
                // folder as given on the command line, or `scratch` (a temp folder removed
                // afterwards).
                let target = match to {
                    Some(dir) => format!("folder:{}", dir.join(&dev.name).display()),
                    None => "scratch".to_string(),
                };
                (target, timed)
            }
        };
        // What the drill proved: onto a device, only the artifacts its writer wrote and
        // read back (an S7 spare takes DB contents, not blocks); into a folder, all.
        let proved = match onto.and_then(|t| t.adapter.writer.as_ref()) {
            Some(w) => vault::Manifest {
                artifacts: manifest
                    .artifacts
                    .iter()
                    .filter(|a| w.takes(&a.name, a.kind))
                    .cloned()
                    .collect(),
                ..manifest.clone()
            },
            None => manifest.clone(),
        };
        outcome = outcome.worst(record(
            &vault, &key, out, dev, &snap, &proved, source, target, failures, restore_ms, verify_ms,
        )?);
    }
    Ok(outcome)
}

/// A drill onto a device needs a spare of the same adapter, marked `writable = true`, that
/// takes something of the snapshot, and never the device itself; a restore (`drill` false)
/// the same, except that it may go back onto the device it came from.
///
/// Fails, naming the fix, when the target does not qualify.
pub(crate) fn check_target(
    manifest: &vault::Manifest,
    target: &DeviceConfig,
    drill: bool,
) -> Result<()> {
    let (what, folder) = if drill {
        (
            "a drill",
            format!("drill `{}` into a folder (--to DIR)", manifest.device),
        )
    } else {
        (
            "a restore",
            format!("restore `{}` into a folder (--to DIR)", manifest.device),
        )
    };
    if drill && target.name == manifest.device {
        anyhow::bail!(
            "a drill writes onto a spare, not onto `{}` itself\nfix: name a spare device marked `writable = true` with --target, or drill into a folder (--to DIR)",
            manifest.device
        );
    }
    let Some(writer) = &target.adapter.writer else {
        anyhow::bail!(
            "`{}` is a {} device, and that adapter cannot write\nfix: {what} onto a writable Modbus, S7 or Logix device, or {folder}",
            target.name,
            target.adapter_name()
        );
    };
    if target.adapter.permit.is_none() {
        anyhow::bail!(
            "`{}` is not marked `writable = true`; plcvault never writes to it\nfix: set writable = true only on a device meant to be written (a spare PLC, or one being recovered), or {folder}",
            target.name
        );
    }
    if target.adapter_name() != manifest.adapter {
        anyhow::bail!(
            "`{}` is a {} device and `{}` a {} device: {what} writes a snapshot onto a device of the same kind\nfix: {folder}",
            manifest.device,
            manifest.adapter,
            target.name,
            target.adapter_name(),
        );
    }
    if !manifest
        .artifacts
        .iter()
        .any(|a| writer.takes(&a.name, a.kind))
    {
        anyhow::bail!(
            "the snapshot of `{}` holds nothing `{}` can take\nfix: {folder}",
            manifest.device,
            target.name
        );
    }
    Ok(())
}

/// A failure of one artifact (or of the whole drill, with no artifact): the first line.
fn failure(artifact: &str, error: &str) -> DrillFailure {
    DrillFailure {
        artifact: artifact.to_string(),
        error: error.lines().next().unwrap_or_default().to_string(),
    }
}

/// The snapshot a drill proves: the one named, else the approved baseline, else (with a
/// warning) the newest. Returns it with how it was chosen, for the record.
///
/// Fails when the named snapshot or the baseline's snapshot is not in the log.
fn pick_snapshot(
    cfg: &Config,
    history: &History,
    dev: &DeviceConfig,
    snapshot: Option<&str>,
    out: &Out,
) -> Result<(vault::SnapshotRecord, String)> {
    let picked = match snapshot {
        Some(id) => (
            cfg.find_snapshot(history, &dev.name, Some(id))?,
            "snapshot".to_string(),
        ),
        None => match history.baseline(&dev.name) {
            Some(b) => (
                history
                    .find_snapshot(Some(&dev.name), Some(&b.snapshot_entry.to_hex()))
                    .with_context(|| {
                        format!("the baseline snapshot of `{}` is not in the log", dev.name)
                    })?,
                format!("baseline approved by {} ({})", b.approver, b.ticket),
            ),
            None => {
                let newest = cfg.find_snapshot(history, &dev.name, None)?;
                out.warn(format!(
                    "`{}` has no approved baseline; drilling its newest snapshot (name one with --snapshot)",
                    dev.name
                ));
                (newest, "newest snapshot".to_string())
            }
        },
    };
    if snapshot.is_none() {
        let after = history.baseline(&dev.name).map_or(0, |b| b.seq);
        let doubts = history.doubts_after(after);
        if !doubts.is_empty() {
            out.warn(format!(
                "`{}`: {}; a newer approval may be among them, so this drill may prove an older state — run `plcvault verify`",
                dev.name,
                doubts.join("; ")
            ));
        }
    }
    Ok(picked)
}

/// Restores `manifest` into `folder`, then reads every file back (SHA-256 and size
/// against the manifest, on all cores). Returns the failures and the two times in ms.
fn into_folder(
    vault: &vault::Vault,
    index: &Index,
    manifest: &vault::Manifest,
    folder: &Path,
    threads: usize,
) -> (Vec<DrillFailure>, u64, u64) {
    let t0 = Instant::now();
    let restored = vault::restore(
        vault,
        index,
        manifest,
        folder,
        &RestoreOptions {
            force: false,
            threads,
            keep_special_bits: false,
        },
    );
    let restore_ms = t0.elapsed().as_millis() as u64;
    let mut failures: Vec<DrillFailure> = match restored {
        Ok(r) => r
            .failed
            .into_iter()
            .map(|f| failure(&f.name, &f.error))
            .collect(),
        Err(e) => vec![failure("", &e.to_string())],
    };
    let t1 = Instant::now();
    let todo: Vec<&vault::ArtifactEntry> = manifest
        .artifacts
        .iter()
        .filter(|a| {
            !failures
                .iter()
                .any(|f| f.artifact == a.name || f.artifact.is_empty())
        })
        .collect();
    let mut found: Vec<DrillFailure> = vault::parallel::map_with(
        &todo,
        threads.clamp(1, 16),
        || (),
        |_, a| {
            let error = match vault::fsread::hash_regular(&folder.join(&a.name), u64::MAX) {
                Ok((h, n)) if h == a.sha256 && n == a.size => return None,
                Ok((h, n)) => format!(
                    "read back {n} bytes with SHA-256 {}, expected {} bytes with {}",
                    h.short(),
                    a.size,
                    a.sha256.short()
                ),
                Err(e) => format!("cannot read back: {e}"),
            };
            Some(failure(&a.name, &error))
        },
    )
    .into_iter()
    .flatten()
    .collect();
    found.sort_by(|a, b| a.artifact.cmp(&b.artifact));
    failures.extend(found);
    (failures, restore_ms, t1.elapsed().as_millis() as u64)
}

/// A drill's scratch folder and the lock that marks it in use.
struct Scratch {
    dir: tempfile::TempDir,
    lock: std::path::PathBuf,
    _held: std::fs::File,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Takes the exclusive lock on `path` without waiting; `Ok(None)` when another process
/// holds it.
fn try_lock(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    use rustix::fs::{FlockOperation, flock};
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A scratch folder for a drill into no named folder: under `<state>/drills/` (beside the
/// verifier memory, on a disk the site chose, not the temp folder), held with a lock file
/// beside it (`flock`, released by the kernel when the process ends, however it ends).
/// Folders whose lock nobody holds (drills killed midway) are removed first; a folder
/// without a lock file only once it is an hour old.
///
/// Fails when the folder cannot be created.
fn scratch_dir(state: &std::path::Path) -> Result<Scratch> {
    let base = state.join("drills");
    std::fs::create_dir_all(&base)
        .with_context(|| format!("cannot create the drill scratch folder {}", base.display()))?;
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("plcvault-drill-") || name.ends_with(".lock") {
                continue;
            }
            let lock = base.join(format!("{name}.lock"));
            let dead = if lock.exists() {
                matches!(try_lock(&lock), Ok(Some(_)))
            } else {
                e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600))
            };
            if dead {
                let _ = std::fs::remove_dir_all(e.path());
                let _ = std::fs::remove_file(&lock);
            }
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("plcvault-drill-")
        .tempdir_in(&base)?;
    let name = dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock = base.join(format!("{name}.lock"));
    let held = try_lock(&lock)
        .with_context(|| format!("cannot lock {}", lock.display()))?
        .with_context(|| format!("{} is locked by another process", lock.display()))?;
    Ok(Scratch {
        dir,
        lock,
        _held: held,
    })
}

/// Signs a drill's result into the log and prints it. `Findings` when it failed.
#[allow(clippy::too_many_arguments)]
fn record(
    vault: &Vault,
    key: &vault::SecretKey,
    out: &Out,
    dev: &DeviceConfig,
    snap: &vault::SnapshotRecord,
    manifest: &vault::Manifest,
    source: String,
    target: String,
    failures: Vec<DrillFailure>,
    restore_ms: u64,
    verify_ms: u64,
) -> Result<Outcome> {
    {
        let passed = failures.is_empty();
        let event = Event::Drill {
            device: dev.name.clone(),
            snapshot: snap.entry,
            manifest: snap.manifest,
            target: target.clone(),
            passed,
            artifacts: manifest.artifacts.len() as u64,
            bytes: manifest.total_size(),
            restore_ms,
            verify_ms,
            failures: failures.clone(),
        };
        let entry = vault::guard::append(vault, key, &event)?;
        let secs = (restore_ms + verify_ms).max(1) as f64 / 1000.0;
        let report = DrillReport {
            device: dev.name.clone(),
            snapshot: snap.id.clone(),
            source,
            target,
            passed,
            artifacts: manifest.artifacts.len() as u64,
            bytes: manifest.total_size(),
            restore_ms,
            verify_ms,
            mib_per_second: manifest.total_size() as f64 / 1048576.0 / secs,
            failures,
            seq: Some(entry.file_seq),
        };
        out.record("drill", &report, || {
            let mut s = if passed {
                format!(
                    "PASSED drill of `{}`: snapshot {} ({}) restored in {:.2} s and proved in {:.2} s, {} artifacts, {} ({:.1} MiB/s); signed as log entry {}",
                    report.device,
                    report.snapshot,
                    report.source,
                    restore_ms as f64 / 1000.0,
                    verify_ms as f64 / 1000.0,
                    report.artifacts,
                    human_bytes(report.bytes),
                    report.mib_per_second,
                    entry.file_seq
                )
            } else {
                // No speed: a restore that failed proved no recovery time.
                format!(
                    "FAILED drill of `{}`: snapshot {} ({}) into {}: {} problem(s) after {:.2} s ({} artifacts, {}); signed as log entry {}",
                    report.device,
                    report.snapshot,
                    report.source,
                    report.target,
                    report.failures.len(),
                    (restore_ms + verify_ms) as f64 / 1000.0,
                    report.artifacts,
                    human_bytes(report.bytes),
                    entry.file_seq
                )
            };
            for f in &report.failures {
                s.push_str(&format!("\n        {}: {}", if f.artifact.is_empty() { "(restore)" } else { &f.artifact }, f.error));
            }
            s
        });
        Ok(if passed {
            Outcome::Clean
        } else {
            Outcome::Findings
        })
    }
}

/// What restoring a snapshot onto a device did.
#[derive(Debug, Default, Serialize)]
pub struct DeviceRestore {
    pub target: String,
    pub ranges: u64,
    pub written: u64,
    pub requests: u64,
    /// Read-only ranges that were compared, not written.
    pub compared_only: Vec<String>,
    pub write_ms: u64,
    pub verify_ms: u64,
    pub failures: Vec<DrillFailure>,
}

/// Writes a snapshot onto `target` through its adapter's writer (Modbus: holding
/// registers and coils written, input registers and discrete inputs compared; S7: DB
/// contents written with write var), then reads
/// it back through the read-only collector and compares it.
///
/// Fails, before a single request is sent, when the target's adapter cannot write or the
/// config does not mark it `writable = true`; fails when the target cannot be reached.
pub fn restore_to_device(
    manifest: &vault::Manifest,
    read: &dyn Fn(&vault::ArtifactEntry) -> Result<Vec<u8>>,
    target: &DeviceConfig,
) -> Result<DeviceRestore> {
    let Some(writer) = &target.adapter.writer else {
        anyhow::bail!(
            "`{}` is a {} device, and that adapter cannot write; restoring onto a device works for Modbus, S7, EtherNet/IP and OPC UA targets (restore files with --to DIR)",
            target.name,
            target.adapter_name()
        );
    };
    let Some(permit) = &target.adapter.permit else {
        anyhow::bail!(
            "device `{}`: invalid setting `writable`: the device is not marked `writable = true`; plcvault never writes to it (fix: set writable = true only on a spare PLC or simulator meant for restores and drills)",
            target.name
        );
    };
    let mut items = Vec::new();
    for a in &manifest.artifacts {
        if writer.takes(&a.name, a.kind) {
            items.push(adapters::RestoreItem {
                name: a.name.clone(),
                kind: a.kind,
                bytes: read(a)?,
            });
        }
    }
    if items.is_empty() {
        anyhow::bail!(
            "the snapshot of `{}` holds nothing `{}` can take",
            manifest.device,
            target.name
        );
    }
    let r = crate::runtime::block_on(writer.restore(&items, permit))??;
    Ok(DeviceRestore {
        target: target.name.clone(),
        ranges: r.items,
        written: r.written,
        requests: r.requests,
        compared_only: r.compared_only,
        write_ms: r.write_ms,
        verify_ms: r.verify_ms,
        failures: r
            .failures
            .into_iter()
            .map(|f| DrillFailure {
                artifact: f.artifact,
                error: f.error,
            })
            .collect(),
    })
}
