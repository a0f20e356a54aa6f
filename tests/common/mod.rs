//! Helpers for the end-to-end tests: a site in a temp folder and a way to run the binary.
#![allow(dead_code)]

pub mod fixtures;
#[path = "../peers/pymodbus.rs"]
mod pymodbus;
#[allow(unused_imports)]
pub use pymodbus::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_plcvault");

pub struct Site {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Run {
        Run::from(o)
    }

    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// JSON Lines records of one type.
    pub fn records(&self, ty: &str) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))
            })
            .filter(|v| v["type"] == ty)
            .map(|v| v["data"].clone())
            .collect()
    }
}

impl Site {
    /// `plcvault init`, plus a files device `line1` over `plant/`.
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let s = Site { dir };
        let r = s.run(&["init", s.path("site").to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        std::fs::create_dir_all(s.path("plant")).unwrap();
        s.add_device("line1", "plant");
        s
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn config(&self) -> PathBuf {
        self.path("site/plcvault.toml")
    }

    pub fn add_device(&self, name: &str, folder: &str) {
        let mut text = std::fs::read_to_string(self.config()).unwrap();
        text.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nadapter = \"files\"\npath = \"{}\"\nexclude = [\"**/*.tmp\"]\n",
            self.path(folder).display()
        ));
        std::fs::write(self.config(), text).unwrap();
    }

    pub fn write(&self, rel: &str, data: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(self.config()).args(args);
        c.env_remove("PLCVAULT_CONFIG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// A copy of the config named `name` whose `[vault] state` is `state` (another
    /// verifier of the same vault); returns its path.
    pub fn config_with_state(&self, name: &str, state: &str) -> PathBuf {
        let cfg = self.path(&format!("site/{name}"));
        let text = std::fs::read_to_string(self.config())
            .unwrap()
            .replace("state = \"state\"", &format!("state = \"{state}\""));
        assert!(text.contains(state), "{text}");
        std::fs::write(&cfg, text).unwrap();
        cfg
    }

    /// Runs the binary with another config.
    pub fn run_with(&self, config: &Path, args: &[&str]) -> Run {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(config).args(args);
        c.env_remove("PLCVAULT_CONFIG");
        Run::from(c.output().unwrap())
    }

    pub fn vault(&self) -> PathBuf {
        self.path("site/vault")
    }
}

/// Deterministic noise.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

impl Site {
    /// Generates an approver key `alice` and trusts it as approver; returns its path.
    pub fn add_approver(&self) -> PathBuf {
        self.add_key("alice", "approver", "Alice, process engineer")
    }

    /// Generates a key pair `site/keys/NAME.key` and trusts it with `role`; returns its
    /// path.
    pub fn add_key(&self, name: &str, role: &str, comment: &str) -> PathBuf {
        let key = self.path(&format!("site/keys/{name}.key"));
        let r = self.run(&[
            "keygen",
            "--out",
            key.to_str().unwrap(),
            "--comment",
            comment,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let mut text = std::fs::read_to_string(self.config()).unwrap();
        text.push_str(&format!(
            "\n[[trust]]\nname = \"{name}\"\nrole = \"{role}\"\npublic-key = \"{}.pub\"\n",
            key.display()
        ));
        std::fs::write(self.config(), text).unwrap();
        key
    }

    pub fn approve(&self, device: &str, key: &Path, ticket: &str) -> Run {
        self.run(&[
            "baseline",
            "approve",
            device,
            "--snapshot",
            "latest",
            "--key",
            key.to_str().unwrap(),
            "--ticket",
            ticket,
            "--reason",
            "commissioning",
        ])
    }
}

/// The tree served by the FTP and SFTP peers: nested folders, a space and a non-ASCII
/// name, a 3 MiB image, an empty file and a deep one. Returns (name, content) of each.
pub fn remote_plant(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = vec![
        (
            "PLC1/OB1.awl".into(),
            b"NETWORK 1\n      A     I 0.0\n      =     Q 4.0\n".to_vec(),
        ),
        (
            "recipes/batch 7.csv".into(),
            b"name;value\nsterilise_temp;88\n".to_vec(),
        ),
        (
            "hmi/Übersicht/panel.img".into(),
            noise(3 * 1024 * 1024 + 17, 9),
        ),
        ("logs/empty.txt".into(), Vec::new()),
        ("a/b/c/d/deep.cfg".into(), b"depth=4\n".to_vec()),
    ];
    for (name, data) in &files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    files
}

/// `plcvault --json collect DEVICE` under an address-space limit of 180 MiB, which a file
/// of 200 MiB held whole would break; asserts it ends `ok`.
pub fn collect_in_180_mib(site: &Site, device: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 184320 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args([
            "--config",
            site.config().to_str().unwrap(),
            "--json",
            "collect",
            device,
        ])
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"status\":\"ok\""), "{stdout}");
}

/// Issue 20 over a remote adapter: the committed L5X and TwinCAT fixtures are served from
/// `root/exports/`; after a first collection of `device`, approved as its baseline, a rung and a method line are
/// changed on the server, and the next collection reports each at its address (the
/// collector recorded the format from the bytes it read over the wire).
pub fn exports_are_compared_by_address(site: &Site, root: &Path, device: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exports");
    let dir = root.join("exports");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["Line2.L5X", "FB_Capper.TcPOU"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).unwrap();
    }
    let r = site.run(&["--json", "collect", device]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let key = site.add_approver();
    let r = site.approve(device, &key, "CHG-20");
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let edit = |name: &str, from: &str, to: &str| {
        let p = dir.join(name);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{name}: {from}");
        std::fs::write(&p, text.replace(from, to)).unwrap();
    };
    edit(
        "Line2.L5X",
        "XIO(Guard_Closed)OTU(Run);",
        "XIC(Guard_Closed)OTU(Run);",
    );
    edit("FB_Capper.TcPOU", "nValue >= 180", "nValue >= 80");
    let r = site.run(&["--json", "collect", device]);
    let found: Vec<(String, String, String)> = r
        .records("finding")
        .iter()
        .map(|f| {
            (
                f["artifact"].as_str().unwrap_or("").to_string(),
                f["summary"].as_str().unwrap_or("").to_string(),
                f["class"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (artifact, summary) in [
        (
            "exports/Line2.L5X",
            "exports/Line2.L5X: Program Filling / Routine Main / Rung 2 changed",
        ),
        (
            "exports/FB_Capper.TcPOU",
            "exports/FB_Capper.TcPOU: POU FB_Capper / Method CheckTorque / Implementation / Line 1 changed",
        ),
    ] {
        assert!(
            found
                .iter()
                .any(|(a, s, c)| a == artifact && s == summary && c == "logic"),
            "{summary}: {found:?}\n{}",
            r.stderr
        );
    }
}
