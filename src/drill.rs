//! Restore drills: restore a device's approved baseline (or a named snapshot) into a
//! scratch folder, read every file back, compare its SHA-256 and size with the manifest,
//! time the recovery, and append a signed `drill` entry with the result. A backup nobody
//! has restored is a hope, not a control (NIS2, IEC 62443-3-3 SR 7.3/7.4).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::Digest;
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
fn hash_file(path: &Path) -> std::io::Result<(vault::Hash, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok((vault::Hash::from_hasher(h), n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// `plcvault drill`: drills each device into `to/DEVICE` (or a temporary folder).
///
/// Fails (exit 2) when the vault or key cannot be opened; a failed drill is exit 1.
pub fn run(
    cfg: &Config,
    devices: &[&DeviceConfig],
    snapshot: Option<&str>,
    to: Option<&Path>,
    out: &Out,
) -> Result<Outcome> {
    let key = cfg.signing_key()?;
    let vault = Vault::open(&cfg.vault.path)?;
    let history = History::load(&vault, &cfg.trust)?;
    let (index, _) = Index::load(&vault, &history.committed_packs());
    let mut outcome = Outcome::Clean;
    for dev in devices {
        let (snap, source) = match snapshot {
            Some(id) => (
                history.find_snapshot(Some(&dev.name), Some(id))?,
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
                    out.warn(format!(
                        "`{}` has no approved baseline; drilling its newest snapshot (name one with --snapshot)",
                        dev.name
                    ));
                    (
                        history.find_snapshot(Some(&dev.name), None)?,
                        "newest snapshot".to_string(),
                    )
                }
            },
        };
        let manifest = vault::manifest::load(vault.root(), &snap.manifest)?;
        let _tmp;
        let target = match to {
            Some(dir) => dir.join(&dev.name),
            None => {
                _tmp = tempfile::Builder::new()
                    .prefix("plcvault-drill-")
                    .tempdir()?;
                _tmp.path().join(&dev.name)
            }
        };
        out.info(format!(
            "drill `{}`: restoring snapshot {} ({}, {} artifacts, {}) into {}",
            dev.name,
            snap.id,
            source,
            manifest.artifacts.len(),
            human_bytes(manifest.total_size()),
            target.display()
        ));
        let t0 = Instant::now();
        let restored = vault::restore(
            &vault,
            &index,
            &manifest,
            &target,
            &RestoreOptions {
                force: false,
                threads: cfg.threads,
            },
        );
        let restore_ms = t0.elapsed().as_millis() as u64;
        let mut failures: Vec<DrillFailure> = Vec::new();
        match restored {
            Ok(r) => failures.extend(r.failed.into_iter().map(|f| DrillFailure {
                artifact: f.name,
                error: f.error.lines().next().unwrap_or_default().to_string(),
            })),
            Err(e) => failures.push(DrillFailure {
                artifact: String::new(),
                error: format!("{e}")
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            }),
        }
        // Read back: every file's SHA-256 and size against the manifest.
        let t1 = Instant::now();
        for a in &manifest.artifacts {
            if failures
                .iter()
                .any(|f| f.artifact == a.name || f.artifact.is_empty())
            {
                continue;
            }
            match hash_file(&target.join(&a.name)) {
                Ok((h, n)) if h == a.sha256 && n == a.size => {}
                Ok((h, n)) => failures.push(DrillFailure {
                    artifact: a.name.clone(),
                    error: format!(
                        "read back {n} bytes with SHA-256 {}, expected {} bytes with {}",
                        h.short(),
                        a.size,
                        a.sha256.short()
                    ),
                }),
                Err(e) => failures.push(DrillFailure {
                    artifact: a.name.clone(),
                    error: format!("cannot read back: {e}"),
                }),
            }
        }
        let verify_ms = t1.elapsed().as_millis() as u64;
        let passed = failures.is_empty();
        let event = Event::Drill {
            device: dev.name.clone(),
            snapshot: snap.entry,
            manifest: snap.manifest,
            target: "folder".into(),
            passed,
            artifacts: manifest.artifacts.len() as u64,
            bytes: manifest.total_size(),
            restore_ms,
            verify_ms,
            failures: failures.clone(),
        };
        let entry = vault::log::append(vault.root(), vault.id(), &key, &event)?;
        vault::state::remember(&cfg.vault.state, vault.id(), (entry.file_seq, entry.hash))?;
        let secs = (restore_ms + verify_ms).max(1) as f64 / 1000.0;
        let report = DrillReport {
            device: dev.name.clone(),
            snapshot: snap.id.clone(),
            source,
            target: target.display().to_string(),
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
            let mut s = format!(
                "{} drill of `{}`: snapshot {} ({}) restored in {:.2} s and proved in {:.2} s, {} artifacts, {} ({:.0} MiB/s); signed as log entry {}",
                if passed { "PASSED" } else { "FAILED" },
                report.device,
                report.snapshot,
                report.source,
                restore_ms as f64 / 1000.0,
                verify_ms as f64 / 1000.0,
                report.artifacts,
                human_bytes(report.bytes),
                report.mib_per_second,
                entry.file_seq
            );
            for f in &report.failures {
                s.push_str(&format!("\n        {}: {}", if f.artifact.is_empty() { "(restore)" } else { &f.artifact }, f.error));
            }
            s
        });
        if !passed {
            outcome = outcome.worst(Outcome::Findings);
        }
    }
    Ok(outcome)
}
