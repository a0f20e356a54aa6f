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
    let fork = s.path("site/fork.toml");
    std::fs::write(
        &fork,
        std::fs::read_to_string(s.config())
            .unwrap()
            .replace("path = \"vault\"", "path = \"vault-b\"")
            .replace("state = \"state\"", "state = \"state-b\""),
    )
    .unwrap();
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
