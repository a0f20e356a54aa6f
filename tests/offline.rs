//! Offline copies (issue 13 item 3): `plcvault copy --to DIR` writes a whole replica on
//! removable media, only what is missing, each file read back; the replica verifies and
//! restores on another machine with the public keys alone; a signed `copy` entry records
//! it and `report` shows each disk and raises `no-offline-copy`; a replica of another
//! vault, a forked one, or a folder inside the vault is refused; a kill never leaves the
//! vault damaged and the next copy completes.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Site, noise};

/// A config reading `dir` as its vault, with its own state and the site's keys: what an
/// auditor or a recovery host has.
fn reader_config(s: &Site, dir: &Path, name: &str) -> PathBuf {
    let cfg = s.path(&format!("site/{name}.toml"));
    let text = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("path = \"vault\"", &format!("path = \"{}\"", dir.display()))
        .replace("state = \"state\"", &format!("state = \"state-{name}\""));
    assert!(text.contains(&dir.display().to_string()), "{text}");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn copy(s: &Site, to: &Path, extra: &[&str]) -> common::Run {
    let mut args = vec!["--json", "copy", "--to", to.to_str().unwrap()];
    args.extend_from_slice(extra);
    s.run(&args)
}

#[test]
fn a_replica_on_removable_media_verifies_and_restores_elsewhere_and_the_report_shows_each_disk() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n");
    s.write("plant/hmi/panel.img", &noise(300_000, 3));
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // Told while there is none, when the site asks for offline copies.
    let text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(
        s.config(),
        text.replacen(
            "[vault]\n",
            "[report]\noffline-max-age = \"1h\"\n\n[vault]\n",
            1,
        ),
    )
    .unwrap();
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("site-alarm")[0]["alarm"], "no-offline-copy");

    let usb = s.path("usb-a");
    let r = copy(&s, &usb, &["--label", "disk A"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let c = &r.records("copy")[0];
    assert_eq!(c["report"]["new_replica"], true);
    assert_eq!(c["report"]["size"], 1);
    let disk_a = c["report"]["disk"].as_str().unwrap().to_string();
    // The replica's log and checkpoint are the vault's (the copy entry came after).
    for f in ["VAULT", "tlog/checkpoint", "log/00000000000000000001.entry"] {
        let ours = std::fs::read(s.vault().join(f)).unwrap();
        let theirs = std::fs::read(usb.join(f)).unwrap();
        if f == "tlog/checkpoint" {
            assert_ne!(ours, theirs, "the vault signed the copy entry since");
        } else {
            assert_eq!(ours, theirs, "{f}");
        }
    }
    let r = s.run(&["--json", "report"]);
    // (The device's own alarms, no baseline and no drill, stay.)
    assert!(r.records("site-alarm").is_empty(), "{}", r.stdout);
    let disks = r.records("offline-copy");
    assert_eq!(disks.len(), 1);
    assert_eq!(disks[0]["label"], "disk A");
    assert_eq!(disks[0]["behind"], 1, "the copy entry itself");

    // Incremental: only what is new is written; a second disk has its own id.
    s.write("plant/OB1.awl", b"NETWORK 1\n AN I 0.0\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let r = copy(&s, &usb, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let c = &r.records("copy")[0]["report"];
    assert_eq!(c["new_replica"], false);
    assert_eq!(c["disk"], disk_a.as_str());
    assert!(c["present"].as_u64().unwrap() >= 3, "{c}");
    assert!(
        c["bytes"].as_u64().unwrap() < 100_000,
        "the 300 kB image was not copied again: {c}"
    );
    let usb_b = s.path("usb-b");
    let r = copy(&s, &usb_b, &["--label", "disk B"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_ne!(r.records("copy")[0]["report"]["disk"], disk_a.as_str());
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.records("offline-copy").len(), 2);
    let html = s.path("audit.html");
    assert!(s.run(&["report", "--html", html.to_str().unwrap()]).code <= 1);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Offline copies") && page.contains("disk B"),
        "{page}"
    );

    // Elsewhere: the replica verifies with the pinned keys and restores byte-exact.
    let other = reader_config(&s, &usb, "recovery-host");
    let r = s.run_with(&other, &["--json", "verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = s.path("restored");
    let r = s.run_with(&other, &["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read(out.join("OB1.awl")).unwrap(),
        b"NETWORK 1\n AN I 0.0\n"
    );
    assert_eq!(
        std::fs::read(out.join("hmi/panel.img")).unwrap(),
        noise(300_000, 3)
    );

    // Bit rot on the medium: a plain copy takes a file of the right size as there;
    // `--check` reads everything again and rewrites what differs.
    let pack = common::files_under(&usb.join("packs"))
        .into_iter()
        .map(|p| usb.join("packs").join(p))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut b = std::fs::read(&pack).unwrap();
    b[1000] ^= 0x10;
    std::fs::write(&pack, &b).unwrap();
    let r = s.run_with(&other, &["verify", "--read-data"]);
    assert_eq!(r.code, 1, "the damage is found: {}", r.stdout);
    let r = copy(&s, &usb, &["--check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.records("copy")[0]["report"]["written"].as_u64().unwrap() >= 1);
    let r = s.run_with(&other, &["verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // Older than the limit: the alarm again.
    let text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(
        s.config(),
        text.replace("offline-max-age = \"1h\"", "offline-max-age = \"1s\""),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.records("site-alarm")[0]["alarm"], "no-offline-copy");
    let prom = s.path("metrics.prom");
    s.run(&["report", "--prometheus", prom.to_str().unwrap()]);
    let m = std::fs::read_to_string(&prom).unwrap();
    assert!(
        m.contains("plcvault_alarm{device=\"\",alarm=\"no-offline-copy\"} 1")
            && m.contains("plcvault_offline_copy_age_seconds{disk="),
        "{m}"
    );
}

#[test]
fn a_copy_over_something_else_or_a_fork_is_refused_and_nothing_is_signed() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let entries = |s: &Site| common::files_under(&s.vault().join("log")).len();
    let before = entries(&s);
    // A folder with other things in it.
    s.write("stuff/notes.txt", b"x");
    let r = copy(&s, &s.path("stuff"), &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not empty and holds no vault"),
        "{}",
        r.stderr
    );
    // A folder inside the vault.
    let r = copy(&s, &s.vault().join("mirror"), &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("inside one another"), "{}", r.stderr);
    assert!(
        !s.vault().join("mirror").exists(),
        "nothing made in the vault"
    );
    // A label that would print lines of its own.
    let r = copy(
        &s,
        &s.path("usb-label"),
        &["--label", "A\nlog intact: 999 entries"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    // A replica whose packs folder links back into the vault would hold nothing.
    let linked = s.path("usb-linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(s.vault().join("packs"), linked.join("packs")).unwrap();
    let r = copy(&s, &linked, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is a link"), "{}", r.stderr);
    // A first copy killed right after naming the medium is finished by the next.
    let cut = s.path("usb-cut");
    std::fs::create_dir_all(cut.join("tmp")).unwrap();
    std::fs::write(
        cut.join("REPLICA"),
        "plcvault replica\nid 0123456789abcdef0123456789abcdef\ncreated 2026-12-01T00:00:00Z\n",
    )
    .unwrap();
    let r = copy(&s, &cut, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.records("copy")[0]["report"]["disk"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(entries(&s), before + 1, "that copy was signed");

    // The replica of another vault.
    let other = Site::new();
    other.write("plant/a.awl", b"A");
    assert_eq!(other.run(&["collect", "line1"]).code, 0);
    let usb = s.path("usb");
    assert_eq!(copy(&other, &usb, &[]).code, 0);
    let r = copy(&s, &usb, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("replica of another vault"),
        "{}",
        r.stderr
    );

    // A fork: the replica holds a state this vault does not extend.
    let fork = s.path("site/vault-fork");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(s.vault())
        .arg(&fork)
        .status()
        .unwrap();
    assert!(st.success());
    let forked = reader_config(&s, &fork, "fork");
    s.write("plant/OB1.awl", b"NETWORK 1\n AN I 0.1\n");
    assert_eq!(s.run_with(&forked, &["collect", "line1"]).code, 0);
    let usb2 = s.path("usb2");
    assert_eq!(copy_with(&s, &forked, &usb2).code, 0);
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.2\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let before = entries(&s);
    let r = copy(&s, &usb2, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("does not extend"), "{}", r.stderr);
    assert_eq!(entries(&s), before, "nothing signed");
    // The fork's replica with its checkpoint gone: its entries are still never replaced.
    let fork_entry = std::fs::read(usb2.join("log/00000000000000000002.entry")).unwrap();
    std::fs::remove_file(usb2.join("tlog/checkpoint")).unwrap();
    let r = copy(&s, &usb2, &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("another history"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(usb2.join("log/00000000000000000002.entry")).unwrap(),
        fork_entry
    );
    assert_eq!(entries(&s), before, "nothing signed");
}

fn copy_with(s: &Site, cfg: &Path, to: &Path) -> common::Run {
    s.run_with(cfg, &["copy", "--to", to.to_str().unwrap()])
}

#[test]
fn sigkill_during_copy_never_damages_the_vault_and_the_next_copy_completes() {
    let s = Site::new();
    for i in 0..6 {
        s.write(&format!("plant/img{i}.bin"), &noise(2_000_000, i + 1));
    }
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let usb = s.path("usb");
    let t0 = Instant::now();
    let probe = s.path("probe");
    assert_eq!(copy(&s, &probe, &[]).code, 0);
    let full = t0.elapsed().as_micros() as u64;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut killed = 0;
    for round in 0..30u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if round % 5 == 0 {
            s.write("plant/recipe.csv", format!("fill;{round}\n").as_bytes());
            assert!(s.run(&["collect", "line1"]).code <= 1);
        }
        let mut child = s
            .command(&["-q", "copy", "--to", usb.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng % (full + 1)));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();
        let r = s.run(&["verify"]);
        assert_eq!(
            r.code, 0,
            "round {round}: the vault after a killed copy: {}",
            r.stdout
        );
    }
    assert!(killed >= 10, "only {killed} kills hit a running copy");
    let r = copy(&s, &usb, &[]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let other = reader_config(&s, &usb, "recovery-host");
    let r = s.run_with(&other, &["verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = s.path("restored");
    let r = s.run_with(&other, &["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for i in 0..6 {
        assert_eq!(
            std::fs::read(out.join(format!("img{i}.bin"))).unwrap(),
            noise(2_000_000, i + 1)
        );
    }
}
