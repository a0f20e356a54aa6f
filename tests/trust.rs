//! Trust hardening, end to end (issue 8): the verifier's memory cannot be erased by normal
//! runs, a deleted or swapped vault is noticed, a file swapped during a collection is never
//! read from outside the device folder, and clocks cannot switch off the stale check.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Site;

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn kinds(r: &common::Run) -> Vec<String> {
    r.records("finding")
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn add_modbus(s: &Site, name: &str, addr: std::net::SocketAddr) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"{name}\"\nadapter = \"modbus\"\naddress = \"{addr}\"\ntimeout = \"500ms\"\nmax-requests-per-second = 500\n\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 50\nkind = \"recipe\"\n"
    ));
    std::fs::write(s.config(), text).unwrap();
}

/// Every writer (collect, drill, baseline approve) refuses a rolled-back log, and verify
/// keeps saying `rollback` until an approver signs a recovery.
fn rollback_is_refused_by_every_writer(s: &Site, device: &str) {
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", device]).code, 0);
    assert_eq!(s.approve(device, &alice, "CHG-1").code, 0);
    let old = s.path("old-vault");
    copy_dir(&s.vault(), &old);
    assert_eq!(s.run(&["collect", device]).code, 0);
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(auditor(s, &["verify"]).code, 0);

    // An older copy of the vault is put back.
    std::fs::remove_dir_all(s.vault()).unwrap();
    copy_dir(&old, &s.vault());
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 1);
    assert_eq!(kinds(&r), ["rollback"], "{}", r.stdout);

    for args in [
        vec!["collect", device],
        vec!["drill", device],
        vec![
            "baseline",
            "approve",
            device,
            "--snapshot",
            "latest",
            "--key",
            alice.to_str().unwrap(),
            "--ticket",
            "CHG-2",
        ],
    ] {
        let r = s.run(&args);
        assert_eq!(r.code, 2, "{args:?} must refuse: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("rollback") && r.stderr.contains("plcvault recover"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // Nothing was appended, and the memory still remembers the newer head.
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 1);
    assert_eq!(kinds(&r), ["rollback"], "{}", r.stdout);
    assert_eq!(r.records("verify")[0]["entries"], 2);

    // A collector key cannot recover; an approver can, with a reason.
    let collector = s.path("site/keys/collector.key");
    let r = s.run(&[
        "recover",
        "--key",
        collector.to_str().unwrap(),
        "--reason",
        "x",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = s.run(&[
        "--json",
        "recover",
        "--key",
        alice.to_str().unwrap(),
        "--reason",
        "restored the copy of Monday after the disk failed, INC-7",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("recovered")[0]["accepted"]["kind"], "rollback");
    assert_eq!(s.run(&["collect", device]).code, 0);
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Another verifier, which remembered the lost head, sees the signed acceptance as a note.
    let r = auditor(s, &["--json", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let notes = r.records("note");
    assert!(
        notes
            .iter()
            .any(|n| n["message"].as_str().unwrap().contains("accepted by alice")),
        "{}",
        r.stdout
    );
}

/// The same site seen by an auditor's verifier with a state folder of its own.
fn auditor(s: &Site, args: &[&str]) -> common::Run {
    let mut cfg = s.path("site/auditor.toml");
    if !cfg.exists() {
        cfg = s.config_with_state("auditor.toml", "auditor-state");
    }
    s.run_with(&cfg, args)
}

#[test]
fn files_rollback_is_refused_by_every_writer_until_recovered() {
    let s = Site::new();
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\n A I0.0\n = Q0.0\n");
    rollback_is_refused_by_every_writer(&s, "line1");
}

#[test]
fn pymodbus_rollback_is_refused_by_every_writer_until_recovered() {
    let Some(py) = common::pymodbus_available("pymodbus rollback") else {
        return;
    };
    let peer = common::Pymodbus::start(&py, serde_json::json!({"size": 100, "seed": 3}));
    let s = Site::new();
    add_modbus(&s, "pm", peer.addr);
    rollback_is_refused_by_every_writer(&s, "pm");
}

#[test]
fn the_newest_entry_renamed_away_is_a_rollback_and_refused() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    s.write("plant/a.awl", b"B");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.run(&["verify"]).code, 0);
    let newest = s.vault().join("log/00000000000000000002.entry");
    std::fs::rename(&newest, s.path("hidden.entry")).unwrap();
    let r = s.run(&["--json", "verify"]);
    // The signed checkpoint (log v2) covers the hidden entry too: it says so as well.
    assert_eq!(kinds(&r), ["rollback", "bad-checkpoint"], "{}", r.stdout);
    // Junk memory of some other vault in the state folder changes nothing.
    std::fs::write(
        s.path("site/state/0123456789abcdef0123456789abcdef.head"),
        b"junk",
    )
    .unwrap();
    let r = s.run(&["--json", "verify"]);
    assert_eq!(kinds(&r), ["rollback", "bad-checkpoint"], "{}", r.stdout);
    let r = s.run(&["collect", "line1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("entry 2"), "{}", r.stderr);
    assert!(!newest.exists(), "nothing was written in its place");
}

/// A vault deleted (or swapped for another) while the state remembers it: writers refuse,
/// verify names it, and only a signed recovery starts a new vault.
fn replaced_vault_is_noticed(s: &Site, device: &str) {
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", device]).code, 0);
    assert_eq!(s.run(&["verify"]).code, 0);

    // Swapped for another vault (from another site with the same keys).
    let other = s.path("other-vault");
    copy_dir(&s.vault(), &other);
    std::fs::remove_dir_all(s.vault()).unwrap();
    let r = s.run(&["collect", device]);
    assert_eq!(
        r.code, 2,
        "a missing remembered vault is not recreated silently"
    );
    assert!(
        r.stderr.contains("remembers vault") && r.stderr.contains("plcvault recover"),
        "{}",
        r.stderr
    );
    assert!(!s.vault().join("VAULT").exists());
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("remembers vault"), "{}", r.stderr);

    // A different vault put in its place is a finding, and not written to.
    let r = auditor(s, &["collect", device]);
    assert_eq!(
        r.code, 0,
        "a site whose state never saw a vault creates one: {}",
        r.stderr
    );
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 1);
    assert_eq!(kinds(&r), ["replaced-vault"], "{}", r.stdout);
    assert_eq!(s.run(&["collect", device]).code, 2);
    std::fs::remove_dir_all(s.vault()).unwrap();

    // Deliberately replaced: recorded in the new log, then writing goes on.
    let r = s.run(&[
        "recover",
        "--key",
        alice.to_str().unwrap(),
        "--reason",
        "vault disk lost, INC-9",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let first = std::fs::read_to_string(s.vault().join("log/00000000000000000001.entry")).unwrap();
    assert!(
        first.contains("\"type\":\"recovery\"") && first.contains("replaced-vault"),
        "{first}"
    );
    assert_eq!(s.run(&["collect", device]).code, 0);
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // The replaced vault coming back is not the vault the state knows now.
    let v2 = s.path("v2");
    std::fs::rename(s.vault(), &v2).unwrap();
    copy_dir(&other, &s.vault());
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(kinds(&r), ["replaced-vault"], "{}", r.stdout);
    assert_eq!(s.run(&["collect", device]).code, 2);
    // Even with the new vault's memory lost, the retired one stays retired.
    for f in common::files_under(&s.path("site/state")) {
        if f.extension().is_some_and(|e| e == "head") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let r = s.run(&["--json", "verify"]);
    assert_eq!(kinds(&r), ["replaced-vault"], "{}", r.stdout);
    let r = s.run(&["collect", device]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("come back"), "{}", r.stderr);
}

#[test]
fn files_deleted_or_swapped_vault_is_noticed() {
    let s = Site::new();
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\n A I0.0\n");
    replaced_vault_is_noticed(&s, "line1");
}

#[test]
fn pymodbus_deleted_or_swapped_vault_is_noticed() {
    let Some(py) = common::pymodbus_available("pymodbus replaced vault") else {
        return;
    };
    let peer = common::Pymodbus::start(&py, serde_json::json!({"size": 100, "seed": 4}));
    let s = Site::new();
    add_modbus(&s, "pm", peer.addr);
    replaced_vault_is_noticed(&s, "pm");
}

/// Runs plcvault with `args` and a deadline: a command that hangs (on a FIFO) fails the
/// test.
fn run_within(s: &Site, args: &[&str], limit: Duration) -> common::Run {
    let mut child = s
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("{args:?} hung for {limit:?} (on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    common::Run::from_output(child.wait_with_output().unwrap())
}

/// While collections run, one listed file keeps being swapped for a link to the
/// collector's private key and back, another for a FIFO and back: the key is never stored,
/// no collection hangs, and a swap makes the snapshot incomplete with a warning.
#[test]
fn files_swapped_during_collection_are_never_read_from_outside() {
    let s = Site::new();
    // Many files, so that listing and reading are far apart in time.
    for i in 0..400 {
        s.write(
            &format!("plant/blocks/FC{i:04}.awl"),
            format!("FC {i}\n").as_bytes(),
        );
    }
    s.write("plant/zz/OB1.awl", b"NETWORK 1\n A I0.0\n");
    s.write("plant/zz/OB2.awl", b"NETWORK 2\n A I0.1\n");
    let key = s.path("site/keys/collector.key");
    let key_bytes = std::fs::read(&key).unwrap();
    let stash = s.path("stash");
    std::fs::create_dir_all(&stash).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        let (ob1, ob2) = (s.path("plant/zz/OB1.awl"), s.path("plant/zz/OB2.awl"));
        let (link, fifo) = (stash.join("link"), stash.join("fifo"));
        let (real1, real2) = (stash.join("OB1.awl"), stash.join("OB2.awl"));
        let key = key.clone();
        std::thread::spawn(move || {
            let mut flips = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Swap out: the real files go to the stash, a link and a FIFO take their place.
                std::os::unix::fs::symlink(&key, &link).unwrap();
                std::process::Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .unwrap();
                std::fs::rename(&ob1, &real1).unwrap();
                std::fs::rename(&link, &ob1).unwrap();
                std::fs::rename(&ob2, &real2).unwrap();
                std::fs::rename(&fifo, &ob2).unwrap();
                std::thread::sleep(Duration::from_millis(3));
                // And back.
                std::fs::rename(&real1, &ob1).unwrap();
                std::fs::rename(&real2, &ob2).unwrap();
                std::thread::sleep(Duration::from_millis(3));
                flips += 1;
            }
            flips
        })
    };
    let mut swapped_warnings = 0;
    for _ in 0..15 {
        let r = run_within(&s, &["--json", "collect", "line1"], Duration::from_secs(60));
        assert!(r.code == 0 || r.code == 3, "{}", r.stderr);
        let dev = &r.records("device")[0];
        let warnings = dev["warnings"].to_string();
        if warnings.contains("was not stored") {
            swapped_warnings += 1;
            assert_eq!(dev["status"], "incomplete", "{dev}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 10, "the swapping ran ({flips} flips)");

    // No snapshot holds the key's bytes, whatever name they would have been stored under.
    let vault = vault::Vault::open(&s.vault()).unwrap();
    let cfg_keys = vault::PublicKey::load(&s.path("site/keys/collector.key.pub")).unwrap();
    let trust = vault::Trust::new(vec![vault::TrustedKey {
        name: "collector".into(),
        role: vault::Role::Collector,
        key: cfg_keys,
    }]);
    let history = vault::History::load(&vault, &trust).unwrap();
    let key_hash = vault::Hash::of(&key_bytes);
    let snaps = history.snapshots();
    assert_eq!(snaps.len(), 15);
    for snap in snaps {
        let m = vault::manifest::load(vault.root(), &snap.manifest).unwrap();
        for a in &m.artifacts {
            assert_ne!(
                a.sha256, key_hash,
                "the private key was stored as {}",
                a.name
            );
        }
    }
    eprintln!("{swapped_warnings} of 15 collections met a swapped file");
}

/// Signs and links an entry with a chosen time, as a writer with a wrong clock would.
fn append_dated(s: &Site, time: std::time::SystemTime) {
    let vault = vault::Vault::open(&s.vault()).unwrap();
    let key = vault::SecretKey::load(&s.path("site/keys/collector.key")).unwrap();
    let (seqs, _) = vault::log::list(vault.root()).unwrap();
    let last = *seqs.last().unwrap();
    let prev = vault::Hash::of(&std::fs::read(vault::log::entry_path(vault.root(), last)).unwrap());
    let header = vault::log::Header {
        v: 1,
        vault: vault.id().to_string(),
        seq: last + 1,
        prev: Some(prev),
        time: humantime::format_rfc3339_millis(time).to_string(),
        signer: key.public(),
    };
    let bytes = vault::log::encode(
        &header,
        &vault::log::Event::Heartbeat {
            note: "clock a year ahead".into(),
        },
        &key,
    );
    std::fs::write(vault::log::entry_path(vault.root(), last + 1), bytes).unwrap();
}

// Case 5: an entry dated a year ahead no longer switches off the stale check, and an
// entry dated before its predecessor is named.
#[test]
fn a_future_dated_entry_is_a_finding_and_ages_are_never_negative() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let year = Duration::from_secs(365 * 86400);
    append_dated(&s, std::time::SystemTime::now() + year);
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(kinds(&r), ["future-time"], "{}", r.stdout);
    // The next entry, from a correct clock, is compared with the newest entry not in the
    // future: no second finding for the same wrong clock.
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let r = s.run(&["--json", "verify"]);
    assert_eq!(kinds(&r), ["future-time"], "{}", r.stdout);
    // A clock that goes back against a sane entry is named.
    append_dated(
        &s,
        std::time::SystemTime::now() - Duration::from_secs(3 * 86400),
    );
    let r = s.run(&["--json", "verify"]);
    assert_eq!(
        kinds(&r),
        ["future-time", "time-backwards", "stale"],
        "{}",
        r.stdout
    );
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.code, 1);
    let dev = &r.records("device-status")[0];
    assert!(dev["alarms"].to_string().contains("log-integrity"), "{dev}");
    assert!(dev["backup_age_seconds"].as_u64().is_some(), "{dev}");
    // An approver accepts the clock error; verify then notes it instead.
    let alice = s.add_approver();
    let r = s.run(&[
        "recover",
        "--key",
        alice.to_str().unwrap(),
        "--reason",
        "RTC battery dead on the collector, NTP fixed, INC-3",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.records("note").len(), 2, "{}", r.stdout);
}

// Case 4: verify never races a writer into a false rollback.
#[test]
fn verify_during_collections_never_reports_a_false_rollback() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut cmd_args = vec![
            common::BIN.to_string(),
            "--config".into(),
            s.config().display().to_string(),
        ];
        cmd_args.extend(["collect".to_string(), "line1".to_string()]);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 200 {
                let st = std::process::Command::new(&cmd_args[0])
                    .args(&cmd_args[1..])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success());
                n += 1;
            }
            n
        })
    };
    let mut runs = 0;
    let t0 = Instant::now();
    while runs < 60 && t0.elapsed() < Duration::from_secs(60) {
        let r = s.run(&["--json", "verify"]);
        assert_eq!(r.code, 0, "verify run {runs}: {}", r.stdout);
        runs += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let collects = writer.join().unwrap();
    assert!(collects > 5, "the writer ran ({collects} collects)");
}

// Case 6: a damaged vault gives a report that says so, and the metrics file never keeps
// claiming an intact log.
#[test]
fn report_with_a_missing_manifest_reports_and_rewrites_the_metrics() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    let prom = s.path("metrics.prom");
    let prom_s = prom.to_str().unwrap();
    assert_eq!(s.run(&["report", "--prometheus", prom_s]).code, 1);
    assert!(
        std::fs::read_to_string(&prom)
            .unwrap()
            .contains("plcvault_log_intact 1")
    );
    for m in common::files_under(&s.vault().join("manifests")) {
        std::fs::remove_file(m).unwrap();
    }
    let r = s.run(&["--json", "report", "--prometheus", prom_s]);
    assert_eq!(r.code, 1, "report what it can: {}", r.stderr);
    let dev = &r.records("device-status")[0];
    assert!(
        dev["alarms"].to_string().contains("log-integrity")
            && dev["alarms"].to_string().contains("comparison-failed"),
        "{dev}"
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("plcvault_log_intact 0"), "{text}");

    // A vault that cannot be read at all: the metrics say so too.
    std::fs::remove_file(s.vault().join("VAULT")).unwrap();
    let r = s.run(&["report", "--prometheus", prom_s]);
    assert_eq!(r.code, 2);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("plcvault_report_success 0") && text.contains("plcvault_log_intact 0"),
        "{text}"
    );
}

// Case 7: numbers that made collect panic are refused by `config check`, naming the key;
// error texts name the value as written.
#[test]
fn out_of_range_numbers_are_refused_by_config_check() {
    for (key, value, expect) in [
        (
            "max-requests-per-second",
            "1e-300",
            "max-requests-per-second",
        ),
        ("max-requests-per-second", "nan", "max-requests-per-second"),
        ("timeout", "\"100000h\"", "timeout"),
        ("retries", "4000000000", "retries"),
        ("address", "\"127.0.0.1:99999\"", "port `99999`"),
    ] {
        let s = Site::new();
        let mut text = std::fs::read_to_string(s.config()).unwrap();
        let line = format!("{key} = {value}\n");
        let base = "\n[[device]]\nname = \"plc\"\nadapter = \"modbus\"\n";
        let mut dev = format!("{base}address = \"127.0.0.1:502\"\n");
        if key == "address" {
            dev = base.to_string();
        }
        text.push_str(&format!(
            "{dev}{line}\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 10\n"
        ));
        std::fs::write(s.config(), text).unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{key} = {value}: {}", r.stdout);
        assert!(r.stderr.contains(expect), "{key} = {value}: {}", r.stderr);
    }
    // stale-after = "0s" made the daemon write a heartbeat every few milliseconds.
    let s = Site::new();
    let text = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("stale-after = \"26h\"", "stale-after = \"0s\"");
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("stale-after"), "{}", r.stderr);
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str("\n[[device]]\nname = \"plc\"\nadapter = \"modbus\"\naddress = \"127.0.0.1:502\"\n\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 65536\n");
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("count 65536"), "{}", r.stderr);
}

// Case 8: verify with a state folder it cannot write still reports, then says so.
#[test]
fn verify_with_an_unwritable_state_folder_reports_and_says_so() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let ro = s.config_with_state("ro.toml", "/proc/plcvault-no-state");
    let r = s.run_with(&ro, &["--json", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("verify")[0]["clean"], true);
    assert!(
        r.records("note").iter().any(|n| n["message"]
            .as_str()
            .unwrap()
            .contains("could not be remembered")),
        "{}",
        r.stdout
    );
    // A writer refuses up front: nothing is committed whose head it could not remember.
    let r = s.run_with(&ro, &["collect", "line1"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("cannot be written"), "{}", r.stderr);
    assert!(!s.vault().join("log/00000000000000000002.entry").exists());
}

// Case 9: restore drops setuid, setgid and sticky bits unless asked.
#[test]
fn restore_drops_special_bits_unless_asked() {
    use std::os::unix::fs::PermissionsExt;
    let s = Site::new();
    s.write("plant/tool.sh", b"#!/bin/sh\n");
    std::fs::set_permissions(
        s.path("plant/tool.sh"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let out = s.path("r1");
    assert_eq!(
        s.run(&["restore", "line1", "--to", out.to_str().unwrap()])
            .code,
        0
    );
    let mode = std::fs::metadata(out.join("tool.sh"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o755);
    let out = s.path("r2");
    let r = s.run(&[
        "restore",
        "line1",
        "--to",
        out.to_str().unwrap(),
        "--keep-special-bits",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mode = std::fs::metadata(out.join("tool.sh"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o4755);
}

// Case 10: a FIFO or a folder in place of a vault file is damage, never a hang.
#[test]
fn a_fifo_or_folder_in_place_of_a_vault_file_is_damage_not_a_hang() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    s.write("plant/a.awl", b"B");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let entry = s.vault().join("log/00000000000000000002.entry");
    std::fs::remove_file(&entry).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&entry)
            .status()
            .unwrap()
            .success()
    );
    // The manifest of snapshot 1 becomes a folder.
    let first = std::fs::read_to_string(s.vault().join("log/00000000000000000001.entry")).unwrap();
    let body: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let manifest = s.vault().join(format!(
        "manifests/{}.json",
        body["manifest"].as_str().unwrap()
    ));
    std::fs::remove_file(&manifest).unwrap();
    std::fs::create_dir(&manifest).unwrap();
    let r = run_within(&s, &["--json", "verify"], Duration::from_secs(30));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let k = kinds(&r);
    assert!(k.contains(&"malformed-entry".to_string()), "{k:?}");
    assert!(k.contains(&"corrupt-manifest".to_string()), "{k:?}");
}

// Case 11: drills scratch under the state folder, and leftovers of killed drills go.
#[test]
fn drill_scratch_lives_under_the_state_folder_and_leftovers_are_removed() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    let drills = s.path("site/state/drills");
    // A drill killed midway left its folder and its lock file, which nobody holds now.
    let leftover = drills.join("plcvault-drill-killed");
    std::fs::create_dir_all(leftover.join("line1")).unwrap();
    std::fs::write(leftover.join("line1/a.awl"), vec![0u8; 1 << 20]).unwrap();
    std::fs::write(drills.join("plcvault-drill-killed.lock"), b"").unwrap();
    // Another drill is running (its lock is held), whatever its process is called.
    let running = drills.join("plcvault-drill-running");
    std::fs::create_dir_all(&running).unwrap();
    let lock = drills.join("plcvault-drill-running.lock");
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !lock.exists() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let r = s.run(&["drill", "line1"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&drills.display().to_string()),
        "{}",
        r.stderr
    );
    assert!(
        !leftover.exists(),
        "the leftover of a killed drill was removed"
    );
    assert!(running.exists(), "a running drill's folder is kept");
    let left: Vec<_> = std::fs::read_dir(&drills)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left.len(),
        2,
        "only the running drill's folder and lock: {left:?}"
    );
}

// Case 13: the weak spots.
#[test]
fn tampered_log_makes_diff_say_so_and_approve_refuse() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write("plant/a.awl", b"B");
    assert_eq!(s.run(&["collect", "line1"]).code, 1);
    assert_eq!(s.run(&["collect", "line1"]).code, 1);
    // An older snapshot entry is altered: its signature no longer verifies.
    let newest = s.vault().join("log/00000000000000000003.entry");
    let text = std::fs::read_to_string(&newest).unwrap();
    std::fs::write(&newest, text.replacen("\"line1\"", "\"line1 \"", 1)).unwrap();
    let r = s.run(&["diff", "line1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("integrity finding"), "{}", r.stderr);
    let r = s.approve("line1", &alice, "CHG-2");
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("refusing to"), "{}", r.stderr);
    // A snapshot the approver names can still be approved: a signed entry that was
    // altered can never be repaired, and must not block approvals for good.
    let first = s.run(&["--json", "snapshots", "line1"]).records("snapshot")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.run(&[
        "baseline",
        "approve",
        "line1",
        "--snapshot",
        &first,
        "--key",
        alice.to_str().unwrap(),
        "--ticket",
        "CHG-3",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("integrity finding"), "{}", r.stderr);
    let out = s.path("evidence");
    let r = s.run(&["evidence", "export", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("refusing to export"), "{}", r.stderr);
}

#[test]
fn evidence_is_not_exported_from_a_rolled_back_vault() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let old = s.path("old-vault");
    copy_dir(&s.vault(), &old);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.run(&["verify"]).code, 0);
    std::fs::remove_dir_all(s.vault()).unwrap();
    copy_dir(&old, &s.vault());
    let out = s.path("evidence");
    let r = s.run(&["evidence", "export", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("rollback"), "{}", r.stderr);
    assert!(!out.join("EVIDENCE.json").exists());
}

#[test]
fn one_key_trusted_twice_is_refused() {
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[trust]]\nname = \"alice\"\nrole = \"approver\"\npublic-key = \"{}\"\n",
        s.path("site/keys/collector.key.pub").display()
    ));
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("same public key") && r.stderr.contains("approve its own"),
        "{}",
        r.stderr
    );
}

#[test]
fn file_names_with_escape_sequences_are_shown_escaped() {
    let s = Site::new();
    s.write("plant/a\x1b[2Jb\u{202e}lmx.awl", b"A");
    let alice = s.add_approver();
    let forged = s.path("plant/b\nOK      fake: snapshot 000 (0 artifacts).awl");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write("plant/a\x1b[2Jb\u{202e}lmx.awl", b"B");
    let r = s.run(&["collect", "line1"]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stdout.contains('\x1b') && !r.stdout.contains('\u{202e}'),
        "{:?}",
        r.stdout
    );
    assert!(
        r.stdout.contains("a\\u{1b}[2Jb\\u{202e}lmx.awl"),
        "{}",
        r.stdout
    );
    // A newline in a name cannot forge a line of the output.
    std::fs::write(&forged, b"x").unwrap();
    let r = s.run(&["collect", "line1"]);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("OK      fake")),
        "{}",
        r.stdout
    );
}

// Issue 18, case 2: a name the format cannot hold never reaches a signed manifest.
#[test]
fn a_backslash_in_a_file_name_is_skipped_not_stored_into_a_damaged_vault() {
    let s = Site::new();
    s.write("plant/PLC1/OB1.awl", b"A I0.0\n");
    s.write("plant/PLC1/OB2\\x.awl", b"A I0.1\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let dev = &r.records("device")[0];
    assert_eq!(dev["status"], "incomplete", "{dev}");
    assert!(dev["warnings"].to_string().contains("backslash"), "{dev}");
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = s.path("restored");
    let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(out.join("PLC1/OB1.awl").exists());
}

// Issue 18, case 5: a file whose name is not UTF-8 makes the snapshot incomplete.
#[test]
fn a_name_that_is_not_utf8_makes_the_snapshot_incomplete() {
    use std::os::unix::ffi::OsStrExt;
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    let odd = s
        .path("plant")
        .join(std::ffi::OsStr::from_bytes(b"OB\xff.awl"));
    std::fs::write(odd, b"A I0.1\n").unwrap();
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(r.records("device")[0]["status"], "incomplete");
}

// Evidence certifies an intact vault, not only an intact log.
#[test]
fn evidence_is_not_exported_from_a_vault_with_a_damaged_manifest() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    for m in common::files_under(&s.vault().join("manifests")) {
        std::fs::write(m, b"{}").unwrap();
    }
    let out = s.path("evidence");
    let r = s.run(&["evidence", "export", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("refusing to export") && r.stderr.contains("corrupt-manifest"),
        "{}",
        r.stderr
    );
    assert!(!out.join("EVIDENCE.json").exists());
}

// An I/O error is named once, not repeated by the error chain.
#[test]
fn an_io_error_is_printed_once() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    for m in common::files_under(&s.vault().join("manifests")) {
        std::fs::remove_file(m).unwrap();
    }
    let out = s.path("restored");
    let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.matches("os error 2").count(), 1, "{}", r.stderr);
}

// Second red-team pass: one altered old entry made later, intact snapshots that reuse its
// chunks unrestorable (their pack was named only by the altered entry).
#[test]
fn a_damaged_old_entry_does_not_make_later_snapshots_unrestorable() {
    let s = Site::new();
    s.write("plant/hmi/panel.img", &common::noise(2 * 1024 * 1024, 9));
    s.write("plant/OB1.awl", b"A\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    s.write("plant/OB1.awl", b"B\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let first = s.vault().join("log/00000000000000000001.entry");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, text.replacen("\"time\":\"2", "\"time\":\"1", 1)).unwrap();
    let r = s.run(&["--json", "verify"]);
    // And the signed checkpoint's root (log v2) is no longer the log's tree.
    assert_eq!(
        kinds(&r),
        ["bad-signature", "broken-chain", "bad-checkpoint"],
        "{}",
        r.stdout
    );
    let out = s.path("restored");
    let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read(out.join("hmi/panel.img")).unwrap(),
        common::noise(2 * 1024 * 1024, 9)
    );
}

// Third red-team pass: a one-byte edit to an approval made collect compare with an older
// baseline (or with none) and exit 0.
#[test]
fn an_altered_approval_makes_the_comparison_suspect_not_quiet() {
    let s = Site::new();
    s.write("plant/PLC1/FB1.scl", b"A I0.0\n");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write("plant/PLC1/FB1.scl", b"A I0.1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 1);
    assert_eq!(s.approve("line1", &alice, "SAFETY-FIX").code, 0);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // The attacker alters the newest approval and puts the superseded program back.
    let approval = s.vault().join("log/00000000000000000004.entry");
    let text = std::fs::read_to_string(&approval).unwrap();
    assert!(text.contains("SAFETY-FIX"));
    std::fs::write(&approval, text.replace("SAFETY-FIX", "SAFETY-FIY")).unwrap();
    s.write("plant/PLC1/FB1.scl", b"A I0.0\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = r.records("finding");
    assert!(
        f.iter()
            .any(|x| x["change"] == "untrusted-log" && x["severity"] == "critical"),
        "{f:?}"
    );
    // A new approval after the damage clears the doubt.
    let id = s.run(&["--json", "snapshots", "line1"]).records("snapshot");
    let newest = id.last().unwrap()["id"].as_str().unwrap().to_string();
    let r = s.run(&[
        "baseline",
        "approve",
        "line1",
        "--snapshot",
        &newest,
        "--key",
        alice.to_str().unwrap(),
        "--ticket",
        "CHG-9",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = s.run(&["--json", "collect", "line1"]);
    assert!(
        !r.records("finding")
            .iter()
            .any(|x| x["change"] == "untrusted-log"),
        "{}",
        r.stdout
    );
}

#[test]
fn collect_that_cannot_compare_with_the_baseline_exits_1() {
    let s = Site::new();
    s.write("plant/PLC1/FB1.scl", b"A I0.0\n");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    for m in common::files_under(&s.vault().join("manifests")) {
        std::fs::remove_file(m).unwrap();
    }
    s.write("plant/PLC1/FB1.scl", b"A I0.0 OR TRUE\n");
    let r = s.run(&["collect", "line1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("could not compare"), "{}", r.stdout);
}

// A snapshot dated ahead of the clock (even one accepted in a recovery) is not "the last
// backup": alarms look at backups dated before now.
#[test]
fn a_future_dated_snapshot_is_not_a_recent_backup() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // Entry 2: the same snapshot, signed with a clock a year ahead.
    let vault = vault::Vault::open(&s.vault()).unwrap();
    let key = vault::SecretKey::load(&s.path("site/keys/collector.key")).unwrap();
    let first = vault::log::entry_path(vault.root(), 1);
    let bytes = std::fs::read(&first).unwrap();
    let e = vault::log::parse(1, &first, &bytes).unwrap();
    let header = vault::log::Header {
        seq: 2,
        prev: Some(vault::Hash::of(&bytes)),
        time: humantime::format_rfc3339_millis(
            std::time::SystemTime::now() + Duration::from_secs(365 * 86400),
        )
        .to_string(),
        ..e.header.clone()
    };
    let entry = vault::log::encode(&header, e.event.as_ref().unwrap(), &key);
    std::fs::write(vault::log::entry_path(vault.root(), 2), entry).unwrap();
    let mut cfg = std::fs::read_to_string(s.config()).unwrap();
    cfg.push_str("\n[report]\nbackup-max-age = \"1ms\"\n");
    std::fs::write(s.config(), cfg).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let r = s.run(&["--json", "report"]);
    let dev = &r.records("device-status")[0];
    assert!(
        dev["alarms"].to_string().contains("backup-too-old"),
        "{dev}"
    );
    assert_eq!(dev["last_good_backup"]["seq"], 1, "{dev}");
}

#[test]
fn verify_evidence_never_hangs_or_reads_without_end() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let ev = s.path("evidence");
    let r = s.run(&["evidence", "export", "--out", ev.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::remove_file(ev.join("report.html")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", ev.join("report.html")).unwrap();
    std::fs::remove_file(ev.join("report.json")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(ev.join("report.json"))
            .status()
            .unwrap()
            .success()
    );
    let r = run_within(
        &s,
        &["verify", "--evidence", ev.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("report.html") && r.stdout.contains("report.json"),
        "{}",
        r.stdout
    );
}

/// A FIFO in place of a lock file (the catalog's, the tree's) is damage, never a hang.
#[test]
fn a_fifo_in_place_of_a_lock_file_never_hangs_a_command() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let id = vault::Vault::open(&s.vault()).unwrap().id().to_string();
    let mkfifo = |p: &std::path::Path| {
        let _ = std::fs::remove_file(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap()
                .success()
        );
    };
    mkfifo(&s.path(&format!("site/state/{id}.catalog/lock")));
    let r = run_within(&s, &["snapshots", "line1"], Duration::from_secs(30));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    mkfifo(&s.vault().join("tlog/lock"));
    s.write("plant/a.awl", b"B");
    let r = run_within(&s, &["collect", "line1"], Duration::from_secs(30));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run_within(&s, &["--json", "verify"], Duration::from_secs(30));
    assert!(
        r.stdout.contains("after the signed checkpoint"),
        "{}",
        r.stdout
    );
    // Put right, the next write catches up.
    std::fs::remove_file(s.vault().join("tlog/lock")).unwrap();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.run(&["verify"]).code, 0);
}

#[test]
fn a_damaged_memory_still_stops_a_silent_new_vault() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let id = vault::Vault::open(&s.vault()).unwrap().id().to_string();
    std::fs::write(
        s.path(&format!("site/state/{id}.head")),
        b"{\"seq\": 4, \"hash\": \"zz\"",
    )
    .unwrap();
    std::fs::remove_dir_all(s.vault()).unwrap();
    let r = s.run(&["collect", "line1"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(!s.vault().join("VAULT").exists());
    let alice = s.add_approver();
    let r = s.run(&[
        "recover",
        "--key",
        alice.to_str().unwrap(),
        "--reason",
        "disk lost",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.run(&["verify"]).code, 0);
}

#[test]
fn report_with_a_broken_config_still_rewrites_the_metrics() {
    let s = Site::new();
    s.write("plant/a.awl", b"A");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let prom = s.path("ok.prom");
    s.run(&["report", "--prometheus", prom.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&prom)
            .unwrap()
            .contains("plcvault_report_success 1")
    );
    let mut cfg = std::fs::read_to_string(s.config()).unwrap();
    cfg.push_str("\nbogus = 1\n");
    std::fs::write(s.config(), cfg).unwrap();
    let r = s.run(&["report", "--prometheus", prom.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("plcvault_report_success 0") && text.contains("plcvault_log_intact 0"),
        "{text}"
    );
}

// Fourth red-team pass: readers (diff, snapshots) quietly used older entries when the
// newest were deleted; the remembered head says they are missing.
#[test]
fn diff_on_a_log_cut_below_the_remembered_head_is_suspect() {
    let s = Site::new();
    s.write("plant/PLC1/FB1.scl", b"A I0.0\n");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write("plant/PLC1/FB1.scl", b"A I0.1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 1);
    assert_eq!(s.approve("line1", &alice, "CHG-2").code, 0);
    std::fs::remove_file(s.vault().join("log/00000000000000000004.entry")).unwrap();
    let r = s.run(&["--json", "diff", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.records("finding")
            .iter()
            .any(|f| f["change"] == "untrusted-log"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("rollback"), "{}", r.stderr);
    let r = s.run(&["snapshots", "line1"]);
    assert!(r.stderr.contains("may be missing"), "{}", r.stderr);
}

// Fourth red-team pass: a validly signed entry from an older copy of the vault, put in
// place of the newest approval, silently removed it (only the chain breaks).
#[test]
fn an_entry_spliced_in_from_an_older_copy_makes_the_comparison_suspect() {
    let s = Site::new();
    s.write("plant/PLC1/FB1.scl", b"A I0.0\n");
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    copy_dir(&s.vault(), &s.path("site/vault-old"));
    // The older copy grows a branch of its own (entries 3 and 4, validly signed).
    let old_cfg = s.config_with_state("old.toml", "state-old");
    let text = std::fs::read_to_string(&old_cfg)
        .unwrap()
        .replace("path = \"vault\"", "path = \"vault-old\"");
    std::fs::write(&old_cfg, text).unwrap();
    assert_eq!(s.run_with(&old_cfg, &["collect", "line1"]).code, 0);
    assert_eq!(s.run_with(&old_cfg, &["collect", "line1"]).code, 0);
    // The real vault: a new program, approved as entry 4, then a night (entry 5).
    s.write("plant/PLC1/FB1.scl", b"A I0.1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 1);
    assert_eq!(s.approve("line1", &alice, "CHG-2").code, 0);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // The attacker puts the old branch's entry 4 over the approval, and the old program back.
    std::fs::copy(
        s.path("site/vault-old/log/00000000000000000004.entry"),
        s.vault().join("log/00000000000000000004.entry"),
    )
    .unwrap();
    s.write("plant/PLC1/FB1.scl", b"A I0.0\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.records("finding")
            .iter()
            .any(|f| f["change"] == "untrusted-log" && f["severity"] == "critical"),
        "{}",
        r.stdout
    );
}
