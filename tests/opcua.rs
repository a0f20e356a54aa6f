//! End-to-end: the binary snapshots the asyncua OPC UA server: collect, a recipe value and
//! a node changed behind the tool's back, diff --live by browse path, a volatile counter,
//! approval, a drill to a folder, and the report naming the security mode.

#[path = "peers/asyncua.rs"]
mod asyncua;
mod common;

// The asyncua helper finds Python through `crate::peers`.
use common as peers;

use common::Site;
use serde_json::json;

/// How the end-to-end run logs in: the security keys of its device.
enum Login {
    /// Security None, anonymous.
    None,
    /// Basic256Sha256 SignAndEncrypt, pinned, user and password from a 0600 file.
    Password,
    /// Aes128-Sha256-RsaOaep Sign, pinned, an X.509 user certificate.
    UserCertificate,
}

#[test]
fn a_changed_recipe_value_is_a_finding_named_by_browse_path() {
    end_to_end(
        Server::Asyncua,
        Login::None,
        "(None (no signing, no encryption))",
    );
}

#[test]
fn end_to_end_over_basic256sha256_sign_and_encrypt_with_a_password() {
    end_to_end(
        Server::Asyncua,
        Login::Password,
        "(Basic256Sha256 SignAndEncrypt)",
    );
}

#[test]
fn end_to_end_over_aes128_sign_with_a_user_certificate() {
    end_to_end(
        Server::Asyncua,
        Login::UserCertificate,
        "(Aes128-Sha256-RsaOaep Sign)",
    );
}

#[test]
fn end_to_end_against_open62541_in_security_none() {
    end_to_end(
        Server::Open62541,
        Login::None,
        "(None (no signing, no encryption))",
    );
}

#[test]
fn end_to_end_against_open62541_over_basic256sha256_with_a_password() {
    end_to_end(
        Server::Open62541,
        Login::Password,
        "(Basic256Sha256 SignAndEncrypt)",
    );
}

/// Which server implementation answers.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// Python's asyncua; its test namespace is index 2.
    Asyncua,
    /// open62541 through `o6`; its own namespace, index 1.
    Open62541,
}

/// collect, diff --live, approve, drill and report against one OPC UA server logged in
/// as `login`; `mode` is how `ls` names the security of the snapshot.
fn end_to_end(server: Server, login: Login, mode: &str) {
    let (module, ns) = match server {
        Server::Asyncua => ("asyncua", 2),
        Server::Open62541 => ("o6", 1),
    };
    let Some(py) = peers::python_with(module, "opcua end to end") else {
        return;
    };
    let spec = match login {
        Login::None => json!({"nodes": 20}),
        Login::Password => {
            json!({"nodes": 20, "security": "secure", "users": {"backup": "s3cret"}})
        }
        Login::UserCertificate => json!({"nodes": 20, "security": "secure", "user_cert": true}),
    };
    let mut srv = match server {
        Server::Asyncua => asyncua::Asyncua::start(&py, spec),
        Server::Open62541 => asyncua::Asyncua::open62541(&py, spec),
    };
    let s = Site::new();
    let pin = format!("server-thumbprint = \"{}\"\n", srv.thumbprint);
    let security = match login {
        Login::None => "security-policy = \"None\"\n".to_string(),
        Login::Password => {
            let pw = s.path("opcua.pw");
            std::fs::write(&pw, "s3cret\n").unwrap();
            chmod(&pw, 0o600);
            format!(
                "security-policy = \"Basic256Sha256\"\nsecurity-mode = \"SignAndEncrypt\"\n{pin}user = \"backup\"\npassword-file = \"{}\"\n",
                pw.display()
            )
        }
        Login::UserCertificate => {
            let (cert, key) = srv.user_cert.clone().unwrap();
            let k = s.path("user-key.pem");
            std::fs::copy(&key, &k).unwrap();
            chmod(&k, 0o600);
            format!(
                "security-policy = \"Aes128-Sha256-RsaOaep\"\nsecurity-mode = \"Sign\"\n{pin}user-certificate = \"{}\"\nuser-key = \"{}\"\n",
                cert.display(),
                k.display()
            )
        }
    };
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        r#"
[[device]]
name = "scada"
adapter = "opcua"
address = "{}"
{security}nodes = ["ns={ns};s=Recipes", "ns={ns};s=Config"]
max-requests-per-second = 200
volatile = ["node:*/{ns}:Line/{ns}:Step"]

[[device.kind]]
match = "*/{ns}:Recipe*"
kind = "recipe"

[[device.kind]]
match = "*/{ns}:Speed"
kind = "recipe"
"#,
        srv.url()
    ));
    if !matches!(login, Login::None) {
        // Unpinned, the server's certificate is refused and its thumbprint printed to pin.
        std::fs::write(s.config(), text.replace(&pin, "")).unwrap();
        let r = s.run(&["collect", "scada"]);
        assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains(&srv.thumbprint),
            "{}{}",
            r.stdout,
            r.stderr
        );
        assert!(s.run(&["ls", "scada"]).stdout.trim().is_empty());
    }
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = s.run(&["--json", "collect", "scada"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let alice = s.add_approver();
    assert_eq!(s.approve("scada", &alice, "CHG-1").code, 0);

    // The step number moves on its own: approved as volatile.
    srv.set(&format!("ns={ns};s=Recipes.Line.Step"), json!(4));
    let r = s.run(&["--json", "diff", "scada", "--live"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Someone changes the speed recipe.
    srv.set(&format!("ns={ns};s=Recipes.Speed"), json!(2.5));
    let r = s.run(&["--json", "diff", "scada", "--live"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let f = r.records("finding");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0]["address"],
        format!("Node ns={ns};s=Recipes/{ns}:Speed / value")
    );
    assert_eq!(
        (
            f[0]["class"].as_str(),
            f[0]["old"].as_str(),
            f[0]["new"].as_str()
        ),
        (Some("recipe"), Some("1.5"), Some("2.5")),
        "{}",
        f[0]
    );
    // Collected, it is drift; the drill restores the approved snapshot to a folder.
    assert_eq!(s.run(&["collect", "scada"]).code, 1);
    let to = s.path("drill");
    let r = s.run(&["--json", "drill", "scada", "--to", to.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        std::fs::read_to_string(to.join(format!("scada/nodes/ns={ns};s=Recipes.txt")))
            .unwrap()
            .contains("\tDouble\trw\trecipe\t1.5\n")
    );
    let r = s.run(&["--json", "report"]);
    let st = r
        .records("device-status")
        .into_iter()
        .find(|d| d["device"] == "scada")
        .unwrap();
    assert!(st["last_drill"]["passed"].as_bool().unwrap(), "{st}");
    // Every snapshot names its security mode.
    let r = s.run(&["ls", "scada", "latest"]);
    assert!(r.stdout.contains(mode), "{}", r.stdout);
    // What the server received from the binary: only reads.
    let log = srv.log.lock().unwrap();
    for want in ["BrowseRequest", "ReadRequest", "CloseSessionRequest"] {
        assert!(
            log.iter().any(|s| s == want),
            "{want} not recorded: {log:?}"
        );
    }
    for svc in log.iter() {
        assert!(asyncua::READ_SERVICES.contains(&svc.as_str()), "sent {svc}");
    }
    assert!(!srv.thumbprint.is_empty());
}

#[test]
fn opcua_cert_makes_the_client_certificate_once_with_a_private_key() {
    let s = Site::new();
    let pki = s.path("pki");
    let first = s.run(&[
        "--json",
        "opcua",
        "cert",
        "--pki-dir",
        pki.to_str().unwrap(),
    ]);
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let rec = &first.records("opcua-cert")[0];
    let sha = rec["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    // Its SHA-256 is the certificate file's.
    let der = std::fs::read(pki.join("own/cert.der")).unwrap();
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sha, want);
    // It says how long it lasts (the library makes it for a year).
    let until = humantime::parse_rfc3339(rec["not_after"].as_str().unwrap()).unwrap();
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left > std::time::Duration::from_secs(300 * 86400), "{rec}");
    // Again: the same certificate, not a new one.
    let again = s.run(&[
        "--json",
        "opcua",
        "cert",
        "--pki-dir",
        pki.to_str().unwrap(),
    ]);
    assert_eq!(again.records("opcua-cert")[0]["sha256"], sha.as_str());
    use std::os::unix::fs::PermissionsExt;
    for f in std::fs::read_dir(pki.join("private")).unwrap() {
        let mode = f.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    // The key's folder is its owner's alone too, so the key is never reachable by others
    // while the library writes it.
    let mode = std::fs::metadata(pki.join("private"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}

#[test]
fn a_password_over_security_none_is_refused_by_config_check() {
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(
        "\n[[device]]\nname = \"scada\"\nadapter = \"opcua\"\naddress = \"opc.tcp://127.0.0.1:4840\"\nsecurity-policy = \"None\"\nuser = \"backup\"\npassword-env = \"OPCUA_PW\"\nnodes = [\"i=85\"]\n",
    );
    std::fs::write(s.config(), &text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("clear text") && r.stderr.contains("fix:"),
        "{}",
        r.stderr
    );
    // Without a policy at all: refused too, saying None must be written out.
    std::fs::write(
        s.config(),
        text.replace(
            "security-policy = \"None\"\nuser = \"backup\"\npassword-env = \"OPCUA_PW\"\n",
            "",
        ),
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("security-policy"), "{}", r.stderr);
}

#[test]
fn roots_listed_twice_or_stored_as_one_file_are_refused_by_config_check() {
    let s = Site::new();
    let text = std::fs::read_to_string(s.config()).unwrap();
    for (nodes, says) in [
        (r#"["ns=2;s=Recipes", "ns=2;s=Recipes"]"#, "is listed twice"),
        (
            r#"["ns=2;s=Line 1", "ns=2;s=Line_1"]"#,
            "would be stored as the same file (nodes/ns=2;s=Line_1.txt)",
        ),
    ] {
        std::fs::write(
            s.config(),
            format!("{text}\n[[device]]\nname = \"scada\"\nadapter = \"opcua\"\naddress = \"opc.tcp://127.0.0.1:4840\"\nsecurity-policy = \"None\"\nnodes = {nodes}\n"),
        )
        .unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{}", r.stderr);
    }
}

#[test]
fn a_user_certificate_needs_its_key_a_secure_channel_and_no_password_beside_it() {
    let s = Site::new();
    let base = std::fs::read_to_string(s.config()).unwrap();
    let device = |keys: &str| {
        format!(
            "{base}\n[[device]]\nname = \"scada\"\nadapter = \"opcua\"\naddress = \"opc.tcp://127.0.0.1:4840\"\nnodes = [\"i=85\"]\n{keys}"
        )
    };
    let secure = "security-policy = \"Basic256Sha256\"\nsecurity-mode = \"SignAndEncrypt\"\n";
    for (keys, says) in [
        (
            format!("{secure}user-certificate = \"keys/u.der\"\n"),
            "needs `user-key`",
        ),
        (
            format!("{secure}user-key = \"keys/u.pem\"\n"),
            "without `user-certificate`",
        ),
        (
            "security-policy = \"None\"\nuser-certificate = \"keys/u.der\"\nuser-key = \"keys/u.pem\"\n".to_string(),
            "user-certificate` with security-policy = \"None\"",
        ),
        (
            format!("{secure}user = \"backup\"\npassword-env = \"PW\"\nuser-certificate = \"keys/u.der\"\nuser-key = \"keys/u.pem\"\n"),
            "both given",
        ),
    ] {
        std::fs::write(s.config(), device(&keys)).unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{keys}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(says) && r.stderr.contains("fix:"),
            "{keys}: {}",
            r.stderr
        );
    }
    std::fs::write(
        s.config(),
        device(&format!(
            "{secure}user-certificate = \"keys/u.der\"\nuser-key = \"keys/u.pem\"\n"
        )),
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

fn chmod(p: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An OPC UA device table for the test site, with extra keys.
fn opcua_device(name: &str, url: &str, extra: &str) -> String {
    format!(
        "\n[[device]]\nname = \"{name}\"\nadapter = \"opcua\"\naddress = \"{url}\"\nsecurity-policy = \"None\"\nnodes = [\"ns=2;s=Recipes\"]\nmax-requests-per-second = 200\n{extra}\n"
    )
}

#[test]
fn a_drill_onto_a_writable_spare_writes_the_values_back_and_reads_them() {
    let Some(py) = peers::python_with("asyncua", "opcua drill onto a writable spare") else {
        return;
    };
    let plant = asyncua::Asyncua::start(&py, json!({"nodes": 0}));
    // Writes only over a signed and encrypted channel to a pinned server.
    let mut spare = asyncua::Asyncua::start(&py, json!({"nodes": 0, "security": "secure"}));
    // The spare holds other recipes.
    spare.set("ns=2;s=Recipes.Speed", json!(9.75));
    spare.set("ns=2;s=Recipes.Name", json!("Can 0.33l, \"spare\""));
    spare.set(
        "ns=2;s=Recipes.Recipe1",
        json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    );
    spare.set("ns=2;s=Recipes.Line.Step", json!(9));
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&opcua_device("scada", &plant.url(), ""));
    let spare_keys = "writable = true\nnightly = false\n";
    // Under security None a writable device is refused by config check.
    std::fs::write(
        s.config(),
        format!("{text}{}", opcua_device("spare", &spare.url(), spare_keys)),
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("key `writable` needs a secure channel"),
        "{}",
        r.stderr
    );
    text.push_str(&writable_spare("spare", &spare));
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["config", "check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(s.run(&["collect", "scada"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("scada", &alice, "CHG-1").code, 0);
    let r = s.run(&["--json", "drill", "scada", "--target", "spare"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], true, "{d}");
    // Written: the plant's four writable variables; the spare now reads as the plant.
    assert!(
        spare
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "WriteRequest")
    );
    assert_eq!(s.run(&["collect", "spare"]).code, 0);
    let (a, b) = (s.path("a"), s.path("b"));
    for (dev, to) in [("scada", &a), ("spare", &b)] {
        let r = s.run(&["restore", dev, "--to", to.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    let file = |d: &std::path::Path, dev: &str| {
        std::fs::read_to_string(d.join(dev).join("nodes/ns=2;s=Recipes.txt"))
            .or_else(|_| std::fs::read_to_string(d.join("nodes/ns=2;s=Recipes.txt")))
            .unwrap()
    };
    let (pa, sp) = (file(&a, "scada"), file(&b, "spare"));
    assert_eq!(pa, sp);
    assert!(sp.contains("\tDouble\trw\tvalues\t1.5\n"), "{sp}");
    // A read-only value that differs on the spare cannot be written: the drill fails
    // naming it, never a silent pass.
    spare.set("ns=2;s=Recipes.Setpoint", json!(1.0));
    let r = s.run(&["--json", "drill", "scada", "--target", "spare"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    let d = &r.records("drill")[0];
    assert_eq!(d["passed"], false, "{d}");
    assert!(d.to_string().contains("2:Setpoint"), "{d}");
    assert!(d.to_string().contains("read-only, not written"), "{d}");
    // The plant, not marked writable, was never written, and a drill onto it is refused
    // before a request is sent.
    let r = s.run(&["drill", "spare", "--target", "scada"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("writable = true"), "{}", r.stderr);
    for svc in plant.log.lock().unwrap().iter() {
        assert!(asyncua::READ_SERVICES.contains(&svc.as_str()), "sent {svc}");
    }
}

#[test]
fn a_server_refusing_discovery_over_none_gets_an_error_that_says_so() {
    let Some(py) = peers::python_with("o6", "open62541 secure only") else {
        return;
    };
    let srv = asyncua::Asyncua::open62541(&py, json!({"security": "secure_only"}));
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(
        &opcua_device("scada", &srv.url(), "").replace(
            "security-policy = \"None\"\n",
            &format!(
                "security-policy = \"Basic256Sha256\"\nsecurity-mode = \"SignAndEncrypt\"\nserver-thumbprint = \"{}\"\n",
                srv.thumbprint
            ),
        ),
    );
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["collect", "scada"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("refuses an unsecured channel even for GetEndpoints"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("securityPolicyNoneDiscoveryOnly"),
        "{}",
        r.stdout
    );
}

/// A site with the plant `scada` (security None) collected and the writable `spare`.
fn plant_and_spare_collected(plant: &asyncua::Asyncua, spare: &asyncua::Asyncua) -> Site {
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&opcua_device("scada", &plant.url(), ""));
    text.push_str(&writable_spare("spare", spare));
    std::fs::write(s.config(), text).unwrap();
    assert_eq!(s.run(&["collect", "scada"]).code, 0);
    s
}

/// A writable spare's device table: Basic256Sha256 SignAndEncrypt, pinned.
fn writable_spare(name: &str, srv: &asyncua::Asyncua) -> String {
    opcua_device(name, &srv.url(), "writable = true\nnightly = false\n").replace(
        "security-policy = \"None\"\n",
        &format!(
            "security-policy = \"Basic256Sha256\"\nsecurity-mode = \"SignAndEncrypt\"\nserver-thumbprint = \"{}\"\n",
            srv.thumbprint
        ),
    )
}

#[test]
fn a_value_the_spare_will_not_let_this_login_write_is_named_and_a_refused_write_too() {
    let Some(py) = peers::python_with("asyncua", "opcua refused writes") else {
        return;
    };
    let plant = asyncua::Asyncua::start(&py, json!({"nodes": 0}));
    // On the spare plcvault logs in as an asyncua User (held to the access levels): Speed
    // is read-only for it, and Name says it may be written yet its AccessLevel refuses.
    let mut spare = asyncua::Asyncua::start(
        &py,
        json!({"nodes": 0, "security": "secure", "user_role": "user",
               "read_only_for_user": ["ns=2;s=Recipes.Speed"],
               "access_lies": ["ns=2;s=Recipes.Name"]}),
    );
    spare.set("ns=2;s=Recipes.Speed", json!(9.75));
    spare.set("ns=2;s=Recipes.Name", json!("spare"));
    spare.set("ns=2;s=Recipes.Line.Step", json!(9));
    let s = plant_and_spare_collected(&plant, &spare);
    let alice = s.add_approver();
    assert_eq!(s.approve("scada", &alice, "CHG-1").code, 0);
    let r = s.run(&["--json", "drill", "scada", "--target", "spare"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = r.records("drill")[0].to_string();
    assert!(d.contains("\"passed\":false"), "{d}");
    assert!(
        d.contains(
            "2:Speed: not written: the target lets this login only `r` it (UserAccessLevel)"
        ),
        "{d}"
    );
    assert!(d.contains("2:Name: write: BadUserAccessDenied"), "{d}");
    // Each is told once, not again as a read-back difference.
    assert_eq!(d.matches("2:Speed").count(), 1, "{d}");
    assert_eq!(d.matches("2:Name").count(), 1, "{d}");
    assert!(!d.contains("2:Recipe1") && !d.contains("2:Step"), "{d}");
    // Speed was never sent; the others were, and read back as the plant's.
    let written = spare.written.lock().unwrap().clone();
    assert!(
        !written.iter().any(|n| n.contains("Recipes.Speed")),
        "{written:?}"
    );
    for n in ["Recipes.Name", "Recipes.Recipe1", "Recipes.Line.Step"] {
        assert!(
            written.iter().any(|w| w.ends_with(n)),
            "{n} not written: {written:?}"
        );
    }
}

#[test]
fn a_restore_cut_off_mid_write_says_how_far_it_got() {
    let Some(py) = peers::python_with("asyncua", "opcua restore cut off") else {
        return;
    };
    let plant = asyncua::Asyncua::start(&py, json!({"nodes": 0}));
    let spare = asyncua::Asyncua::start(
        &py,
        json!({"nodes": 0, "security": "secure", "drop_on_write": true}),
    );
    let s = plant_and_spare_collected(&plant, &spare);
    let r = s.run(&["restore", "scada", "--target", "spare"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("0 of 4 values had been written before this Write")
            && all.contains("run the restore again"),
        "{all}"
    );
}

#[test]
fn a_spare_whose_namespace_table_differs_is_refused_before_a_write() {
    let Some(py) = peers::python_with("asyncua", "opcua namespace table") else {
        return;
    };
    let plant = asyncua::Asyncua::start(&py, json!({"nodes": 0}));
    // Another project's namespace at index 2: the plant's ns=2 names nothing of ours here.
    let spare = asyncua::Asyncua::start(
        &py,
        json!({"nodes": 0, "security": "secure", "extra_namespace": true}),
    );
    let s = plant_and_spare_collected(&plant, &spare);
    let r = s.run(&["restore", "scada", "--target", "spare"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("namespace index 2 is \"urn:plcvault:other-project\" on this server but \"urn:plcvault:test\" in the snapshot"),
        "{all}"
    );
    assert!(spare.written.lock().unwrap().is_empty());
}
