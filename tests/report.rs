//! The fleet report: statuses, alarms, the Prometheus textfile and the auditor's page.

mod common;

use common::Site;

#[test]
fn report_is_clean_when_backed_up_approved_and_drilled_and_alarms_fire_otherwise() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);

    // Collected but never approved nor drilled.
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let d = &r.records("device-status")[0];
    let alarms: Vec<&str> = d["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(alarms, vec!["no-passed-drill", "no-baseline"], "{d}");

    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    assert_eq!(s.run(&["drill", "line1"]).code, 0);
    let html = s.path("audit.html");
    let prom = s.path("plcvault.prom");
    let r = s.run(&[
        "--json",
        "report",
        "--html",
        html.to_str().unwrap(),
        "--prometheus",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let d = &r.records("device-status")[0];
    assert_eq!(d["alarms"], serde_json::json!([]));
    assert_eq!(d["drift"], false);
    assert_eq!(d["last_drill"]["passed"], true);

    let page = std::fs::read_to_string(&html).unwrap();
    for needle in [
        "SR 3.4",
        "SR 7.3",
        "SR 7.4",
        "NIS2",
        "CHG-1",
        "alice",
        "Content-Security-Policy\" content=\"default-src 'none'",
    ] {
        assert!(
            page.contains(needle),
            "{needle} missing from the audit page"
        );
    }
    let seq = d["last_drill"]["seq"].as_u64().unwrap();
    assert!(
        page.contains(&format!("log #{seq}")),
        "the drill's log entry is not cited"
    );
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(metrics.contains("plcvault_log_intact 1"), "{metrics}");
    assert!(
        metrics.contains("plcvault_last_drill_passed{device=\"line1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plcvault_drift{device=\"line1\"} 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("plcvault_alarm{"), "{metrics}");

    // The same vault judged with tight limits: the backup is stale and the drill overdue.
    let text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(
        s.config(),
        format!("{text}\n[report]\nbackup-max-age = \"1ms\"\ndrill-max-age = \"1ms\"\n"),
    )
    .unwrap();
    let r = s.run(&["--json", "report", "--prometheus", prom.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    let d = &r.records("device-status")[0];
    let alarms: Vec<&str> = d["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(alarms, vec!["backup-too-old", "drill-overdue"], "{d}");
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.contains("plcvault_alarm{device=\"line1\",alarm=\"drill-overdue\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_damaged_log_is_an_alarm_on_every_device() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"x");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    let entry = s.vault().join("log/00000000000000000001.entry");
    let text = std::fs::read_to_string(&entry)
        .unwrap()
        .replace("\"line1\"", "\"linex\"");
    std::fs::write(&entry, text).unwrap();
    let r = s.run(&["--json", "report"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.records("report")[0]["log_intact"], false);
    assert!(
        r.records("device-status")[0]["alarms"]
            .to_string()
            .contains("log-integrity")
    );
}

#[test]
fn exported_evidence_verifies_elsewhere_with_public_keys_only_and_tampering_is_caught() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    assert_eq!(s.run(&["drill", "line1"]).code, 0);
    let ev = s.path("evidence");
    let r = s.run(&[
        "evidence",
        "export",
        "--since",
        "2020-01-01",
        "--out",
        ev.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // The auditor's machine: a config with the public keys and no vault, no private key.
    let auditor = tempfile::tempdir().unwrap();
    for k in ["collector.key.pub", "alice.key.pub"] {
        std::fs::copy(s.path("site/keys").join(k), auditor.path().join(k)).unwrap();
    }
    let cfg = auditor.path().join("auditor.toml");
    std::fs::write(
        &cfg,
        "[vault]\npath = \"no-vault-here\"\n\n[[trust]]\nname = \"collector\"\nrole = \"collector\"\npublic-key = \"collector.key.pub\"\n\n[[trust]]\nname = \"alice\"\nrole = \"approver\"\npublic-key = \"alice.key.pub\"\n",
    )
    .unwrap();
    let verify = || {
        let o = std::process::Command::new(common::BIN)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "verify",
                "--evidence",
                ev.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, stdout) = verify();
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("INTACT"), "{stdout}");

    // Tampering with the report, a log entry, or adding a file is caught.
    let page = ev.join("report.html");
    let text = std::fs::read_to_string(&page)
        .unwrap()
        .replace("passed", "passsed");
    std::fs::write(&page, text).unwrap();
    let (code, stdout) = verify();
    assert_eq!(code, 1);
    assert!(stdout.contains("report.html was changed"), "{stdout}");

    let entry = ev.join("log/00000000000000000001.entry");
    let text = std::fs::read_to_string(&entry)
        .unwrap()
        .replace("\"line1\"", "\"linex\"");
    std::fs::write(&entry, text).unwrap();
    std::fs::write(ev.join("extra.txt"), b"x").unwrap();
    let (code, stdout) = verify();
    assert_eq!(code, 1);
    assert!(
        stdout.contains("bad-signature") && stdout.contains("extra.txt was added"),
        "{stdout}"
    );
}

/// Issue 19: a spare on the test bench was collected by `collect --all` and then raised
/// `no-baseline` and `no-passed-drill`. With `nightly = false` it is out of `--all` and of
/// schedules, named explicitly it is still collected, and the report says why it raises
/// no alarms.
#[test]
fn a_device_with_nightly_false_is_out_of_all_and_of_the_alarms_and_the_report_says_why() {
    let s = Site::new();
    std::fs::create_dir_all(s.path("bench")).unwrap();
    s.write("plant/a.cfg", b"a=1\n");
    s.write("bench/b.cfg", b"b=1\n");
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"spare\"\nadapter = \"files\"\npath = \"{}\"\nnightly = false\n",
        s.path("bench").display()
    ));
    std::fs::write(s.config(), &text).unwrap();
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let names: Vec<String> = r
        .records("device")
        .iter()
        .map(|d| d["device"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["line1"]);
    let r = s.run(&["--json", "collect", "spare"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let html = s.path("report.html");
    let r = s.run(&["--json", "report", "--html", html.to_str().unwrap()]);
    let spare = r
        .records("device-status")
        .into_iter()
        .find(|d| d["device"] == "spare")
        .unwrap();
    assert_eq!(spare["nightly"], false, "{spare}");
    assert_eq!(spare["alarms"], serde_json::json!([]), "{spare}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("nightly = false: not part of the nightly run"),
        "{page}"
    );
    let h = s.run(&["report"]);
    assert!(h.stdout.contains("not in the nightly run"), "{}", h.stdout);
    // Alert rules can tell it apart in the metrics too.
    let prom = s.path("m.prom");
    s.run(&["report", "--prometheus", prom.to_str().unwrap()]);
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.contains("plcvault_device_monitored{device=\"spare\"} 0")
            && metrics.contains("plcvault_device_monitored{device=\"line1\"} 1"),
        "{metrics}"
    );
    // A schedule that selects only such devices is a config error that says why.
    text.push_str(
        "\n[[schedule]]\nname = \"bench\"\ncron = \"0 3 * * *\"\ndevices = [\"spare\"]\n",
    );
    std::fs::write(s.config(), &text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("nightly = false"), "{}", r.stderr);
}

/// Issue 19: the multi-device change-review page only the demo made: `diff --all --html`
/// (and tag selections) write one page for every selected device, titled with the site's
/// `[site] name`; a device that cannot be compared is reported and the others are.
#[test]
fn diff_all_writes_one_review_page_for_the_site() {
    let s = Site::new();
    std::fs::create_dir_all(s.path("plant2")).unwrap();
    std::fs::create_dir_all(s.path("plant3")).unwrap();
    s.add_device("line2", "plant2");
    s.add_device("line3", "plant3");
    let text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(
        s.config(),
        text.replacen("name = \"my plant\"", "name = \"Bottling hall 2\"", 1),
    )
    .unwrap();
    s.write("plant/a.cfg", b"a=1\n");
    s.write("plant2/b.cfg", b"b=1\n");
    assert_eq!(s.run(&["collect", "line1", "line2"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    assert_eq!(s.approve("line2", &alice, "CHG-1").code, 0);
    s.write("plant2/b.cfg", b"b=2\n");
    assert_eq!(s.run(&["collect", "line2"]).code, 1);
    let page = s.path("site-review.html");
    let r = s.run(&["--json", "diff", "--all", "--html", page.to_str().unwrap()]);
    // line3 has no snapshot: reported, the others compared, exit 3 for it (a device not
    // read; it was exit 2, a usage error, until the red team's weekly cron showed why not).
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("diff-skipped")[0]["device"], "line3");
    let compared: Vec<String> = r
        .records("summary")
        .iter()
        .map(|x| x["device"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(compared, ["line1", "line2"]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<title>plcvault change review: Bottling hall 2</title>"),
        "{html}"
    );
    assert!(
        html.contains("<h2>line1</h2>") && html.contains("<h2>line2</h2>"),
        "{html}"
    );
    assert!(html.contains("b=2"), "{html}");
    assert!(
        html.contains("Not compared:") && html.contains("<td>line3</td>"),
        "{html}"
    );
    assert!(
        html.contains("<br>fix: ") && !html.contains("\\u{a}"),
        "the why's lines are lines of the cell: {html}"
    );
    // Counts of zero are neutral; only a non-zero count is coloured.
    assert!(
        !html.contains("class=\"critical\">0<") && !html.contains("class=\"warning\">0<"),
        "{html}"
    );
    // Several devices and --snapshot do not go together.
    let r = s.run(&["diff", "line1", "line2", "--snapshot", "latest"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("name one device"), "{}", r.stderr);
}

#[test]
fn a_device_without_a_baseline_is_a_metadata_finding_not_a_config_change() {
    let s = Site::new();
    s.write("plant/a.cfg", b"a=1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let r = s.run(&["--json", "diff", "line1"]);
    let f = &r.records("finding")[0];
    assert_eq!(
        (f["change"].as_str(), f["class"].as_str()),
        (Some("no-baseline"), Some("metadata")),
        "{f}"
    );
}

/// The README's walk for a new site, as a user types it: init with an approver key made
/// away from the site, a device, config check, collect, the site's review page, the
/// approval by the very command the review printed, the nightly cron lines (collect,
/// verify, drill, verify --read-data, report), and evidence for the auditor.
#[test]
fn the_readme_walk_from_init_to_the_auditors_page() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let key = dir.path().join("alice/alice.key");
    let cfg = site.join("plcvault.toml");
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(common::BIN);
        c.env("PLCVAULT_CONFIG", &cfg).args(args);
        common::Run::from_output(c.output().unwrap())
    };
    let r = run(&[
        "init",
        site.to_str().unwrap(),
        "--approver",
        "alice",
        "--approver-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plant = dir.path().join("plant");
    std::fs::create_dir_all(plant.join("recipes")).unwrap();
    std::fs::write(plant.join("recipes/a.csv"), "temp;88\n").unwrap();
    std::fs::write(plant.join("OB1.awl"), "A I0.0\n").unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"line1-exports\"\nadapter = \"files\"\npath = \"{}\"\n",
        plant.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    assert_eq!(run(&["config", "check"]).code, 0);
    assert_eq!(run(&["collect", "--all"]).code, 0);
    let page = dir.path().join("review.html");
    let r = run(&["diff", "--all", "--html", page.to_str().unwrap()]);
    let cmd = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("to approve exactly this: "))
        .unwrap_or_else(|| panic!("no approve command printed: {}", r.stdout))
        .to_string();
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("baseline approve line1-exports --snapshot"),
        "{html}"
    );
    // The printed command, with the approver's key and a ticket filled in.
    let cmd = cmd
        .replace("APPROVER.key", key.to_str().unwrap())
        .replace("TICKET", "CHG-1");
    let words: Vec<&str> = cmd.split_whitespace().skip(1).collect();
    let r = run(&words);
    assert_eq!(r.code, 0, "{cmd}: {}{}", r.stdout, r.stderr);
    // The nightly lines of the README's cron block.
    assert_eq!(run(&["--json", "collect", "--all"]).code, 0);
    assert_eq!(run(&["--json", "verify"]).code, 0);
    assert_eq!(run(&["--json", "drill", "--all"]).code, 0);
    assert_eq!(run(&["--json", "verify", "--read-data"]).code, 0);
    let html = dir.path().join("report.html");
    let prom = dir.path().join("plcvault.prom");
    let r = run(&[
        "report",
        "--html",
        html.to_str().unwrap(),
        "--prometheus",
        prom.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let ev = dir.path().join("evidence");
    assert_eq!(
        run(&["evidence", "export", "--out", ev.to_str().unwrap()]).code,
        0
    );
    assert_eq!(run(&["verify", "--evidence", ev.to_str().unwrap()]).code, 0);
}
