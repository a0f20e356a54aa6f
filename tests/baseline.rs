//! Baselines, approvals and comparisons, end to end: files devices and simulated PLCs.

mod common;

use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
use common::Site;

fn add_plc(s: &Site, name: &str, addr: std::net::SocketAddr, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"{name}\"\nadapter = \"modbus\"\naddress = \"{addr}\"\ntimeout = \"500ms\"\nmax-requests-per-second = 500\n{extra}\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 200\nkind = \"recipe\"\nlabel = \"recipes\"\n\n[[device.range]]\ntable = \"coils\"\nstart = 0\ncount = 32\nkind = \"config\"\n\n[[device.range]]\ntable = \"input\"\nstart = 0\ncount = 16\nkind = \"values\"\n"
    ));
    std::fs::write(s.config(), text).unwrap();
}

fn findings(r: &common::Run) -> Vec<serde_json::Value> {
    r.records("finding")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_then_drift_by_class_then_clean_after_reapproval() {
    let s = Site::new();
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\nA I0.0\n= Q0.0\n");
    s.write("plant/recipes/a.csv", b"fill;500\ntemp;88\n");
    s.write("plant/config/net.xml", &vec![b'x'; 4000]);
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(300, 1)))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);

    // A collector key cannot approve.
    let collector = s.path("site/keys/collector.key");
    let r = s.approve("line1", &collector, "CHG-1");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not approver") && r.stderr.contains("fix:"),
        "{}",
        r.stderr
    );

    let alice = s.add_approver();
    for d in ["line1", "plc1"] {
        let r = s.approve(d, &alice, "CHG-42");
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = s.run(&["--json", "baseline", "show", "plc1"]);
    let a = &r.records("approval")[0];
    assert_eq!(
        (a["approver"].as_str(), a["ticket"].as_str()),
        (Some("alice"), Some("CHG-42"))
    );
    assert!(a["rules"]["severity"]["logic"] == "critical", "{a}");

    // Nothing changed: clean.
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(findings(&r).is_empty(), "{:?}", findings(&r));

    // Behind the tool's back: logic, recipe register, coil, identification, a deleted
    // export, a truncated export.
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\nA I0.1\n= Q0.0\n");
    std::fs::remove_file(s.path("plant/recipes/a.csv")).unwrap();
    s.write("plant/config/net.xml", b"<x/>");
    plc.set_holding(42, 4242);
    plc.update(|c| {
        c.map.coils[3] = !c.map.coils[3];
        c.identity = Some(vec![
            (0, "plcvault".into()),
            (1, "SIM-PLC".into()),
            (2, "V2.0".into()),
        ]);
    });
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&r);
    let has = |artifact: &str, change: &str, class: &str| {
        f.iter()
            .any(|x| x["artifact"] == artifact && x["change"] == change && x["class"] == class)
    };
    assert!(has("PLC1/OB1.awl", "changed", "logic"), "{f:?}");
    assert!(has("recipes/a.csv", "removed", "suspect"), "{f:?}");
    assert!(has("config/net.xml", "shrank", "suspect"), "{f:?}");
    assert!(has("holding/0-199.csv", "changed", "recipe"), "{f:?}");
    assert!(has("coils/0-31.csv", "changed", "config"), "{f:?}");
    assert!(
        has("identity/device-identification.txt", "changed", "identity"),
        "{f:?}"
    );
    let reg = f
        .iter()
        .find(|x| x["artifact"] == "holding/0-199.csv")
        .unwrap();
    assert_eq!(
        reg["changes"],
        serde_json::json!([{"address": 42, "old": SimMap::generated(300, 1).holding[42], "new": 4242}])
    );
    let logic = f.iter().find(|x| x["artifact"] == "PLC1/OB1.awl").unwrap();
    assert!(
        logic["diff"].as_str().unwrap().contains("+A I0.1"),
        "{logic}"
    );
    assert_eq!(logic["severity"], "critical");

    // The review page for the paperwork.
    let html = s.path("review.html");
    let r = s.run(&["diff", "plc1", "--html", html.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("alice") && page.contains("CHG-42") && page.contains("4242"),
        "{page}"
    );
    assert!(!page.contains("<script"));
    assert!(page.contains("Content-Security-Policy"), "issue 18, case 9");

    // Approve the new state: the next diff is clean.
    for d in ["line1", "plc1"] {
        let r = s.run(&[
            "baseline",
            "approve",
            d,
            "--snapshot",
            "latest",
            "--key",
            alice.to_str().unwrap(),
            "--ticket",
            "CHG-43",
            "--accept-suspect",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = s.run(&["--json", "diff", "plc1"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = s.run(&["--json", "baseline", "history", "plc1"]);
    assert_eq!(r.records("approval").len(), 2);
    // The whole history still verifies, approvals included.
    assert_eq!(s.run(&["verify"]).code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_quiet_nights_give_no_findings_and_one_register_gives_exactly_one() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    s.write("plant/logs/run.log", b"started\n");
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(300, 2)))
        .await
        .unwrap();
    add_plc(
        &s,
        "plc1",
        plc.addr(),
        "volatile = [\"input:*\", \"holding:150-199\"]",
    );
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text = text.replace(
        "\nexclude = [\"**/*.tmp\"]\n",
        "\nexclude = [\"**/*.tmp\"]\nvolatile = [\"logs/**\"]\n",
    );
    std::fs::write(s.config(), text).unwrap();
    let first = s.run(&["collect", "--all"]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let alice = s.add_approver();
    assert_eq!(s.approve("plc1", &alice, "CHG-1").code, 0);
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    for night in 0..20u16 {
        // Values that move in normal operation: measurements, a counter range, a log.
        plc.update(|c| {
            for v in c.map.input.iter_mut().take(16) {
                *v = v.wrapping_add(night + 1);
            }
            c.map.holding[160] = night;
        });
        s.write("plant/logs/run.log", format!("night {night}\n").as_bytes());
        let r = s.run(&["--json", "collect", "--all"]);
        assert_eq!(r.code, 0, "night {night}: {}", r.stdout);
        assert!(findings(&r).is_empty(), "night {night}: {:?}", findings(&r));
    }
    plc.set_holding(7, 999);
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 1);
    let f = findings(&r);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["class"], "recipe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_rules_cannot_silence_detection_without_an_approval() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"x");
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(300, 3)))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    assert_eq!(s.run(&["collect", "plc1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("plc1", &alice, "CHG-7").code, 0);
    plc.set_holding(10, 1);
    // An attacker marks the recipe range volatile in the config…
    let text = std::fs::read_to_string(s.config()).unwrap().replace(
        "max-requests-per-second = 500\n",
        "max-requests-per-second = 500\nvolatile = [\"holding:*\"]\n",
    );
    std::fs::write(s.config(), text).unwrap();
    // …but the approved rules still apply.
    let r = s.run(&["--json", "diff", "plc1", "--live"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(findings(&r).len(), 1);
    let summary = &r.records("summary")[0];
    assert!(
        summary["rules_note"]
            .as_str()
            .unwrap()
            .contains("differ from the approved"),
        "{summary}"
    );
    // --live stored nothing.
    assert_eq!(
        s.run(&["--json", "snapshots", "plc1"])
            .records("snapshot")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspect_snapshot_is_not_approved_silently() {
    let s = Site::new();
    // 100 registers exist; the range asks for 200: incomplete.
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(100, 4)))
        .await
        .unwrap();
    add_plc(&s, "plc1", plc.addr(), "");
    assert_eq!(s.run(&["collect", "plc1"]).code, 3);
    let alice = s.add_approver();
    let r = s.approve("plc1", &alice, "CHG-9");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("suspect") && r.stderr.contains("--accept-suspect"),
        "{}",
        r.stderr
    );
    let r = s.run(&[
        "--json",
        "baseline",
        "approve",
        "plc1",
        "--snapshot",
        "latest",
        "--key",
        alice.to_str().unwrap(),
        "--ticket",
        "CHG-9",
        "--accept-suspect",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.records("approval")[0]["accepted_suspect"], true);
}

#[test]
fn a_device_without_a_baseline_is_reported() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"x");
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 0);
    let f = findings(&r);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["change"], "no-baseline");
}

/// Against the pymodbus server: registers and coils written by "someone with a laptop",
/// then a firmware revision change, each reported with its class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_register_coil_and_identification_changes_are_classified() {
    use tokio_modbus::client::Writer;
    let Some(py) = common::pymodbus_available("pymodbus baseline") else {
        return;
    };
    let peer = common::Pymodbus::start(&py, serde_json::json!({"size": 300, "seed": 7}));
    let s = Site::new();
    add_plc(&s, "pm", peer.addr, "");
    assert_eq!(s.run(&["collect", "pm"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("pm", &alice, "CHG-100").code, 0);
    assert_eq!(
        s.run(&["diff", "pm", "--live"]).code,
        0,
        "a fresh baseline matches the device"
    );

    // Someone writes a recipe register and an interlock coil.
    let (holding, _, coils, _) = common::expected(300, 7);
    let mut laptop = tokio_modbus::client::tcp::connect_slave(peer.addr, tokio_modbus::Slave(1))
        .await
        .unwrap();
    laptop
        .write_single_register(42, 4242)
        .await
        .unwrap()
        .unwrap();
    laptop
        .write_single_coil(3, !coils[3])
        .await
        .unwrap()
        .unwrap();
    let r = s.run(&["--json", "diff", "pm", "--live"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&r);
    let reg = f
        .iter()
        .find(|x| x["artifact"] == "holding/0-199.csv")
        .expect("register finding");
    assert_eq!(reg["class"], "recipe");
    assert_eq!(
        reg["changes"],
        serde_json::json!([{"address": 42, "old": holding[42], "new": 4242}])
    );
    let coil = f
        .iter()
        .find(|x| x["artifact"] == "coils/0-31.csv")
        .expect("coil finding");
    assert_eq!(coil["class"], "config");
    assert_eq!(coil["changes"][0]["address"], 3);
    assert_eq!(f.len(), 2, "{f:?}");

    // A controller with another firmware revision answers at the same place.
    drop(peer);
    let peer2 = common::Pymodbus::start(
        &py,
        serde_json::json!({"size": 300, "seed": 7, "revision": "4.0"}),
    );
    let text = std::fs::read_to_string(s.config()).unwrap();
    let old_addr = text
        .lines()
        .find(|l| l.starts_with("address = "))
        .unwrap()
        .to_string();
    std::fs::write(
        s.config(),
        text.replace(&old_addr, &format!("address = \"{}\"", peer2.addr)),
    )
    .unwrap();
    let r = s.run(&["--json", "collect", "pm"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&r);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["class"], "identity");
    assert_eq!(f[0]["severity"], "critical");
    assert_eq!(
        f[0]["fields"],
        serde_json::json!([{"field": "revision", "old": "3.16", "new": "4.0"}])
    );
    // Approve the new firmware: the next comparison is clean.
    assert_eq!(s.approve("pm", &alice, "CHG-101").code, 0);
    assert_eq!(s.run(&["diff", "pm", "--live"]).code, 0);
}

/// Issue 19: `diff --live` showed a change, then `baseline approve` signed an older stored
/// snapshot without a word, and the next collect reported drift. Now a review names what
/// it compared and the command that approves exactly that; `approve` wants the snapshot
/// named, shows the comparison it signs and records its digest; `--live` collects,
/// shows and approves the new snapshot in one step.
#[test]
fn an_approver_signs_exactly_what_was_reviewed() {
    let s = Site::new();
    s.write("plant/recipe.csv", b"temp;88\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    let key = alice.to_str().unwrap();
    // A first approval has nothing to compare with: its preview lists what it signs.
    let r = s.run(&[
        "--json",
        "baseline",
        "approve",
        "line1",
        "--snapshot",
        "latest",
        "--key",
        key,
        "--ticket",
        "CHG-1",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let listed = r.records("snapshot-artifact");
    assert_eq!(listed.len(), 1, "{}", r.stdout);
    assert_eq!(listed[0]["name"], "recipe.csv");
    assert_eq!(listed[0]["size"], 8);
    s.write("plant/recipe.csv", b"temp;72\n");

    // The live review says how to approve what it shows, bound by its digest.
    let r = s.run(&["--json", "diff", "line1", "--live"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let cmd = r.records("summary")[0]["approve"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        cmd.starts_with("plcvault baseline approve line1 --live --review "),
        "{cmd}"
    );
    let digest = review_of(&cmd);
    // Approving needs the snapshot named; the message names the newest.
    let r = s.run(&[
        "baseline", "approve", "line1", "--key", key, "--ticket", "CHG-2",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--snapshot") && r.stderr.contains("the newest of `line1` is"),
        "{}",
        r.stderr
    );
    let entries = || common::files_under(&s.vault().join("log")).len();
    let before = entries();
    // --live without a terminal and without --yes collects nothing and signs nothing.
    let r = s.run(&[
        "baseline", "approve", "line1", "--live", "--key", key, "--ticket", "CHG-2",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert_eq!(entries(), before, "nothing collected before the checks");
    // The device changes after the review: the printed command refuses to sign.
    s.write("plant/recipe.csv", b"temp;60\n");
    let r = s.run(&[
        "baseline", "approve", "line1", "--live", "--review", &digest, "--yes", "--key", key,
        "--ticket", "CHG-2",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not what was reviewed"), "{}", r.stderr);
    let approvals = |s: &Site| {
        s.run(&["--json", "baseline", "history", "line1"])
            .records("approval")
            .len()
    };
    assert_eq!(approvals(&s), 1);
    // Reviewed again and approved by the command that review printed.
    let r = s.run(&["--json", "diff", "line1", "--live"]);
    let cmd = r.records("summary")[0]["approve"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = review_of(&cmd);
    let r = s.run(&[
        "--json", "baseline", "approve", "line1", "--live", "--review", &digest, "--yes", "--key",
        key, "--ticket", "CHG-2",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let preview = &r.records("approval-preview")[0];
    assert_eq!(preview["drift"], true, "{preview}");
    let approval = &r.records("approval")[0];
    assert!(
        approval["review"].as_str().unwrap().starts_with(&digest),
        "{approval}"
    );
    assert_eq!(approvals(&s), 2);
    let r = s.run(&["collect", "line1"]);
    assert_eq!(
        r.code, 0,
        "no drift after approving what was seen: {}",
        r.stdout
    );
    // A stored snapshot's review names it; a later approval changes the baseline, so the
    // old review's command refuses.
    s.write("plant/recipe.csv", b"temp;75\n");
    let r = s.run(&["--json", "collect", "line1"]);
    let id = r.records("device")[0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let cmd = r.records("comparison")[0]["approve"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        cmd.starts_with(&format!(
            "plcvault baseline approve line1 --snapshot {id} --review "
        )),
        "{cmd}"
    );
    let digest = review_of(&cmd);
    assert_eq!(s.approve("line1", &alice, "CHG-3").code, 0);
    let r = s.run(&[
        "baseline",
        "approve",
        "line1",
        "--snapshot",
        &id,
        "--review",
        &digest,
        "--key",
        key,
        "--ticket",
        "CHG-4",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not what was reviewed"), "{}", r.stderr);
}

/// The digest after `--review` in a printed approve command.
fn review_of(cmd: &str) -> String {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    let i = w
        .iter()
        .position(|x| *x == "--review")
        .expect("--review in the command");
    w[i + 1].to_string()
}

/// Red team of issue 19: a live review of a Modbus PLC with identification (the default)
/// must be approvable by the command it prints — the live read lists artifacts in the
/// adapter's order, a stored snapshot sorted, and the digest must not care.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_review_of_a_plc_is_approved_by_the_command_it_prints() {
    let s = Site::new();
    let plc = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(200, 3)))
        .await
        .unwrap();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"plc\"\nadapter = \"modbus\"\naddress = \"{}\"\nmax-requests-per-second = 200\n\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = 100\nkind = \"recipe\"\n",
        plc.addr()
    ));
    std::fs::write(s.config(), text).unwrap();
    assert_eq!(s.run(&["collect", "plc"]).code, 0);
    let alice = s.add_approver();
    let key = alice.to_str().unwrap();
    assert_eq!(s.approve("plc", &alice, "CHG-1").code, 0);
    plc.set_holding(3, 4242);
    let r = s.run(&["--json", "diff", "plc", "--live"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let cmd = r.records("summary")[0]["approve"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.run(&[
        "baseline",
        "approve",
        "plc",
        "--live",
        "--yes",
        "--review",
        &review_of(&cmd),
        "--key",
        key,
        "--ticket",
        "CHG-2",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        s.run(&["collect", "plc"]).code,
        0,
        "no drift after the approval"
    );
}

/// Red team of issue 19: rules edited after a review (a `volatile = ["**"]` that would
/// silence the device) are not signed by the review's command; the new review shows the
/// rule changes and calls them weaker.
#[test]
fn rules_weakened_after_the_review_are_not_signed_and_the_review_shows_them() {
    let s = Site::new();
    s.write("plant/FB3.scl", b"A I 1.0\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    let key = alice.to_str().unwrap();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write("plant/FB3.scl", b"A I 1.1\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1);
    let id = r.records("device")[0]["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let cmd = r.records("summary")[0]["approve"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cmd = if cmd.is_empty() {
        s.run(&["--json", "diff", "line1"]).records("summary")[0]["approve"]
            .as_str()
            .unwrap()
            .to_string()
    } else {
        cmd
    };
    let digest = review_of(&cmd);
    let text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(
        s.config(),
        text.replacen(
            "name = \"line1\"\n",
            "name = \"line1\"\nvolatile = [\"**\"]\n",
            1,
        ),
    )
    .unwrap();
    let r = s.run(&[
        "baseline",
        "approve",
        "line1",
        "--snapshot",
        &id,
        "--review",
        &digest,
        "--key",
        key,
        "--ticket",
        "CHG-2",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not what was reviewed"), "{}", r.stderr);
    let r = s.run(&["diff", "line1"]);
    assert!(
        r.stdout.contains("volatile + \"**\"") && r.stdout.contains("WEAKER"),
        "{}",
        r.stdout
    );
}
