//! Writes a vault's log anew for the history benchmark (`tests/bench/history.sh`): from
//! the first night collected for real (one snapshot entry per device), NIGHTS nights in
//! which every device's data stayed unchanged: one signed snapshot entry per device per
//! night naming the same manifest (the first night's also its packs), dated a day apart,
//! the last one a day ago. Entries go straight into C2SP bundles of 256, then the tree
//! and its signed checkpoint are built as a writer would. The verifier state of the old
//! log no longer applies (remove it).
//!
//!     history_gen VAULT COLLECTOR_KEY NIGHTS

use std::time::{Duration, SystemTime};

use vault::log::{self, Event, Header};
use vault::{Hash, SecretKey, Vault};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, key, nights] = &args[..] else {
        eprintln!("usage: history_gen VAULT COLLECTOR_KEY NIGHTS");
        std::process::exit(2);
    };
    let nights: u64 = nights.parse().expect("NIGHTS is a number");
    let vault = Vault::open(std::path::Path::new(root)).expect("a vault");
    let key = SecretKey::load(std::path::Path::new(key)).expect("a key");
    let root = vault.root().to_owned();
    let newest = log::newest(&root).expect("a log");

    // The first snapshot entry of each device, in the order they were collected: the
    // first night, collected for real.
    let mut first: Vec<Event> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut reader = log::Reader::new(&root);
    for seq in 1..=newest {
        let (_, parsed, _) = reader.read(seq).expect("readable");
        if let Ok(e) = parsed
            && let Ok(ev @ Event::Snapshot { device, .. }) = &e.event
            && seen.insert(device.clone())
        {
            first.push(ev.clone());
        }
    }
    let devices = first.len() as u64;
    assert!(devices > 0, "collect once before growing the log");
    drop(reader);
    // The log is written anew, the first night dated NIGHTS days ago.
    std::fs::remove_dir_all(root.join("tlog")).expect("tlog/ removed");
    std::fs::remove_dir_all(root.join("log")).expect("log/ removed");
    std::fs::create_dir_all(root.join("log")).expect("log/ made");
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut prev: Option<Hash> = None;
    let mut seq = 0u64;
    let mut group = 0u64;
    let now = SystemTime::now();
    let tmp = vault.tmp_dir();
    for night in 0..nights {
        let day = now - Duration::from_secs((nights - night) * 86_400);
        for (i, ev) in first.iter().enumerate() {
            let Event::Snapshot {
                device,
                manifest,
                manifest_size,
                complete,
                artifacts,
                bytes,
                packs,
                ..
            } = ev
            else {
                unreachable!()
            };
            let t = day + Duration::from_millis(i as u64 * 20);
            let stamp = humantime::format_rfc3339_millis(t).to_string();
            let event = Event::Snapshot {
                device: device.clone(),
                started: stamp.clone(),
                finished: stamp.clone(),
                manifest: *manifest,
                manifest_size: *manifest_size,
                complete: *complete,
                artifacts: *artifacts,
                bytes: *bytes,
                // The data was stored on the first night; unchanged since.
                packs: if night == 0 {
                    packs.clone()
                } else {
                    Vec::new()
                },
            };
            seq += 1;
            let header = Header {
                v: log::ENTRY_VERSION,
                vault: vault.id().to_string(),
                seq,
                prev,
                time: stamp,
                signer: key.public(),
            };
            let entry = log::encode(&header, &event, &key);
            prev = Some(Hash::of(&entry));
            pending.push(entry);
            if pending.len() as u64 == log::BUNDLE {
                vault::repository::mark_bundled(&root).expect("marker written");
                let path = log::bundle_path(&root, group);
                vault::atomic::write_replace_derived(&tmp, &path, &log::encode_bundle(&pending))
                    .expect("bundle written");
                pending.clear();
                group += 1;
            }
        }
    }
    // The tail stays loose; loose files now in bundles go.
    for (i, entry) in pending.iter().enumerate() {
        let s = group * log::BUNDLE + 1 + i as u64;
        std::fs::write(log::entry_path(&root, s), entry).expect("entry written");
    }
    vault::tiles::sync(&root, vault.id(), &key, seq).expect("tree brought up to date");
    println!("{seq} entries: {devices} devices, {nights} nights");
}
