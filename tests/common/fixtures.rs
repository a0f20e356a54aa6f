//! The committed vault fixtures (`tests/fixtures/vaults`, written by
//! `tests/fixtures/make_vaults.py`): the golden format-1 vault, its damaged variants, and
//! a verifier's config for them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{BIN, Run};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vaults")
}

pub fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The golden vault with the case's overlay applied, at `dir/vault`.
pub fn assemble(case: Option<&str>, dir: &Path) -> PathBuf {
    let vault = dir.join("vault");
    let _ = std::fs::remove_dir_all(&vault);
    let _ = std::fs::remove_dir_all(dir.join("state"));
    copy_tree(&fixtures().join("golden-v1"), &vault);
    if let Some(case) = case {
        let c = fixtures().join("cases").join(case);
        if c.join("files").exists() {
            copy_tree(&c.join("files"), &vault);
        }
        for rel in std::fs::read_to_string(c.join("remove")).unwrap().lines() {
            std::fs::remove_file(vault.join(rel)).unwrap();
        }
    }
    vault
}

/// A verifier's config: the fixture's public keys, a state folder of its own, no stale
/// check (the golden log is old by design).
pub fn config(dir: &Path) -> PathBuf {
    let f = fixtures();
    std::fs::create_dir_all(dir.join("plant")).unwrap();
    let text = format!(
        "[vault]\npath = \"vault\"\nstate = \"state\"\nstale-after = \"off\"\n\n\
         [[trust]]\nname = \"collector\"\nrole = \"collector\"\npublic-key = \"{}\"\n\n\
         [[trust]]\nname = \"alice\"\nrole = \"approver\"\npublic-key = \"{}\"\n\n\
         [[device]]\nname = \"line1\"\nadapter = \"files\"\npath = \"plant\"\n",
        f.join("collector.pub").display(),
        f.join("alice.pub").display()
    );
    let path = dir.join("plcvault.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn plcvault(cfg: &Path, args: &[&str]) -> Run {
    Run::from_output(
        Command::new(BIN)
            .arg("--config")
            .arg(cfg)
            .args(args)
            .output()
            .unwrap(),
    )
}
