//! The comparison protects itself from what it watches (issue 18): a change on the floor
//! always yields a finding, whatever the bytes look like and whatever the config now says.

mod common;

use common::Site;

fn findings(r: &common::Run) -> Vec<serde_json::Value> {
    r.records("finding")
}

/// A files device with an approved baseline of `files`.
fn approved(files: &[(&str, &[u8])]) -> (Site, std::path::PathBuf) {
    let s = Site::new();
    for (name, data) in files {
        s.write(&format!("plant/{name}"), data);
    }
    let alice = s.add_approver();
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    (s, alice)
}

const MAGIC: &str = "# plcvault modbus range v1\n# device=d unit=1 table=holding start=0 count=1 label=x\naddress,value\n0,1\n";

// Case 1, end to end: collect, report and the HTML page all name the change.
#[test]
fn a_file_imitating_register_text_still_reports_its_change() {
    let (s, _) = approved(&[
        (
            "logic/FB1.st",
            format!("{MAGIC}Q := I1 AND I2;\n").as_bytes(),
        ),
        (
            "config/safety.ini",
            format!("{MAGIC}estop_bypass=0\n").as_bytes(),
        ),
    ]);
    s.write(
        "plant/logic/FB1.st",
        format!("{MAGIC}Q := I1 OR TRUE;\n").as_bytes(),
    );
    s.write(
        "plant/config/safety.ini",
        format!("{MAGIC}estop_bypass=1\n").as_bytes(),
    );
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&r);
    let of = |a: &str| {
        f.iter()
            .find(|x| x["artifact"] == a)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of("logic/FB1.st")["class"], "logic", "{f:?}");
    assert_eq!(of("logic/FB1.st")["severity"], "critical");
    assert_eq!(of("config/safety.ini")["class"], "config", "{f:?}");
    assert_eq!(of("logic/FB1.st")["view"], "text");
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.records("device-status")[0]["drift"], true, "{}", r.stdout);
    let page = s.path("review.html");
    let r = s.run(&["diff", "line1", "--html", page.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("I1 OR TRUE") && html.contains("estop_bypass=1"),
        "{html}"
    );
}

// Case 4: a kind rule added to the config without an approval silences nothing, and every
// collect, diff and report says the rules differ.
#[test]
fn kind_rules_added_without_approval_do_not_lower_a_class() {
    let (s, _) = approved(&[("PLC1/FB10.scl", b"A I0.0\n= Q0.0\n")]);
    let mut cfg = std::fs::read_to_string(s.config()).unwrap();
    cfg.push_str("\n[[device.kind]]\nmatch = \"**\"\nkind = \"values\"\n");
    std::fs::write(s.config(), cfg).unwrap();
    s.write("plant/PLC1/FB10.scl", b"A I0.0\n= Q0.1\n");
    s.write("plant/PLC1/FB11.scl", b"new block\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&r);
    for a in ["PLC1/FB10.scl", "PLC1/FB11.scl"] {
        let x = f
            .iter()
            .find(|x| x["artifact"] == a)
            .unwrap_or_else(|| panic!("{a}: {f:?}"));
        assert_eq!(
            (x["class"].as_str(), x["severity"].as_str()),
            (Some("logic"), Some("critical")),
            "{x}"
        );
    }
    let note = |r: &common::Run, ty: &str| {
        r.records(ty).iter().any(|v| {
            v["rules_note"]
                .as_str()
                .is_some_and(|n| n.contains("differ"))
        })
    };
    assert!(note(&r, "comparison"), "{}", r.stdout);
    let r = s.run(&["--json", "diff", "line1"]);
    assert!(note(&r, "summary"), "{}", r.stdout);
    let r = s.run(&["--json", "report"]);
    assert!(note(&r, "device-status"), "{}", r.stdout);
    let r = s.run(&["report"]);
    assert!(
        r.stdout.contains("note: the config's comparison rules"),
        "{}",
        r.stdout
    );
    let page = s.path("review.html");
    let r = s.run(&["diff", "line1", "--html", page.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("PLC1/FB11.scl")
            && html.contains("critical")
            && html.contains("differ from the approved"),
        "{html}"
    );
}

// Case 5: volatile globs cover content changes, not files added or removed.
#[test]
fn a_volatile_glob_does_not_hide_an_added_or_removed_file() {
    let (s, _) = approved(&[
        ("logs/run.log", b"day 1\n"),
        ("logs/old.log", b"x\n"),
        ("OB1.awl", b"A\n"),
    ]);
    let mut cfg = std::fs::read_to_string(s.config()).unwrap();
    // After the device's own `exclude` line (the starter config has one in a comment).
    let at = cfg.rfind("exclude = [\"**/*.tmp\"]\n").unwrap() + "exclude = [\"**/*.tmp\"]\n".len();
    cfg.insert_str(at, "volatile = [\"logs/**\"]\n");
    std::fs::write(s.config(), cfg).unwrap();
    let alice = s.path("site/keys/alice.key");
    let r = s.run(&["collect", "line1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(s.approve("line1", &alice, "CHG-2").code, 0);
    s.write("plant/logs/run.log", b"day 2\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(
        r.code, 0,
        "a volatile file's content change is expected: {}",
        r.stdout
    );
    s.write("plant/logs/evil.scl", b"FUNCTION_BLOCK evil\n");
    std::fs::remove_file(s.path("plant/logs/old.log")).unwrap();
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&r);
    let change = |a: &str| {
        f.iter()
            .find(|x| x["artifact"] == a)
            .map(|x| x["change"].clone())
    };
    assert_eq!(change("logs/evil.scl"), Some("added".into()), "{f:?}");
    assert_eq!(change("logs/old.log"), Some("removed".into()), "{f:?}");
    let evil = f.iter().find(|x| x["artifact"] == "logs/evil.scl").unwrap();
    assert_eq!(evil["class"], "logic");
}

// Case 3, end to end: a collect and a drill due at the same instant both run through
// `plcvault daemon`, and the report and its HTML page show both.
#[test]
fn the_daemon_runs_coinciding_collect_and_drill_schedules() {
    let (s, _) = approved(&[("OB1.awl", b"A I0.0\n")]);
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str("\n[daemon]\ntimezone = \"utc\"\n\n[[schedule]]\nname = \"collect\"\ncron = \"*/2 * * * * *\"\naction = \"collect\"\n\n[[schedule]]\nname = \"drill\"\ncron = \"*/2 * * * * *\"\naction = \"drill\"\n");
    std::fs::write(s.config(), text).unwrap();
    let child = s
        .command(&["--json", "daemon"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let count = |ty: &str| {
        common::files_under(&s.vault().join("log"))
            .iter()
            .filter(|p| {
                std::fs::read_to_string(p).is_ok_and(|e| e.contains(&format!("\"type\":\"{ty}\"")))
            })
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while count("drill") < 2 || count("snapshot") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "in 40 s the daemon wrote {} drills and {} snapshots",
            count("drill"),
            count("snapshot")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let jobs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "job")
        .map(|v| v["data"].clone())
        .collect();
    // Every due instant ran both schedules.
    let mut by_due: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for j in &jobs {
        by_due
            .entry(j["due"].as_str().unwrap().to_string())
            .or_default()
            .push(j["schedule"].as_str().unwrap().to_string());
    }
    assert!(by_due.values().all(|v| v.len() == 2), "{by_due:?}");
    let page = s.path("audit.html");
    let r = s.run(&["--json", "report", "--html", page.to_str().unwrap()]);
    assert_eq!(
        r.records("device-status")[0]["last_drill"]["passed"],
        true,
        "{}",
        r.stdout
    );
    let seq = r.records("device-status")[0]["last_drill"]["seq"]
        .as_u64()
        .unwrap();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<span class=\"ok\">passed</span>") && html.contains(&format!("log #{seq} ")),
        "{html}"
    );
}

// Case 8: report uses the comparison collect made (signed, for exactly that snapshot,
// approval and rules) instead of comparing again; anything else is compared anew.
#[test]
fn report_uses_the_signed_comparison_of_collect_and_recomputes_otherwise() {
    let (s, _) = approved(&[("PLC1/FB1.scl", b"A I0.0\n")]);
    s.write("plant/PLC1/FB1.scl", b"A I0.1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 1);
    let kept = common::files_under(&s.path("site/state/reviews"));
    assert_eq!(kept.len(), 1, "collect keeps its comparison");
    let status = |s: &Site| s.run(&["--json", "report"]).records("device-status")[0].clone();
    let drift = |s: &Site| status(s)["drift"].clone();
    assert_eq!(drift(&s), true);
    assert_eq!(status(&s)["compared_at_collect"], true);
    // A summary that was not signed by a trusted collector key is not used: forging
    // "no drift" in the state folder changes nothing.
    let text = std::fs::read_to_string(&kept[0]).unwrap();
    let forged = text.replace("\\\"serious\\\":1", "\\\"serious\\\":0");
    assert_ne!(forged, text, "{text}");
    std::fs::write(&kept[0], forged).unwrap();
    assert_eq!(
        drift(&s),
        true,
        "a forged summary is ignored and the comparison made anew"
    );
    assert_eq!(status(&s)["compared_at_collect"], false);
    // New rules in the config: the key differs, the comparison is made anew and notes it.
    let cfg = std::fs::read_to_string(s.config()).unwrap();
    let at = cfg.rfind("exclude = [\"**/*.tmp\"]\n").unwrap() + "exclude = [\"**/*.tmp\"]\n".len();
    let mut cfg2 = cfg.clone();
    cfg2.insert_str(at, "volatile = [\"logs/**\"]\n");
    std::fs::write(s.config(), cfg2).unwrap();
    let r = s.run(&["--json", "report"]);
    let dev = &r.records("device-status")[0];
    assert_eq!(dev["drift"], true);
    assert!(
        dev["rules_note"]
            .as_str()
            .is_some_and(|n| n.contains("differ")),
        "{dev}"
    );
}
