//! Looking into a snapshot without restoring it: `ls` (its artifacts) and `dump` (one
//! artifact's bytes on standard output, streamed and verified while read), as restic has.

use std::io::Write;

use anyhow::{Result, bail};
use vault::Index;

use crate::config::Config;
use crate::output::{Out, Outcome, human_bytes};

/// The snapshot of `device` named by `snapshot` (an id prefix or `latest`), its manifest,
/// and the index to read it (for `ls`, `dump` and `restore`).
///
/// Fails when the device has no such snapshot or its manifest cannot be read.
pub(crate) fn open(
    cfg: &Config,
    device: &str,
    snapshot: &str,
    out: &Out,
) -> Result<(vault::Vault, vault::SnapshotRecord, vault::Manifest, Index)> {
    let vault = cfg.vault_for_reading()?;
    crate::ops::commands::warn_if_doubtful(cfg, &vault, out);
    let history = cfg.history(&vault)?;
    let snap = cfg.find_snapshot(&history, device, Some(snapshot))?;
    let manifest = vault::manifest::load(vault.root(), &snap.manifest)?;
    let (index, problems) = Index::load_reading(&vault, &history);
    for p in &problems {
        out.warn(p.error.to_string().lines().next().unwrap_or_default());
    }
    Ok((vault, snap, manifest, index))
}

/// `ls DEVICE [SNAPSHOT]`: every artifact with its kind, size, status and SHA-256.
///
/// Fails as `open` does.
pub fn ls(cfg: &Config, device: &str, snapshot: &str, out: &Out) -> Result<Outcome> {
    let (_, snap, manifest, _) = open(cfg, device, snapshot, out)?;
    out.say(format!(
        "snapshot {} of `{device}` ({}, {}{}), {} artifacts, {}",
        snap.id,
        snap.time,
        manifest.source,
        if manifest.complete {
            ""
        } else {
            ", INCOMPLETE"
        },
        manifest.artifacts.len(),
        human_bytes(manifest.total_size())
    ));
    crate::review::html::print_artifacts(out, device, &snap.id, &manifest);
    Ok(Outcome::Clean)
}

/// `dump DEVICE PATH`: one artifact's bytes to standard output, streamed; every chunk is
/// checked before it is written and the whole against its SHA-256 at the end (a mismatch
/// there is exit 1 with the bytes already written: discard them).
///
/// Fails when the artifact is not in the snapshot, or reading or writing fails.
pub fn dump(cfg: &Config, device: &str, path: &str, snapshot: &str, out: &Out) -> Result<Outcome> {
    let (vault, snap, manifest, index) = open(cfg, device, snapshot, out)?;
    let Some(a) = manifest.artifacts.iter().find(|a| a.name == path) else {
        let near: Vec<&str> = manifest
            .artifacts
            .iter()
            .map(|a| a.name.as_str())
            .filter(|n| n.contains(path.rsplit('/').next().unwrap_or(path)))
            .take(5)
            .collect();
        bail!(
            "snapshot {} of `{device}` has no artifact `{}`{}\nfix: list them with `plcvault ls {device} {}`",
            snap.id,
            crate::output::printable_inline(path),
            if near.is_empty() {
                String::new()
            } else {
                format!(
                    " (similar: {})",
                    crate::output::printable_inline(&near.join(", "))
                )
            },
            snap.id
        );
    };
    out.info(format!(
        "`{}` of snapshot {} ({}, SHA-256 {})",
        crate::output::printable_inline(&a.name),
        snap.id,
        human_bytes(a.size),
        a.sha256.short()
    ));
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match vault::write_artifact(&vault, &index, a, &mut lock) {
        Ok(()) => Ok(Outcome::Clean),
        Err(vault::VaultError::Io { error, .. })
            if error.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            // The reader stopped early (`| head`): nothing is wrong with the vault.
            Ok(Outcome::Clean)
        }
        Err(e @ vault::VaultError::Corrupt { .. }) => {
            let _ = lock.flush();
            out.warn(format!(
                "DAMAGED: {}; discard what was written and run `plcvault verify --read-data`",
                e.to_string().lines().next().unwrap_or_default()
            ));
            Ok(Outcome::Findings)
        }
        Err(e) => Err(e.into()),
    }
}
