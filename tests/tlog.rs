//! Log v2 (issue 12) checked by an implementation nobody here wrote: Go's checksum
//! database code (`golang.org/x/mod/sumdb/note` and `tlog`, Debian's
//! golang-golang-x-mod-dev), built by this test from `tests/peers/tlogcheck`. It opens our
//! signed checkpoint with the collector's public key, recomputes the Merkle tree from the
//! entry files, compares every tile byte for byte, and checks the inclusion and
//! consistency proofs `plcvault proof` prints. A tampered entry or proof fails it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Site;

/// Builds the Go checker into `dir`; `None` (saying so) when Go or golang.org/x/mod is
/// not installed, which `PLCVAULT_REQUIRE_PEERS=1` makes a failure.
fn checker(dir: &Path, test: &str) -> Option<PathBuf> {
    let xmod = Path::new("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog/tlog.go");
    let go = Command::new("go").arg("version").output();
    if !xmod.exists() || !go.is_ok_and(|o| o.status.success()) {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: Go and golang.org/x/mod are required; run `bash tests/run.sh` (Debian: golang-go golang-golang-x-mod-dev)"
        );
        eprintln!("SKIPPED {test}: Go's sumdb packages not installed (run `bash tests/run.sh`)");
        return None;
    }
    let src = dir.join("gopath/src/tlogcheck");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/tlogcheck/main.go"),
        src.join("main.go"),
    )
    .unwrap();
    let bin = dir.join("tlogcheck");
    let out = Command::new("go")
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "off")
        .env(
            "GOPATH",
            format!("{}:/usr/share/gocode", dir.join("gopath").display()),
        )
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(bin)
}

/// The vault id and the collector's public key (hex), and the note key name the
/// checkpoint is signed under.
fn collector(s: &Site) -> (String, String) {
    let vault = std::fs::read_to_string(s.vault().join("VAULT")).unwrap();
    let id = vault
        .lines()
        .find_map(|l| l.strip_prefix("id "))
        .unwrap()
        .to_string();
    let pubfile = std::fs::read_to_string(s.path("site/keys/collector.key.pub")).unwrap();
    let hex = pubfile.split_whitespace().nth(1).unwrap().to_string();
    (format!("plcvault/{id}/{}", &hex[..16]), hex)
}

fn go_check(bin: &Path, s: &Site, proofs: &[PathBuf]) -> (bool, String) {
    let (name, hex) = collector(s);
    let out = Command::new(bin)
        .arg(s.vault())
        .arg(&name)
        .arg(&hex)
        .args(proofs)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn go_checks_our_checkpoint_tiles_and_proofs_and_catches_tampering() {
    let s = Site::new();
    let Some(bin) = checker(s.dir.path(), "go_checks_our_checkpoint_tiles_and_proofs") else {
        return;
    };
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n = Q 4.0\n");
    // 130 devices collected twice: 260 entries, past the first full tile of 256.
    for i in 1..130 {
        s.add_device(&format!("plc{i:03}"), "plant");
    }
    for _ in 0..2 {
        let r = s.run(&["collect", "--all"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    let mut proofs = Vec::new();
    for (i, args) in [
        vec!["proof", "inclusion", "1"],
        vec!["proof", "inclusion", "200"],
        vec!["proof", "inclusion", "260"],
        vec!["proof", "consistency", "--from", "7"],
        vec!["proof", "consistency", "--from", "256"],
        vec!["proof", "consistency", "--from", "260"],
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = vec!["--json"];
        a.extend(args);
        let r = s.run(&a);
        assert_eq!(r.code, 0, "{a:?}: {}{}", r.stdout, r.stderr);
        let p = s.path(&format!("proof{i}.json"));
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("\"type\":\"proof\""))
            .unwrap()
            .to_string();
        std::fs::write(&p, line).unwrap();
        proofs.push(p);
    }
    // Entries 1 to 256 are in a C2SP entry bundle now; 257 to 260 are loose.
    assert!(s.vault().join("tlog/tile/entries/000").exists());
    assert!(!s.vault().join("log/00000000000000000256.entry").exists());
    assert!(s.vault().join("log/00000000000000000257.entry").exists());
    let (ok, text) = go_check(&bin, &s, &proofs);
    assert!(ok, "{text}");
    for line in [
        "ok checkpoint signature",
        "size 260",
        "ok root",
        "ok 3 tiles",
        "ok inclusion of entry 1 in 260",
        "ok inclusion of entry 260 in 260",
        "ok consistency 7 -> 260",
        "ok consistency 256 -> 260",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }

    // The worked example of FORMAT.md, by hand: Python's hashlib and PyNaCl check the
    // checkpoint's signature and entry 200's proof.
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if py.exists() {
        let p: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&proofs[1]).unwrap()).unwrap();
        let hashes: Vec<String> = p["data"]["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect();
        let (_, hex) = collector(&s);
        let out = Command::new(&py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/check_inclusion.py"))
            .arg(s.vault())
            .arg(&hex)
            .arg("200")
            .args(&hashes)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && text.contains("entry 200 is in the tree of 260 entries"),
            "{text}"
        );
        // One hash changed: refused.
        let mut bent = hashes.clone();
        bent[0] = format!("{:0>64}", "1");
        let out = Command::new(&py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/check_inclusion.py"))
            .arg(s.vault())
            .arg(&hex)
            .arg("200")
            .args(&bent)
            .output()
            .unwrap();
        assert!(!out.status.success());
    } else {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "PyNaCl in .venv is required; run `bash tests/run.sh`"
        );
        eprintln!("SKIPPED the FORMAT.md worked example: no .venv (run `bash tests/run.sh`)");
    }

    // A proof with one hash changed is refused by Go.
    let bent = std::fs::read_to_string(&proofs[1]).unwrap();
    let at = bent.find("\"proof\":[\"").unwrap() + 10;
    let flip = if &bent[at..at + 1] == "0" { "1" } else { "0" };
    let bent = format!("{}{flip}{}", &bent[..at], &bent[at + 1..]);
    std::fs::write(&proofs[1], bent).unwrap();
    let (ok, text) = go_check(&bin, &s, &proofs[1..2]);
    assert!(
        !ok && text.contains("FAIL inclusion of entry 200"),
        "{text}"
    );

    // An entry rewritten after the checkpoint was signed: Go's root differs, and our own
    // verify reports the checkpoint.
    let e = s.vault().join("log/00000000000000000258.entry");
    let mut b = std::fs::read(&e).unwrap();
    b[10] ^= 0x01;
    std::fs::write(&e, &b).unwrap();
    let (ok, text) = go_check(&bin, &s, &[]);
    assert!(!ok && text.contains("FAIL root"), "{text}");
    let r = s.run(&["--json", "verify"]);
    assert!(
        r.records("finding")
            .iter()
            .any(|f| f["kind"] == "bad-checkpoint"),
        "{}",
        r.stdout
    );
}

/// Copies a folder tree.
/// A config for a copy of the vault at `site/vault-b`, with its own state: another writer.
fn fork_config(s: &Site) -> PathBuf {
    let fork = s.path("site/fork.toml");
    std::fs::write(
        &fork,
        std::fs::read_to_string(s.config())
            .unwrap()
            .replace("path = \"vault\"", "path = \"vault-b\"")
            .replace("state = \"state\"", "state = \"state-b\""),
    )
    .unwrap();
    fork
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

// Two writers given the same old vault: each extends it with its own entry. A witness
// that cosigned one of them refuses the other, and says so as a critical finding; the
// vault it cosigned verifies with `witnesses = 1`.
#[test]
fn a_forked_log_is_found_by_a_witness_and_witnessed_checkpoints_verify() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n = Q 4.0\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // The witness host's key, trusted by the site with role witness, one cosignature asked.
    let key = s.add_key("central", "witness", "the central witness");
    let text = std::fs::read_to_string(s.config()).unwrap().replacen(
        "[vault]\n",
        "[vault]\nwitnesses = 1\nwitness-grace = \"1h\"\n",
        1,
    );
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&[
        "keygen",
        "--out",
        s.path("w2.key").to_str().unwrap(),
        "--role",
        "witness",
    ]);
    assert!(r.stdout.contains("role = \"witness\""), "{}", r.stdout);
    // The witness keeps its own memory.
    let witness = s.config_with_state("witness.toml", "witness-state");
    let r = s.run_with(
        &witness,
        &["witness", "cosign", "--key", key.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("cosigned the checkpoint of 1 entries"),
        "{}",
        r.stdout
    );
    assert_eq!(s.run(&["verify"]).code, 0);

    // The fork: a copy of the vault, written to by another writer.
    copy_tree(&s.vault(), &s.path("site/vault-b"));
    let fork = fork_config(&s);
    s.write("plant/OB1.awl", b"NETWORK 1\n AN I 0.0\n = Q 4.0\n");
    let r = s.run_with(&fork, &["collect", "line1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.1\n = Q 4.0\n");
    let r = s.run(&["collect", "line1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // The witness sees the real vault first and cosigns it...
    let r = s.run_with(
        &witness,
        &["witness", "cosign", "--key", key.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // ...then is shown the fork, of the same size with another root: refused, critical.
    let witness_b = s.path("site/witness-b.toml");
    std::fs::write(
        &witness_b,
        std::fs::read_to_string(&witness)
            .unwrap()
            .replace("path = \"vault\"", "path = \"vault-b\""),
    )
    .unwrap();
    let r = s.run_with(
        &witness_b,
        &[
            "--json",
            "witness",
            "cosign",
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let f = r.records("finding");
    assert!(
        f.iter().any(|x| x["kind"] == "fork"
            && x["message"]
                .as_str()
                .unwrap()
                .contains("cannot be true together with the one of 2 entries")),
        "{}",
        r.stdout
    );
    assert!(
        !s.path("site/vault-b/tlog/witnessed/00000000000000000002.checkpoint")
            .exists(),
        "the fork was not cosigned"
    );
    // The witnessed vault verifies; the fork, with the real vault's witnessed
    // checkpoint put beside it, is caught by its own verify.
    assert_eq!(s.run(&["verify"]).code, 0);
    std::fs::create_dir_all(s.path("site/vault-b/tlog/witnessed")).unwrap();
    std::fs::copy(
        s.vault()
            .join("tlog/witnessed/00000000000000000002.checkpoint"),
        s.path("site/vault-b/tlog/witnessed/00000000000000000002.checkpoint"),
    )
    .unwrap();
    let r = s.run_with(&fork, &["--json", "verify"]);
    assert!(
        r.records("finding")
            .iter()
            .any(|x| x["kind"] == "bad-checkpoint"
                && x["message"]
                    .as_str()
                    .unwrap()
                    .contains("forked or rewritten")),
        "{}",
        r.stdout
    );
}

// A vault from before log v2 (no tlog/): `upgrade` builds the tree from the entries and
// changes no entry; verify agrees, and the Go checker accepts the result.
#[test]
fn upgrade_gives_an_old_vault_its_tree_and_changes_no_entry() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n");
    for i in 0..3 {
        s.write(
            "plant/OB1.awl",
            format!("NETWORK 1\n A I 0.{i}\n").as_bytes(),
        );
        assert_eq!(s.run(&["collect", "line1"]).code, 0);
    }
    std::fs::remove_dir_all(s.vault().join("tlog")).unwrap();
    let entries: Vec<Vec<u8>> = (1..=3)
        .map(|n| std::fs::read(s.vault().join(format!("log/{n:020}.entry"))).unwrap())
        .collect();
    let r = s.run(&["--json", "verify"]);
    assert!(
        r.stdout.contains("no signed checkpoint yet"),
        "{}",
        r.stdout
    );
    let r = s.run(&["upgrade"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("built the log's Merkle tree: 3 entries"),
        "{}",
        r.stdout
    );
    for (i, e) in entries.iter().enumerate() {
        let now = std::fs::read(s.vault().join(format!("log/{:020}.entry", i + 1))).unwrap();
        assert_eq!(&now, e, "entry {}", i + 1);
    }
    assert_eq!(s.run(&["verify"]).code, 0);
    let r = s.run(&["upgrade"]);
    assert!(r.stdout.contains("brought up to date"), "{}", r.stdout);
    if let Some(bin) = checker(s.dir.path(), "upgrade_gives_an_old_vault_its_tree") {
        let (ok, text) = go_check(&bin, &s, &[]);
        assert!(ok && text.contains("size 3"), "{text}");
    }
}

/// The auditor's machine: a config of the site's public keys alone (no vault, no private
/// key). Returns its path.
fn auditor(s: &Site, keys: &[(&str, &str)]) -> PathBuf {
    let dir = s.path("auditor");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = String::new();
    for (name, role) in keys {
        let file = format!("{name}.key.pub");
        std::fs::copy(s.path("site/keys").join(&file), dir.join(&file)).unwrap();
        cfg.push_str(&format!(
            "[[trust]]\nname = \"{name}\"\nrole = \"{role}\"\npublic-key = \"{file}\"\n\n"
        ));
    }
    std::fs::write(dir.join("plcvault.toml"), cfg).unwrap();
    dir.join("plcvault.toml")
}

/// `evidence export` with `args`, into `dir`; the JSON record.
fn export(s: &Site, dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "--json",
        "evidence",
        "export",
        "--out",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let r = s.run(&all);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r.records("evidence")[0].clone()
}

/// `verify --evidence DIR [args]` on the auditor's config: exit code, the JSON summary
/// and the findings' messages.
fn audit(s: &Site, cfg: &Path, dir: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["--json", "verify", "--evidence", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let r = s.run_with(cfg, &all);
    let findings: Vec<String> = r
        .records("finding")
        .iter()
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect();
    let summary = r
        .records("verify-evidence")
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("{}{}", r.stdout, r.stderr));
    (r.code, summary, findings.join("\n"))
}

/// The bytes of an evidence folder without its report (which grows with the fleet).
fn proof_bytes(dir: &Path) -> u64 {
    common::files_under(dir)
        .iter()
        .filter(|p| !p.to_string_lossy().contains("report."))
        .map(|p| std::fs::metadata(dir.join(p)).unwrap().len())
        .sum()
}

/// What a compromised collector host can do to an evidence folder: change its files and
/// sign the index again with the collector's key, so that only the proofs can tell.
fn reseal(s: &Site, dir: &Path) {
    let key = vault::SecretKey::load(&s.path("site/keys/collector.key")).unwrap();
    let body = std::fs::read(dir.join("EVIDENCE.json")).unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut files = Vec::new();
    for p in common::files_under(dir) {
        let name = p.to_string_lossy().into_owned();
        if name == "EVIDENCE.json" || name == "EVIDENCE.sig" {
            continue;
        }
        let bytes = std::fs::read(dir.join(&p)).unwrap();
        files.push(serde_json::json!({"path": name, "sha256": vault::Hash::of(&bytes).to_hex(), "size": bytes.len()}));
    }
    files.sort_by_key(|f| f["path"].as_str().unwrap().to_string());
    index["files"] = files.into();
    let body = serde_json::to_vec_pretty(&index).unwrap();
    let mut msg = b"plcvault-evidence-v1\0".to_vec();
    msg.extend_from_slice(&body);
    std::fs::write(dir.join("EVIDENCE.json"), &body).unwrap();
    std::fs::write(
        dir.join("EVIDENCE.sig"),
        format!("{}\n", vault::hash::hex(&key.sign(&msg))),
    )
    .unwrap();
}

/// Removes entry `seq` and its proof line from an evidence folder.
fn drop_entry(d: &Path, seq: u64) {
    std::fs::remove_file(d.join(format!("log/{seq:020}.entry"))).unwrap();
    let p = d.join(format!("proofs/{:06}.proofs", (seq - 1) / 256));
    let t = std::fs::read_to_string(&p).unwrap();
    let kept: String = t
        .lines()
        .filter(|l| !l.starts_with(&format!("{seq} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(p, kept).unwrap();
}

/// Changes fields of an evidence index (`reseal` signs it again).
fn edit_index(d: &Path, f: impl Fn(&mut serde_json::Value)) {
    let p = d.join("EVIDENCE.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// The time of the newest snapshot of line1, as `--since` takes it.
fn newest_time(s: &Site) -> String {
    let r = s.run(&["--json", "snapshots", "line1"]);
    let list = r.records("snapshot");
    list.last().unwrap()["time"].as_str().unwrap().to_string()
}

/// Issue 12 item 6: evidence of a period carries that period's entries, each with its
/// inclusion proof against the signed checkpoint, and the baseline entries it rests on;
/// Go's tlog checks every proof; its size follows the period, not the history; an
/// auditor verifies it with the public keys alone, and a collector that re-signs the
/// index after changing the folder is still caught by the proofs.
#[test]
fn evidence_of_a_period_carries_its_entries_with_proofs_and_grows_with_the_period() {
    let s = Site::new();
    let alice = s.add_approver();
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // Entries 1-3 before the period; 4-6 in it (entry times have whole seconds).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let period = |s: &Site| {
        for i in 0..3 {
            s.write(
                "plant/OB1.awl",
                format!("NETWORK 1\n A I 0.{}\n", i + 1).as_bytes(),
            );
            // Exit 1: the change is drift from the baseline.
            let r = s.run(&["collect", "line1"]);
            assert!(r.code <= 1, "{}{}", r.stdout, r.stderr);
        }
    };
    period(&s);
    let r = s.run(&["--json", "snapshots", "line1"]);
    let since = r.records("snapshot")[2]["time"]
        .as_str()
        .unwrap()
        .to_string();
    let ev1 = s.path("ev1");
    let e = export(&s, &ev1, &["--since", &since]);
    assert_eq!(e["first"], 4, "{e}");
    assert_eq!(e["size"], 6, "{e}");
    // The approval (2) of the baseline in force, the snapshot it approved (1), and the
    // entry before the period (3), which proves where it starts.
    assert_eq!(e["context"], 3, "{e}");
    assert_eq!(e["entries"], 6, "{e}");
    assert!(ev1.join("log/00000000000000000003.entry").exists());
    let cfg = auditor(&s, &[("collector", "collector"), ("alice", "approver")]);
    let (code, v, found) = audit(&s, &cfg, &ev1, &[]);
    assert_eq!(code, 0, "{v}\n{found}");
    assert_eq!(
        (v["version"].as_u64(), v["entries"].as_u64()),
        (Some(2), Some(6))
    );
    assert_eq!(v["first"], 4);
    if let Some(bin) = checker(s.dir.path(), "evidence_of_a_period") {
        let (name, hex) = collector(&s);
        let out = Command::new(&bin)
            .args(["-evidence", ev1.to_str().unwrap(), &name, &hex])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("ok inclusion of 6 entries in 6"), "{text}");
    }

    // A long history and then the same kind of period: the period's evidence hardly
    // grows (its proofs have a few hashes more), the whole log's does.
    for i in 1..100 {
        s.add_device(&format!("plc{i:03}"), "plant");
    }
    for _ in 0..3 {
        assert!(s.run(&["collect", "--all"]).code <= 1);
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let before = newest_time(&s);
    period(&s);
    let since2 = s.run(&["--json", "snapshots", "line1"]).records("snapshot");
    let since2 = since2[since2.len() - 3]["time"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(since2, before);
    let ev2 = s.path("ev2");
    let e2 = export(&s, &ev2, &["--since", &since2]);
    assert_eq!(
        (e2["entries"].as_u64(), e2["size"].as_u64()),
        (Some(6), Some(309)),
        "{e2}"
    );
    let whole = s.path("ev-whole");
    let w = export(&s, &whole, &[]);
    assert_eq!(w["entries"], 309);
    let (p1, p2, pw) = (proof_bytes(&ev1), proof_bytes(&ev2), proof_bytes(&whole));
    eprintln!("evidence bytes: period after 6 entries {p1}, after 309 {p2}, whole log {pw}");
    assert!(p2 < 2 * p1, "{p1} → {p2}");
    assert!(pw > 20 * p2, "{pw} vs {p2}");
    let (code, v, found) = audit(&s, &cfg, &ev2, &[]);
    assert_eq!(code, 0, "{v}\n{found}");
    // Audits in a row: the auditor who kept the first evidence's checkpoint is told what
    // this period leaves out.
    let (code, _, found) = audit(
        &s,
        &cfg,
        &ev2,
        &[
            "--from-checkpoint",
            ev1.join("checkpoint").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        found.contains("entries 7 to 306 were written after the checkpoint of the last audit"),
        "{found}"
    );

    // A compromised collector host re-signs the index after changing the folder.
    type Tamper = (&'static str, fn(&Path), &'static str);
    let cases: [Tamper; 5] = [
        (
            "an entry changed",
            |d| {
                let p = d.join("log/00000000000000000308.entry");
                let t = std::fs::read_to_string(&p)
                    .unwrap()
                    .replacen("true", "false", 1);
                std::fs::write(p, t).unwrap();
            },
            "log entry 308 is not in the signed checkpoint's tree",
        ),
        (
            "an entry removed from the period",
            |d| std::fs::remove_file(d.join("log/00000000000000000308.entry")).unwrap(),
            "log entry 308 is missing",
        ),
        (
            "a proof swapped for another entry's",
            |d| {
                let p = d.join("proofs/000001.proofs");
                let t = std::fs::read_to_string(&p).unwrap();
                let lines: Vec<&str> = t.lines().collect();
                let (a, b) = (lines[lines.len() - 2], lines[lines.len() - 1]);
                let swapped = format!(
                    "{}{} {}\n{} {}\n",
                    lines[..lines.len() - 2]
                        .iter()
                        .map(|l| format!("{l}\n"))
                        .collect::<String>(),
                    a.split_once(' ').unwrap().0,
                    b.split_once(' ').unwrap().1,
                    b.split_once(' ').unwrap().0,
                    a.split_once(' ').unwrap().1,
                );
                std::fs::write(p, swapped).unwrap();
            },
            "inclusion proof fails",
        ),
        (
            "the checkpoint's root changed",
            |d| {
                let p = d.join("checkpoint");
                let t = std::fs::read_to_string(&p).unwrap();
                let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
                lines[2] = vault::tiles::base64(&[7u8; 32]);
                std::fs::write(p, lines.join("\n") + "\n").unwrap();
            },
            "not signed by a key the config trusts",
        ),
        (
            "an earlier entry slipped in",
            |d| {
                std::fs::copy(
                    d.join("log/00000000000000000308.entry"),
                    d.join("log/00000000000000000200.entry"),
                )
                .unwrap();
            },
            "log/00000000000000000200.entry is not an entry of the period",
        ),
    ];
    // ...and edits the index itself: where the period starts, what it rests on.
    let more: [Tamper; 4] = [
        (
            "the period's first entry dropped",
            |d| {
                drop_entry(d, 307);
                edit_index(d, |v| v["first"] = 308.into());
            },
            "the entry before the period (entry 307) is not carried",
        ),
        (
            "the period's first entry passed off as the one before it",
            |d| {
                edit_index(d, |v| {
                    v["first"] = 308.into();
                    let mut c: Vec<u64> = serde_json::from_value(v["context"].clone()).unwrap();
                    c.push(307);
                    c.sort();
                    v["context"] = c.into();
                })
            },
            "is dated within it",
        ),
        (
            "the baseline's approval dropped",
            |d| {
                drop_entry(d, 2);
                edit_index(d, |v| {
                    let c: Vec<u64> = serde_json::from_value(v["context"].clone()).unwrap();
                    v["context"] = c.into_iter().filter(|&x| x != 2).collect::<Vec<_>>().into();
                })
            },
            "the evidence does not carry that entry",
        ),
        (
            "a proofs file added",
            |d| std::fs::write(d.join("proofs/000009.proofs"), "1 00\n").unwrap(),
            "is not the proofs file of a carried entry",
        ),
    ];
    for (what, f, want) in cases.into_iter().chain(more) {
        let t = s.path("tampered");
        let _ = std::fs::remove_dir_all(&t);
        copy_tree(&ev2, &t);
        f(&t);
        reseal(&s, &t);
        let (code, v, found) = audit(&s, &cfg, &t, &[]);
        assert_eq!(code, 1, "{what}: {v}\n{found}");
        assert!(found.contains(want), "{what}: {found}");
    }
}

/// Issue 12 item 6: the auditor keeps the checkpoint of the evidence they verified; the
/// next export proves the log extends it, the witnessed checkpoint is carried and
/// checked, an older evidence shown later is a rollback, and a fork is refused at export
/// and caught at verify.
#[test]
fn evidence_proves_consistency_with_the_auditors_last_checkpoint_and_a_fork_is_caught() {
    let s = Site::new();
    let witness = s.add_key("central", "witness", "the central witness");
    s.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let wcfg = s.config_with_state("witness.toml", "witness-state");
    let r = s.run_with(
        &wcfg,
        &["witness", "cosign", "--key", witness.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // A fork taken now: a copy of the vault another writer will extend.
    copy_tree(&s.vault(), &s.path("site/vault-b"));
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let cfg = auditor(&s, &[("collector", "collector"), ("central", "witness")]);
    let ev1 = s.path("ev1");
    export(&s, &ev1, &[]);
    let (code, v, found) = audit(&s, &cfg, &ev1, &[]);
    assert_eq!(code, 0, "{v}\n{found}");
    assert_eq!(v["witnessed"]["size"], 2, "{v}");
    assert_eq!(v["witnessed"]["witnesses"], 1, "{v}");
    let kept = s.path("auditor/last.checkpoint");
    std::fs::copy(ev1.join("checkpoint"), &kept).unwrap();

    // The next audit: more entries, proven to extend the kept checkpoint.
    for _ in 0..4 {
        assert_eq!(s.run(&["collect", "line1"]).code, 0);
    }
    let ev2 = s.path("ev2");
    let e = export(&s, &ev2, &["--from-checkpoint", kept.to_str().unwrap()]);
    assert_eq!(e["from_size"], 3, "{e}");
    let (code, v, found) = audit(
        &s,
        &cfg,
        &ev2,
        &["--from-checkpoint", kept.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{v}\n{found}");
    assert_eq!(v["from_size"], 3);
    if let Some(bin) = checker(s.dir.path(), "evidence_proves_consistency") {
        let (name, hex) = collector(&s);
        let out = Command::new(&bin)
            .args(["-evidence", ev2.to_str().unwrap(), &name, &hex])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("ok consistency from-checkpoint 3 -> 7")
                && text.contains("ok consistency witnessed 2 -> 7"),
            "{text}"
        );
    }
    // The old evidence shown after the new one was verified: a rollback.
    let newer = s.path("auditor/newer.checkpoint");
    std::fs::copy(ev2.join("checkpoint"), &newer).unwrap();
    let (code, _, found) = audit(
        &s,
        &cfg,
        &ev1,
        &["--from-checkpoint", newer.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(found.contains("rolled back"), "{found}");

    // The fork, extended by another writer past the kept checkpoint's size.
    let fork = fork_config(&s);
    s.write("plant/OB1.awl", b"NETWORK 1\n AN I 0.0\n");
    for _ in 0..3 {
        assert_eq!(s.run_with(&fork, &["collect", "line1"]).code, 0);
    }
    let ev3 = s.path("ev3");
    let r = s.run_with(
        &fork,
        &[
            "evidence",
            "export",
            "--out",
            ev3.to_str().unwrap(),
            "--from-checkpoint",
            kept.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("does not extend the checkpoint"),
        "{}",
        r.stderr
    );
    let _ = std::fs::remove_dir_all(&ev3);
    let r = s.run_with(
        &fork,
        &["evidence", "export", "--out", ev3.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (code, _, found) = audit(
        &s,
        &cfg,
        &ev3,
        &["--from-checkpoint", kept.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(
        found.contains("carries no consistency proof from your checkpoint of 3"),
        "{found}"
    );
    // A collector host re-labels the fork's export as version 1 (the whole log, no
    // checkpoint): its tree is computed from the entries and compared all the same.
    let v1 = s.path("ev3-v1");
    copy_tree(&ev3, &v1);
    for f in ["checkpoint", "witnessed", "witnessed.proof"] {
        let _ = std::fs::remove_file(v1.join(f));
    }
    std::fs::remove_dir_all(v1.join("proofs")).unwrap();
    edit_index(&v1, |v| {
        v["v"] = 1.into();
        let o = v.as_object_mut().unwrap();
        o.remove("first");
        o.remove("context");
    });
    reseal(&s, &v1);
    let (code, _, found) = audit(
        &s,
        &cfg,
        &v1,
        &["--from-checkpoint", kept.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(found.contains("forked or rewritten"), "{found}");
    // Witnesses asked for: the fork's export without its witnessed checkpoint is refused,
    // and one witness is not two.
    let nw = s.path("ev3-unwitnessed");
    copy_tree(&ev3, &nw);
    std::fs::remove_file(nw.join("witnessed")).unwrap();
    std::fs::remove_file(nw.join("witnessed.proof")).unwrap();
    reseal(&s, &nw);
    let (code, _, found) = audit(&s, &cfg, &nw, &["--witnesses", "1"]);
    assert_eq!(code, 1);
    assert!(
        found.contains("no checkpoint cosigned by a trusted witness"),
        "{found}"
    );
    let (code, _, found) = audit(&s, &cfg, &ev2, &["--witnesses", "2"]);
    assert_eq!(code, 1);
    assert!(found.contains("2 asked for"), "{found}");
    // Nor is one witness's line written twice.
    let dup = s.path("ev2-dup");
    copy_tree(&ev2, &dup);
    let note = std::fs::read_to_string(dup.join("witnessed")).unwrap();
    let last = note.lines().last().unwrap().to_string();
    std::fs::write(dup.join("witnessed"), format!("{note}{last}\n")).unwrap();
    reseal(&s, &dup);
    let (code, _, found) = audit(&s, &cfg, &dup, &["--witnesses", "2"]);
    assert_eq!(code, 1);
    assert!(
        found.contains("has 1 trusted witness cosignature(s), 2 asked for"),
        "{found}"
    );
    let (code, v, found) = audit(&s, &cfg, &ev2, &["--witnesses", "1"]);
    assert_eq!(code, 0, "{v}\n{found}");
    // Nor can the fork borrow its own checkpoint of that size.
    let t = s.path("ev3-forged");
    copy_tree(&ev3, &t);
    let r = s.run_with(&fork, &["proof", "consistency", "--from", "3", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The fork's own consistency proof from 3 entries, beside the auditor's checkpoint.
    let proof: String = r.records("proof")[0]["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}\n", h.as_str().unwrap()))
        .collect();
    std::fs::copy(kept.clone(), t.join("from-checkpoint")).unwrap();
    std::fs::write(t.join("from-checkpoint.proof"), proof).unwrap();
    let body = std::fs::read_to_string(t.join("EVIDENCE.json")).unwrap();
    std::fs::write(
        t.join("EVIDENCE.json"),
        body.replacen("\"signer\"", "\"from_size\": 3,\n  \"signer\"", 1),
    )
    .unwrap();
    reseal(&s, &t);
    let (code, _, found) = audit(&s, &cfg, &t, &["--from-checkpoint", kept.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(found.contains("forked or rewritten"), "{found}");
}
