mod common;

use common::{Fixture, noise, text};
use vault::{History, Index, RestoreOptions, VerifyOptions, manifest, restore, verify};

#[test]
fn store_verify_restore_is_byte_identical() {
    let f = Fixture::new();
    let big = noise(9 * 1024 * 1024 + 17, 5);
    let files = vec![
        ("OB1.awl", text(5000, 3)),
        ("dir/empty", Vec::new()),
        ("hmi/big.img", big),
    ];
    let id = f.snapshot("plc", &files);
    let report = verify(
        &f.vault,
        &f.trust,
        &VerifyOptions {
            read_data: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert!(report.chunks_checked >= 3);

    let history = History::load(&f.vault, &f.trust).unwrap();
    let snap = history.find_snapshot(Some("plc"), None).unwrap();
    assert_eq!(snap.manifest, id);
    let m = manifest::load(f.root(), &id).unwrap();
    let (index, _) = Index::load(&f.vault, &history.committed_packs());
    let out = f.dir.path().join("out");
    let r = restore(&f.vault, &index, &m, &out, &RestoreOptions::default()).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
    // A second restore into the same, now non-empty folder is refused without force.
    let err = restore(&f.vault, &index, &m, &out, &RestoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    restore(
        &f.vault,
        &index,
        &m,
        &out,
        &RestoreOptions {
            force: true,
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn unchanged_data_stores_no_new_chunks() {
    let f = Fixture::new();
    let files = vec![
        ("a.img", noise(5 * 1024 * 1024, 9)),
        ("b.txt", text(100, 1)),
    ];
    f.snapshot("d", &files);
    let packs_before = History::load(&f.vault, &f.trust)
        .unwrap()
        .committed_packs()
        .len();
    f.snapshot("d", &files);
    let h = History::load(&f.vault, &f.trust).unwrap();
    assert_eq!(
        h.committed_packs().len(),
        packs_before,
        "second snapshot added packs"
    );
    assert_eq!(h.snapshots().len(), 2);
}

#[test]
fn concurrent_writers_never_break_the_log() {
    let f = Fixture::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let f = &f;
            s.spawn(move || {
                for i in 0..5u64 {
                    f.snapshot(&format!("dev{t}"), &[("x", text(10, t * 100 + i))]);
                }
            });
        }
    });
    let report = verify(
        &f.vault,
        &f.trust,
        &VerifyOptions {
            read_data: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert_eq!(report.snapshots, 20);
    assert_eq!(report.entries, 20);
}

/// Streaming hashing agrees with one-shot SHA-256 at every size that matters to the
/// chunker: empty, tiny, around the minimum chunk size, and many chunks.
#[test]
fn streamed_sha256_equals_one_shot_sha256() {
    use vault::chunker::{MAX_SIZE, MIN_SIZE};
    let f = Fixture::new();
    let history = History::load(&f.vault, &f.trust).unwrap();
    let (index, _) = Index::load(&f.vault, &history.committed_packs());
    let writer = vault::Writer::new(&f.vault, &index);
    let mut scratch = vault::Scratch::new(3).unwrap();
    for (i, len) in [
        0,
        1,
        MIN_SIZE - 1,
        MIN_SIZE,
        MIN_SIZE + 1,
        MAX_SIZE,
        MAX_SIZE + 1,
        3 * MAX_SIZE + 7,
    ]
    .into_iter()
    .enumerate()
    {
        let data = noise(len, i as u64 + 1);
        let stored = writer.store(&mut scratch, &data[..]).unwrap();
        assert_eq!(stored.sha256, vault::Hash::of(&data), "length {len}");
        assert_eq!(stored.size, len as u64);
        assert_eq!(
            stored.chunks.iter().map(|c| c.1 as u64).sum::<u64>(),
            len as u64
        );
    }
}

#[test]
fn lookup_reuses_known_content_only_while_its_chunks_exist() {
    let f = Fixture::new();
    let data = noise(6 * 1024 * 1024, 77);
    let id = f.snapshot("d", &[("img", data.clone())]);
    let m = manifest::load(f.root(), &id).unwrap();
    let history = History::load(&f.vault, &f.trust).unwrap();
    let (index, _) = Index::load(&f.vault, &history.committed_packs());
    let mut writer = vault::Writer::new(&f.vault, &index);
    let sha = vault::Hash::of(&data);
    assert!(
        writer.lookup(&sha, data.len() as u64).is_none(),
        "not remembered yet"
    );
    writer.remember(&m);
    let hit = writer
        .lookup(&sha, data.len() as u64)
        .expect("known content");
    assert_eq!(hit.chunks, m.artifacts[0].chunks);
    assert!(
        writer.lookup(&sha, data.len() as u64 + 1).is_none(),
        "size must agree"
    );
    // With its pack gone from the index, the content must be stored again.
    let empty = Index::default();
    let mut writer = vault::Writer::new(&f.vault, &empty);
    writer.remember(&m);
    assert!(writer.lookup(&sha, data.len() as u64).is_none());
}

/// The pipelined store (a helper thread packs chunks) gives exactly what `store` gives,
/// and the stored content restores.
#[test]
fn pipelined_store_matches_plain_store() {
    let f = Fixture::new();
    let history = History::load(&f.vault, &f.trust).unwrap();
    let (index, _) = Index::load(&f.vault, &history.committed_packs());
    let writer = vault::Writer::new(&f.vault, &index);
    let mut scratch = vault::Scratch::new(1).unwrap();
    for (i, len) in [0usize, 10, 300_000, 9 * 1024 * 1024 + 3]
        .into_iter()
        .enumerate()
    {
        let data = noise(len, 40 + i as u64);
        let a = writer.store_pipelined(&mut scratch, &data[..]).unwrap();
        let b = writer.store(&mut scratch, &data[..]).unwrap();
        assert_eq!(
            (a.size, a.sha256, &a.chunks),
            (b.size, b.sha256, &b.chunks),
            "length {len}"
        );
        assert_eq!(a.sha256, vault::Hash::of(&data));
    }
}
