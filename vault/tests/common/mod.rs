//! Builds small vaults for the tests in this folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use vault::manifest::{ArtifactEntry, ArtifactMeta, ArtifactStatus};
use vault::{
    ArtifactKind, History, Index, Manifest, Role, Scratch, SecretKey, Trust, TrustedKey, Vault,
    Writer,
};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub vault: Vault,
    pub collector: SecretKey,
    pub approver: SecretKey,
    pub trust: Trust,
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn text(lines: usize, seed: u64) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..lines {
        s.push_str(&format!(
            "NETWORK {i}: A I{seed}.{} ; = Q{}.{} // rung {i}\n",
            i % 8,
            i % 64,
            (i + seed as usize) % 8
        ));
    }
    s.into_bytes()
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open_or_create(&dir.path().join("vault")).unwrap();
        let collector = SecretKey::generate().unwrap();
        let approver = SecretKey::generate().unwrap();
        let trust = Trust::new(vec![
            TrustedKey {
                name: "collector".into(),
                role: Role::Collector,
                key: collector.public(),
            },
            TrustedKey {
                name: "alice".into(),
                role: Role::Approver,
                key: approver.public(),
            },
        ]);
        Fixture {
            dir,
            vault,
            collector,
            approver,
            trust,
        }
    }

    pub fn root(&self) -> &Path {
        self.vault.root()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Stores `files` as one snapshot of `device`; returns the manifest hash.
    pub fn snapshot(&self, device: &str, files: &[(&str, Vec<u8>)]) -> vault::Hash {
        let history = History::load(&self.vault, &self.trust).unwrap();
        let (index, problems) = Index::load(&self.vault, &history.committed_packs());
        assert!(problems.is_empty(), "{problems:?}");
        let writer = Writer::new(&self.vault, &index);
        let mut scratch = Scratch::new(3).unwrap();
        let mut artifacts = Vec::new();
        for (name, data) in files {
            let stored = writer.store(&mut scratch, &data[..]).unwrap();
            artifacts.push(ArtifactEntry {
                name: name.to_string(),
                kind: ArtifactKind::Other,
                size: stored.size,
                sha256: stored.sha256,
                status: ArtifactStatus::Ok,
                meta: ArtifactMeta::default(),
                chunks: stored.chunks,
            });
        }
        let m = Manifest {
            v: 1,
            device: device.into(),
            adapter: "test".into(),
            source: "memory".into(),
            complete: true,
            warnings: vec![],
            artifacts,
        };
        let times = (
            "2026-11-22T00:00:00Z".to_string(),
            "2026-11-22T00:00:01Z".to_string(),
        );
        writer.commit(&m, times, &self.collector).unwrap().manifest
    }

    /// Two snapshots of one device with a large (multi-chunk) image and text files.
    pub fn standard() -> Fixture {
        let f = Fixture::new();
        let img = noise(3 * 1024 * 1024, 1);
        f.snapshot(
            "plc1",
            &[
                ("OB1.awl", text(2000, 1)),
                ("hmi/panel.img", img.clone()),
                ("recipes/r1.csv", b"a;1\nb;2\n".to_vec()),
            ],
        );
        let mut img2 = img;
        img2[100] ^= 0xff;
        f.snapshot(
            "plc1",
            &[
                ("OB1.awl", text(2000, 2)),
                ("hmi/panel.img", img2),
                ("recipes/r1.csv", b"a;1\nb;3\n".to_vec()),
            ],
        );
        f
    }
}
