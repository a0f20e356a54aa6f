//! The asyncua OPC UA server (tests/peers/opcua_peer.py), or open62541's through `o6`
//! (tests/peers/open62541_peer.py), run for a test: its port, its certificate's SHA-256,
//! the services it recorded, and values set behind plcvault's back.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::peers;

/// The only services a collection may send, as asyncua names the requests it records.
pub const READ_SERVICES: &[&str] = &[
    "GetEndpointsRequest",
    "CreateSessionRequest",
    "ActivateSessionRequest",
    "CloseSessionRequest",
    "BrowseRequest",
    "BrowseNextRequest",
    "ReadRequest",
];

/// asyncua's server, and the services it recorded.
pub struct Asyncua {
    child: Child,
    pub port: u16,
    pub thumbprint: String,
    pub log: Arc<Mutex<Vec<String>>>,
    /// asyncua only: the NodeIds every Write named, in order.
    #[allow(dead_code)] // read by the binary's drill tests only
    pub written: Arc<Mutex<Vec<String>>>,
    /// With "page": the continuation points the server held after its last Browse or
    /// BrowseNext.
    #[allow(dead_code)] // read by the adapter's peer tests only
    pub open_cps: Arc<Mutex<Option<u64>>>,
    /// With "user_cert": the user certificate (DER) and key (PEM) it accepts.
    #[allow(dead_code)] // not every test crate that includes this logs in by certificate
    pub user_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    acks: std::sync::mpsc::Receiver<()>,
    /// The endpoint's path after the port.
    path: &'static str,
    _dir: tempfile::TempDir,
}

impl Drop for Asyncua {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Asyncua {
    pub fn start(py: &std::path::Path, spec: Value) -> Asyncua {
        Self::run(py, "opcua_peer.py", "/plcvault/", spec)
    }

    /// open62541's server instead (the same services recorded, its own address space in
    /// namespace 1).
    #[allow(dead_code)] // the adapter's peer tests use asyncua only
    pub fn open62541(py: &std::path::Path, spec: Value) -> Asyncua {
        Self::run(py, "open62541_peer.py", "", spec)
    }

    fn run(py: &std::path::Path, script: &str, path: &'static str, mut spec: Value) -> Asyncua {
        let dir = tempfile::tempdir().unwrap();
        spec["dir"] = json!(dir.path());
        let mut child = Command::new(py)
            .arg(peers::peers_dir().join(script))
            .args(["server", &spec.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start asyncua's server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (ack_tx, acks) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        let open_cps = Arc::new(Mutex::new(None));
        let open2 = open_cps.clone();
        let written = Arc::new(Mutex::new(Vec::new()));
        let written2 = written.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v.get("ready").is_some() {
                    let _ = tx.send(v);
                } else if let Some(n) = v["open_cps"].as_u64() {
                    *open2.lock().unwrap() = Some(n);
                } else if v.get("set").is_some() {
                    let _ = ack_tx.send(());
                } else if let Some(ids) = v["written"].as_array() {
                    let ids = ids.iter().filter_map(|i| i.as_str()).map(str::to_string);
                    written2.lock().unwrap().extend(ids);
                } else if let Some(s) = v["service"].as_str() {
                    log2.lock().unwrap().push(s.to_string());
                }
            }
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(90))
            .unwrap_or_else(|_| panic!("the OPC UA server {script} did not start"));
        Asyncua {
            child,
            port: ready["port"].as_u64().unwrap() as u16,
            thumbprint: ready["thumbprint"].as_str().unwrap().to_string(),
            log,
            written,
            open_cps,
            user_cert: ready["user_cert"].as_str().map(|c| {
                (
                    c.into(),
                    ready["user_key"].as_str().expect("with its key").into(),
                )
            }),
            acks,
            path,
            _dir: dir,
        }
    }

    /// Sets a variable's value on the server (`ns=2;s=Recipes.Speed`), behind plcvault's
    /// back.
    pub fn set(&mut self, node: &str, value: Value) {
        let stdin = self.child.stdin.as_mut().expect("piped");
        writeln!(stdin, "{}", json!({"set": node, "value": value})).unwrap();
        stdin.flush().unwrap();
        self.acks
            .recv_timeout(Duration::from_secs(10))
            .expect("the OPC UA server did not set the value");
    }

    pub fn url(&self) -> String {
        format!("opc.tcp://127.0.0.1:{}{}", self.port, self.path)
    }
}
