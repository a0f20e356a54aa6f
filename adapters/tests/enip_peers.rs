//! The enip adapter against EtherNet/IP implementations nobody on this team wrote, both
//! ways: our client against cpppo's Logix simulator, and pycomm3's LogixDriver against our
//! simulated controller (which must serve it the values plcvault stores).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "../../tests/peers/pymodbus.rs"]
mod peers;

use adapters::enip::sim::{EnipSim, EnipSimConfig};
use adapters::enip::{EnipCollector, EnipOptions, NamedTag};
use adapters::{Collection, Collector, SourceData};
use serde_json::{Value, json};

/// cpppo's server, and the requests it recorded.
struct Cpppo {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Cpppo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cpppo {
    fn start(py: &std::path::Path, spec: &Value) -> Cpppo {
        let mut child = Command::new(py)
            .arg(peers::peers_dir().join("enip_peer.py"))
            .args(["server", &spec.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cpppo's server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut port = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // cpppo's own line: "Network TCP Server address = ('127.0.0.1', 40123)".
                if let Some(rest) = line.strip_prefix("Network TCP Server address = (") {
                    port = rest
                        .trim_end_matches(')')
                        .rsplit(", ")
                        .next()
                        .and_then(|p| p.parse::<u16>().ok());
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v.get("ready").is_some() {
                    let _ = tx.send(port);
                } else {
                    log2.lock().unwrap().push(v);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("cpppo's server did not start")
            .expect("cpppo's server did not say its port");
        Cpppo {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }
}

fn options(addr: SocketAddr, tags: &[&str]) -> EnipOptions {
    EnipOptions {
        device: "plc1".into(),
        address: addr.to_string(),
        route: vec![(1, 0)],
        timeout: Duration::from_secs(3),
        retries: 1,
        max_requests_per_second: 500.0,
        tags: tags.iter().map(|t| NamedTag::parse(t).unwrap()).collect(),
        programs: true,
        max_tags: 100_000,
        kinds: Vec::new(),
        connected: true,
    }
}

fn text(c: &Collection, name: &str) -> String {
    match &c
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", c.warnings))
        .data
    {
        SourceData::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn field<'a>(csv: &'a str, tag: &str, column: usize) -> &'a str {
    csv.lines()
        .find(|l| l.split(',').next() == Some(tag))
        .unwrap_or_else(|| panic!("no {tag} in\n{csv}"))
        .splitn(5, ',')
        .nth(column)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_reads_cpppos_controller_and_sends_only_reads() {
    let Some(py) = peers::python_with("cpppo", "enip against cpppo's server") else {
        return;
    };
    let recipe: Vec<i64> = (0..100).map(|i| i * 3 - 50).collect();
    let big: Vec<i64> = (0..1000).map(|i| i * 1001 % 65_537).collect();
    let spec = json!({
        "tags": {"Recipe": ["DINT", 100], "Setpoint": ["REAL", 4], "Speed": ["DINT", 1], "Big": ["DINT", 1000]},
        "values": {"Recipe": recipe, "Setpoint": [12.5, 0.1, -3.0, 1e10], "Speed": 1234, "Big": big},
        "identity": {"Product Name": "1769-L33ER/A LOGIX5333ER", "Serial Number": 305419896, "Product Code Number": 97},
        "route": "1/0",
    });
    // Both ways of messaging: one class 3 connection (the default), and unconnected.
    for connected in [true, false] {
        let srv = Cpppo::start(&py, &spec);
        let c = EnipCollector::new(EnipOptions {
            connected,
            ..options(
                srv.addr,
                &["Recipe[100]", "Setpoint[4]", "Speed", "Big[1000]"],
            )
        })
        .unwrap()
        .collect()
        .await
        .unwrap();
        assert!(c.complete, "{:?}", c.warnings);
        let id = text(&c, "identity.txt");
        for want in [
            "product-name=1769-L33ER/A LOGIX5333ER",
            "serial-number=0x12345678",
            "product-code=97",
            "vendor=1 (Rockwell Automation/Allen-Bradley)",
            "module-product-name=1769-L33ER/A LOGIX5333ER",
        ] {
            assert!(id.lines().any(|l| l == want), "{want} not in\n{id}");
        }
        let csv = text(&c, "tags/controller.csv");
        let join = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
        assert_eq!(field(&csv, "Recipe", 4), join(&recipe));
        assert_eq!(field(&csv, "Recipe", 1), "DINT");
        // cpppo's REAL is a float32: 0.1 stored is 0.1f32, printed exactly as such.
        assert_eq!(field(&csv, "Setpoint", 4), "12.5 0.1 -3 10000000000");
        assert_eq!(field(&csv, "Speed", 4), "1234");
        assert_eq!(field(&csv, "Big", 4), join(&big));
        // What cpppo recorded: only the read commands and services; Big came in pieces.
        let log = srv.log.lock().unwrap().clone();
        assert!(!log.is_empty());
        let (commands, services): (&[u64], &[u64]) = if connected {
            (
                &[0x63, 0x65, 0x66, 0x6F, 0x70],
                // Large Forward Open, Forward Close, Multiple Service Packet too.
                &[0x01, 0x4C, 0x52, 0x5B, 0x4E, 0x0A],
            )
        } else {
            (&[0x63, 0x65, 0x66, 0x6F], &[0x01, 0x4C, 0x52])
        };
        let mut fragments = 0;
        for r in &log {
            let cmd = r["command"].as_u64().unwrap();
            assert!(commands.contains(&cmd), "sent {r}");
            let sent: Vec<u64> = r["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_u64().unwrap())
                .collect();
            for s in &sent {
                // 0x52 is both the Unconnected Send and Read Tag Fragmented.
                assert!(services.contains(s), "sent service {s:#x} in {r}");
            }
            // Inside a Multiple Service Packet, only Read Tag.
            if sent.first() == Some(&0x0A) {
                assert!(sent[1..].iter().all(|s| *s == 0x4C), "{r}");
            }
            let pieces = sent.iter().filter(|s| **s == 0x52).count();
            if (connected && cmd == 0x70 && pieces == 1) || pieces == 2 {
                fragments += 1;
            }
        }
        if connected {
            assert!(
                log.iter().any(|r| r["services"][0] == 0x5B),
                "no Large Forward Open: {log:?}"
            );
        }
        assert!(
            fragments >= if connected { 2 } else { 9 },
            "4000 bytes of Big in pieces: {fragments}: {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpppo_refusing_a_route_or_the_tag_directory_is_a_clear_warning_not_a_hang() {
    let Some(py) = peers::python_with("cpppo", "enip against cpppo's server") else {
        return;
    };
    let spec = json!({"tags": {"Speed": ["DINT", 1]}, "values": {"Speed": 7}, "route": "1/0"});
    let srv = Cpppo::start(&py, &spec);
    // The controller is in slot 0; slot 3 is refused by its Connection Manager.
    // Unconnected: cpppo checks the route of an Unconnected Send, but not the connection
    // path of a Forward Open (it grants one along any route; our simulator refuses, as a
    // Logix Connection Manager does: enip_sim's wrong-route test).
    let mut o = options(srv.addr, &["Speed"]);
    o.route = vec![(1, 3)];
    o.connected = false;
    let c = EnipCollector::new(o).unwrap().collect().await.unwrap();
    assert!(!c.complete);
    assert!(
        c.warnings.iter().any(|w| w.contains("route path 1,3")),
        "{:?}",
        c.warnings
    );
    // cpppo has no Symbol object: it drops the session; the directory is not read, the
    // identity is kept, and the fix is named.
    let t0 = std::time::Instant::now();
    let c = EnipCollector::new(options(srv.addr, &[]))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(!c.complete);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("tag directory not read")),
        "{:?}",
        c.warnings
    );
    assert!(text(&c, "identity.txt").contains("product-name=1756-L61/B LOGIX5561"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pycomm3_reads_our_simulated_controller_as_plcvault_stores_it() {
    let Some(py) = peers::python_with("pycomm3", "pycomm3 against our enip sim") else {
        return;
    };
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(20, 12))
        .await
        .unwrap();
    let ours = EnipCollector::new(options(sim.addr(), &[]))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(ours.complete, "{:?}", ours.warnings);
    let addr = sim.addr();
    let tags = json!([
        "Recipe{100}",
        "Setpoint{4}",
        "LineSpeed",
        "Enable",
        "Motor1",
        "Tag00020",
        "Program:MainProgram.StepNo",
        "Program:MainProgram.Gain"
    ]);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&py)
            .arg(peers::peers_dir().join("enip_peer.py"))
            .args([
                "client",
                "127.0.0.1",
                &addr.port().to_string(),
                &tags.to_string(),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "pycomm3 failed against our sim:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let info = &got["info"];
    let id = text(&ours, "identity.txt");
    assert_eq!(info["product_name"], "1756-L61/B LOGIX5561");
    assert!(id.contains(&format!(
        "product-name={}",
        info["product_name"].as_str().unwrap()
    )));
    assert!(id.contains(&format!("product-code={}", info["product_code"])));
    let serial = info["serial"].as_str().unwrap();
    assert!(
        id.contains(&format!("serial-number=0x{serial}")),
        "{serial}\n{id}"
    );
    assert_eq!(info["revision"], json!({"major": 20, "minor": 11}));
    assert_eq!(info["name"], "BOTTLING_L3");
    assert_eq!(info["programs"], json!(["MainProgram"]));
    // The same tag directory: pycomm3's user tags are the tags plcvault stored.
    let csv = text(&ours, "tags/controller.csv");
    let prog = text(&ours, "tags/program-MainProgram.csv");
    let mut stored: Vec<String> = csv
        .lines()
        .skip(3)
        .map(|l| l.split(',').next().unwrap().to_string())
        .chain(
            prog.lines()
                .skip(3)
                .map(|l| format!("Program:MainProgram.{}", l.split(',').next().unwrap())),
        )
        .collect();
    stored.sort();
    let mut theirs: Vec<String> = got["tags"].as_object().unwrap().keys().cloned().collect();
    theirs.sort();
    assert_eq!(theirs, stored);
    assert_eq!(got["tags"]["Motor1"]["data_type"], "MotorData");
    // The same values.
    let v = &got["values"];
    let nums = |tag: &str| -> String {
        v[tag]
            .as_array()
            .unwrap_or_else(|| panic!("{tag}: {}", v[tag]))
            .iter()
            .map(|x| match x.as_i64() {
                Some(i) => i.to_string(),
                None => format!("{}", x.as_f64().unwrap() as f32),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(nums("Recipe{100}"), field(&csv, "Recipe", 4));
    assert_eq!(nums("Setpoint{4}"), field(&csv, "Setpoint", 4));
    assert_eq!(v["LineSpeed"].to_string(), field(&csv, "LineSpeed", 4));
    assert_eq!(v["Tag00020"].to_string(), field(&csv, "Tag00020", 4));
    assert_eq!(v["Enable"], json!(true));
    assert_eq!(field(&csv, "Enable", 4), "1");
    assert_eq!(
        v["Program:MainProgram.StepNo"].to_string(),
        field(&prog, "StepNo", 4)
    );
    assert_eq!(
        v["Program:MainProgram.Gain"].to_string(),
        field(&prog, "Gain", 4)
    );
    // The structure, member by member from the bytes plcvault stored.
    let m = &v["Motor1"];
    let hex = field(&csv, "Motor1", 4);
    let b: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(m["Speed"], i32::from_le_bytes(b[0..4].try_into().unwrap()));
    assert_eq!(
        m["Current"].as_f64().unwrap() as f32,
        f32::from_le_bytes(b[4..8].try_into().unwrap())
    );
    assert_eq!(m["Mode"], i16::from_le_bytes(b[8..10].try_into().unwrap()));
    assert_eq!(m["Flags"], b[10] as i8);
}
