//! Reading a device through its adapter: the adapter run in a task of its own (a panic is
//! that device's failure), names the vault cannot hold left out, what the record says
//! about the source, and a live read that stores nothing (for `diff --live`).

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use anyhow::Result;

use adapters::files::{StableError, read_stable};
use adapters::{Collection, SourceData};
use vault::Manifest;
use vault::manifest::{ArtifactEntry, ArtifactStatus};

use crate::config::DeviceConfig;

/// Warnings kept per collection; the rest are counted in one more.
pub const MAX_WARNINGS: usize = 200;

/// How often a file that changes while being read is read again.
pub const READ_ATTEMPTS: u32 = 3;
pub const READ_PAUSE: Duration = Duration::from_millis(200);

/// Runs the device's adapter in a task of its own, so that a panic in one adapter becomes
/// that device's failure (a signed `collect-failed`), never a device silently missing.
pub async fn collect_guarded(device: DeviceConfig) -> Result<Collection> {
    let name = device.name.clone();
    guarded(&name, async move { collect_one(&device).await }).await
}

/// Runs `work` in a task of its own; a panic becomes an error naming the device.
async fn guarded<T: Send + 'static>(
    name: &str,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(work).await {
        Ok(r) => r,
        Err(e) => {
            let why = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into()),
                Err(e) => e.to_string(),
            };
            Err(anyhow::anyhow!(
                "the collector of `{name}` crashed ({why}); nothing was stored for it\nfix: this is a bug in plcvault; report it with the device's config"
            ))
        }
    }
}

/// Runs the device's adapter.
async fn collect_one(device: &DeviceConfig) -> Result<Collection> {
    Ok(device.adapter.collector.collect().await?)
}

/// The adapter's name and where the data comes from, for the manifest.
pub fn adapter_source(device: &DeviceConfig) -> (String, String) {
    let c = &device.adapter.collector;
    (c.adapter().to_string(), c.source())
}

/// Leaves out artifacts whose names a manifest cannot hold (the same rule `verify` and
/// `restore` enforce, `vault::manifest::check_name`), with a warning: the snapshot is then
/// incomplete, never a signed manifest that its readers reject.
pub fn admissible(mut collection: Collection) -> Collection {
    let mut warnings = Vec::new();
    collection
        .artifacts
        .retain(|a| match vault::manifest::check_name(&a.name) {
            Ok(()) => true,
            Err(why) => {
                warnings.push(format!(
                    "skipped {why}: a name the vault cannot hold (rename the file to collect it)"
                ));
                false
            }
        });
    if !warnings.is_empty() {
        collection.complete = false;
        collection.warnings.extend(warnings);
    }
    // A device that lists 100,000 odd names does not get 100,000 lines in the manifest.
    if collection.warnings.len() > MAX_WARNINGS {
        let more = collection.warnings.len() - MAX_WARNINGS;
        collection.warnings.truncate(MAX_WARNINGS);
        collection.warnings.push(format!(
            "{more} more warnings (the first {MAX_WARNINGS} are listed)"
        ));
    }
    collection
}

/// Size, SHA-256, chunk list and (when small) the content of a stream, without storing it.
fn describe<R: Read>(reader: R, limit: u64) -> std::io::Result<(vault::Stored, Option<Vec<u8>>)> {
    use sha2::Digest;
    let mut chunker = vault::chunker::Chunker::new();
    let mut hasher = sha2::Sha256::new();
    let mut chunks = Vec::new();
    let mut content = Some(Vec::new());
    let size = chunker
        .for_each(reader, |c, _| -> Result<(), ()> {
            hasher.update(c);
            chunks.push((vault::Hash::of(c), c.len() as u32));
            if let Some(buf) = &mut content {
                if buf.len() as u64 + c.len() as u64 > limit {
                    content = None;
                } else {
                    buf.extend_from_slice(c);
                }
            }
            Ok(())
        })
        .map_err(|e| match e {
            vault::chunker::ChunkError::Read(e) => e,
            vault::chunker::ChunkError::Sink(()) => std::io::Error::other("unreachable"),
        })?;
    Ok((
        vault::Stored {
            size,
            sha256: vault::Hash::from_hasher(hasher),
            chunks,
            new_bytes: 0,
        },
        content,
    ))
}

/// Live contents by artifact name (`None` when too large to hold for a view).
pub use crate::review::diff::LiveData;

/// Collects a device through its read-only adapter without storing anything: a manifest of
/// what it holds now, and the contents for comparison views.
///
/// Fails when the device cannot be reached at all.
pub fn collect_live(device: &DeviceConfig) -> Result<(Manifest, LiveData)> {
    let collection = admissible(crate::runtime::block_on(collect_guarded(device.clone()))??);
    let mut complete = collection.complete;
    let mut warnings = collection.warnings.clone();
    let mut artifacts = Vec::new();
    let mut data = HashMap::new();
    for src in &collection.artifacts {
        // Kept for the views: a project export (by its name) as far as the review reads
        // one by address.
        let limit = if crate::review::formats::maybe_export(&src.name) {
            crate::review::diff::STRUCTURED_LIMIT
        } else {
            crate::review::diff::VIEW_LIMIT
        };
        let describe = |r: &mut dyn Read| describe(r, limit);
        let described = match &src.data {
            SourceData::Bytes(b) => {
                describe(&mut &b[..]).map(|(s, c)| (s, c, true, src.meta.clone()))
            }
            SourceData::File(file) => {
                match read_stable(file, READ_ATTEMPTS, READ_PAUSE, |f| describe(f)) {
                    Ok(r) => Ok((r.value.0, r.value.1, r.stable, r.meta)),
                    Err(StableError::Io(e)) | Err(StableError::Read(e)) => Err(e),
                    Err(StableError::Swapped(why)) => Err(std::io::Error::other(why)),
                }
            }
            SourceData::Stream(stream) => {
                match adapters::read_stream(
                    stream.as_ref(),
                    READ_ATTEMPTS,
                    READ_PAUSE,
                    |_| true,
                    |r| describe(r),
                ) {
                    Ok(r) => Ok((r.value.0, r.value.1, r.stable, src.meta.clone())),
                    Err(adapters::StreamError::Open(e)) | Err(adapters::StreamError::Read(e)) => {
                        Err(e)
                    }
                }
            }
        };
        match described {
            Ok((stored, content, stable, mut meta)) => {
                // As `collect` records it: the export format from the bytes read.
                if let Some(c) = &content {
                    crate::review::formats::record(&mut meta, &src.name, c);
                }
                data.insert(src.name.clone(), content);
                artifacts.push(ArtifactEntry {
                    name: src.name.clone(),
                    kind: src.kind,
                    size: stored.size,
                    sha256: stored.sha256,
                    status: if stable {
                        ArtifactStatus::Ok
                    } else {
                        ArtifactStatus::Unstable
                    },
                    meta,
                    chunks: stored.chunks,
                });
            }
            Err(e) => {
                complete = false;
                warnings.push(format!("cannot read {}: {e}", src.name));
            }
        }
    }
    // As in `collect`: nothing read at all is a device not read, never an empty state.
    if !complete && artifacts.is_empty() {
        return Err(anyhow::Error::new(adapters::AdapterError::NothingRead {
            device: device.name.clone(),
            why: warnings.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
            fix: "check that the device answers (address, unit, timeout, login) and that the configured ranges or paths exist".into(),
        }));
    }
    let (adapter, source) = adapter_source(device);
    Ok((
        Manifest {
            v: vault::manifest::MANIFEST_VERSION,
            device: device.name.clone(),
            adapter,
            source,
            complete,
            warnings,
            artifacts,
        },
        data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression (issue 8, case 7): a panic in one device's task dropped the device
    // silently (exit 0, no log entry); now it is that device's error, which `collect`
    // records as a signed `collect-failed`.
    #[tokio::test]
    async fn a_panicking_collector_becomes_an_error_naming_the_device() {
        let r: Result<()> = guarded("plc7", async {
            let rate = 1e-300f64;
            let _ = Duration::from_secs_f64(1.0 / rate);
            Ok(())
        })
        .await;
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("`plc7` crashed") && e.contains("fix:"), "{e}");
        let ok: Result<u8> = guarded("plc8", async { Ok(8) }).await;
        assert_eq!(ok.unwrap(), 8);
    }
}
