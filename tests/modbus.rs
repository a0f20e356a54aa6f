//! End-to-end: the binary collects simulated PLCs (our tokio-modbus server) over Modbus TCP.

mod common;

use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
use common::Site;

fn add_plc(s: &Site, name: &str, addr: std::net::SocketAddr, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        r#"
[[device]]
name = "{name}"
adapter = "modbus"
address = "{addr}"
unit = 1
timeout = "300ms"
retries = 1
max-requests-per-second = 200
{extra}
[[device.range]]
table = "holding"
start = 0
count = 300
kind = "recipe"
label = "recipes"

[[device.range]]
table = "coils"
start = 0
count = 64
kind = "config"
"#
    ));
    std::fs::write(s.config(), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collects_plcs_and_files_and_names_the_changed_register_file() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    let plc1 = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(1000, 1)))
        .await
        .unwrap();
    let plc2 = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(1000, 2)))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc1.addr(), "");
    add_plc(&s, "plc2", plc2.addr(), "identify = false");

    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let devs = r.records("device");
    assert_eq!(devs.len(), 3);
    let plc1_rec = devs.iter().find(|d| d["device"] == "plc1").unwrap();
    assert_eq!(plc1_rec["artifacts"], 3, "{plc1_rec}");
    let plc2_rec = devs.iter().find(|d| d["device"] == "plc2").unwrap();
    assert_eq!(plc2_rec["artifacts"], 2, "{plc2_rec}");

    // A recipe register changed behind the tool's back.
    plc1.set_holding(42, 4242);
    let r = s.run(&["--json", "collect", "plc1", "plc2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let devs = r.records("device");
    let plc1_rec = devs.iter().find(|d| d["device"] == "plc1").unwrap();
    assert_eq!(
        plc1_rec["changes"]["changed"],
        serde_json::json!(["holding/0-299.csv"])
    );
    let plc2_rec = devs.iter().find(|d| d["device"] == "plc2").unwrap();
    assert_eq!(plc2_rec["changes"]["changed"], serde_json::json!([]));
    assert_eq!(plc2_rec["new_bytes"], 0);

    // Restore shows the register as the canonical text.
    let out = s.path("out");
    assert_eq!(
        s.run(&["restore", "plc1", "--to", out.to_str().unwrap()])
            .code,
        0
    );
    let text = std::fs::read_to_string(out.join("holding/0-299.csv")).unwrap();
    assert!(text.lines().any(|l| l == "42,4242"), "{text}");
    assert!(
        plc1.requests()
            .iter()
            .all(|q| [1, 2, 3, 4, 43].contains(&q.function))
    );
    assert_eq!(s.run(&["verify", "--read-data"]).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_plc_exits_3_and_the_others_are_stored() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(1000, 1)))
        .await
        .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    add_plc(&s, "dead", dead, "");
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let devs = r.records("device");
    let ok: Vec<_> = devs
        .iter()
        .filter(|d| d["status"] == "ok")
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(ok.len(), 2, "{devs:?}");
    let dead_rec = devs.iter().find(|d| d["device"] == "dead").unwrap();
    assert_eq!(dead_rec["status"], "failed");
    assert!(
        dead_rec["error"].as_str().unwrap().contains("unreachable"),
        "{dead_rec}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_range_makes_the_run_exit_3_and_names_the_range() {
    let s = Site::new();
    // Only 100 holding registers exist; the config asks for 300.
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(100, 1)))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    let r = s.run(&["--json", "collect", "plc1"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let d = &r.records("device")[0];
    assert_eq!(d["status"], "incomplete");
    let w = d["warnings"].to_string();
    assert!(
        w.contains("recipes (holding 0-299)") && w.contains("illegal data address"),
        "{w}"
    );
    let list = s.run(&["--json", "snapshots"]).records("snapshot");
    assert_eq!(list[0]["complete"], false);
}

#[test]
fn modbus_config_errors_name_device_key_and_line() {
    let cases = [
        ("address = \"10.1.1.10\"", "has no port"),
        (
            "address = \"10.1.1.10:502\"\n[[device.range]]\ntable = \"holding\"\nstart = 65500\ncount = 100",
            "runs past address 65535",
        ),
        (
            "address = \"10.1.1.10:502\"\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 0",
            "count is 0",
        ),
        (
            "address = \"10.1.1.10:502\"\n[[device.range]]\ntable = \"holdings\"\nstart = 0\ncount = 1",
            "is not a table",
        ),
        (
            "address = \"10.1.1.10:502\"\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 1\nkind = \"magic\"",
            "unknown artifact kind",
        ),
        (
            "address = \"10.1.1.10:502\"\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 10\n[[device.range]]\ntable = \"holding\"\nstart = 5\ncount = 10",
            "overlaps",
        ),
        (
            "address = \"10.1.1.10:502\"\npath = \"/x\"\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 1",
            "does not apply to adapter modbus",
        ),
        (
            "address = \"10.1.1.10:502\"\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncuont = 1",
            "[[device.range]] key `cuont` is unknown",
        ),
    ];
    for (body, expected) in cases {
        let s = Site::new();
        let mut text = std::fs::read_to_string(s.config()).unwrap();
        let line = text.lines().count() + 3;
        text.push_str(&format!(
            "\n[[device]]\nname = \"plcx\"\nadapter = \"modbus\"\n{body}\n"
        ));
        std::fs::write(s.config(), &text).unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{body}");
        assert!(r.stderr.contains(expected), "{body}: {}", r.stderr);
        assert!(r.stderr.contains("plcx"), "{body}: {}", r.stderr);
        let at = r
            .stderr
            .split("plcvault.toml:")
            .nth(1)
            .and_then(|t| t.split(':').next())
            .and_then(|n| n.parse::<usize>().ok());
        assert!(
            at.is_some_and(|n| n >= line),
            "{body}: no line number in {}",
            r.stderr
        );
    }
}

/// Issue 19: a PLC that accepts TCP and never answers was stored as a signed, incomplete
/// snapshot with no artifacts and exit 1 (the code of drift). It is a failed collection:
/// exit 3, `collect-failed` in the log, no snapshot; a drifted device in the same run is
/// still reported as drifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_that_never_answers_is_not_collected_exit_3_and_no_snapshot() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    let mut cfg = SimConfig::new(SimMap::generated(1000, 1));
    cfg.response_delay = std::time::Duration::from_secs(30);
    let mute = SimPlc::start("127.0.0.1:0", cfg).await.unwrap();
    add_plc(&s, "mute", mute.addr(), "");
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let devs = r.records("device");
    let m = devs.iter().find(|d| d["device"] == "mute").unwrap();
    assert_eq!(m["status"], "failed", "{m}");
    assert!(m["snapshot"].is_null(), "{m}");
    let snaps = s.run(&["--json", "snapshots", "mute"]).records("snapshot");
    assert!(snaps.is_empty(), "{snaps:?}");
    let summary = &r.records("summary")[0];
    assert_eq!(
        (summary["ok"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(1))
    );
    // Gently: once the first read used up its retries (retries = 1: two attempts), the
    // other ranges are not asked for.
    let asked = mute.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(m["error_kind"], "timeout", "{m}");
    assert!(m["error"].as_str().unwrap().contains("skipped"), "{m}");
}
