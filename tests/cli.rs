//! End-to-end runs of the plcvault binary on a files device.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{Site, noise};

#[test]
fn collect_verify_restore_round_trip_with_exit_codes() {
    let s = Site::new();
    s.write("plant/PLC1/OB1.awl", b"NETWORK 1\n A I0.0\n = Q0.0\n");
    s.write("plant/hmi/panel.img", &noise(3 * 1024 * 1024, 3));
    s.write("plant/recipes/a.csv", b"fill;500\n");
    s.write("plant/scratch.tmp", b"excluded");

    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dev = &r.records("device")[0];
    assert_eq!(dev["status"], "ok");
    assert_eq!(dev["artifacts"], 3);
    let first = dev["snapshot"].as_str().unwrap().to_string();
    assert_eq!(r.records("summary")[0]["ok"], 1);
    // Every line is a {"type", "data"} envelope with type first.
    assert!(
        r.stdout.lines().all(|l| l.starts_with("{\"type\":")),
        "{}",
        r.stdout
    );

    s.write("plant/recipes/a.csv", b"fill;450\n");
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dev = &r.records("device")[0];
    assert_eq!(
        dev["changes"]["changed"],
        serde_json::json!(["recipes/a.csv"])
    );
    assert!(dev["new_bytes"].as_u64().unwrap() < 100, "{dev}");

    let r = s.run(&["--json", "snapshots"]);
    assert_eq!(r.records("snapshot").len(), 2);

    let r = s.run(&["verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("INTACT"), "{}", r.stdout);

    let out = s.path("restored");
    let r = s.run(&[
        "restore",
        "line1",
        "--snapshot",
        &first,
        "--to",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(out.join("recipes/a.csv")).unwrap(),
        b"fill;500\n"
    );
    assert_eq!(
        std::fs::read(out.join("hmi/panel.img")).unwrap(),
        noise(3 * 1024 * 1024, 3)
    );
    assert!(!out.join("scratch.tmp").exists());

    // A non-empty target is refused without --force, and nothing is lost.
    let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not empty") && r.stderr.contains("fix:"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(out.join("recipes/a.csv")).unwrap(),
        b"fill;500\n"
    );
    let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(out.join("recipes/a.csv")).unwrap(),
        b"fill;450\n"
    );
}

#[test]
fn an_unreachable_device_does_not_stop_the_others_and_is_logged() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    s.add_device("ghost", "no-such-folder");
    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    // Devices are reported (and logged) in the order their collections finish.
    let devs = r.records("device");
    assert_eq!(devs.len(), 2);
    let dev = |name: &str| devs.iter().find(|d| d["device"] == name).unwrap().clone();
    assert_eq!(dev("line1")["status"], "ok");
    assert_eq!(dev("ghost")["status"], "failed");
    assert!(
        dev("ghost")["error"]
            .as_str()
            .unwrap()
            .contains("no-such-folder")
    );
    // The failure is a signed log entry.
    let entries: Vec<String> = (1..=2)
        .map(|n| std::fs::read_to_string(s.vault().join(format!("log/{n:020}.entry"))).unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|e| e.contains("\"type\":\"collect-failed\"") && e.contains("ghost")),
        "{entries:?}"
    );
    let r = s.run(&["verify"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn a_private_key_readable_by_others_is_refused() {
    let s = Site::new();
    let key = s.path("site/keys/collector.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = s.run(&["collect", "--all"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);
    let secret = std::fs::read_to_string(&key).unwrap();
    let secret = secret.split_whitespace().nth(1).unwrap();
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
}

#[test]
fn config_errors_name_file_line_and_key() {
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(
        "\n[[device]]\nname = \"x\"\nadapter = \"files\"\npath = \"/\"\nincldue = [\"*\"]\n",
    );
    std::fs::write(s.config(), &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("incldue")).unwrap() + 1;
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(&format!("plcvault.toml:{line}")) && r.stderr.contains("incldue"),
        "{}",
        r.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    let s = Site::new();
    let r = s.run(&["collect"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--all"), "{}", r.stderr);
    let r = s.run(&["collect", "nope"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line1"), "{}", r.stderr);
    let r = s.run(&["frobnicate"]);
    assert_eq!(r.code, 2);
}

#[test]
fn damage_makes_verify_exit_1_and_restore_refuses_damaged_files() {
    let s = Site::new();
    s.write("plant/a.img", &noise(2 * 1024 * 1024, 9));
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    let packs = common::files_under(&s.vault().join("packs"));
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&packs[0], bytes).unwrap();
    let r = s.run(&["--json", "verify", "--read-data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let kinds: Vec<String> = r
        .records("finding")
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"corrupt-chunk".to_string()), "{kinds:?}");
    let out = s.path("out");
    let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("a.img"), "{}", r.stdout);
    assert!(
        !out.join("a.img").exists(),
        "a damaged file was left looking whole"
    );
}

#[test]
fn collect_creates_the_vault_on_first_use_and_keygen_never_overwrites() {
    let s = Site::new();
    std::fs::remove_dir_all(s.vault()).unwrap();
    s.write("plant/x.st", b"x := 1;");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    assert!(s.vault().join("VAULT").exists());
    let k = s.path("k/new.key");
    assert_eq!(s.run(&["keygen", "--out", k.to_str().unwrap()]).code, 0);
    assert_eq!(
        std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let r = s.run(&["keygen", "--out", k.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}

#[test]
fn the_demo_runs_and_proves_its_restore() {
    // With --keep and a relative folder (issue 8, case 12: that used to fail).
    let cwd = tempfile::tempdir().unwrap();
    let r = std::process::Command::new(common::BIN)
        .args(["demo", "--keep", "demo-site"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        stdout.contains("changed PLC1/FB10_Conveyor.scl"),
        "{stdout}"
    );
    assert!(stdout.contains("9 of 9 files byte-identical"), "{stdout}");
    // The ladder change is a rung-level finding, the re-export's date a cosmetic one;
    // the TwinCAT method's line by address, the newer build's version cosmetic.
    assert!(
        stdout.contains("Program MainProgram / Routine Palletiser / Rung 2")
            && stdout.contains("cosmetic  PLC3/Palletiser.L5X: File / ExportDate"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "PLC4/FB_Doser.TcPOU: POU FB_Doser / Method Limit / Implementation / Line 2 changed"
        ) && stdout.contains("cosmetic  PLC4/FB_Doser.TcPOU: File / ProductVersion"),
        "{stdout}"
    );
    assert!(stdout.contains("changed holding/0-99.csv"), "{stdout}");
    assert!(stdout.contains("register 3 = 88"), "{stdout}");
    assert!(
        stdout.contains("DRIFT filler-plc") && stdout.contains("[critical] logic"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASSED drill of `filler-plc`")
            && stdout.contains("spare-filler     restore target"),
        "{stdout}"
    );
    let page = stdout
        .lines()
        .find(|l| l.trim_start().ends_with(".html"))
        .map(|l| l.trim().to_string())
        .expect("the review page path");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("CHG-1001") && html.contains("sterilise_temp;72"),
        "{page}"
    );
    assert!(
        std::path::Path::new(&page).starts_with(cwd.path().canonicalize().unwrap()),
        "{page}"
    );
}

#[test]
fn unchanged_content_is_reused_and_a_same_size_change_is_stored() {
    let s = Site::new();
    // Larger than the in-memory limit, so the hash-first path is taken.
    let mut img = noise(9 * 1024 * 1024 + 5, 4);
    s.write("plant/hmi/panel.img", &img);
    s.write("plant/small.csv", b"a;1\n");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);

    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.records("device")[0]["new_bytes"], 0, "{}", r.stdout);

    // Same size, different bytes in the middle: must not be mistaken for unchanged.
    img[5_000_000] ^= 0xff;
    s.write("plant/hmi/panel.img", &img);
    let r = s.run(&["--json", "collect", "--all"]);
    let dev = &r.records("device")[0];
    assert_eq!(
        dev["changes"]["changed"],
        serde_json::json!(["hmi/panel.img"])
    );
    assert!(dev["new_bytes"].as_u64().unwrap() > 0);
    let out = s.path("out");
    assert_eq!(
        s.run(&["restore", "line1", "--to", out.to_str().unwrap()])
            .code,
        0
    );
    assert_eq!(std::fs::read(out.join("hmi/panel.img")).unwrap(), img);
}

#[test]
fn the_daemon_runs_a_schedule_writes_heartbeats_and_stops_cleanly_on_sigterm() {
    let s = Site::new();
    s.write("plant/OB1.awl", b"A I0.0\n");
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str("\n[daemon]\ntimezone = \"utc\"\n\n[[schedule]]\nname = \"every-second\"\ncron = \"* * * * * *\"\naction = \"collect\"\ndevices = [\"line*\"]\n");
    std::fs::write(s.config(), text).unwrap();
    let child = s
        .command(&["--json", "daemon"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) until the schedule has stored a few snapshots.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let n = s.run(&["--json", "snapshots"]).records("snapshot").len();
        if n >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon stored {n} snapshots in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"event\":\"stopped\""), "{stdout}");
    // A heartbeat was signed at start, and the vault is whole after the stop.
    let entries: Vec<String> = common::files_under(&s.vault().join("log"))
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(entries.iter().any(|e| e.contains("\"type\":\"heartbeat\"")));
    let r = s.run(&["verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn a_schedule_that_selects_nothing_or_a_bad_cron_is_a_config_error() {
    for (body, expected) in [
        ("cron = \"0 2 * *\"", "4 fields"),
        (
            "cron = \"0 2 * * *\"\ndevices = [\"nope-*\"]",
            "selects no device",
        ),
        ("cron = \"0 2 * * *\"\naction = \"dance\"", "not an action"),
    ] {
        let s = Site::new();
        let mut text = std::fs::read_to_string(s.config()).unwrap();
        text.push_str(&format!("\n[[schedule]]\nname = \"n\"\n{body}\n"));
        std::fs::write(s.config(), text).unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{body}");
        assert!(
            r.stderr.contains(expected) && r.stderr.contains("plcvault.toml:"),
            "{body}: {}",
            r.stderr
        );
    }
}

#[test]
fn devices_are_selected_with_the_schedule_grammar_and_single_device_commands_take_one() {
    let s = Site::new();
    std::fs::create_dir_all(s.path("plant2")).unwrap();
    s.add_device("line2", "plant2");
    s.write("plant/a.cfg", b"a=1\n");
    s.write("plant2/b.cfg", b"b=1\n");
    let r = s.run(&["--json", "collect", "line*"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.records("device").len(), 2, "{}", r.stdout);
    let r2 = s.run(&["baseline", "show", "line*"]);
    assert_eq!(r2.code, 2, "{}", r2.stderr);
    assert!(
        r2.stderr.contains("selects 2 devices") && r2.stderr.contains("line1, line2"),
        "{}",
        r2.stderr
    );
    let r = s.run(&["collect", "nomatch*"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("glob"), "{}", r.stderr);
}

#[test]
fn ls_and_dump_look_into_a_snapshot_without_restoring_it_and_dump_refuses_damage() {
    let s = Site::new();
    let img = noise(3 * 1024 * 1024, 4);
    s.write("plant/hmi/panel.img", &img);
    s.write("plant/recipes/a.csv", b"sterilise_temp;88\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let r = s.run(&["--json", "ls", "line1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let listed = r.records("snapshot-artifact");
    assert_eq!(listed.len(), 2, "{}", r.stdout);
    let csv = listed
        .iter()
        .find(|a| a["name"] == "recipes/a.csv")
        .unwrap();
    assert_eq!(csv["kind"], "recipe");
    assert_eq!(csv["size"], 18);
    assert_eq!(csv["sha256"], sha256_hex(b"sterilise_temp;88\n"));
    let out = s
        .command(&["dump", "line1", "hmi/panel.img"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == img, "dump gives the bytes exactly");
    let r = s.run(&["dump", "line1", "recipes/b.csv"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("plcvault ls line1"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    // A damaged pack: the dump stops at the bad chunk and says so (exit 1).
    let packs = common::files_under(&s.vault().join("packs"));
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    bytes[200] ^= 0x40;
    std::fs::write(&packs[0], bytes).unwrap();
    let out = s
        .command(&["dump", "line1", "hmi/panel.img"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("DAMAGED"));
    assert!(out.stdout.len() < img.len());
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_closed_stderr_loses_messages_but_never_turns_into_a_panic() {
    let s = Site::new();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" --config \"$1\" collect nomatch 2>&-")
        .arg(common::BIN)
        .arg(s.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn restore_and_snapshots_take_the_same_selectors_as_collect() {
    let s = Site::new();
    std::fs::create_dir_all(s.path("plant2")).unwrap();
    s.add_device("line2", "plant2");
    s.write("plant/a.cfg", b"a=1\n");
    s.write("plant2/b.cfg", b"b=1\n");
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    let r = s.run(&["--json", "snapshots", "line*"]);
    assert_eq!(r.records("snapshot").len(), 2, "{}", r.stdout);
    let out = s.path("out");
    let r = s.run(&["restore", "line?", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("selects 2 devices"), "{}", r.stderr);
    let r = s.run(&["restore", "line2*", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(out.join("b.cfg")).unwrap(), b"b=1\n");
}

/// Issue 19 item 9: the messages a new site trips on.
#[test]
fn messages_name_the_line_suggest_the_key_and_say_what_to_do() {
    let s = Site::new();
    // A tag that matches nothing says so.
    let r = s.run(&["collect", "tag:nothing"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("has the tag `nothing`"), "{}", r.stderr);
    // restore without a destination names both.
    let r = s.run(&["restore", "line1"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--to") && r.stderr.contains("--target"),
        "{}",
        r.stderr
    );
    // A misspelt key: the nearest valid one.
    let good = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.config(), good.replacen("\nexclude = ", "\nexlude = ", 1)).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean `exclude`?"), "{}", r.stderr);
    // The cause joins the message, never the fix line: a config that is not there, an
    // evidence folder without its index, a date that is not one.
    let ev = s.path("not-evidence");
    std::fs::create_dir_all(&ev).unwrap();
    let no_config = common::Run::from_output(
        std::process::Command::new(common::BIN)
            .args(["--config", "/nonexistent/plcvault.toml", "report"])
            .output()
            .unwrap(),
    );
    for (args, r) in [
        (&["report"][..], no_config),
        (
            &["verify", "--evidence", ev.to_str().unwrap()],
            s.run(&["verify", "--evidence", ev.to_str().unwrap()]),
        ),
        (
            &["evidence", "export", "--since", "2026-13-01"],
            s.run(&[
                "evidence",
                "export",
                "--since",
                "2026-13-01",
                "--out",
                s.path("ev").to_str().unwrap(),
            ]),
        ),
    ] {
        assert_eq!(r.code, 2, "{args:?}");
        let fix = r
            .stderr
            .lines()
            .find(|l| l.starts_with("fix:"))
            .unwrap_or_else(|| panic!("{}", r.stderr));
        assert!(
            !fix.contains("os error") && !fix.contains("out of range"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // Also outside [[device]]: the key's line and the nearest key of its table.
    std::fs::write(s.config(), good.replacen("\nkey = ", "\nkye = ", 1)).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown field `kye`") && r.stderr.contains("did you mean `key`?"),
        "{}",
        r.stderr
    );
    // A wrong [vault] key path: the line and the fix, the OS error once and not on the
    // fix line.
    let line = good.lines().position(|l| l.starts_with("key = ")).unwrap() + 1;
    std::fs::write(
        s.config(),
        good.replacen("keys/collector.key\"", "keys/nope.key\"", 1),
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains(&format!("plcvault.toml:{line}: [vault] key")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.stderr);
    let fix = r.stderr.lines().find(|l| l.starts_with("fix:")).unwrap();
    assert!(
        !fix.contains("os error") && fix.contains("plcvault keygen"),
        "{}",
        r.stderr
    );
    // A device folder that does not exist fails the check, unless marked optional.
    std::fs::write(
        s.config(),
        format!("{good}\n[[device]]\nname = \"ws9\"\nadapter = \"files\"\npath = \"/nonexistent/share\"\n"),
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("/nonexistent/share does not exist")
            && r.stderr.contains("optional = true"),
        "{}",
        r.stderr
    );
    std::fs::write(
        s.config(),
        format!("{good}\n[[device]]\nname = \"ws9\"\nadapter = \"files\"\npath = \"/nonexistent/share\"\noptional = true\n"),
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("marked optional"), "{}", r.stdout);
    // Collected, it is skipped: nothing signed, not a failure; the other devices are read.
    let entries = || common::files_under(&s.vault().join("log")).len();
    let before = entries();
    let r = s.run(&["--json", "collect", "ws9"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(d["status"], "skipped", "{d}");
    assert_eq!(r.records("summary")[0]["skipped"], 1);
    assert_eq!(
        entries(),
        before,
        "nothing signed for an absent optional folder"
    );
    let r = s.run(&["collect", "ws9"]);
    assert!(r.stdout.contains("SKIPPED ws9"), "{}", r.stdout);
    // Every option and argument of every command has a description.
    for c in [
        &["keygen"][..],
        &["init"],
        &["config", "check"],
        &["collect"],
        &["daemon"],
        &["baseline", "approve"],
        &["baseline", "show"],
        &["baseline", "history"],
        &["diff"],
        &["drill"],
        &["report"],
        &["snapshots"],
        &["ls"],
        &["dump"],
        &["verify"],
        &["recover"],
        &["evidence", "export"],
        &["restore"],
        &["sim"],
        &["demo"],
    ] {
        let mut args = c.to_vec();
        args.push("--help");
        let out = std::process::Command::new(common::BIN)
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for l in text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ".repeat(3).as_str()))
        {
            let t = l.trim_start();
            if t.starts_with('-') || t.starts_with('<') || t.starts_with('[') {
                let described = t.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
                let long_form = text
                    .lines()
                    .skip_while(|x| *x != l)
                    .nth(1)
                    .is_some_and(|n| n.starts_with("          "));
                assert!(described || long_form, "{c:?}: `{t}` has no description");
            }
        }
    }
}

#[test]
fn keygen_prints_the_trust_lines_for_its_role_with_a_path_the_config_resolves() {
    let s = Site::new();
    let k = s.path("site/keys/alice.key");
    let r = s.run(&["keygen", "--role", "approver", "--out", k.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("role = \"approver\""), "{}", r.stdout);
    assert!(
        r.stdout.contains("public-key = \"keys/alice.key.pub\""),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("never on the collector host"),
        "{}",
        r.stdout
    );
    // Pasted as printed, the config takes it.
    let snippet = r.stdout.split("\n\n").last().unwrap().to_string();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push('\n');
    text.push_str(&snippet);
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 trusted key(s)"), "{}", r.stdout);
}

#[test]
fn a_pack_is_not_called_harmless_while_the_log_has_findings() {
    let s = Site::new();
    s.write("plant/a.img", &noise(100_000, 3));
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let entries = common::files_under(&s.vault().join("log"));
    // The snapshot entry becomes unreadable: its pack is named by nothing that verifies.
    std::fs::write(&entries[0], b"{\"v\":1,").unwrap();
    let r = s.run(&["--json", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let notes: Vec<String> = r
        .records("note")
        .iter()
        .map(|n| n["message"].to_string())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("not part of any committed snapshot")),
        "{notes:?}"
    );
    assert!(!notes.iter().any(|n| n.contains("harmless")), "{notes:?}");
}

/// Issue 19: the starter config is complete without config.example.toml: every example it
/// carries, uncommented, is a valid config.
#[test]
fn the_starter_configs_examples_uncommented_parse() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let r = std::process::Command::new(common::BIN)
        .args(["-q", "init", site.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success());
    let text = std::fs::read_to_string(site.join("plcvault.toml")).unwrap();
    assert!(
        text.contains("[site]") && text.contains("nightly (false for a spare"),
        "{text}"
    );
    // Every adapter has its example.
    for adapter in ["files", "modbus", "ftp", "s7"] {
        assert!(
            text.contains(&format!("# adapter = \"{adapter}\"")),
            "{adapter}: {text}"
        );
    }
    let example = |l: &str| {
        let t = l.trim_start_matches("# ");
        l.starts_with("# ")
            && (t.starts_with('[') || t.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
    };
    let uncommented: String = text
        .lines()
        .map(|l| {
            if example(l) {
                l.trim_start_matches("# ").to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(site.join("plcvault.toml"), &uncommented).unwrap();
    let r = std::process::Command::new(common::BIN)
        .args([
            "keygen",
            "--role",
            "approver",
            "--out",
            site.join("alice.key").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(r.status.success());
    let r = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(site.join("plcvault.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    // It parses; what remains is that the example folder does not exist here.
    assert!(
        stderr.contains("/srv/eng/line1 does not exist"),
        "{stderr}\n{uncommented}"
    );
}

/// Issue 19 item 9: an auditor verifies an evidence folder with the public keys alone (a
/// config naming no private key and no vault of theirs), and export and verify count the
/// same manifests.
#[test]
fn evidence_is_verified_with_the_public_keys_alone_and_counted_the_same_both_ways() {
    let s = Site::new();
    s.write("plant/a.cfg", b"a=1\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    s.write("plant/a.cfg", b"a=2\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    // Unchanged: a third snapshot naming the second's manifest.
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let ev = s.path("evidence");
    let r = s.run(&[
        "--json",
        "evidence",
        "export",
        "--out",
        ev.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let exported = r.records("evidence")[0]["manifests"].as_u64().unwrap();
    let auditor = s.path("auditor");
    std::fs::create_dir_all(&auditor).unwrap();
    std::fs::copy(
        s.path("site/keys/collector.key.pub"),
        auditor.join("collector.key.pub"),
    )
    .unwrap();
    std::fs::write(
        auditor.join("plcvault.toml"),
        "[[trust]]\nname = \"collector\"\nrole = \"collector\"\npublic-key = \"collector.key.pub\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(auditor.join("plcvault.toml"))
        .args(["--json", "verify", "--evidence", ev.to_str().unwrap()])
        .output()
        .unwrap();
    let r = common::Run::from_output(out);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let verified = &r.records("verify-evidence")[0];
    assert_eq!(verified["clean"], true);
    assert_eq!(verified["manifests"].as_u64(), Some(exported), "{verified}");
    assert_eq!(exported, 2);
    // Only a config without devices may leave out [vault]; one with devices is told.
    std::fs::write(
        auditor.join("plcvault.toml"),
        "[[device]]\nname = \"a\"\nadapter = \"files\"\npath = \".\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(auditor.join("plcvault.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    let r = common::Run::from_output(out);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no [vault] table") && r.stderr.contains("path = \"vault\""),
        "{}",
        r.stderr
    );
}

#[test]
fn init_can_make_an_approver_key_away_from_the_site_and_trust_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    let token = dir.path().join("token/alice.key");
    let run = |args: &[&str]| {
        common::Run::from_output(
            std::process::Command::new(common::BIN)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    // Not inside the site.
    let inside = site.join("keys/alice.key");
    let r = run(&[
        "init",
        site.to_str().unwrap(),
        "--approver",
        "alice",
        "--approver-key",
        inside.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("outside the site"), "{}", r.stderr);
    assert!(!inside.exists());
    // Nor through a link to the site; and a refused init leaves no key behind.
    let link = dir.path().join("lnk");
    std::os::unix::fs::symlink(&site, &link).unwrap();
    let r = run(&[
        "init",
        site.to_str().unwrap(),
        "--approver",
        "alice",
        "--approver-key",
        link.join("keys/alice.key").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("outside the site"), "{}", r.stderr);
    assert!(!inside.exists() && !site.join("keys/collector.key").exists());
    let taken = dir.path().join("taken.key");
    std::fs::write(&taken, "x").unwrap();
    let r = run(&[
        "init",
        site.to_str().unwrap(),
        "--approver",
        "alice",
        "--approver-key",
        taken.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--approver-key"), "{}", r.stderr);
    assert!(
        !site.join("keys/collector.key").exists(),
        "a refused init wrote a key"
    );
    let r = run(&[
        "init",
        site.to_str().unwrap(),
        "--approver",
        "alice",
        "--approver-key",
        token.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(token.exists() && site.join("keys/alice.key.pub").exists());
    let cfg = site.join("plcvault.toml");
    let r = run(&["--config", cfg.to_str().unwrap(), "config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("2 trusted key(s)"), "{}", r.stdout);
    // The key made there approves.
    std::fs::create_dir_all(dir.path().join("plant")).unwrap();
    std::fs::write(dir.path().join("plant/a.cfg"), "a=1\n").unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"ws1\"\nadapter = \"files\"\npath = \"{}\"\n",
        dir.path().join("plant").display()
    ));
    std::fs::write(&cfg, text).unwrap();
    assert_eq!(
        run(&["--config", cfg.to_str().unwrap(), "collect", "ws1"]).code,
        0
    );
    let r = run(&[
        "--config",
        cfg.to_str().unwrap(),
        "baseline",
        "approve",
        "ws1",
        "--snapshot",
        "latest",
        "--key",
        token.to_str().unwrap(),
        "--ticket",
        "CHG-1",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn sizes_in_human_output_are_human_readable() {
    let s = Site::new();
    let mut img = noise(3 * 1024 * 1024, 8);
    s.write("plant/panel.img", &img);
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    img[100] ^= 1;
    s.write("plant/panel.img", &img);
    let r = s.run(&["collect", "line1"]);
    assert!(r.stdout.contains("size unchanged, 3.0 MiB"), "{}", r.stdout);
    img.extend_from_slice(b"0123456789");
    s.write("plant/panel.img", &img);
    let r = s.run(&["--json", "diff", "line1", "--live"]);
    let f = &r.records("finding")[0];
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .ends_with("3.0 MiB -> 3.0 MiB (+10 B)"),
        "{f}"
    );
    for cmd in [
        &["snapshots"][..],
        &["ls", "line1"],
        &["verify", "--read-data"],
    ] {
        let r = s.run(cmd);
        assert!(
            !r.stdout.contains("3145728") && !r.stdout.contains("3145738"),
            "{cmd:?}: {}",
            r.stdout
        );
    }
}

#[test]
fn damage_names_every_snapshot_it_hurts_also_those_of_an_unchanged_device() {
    let s = Site::new();
    s.write("plant/a.img", &noise(200_000, 5));
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let r = s.run(&["--json", "collect", "line1"]);
            r.records("device")[0]["snapshot"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let packs = common::files_under(&s.vault().join("packs"));
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    bytes[300] ^= 1;
    std::fs::write(&packs[0], bytes).unwrap();
    let r = s.run(&["--json", "verify", "--read-data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let text = r.stdout.clone();
    for id in &ids {
        assert!(text.contains(id.as_str()), "{id} is not named: {text}");
    }
}

#[test]
fn snapshots_of_a_device_nobody_knows_is_a_typo_not_missing_backups() {
    let s = Site::new();
    let r = s.run(&["snapshots", "lin1"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no device `lin1`") && r.stderr.contains("line1"),
        "{}",
        r.stderr
    );
    let r = s.run(&["snapshots", "line1"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no snapshots yet"), "{}", r.stdout);
}

/// Red team of issue 19: a newline or tab in a file name cannot add a row or a column to
/// `ls`, nor break `dump`'s messages.
#[test]
fn names_with_newlines_or_tabs_cannot_forge_rows_in_ls() {
    let s = Site::new();
    s.write("plant/a\nFB9.scl  fake", b"x\n");
    s.write("plant/t\tb.scl", b"y\n");
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let r = s.run(&["ls", "line1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The header line and one line per artifact.
    assert_eq!(r.stdout.lines().count(), 1 + 2, "{}", r.stdout);
    assert!(
        r.stdout.contains("a\\u{a}FB9.scl") && r.stdout.contains("t\\u{9}b.scl"),
        "{}",
        r.stdout
    );
    let r = s.run(&["dump", "line1", "a\nFB9.scl"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("\nFB9"), "{}", r.stderr);
}
