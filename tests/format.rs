//! The vault format as a contract: a committed golden format-1 vault that every release
//! must verify and restore byte-exact, committed damaged variants (one per kind of damage)
//! that must each produce their finding, and an independent verifier written from
//! `vault/FORMAT.md` alone (`tests/verify_format.py`) that must agree with plcvault on
//! every one of them. The fixtures are written by `tests/fixtures/make_vaults.py`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixtures::{assemble, config, copy_tree, fixtures, plcvault};
use common::{BIN, Run};

/// The Python with PyNaCl and the `zstd` command the independent verifier needs; `None`
/// with a loud message when they are missing and peers are optional.
fn independent_verifier(test: &str) -> Option<PathBuf> {
    let py = std::env::var_os("PLCVAULT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
    let have = ok(Command::new(&py).args(["-c", "import nacl.signing"]))
        && ok(Command::new("zstd").arg("--version"));
    if !have {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: the independent verifier needs PyNaCl in .venv and Debian's zstd; run `bash tests/run.sh`, which installs both"
        );
        eprintln!("SKIPPED {test}: PyNaCl or zstd missing (run `bash tests/run.sh`)");
        return None;
    }
    Some(py)
}

fn python_verify(py: &Path, target: &Path, extra: &[&str]) -> Run {
    let f = fixtures();
    Run::from_output(
        Command::new(py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_format.py"))
            .args(extra)
            .arg("--trust")
            .arg(format!("collector:{}", f.join("collector.pub").display()))
            .arg("--trust")
            .arg(format!("approver:{}", f.join("alice.pub").display()))
            .arg(target)
            .output()
            .unwrap(),
    )
}

/// Finding kinds, sorted, one per finding.
fn kinds_of(lines: &str, field: &str) -> Vec<String> {
    let mut k: Vec<String> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let v = if field.is_empty() {
                v
            } else if v["type"] == field {
                v["data"].clone()
            } else {
                return None;
            };
            v["kind"].as_str().map(str::to_string)
        })
        .collect();
    k.sort();
    k
}

fn sha256_list(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let (h, p) = l.split_once("  ").unwrap();
            (p.to_string(), h.to_string())
        })
        .collect()
}

fn tree_hashes(root: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                rel,
                vault::Hash::of(&std::fs::read(e.path()).unwrap()).to_hex(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_golden_format_1_vault_verifies_and_restores_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    assemble(None, dir.path());
    let cfg = config(dir.path());
    let r = plcvault(&cfg, &["--json", "verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = &r.records("verify")[0];
    assert_eq!(
        (v["entries"].as_u64(), v["snapshots"].as_u64()),
        (Some(5), Some(2)),
        "{v}"
    );
    // Both snapshots, byte for byte, against the hashes taken from the plant at the time.
    let snaps = plcvault(&cfg, &["--json", "snapshots", "line1"]).records("snapshot");
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for (snap, list) in [
        (&snaps[0], "line1.first.sha256"),
        (&snaps[1], "line1.latest.sha256"),
    ] {
        let to = dir
            .path()
            .join(format!("restored-{}", snap["id"].as_str().unwrap()));
        let r = plcvault(
            &cfg,
            &[
                "restore",
                "line1",
                "--snapshot",
                snap["id"].as_str().unwrap(),
                "--to",
                to.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(
            tree_hashes(&to),
            sha256_list(&fixtures().join(list)),
            "{list}"
        );
    }
    // The approved baseline and the recorded drill are read back as such.
    let r = plcvault(&cfg, &["diff", "line1"]);
    assert_eq!(
        r.code, 1,
        "the second snapshot changed the recipe: {}",
        r.stdout
    );
    assert!(r.stdout.contains("+cool_s;45"), "{}", r.stdout);
    // The golden evidence export verifies as exported.
    let ev = dir.path().join("evidence");
    copy_tree(&fixtures().join("evidence-v1"), &ev);
    let r = plcvault(&cfg, &["verify", "--evidence", ev.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn every_damaged_fixture_produces_its_finding_and_both_verifiers_agree() {
    let py =
        independent_verifier("every_damaged_fixture_produces_its_finding_and_both_verifiers_agree");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut cases: Vec<String> = std::fs::read_dir(fixtures().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(cases.len() >= 26, "{cases:?}");
    let mut cases: Vec<Option<String>> = cases.into_iter().map(Some).collect();
    cases.insert(0, None);
    for case in &cases {
        let name = case.as_deref().unwrap_or("golden");
        let vault = assemble(case.as_deref(), dir.path());
        let expect = match case {
            Some(c) => std::fs::read_to_string(fixtures().join("cases").join(c).join("expect"))
                .unwrap()
                .trim()
                .to_string(),
            None => String::new(),
        };
        let t0 = std::time::Instant::now();
        let ours = plcvault(&cfg, &["--json", "verify", "--read-data"]);
        let took = t0.elapsed();
        assert!(
            !ours.stderr.contains("panicked") && (0..=2).contains(&ours.code),
            "{name}: exit {} {}",
            ours.code,
            ours.stderr
        );
        assert!(took.as_secs() < 10, "{name}: verify took {took:?}");
        let our_kinds = kinds_of(&ours.stdout, "finding");
        if expect == "error" {
            assert_eq!(ours.code, 2, "{name}: {}{}", ours.stdout, ours.stderr);
            assert!(ours.stderr.contains("damaged"), "{name}: {}", ours.stderr);
        } else {
            let mut unique = our_kinds.clone();
            unique.dedup();
            assert_eq!(unique.join(" "), expect, "{name}: {}", ours.stdout);
            assert_eq!(ours.code, if expect.is_empty() { 0 } else { 1 }, "{name}");
        }
        // Restore and diff on the same damage end in a result or an error, never a crash.
        for args in [
            vec!["restore", "line1", "--to", "restored"],
            vec!["diff", "line1"],
            vec!["snapshots"],
            vec!["report"],
        ] {
            let _ = std::fs::remove_dir_all(dir.path().join("restored"));
            let mut a: Vec<&str> = args.clone();
            if a[0] == "restore" {
                a[3] = "restored";
            }
            let r = Run::from_output(
                Command::new(BIN)
                    .current_dir(dir.path())
                    .arg("--config")
                    .arg(&cfg)
                    .args(&a)
                    .output()
                    .unwrap(),
            );
            assert!(
                (0..=2).contains(&r.code) && !r.stderr.contains("panicked"),
                "{name}: {args:?} exit {}: {}",
                r.code,
                r.stderr
            );
        }
        if let Some(py) = &py {
            let theirs = python_verify(py, &vault, &["--read-data"]);
            if expect == "error" {
                assert!(
                    theirs.stdout.contains("damaged"),
                    "{name}: the independent verifier failed for another reason: {}",
                    theirs.stdout
                );
            }
            assert_eq!(
                theirs.code, ours.code,
                "{name}: the independent verifier exits {} ({}), plcvault {}",
                theirs.code, theirs.stdout, ours.code
            );
            assert_eq!(
                kinds_of(&theirs.stdout, ""),
                our_kinds,
                "{name}: the verifiers disagree\nindependent: {}\nplcvault: {}",
                theirs.stdout,
                ours.stdout
            );
        }
    }
}

#[test]
fn the_independent_verifier_agrees_on_evidence_intact_and_tampered() {
    let Some(py) =
        independent_verifier("the_independent_verifier_agrees_on_evidence_intact_and_tampered")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let ev = dir.path().join("evidence");
    type Tamper = (&'static str, fn(&Path));
    let tamper: [Tamper; 5] = [
        ("intact", |_| {}),
        ("a changed report", |d| {
            let p = d.join("report.json");
            let mut b = std::fs::read(&p).unwrap();
            b[10] ^= 1;
            std::fs::write(p, b).unwrap();
        }),
        ("an added file", |d| {
            std::fs::write(d.join("manifests/extra.json"), b"{}").unwrap()
        }),
        ("a removed log entry", |d| {
            std::fs::remove_file(d.join("log/00000000000000000002.entry")).unwrap()
        }),
        ("an upper-case signature", |d| {
            let p = d.join("EVIDENCE.sig");
            let s = std::fs::read_to_string(&p).unwrap().to_uppercase();
            std::fs::write(p, s).unwrap();
        }),
    ];
    for (what, f) in tamper {
        let _ = std::fs::remove_dir_all(&ev);
        copy_tree(&fixtures().join("evidence-v1"), &ev);
        f(&ev);
        let ours = plcvault(&cfg, &["verify", "--evidence", ev.to_str().unwrap()]);
        let theirs = python_verify(&py, &ev, &["--evidence"]);
        let want = if what == "intact" { 0 } else { 1 };
        assert_eq!(ours.code, want, "{what}: {}{}", ours.stdout, ours.stderr);
        assert_eq!(theirs.code, want, "{what}: {}", theirs.stdout);
    }
}
