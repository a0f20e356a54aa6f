//! The s7 adapter against python-snap7, an S7 implementation nobody on this team wrote,
//! both ways: our client against its server, and its client against our simulated CPU
//! (which must serve it the same bytes plcvault stores).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "../../tests/peers/pymodbus.rs"]
mod peers;

use adapters::s7::proto::BlockType;
use adapters::s7::sim::{S7Sim, S7SimConfig};
use adapters::s7::{DbSpec, S7Collector, S7Options};
use adapters::{ArtifactKind, Collection, Collector, SourceData};
use serde_json::{Value, json};

/// python-snap7's server, and the requests it recorded.
struct Snap7Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Snap7Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Snap7Server {
    fn start(py: &std::path::Path, spec: &Value) -> Snap7Server {
        let mut child = Command::new(py)
            .arg(peers::peers_dir().join("snap7_peer.py"))
            .args(["server", &spec.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python-snap7's server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                match v.get("port").and_then(Value::as_u64) {
                    Some(p) => {
                        let _ = tx.send(p as u16);
                    }
                    None => log2.lock().unwrap().push(v),
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("python-snap7's server did not report its port");
        Snap7Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }
}

fn db_bytes(number: u16, size: usize, seed: usize) -> Vec<u8> {
    (0..size)
        .map(|i| ((i * 7 + number as usize + seed) % 256) as u8)
        .collect()
}

fn options(addr: SocketAddr, dbs: &[(u16, u32)]) -> S7Options {
    S7Options {
        device: "cpu1".into(),
        address: addr.to_string(),
        local_tsap: 0x0100,
        remote_tsap: 0x0102,
        pdu_size: 960,
        timeout: Duration::from_secs(2),
        retries: 1,
        max_requests_per_second: 500.0,
        blocks: BlockType::ALL.to_vec(),
        upload: true,
        dbs: dbs
            .iter()
            .map(|(n, size)| DbSpec {
                number: *n,
                start: 0,
                size: *size,
                kind: ArtifactKind::Recipe,
            })
            .collect(),
        kinds: Vec::new(),
    }
}

fn bytes<'a>(c: &'a Collection, name: &str) -> &'a [u8] {
    match &c
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", c.warnings))
        .data
    {
        SourceData::Bytes(b) => b,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_reads_python_snap7s_server_and_sends_only_reads() {
    let Some(py) = peers::python_with("snap7", "s7 against python-snap7's server") else {
        return;
    };
    let spec = json!({"dbs": {"10": 1000, "20": 50}, "seed": 3});
    let srv = Snap7Server::start(&py, &spec);
    let c = S7Collector::new(options(srv.addr, &[(10, 1000), (20, 50)]))
        .unwrap()
        .collect()
        .await
        .unwrap();
    // DB contents read with read var, in pieces that fit its PDU (480 at most).
    assert_eq!(bytes(&c, "data/DB10.bin"), db_bytes(10, 1000, 3).as_slice());
    assert_eq!(bytes(&c, "data/DB20.bin"), db_bytes(20, 50, 3).as_slice());
    // It lists and uploads DBs only; the body ends with the DB's bytes.
    let csv = String::from_utf8(bytes(&c, "blocks.csv").to_vec()).unwrap();
    assert!(csv.contains("\nDB10,") && csv.contains("\nDB20,"), "{csv}");
    assert!(csv.contains("SNAP7EMU"), "{csv}");
    let up = bytes(&c, "blocks/DB20.mc7");
    assert!(up.ends_with(&db_bytes(20, 50, 3)), "{up:02x?}");
    // Its SZL answers are not in Siemens' layout: kept as hex with a warning, no crash.
    let id = String::from_utf8(bytes(&c, "identity.txt").to_vec()).unwrap();
    assert!(id.contains("szl-0011="), "{id}");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("not in Siemens' layout")),
        "{:?}",
        c.warnings
    );
    // What its server recorded: only the read functions.
    let log = srv.log.lock().unwrap().clone();
    assert!(!log.is_empty());
    for r in &log {
        let ok = match r["pdu_type"].as_u64() {
            Some(1) => [0xF0, 0x04, 0x1D, 0x1E, 0x1F].contains(&r["function"].as_u64().unwrap()),
            Some(7) => [(4, 1), (3, 2), (3, 3)].contains(&(
                r["group"].as_u64().unwrap(),
                r["subfunction"].as_u64().unwrap(),
            )),
            _ => false,
        };
        assert!(ok, "sent {r}");
    }
    let reads = log.iter().filter(|r| r["function"] == 0x04).count();
    assert!(
        reads >= 3,
        "DB10 of 1000 bytes in pieces of at most 462: {reads}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_snap7s_client_reads_our_simulated_cpu_as_plcvault_stores_it() {
    let Some(py) = peers::python_with("snap7", "python-snap7's client against our sim") else {
        return;
    };
    // More than 255 blocks: snap7 keeps one byte of the upload id.
    let cfg = S7SimConfig::generated(280, 11);
    let sim = S7Sim::start("127.0.0.1:0", cfg.clone()).await.unwrap();
    let addr = sim.addr();
    let spec = json!({"dbs": {"10": 200, "20": 64}});
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(peers::peers_dir().join("snap7_peer.py"))
            .args([
                "client",
                "127.0.0.1",
                &addr.port().to_string(),
                &spec.to_string(),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python-snap7's client failed against our sim:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["cpu"]["as_name"], cfg.station);
    assert_eq!(got["cpu"]["module_name"], cfg.module_name);
    assert_eq!(got["cpu"]["serial"], cfg.serial);
    assert_eq!(got["order_code"], cfg.order_number);
    let (a, b, c) = cfg.firmware;
    assert_eq!(got["firmware"], json!([a, b, c]));
    let count = |t: BlockType| cfg.blocks.iter().filter(|b| b.block_type == t).count();
    for t in BlockType::ALL {
        assert_eq!(got["counts"][t.name()], count(t), "{t}");
    }
    // The same bytes plcvault stores, block by block.
    let ours = S7Collector::new(options(addr, &[(10, 200), (20, 64)]))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(ours.complete, "{:?}", ours.warnings);
    let blocks = got["blocks"].as_object().unwrap();
    assert_eq!(blocks.len(), cfg.blocks.len());
    for blk in &cfg.blocks {
        let key = format!("{}{}", blk.block_type, blk.number);
        let theirs = &blocks[&key];
        let hex: String = blk.bytes.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(theirs["bytes"], hex, "{key}");
        assert_eq!(
            bytes(&ours, &format!("blocks/{key}.mc7")),
            blk.bytes.as_slice(),
            "{key}"
        );
        assert_eq!(theirs["load_size"], blk.bytes.len(), "{key}");
        assert_eq!(theirs["author"], "PLCVAULT", "{key}");
    }
    for (n, data) in &cfg.dbs {
        let hex: String = data.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(got["dbs"][n.to_string()], hex, "DB{n}");
        assert_eq!(bytes(&ours, &format!("data/DB{n}.bin")), data.as_slice());
    }
}
