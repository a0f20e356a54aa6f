//! The verifier's catalog: commands read only the entries after it, and it is never
//! trusted over the log — edited, stale or forked, it is rebuilt.

mod common;

use std::fs;

use common::Fixture;
use vault::log::{self, Event};
use vault::{FindingKind, History, catalog};

fn approve(f: &Fixture, device: &str) {
    let h = History::load(&f.vault, &f.trust).unwrap();
    let s = h.find_snapshot(Some(device), None).unwrap();
    vault::append::append_unguarded(
        f.root(),
        f.vault.id(),
        &f.approver,
        &Event::Approval {
            device: device.into(),
            snapshot: s.entry,
            manifest: s.manifest,
            approver: "alice".into(),
            ticket: "CHG-1".into(),
            reason: "commissioning".into(),
            rules: serde_json::json!({}),
            accepted_suspect: false,
            review: None,
        },
    )
    .unwrap();
}

fn fail(f: &Fixture, device: &str) {
    vault::append::append_unguarded(
        f.root(),
        f.vault.id(),
        &f.collector,
        &Event::CollectFailed {
            device: device.into(),
            error: "timeout\nafter 3 tries".into(),
            kind: Some("timeout".into()),
        },
    )
    .unwrap();
}

/// What a command sees of a history, to compare two readings.
fn view(h: &History, devices: &[&str]) -> String {
    let mut out = format!("head {:?}\nfindings {:?}\n", h.head(), h.findings);
    for d in devices {
        out += &format!(
            "{d}: {:?}\n{:?}\n{:?}\n{:?}\n{:?}\n",
            h.snapshots_of(d),
            h.baseline(d),
            h.device(d)
                .map(|s| (&s.last_failure, s.snapshots, s.approvals)),
            h.approvals(Some(d)),
            h.find_snapshot(Some(d), None).ok()
        );
    }
    out + &format!("{:?}\n{:?}", h.committed_packs(), h.packs_for_reading())
}

fn plant(f: &Fixture) {
    for night in 0..3u8 {
        for d in ["plc1", "plc2", ".."] {
            f.snapshot(d, &[("OB1.awl", vec![b'A' + night; 10])]);
        }
        fail(f, "plc3");
    }
    approve(f, "plc1");
}

const DEVICES: [&str; 4] = ["plc1", "plc2", "..", "plc3"];

#[test]
fn the_catalog_gives_what_reading_every_entry_gives_and_then_reads_only_new_entries() {
    let f = Fixture::new();
    plant(&f);
    let state = f.state_dir();
    let first = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert!(first.rebuilt && first.entries.is_empty());
    let full = History::load(&f.vault, &f.trust).unwrap();
    assert_eq!(view(&first, &DEVICES), view(&full, &DEVICES));
    assert_eq!(first.device("plc1").unwrap().snapshots, 3);
    assert_eq!(
        first
            .device("plc3")
            .unwrap()
            .last_failure
            .as_ref()
            .unwrap()
            .error,
        "timeout"
    );
    assert!(catalog::dir(&state, f.vault.id()).join("summary").exists());

    // One more night: only its entries are read.
    f.snapshot("plc2", &[("OB1.awl", b"changed".to_vec())]);
    fail(&f, "plc3");
    let next = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert!(!next.rebuilt);
    assert_eq!(next.entries.len(), 2, "{:?}", next.entries.len());
    // A verifier that verified up to entry 3 gets every entry after it, checked.
    let since =
        catalog::open_as(&f.vault, &f.trust, Some(&state), catalog::Want::Since(3)).unwrap();
    let seqs: Vec<u64> = since.entries.iter().map(|c| c.entry.file_seq).collect();
    assert_eq!(seqs, (4..=next.summary.size).collect::<Vec<_>>());
    assert_eq!(since.leaves.len(), seqs.len());
    assert!(since.entries.iter().all(|c| c.trusted));
    let full = History::load(&f.vault, &f.trust).unwrap();
    assert_eq!(view(&next, &DEVICES), view(&full, &DEVICES));
    // Nothing new: nothing read.
    let again = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert_eq!(again.entries.len(), 0);
    assert_eq!(view(&again, &DEVICES), view(&full, &DEVICES));
}

#[test]
fn an_edited_or_cut_catalog_is_rebuilt_never_believed() {
    let f = Fixture::new();
    plant(&f);
    let state = f.state_dir();
    let dir = catalog::dir(&state, f.vault.id());
    let truth = view(&History::load(&f.vault, &f.trust).unwrap(), &DEVICES);
    catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();

    // The summary edited: the baseline moved to another device. Its digest fails.
    let summary = dir.join("summary");
    let text = fs::read_to_string(&summary).unwrap();
    fs::write(&summary, text.replacen("CHG-1", "CHG-9", 1)).unwrap();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert!(h.rebuilt, "rebuilt from every entry");
    assert_eq!(view(&h, &DEVICES), truth);

    // A record file edited in place (same length): its running digest fails, and the
    // records are read from the log.
    let records = vault::history::record_path(&dir, "plc1");
    let text = fs::read_to_string(&records).unwrap();
    assert!(text.contains("CHG-1"));
    fs::write(&records, text.replacen("CHG-1", "CHG-9", 1)).unwrap();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert_eq!(view(&h, &DEVICES), truth);
    assert!(!summary.exists(), "the damaged catalog is discarded");
    // A record file cut short: rebuilt at the next opening.
    catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    let len = fs::metadata(&records).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&records)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert!(h.rebuilt);
    assert_eq!(view(&h, &DEVICES), truth);
    // A FIFO, or a link to /dev/zero, in a record file's place: read from the log, never
    // a hang or an endless read.
    for odd in ["fifo", "zero"] {
        catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
        fs::remove_file(&records).unwrap();
        if odd == "fifo" {
            assert!(
                std::process::Command::new("mkfifo")
                    .arg(&records)
                    .status()
                    .unwrap()
                    .success()
            );
        } else {
            std::os::unix::fs::symlink("/dev/zero", &records).unwrap();
        }
        let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
        assert_eq!(view(&h, &DEVICES), truth, "{odd}");
        let _ = fs::remove_file(&records);
    }
}

#[test]
fn an_entry_changed_after_the_catalog_was_made_is_found() {
    let f = Fixture::new();
    plant(&f);
    let state = f.state_dir();
    catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    // Entry 2 altered in place: the catalog's files changed, so it is rebuilt and the bad
    // signature reported.
    let path = log::entry_path(f.root(), 2);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replacen("plc2", "plc9", 1)).unwrap();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    let kinds: Vec<FindingKind> = h.findings.iter().map(|x| x.kind).collect();
    assert!(kinds.contains(&FindingKind::BadSignature), "{kinds:?}");
    // Entry 3 no longer follows it either: the chain names the old entry 2.
    assert_eq!(
        h.doubts_after(0),
        vec![
            "log entry 2 cannot be trusted",
            "log entry 3 cannot be trusted"
        ]
    );
}

#[test]
fn a_log_rewritten_and_resigned_does_not_extend_the_catalog_and_is_read_anew() {
    let f = Fixture::new();
    plant(&f);
    let state = f.state_dir();
    catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    // History rewritten by a holder of the collector key from entry 3 on (the approval
    // dropped, a failure put in its place), the tree rebuilt and re-signed: consistent in
    // itself. The catalog's tree does not lead to its root, so every entry is read again.
    let newest = log::newest(f.root()).unwrap();
    let kept: Vec<Vec<u8>> = (1..=2).map(|s| log::read(f.root(), s).unwrap().0).collect();
    fs::remove_dir_all(f.root().join("tlog")).unwrap();
    for s in 1..=newest {
        let _ = fs::remove_file(log::entry_path(f.root(), s));
    }
    for (i, b) in kept.iter().enumerate() {
        fs::write(log::entry_path(f.root(), i as u64 + 1), b).unwrap();
    }
    for _ in 3..=newest {
        fail(&f, "plc1");
    }
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    let full = History::load(&f.vault, &f.trust).unwrap();
    assert_eq!(view(&h, &DEVICES), view(&full, &DEVICES));
    assert!(h.baseline("plc1").is_none());
    assert!(h.rebuilt);
    assert_eq!(h.summary.size, newest);
}

#[test]
fn a_catalog_spans_bundles_and_entries_after_the_checkpoint() {
    let f = Fixture::new();
    for i in 0..300 {
        fail(&f, &format!("plc{}", i % 7));
    }
    let state = f.state_dir();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert_eq!(h.head().unwrap().0, 300);
    // Bundling after the catalog was saved moves files; the catalog still holds.
    for _ in 0..230 {
        fail(&f, "plc1");
    }
    assert!(log::bundle_path(f.root(), 1).exists());
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert_eq!(h.entries.len(), 230);
    assert_eq!(
        h.device("plc1").unwrap().last_failure.as_ref().unwrap().seq,
        530
    );
    // An entry appended whose tree update did not run (the writer died): folded, and read
    // again next time since the catalog stops at the signed checkpoint.
    let next = log::encode(
        &log::Header {
            v: 1,
            vault: f.vault.id().to_string(),
            seq: 531,
            prev: Some(h.head().unwrap().1),
            time: "2026-11-30T00:00:00.000Z".into(),
            signer: f.collector.public(),
        },
        &Event::Heartbeat { note: "x".into() },
        &f.collector,
    );
    fs::write(log::entry_path(f.root(), 531), next).unwrap();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert_eq!(h.head().unwrap().0, 531);
    assert_eq!(h.entries.len(), 1);
    assert!(h.findings.is_empty(), "{:?}", h.findings);
}

#[test]
fn other_trusted_keys_make_the_catalog_rebuilt() {
    let f = Fixture::new();
    plant(&f);
    // The collector writes after the approval: its key signs the newest checkpoint.
    fail(&f, "plc3");
    let state = f.state_dir();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert!(h.baseline("plc1").is_some());
    // The approver's key is no longer trusted (it was stolen): its approval must not be
    // believed from a catalog made while it was.
    let trust = vault::Trust::new(
        f.trust
            .keys
            .iter()
            .filter(|k| k.role != vault::Role::Approver)
            .cloned()
            .collect(),
    );
    let h = catalog::open(&f.vault, &trust, Some(&state)).unwrap();
    assert!(h.rebuilt, "every entry read again");
    assert!(h.baseline("plc1").is_none());
    assert!(
        h.findings
            .iter()
            .any(|x| x.kind == FindingKind::UnknownSigner)
    );
}

#[test]
fn a_bundle_put_over_recorded_loose_entries_is_compared_with_them() {
    let f = Fixture::new();
    for i in 0..250 {
        fail(&f, &format!("plc{}", i % 3));
    }
    let state = f.state_dir();
    catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    // A bundle of other entries for group 0 (re-signed by the collector key's holder),
    // while the loose files stay as they were.
    let entries: Vec<Vec<u8>> = (1..=256)
        .map(|s| {
            let body = format!("altered {s}");
            let (_, parsed) = log::read(f.root(), s.min(250)).unwrap();
            let e = parsed.unwrap();
            log::encode(&e.header, &Event::Heartbeat { note: body }, &f.collector)
        })
        .collect();
    let path = log::bundle_path(f.root(), 0);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, log::encode_bundle(&entries)).unwrap();
    let h = catalog::open(&f.vault, &f.trust, Some(&state)).unwrap();
    assert_eq!(h.since, 0, "the bundle shadows the recorded loose entries");
    let kinds: Vec<FindingKind> = h.findings.iter().map(|x| x.kind).collect();
    assert!(kinds.contains(&FindingKind::BrokenChain), "{kinds:?}");
}
