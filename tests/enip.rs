//! End-to-end: the binary collects simulated Logix controllers (our EtherNet/IP
//! simulator): collect, a recipe change and a download behind the tool's back, diff
//! --live by tag, a volatile counter, approval, drills to a folder and onto a writable
//! spare (tag values written, then read back), and the report.

mod common;

use adapters::enip::sim::{EnipSim, EnipSimConfig, SimTag};
use common::Site;

fn add_controller(s: &Site, name: &str, addr: std::net::SocketAddr, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        r#"
[[device]]
name = "{name}"
adapter = "enip"
address = "{addr}"
slot = 0
timeout = "500ms"
retries = 1
max-requests-per-second = 500
volatile = ["tag:Counter", "tag:Program:*.StepNo"]
{extra}
[[device.kind]]
match = "Recipe"
kind = "recipe"
"#
    ));
    std::fs::write(s.config(), text).unwrap();
}

/// The findings of a `--json` run on `artifact`, as (address, class, old, new).
fn items(r: &common::Run) -> Vec<(String, String, String, String)> {
    r.records("finding")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            (s("address"), s("class"), s("old"), s("new"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_recipe_and_a_download_are_findings_named_by_tag() {
    let s = Site::new();
    let plc = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(20, 1))
        .await
        .unwrap();
    add_controller(&s, "bottling", plc.addr(), "");
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = s.run(&["--json", "collect", "bottling"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("device")[0]["status"], "ok", "{}", r.stdout);
    let alice = s.add_approver();
    assert_eq!(s.approve("bottling", &alice, "CHG-1").code, 0);

    // The counter counts and the step moves: approved as volatile, not a finding.
    plc.update(|c| {
        c.tag_mut("Counter").unwrap().bytes = 41i32.to_le_bytes().to_vec();
        c.tag_mut("Program:MainProgram.StepNo").unwrap().bytes = 7i32.to_le_bytes().to_vec();
    });
    let r = s.run(&["--json", "diff", "bottling", "--live"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.records("finding").is_empty(), "{}", r.stdout);

    // Someone changes a recipe element and downloads a program with a new tag and a
    // retyped one.
    plc.update(|c| {
        c.tag_mut("Recipe").unwrap().bytes[12..16].copy_from_slice(&999i32.to_le_bytes());
        c.controller.push(SimTag::dints("Bypass", &[], &[1]));
        let speed = c.tag_mut("LineSpeed").unwrap();
        *speed = SimTag::reals("LineSpeed", &[], &[1201.5]);
    });
    let r = s.run(&["--json", "diff", "bottling", "--live"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let got = items(&r);
    let want_recipe = (
        "Controller / Tag Recipe / value[3]".to_string(),
        "recipe".to_string(),
        "31".to_string(),
        "999".to_string(),
    );
    assert!(got.contains(&want_recipe), "{got:#?}");
    assert!(
        got.iter()
            .any(|g| g.0 == "Controller / Tag Bypass" && g.1 == "config"),
        "{got:#?}"
    );
    assert!(
        got.contains(&(
            "Controller / Tag LineSpeed / type".into(),
            "config".into(),
            "DINT".into(),
            "REAL".into()
        )),
        "{got:#?}"
    );
    // Nothing else: the counter is still masked.
    assert_eq!(got.len(), 4, "{got:#?}");
    let speed_value = got
        .iter()
        .find(|g| g.0 == "Controller / Tag LineSpeed / value")
        .unwrap();
    assert_eq!(
        (speed_value.2.as_str(), speed_value.3.as_str()),
        ("1201", "1201.5")
    );

    // A swapped controller (another serial number) is an identity finding.
    plc.update(|c| c.identity.serial = 0x00C0FFEE);
    let r = s.run(&["--json", "diff", "bottling", "--live"]);
    let id = r
        .records("finding")
        .into_iter()
        .find(|f| f["artifact"] == "identity.txt")
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(id["class"], "identity");
    assert!(id.to_string().contains("00c0ffee"), "{id}");

    // Collected, it is drift (exit 1).
    let r = s.run(&["collect", "bottling"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    // Only read services reached the controller (the names the simulator records).
    let reads = [
        "ListIdentity",
        "RegisterSession",
        "UnRegisterSession",
        "SendRRData",
        "SendUnitData",
        "Unconnected Send",
        "Large Forward Open",
        "Forward Close",
        "Multiple Service Packet",
        "Get_Attribute_All",
        "Get_Instance_Attribute_List",
        "Read Tag",
        "Read Tag Fragmented",
    ];
    for q in plc.requests() {
        assert!(reads.contains(&q.function.as_str()), "sent {}", q.function);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_restore_to_a_folder_and_tag_values_onto_a_writable_spare() {
    let s = Site::new();
    let plc = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(5, 2))
        .await
        .unwrap();
    let mut spare_cfg = EnipSimConfig::generated(5, 9);
    spare_cfg.writable = true;
    let spare = EnipSim::start("127.0.0.1:0", spare_cfg).await.unwrap();
    add_controller(&s, "bottling", plc.addr(), "");
    add_controller(
        &s,
        "spare",
        spare.addr(),
        "writable = true\nnightly = false",
    );
    assert_eq!(s.run(&["collect", "bottling"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("bottling", &alice, "CHG-1").code, 0);
    let to = s.path("drill");
    let r = s.run(&["--json", "drill", "bottling", "--to", to.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("drill")[0]["passed"], true);
    assert!(to.join("bottling/tags/controller.csv").is_file());

    // Onto the spare: tag values written, then read back.
    let before = spare.config().tag_mut("Recipe").unwrap().bytes.clone();
    let r = s.run(&["--json", "drill", "bottling", "--target", "spare"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], true, "{d}");
    let want = plc.config().tag_mut("Recipe").unwrap().bytes.clone();
    let now = spare.config().tag_mut("Recipe").unwrap().bytes.clone();
    assert_ne!(before, want);
    assert_eq!(now, want);
    assert!(
        spare
            .requests()
            .iter()
            .any(|q| q.function.starts_with("Write Tag"))
    );
    // The controller that is not writable was never written.
    assert!(
        !plc.requests()
            .iter()
            .any(|q| q.function.starts_with("Write")),
        "{:?}",
        plc.requests()
    );
    // Onto a controller the config does not mark writable: refused before a byte is sent.
    let r = s.run(&["drill", "spare", "--target", "bottling"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        !plc.requests()
            .iter()
            .any(|q| q.function.starts_with("Write")),
    );

    let r = s.run(&["--json", "report"]);
    let st = r
        .records("device-status")
        .into_iter()
        .find(|d| d["device"] == "bottling")
        .unwrap();
    assert!(st["last_drill"]["passed"].as_bool().unwrap(), "{st}");
    assert!(st["baseline"].is_object(), "{st}");
}
