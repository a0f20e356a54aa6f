//! The pymodbus server as a test peer (a Modbus implementation nobody on this team wrote),
//! shared by the adapter tests and the end-to-end tests (included with `#[path]`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The workspace root: the nearest folder above this crate that holds the peer script.
fn workspace() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("tests/peers/pymodbus_server.py").exists() && dir.pop() {}
    dir
}

/// The Python that has pymodbus: `PLCVAULT_PYTHON`, else the workspace's `.venv`.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PLCVAULT_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = workspace().join(".venv/bin/python");
    venv.exists().then_some(venv)
}

/// `None` (with a loud message) when pymodbus is not installed and peers are optional;
/// a panic when `PLCVAULT_REQUIRE_PEERS=1`.
pub fn pymodbus_available(test: &str) -> Option<PathBuf> {
    python_with("pymodbus", test)
}

/// The Python that can import `module` (a peer installed by `tests/run.sh`); `None`, with
/// a loud message, when it cannot and peers are optional; a panic when
/// `PLCVAULT_REQUIRE_PEERS=1`.
pub fn python_with(module: &str, test: &str) -> Option<PathBuf> {
    let found = python().filter(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{test}: the {module} peer is required (PLCVAULT_REQUIRE_PEERS=1) but not installed; run `bash tests/run.sh`, which creates .venv with it"
            );
        }
        eprintln!(
            "SKIPPED {test}: {module} not installed (run `bash tests/run.sh` to install it into .venv)"
        );
    }
    found
}

/// The peer scripts' folder.
pub fn peers_dir() -> PathBuf {
    workspace().join("tests/peers")
}

/// A running pymodbus server and the requests it logged.
pub struct Pymodbus {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Drop for Pymodbus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pymodbus {
    pub fn start(python: &PathBuf, spec: serde_json::Value) -> Pymodbus {
        let script = workspace().join("tests/peers/pymodbus_server.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(spec.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the pymodbus peer");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: serde_json::Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if let Some(port) = v.get("port").and_then(|p| p.as_u64()) {
                    let _ = tx.send(port as u16);
                } else {
                    log2.lock().unwrap().push(v);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the pymodbus peer did not report its port");
        Pymodbus {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    /// Requests the server logged (function, unit, address, count).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.log.lock().unwrap().clone()
    }
}

/// The values `pymodbus_server.py` serves (its `expected_values`).
pub fn expected(size: usize, seed: u64) -> (Vec<u16>, Vec<u16>, Vec<bool>, Vec<bool>) {
    let s = seed as usize;
    (
        (0..size).map(|i| ((i * 7 + s) % 65536) as u16).collect(),
        (0..size)
            .map(|i| ((i * 13 + s * 3) % 65536) as u16)
            .collect(),
        (0..size).map(|i| (i + s).is_multiple_of(3)).collect(),
        (0..size).map(|i| (i + s).is_multiple_of(2)).collect(),
    )
}
