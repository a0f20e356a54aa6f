//! One generated case per kind of damage; each asserts the finding verify reports.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::Fixture;
use vault::log::{self, Event, Header};
use vault::{FindingKind, History, SecretKey, VerifyOptions, VerifyReport, manifest, pack, verify};

fn check(f: &Fixture, read_data: bool) -> VerifyReport {
    verify(
        &f.vault,
        &f.trust,
        &VerifyOptions {
            read_data,
            state_dir: Some(f.state_dir()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn kinds(r: &VerifyReport) -> Vec<FindingKind> {
    r.findings.iter().map(|f| f.kind).collect()
}

fn first_pack(f: &Fixture) -> std::path::PathBuf {
    let h = History::load(&f.vault, &f.trust).unwrap();
    let p = &h.committed_packs()[0];
    pack::pack_path(f.root(), &p.id)
}

#[test]
fn intact_vault_is_clean() {
    let f = Fixture::standard();
    let r = check(&f, true);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!((r.entries, r.snapshots), (2, 2));
}

#[test]
fn flipped_byte_in_pack() {
    let f = Fixture::standard();
    let path = first_pack(&f);
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    // Size and trailer are intact, so only reading the data finds it.
    assert!(check(&f, false).is_clean());
    let r = check(&f, true);
    let k = kinds(&r);
    assert!(k.contains(&FindingKind::CorruptPack), "{k:?}");
    let chunk = r
        .findings
        .iter()
        .find(|x| x.kind == FindingKind::CorruptChunk)
        .expect("corrupt chunk");
    assert!(chunk.message.contains("affects `"), "{}", chunk.message);
    assert_eq!(chunk.device.as_deref(), Some("plc1"));
}

#[test]
fn missing_pack() {
    let f = Fixture::standard();
    fs::remove_file(first_pack(&f)).unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::MissingPack), "{k:?}");
    assert!(k.contains(&FindingKind::MissingChunk), "{k:?}");
}

#[test]
fn truncated_pack() {
    let f = Fixture::standard();
    let path = first_pack(&f);
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::TruncatedPack), "{k:?}");
}

#[test]
fn missing_manifest() {
    let f = Fixture::standard();
    let s = &History::load(&f.vault, &f.trust).unwrap().snapshots()[0];
    fs::remove_file(manifest::manifest_path(f.root(), &s.manifest)).unwrap();
    let r = check(&f, false);
    assert_eq!(kinds(&r), vec![FindingKind::MissingManifest]);
    assert_eq!(r.findings[0].snapshot.as_deref(), Some(s.id.as_str()));
}

#[test]
fn altered_manifest() {
    let f = Fixture::standard();
    let s = &History::load(&f.vault, &f.trust).unwrap().snapshots()[1];
    let path = manifest::manifest_path(f.root(), &s.manifest);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("OB1.awl", "OB2.awl");
    fs::write(&path, text).unwrap();
    assert_eq!(kinds(&check(&f, false)), vec![FindingKind::CorruptManifest]);
}

#[test]
fn log_entry_with_bad_signature() {
    let f = Fixture::standard();
    let path = log::entry_path(f.root(), 1);
    let text = fs::read_to_string(&path).unwrap();
    // Claim the snapshot was complete when it... already is; change the device name instead.
    let altered = text.replacen("\"device\":\"plc1\"", "\"device\":\"plc9\"", 1);
    assert_ne!(text, altered);
    fs::write(&path, altered).unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::BadSignature), "{k:?}");
    // Entry 2 named the old hash of entry 1.
    assert!(k.contains(&FindingKind::BrokenChain), "{k:?}");
}

#[test]
fn entry_signed_by_unknown_key() {
    let f = Fixture::standard();
    let stranger = SecretKey::generate().unwrap();
    vault::append::append_unguarded(
        f.root(),
        f.vault.id(),
        &stranger,
        &Event::Heartbeat { note: "hi".into() },
    )
    .unwrap();
    let r = check(&f, false);
    // The stranger's writer also re-signed the checkpoint: no trusted signature on it.
    assert_eq!(
        kinds(&r),
        vec![FindingKind::UnknownSigner, FindingKind::BadCheckpoint]
    );
    assert_eq!(r.findings[0].seq, Some(3));
}

#[test]
fn entry_signed_by_wrong_role() {
    let f = Fixture::standard();
    // An approver key may not sign collections.
    vault::append::append_unguarded(
        f.root(),
        f.vault.id(),
        &f.approver,
        &Event::Heartbeat { note: "hi".into() },
    )
    .unwrap();
    assert_eq!(kinds(&check(&f, false)), vec![FindingKind::WrongRole]);
}

#[test]
fn broken_chain() {
    let f = Fixture::standard();
    // A validly signed entry 2 that names the wrong predecessor (as if entry 1 had been
    // swapped for another one).
    let (_, parsed) = log::read(f.root(), 2).unwrap();
    let old = parsed.unwrap();
    let header = Header {
        prev: Some(vault::Hash::of(b"another entry 1")),
        ..old.header.clone()
    };
    let bytes = log::encode(&header, old.event.as_ref().unwrap(), &f.collector);
    fs::write(log::entry_path(f.root(), 2), bytes).unwrap();
    // The signed checkpoint's root no longer matches the rewritten log either.
    assert_eq!(
        kinds(&check(&f, false)),
        vec![FindingKind::BrokenChain, FindingKind::BadCheckpoint]
    );
}

#[test]
fn deleted_entry() {
    let f = Fixture::standard();
    vault::append::append_unguarded(
        f.root(),
        f.vault.id(),
        &f.collector,
        &Event::Heartbeat { note: "3".into() },
    )
    .unwrap();
    fs::remove_file(log::entry_path(f.root(), 2)).unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::MissingEntry), "{k:?}");
}

#[test]
fn reordered_entries() {
    let f = Fixture::standard();
    let (a, b) = (log::entry_path(f.root(), 1), log::entry_path(f.root(), 2));
    let tmp = f.root().join("swap");
    fs::rename(&a, &tmp).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&tmp, &b).unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::Reordered), "{k:?}");
    assert!(k.contains(&FindingKind::BrokenChain), "{k:?}");
}

#[test]
fn entry_from_another_vault() {
    let f = Fixture::standard();
    let other = Fixture::standard();
    fs::copy(
        log::entry_path(other.root(), 1),
        log::entry_path(f.root(), 3),
    )
    .unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::WrongVault), "{k:?}");
    // Signed by a key this vault does not trust either.
    assert!(k.contains(&FindingKind::UnknownSigner), "{k:?}");
}

#[test]
fn half_written_entry() {
    let f = Fixture::standard();
    let path = log::entry_path(f.root(), 2);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let k = kinds(&check(&f, false));
    assert!(k.contains(&FindingKind::MalformedEntry), "{k:?}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).unwrap();
        let dest = to.join(rel);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&e, dest).unwrap();
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn rollback_to_an_older_copy_and_divergence() {
    let f = Fixture::standard();
    let old_copy = f.dir.path().join("old-copy");
    copy_dir(f.root(), &old_copy);
    f.snapshot("plc1", &[("OB1.awl", common::text(10, 9))]);
    assert!(check(&f, false).is_clean(), "verifier remembers entry 3");
    // Put the older copy back in place of the vault.
    fs::remove_dir_all(f.root()).unwrap();
    copy_dir(&old_copy, f.root());
    let r = check(&f, false);
    assert_eq!(kinds(&r), vec![FindingKind::Rollback]);
    // Writing to the old copy does not hide it: entry 3 now differs.
    f.snapshot("plc1", &[("OB1.awl", common::text(10, 10))]);
    assert_eq!(kinds(&check(&f, false)), vec![FindingKind::Diverged]);
}

#[test]
fn stale_log() {
    let f = Fixture::standard();
    let opts = |now| VerifyOptions {
        stale_after: Some(Duration::from_secs(26 * 3600)),
        now,
        ..Default::default()
    };
    let fresh = verify(&f.vault, &f.trust, &opts(SystemTime::now())).unwrap();
    assert!(fresh.is_clean());
    let later = SystemTime::now() + Duration::from_secs(27 * 3600);
    let r = verify(&f.vault, &f.trust, &opts(later)).unwrap();
    assert_eq!(kinds(&r), vec![FindingKind::Stale]);
}

#[test]
fn leftovers_of_a_crashed_writer_are_notes_not_damage() {
    let f = Fixture::standard();
    fs::write(f.root().join("tmp/pack-123.tmp"), b"half a pack").unwrap();
    let r = check(&f, true);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert!(
        r.notes.iter().any(|n| n.contains("temp file")),
        "{:?}",
        r.notes
    );
}

#[test]
fn restore_refuses_a_signed_manifest_whose_names_escape_the_target() {
    use vault::manifest::{ArtifactEntry, ArtifactMeta, ArtifactStatus};
    let f = Fixture::new();
    let history = History::load(&f.vault, &f.trust).unwrap();
    let (index, _) = vault::Index::load(&f.vault, &history.committed_packs());
    let writer = vault::Writer::new(&f.vault, &index);
    let mut scratch = vault::Scratch::new(1).unwrap();
    let stored = writer.store(&mut scratch, &b"owned"[..]).unwrap();
    let entry = |name: &str| ArtifactEntry {
        name: name.into(),
        kind: vault::ArtifactKind::Other,
        size: stored.size,
        sha256: stored.sha256,
        status: ArtifactStatus::Ok,
        meta: ArtifactMeta::default(),
        chunks: stored.chunks.clone(),
    };
    let m = vault::Manifest {
        v: 1,
        device: "evil".into(),
        adapter: "test".into(),
        source: "-".into(),
        complete: true,
        warnings: vec![],
        artifacts: vec![entry("../../escaped.txt"), entry("ok.txt")],
    };
    // Even a manifest signed by a trusted key (a stolen collector key) cannot write
    // outside the target.
    writer
        .commit(&m, (String::new(), String::new()), &f.collector)
        .unwrap();
    let history = History::load(&f.vault, &f.trust).unwrap();
    let (index, _) = vault::Index::load(&f.vault, &history.committed_packs());
    let target = f.dir.path().join("a/b/target");
    let err = vault::restore(&f.vault, &index, &m, &target, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("escape"), "{err}");
    assert!(!f.dir.path().join("a/escaped.txt").exists());
    assert!(
        !target.join("ok.txt").exists(),
        "nothing is written when any name is unsafe"
    );
    // verify reports it too.
    let k = kinds(&check(&f, false));
    assert_eq!(k, vec![FindingKind::BadManifest]);
}

// Log v2: the Merkle tree's tiles and the signed checkpoint are checked against the
// entries; damage to either is found, and the entries are never touched.

#[test]
fn a_flipped_bit_in_a_tile_or_the_checkpoint_is_found() {
    let f = Fixture::standard();
    assert!(kinds(&check(&f, false)).is_empty());
    let tile = f.root().join("tlog/tile/0/000.p/2");
    let mut b = fs::read(&tile).unwrap();
    b[40] ^= 0x10;
    fs::write(&tile, &b).unwrap();
    assert_eq!(kinds(&check(&f, false)), vec![FindingKind::BadTile]);
    b[40] ^= 0x10;
    fs::write(&tile, &b).unwrap();
    let cp = f.root().join("tlog/checkpoint");
    let good = fs::read(&cp).unwrap();
    // A bit of the root (third line) and a bit of the signature.
    for at in [
        good.iter().position(|&c| c == b'\n').unwrap() + 4,
        good.len() - 10,
    ] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs::write(&cp, &bad).unwrap();
        assert_eq!(
            kinds(&check(&f, false)),
            vec![FindingKind::BadCheckpoint],
            "byte {at}"
        );
    }
    fs::write(&cp, &good).unwrap();
    assert!(kinds(&check(&f, false)).is_empty());
}

#[test]
fn a_log_cut_after_its_checkpoint_is_found_and_a_vault_without_tiles_gets_them() {
    let f = Fixture::standard();
    let entries: Vec<Vec<u8>> = (1..=2)
        .map(|s| fs::read(log::entry_path(f.root(), s)).unwrap())
        .collect();
    // The newest entry deleted: the checkpoint covers more than the log holds.
    fs::remove_file(log::entry_path(f.root(), 2)).unwrap();
    let r = check(&f, false);
    assert!(kinds(&r).contains(&FindingKind::BadCheckpoint), "{r:?}");
    fs::write(log::entry_path(f.root(), 2), &entries[1]).unwrap();
    // A vault from before log v2: no tlog/ at all. Verify says so and finds nothing;
    // the next write builds the tree from the entries, which stay byte for byte.
    fs::remove_dir_all(f.root().join("tlog")).unwrap();
    let r = check(&f, false);
    assert!(kinds(&r).is_empty(), "{r:?}");
    assert!(r.notes.iter().any(|n| n.contains("no signed checkpoint")));
    vault::append::append_unguarded(
        f.root(),
        f.vault.id(),
        &f.collector,
        &Event::Heartbeat {
            note: "after the upgrade".into(),
        },
    )
    .unwrap();
    let r = check(&f, false);
    assert!(kinds(&r).is_empty(), "{r:?}");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            &fs::read(log::entry_path(f.root(), i as u64 + 1)).unwrap(),
            e
        );
    }
    let note = fs::read_to_string(f.root().join("tlog/checkpoint")).unwrap();
    assert_eq!(note.lines().nth(1), Some("3"), "{note}");
}

#[test]
fn a_checkpoint_that_does_not_extend_the_one_verified_before_is_found() {
    let f = Fixture::standard();
    assert!(kinds(&check(&f, false)).is_empty());
    assert!(
        f.state_dir()
            .join(format!("{}.checkpoint", f.vault.id()))
            .exists()
    );
    // History rewritten from entry 2 on, and the tree rebuilt to match it, re-signed:
    // consistent in itself, not with what this verifier verified.
    let (_, parsed) = log::read(f.root(), 2).unwrap();
    let old = parsed.unwrap();
    let header = Header {
        time: "2026-01-01T00:00:00.000Z".into(),
        ..old.header.clone()
    };
    let bytes = log::encode(&header, old.event.as_ref().unwrap(), &f.collector);
    fs::write(log::entry_path(f.root(), 2), bytes).unwrap();
    fs::remove_dir_all(f.root().join("tlog")).unwrap();
    vault::tiles::sync(f.root(), f.vault.id(), &f.collector, 2).unwrap();
    // The remembered head would tell (diverged); without it, the remembered checkpoint
    // still does.
    fs::remove_file(f.state_dir().join(format!("{}.head", f.vault.id()))).unwrap();
    let r = check(&f, false);
    assert!(
        r.findings
            .iter()
            .any(|x| x.kind == FindingKind::BadCheckpoint
                && x.message.contains("does not extend the one of 2 entries")),
        "{r:?}"
    );
    // tlog/ deleted outright is found too, once a checkpoint was verified.
    fs::remove_dir_all(f.root().join("tlog")).unwrap();
    assert!(kinds(&check(&f, false)).contains(&FindingKind::BadCheckpoint));
}

#[test]
fn entries_no_witness_cosigned_within_the_grace_period_are_found() {
    let f = Fixture::standard();
    let opts = |now, witnesses| VerifyOptions {
        now,
        witnesses,
        witness_grace: Duration::from_secs(48 * 3600),
        ..Default::default()
    };
    let later = SystemTime::now() + Duration::from_secs(72 * 3600);
    // None asked for: nothing to say.
    assert!(
        verify(&f.vault, &f.trust, &opts(later, 0))
            .unwrap()
            .is_clean()
    );
    // Asked for, none cosigned, within the grace period: fine; past it: a finding.
    assert!(
        verify(&f.vault, &f.trust, &opts(SystemTime::now(), 1))
            .unwrap()
            .is_clean()
    );
    let r = verify(&f.vault, &f.trust, &opts(later, 1)).unwrap();
    assert_eq!(kinds(&r), vec![FindingKind::Unwitnessed]);
    assert_eq!(r.findings[0].seq, Some(1));
}

/// Appends `n` heartbeats.
fn heartbeats(f: &Fixture, n: usize) {
    for i in 0..n {
        vault::append::append_unguarded(
            f.root(),
            f.vault.id(),
            &f.collector,
            &Event::Heartbeat {
                note: format!("night {i}"),
            },
        )
        .unwrap();
    }
}

#[test]
fn full_groups_of_256_entries_move_into_bundles_and_damage_to_a_bundle_is_found() {
    let f = Fixture::standard();
    heartbeats(&f, 600);
    // 602 entries: two bundles, 90 loose entries in log/.
    let (loose, _) = log::list_loose(f.root()).unwrap();
    assert_eq!(loose.first().copied(), Some(513));
    assert_eq!(loose.len(), 90);
    assert!(log::bundle_path(f.root(), 0).exists() && log::bundle_path(f.root(), 1).exists());
    assert_eq!(log::newest(f.root()).unwrap(), 602);
    // The marker says format 2 (so a release that reads only loose entries refuses the
    // vault rather than taking entries 1-512 for missing), and the vault opens.
    let marker = fs::read_to_string(f.root().join("VAULT")).unwrap();
    assert!(
        marker.starts_with("plcvault vault\nformat 2\nid "),
        "{marker}"
    );
    vault::Vault::open(f.root()).unwrap();
    let r = check(&f, true);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!(r.entries, 602);
    // Bundles are C2SP entry bundles: two-byte big-endian lengths, then the entry.
    let b = fs::read(log::bundle_path(f.root(), 1)).unwrap();
    let len = u16::from_be_bytes([b[0], b[1]]) as usize;
    let (bytes, _) = log::read(f.root(), 257).unwrap();
    assert_eq!(&b[2..2 + len], &bytes[..]);
    assert!(bytes.ends_with(b"\n") && bytes.starts_with(b"{\"v\":1"));
    // A flipped bit inside an entry of a bundle: its signature no longer verifies.
    let path = log::bundle_path(f.root(), 1);
    let mut bad = b.clone();
    bad[2 + 30] ^= 0x04;
    fs::write(&path, &bad).unwrap();
    let k = kinds(&check(&f, false));
    assert!(
        k.contains(&FindingKind::BadSignature) || k.contains(&FindingKind::MalformedEntry),
        "{k:?}"
    );
    assert!(
        k.contains(&FindingKind::BadTile) || k.contains(&FindingKind::BadCheckpoint),
        "{k:?}"
    );
    // A flipped bit in a length: the bundle is damaged, every entry in it is malformed.
    let mut bad = b.clone();
    bad[0] ^= 0x40;
    fs::write(&path, &bad).unwrap();
    let r = check(&f, false);
    let malformed = r
        .findings
        .iter()
        .filter(|x| x.kind == FindingKind::MalformedEntry)
        .count();
    assert!(malformed >= 1, "{:?}", r.findings);
    assert!(
        r.findings.iter().any(|x| x.message.contains("bundle")),
        "{:?}",
        r.findings
    );
    // A deleted bundle: 256 entries missing.
    fs::remove_file(&path).unwrap();
    let r = check(&f, false);
    assert!(
        r.findings.iter().any(
            |x| x.kind == FindingKind::MissingEntry && x.message.contains("entries 257 to 512")
        ),
        "{:?}",
        r.findings
    );
    // Put back, all is well again, and appending goes on after the newest entry.
    fs::write(&path, &b).unwrap();
    heartbeats(&f, 1);
    assert_eq!(log::newest(f.root()).unwrap(), 603);
    // The checkpoint lost: the next write rebuilds the hash tiles, and never touches the
    // bundles beside them.
    fs::remove_file(f.root().join("tlog/checkpoint")).unwrap();
    heartbeats(&f, 1);
    assert!(log::bundle_path(f.root(), 0).exists() && log::bundle_path(f.root(), 1).exists());
    let r = verify(
        &f.vault,
        &f.trust,
        &VerifyOptions {
            full: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!(r.entries, 604);
}

#[test]
fn a_bundling_cut_short_leaves_loose_copies_that_go_at_the_next_write() {
    let f = Fixture::standard();
    heartbeats(&f, 253);
    let copies: Vec<Vec<u8>> = (1..=255)
        .map(|s| fs::read(log::entry_path(f.root(), s)).unwrap())
        .collect();
    assert!(!log::bundle_path(f.root(), 0).exists());
    heartbeats(&f, 1);
    assert!(log::bundle_path(f.root(), 0).exists());
    assert_eq!(log::list_loose(f.root()).unwrap().0, Vec::<u64>::new());
    // As if the power went after the bundle was written, before the loose files went.
    for (i, c) in copies.iter().enumerate().take(10) {
        fs::write(log::entry_path(f.root(), i as u64 + 1), c).unwrap();
    }
    let r = check(&f, false);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!(r.entries, 256);
    heartbeats(&f, 1);
    assert_eq!(log::list_loose(f.root()).unwrap().0, vec![257]);
    // Reading prefers the bundle; a loose file that differs from it is listed, not read.
    fs::write(log::entry_path(f.root(), 3), b"not an entry\n").unwrap();
    let r = check(&f, false);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert!(
        r.notes.iter().any(|n| n.contains("entry 3 is in a bundle")),
        "{:?}",
        r.notes
    );
}

#[test]
fn verify_reads_only_what_came_after_the_checkpoint_it_verified_and_full_reads_all() {
    let f = Fixture::standard();
    heartbeats(&f, 300);
    let r = check(&f, false);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!((r.entries, r.snapshots), (302, 2));
    assert!(
        !r.notes.iter().any(|n| n.contains("checked the")),
        "{:?}",
        r.notes
    );
    heartbeats(&f, 5);
    let r = check(&f, false);
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!((r.entries, r.snapshots), (307, 2));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("checked the 5 entries after entry 302")),
        "{:?}",
        r.notes
    );
    // A bit flipped in the oldest entry, inside its bundle: the catalog's record of the
    // file no longer matches, so even the quick check reads everything and finds it.
    let path = log::bundle_path(f.root(), 0);
    let mut b = fs::read(&path).unwrap();
    b[2 + 40] ^= 0x02;
    fs::write(&path, &b).unwrap();
    for full in [false, true] {
        let r = verify(
            &f.vault,
            &f.trust,
            &VerifyOptions {
                full,
                state_dir: Some(f.state_dir()),
                ..Default::default()
            },
        )
        .unwrap();
        let k = kinds(&r);
        assert!(
            k.contains(&FindingKind::BadSignature) || k.contains(&FindingKind::MalformedEntry),
            "full {full}: {k:?}"
        );
        assert!(
            r.findings.iter().any(|x| x.seq == Some(1)),
            "{:?}",
            r.findings
        );
    }
}
