//! The opcua adapter against the asyncua server (nobody on this team wrote it), which
//! records every service it receives: identity, node snapshots, a value read that fails,
//! security None and Basic256Sha256 with a pinned certificate and a user login, and only
//! read services on the wire.

use std::time::Duration;

#[path = "../../tests/peers/asyncua.rs"]
mod asyncua;
#[path = "../../tests/peers/pymodbus.rs"]
mod peers;

use asyncua::Asyncua;

use adapters::opcua::{Login, OpcuaCollector, OpcuaOptions, Secret, Security};
use adapters::{AdapterError, Collection, Collector, SourceData};
use serde_json::json;

fn options(srv: &Asyncua, pki: &std::path::Path) -> OpcuaOptions {
    OpcuaOptions {
        device: "scada1".into(),
        url: srv.url(),
        security: Security::None,
        thumbprint: None,
        login: Login::Anonymous,
        pki_dir: pki.to_owned(),
        nodes: vec!["ns=2;s=Recipes".into()],
        max_depth: 10,
        max_nodes: 50_000,
        max_bytes: 256 << 20,
        timeout: Duration::from_secs(5),
        retries: 1,
        deadline: Duration::from_secs(600),
        max_requests_per_second: 500.0,
        kinds: vec![("*/2:Recipe*".into(), adapters::ArtifactKind::Recipe)],
    }
}

fn text(c: &Collection, name: &str) -> String {
    let a = c
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no {name} in {:?}",
                c.artifacts.iter().map(|a| &a.name).collect::<Vec<_>>()
            )
        });
    match &a.data {
        SourceData::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn thumb(hex: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_asyncua_in_security_mode_none_sends_only_reads() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    let mut srv = Asyncua::start(&py, json!({"nodes": 1200}));
    let pki = tempfile::tempdir().unwrap();
    let mut o = options(&srv, pki.path());
    o.nodes.push("ns=2;s=Config".into());
    let c = OpcuaCollector::new(o.clone()).collect().await.unwrap();
    let id = text(&c, "identity.txt");
    for want in [
        "# plcvault opcua identity v1",
        "product-uri=urn:plcvault:test-product",
        "manufacturer=plcvault tests",
        "product-name=asyncua test server",
        "software-version=2.1.0",
        "build-number=4711",
        "security=None (no signing, no encryption)",
        "namespace-2=\"urn:plcvault:test\"",
    ] {
        assert!(id.lines().any(|l| l == want), "{want} not in\n{id}");
    }
    assert!(
        id.contains(&format!("certificate-sha256={}", srv.thumbprint)),
        "{id}"
    );
    let recipes = text(&c, "nodes/ns=2;s=Recipes.txt");
    let line = |p: &str| {
        recipes
            .lines()
            .find(|l| l.starts_with(&format!("{p}\t")))
            .unwrap_or_else(|| panic!("no {p} in\n{recipes}"))
            .to_string()
    };
    assert_eq!(
        line("ns=2;s=Recipes/2:Recipe1"),
        "ns=2;s=Recipes/2:Recipe1\tns=2;s=Recipes.Recipe1\tVariable\tInt32\trw\trecipe\t[0, 10, 20, 30, 40, 50, 60, 70, 80, 90]"
    );
    assert_eq!(
        line("ns=2;s=Recipes/2:Speed"),
        "ns=2;s=Recipes/2:Speed\tns=2;s=Recipes.Speed\tVariable\tDouble\trw\tvalues\t1.5"
    );
    assert!(line("ns=2;s=Recipes/2:Name").ends_with("\tString\trw\tvalues\t\"Bottle 0.5l\""));
    assert!(line("ns=2;s=Recipes/2:Setpoint").ends_with("\tFloat\tr\tvalues\t80.25"));
    assert!(line("ns=2;s=Recipes/2:Line/2:Step").ends_with("\tUInt16\trw\tvalues\t3"));
    assert!(line("ns=2;s=Recipes/2:Line").contains("\tObject\t"));
    // A value the server refuses: its status, and a warning.
    assert!(
        line("ns=2;s=Recipes/2:Broken").contains("\t!status BadInternalError"),
        "{recipes}"
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("Broken") && w.contains("BadInternalError")),
        "{:?}",
        c.warnings
    );
    let config = text(&c, "nodes/ns=2;s=Config.txt");
    // The root, 3 folders and 1,200 variables.
    assert_eq!(
        config.lines().count(),
        3 + 1 + 3 + 1200,
        "{}",
        &config[..400]
    );
    assert!(config.contains(
        "ns=2;s=Config/2:G002/2:C01199\tns=2;s=Config.C01199\tVariable\tInt32\tr\tvalues\t8393\n"
    ));
    // root -> Line -> Step is two deep: max-depth 2 stores it, 1 does not.
    let c2 = OpcuaCollector::new(OpcuaOptions {
        max_depth: 2,
        nodes: vec!["ns=2;s=Recipes".into()],
        ..o.clone()
    })
    .collect()
    .await
    .unwrap();
    assert!(c2.complete, "{:?}", c2.warnings);
    let c1 = OpcuaCollector::new(OpcuaOptions {
        max_depth: 1,
        nodes: vec!["ns=2;s=Recipes".into()],
        ..o.clone()
    })
    .collect()
    .await
    .unwrap();
    assert!(!c1.complete);
    assert!(
        c1.warnings
            .iter()
            .any(|w| w.contains("deeper than max-depth = 1")),
        "{:?}",
        c1.warnings
    );
    // A value changed on the server is what the next snapshot holds.
    srv.set("ns=2;s=Recipes.Speed", json!(2.25));
    let c = OpcuaCollector::new(o).collect().await.unwrap();
    assert!(
        text(&c, "nodes/ns=2;s=Recipes.txt").contains("\tDouble\trw\tvalues\t2.25\n"),
        "{}",
        text(&c, "nodes/ns=2;s=Recipes.txt")
    );
    // What asyncua received: only reads.
    std::thread::sleep(Duration::from_millis(300));
    let log = srv.log.lock().unwrap().clone();
    assert!(log.iter().any(|s| s == "BrowseRequest"), "{log:?}");
    // (asyncua's server answers every reference at once, whatever the page size asked:
    // it has no continuation points, so BrowseNext is not exercised here.)
    for s in &log {
        assert!(
            asyncua::READ_SERVICES.contains(&s.as_str()),
            "sent {s}: {log:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_needs_the_pinned_certificate_and_the_right_password() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    let srv = Asyncua::start(
        &py,
        json!({"nodes": 0, "security": "secure", "users": {"backup": "s3cret"}}),
    );
    let pki = tempfile::tempdir().unwrap();
    let pw = pki.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secure = OpcuaOptions {
        security: Security::Secure {
            policy: "Basic256Sha256".into(),
            encrypt: true,
        },
        login: Login::User("backup".into(), Secret::File(pw.clone())),
        ..options(&srv, pki.path())
    };
    // Not pinned: refused, and the thumbprint to pin is printed.
    let e = OpcuaCollector::new(secure.clone())
        .collect()
        .await
        .unwrap_err();
    assert!(matches!(e, AdapterError::Identity { .. }), "{e}");
    assert!(e.to_string().contains(&srv.thumbprint), "{e}");
    // Pinned to another certificate: refused.
    let e = OpcuaCollector::new(OpcuaOptions {
        thumbprint: Some([7; 32]),
        ..secure.clone()
    })
    .collect()
    .await
    .unwrap_err();
    assert!(e.to_string().contains("not the pinned"), "{e}");
    // Pinned, signed and encrypted, with the user: read.
    let pinned = OpcuaOptions {
        thumbprint: Some(thumb(&srv.thumbprint)),
        ..secure.clone()
    };
    let c = OpcuaCollector::new(pinned.clone()).collect().await.unwrap();
    assert!(
        text(&c, "identity.txt").contains("security=Basic256Sha256 SignAndEncrypt"),
        "{}",
        text(&c, "identity.txt")
    );
    assert!(text(&c, "nodes/ns=2;s=Recipes.txt").contains("\tDouble\trw\tvalues\t1.5\n"));
    // The other policy, signed only.
    let c = OpcuaCollector::new(OpcuaOptions {
        security: Security::Secure {
            policy: "Aes128-Sha256-RsaOaep".into(),
            encrypt: false,
        },
        ..pinned.clone()
    })
    .collect()
    .await
    .unwrap();
    assert!(
        text(&c, "identity.txt").contains("security=Aes128-Sha256-RsaOaep Sign\n"),
        "{}",
        text(&c, "identity.txt")
    );
    // Security None is not offered here: refused, naming what is.
    let e = OpcuaCollector::new(OpcuaOptions {
        security: Security::None,
        ..pinned.clone()
    })
    .collect()
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("offers no endpoint with None")
            && e.to_string().contains("Basic256Sha256 SignAndEncrypt"),
        "{e}"
    );
    // A wrong password: a login failure, said as such.
    std::fs::write(&pw, "wrong\n").unwrap();
    let e = OpcuaCollector::new(pinned).collect().await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { .. }), "{e}");
    // A password file others can read is refused.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = OpcuaCollector::new(OpcuaOptions {
        thumbprint: Some(thumb(&srv.thumbprint)),
        ..secure.clone()
    })
    .collect()
    .await
    .unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    // plcvault's private key is its owner's alone.
    for f in std::fs::read_dir(pki.path().join("private")).unwrap() {
        let mode = f.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    for s in srv.log.lock().unwrap().iter() {
        assert!(asyncua::READ_SERVICES.contains(&s.as_str()), "sent {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_certificate_logs_in_and_only_its_owner_may_read_its_key() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    // Only X.509 user identities: anonymous is not offered.
    let srv = Asyncua::start(
        &py,
        json!({"nodes": 0, "security": "secure", "user_cert": true}),
    );
    let (cert, key) = srv
        .user_cert
        .clone()
        .expect("the peer made a user certificate");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let pki = tempfile::tempdir().unwrap();
    let o = OpcuaOptions {
        security: Security::Secure {
            policy: "Basic256Sha256".into(),
            encrypt: true,
        },
        thumbprint: Some(thumb(&srv.thumbprint)),
        login: Login::Certificate {
            cert: cert.clone(),
            key: key.clone(),
        },
        ..options(&srv, pki.path())
    };
    let c = OpcuaCollector::new(o.clone()).collect().await.unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    assert!(text(&c, "nodes/ns=2;s=Recipes.txt").contains("\tDouble\trw\tvalues\t1.5\n"));
    // Anonymous is refused, as a login failure.
    let e = OpcuaCollector::new(OpcuaOptions {
        login: Login::Anonymous,
        ..o.clone()
    })
    .collect()
    .await
    .unwrap_err();
    assert!(
        matches!(e, AdapterError::Auth { .. })
            && e.to_string()
                .contains("does not accept a login by anonymous")
            && e.to_string()
                .contains("user certificate (`user-certificate`"),
        "{e}"
    );
    // Another certificate (plcvault's own, with its key) is refused.
    let own = std::fs::read_dir(pki.path().join("own"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let own_key = std::fs::read_dir(pki.path().join("private"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let e = OpcuaCollector::new(OpcuaOptions {
        login: Login::Certificate {
            cert: own,
            key: own_key,
        },
        ..o.clone()
    })
    .collect()
    .await
    .unwrap_err();
    assert!(matches!(e, AdapterError::Auth { .. }), "{e}");
    // A key others can read is refused before anything is sent.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let before = srv.log.lock().unwrap().len();
    let e = OpcuaCollector::new(o).collect().await.unwrap_err();
    assert!(
        matches!(e, AdapterError::Auth { .. }) && e.to_string().contains("chmod 600"),
        "{e}"
    );
    assert!(
        !srv.log.lock().unwrap()[before..].contains(&"CreateSessionRequest".to_string()),
        "a session was made with a key others can read"
    );
    for s in srv.log.lock().unwrap().iter() {
        assert!(asyncua::READ_SERVICES.contains(&s.as_str()), "sent {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stalls_times_out_and_nothing_is_stored() {
    // Accepts the connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(4));
        drop(s);
    });
    let pki = tempfile::tempdir().unwrap();
    let o = OpcuaOptions {
        device: "scada1".into(),
        url: format!("opc.tcp://127.0.0.1:{port}/"),
        security: Security::None,
        thumbprint: None,
        login: Login::Anonymous,
        pki_dir: pki.path().to_owned(),
        nodes: vec!["i=85".into()],
        max_depth: 3,
        max_nodes: 100,
        max_bytes: 256 << 20,
        timeout: Duration::from_millis(700),
        retries: 0,
        deadline: Duration::from_secs(600),
        max_requests_per_second: 50.0,
        kinds: Vec::new(),
    };
    let t0 = std::time::Instant::now();
    let e = OpcuaCollector::new(o).collect().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(
        matches!(e, AdapterError::Timeout { .. }) && e.to_string().contains("raise `timeout`"),
        "{e}"
    );
    hold.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_points_are_followed_and_released_when_a_bound_stops_the_walk() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    // At most 40 references per node in one answer: the folders of 500 variables come in
    // 13 pages each.
    let srv = Asyncua::start(&py, json!({"nodes": 1200, "page": 40}));
    let pki = tempfile::tempdir().unwrap();
    let o = OpcuaOptions {
        nodes: vec!["ns=2;s=Config".into()],
        ..options(&srv, pki.path())
    };
    let c = OpcuaCollector::new(o.clone()).collect().await.unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    let config = text(&c, "nodes/ns=2;s=Config.txt");
    assert_eq!(config.lines().count(), 3 + 1 + 3 + 1200);
    for i in [0, 39, 40, 499, 500, 1199] {
        assert!(
            config.contains(&format!(
                "/2:C{i:05}\tns=2;s=Config.C{i:05}\tVariable\tInt32\tr\tvalues\t{}\n",
                i * 7
            )),
            "C{i:05} missing"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let next = srv
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| *s == "BrowseNextRequest")
        .count();
    // 12 more pages for each full folder of 500, 4 for the last of 200.
    assert_eq!(next, 12 + 12 + 4, "{:?}", srv.log.lock().unwrap());
    assert_eq!(*srv.open_cps.lock().unwrap(), Some(0));
    // A bound met while a continuation point is open: the walk stops, the point is
    // released (the server holds none after), and the root is not stored.
    let c = OpcuaCollector::new(OpcuaOptions {
        max_nodes: 60,
        ..o.clone()
    })
    .collect()
    .await
    .unwrap();
    assert!(!c.complete);
    assert!(
        c.artifacts
            .iter()
            .all(|a| a.name != "nodes/ns=2;s=Config.txt"),
        "a partial root was stored"
    );
    assert!(
        c.warnings.iter().any(|w| w.contains("max-nodes = 60")),
        "{:?}",
        c.warnings
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*srv.open_cps.lock().unwrap(), Some(0));
    for s in srv.log.lock().unwrap().iter() {
        assert!(asyncua::READ_SERVICES.contains(&s.as_str()), "sent {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_paging_without_progress_is_stopped_and_its_points_released() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    let srv = Asyncua::start(&py, json!({"nodes": 200, "page": 40, "stuck": true}));
    let pki = tempfile::tempdir().unwrap();
    let o = OpcuaOptions {
        nodes: vec!["ns=2;s=Config".into()],
        ..options(&srv, pki.path())
    };
    let c = tokio::time::timeout(Duration::from_secs(60), OpcuaCollector::new(o).collect())
        .await
        .expect("the walk ends")
        .unwrap();
    assert!(!c.complete);
    assert!(
        c.artifacts
            .iter()
            .all(|a| a.name != "nodes/ns=2;s=Config.txt")
    );
    assert!(
        c.warnings.iter().any(|w| w.contains("no progress")),
        "{:?}",
        c.warnings
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(*srv.open_cps.lock().unwrap(), Some(0));
    let next = srv
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| *s == "BrowseNextRequest")
        .count();
    // One page without progress, then its point released.
    assert_eq!(next, 2, "{:?}", srv.log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_paging_one_reference_at_a_time_is_stopped_by_the_deadline() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    // 500 references behind one per page: at 20 requests a second, 25 s of BrowseNext.
    let srv = Asyncua::start(&py, json!({"nodes": 500, "page": 1}));
    let pki = tempfile::tempdir().unwrap();
    let o = OpcuaOptions {
        nodes: vec!["ns=2;s=Config".into()],
        max_requests_per_second: 20.0,
        deadline: Duration::from_secs(3),
        ..options(&srv, pki.path())
    };
    let t0 = std::time::Instant::now();
    let e = OpcuaCollector::new(o).collect().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(e.to_string().contains("longer than `deadline` (3s)"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_whose_text_passes_max_mib_is_not_stored() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    let srv = Asyncua::start(&py, json!({"nodes": 1200}));
    let pki = tempfile::tempdir().unwrap();
    // 1,200 browse paths of about 30 bytes: 20 kB stops the walk, 60 kB the node lines.
    for budget in [20_000, 60_000] {
        let o = OpcuaOptions {
            nodes: vec!["ns=2;s=Config".into()],
            max_bytes: budget,
            ..options(&srv, pki.path())
        };
        let c = OpcuaCollector::new(o).collect().await.unwrap();
        assert!(!c.complete);
        assert!(
            c.artifacts
                .iter()
                .all(|a| a.name != "nodes/ns=2;s=Config.txt")
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("ns=2;s=Config: not stored: its text passes max-mib")),
            "{budget}: {:?}",
            c.warnings
        );
    }
    let o = OpcuaOptions {
        nodes: vec!["ns=2;s=Config".into()],
        max_bytes: 1 << 20,
        ..options(&srv, pki.path())
    };
    let c = OpcuaCollector::new(o).collect().await.unwrap();
    assert!(c.complete, "{:?}", c.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_address_is_used_whatever_the_server_advertises() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    // Behind NAT, or hostile: its endpoints name a host this side cannot even resolve.
    let srv = Asyncua::start(
        &py,
        json!({"nodes": 0, "advertise": "opc.tcp://plc01.invalid:4840/elsewhere/"}),
    );
    let pki = tempfile::tempdir().unwrap();
    let c = OpcuaCollector::new(options(&srv, pki.path()))
        .collect()
        .await
        .unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    let log = srv.log.lock().unwrap().clone();
    assert!(log.iter().any(|s| s == "CreateSessionRequest"), "{log:?}");
    // What it advertised is recorded, not compared; so is its build date, which some
    // servers (open62541) stamp with their start time.
    let id = c
        .artifacts
        .iter()
        .find(|a| a.name == "identity.txt")
        .unwrap();
    assert_eq!(
        id.meta.extra.get("state-endpoint").map(String::as_str),
        Some("opc.tcp://plc01.invalid:4840/elsewhere/")
    );
    assert!(id.meta.extra.contains_key("state-build-date"));
    assert!(!text(&c, "identity.txt").contains("build-date"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dropped_mid_browse_is_made_again_and_never_stored_in_part() {
    let Some(py) = peers::python_with("asyncua", "opcua against asyncua's server") else {
        return;
    };
    let whole = {
        let srv = Asyncua::start(&py, json!({"nodes": 1200}));
        let pki = tempfile::tempdir().unwrap();
        let o = OpcuaOptions {
            nodes: vec!["ns=2;s=Recipes".into(), "ns=2;s=Config".into()],
            ..options(&srv, pki.path())
        };
        let c = OpcuaCollector::new(o).collect().await.unwrap();
        text(&c, "nodes/ns=2;s=Config.txt")
    };
    // The sixth Browse (Recipes takes three, Config's root and folders two) closes the
    // connection, when Recipes is read and Config half browsed.
    let srv = Asyncua::start(&py, json!({"nodes": 1200, "drop_after_browses": 6}));
    let pki = tempfile::tempdir().unwrap();
    let o = OpcuaOptions {
        nodes: vec!["ns=2;s=Recipes".into(), "ns=2;s=Config".into()],
        retries: 1,
        ..options(&srv, pki.path())
    };
    let c = OpcuaCollector::new(o.clone()).collect().await.unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    assert_eq!(text(&c, "nodes/ns=2;s=Config.txt"), whole);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("attempt 1 failed") && w.contains("new session")),
        "{:?}",
        c.warnings
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = srv.log.lock().unwrap().clone();
    let sessions = log.iter().filter(|s| *s == "CreateSessionRequest").count();
    assert_eq!(sessions, 2, "{log:?}");
    for s in &log {
        assert!(asyncua::READ_SERVICES.contains(&s.as_str()), "sent {s}");
    }
    // Without retries the collection fails as a whole: nothing of it is handed back.
    let srv = Asyncua::start(&py, json!({"nodes": 1200, "drop_after_browses": 6}));
    let e = OpcuaCollector::new(OpcuaOptions {
        url: srv.url(),
        retries: 0,
        ..o
    })
    .collect()
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            AdapterError::Unreachable { .. } | AdapterError::Timeout { .. }
        ),
        "{e}"
    );
}
