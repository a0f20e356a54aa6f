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
