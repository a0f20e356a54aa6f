//! End-to-end: the binary collects simulated S7 CPUs (our S7comm simulator): collect, a
//! logic change behind the tool's back, diff --live, approval, drills to a folder and onto
//! a writable spare (DB contents only), and the report.

mod common;

use adapters::s7::proto::BlockType;
use adapters::s7::sim::{S7Sim, S7SimConfig};
use common::Site;

fn add_cpu(s: &Site, name: &str, addr: std::net::SocketAddr, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        r#"
[[device]]
name = "{name}"
adapter = "s7"
address = "{addr}"
rack = 0
slot = 2
timeout = "500ms"
retries = 1
max-requests-per-second = 200
{extra}
[[device.db]]
number = 10
size = 200
kind = "recipe"
"#
    ));
    std::fs::write(s.config(), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_fb_behind_the_tools_back_is_a_critical_logic_finding_naming_the_block() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    let cpu = S7Sim::start("127.0.0.1:0", S7SimConfig::generated(20, 1))
        .await
        .unwrap();
    add_cpu(&s, "filler", cpu.addr(), "");
    assert_eq!(s.run(&["config", "check"]).code, 0);
    let r = s.run(&["--json", "collect", "filler"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(d["status"], "ok", "{d}");
    let alice = s.add_approver();
    assert_eq!(s.approve("filler", &alice, "CHG-1").code, 0);

    // Someone downloads a changed FB2 from an engineering station.
    cpu.update(|c| {
        let b = c.block_mut(BlockType::Fb, 2).unwrap();
        b.code_mut()[5] ^= 0x40;
        b.reseal();
    });
    let r = s.run(&["--json", "diff", "filler", "--live"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let findings = r.records("finding");
    let fb = findings
        .iter()
        .find(|f| f["artifact"] == "blocks/FB2.mc7")
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(
        (fb["class"].as_str(), fb["severity"].as_str()),
        (Some("logic"), Some("critical")),
        "{fb}"
    );
    // The block list shows its new checksum; nothing else changed.
    let csv = findings
        .iter()
        .find(|f| f["artifact"] == "blocks.csv")
        .unwrap();
    assert_eq!(csv["class"], "logic");
    assert!(csv["diff"].as_str().unwrap().contains("\n+FB2,"), "{csv}");
    let names: Vec<&str> = findings
        .iter()
        .map(|f| f["artifact"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Collected, it is drift (exit 1), and the byte range of the change is named.
    let r = s.run(&["collect", "filler"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("blocks/FB2.mc7"), "{}", r.stdout);

    // A firmware change shows as an identity field, old and new.
    cpu.update(|c| c.firmware = (3, 3, 0));
    let r = s.run(&["--json", "diff", "filler", "--live"]);
    let id = r
        .records("finding")
        .into_iter()
        .find(|f| f["artifact"] == "identity.txt")
        .unwrap();
    assert_eq!(id["class"], "identity");
    assert!(id.to_string().contains("V3.3.0"), "{id}");
    // The CPU going to STOP is recorded, never a finding by itself.
    cpu.update(|c| {
        c.firmware = (3, 2, 8);
        c.cpu_state = 0x04;
    });
    let r = s.run(&["--json", "diff", "filler", "--live"]);
    assert!(
        !r.records("finding")
            .iter()
            .any(|f| f["artifact"] == "identity.txt"),
        "{}",
        r.stdout
    );
    // Only read functions reached the CPU.
    for q in cpu.requests() {
        assert!(
            !q.function.starts_with("job 0x") && q.function != "write-var",
            "sent {}",
            q.function
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_restore_to_a_folder_and_db_contents_onto_a_writable_spare() {
    let s = Site::new();
    let cpu = S7Sim::start("127.0.0.1:0", S7SimConfig::generated(10, 2))
        .await
        .unwrap();
    let mut spare_cfg = S7SimConfig::generated(10, 2);
    spare_cfg.dbs[0].1 = vec![0; 200];
    spare_cfg.writable = true;
    let spare = S7Sim::start("127.0.0.1:0", spare_cfg).await.unwrap();
    add_cpu(&s, "filler", cpu.addr(), "");
    add_cpu(
        &s,
        "spare",
        spare.addr(),
        "writable = true\nnightly = false",
    );
    assert_eq!(s.run(&["collect", "filler"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("filler", &alice, "CHG-1").code, 0);
    let to = s.path("drill");
    let r = s.run(&["--json", "drill", "filler", "--to", to.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("drill")[0]["passed"], true);

    let r = s.run(&["--json", "drill", "filler", "--target", "spare"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], true, "{d}");
    // The record counts what was written and read back: the DB, not the blocks.
    assert_eq!(
        (d["artifacts"].as_u64(), d["bytes"].as_u64()),
        (Some(1), Some(200)),
        "{d}"
    );
    // The spare's DB now holds the recipe; its blocks were never written.
    let want = cpu.config().dbs[0].1.clone();
    assert_eq!(spare.config().dbs[0].1, want);
    let writes = spare
        .requests()
        .iter()
        .filter(|q| q.function == "write-var")
        .count();
    assert!(writes >= 1);
    assert!(
        !spare
            .requests()
            .iter()
            .any(|q| q.function.starts_with("job 0x")),
        "{:?}",
        spare.requests()
    );
    // The report sees the device, its baseline and its drill.
    let r = s.run(&["--json", "report"]);
    let st = r
        .records("device-status")
        .into_iter()
        .find(|d| d["device"] == "filler")
        .unwrap();
    assert!(st["last_drill"]["passed"].as_bool().unwrap(), "{st}");
    assert!(st["baseline"].is_object(), "{st}");
}

/// A block that cannot be uploaded (know-how protected) whose info changed is still a
/// `logic` finding: its new checksum shows in blocks.csv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_block_whose_info_changed_is_still_a_logic_finding() {
    let s = Site::new();
    let mut cfg = S7SimConfig::generated(12, 5);
    cfg.block_mut(BlockType::Fb, 3).unwrap().protected = true;
    let cpu = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    add_cpu(&s, "press", cpu.addr(), "");
    let r = s.run(&["--json", "collect", "press"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let alice = s.add_approver();
    assert_eq!(s.approve("press", &alice, "CHG-1").code, 0);
    cpu.update(|c| {
        let b = c.block_mut(BlockType::Fb, 3).unwrap();
        b.code_mut()[0] ^= 0x10;
        b.reseal();
    });
    let r = s.run(&["--json", "collect", "press"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let findings = r.records("finding");
    assert_eq!(findings.len(), 1, "{findings:?}");
    let f = &findings[0];
    assert_eq!(
        (f["artifact"].as_str(), f["class"].as_str()),
        (Some("blocks.csv"), Some("logic"))
    );
    assert!(f["diff"].as_str().unwrap().contains("\n+FB3,"), "{f}");
}

/// Settings mistakes are config errors at their key, with the fix.
#[test]
fn s7_settings_mistakes_are_config_errors_at_their_key() {
    for (body, expected) in [
        (
            "address = \"10.1.1.30\"\n[[device.db]]\nnumber = 10\nstart = 4294967295\nsize = 10",
            "runs past byte",
        ),
        (
            "address = \"10.1.1.30\"\n[[device.db]]\nnumber = 10\nsize = 10\n[[device.db]]\nnumber = 10\nsize = 20",
            "listed twice",
        ),
        (
            "address = \"10.1.1.30\"\nblocks = []",
            "no block type listed",
        ),
        (
            "address = \"10.1.1.30\"\nblocks = [\"XB\"]",
            "not a block type",
        ),
        (
            "address = \"10.1.1.30\"\nrack = 0\nremote-tsap = \"01.02\"",
            "either remote-tsap or rack",
        ),
        ("address = \"10.1.1.30\"\nremote-tsap = \"+1.02\"", "is not"),
        (
            "address = \"10.1.1.30\"\npdu-size = 100",
            "outside 240 to 960",
        ),
        ("address = \"10.1.1.30\"\nslot = 40", "a slot 0 to 31"),
        (
            "address = \"10.1.1.30\"\nconnection = \"xx\"",
            "pg, op or basic",
        ),
        ("adress = \"10.1.1.30\"", "did you mean `address`"),
    ] {
        let s = Site::new();
        let mut text = std::fs::read_to_string(s.config()).unwrap();
        text.push_str(&format!(
            "\n[[device]]\nname = \"cpux\"\nadapter = \"s7\"\n{body}\n"
        ));
        std::fs::write(s.config(), &text).unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{body}");
        assert!(r.stderr.contains(expected), "{body}: {}", r.stderr);
        assert!(r.stderr.contains("plcvault.toml:"), "{body}: {}", r.stderr);
    }
}
