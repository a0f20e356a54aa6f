//! Plant safety from the wire, by a recorder nobody here wrote: a loopback capture
//! (tcpdump) of a collection, decoded by Wireshark's dissectors (tshark). Every request
//! plcvault put on the wire must be one of the read functions the README lists, and
//! Wireshark must parse our simulators' replies without a malformed-packet complaint.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use adapters::enip::sim::{EnipSim, EnipSimConfig};
use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
use adapters::s7::sim::{S7Sim, S7SimConfig};
use common::Site;

/// `None` (loudly) when tcpdump or tshark is missing and peers are optional; a panic when
/// `PLCVAULT_REQUIRE_PEERS=1`.
fn tools(test: &str) -> bool {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if have("tcpdump") && have("tshark") {
        return true;
    }
    if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!(
            "{test}: tcpdump and tshark are required (PLCVAULT_REQUIRE_PEERS=1); run `bash tests/run.sh`"
        );
    }
    eprintln!("SKIPPED {test}: tcpdump or tshark not installed (run `bash tests/run.sh`)");
    false
}

/// A running loopback capture of one TCP port.
struct Capture {
    child: Child,
    file: std::path::PathBuf,
    /// What tcpdump said, for failure messages.
    said: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Capture {
    fn start(dir: &std::path::Path, port: u16) -> Capture {
        let file = dir.join(format!("cap-{port}.pcap"));
        let mut child = Command::new("tcpdump")
            .args([
                "-i",
                "lo",
                "-U",
                "--immediate-mode",
                "-n",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&file)
            .arg(format!("tcp port {port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        // tcpdump says when it listens.
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let said2 = said.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut seen = said2.lock().unwrap();
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if seen.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("tcpdump did not start listening");
        Capture { child, file, said }
    }

    /// Stops the capture (tcpdump writes every packet as it comes, `-U`).
    fn stop(&mut self) {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// The decoded fields of the captured packets matching `filter`.
    fn fields(&self, decode: &str, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        let mut cmd = Command::new("tshark");
        cmd.arg("-r")
            .arg(&self.file)
            .args(["-d", decode, "-Y", filter, "-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let out = cmd.output().expect("run tshark");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// One line per captured packet, for failure messages.
    fn summary(&self) -> String {
        let out = Command::new("tshark").arg("-r").arg(&self.file).output();
        let packets = out
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .take(20)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        format!("tcpdump: {}\n{packets}", self.said.lock().unwrap())
    }

    fn malformed(&self, decode: &str) -> String {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&self.file)
            .args([
                "-d",
                decode,
                "-Y",
                "_ws.malformed || _ws.expert.severity >= error",
            ])
            .output()
            .expect("run tshark");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s7_collection_puts_only_read_functions_on_the_wire() {
    if !tools("s7 on the wire") {
        return;
    }
    let s = Site::new();
    let cpu = S7Sim::start("127.0.0.1:0", S7SimConfig::generated(20, 3))
        .await
        .unwrap();
    let port = cpu.addr().port();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"cpu\"\nadapter = \"s7\"\naddress = \"{}\"\nmax-requests-per-second = 500\n\n[[device.db]]\nnumber = 10\nsize = 200\n",
        cpu.addr()
    ));
    std::fs::write(s.config(), text).unwrap();
    let mut cap = Capture::start(&s.path(""), port);
    let r = s.run(&["collect", "cpu"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    cap.stop();
    let decode = format!("tcp.port=={port},tpkt");
    // Wireshark finds our simulator's replies (and our requests) well-formed.
    let bad = cap.malformed(&decode);
    assert!(
        bad.trim().is_empty(),
        "Wireshark calls these malformed:\n{bad}"
    );
    let requests = cap.fields(
        &decode,
        &format!("tcp.dstport == {port} && s7comm"),
        &[
            "s7comm.header.rosctr",
            "s7comm.param.func",
            "s7comm.param.userdata.funcgroup",
            "s7comm.param.userdata.subfunc",
        ],
    );
    // Connection set-up, 4 SZL, 5 lists, and info plus upload for each of 23 blocks.
    assert!(
        requests.len() > 60,
        "{} S7 requests decoded from {}:\n{}",
        requests.len(),
        cap.file.display(),
        cap.summary()
    );
    for row in &requests {
        let ok = match row[0].as_str() {
            "1" => ["0xf0", "0x04", "0x1d", "0x1e", "0x1f"].contains(&row[1].as_str()),
            "7" => {
                [("4", "1"), ("3", "2"), ("3", "3")].contains(&(row[2].as_str(), row[3].as_str()))
            }
            _ => false,
        };
        assert!(ok, "on the wire: {row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_collection_puts_only_read_functions_on_the_wire() {
    if !tools("modbus on the wire") {
        return;
    }
    let s = Site::new();
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(500, 4)))
        .await
        .unwrap();
    let port = plc.addr().port();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"plc\"\nadapter = \"modbus\"\naddress = \"{}\"\nmax-requests-per-second = 500\n\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 500\n\n[[device.range]]\ntable = \"coils\"\nstart = 0\ncount = 64\n\n[[device.range]]\ntable = \"input\"\nstart = 0\ncount = 16\n\n[[device.range]]\ntable = \"discrete\"\nstart = 0\ncount = 16\n",
        plc.addr()
    ));
    std::fs::write(s.config(), text).unwrap();
    let mut cap = Capture::start(&s.path(""), port);
    let r = s.run(&["collect", "plc"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    cap.stop();
    let bad = cap.malformed(&format!("tcp.port=={port},mbtcp"));
    assert!(
        bad.trim().is_empty(),
        "Wireshark calls these malformed:\n{bad}"
    );
    let rows = cap.fields(
        &format!("tcp.port=={port},mbtcp"),
        &format!("tcp.dstport == {port} && modbus"),
        &["modbus.func_code"],
    );
    assert!(rows.len() >= 7, "{} Modbus requests decoded", rows.len());
    for row in &rows {
        assert!(
            ["1", "2", "3", "4", "43"].contains(&row[0].as_str()),
            "on the wire: function {row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enip_collection_puts_only_read_services_on_the_wire() {
    if !tools("enip on the wire") {
        return;
    }
    let s = Site::new();
    let plc = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(300, 5))
        .await
        .unwrap();
    let port = plc.addr().port();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"logix\"\nadapter = \"enip\"\naddress = \"{}\"\nmax-requests-per-second = 500\n",
        plc.addr()
    ));
    std::fs::write(s.config(), text).unwrap();
    let mut cap = Capture::start(&s.path(""), port);
    let r = s.run(&["collect", "logix"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    cap.stop();
    let decode = format!("tcp.port=={port},enip");
    let bad = cap.malformed(&decode);
    assert!(
        bad.trim().is_empty(),
        "Wireshark calls these malformed:\n{bad}"
    );
    let rows = cap.fields(
        &decode,
        &format!("tcp.dstport == {port} && enip"),
        &["enip.command", "cip.sc", "cip.cm.fwo.transport"],
    );
    assert!(
        rows.len() > 10,
        "{} requests decoded:\n{}",
        rows.len(),
        cap.summary()
    );
    let mut services = std::collections::BTreeSet::new();
    for row in &rows {
        assert!(
            ["0x0063", "0x0065", "0x0066", "0x006f", "0x0070"].contains(&row[0].as_str()),
            "on the wire: command {row:?}"
        );
        services.extend(
            row[1]
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string),
        );
        // A connection opened is class 3 (explicit messaging), never an I/O connection.
        if !row[2].is_empty() {
            assert_eq!(row[2], "3", "{row:?}");
        }
    }
    // Wireshark decodes the services inside SendUnitData (it followed the Forward Open),
    // each Read Tag inside a Multiple Service Packet, and nothing else.
    let allowed = ["0x01", "0x0a", "0x4c", "0x4e", "0x52", "0x55", "0x5b"];
    for sc in &services {
        assert!(
            allowed.contains(&sc.as_str()),
            "service {sc} on the wire: {rows:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r[2] == "3"),
        "no Forward Open decoded: {rows:?}"
    );
    for want in ["0x01", "0x0a", "0x4c", "0x55", "0x5b"] {
        assert!(services.contains(want), "no {want} decoded: {services:?}");
    }
}
