//! Test peers: the pymodbus server (a Modbus implementation nobody on this team wrote) and
//! a fault-injecting TCP proxy.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Python that has pymodbus: `PLCVAULT_PYTHON`, else the workspace's `.venv`.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PLCVAULT_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    venv.exists().then_some(venv)
}

/// `None` (with a loud message) when pymodbus is not installed and peers are optional;
/// a panic when `PLCVAULT_REQUIRE_PEERS=1`.
pub fn pymodbus_available(test: &str) -> Option<PathBuf> {
    let found = python().filter(|py| {
        Command::new(py)
            .args(["-c", "import pymodbus"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{test}: the pymodbus peer is required (PLCVAULT_REQUIRE_PEERS=1) but not installed; run `bash tests/run.sh`, which creates .venv with it"
            );
        }
        eprintln!(
            "SKIPPED {test}: pymodbus not installed (run `bash tests/run.sh` to install it into .venv)"
        );
    }
    found
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
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/pymodbus_server.py");
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

/// Faults the proxy injects, counted in Modbus requests from the client.
#[derive(Clone, Copy, Default)]
pub struct ProxyFaults {
    /// Swallow every request after this many (the device "stops answering").
    pub silent_after: Option<u64>,
    /// Close the client's connection instead of forwarding request number N (once).
    pub drop_at: Option<u64>,
}

/// A TCP proxy in front of a Modbus server that injects faults at the frame level.
pub struct Proxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, faults: ProxyFaults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    loop {
                        // One MBAP frame: 7-byte header, length covers unit id + PDU.
                        let mut head = [0u8; 7];
                        if cr.read_exact(&mut head).await.is_err() {
                            break;
                        }
                        let len = u16::from_be_bytes([head[4], head[5]]) as usize;
                        let mut body = vec![0u8; len.saturating_sub(1)];
                        if cr.read_exact(&mut body).await.is_err() {
                            break;
                        }
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        if faults.drop_at == Some(n) {
                            break;
                        }
                        if faults.silent_after.is_some_and(|k| n > k) {
                            continue;
                        }
                        if sw.write_all(&head).await.is_err() || sw.write_all(&body).await.is_err()
                        {
                            break;
                        }
                    }
                    back.abort();
                });
            }
        });
        Proxy { addr, task }
    }
}
