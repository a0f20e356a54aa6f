//! Grows a vault's log for the history benchmark (`tests/bench/history.sh`): after the
//! vault's newest night of real collections (one snapshot entry per device), appends
//! NIGHTS more nights in which every device's data was unchanged: one signed snapshot
//! entry per device per night naming the same manifest, dated a day apart and ending
//! now. Entries go straight into C2SP bundles of 256, then the tree and its signed
//! checkpoint are brought up to date, as a writer would.
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

    // The newest real snapshot entry of each device, in the order they were collected.
    let mut last: Vec<Event> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut reader = log::Reader::new(&root);
    for seq in (1..=newest).rev() {
        let (_, parsed, _) = reader.read(seq).expect("readable");
        if let Ok(e) = parsed
            && let Ok(ev @ Event::Snapshot { device, .. }) = &e.event
            && seen.insert(device.clone())
        {
            last.push(ev.clone());
        }
    }
    last.reverse();
    let devices = last.len() as u64;
    assert!(devices > 0, "collect once before growing the log");

    // Entries of the group the log ends in are rewritten into its bundle.
    let group_start = newest / log::BUNDLE * log::BUNDLE;
    let mut pending: Vec<Vec<u8>> = (group_start + 1..=newest)
        .map(|s| reader.read(s).expect("readable").0)
        .collect();
    let mut prev = Hash::of(&reader.read(newest).expect("readable").0);
    let mut seq = newest;
    let mut group = group_start / log::BUNDLE;
    let now = SystemTime::now();
    let tmp = vault.tmp_dir();
    for night in 0..nights {
        let day = now - Duration::from_secs((nights - night) * 86_400);
        for (i, ev) in last.iter().enumerate() {
            let Event::Snapshot {
                device,
                manifest,
                manifest_size,
                complete,
                artifacts,
                bytes,
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
                packs: Vec::new(),
            };
            seq += 1;
            let header = Header {
                v: log::ENTRY_VERSION,
                vault: vault.id().to_string(),
                seq,
                prev: Some(prev),
                time: stamp,
                signer: key.public(),
            };
            let entry = log::encode(&header, &event, &key);
            prev = Hash::of(&entry);
            pending.push(entry);
            if pending.len() as u64 == log::BUNDLE {
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
    for s in group_start + 1..(group * log::BUNDLE + 1).min(newest + 1) {
        let _ = std::fs::remove_file(log::entry_path(&root, s));
    }
    vault::tiles::sync(&root, vault.id(), &key, seq).expect("tree brought up to date");
    println!("{seq} entries, {devices} devices, {nights} nights added");
}
