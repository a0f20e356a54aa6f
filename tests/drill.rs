//! Restore drills into a scratch folder: pass, fail on damage naming the artifact, and the
//! signed drill record.

mod common;

use common::{Site, noise};

#[test]
fn a_drill_restores_the_baseline_proves_it_and_signs_the_result() {
    let s = Site::new();
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\nA I0.0\n");
    s.write("plant/hmi/panel.img", &noise(3 * 1024 * 1024, 5));
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    // A later, unapproved change: the drill still restores the approved baseline.
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\nA I0.1\n");
    s.run(&["collect", "--all"]);

    let keep = s.path("drills");
    let r = s.run(&["--json", "drill", "line1", "--to", keep.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], true);
    assert_eq!(d["artifacts"], 2);
    assert!(d["source"].as_str().unwrap().contains("CHG-1"), "{d}");
    assert_eq!(
        std::fs::read(keep.join("line1/PLC1/OB1.awl")).unwrap(),
        b"NETWORK 1\nA I0.0\n"
    );
    // The result is a signed log entry, and the log still verifies.
    let entries: Vec<String> = common::files_under(&s.vault().join("log"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e.contains("\"type\":\"drill\"") && e.contains("\"passed\":true"))
    );
    assert_eq!(s.run(&["verify"]).code, 0);
}

#[test]
fn a_flipped_byte_fails_the_drill_and_names_the_artifact() {
    let s = Site::new();
    s.write("plant/hmi/panel.img", &noise(2 * 1024 * 1024, 6));
    s.write("plant/small.csv", b"a;1\n");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    // Damage the pack holding the image (the larger pack).
    let mut packs = common::files_under(&s.vault().join("packs"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let big = packs.last().unwrap();
    let mut bytes = std::fs::read(big).unwrap();
    bytes[5000] ^= 0x01;
    std::fs::write(big, bytes).unwrap();
    let r = s.run(&["--json", "drill", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], false);
    let failures = d["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{d}");
    assert_eq!(failures[0]["artifact"], "hmi/panel.img");
    let entries: Vec<String> = common::files_under(&s.vault().join("log"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e.contains("\"type\":\"drill\"") && e.contains("\"passed\":false"))
    );
}

fn add_plc(s: &Site, name: &str, addr: std::net::SocketAddr, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"{name}\"\nadapter = \"modbus\"\naddress = \"{addr}\"\ntimeout = \"500ms\"\nmax-requests-per-second = 40\nidentify = false\n{extra}\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 300\nkind = \"recipe\"\n\n[[device.range]]\ntable = \"coils\"\nstart = 0\ncount = 40\nkind = \"config\"\n\n[[device.range]]\ntable = \"input\"\nstart = 0\ncount = 8\nkind = \"values\"\n"
    ));
    std::fs::write(s.config(), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_not_marked_writable_is_never_written() {
    use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
    let s = Site::new();
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(400, 1)))
        .await
        .unwrap();
    let spare = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(400, 2)))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    add_plc(&s, "spare", spare.addr(), "");
    assert_eq!(s.run(&["collect", "plc1"]).code, 0);
    let r = s.run(&["restore", "plc1", "--target", "spare"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("writable = true"), "{}", r.stderr);
    // Issue 19: a drill onto a device not marked writable is a usage error (exit 2, with
    // the fix), not a signed failed drill: no log entry is written.
    let entries = log_entries(&s);
    let r = s.run(&["--json", "drill", "plc1", "--target", "spare"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.records("drill").is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("writable = true"), "{}", r.stderr);
    assert_eq!(
        log_entries(&s),
        entries,
        "no log entry for a drill that never ran"
    );
    // Nor onto the device itself, nor a files snapshot onto a Modbus device.
    let r = s.run(&["drill", "plc1", "--target", "plc1"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not onto `plc1` itself"), "{}", r.stderr);
    s.write("plant/a.cfg", b"a=1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text = text.replacen(
        "identify = false\n",
        "identify = false\nwritable = true\n",
        2,
    );
    std::fs::write(s.config(), text).unwrap();
    let entries = log_entries(&s);
    let r = s.run(&["drill", "line1", "--target", "spare"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("a files device") && r.stderr.contains("--to DIR"),
        "{}",
        r.stderr
    );
    assert_eq!(log_entries(&s), entries);
    // A restore checks the same before it says it writes anything.
    let r = s.run(&["restore", "line1", "--target", "spare"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("a restore writes") && !r.stderr.contains("writing snapshot"),
        "{}",
        r.stderr
    );
    assert!(
        spare.requests().is_empty(),
        "requests reached a non-writable device: {:?}",
        spare.requests()
    );
}

fn log_entries(s: &Site) -> usize {
    common::files_under(&s.vault().join("log")).len()
}

#[test]
fn drill_all_goes_on_past_a_device_without_a_snapshot_and_exits_with_the_worst_result() {
    let s = Site::new();
    std::fs::create_dir_all(s.path("plant0")).unwrap();
    // line0 comes first in the config, and only line1 is collected: line0 has no snapshot.
    let text = std::fs::read_to_string(s.config()).unwrap().replacen(
        "[[device]]\nname = \"line1\"",
        &format!(
            "[[device]]\nname = \"line0\"\nadapter = \"files\"\npath = \"{}\"\n\n[[device]]\nname = \"line1\"",
            s.path("plant0").display()
        ),
        1,
    );
    std::fs::write(s.config(), text).unwrap();
    s.write("plant/a.cfg", b"a=1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let r = s.run(&["--json", "drill", "--all"]);
    // A device with no snapshot in a batch is a device not read (exit 3), not a usage
    // error: a weekly `drill --all` must not report "the run failed" for it.
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let skipped = r.records("drill-skipped");
    assert_eq!(skipped.len(), 1, "{}", r.stdout);
    assert_eq!(skipped[0]["device"], "line0");
    let drills = r.records("drill");
    assert_eq!(drills.len(), 1, "{}", r.stdout);
    assert_eq!(
        (drills[0]["device"].as_str(), drills[0]["passed"].as_bool()),
        (Some("line1"), Some(true))
    );
    // It says the device was never collected and what to do, and no "drilling its newest".
    let r = s.run(&["drill", "line0"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`line0` has never been collected")
            && r.stderr.contains("plcvault collect line0")
            && !r.stderr.contains("drilling its newest"),
        "{}",
        r.stderr
    );
    // A name in neither the config nor the log is a typo, for ls, dump and drill alike.
    for args in [
        &["ls", "lnie1"][..],
        &["dump", "lnie1", "a.cfg"],
        &["drill", "lnie1"],
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(
            r.stderr.contains("no device `lnie1`") && r.stderr.contains("line0, line1"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_onto_a_writable_spare_writes_reads_back_and_respects_the_cap() {
    use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
    let s = Site::new();
    let map = SimMap::generated(400, 1);
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(map.clone()))
        .await
        .unwrap();
    // The spare's input registers match the source (same sensors); holding and coils do not.
    let mut spare_map = SimMap::generated(400, 9);
    spare_map.input = map.input.clone();
    let spare = SimPlc::start("127.0.0.1:0", SimConfig::new(spare_map))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    add_plc(&s, "spare", spare.addr(), "writable = true");
    assert_eq!(s.run(&["collect", "plc1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("plc1", &alice, "CHG-5").code, 0);

    let r = s.run(&["--json", "drill", "plc1", "--target", "spare"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], true, "{d}");
    assert_eq!(d["target"], "device:spare");

    let reqs = spare.requests();
    let functions: std::collections::BTreeSet<u8> = reqs.iter().map(|q| q.function).collect();
    assert!(
        functions.contains(&16) && functions.contains(&15),
        "{functions:?}"
    );
    assert!(!functions.contains(&6) && !functions.contains(&5));
    for (i, q) in reqs.iter().enumerate() {
        let n = reqs[i..]
            .iter()
            .filter(|x| x.at.duration_since(q.at) < std::time::Duration::from_secs(1))
            .count();
        assert!(n <= 40, "{n} requests within one second");
    }
    assert_eq!(spare.max_in_flight(), 1);
    // A plain restore onto the spare works too and reads back equal.
    let r = s.run(&["--json", "restore", "plc1", "--target", "spare"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rec = &r.records("restore")[0];
    assert_eq!(rec["written"], 340, "{rec}");
    assert_eq!(rec["compared_only"], serde_json::json!(["input 0-7"]));
}

/// Red team of issue 19: a `--to` that is not a folder (or cannot be made) is an
/// operator's mistake: exit 2 with the fix, no log entry, no `last-drill-failed`.
#[test]
fn a_drill_into_a_folder_that_cannot_be_made_is_a_usage_error_not_a_signed_failure() {
    let s = Site::new();
    s.write("plant/a.cfg", b"a=1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let before = log_entries(&s);
    s.write("afile", b"x");
    for to in [s.path("afile"), std::path::PathBuf::from("/dev/null/x")] {
        let r = s.run(&["drill", "line1", "--to", to.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("fix:"), "{}", r.stderr);
    }
    assert_eq!(log_entries(&s), before);
    let r = s.run(&["--json", "report"]);
    let line1 = r
        .records("device-status")
        .into_iter()
        .find(|d| d["device"] == "line1")
        .unwrap();
    assert!(
        !line1["alarms"].to_string().contains("last-drill-failed"),
        "{line1}"
    );
}

/// Red team of issue 19: a spare that is switched off: the drill does not run (exit 3),
/// and nothing is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_onto_a_spare_that_is_off_does_not_run_and_signs_nothing() {
    use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
    let s = Site::new();
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(400, 1)))
        .await
        .unwrap();
    // A port nothing listens on: the spare is switched off.
    let off = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    add_plc(
        &s,
        "spare",
        off,
        "writable = true\nnightly = false\nretries = 0",
    );
    assert_eq!(s.run(&["collect", "plc1"]).code, 0);
    let before = log_entries(&s);
    let r = s.run(&["--json", "drill", "plc1", "--target", "spare"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.records("drill").is_empty(), "{}", r.stdout);
    assert_eq!(r.records("drill-skipped")[0]["device"], "plc1");
    assert_eq!(
        log_entries(&s),
        before,
        "nothing signed for a drill that did not run"
    );
}
