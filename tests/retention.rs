//! Retention: `forget` keeps what it must (policy, newest, baseline, approved before it,
//! drilled, drift since the baseline) and signs what it forgot; `prune` deletes what no
//! kept snapshot needs, repacks, keeps young leftovers, waits for no writer, and a kill at
//! any moment loses no kept snapshot. Nights are made in the past with libfaketime (a
//! tool nobody here wrote): entries are dated by the clock the binary sees.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{BIN, Run, Site, noise};

const DAY: u64 = 86_400;

/// `faketime`, or `None` (loudly) when it is missing and peers are optional.
fn faketime(test: &str) -> Option<()> {
    let ok = Command::new("faketime")
        .args(["2020-01-01 00:00:00", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: needs libfaketime (Debian's faketime); run `bash tests/run.sh`, which installs it"
        );
        eprintln!("SKIPPED {test}: faketime missing (run `bash tests/run.sh`)");
        return None;
    }
    Some(())
}

/// The time `days_ago` days and an hour ago, as faketime takes it.
fn night(days_ago: u64) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = now - days_ago * DAY - 3600;
    let s = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(t))
        .to_string();
    s.trim_end_matches('Z').replace('T', " ")
}

/// Runs the binary with `args` at `time` (faketime's syntax).
fn at(site: &Site, time: &str, args: &[&str]) -> Run {
    let out = Command::new("faketime")
        .arg(time)
        .arg(BIN)
        .arg("--config")
        .arg(site.config())
        .args(args)
        .env_remove("PLCVAULT_CONFIG")
        .output()
        .unwrap();
    Run::from_output(out)
}

fn append_config(site: &Site, text: &str) {
    let mut cfg = std::fs::read_to_string(site.config()).unwrap();
    cfg.push_str(text);
    std::fs::write(site.config(), cfg).unwrap();
}

/// Snapshot ids of `device` as `snapshots --json` lists them.
fn snapshot_ids(site: &Site, device: &str) -> Vec<String> {
    let r = site.run(&["--json", "snapshots", device]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.records("snapshot")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Restores `id` of `device` and compares every file with `want`.
fn restores_exactly(site: &Site, device: &str, id: &str, want: &BTreeMap<String, Vec<u8>>) {
    let to = site.path(&format!("restored-{device}-{id}"));
    let _ = std::fs::remove_dir_all(&to);
    let r = site.run(&[
        "restore",
        device,
        "--snapshot",
        id,
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "restore {device} {id}: {}{}", r.stdout, r.stderr);
    for (name, bytes) in want {
        let got = std::fs::read(to.join(name)).unwrap();
        assert!(got == *bytes, "{device} {id}: {name} differs after restore");
    }
    std::fs::remove_dir_all(&to).unwrap();
}

fn dir_bytes(dir: &Path) -> u64 {
    common::files_under(dir)
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn verify_clean(site: &Site) {
    let r = site.run(&["verify", "--full", "--read-data"]);
    assert_eq!(r.code, 0, "verify: {}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("INTACT"), "{}", r.stdout);
}

/// The independent verifier (`tests/verify_format.py`), from FORMAT.md alone.
fn independent_verify(site: &Site, test: &str) {
    let py = std::env::var_os("PLCVAULT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let have = Command::new(&py)
        .args(["-c", "import nacl.signing"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: the independent verifier needs PyNaCl in .venv; run `bash tests/run.sh`"
        );
        eprintln!("SKIPPED the independent verifier in {test}: PyNaCl missing");
        return;
    }
    let mut c = Command::new(py);
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_format.py"))
        .arg("--read-data");
    for (name, role) in [("collector", "collector"), ("alice", "approver")] {
        let key = site.path(&format!("site/keys/{name}.key.pub"));
        if key.exists() {
            c.arg("--trust").arg(format!("{role}:{}", key.display()));
        }
    }
    let out = c.arg(site.vault()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("\"finding\""),
        "the independent verifier disagrees: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plant of two devices collected on `nights` nights (oldest first), one night apart:
/// `line1` changes a volatile image every night (approved with it volatile), `line2`
/// changes its logic after its approval. Returns each night's content per device.
#[allow(clippy::type_complexity)]
fn plant(site: &Site, nights: u64) -> Vec<BTreeMap<String, BTreeMap<String, Vec<u8>>>> {
    site.add_device("line2", "plant2");
    let cfg = std::fs::read_to_string(site.config()).unwrap().replacen(
        "name = \"line1\"\n",
        "name = \"line1\"\nvolatile = [\"hmi/*.img\"]\n",
        1,
    );
    std::fs::write(site.config(), cfg).unwrap();
    let alice = site.add_approver();
    let mut contents = Vec::new();
    for n in 0..nights {
        let time = night(nights - 1 - n);
        let mut all = BTreeMap::new();
        let mut one = BTreeMap::new();
        one.insert("OB1.awl".to_string(), b"NETWORK 1\n A I 0.0\n".to_vec());
        one.insert("hmi/panel.img".to_string(), noise(700_000, 1001 + 2 * n));
        let mut two = BTreeMap::new();
        let logic = if n >= 2 {
            "A I 0.1 (changed)"
        } else {
            "A I 0.1"
        };
        two.insert(
            "OB1.awl".to_string(),
            format!("NETWORK 1\n {logic}\n").into_bytes(),
        );
        two.insert("recipe.csv".to_string(), noise(300_000, 7));
        for (dev, folder, files) in [("line1", "plant", &one), ("line2", "plant2", &two)] {
            let _ = std::fs::remove_dir_all(site.path(folder));
            for (name, bytes) in files {
                site.write(&format!("{folder}/{name}"), bytes);
            }
            all.insert(dev.to_string(), files.clone());
        }
        let r = at(site, &time, &["collect", "--all"]);
        assert!(
            r.code == 0 || r.code == 1,
            "night {n}: {}{}",
            r.stdout,
            r.stderr
        );
        if n == 1 {
            for dev in ["line1", "line2"] {
                let out = Command::new("faketime")
                    .arg(&time)
                    .arg(BIN)
                    .arg("--config")
                    .arg(site.config())
                    .args([
                        "baseline",
                        "approve",
                        dev,
                        "--snapshot",
                        "latest",
                        "--key",
                        alice.to_str().unwrap(),
                        "--ticket",
                        "CHG-1",
                        "--reason",
                        "commissioning",
                    ])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if n == 4 {
            let r = at(site, &time, &["drill", "line1", "--snapshot", "latest"]);
            assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        }
        contents.push(all);
    }
    contents
}

#[test]
fn forget_keeps_what_it_must_and_prune_frees_the_rest() {
    let Some(()) = faketime("forget_keeps_what_it_must_and_prune_frees_the_rest") else {
        return;
    };
    let site = Site::new();
    // Without a policy, forget refuses and says what to add.
    let r = site.run(&["forget"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("keep-daily"), "{}", r.stderr);

    let nights = plant(&site, 12);
    // Drills older than drill-max-age protect nothing: the drill of night 5 is 8 days
    // old, so 10 days keeps it protected.
    append_config(
        &site,
        "\n[retention]\nkeep-daily = 3\nkeep-approved = 0\ngrace = \"0s\"\n\n[report]\ndrill-max-age = \"10days\"\n",
    );
    let ids1 = snapshot_ids(&site, "line1");
    assert_eq!(ids1.len(), 12);
    let replica = site.path("offline-disk");
    let r = site.run(&["copy", "--to", replica.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Dry run: the decisions and why, nothing signed.
    let log_files = common::files_under(&site.vault().join("log")).len();
    let r = site.run(&["--json", "forget", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut kept: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for d in r.records("forget-device") {
        let dev = d["device"].as_str().unwrap().to_string();
        for dec in d["decisions"].as_array().unwrap() {
            let why: Vec<String> = dec["keep"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w.as_str().unwrap().to_string())
                .collect();
            if !why.is_empty() {
                kept.entry(dev.clone())
                    .or_default()
                    .push((dec["snapshot"]["id"].as_str().unwrap().to_string(), why));
            }
        }
    }
    assert_eq!(
        common::files_under(&site.vault().join("log")).len(),
        log_files
    );
    // line1: the baseline (night 2), the drilled one (night 5), the last three days.
    let l1 = &kept["line1"];
    let ids_kept: Vec<&str> = l1.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids_kept,
        vec![&ids1[1], &ids1[4], &ids1[9], &ids1[10], &ids1[11]],
        "{l1:?}"
    );
    assert_eq!(l1[0].1, vec!["baseline"]);
    assert_eq!(l1[1].1, vec!["drilled"]);
    assert!(l1[4].1.contains(&"newest".to_string()), "{l1:?}");
    // line2 drifts from its baseline (night 3 changed its logic): everything since the
    // approved snapshot is kept.
    let ids2 = snapshot_ids(&site, "line2");
    assert_eq!(kept["line2"].len(), 11, "{:?}", kept["line2"]);
    assert_eq!(kept["line2"][0].0, ids2[1]);
    assert!(kept["line2"][1].1.contains(&"drift".to_string()));

    // For real: one signed entry; forgotten snapshots are gone from the listing, and a
    // restore of one says what happened.
    let r = site.run(&["forget"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("forgot 8"), "{}", r.stdout);
    assert_eq!(
        snapshot_ids(&site, "line1"),
        vec![
            ids1[1].clone(),
            ids1[4].clone(),
            ids1[9].clone(),
            ids1[10].clone(),
            ids1[11].clone()
        ]
    );
    let r = site.run(&[
        "restore",
        "line1",
        "--snapshot",
        &ids1[0],
        "--to",
        "/nonexistent/x",
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("forgotten by retention"), "{}", r.stderr);
    verify_clean(&site);

    // Prune frees the forgotten nights' images; every kept snapshot restores exactly.
    let before = dir_bytes(&site.vault());
    let r = site.run(&["--json", "prune", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let planned = r.records("prune")[0]["freed"].as_u64().unwrap();
    assert_eq!(
        dir_bytes(&site.vault()),
        before,
        "a dry run deletes nothing"
    );
    let r = site.run(&["--json", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = &r.records("prune")[0];
    assert!(p["freed"].as_u64().unwrap() >= 7 * 650_000, "{p}");
    assert_eq!(p["freed"].as_u64().unwrap(), planned, "{p}");
    assert_eq!(p["entries"].as_array().unwrap().len(), 1);
    let after = dir_bytes(&site.vault());
    assert!(after + 7 * 650_000 <= before, "{before} -> {after}");
    verify_clean(&site);
    independent_verify(&site, "forget_keeps_what_it_must_and_prune_frees_the_rest");
    for (i, id) in ids1.iter().enumerate() {
        if snapshot_ids(&site, "line1").contains(id) {
            restores_exactly(&site, "line1", id, &nights[i]["line1"]);
        }
    }
    for (i, id) in ids2.iter().enumerate().skip(1) {
        restores_exactly(&site, "line2", id, &nights[i]["line2"]);
    }
    // Evidence of the whole period still exports and checks: the forget entry it carries
    // says which manifests are gone; a kept one removed from it is a finding.
    let ev = site.path("evidence");
    let r = site.run(&["evidence", "export", "--out", ev.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = site.run(&["verify", "--evidence", ev.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let kept_manifest = common::files_under(&ev.join("manifests"))[0].clone();
    std::fs::remove_file(kept_manifest).unwrap();
    let r = site.run(&["verify", "--evidence", ev.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    // Nothing left to do: no entry.
    let r = site.run(&["--json", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.records("prune")[0]["entries"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The offline copy follows: what the vault pruned leaves the disk too, and the
    // replica verifies with the public keys alone.
    let r = site.run(&["--json", "copy", "--to", replica.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.records("copy")[0]["report"]["removed"].as_u64().unwrap() >= 7,
        "{}",
        r.stdout
    );
    assert!(dir_bytes(&replica) < before - 7 * 650_000);
    // A collection after the prune still stores and restores (the writer's index no
    // longer names the removed packs).
    let r = site.run(&["collect", "--all"]);
    assert!(r.code == 0 || r.code == 1, "{}", r.stderr);
    verify_clean(&site);
}

#[test]
fn prune_keeps_young_leftovers_and_never_runs_beside_a_writer() {
    let Some(()) = faketime("prune_keeps_young_leftovers_and_never_runs_beside_a_writer") else {
        return;
    };
    let site = Site::new();
    site.write("plant/OB1.awl", b"NETWORK 1\n");
    let r = site.run(&["collect", "line1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Leftovers of a failed run: a pack nobody names and a temp file, one fresh and one
    // two days old.
    let stray = site
        .vault()
        .join(format!("packs/ab/{}.pack", "ab".repeat(32)));
    site.write(
        stray
            .strip_prefix(site.dir.path())
            .unwrap()
            .to_str()
            .unwrap(),
        &noise(1000, 1),
    );
    let old_tmp = site.vault().join("tmp/pack-old");
    std::fs::write(&old_tmp, noise(5000, 2)).unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * DAY);
    std::fs::File::options()
        .write(true)
        .open(&old_tmp)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let r = site.run(&["--json", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = &r.records("prune")[0];
    assert_eq!(p["leftovers_removed"], 1, "{p}");
    assert_eq!(p["leftovers_young"], 1, "{p}");
    assert!(stray.exists() && !old_tmp.exists());
    let r = site.run(&["--json", "prune", "--grace", "0s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!stray.exists());

    // A writer holds the vault (here: this test, as collect does): prune refuses at once.
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(site.vault().join("lock"))
        .unwrap();
    lock.lock_shared().unwrap();
    let r = site.run(&["prune"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is using"), "{}", r.stderr);
    lock.unlock().unwrap();
    // And a prune holding it makes a collect wait, not fail.
    lock.lock().unwrap();
    let mut child = site.command(&["collect", "line1"]).spawn().unwrap();
    // Readers too: a verify or restore never reads a pack a prune is deleting.
    let mut reader = site.command(&["verify", "--read-data"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "collect did not wait for prune"
    );
    assert!(
        reader.try_wait().unwrap().is_none(),
        "verify did not wait for prune"
    );
    lock.unlock().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(reader.wait().unwrap().success());
    verify_clean(&site);
}

/// SIGKILL during forget and prune, at moments spread over their whole run: after each
/// kill every kept snapshot restores byte-exact, verify finds nothing (leftovers at most),
/// and the next prune finishes the work.
#[test]
fn a_kill_during_forget_or_prune_never_loses_a_kept_snapshot() {
    let Some(()) = faketime("a_kill_during_forget_or_prune_never_loses_a_kept_snapshot") else {
        return;
    };
    let site = Site::new();
    let nights = plant(&site, 8);
    append_config(
        &site,
        "\n[retention]\nkeep-daily = 2\nkeep-approved = 0\ngrace = \"0s\"\nmax-unused = \"0%\"\n",
    );
    let all1 = snapshot_ids(&site, "line1");
    let all2 = snapshot_ids(&site, "line2");
    let pristine = site.path("pristine");
    cp(&site.path("site"), &pristine);
    // How long a whole prune takes here, to spread the kills over it.
    let r = site.run(&["forget"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t0 = std::time::Instant::now();
    let r = site.run(&["prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let whole = t0.elapsed().as_millis().max(20) as u64;
    let kept1 = snapshot_ids(&site, "line1");
    let kept2 = snapshot_ids(&site, "line2");
    let check = |label: &str, restore: bool| {
        let r = site.run(&["verify", "--full", "--read-data"]);
        assert_eq!(r.code, 0, "{label}: verify: {}{}", r.stdout, r.stderr);
        // What a kill may have forgotten already is at least what the policy forgets.
        for (dev, all, kept) in [("line1", &all1, &kept1), ("line2", &all2, &kept2)] {
            let now = snapshot_ids(&site, dev);
            for id in kept.iter().filter(|_| restore) {
                assert!(
                    now.contains(id),
                    "{label}: kept snapshot {id} of {dev} gone"
                );
                let i = all.iter().position(|a| a == id).unwrap();
                restores_exactly(&site, dev, id, &nights[i][dev]);
            }
        }
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    // Until 30 runs were killed before they finished (one that finished first is checked
    // too, and does not count).
    let mut round = 0;
    while kills < 30 && round < 90 {
        round += 1;
        std::fs::remove_dir_all(site.path("site")).unwrap();
        cp(&pristine, &site.path("site"));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let during_forget = round % 8 == 0;
        if !during_forget {
            let r = site.run(&["forget"]);
            assert_eq!(r.code, 0, "{}", r.stderr);
        }
        let what = if during_forget { "forget" } else { "prune" };
        let mut child = site.command(&[what]).spawn().unwrap();
        // Anywhere in the run, start-up included.
        std::thread::sleep(Duration::from_millis(seed % (whole * 7 / 10 + 1)));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            kills += 1;
        }
        check(
            &format!("round {round} ({what} killed: {})", !finished),
            true,
        );
        // The next runs finish the work.
        if during_forget {
            let r = site.run(&["forget"]);
            assert_eq!(r.code, 0, "{}", r.stderr);
        }
        let r = site.run(&["prune"]);
        assert_eq!(
            r.code, 0,
            "round {round}: prune after the kill: {}",
            r.stderr
        );
        check(&format!("round {round}, pruned again"), false);
        assert_eq!(snapshot_ids(&site, "line1"), kept1);
    }
    assert!(
        kills >= 30,
        "only {kills} of {round} runs were killed before they finished"
    );
}

fn cp(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_reader_on_a_read_only_mount_of_the_vault_still_waits_for_a_prune() {
    // The dashboard's unit mounts the vault read-only (ReadOnlyPaths): its reads must
    // still hold the lock a prune takes on the writable side. A mount namespace of our
    // own (unshare, util-linux) stands in for the unit.
    let ns = Command::new("unshare").args(["-m", "true"]).status();
    if !ns.is_ok_and(|s| s.success()) {
        if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("unshare -m failed: this test needs a mount namespace (run as root)");
        }
        eprintln!("SKIPPED read-only mount: unshare -m is not allowed here (run as root)");
        return;
    }
    let s = Site::new();
    s.write("plant/prog.st", b"PROGRAM Main END_PROGRAM\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let vault = s.vault();
    // Held exclusively, as a prune holds it.
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(vault.join("lock"))
        .unwrap();
    lock.lock().unwrap();
    // `verify` in a mount namespace of its own where the vault is read-only.
    let ro_verify = || {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c"])
            .arg(r#"mount --bind -o ro "$1" "$1" && exec "$2" --config "$3" verify"#)
            .arg("sh")
            .arg(&vault)
            .arg(BIN)
            .arg(s.config())
            .env_remove("PLCVAULT_CONFIG");
        c
    };
    let mut reader = ro_verify()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        reader.try_wait().unwrap().is_none(),
        "the reader did not wait for the lock: {:?}",
        reader.wait_with_output()
    );
    lock.unlock().unwrap();
    let out = reader.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("waiting for the prune"), "{err}");
    // Without a lock file it cannot make there, the reader goes on but says so.
    std::fs::remove_file(vault.join("lock")).unwrap();
    let out = ro_verify().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("reading without the vault's lock"), "{err}");
}
