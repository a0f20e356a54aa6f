//! The dashboard over HTTP (curl, from outside): the demo's pages, the headers every
//! answer carries, what it refuses, the integrity banner after tampering, and a
//! non-loopback bind that needs TLS and a token.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{BIN, Site};

/// A running `serve`, killed when dropped.
pub struct Dashboard {
    child: Child,
    pub base: String,
    /// Where its standard error goes (appended, next to the config).
    log: PathBuf,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dashboard {
    pub fn start(config: &Path, listen: &str) -> Dashboard {
        let log = config.with_file_name("serve.log");
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", listen])
            .env_remove("PLCVAULT_CONFIG")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .unwrap_or_else(|| {
                panic!(
                    "no address in {line:?}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .trim_end_matches('/')
            .to_string();
        Dashboard { child, base, log }
    }

    /// What it wrote to standard error so far (the journal, when run by systemd).
    pub fn journal(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The journal once it holds every one of `needles` (a failed handshake is told after
    /// the client has its answer), or what it holds after 10 s.
    pub fn journal_with(&self, needles: &[&str]) -> String {
        let t0 = std::time::Instant::now();
        loop {
            let j = self.journal();
            if needles.iter().all(|n| j.contains(n))
                || t0.elapsed() > std::time::Duration::from_secs(10)
            {
                return j;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// What curl got: status, headers (lower-case names), body.
pub struct Got {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

pub fn curl(url: &str, extra: &[&str]) -> Got {
    let o = Command::new("curl")
        .args(["-s", "-k", "-D", "-", "--max-time", "60"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl (installed by the test command)");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Got {
        status,
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// The demo's site in `dir` (its vault, approvals, drills and drift).
pub fn demo_site(dir: &Path) -> std::path::PathBuf {
    let o = Command::new(BIN)
        .args(["demo", "--keep"])
        .arg(dir)
        .env_remove("PLCVAULT_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join("site/plcvault.toml")
}

#[test]
fn the_demo_dashboard_shows_drift_timelines_and_diffs_and_an_integrity_failure() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_site(&dir.path().join("demo"));
    let d = Dashboard::start(&config, "127.0.0.1:0");
    let fleet = curl(&format!("{}/", d.base), &[]);
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    for h in [
        "content-security-policy: default-src 'none'",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "cache-control: no-store",
    ] {
        assert!(fleet.headers.contains(h), "{h} not in {}", fleet.headers);
    }
    // The demo changes a recipe file, a logic file, a register and an S7 block.
    for (device, drift) in [
        ("line1", "yes"),
        ("filler-plc", "yes"),
        ("capper-plc", "no"),
        ("labeller-cpu", "yes"),
    ] {
        assert!(
            fleet
                .body
                .contains(&format!("data-device=\"{device}\" data-drift=\"{drift}\"")),
            "{device}: {}",
            fleet.body
        );
    }
    assert!(fleet.body.contains("id=\"verified\""), "{}", fleet.body);
    let drifting = curl(&format!("{}/?alarm=drift", d.base), &[]);
    assert_eq!(drifting.body.matches("class=\"device\"").count(), 3);
    // filler-plc: two snapshots, one approval, one drill, and the second snapshot drifts.
    let dev = curl(&format!("{}/device/filler-plc", d.base), &[]);
    assert_eq!(dev.status, 200);
    for (kind, n) in [
        ("backup", 2),
        ("approval", 1),
        ("drill", 1),
        ("drift", 1),
        ("failure", 0),
    ] {
        assert_eq!(
            dev.body.matches(&format!("class=\"ev ev-{kind}\"")).count(),
            n,
            "{kind}: {}",
            dev.body
        );
    }
    assert_eq!(dev.body.matches("class=\"snapshot\"").count(), 2);
    let diff = curl(&format!("{}/device/filler-plc/diff", d.base), &[]);
    assert_eq!(diff.status, 200);
    assert!(
        diff.body.contains("holding/0-99.csv: 1 address changed"),
        "{}",
        diff.body
    );
    // The logic file's changed line, in the files device's review.
    let diff = curl(&format!("{}/device/line1/diff", d.base), &[]);
    assert!(diff.body.contains("class=\"add\""), "{}", diff.body);
    assert_eq!(curl(&format!("{}/audit", d.base), &[]).status, 200);
    let m = curl(&format!("{}/metrics", d.base), &[]);
    assert!(m.body.contains("plcvault_log_intact 1"), "{}", m.body);
    // Only reads.
    for (args, want) in [
        (vec!["-X", "POST", "-d", "a=1"], 405),
        (vec!["-X", "DELETE"], 405),
        (vec!["-X", "GET", "-d", "a=1"], 413),
    ] {
        assert_eq!(
            curl(&format!("{}/", d.base), &args).status,
            want,
            "{args:?}"
        );
    }
    assert_eq!(curl(&format!("{}/device/nope", d.base), &[]).status, 404);
    // A query axum cannot read gets the dashboard's own page, not axum's text.
    let twice = curl(&format!("{}/?tag=a&tag=b", d.base), &[]);
    assert_eq!(twice.status, 400, "{}", twice.body);
    assert!(twice.body.contains("duplicate field"), "{}", twice.body);
    assert!(twice.body.contains("<!doctype html>"), "{}", twice.body);
    // A restore target's page says what it is and offers nothing to compare.
    let target = curl(&format!("{}/device/spare-filler", d.base), &[]);
    assert_eq!(target.status, 200, "{}", target.body);
    assert!(
        target.body.contains("id=\"restore-target\""),
        "{}",
        target.body
    );
    assert!(!target.body.contains("id=\"compare\""), "{}", target.body);
    // The fleet's filter keeps its tag, and says so when the alarm asked for is none.
    let bogus = curl(&format!("{}/?tag=some%22tag&alarm=bogus", d.base), &[]);
    assert!(
        bogus.body.contains("value=\"some&quot;tag\""),
        "{}",
        bogus.body
    );
    assert!(bogus.body.contains("id=\"no-such-tag\""), "{}", bogus.body);
    assert!(
        bogus.body.contains("id=\"no-such-alarm\""),
        "{}",
        bogus.body
    );
    // A restore target has nothing to compare, and the page says why (under the
    // verified line, as every page of the vault).
    let target = curl(&format!("{}/device/spare-filler/diff", d.base), &[]);
    assert_eq!(target.status, 404, "{}", target.body);
    assert!(
        target.body.contains("is a restore target"),
        "{}",
        target.body
    );
    assert!(target.body.contains("id=\"verified\""), "{}", target.body);
    // Asked for by another name (DNS rebinding onto 127.0.0.1): nothing without tokens.
    let port = d.base.rsplit(':').next().unwrap().to_string();
    let rebound = curl(
        &format!("{}/metrics", d.base),
        &["-H", &format!("Host: rebind.example:{port}")],
    );
    assert_eq!(rebound.status, 421, "{}", rebound.body);
    assert!(!rebound.body.contains("plcvault_log_intact"));
    assert_eq!(
        curl(
            &format!("{}/", d.base),
            &["-H", &format!("Host: localhost:{port}")]
        )
        .status,
        200
    );
    // The name checked is the name the request is for: one Host header, no user part,
    // and an absolute-form target's own authority (which wins over the Host header).
    // (curl sends one Host header whatever it is given: the duplicate goes raw.)
    let addr = d.base.trim_start_matches("http://");
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut raw,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut raw, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("plcvault_log_intact"));
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut raw,
        b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut raw, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "no Host: {answer}");
    for extra in [
        vec!["-H", "Host: 127.0.0.1:80@evil.example"],
        vec!["-H", "Host: localhost:http"],
        vec!["-H", "Host: localhost:99999"],
        vec!["-H", "Host: [localhost]"],
        vec!["-H", "Host: [127.0.0.1]"],
    ] {
        let got = curl(&format!("{}/metrics", d.base), &extra);
        assert_eq!(got.status, 400, "{extra:?}: {}", got.body);
        assert!(!got.body.contains("plcvault_log_intact"));
    }
    let absolute = curl(
        &format!("{}/metrics", d.base),
        &[
            "--request-target",
            "http://evil.example/metrics",
            "-H",
            "Host: localhost",
        ],
    );
    assert_eq!(absolute.status, 421, "{}", absolute.body);
    // A manifest damaged on disk (the log's incremental check does not read it again):
    // the page that needs it says so, as damage.
    let manifests = dir.path().join("demo/site/vault/manifests");
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = common::files_under(&manifests)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    for (p, b) in &saved {
        let mut b = b.clone();
        let i = b.len() / 2;
        b[i] ^= 1;
        std::fs::write(p, b).unwrap();
    }
    let hurt = curl(&format!("{}/device/filler-plc/diff", d.base), &[]);
    assert_eq!(hurt.status, 500, "{}", hurt.body);
    assert!(hurt.body.contains("VAULT DAMAGE?"), "{}", hurt.body);
    assert!(!hurt.body.contains("\\u{a}"), "{}", hurt.body);
    for (p, b) in &saved {
        std::fs::write(p, b).unwrap();
    }
    // The vault's marker edited (another vault's id): the next request says so, as
    // `verify` does; put back, green again.
    let marker = dir.path().join("demo/site/vault/VAULT");
    let text = std::fs::read_to_string(&marker).unwrap();
    let id = text.lines().find(|l| l.starts_with("id ")).unwrap();
    let other = format!("id {}", "0".repeat(id.len() - 3));
    std::fs::write(&marker, text.replace(id, &other)).unwrap();
    let g = curl(&format!("{}/", d.base), &[]);
    assert!(g.body.contains("LOG INTEGRITY FAILURE"), "{}", g.body);
    std::fs::write(&marker, &text).unwrap();
    let g = curl(&format!("{}/", d.base), &[]);
    assert!(g.body.contains("id=\"verified\""), "{}", g.body);
    // An entry changed behind its back: every page says so at the next request.
    let vault = dir.path().join("demo/site/vault/log");
    let entry = vault.join("00000000000000000003.entry");
    let mut b = std::fs::read(&entry).unwrap();
    let i = b.len() / 2;
    b[i] ^= 1;
    std::fs::write(&entry, b).unwrap();
    for page in [
        "/",
        "/device/filler-plc",
        "/device/filler-plc/diff",
        "/audit",
        // The pages that find nothing or cannot read the question too.
        "/device/nope",
        "/device/filler-plc/diff?snapshot=zzz",
        "/nosuch",
        "/?tag=a&tag=b",
    ] {
        let g = curl(&format!("{}{page}", d.base), &[]);
        assert!(
            g.body.contains("LOG INTEGRITY FAILURE"),
            "{page}: {}",
            g.body
        );
        assert!(!g.body.contains("id=\"verified\""), "{page}");
    }
    let m = curl(&format!("{}/metrics", d.base), &[]);
    assert!(m.body.contains("plcvault_log_intact 0"), "{}", m.body);
}

/// A self-signed certificate and its key for the site's dashboard, made by openssl.
fn self_signed(s: &Site) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (s.path("serve.crt"), s.path("serve.key"));
    let o = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=plcvault test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (installed by the test command)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (cert, key)
}

#[test]
fn another_address_needs_tls_and_a_token() {
    let s = Site::new();
    let base = std::fs::read_to_string(s.config()).unwrap();
    // 127.0.0.2 is this host too: served without TLS, and it answers as its own address
    // (and as localhost), not as another name.
    let d = Dashboard::start(&s.config(), "127.0.0.2:0");
    assert_eq!(curl(&format!("{}/", d.base), &[]).status, 200);
    let port = d.base.rsplit(':').next().unwrap().to_string();
    let host = format!("Host: localhost:{port}");
    assert_eq!(curl(&format!("{}/", d.base), &["-H", &host]).status, 200);
    let other = curl(&format!("{}/", d.base), &["-H", "Host: plc-backup.example"]);
    assert_eq!(other.status, 421);
    drop(d);
    // Without TLS: refused at start, saying what to set.
    std::fs::write(
        s.config(),
        format!("{base}\n[serve]\nlisten = \"0.0.0.0:0\"\n"),
    )
    .unwrap();
    let r = s.run(&["serve"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("needs TLS"), "{}", r.stderr);
    // A certificate, and a token whose hash goes in the config.
    let (cert, key) = self_signed(&s);
    let tls = format!(
        "{base}\n[serve]\nlisten = \"0.0.0.0:0\"\ntls-certificate = \"{}\"\ntls-key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    std::fs::write(s.config(), &tls).unwrap();
    let r = s.run(&["serve"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("needs authentication"), "{}", r.stderr);
    let t = s.run(&["--json", "serve", "token"]);
    let rec = &t.records("serve-token")[0];
    let (token, line) = (
        rec["token"].as_str().unwrap(),
        rec["config"].as_str().unwrap(),
    );
    assert!(!std::fs::read_to_string(s.config()).unwrap().contains(token));
    // The token itself pasted where its hash belongs: refused, and not echoed whole.
    std::fs::write(s.config(), format!("{tls}tokens = [\"{token}\"]\n")).unwrap();
    let r = s.run(&["serve"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("(64 characters)"), "{}", r.stderr);
    assert!(!r.stderr.contains(token), "{}", r.stderr);
    std::fs::write(s.config(), format!("{tls}tokens = [\"{line}\"]\n")).unwrap();
    let d = Dashboard::start(&s.config(), "0.0.0.0:0");
    assert!(d.base.starts_with("https://"), "{}", d.base);
    let url = d.base.replace("0.0.0.0", "127.0.0.1") + "/";
    let none = curl(&url, &[]);
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none.headers.contains("www-authenticate: bearer"));
    assert!(!none.body.contains("id=\"fleet\""), "{}", none.body);
    let wrong = curl(&url, &["-H", "Authorization: Bearer 00"]);
    assert_eq!(wrong.status, 401);
    // Each failed login is in the journal: who, what, the answer; never the token.
    let refused = |journal: &str, why: &str| {
        let end = format!(" \"GET\" \"/\": 401 Unauthorized ({why})");
        journal
            .lines()
            .filter(|l| l.starts_with("serve: refused 127.0.0.1:") && l.ends_with(&end))
            .count()
    };
    let journal = d.journal();
    assert_eq!(refused(&journal, "no token"), 1, "{journal}");
    assert_eq!(
        refused(&journal, "a token that matches none"),
        1,
        "{journal}"
    );
    // Noise cannot push a guessed token out of the journal: 25 requests without one use
    // up their own budget, and the next wrong token is still told one by one.
    for _ in 0..25 {
        assert_eq!(curl(&url, &[]).status, 401);
    }
    assert_eq!(curl(&url, &["-H", "Authorization: Bearer 01"]).status, 401);
    let journal = d.journal();
    assert_eq!(refused(&journal, "no token"), 20, "{journal}");
    assert_eq!(
        refused(&journal, "a token that matches none"),
        2,
        "{journal}"
    );
    assert!(!journal.contains("Bearer"), "{journal}");
    let ok = curl(&url, &["-H", &format!("Authorization: Bearer {token}")]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The scheme is case-insensitive; with tokens, any host name is served.
    let ok = curl(
        &url,
        &[
            "-H",
            &format!("authorization: bearer {token}"),
            "-H",
            "Host: plc-backup.example",
        ],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("id=\"fleet\""), "{}", ok.body);
    // Plain HTTP to the TLS port gets no page.
    let plain = curl(&url.replace("https://", "http://"), &[]);
    assert_ne!(plain.status, 200);
}

/// A WebDriver session in Debian's headless Chromium (through chromedriver), spoken to
/// with curl: the W3C WebDriver protocol's JSON over HTTP.
struct Browser {
    driver: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("curl")
            .args(["-s", "-X", "DELETE", &self.url])
            .output();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn webdriver(method: &str, url: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "--max-time",
        "60",
        "-X",
        method,
        "-H",
        "Content-Type: application/json",
    ]);
    if let Some(b) = body {
        c.args(["-d", &b.to_string()]);
    }
    let o = c.arg(url).output().expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("{method} {url}: {}", String::from_utf8_lossy(&o.stdout)));
    assert!(
        v["value"].get("error").is_none(),
        "{method} {url}: {}",
        v["value"]
    );
    v["value"].clone()
}

impl Browser {
    /// `None` (or a panic with `PLCVAULT_REQUIRE_PEERS=1`) when Chromium is not installed.
    fn start(test: &str) -> Option<Browser> {
        let (chromium, driver) = ("/usr/bin/chromium", "/usr/bin/chromedriver");
        if !Path::new(chromium).exists() || !Path::new(driver).exists() {
            if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!(
                    "{test}: Chromium and chromedriver are required (PLCVAULT_REQUIRE_PEERS=1) but not installed; run `bash tests/run.sh`"
                );
            }
            eprintln!(
                "SKIPPED {test}: chromium and chromium-driver not installed (bash tests/run.sh installs them)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if curl(&format!("{base}/status"), &[]).status == 200 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display())]}}}});
        let v = webdriver("POST", &format!("{base}/session"), Some(caps));
        let id = v["sessionId"].as_str().expect("a session").to_string();
        Some(Browser {
            driver: child,
            url: format!("{base}/session/{id}"),
            _profile: profile,
        })
    }

    fn go(&self, url: &str) {
        webdriver(
            "POST",
            &format!("{}/url", self.url),
            Some(serde_json::json!({"url": url})),
        );
    }

    fn find(&self, css: &str) -> Vec<String> {
        let v = webdriver(
            "POST",
            &format!("{}/elements", self.url),
            Some(serde_json::json!({"using": "css selector", "value": css})),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e.as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn text(&self, element: &str) -> String {
        webdriver("GET", &format!("{}/element/{element}/text", self.url), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Clicks a link or a form's button and waits for the page it leads to: the click may
    /// answer before the navigation has begun, and the old page's elements go stale.
    fn click_to_next_page(&self, element: &str) {
        let before = self.current();
        webdriver(
            "POST",
            &format!("{}/element/{element}/click", self.url),
            Some(serde_json::json!({})),
        );
        let t0 = std::time::Instant::now();
        while self.current() == before {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "no new page after the click on {before}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // And loaded (the WebDriver script call waits for no navigation, so it is polled).
        while webdriver(
            "POST",
            &format!("{}/execute/sync", self.url),
            Some(serde_json::json!({"script": "return document.readyState", "args": []})),
        ) != "complete"
        {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "the page never loaded"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn page_text(&self) -> String {
        let body = self.find("body");
        self.text(&body[0])
    }

    fn current(&self) -> String {
        webdriver("GET", &format!("{}/url", self.url), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A screenshot of the page into target/screenshots/NAME.png, for review.
    fn screenshot(&self, name: &str) {
        let b64 = webdriver("GET", &format!("{}/screenshot", self.url), None);
        let png = base64_decode(b64.as_str().unwrap());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | u32::from(val(*c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

#[test]
fn in_chromium_the_fleet_a_timeline_a_diff_and_the_integrity_banner_show() {
    let Some(b) = Browser::start("dashboard in chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = demo_site(&dir.path().join("demo"));
    let d = Dashboard::start(&config, "127.0.0.1:0");
    b.go(&format!("{}/", d.base));
    let rows = b.find("#fleet tr.device");
    assert_eq!(rows.len(), 5);
    let drifting: Vec<String> = b
        .find("#fleet tr.device[data-drift=yes] td:first-child")
        .iter()
        .map(|e| b.text(e))
        .collect();
    assert_eq!(drifting, ["line1", "filler-plc", "labeller-cpu"]);
    assert_eq!(b.find("#verified").len(), 1);
    b.screenshot("fleet");
    // Through the page's own link and form, as a person would.
    let link = b.find("a[href='/device/filler-plc']");
    b.click_to_next_page(&link[0]);
    assert!(
        b.current().ends_with("/device/filler-plc"),
        "{}",
        b.current()
    );
    assert_eq!(b.find("#timeline circle.ev").len(), 5);
    assert_eq!(b.find("#timeline circle.ev-drift").len(), 1);
    b.screenshot("device");
    let compare = b.find("form#compare button");
    b.click_to_next_page(&compare[0]);
    let text = b.page_text();
    assert!(
        text.contains("holding/0-99.csv: 1 address changed"),
        "{text}"
    );
    b.screenshot("diff-register");
    b.go(&format!("{}/device/line1/diff", d.base));
    assert!(!b.find("span.add").is_empty(), "{}", b.page_text());
    b.screenshot("diff-logic");
    b.go(&format!("{}/audit", d.base));
    b.screenshot("audit");
    // Tampered: the banner on the next page shown.
    let entry = dir
        .path()
        .join("demo/site/vault/log/00000000000000000003.entry");
    let mut bytes = std::fs::read(&entry).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(&entry, bytes).unwrap();
    b.go(&format!("{}/", d.base));
    let banner = b.find("#integrity");
    assert_eq!(banner.len(), 1);
    assert!(b.text(&banner[0]).contains("LOG INTEGRITY FAILURE"));
    assert!(b.find("#verified").is_empty());
    b.screenshot("fleet-tampered");
}

#[test]
fn in_chromium_a_non_loopback_dashboard_refuses_a_visitor_without_a_token() {
    let Some(b) = Browser::start("dashboard auth in chromium") else {
        return;
    };
    let s = Site::new();
    let base = std::fs::read_to_string(s.config()).unwrap();
    let (cert, key) = self_signed(&s);
    let t = s.run(&["--json", "serve", "token"]);
    let line = t.records("serve-token")[0]["config"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(
        s.config(),
        format!(
            "{base}\n[serve]\ntls-certificate = \"{}\"\ntls-key = \"{}\"\ntokens = [\"{line}\"]\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let d = Dashboard::start(&s.config(), "0.0.0.0:0");
    b.go(&(d.base.replace("0.0.0.0", "127.0.0.1") + "/"));
    let text = b.page_text();
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(b.find("#fleet").is_empty());
    b.screenshot("refused");
}

#[test]
fn sigterm_stops_the_dashboard_even_with_a_client_that_never_finishes() {
    let s = Site::new();
    let mut d = Dashboard::start(&s.config(), "127.0.0.1:0");
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut half, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").unwrap();
    let t0 = std::time::Instant::now();
    // 25 refusals (another name), then the stop: the 5 past the budget are counted at
    // the stop, not lost with it.
    let mut burst = std::net::TcpStream::connect(&addr).unwrap();
    let one = "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n";
    let last = "GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    std::io::Write::write_all(&mut burst, (one.repeat(24) + last).as_bytes()).unwrap();
    std::io::Read::read_to_string(&mut burst, &mut String::new()).unwrap();
    let pid = d.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        if d.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(15),
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(half);
    let journal = d.journal();
    assert!(
        journal.contains("serve: 5 more refusal(s) in the ")
            && journal.contains("not told one by one: 127.0.0.1 ×5 (421)"),
        "{journal}"
    );
}

#[test]
fn half_sent_requests_are_closed_and_one_address_cannot_take_every_connection() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let s = Site::new();
    let d = Dashboard::start(&s.config(), "127.0.0.1:0");
    let addr: std::net::SocketAddr = d.base.trim_start_matches("http://").parse().unwrap();
    // 60 refusals in a burst on one connection (another name, pipelined): the first 20
    // are told one by one, the rest as a count when the 10 s are over.
    let mut burst = TcpStream::connect(addr).unwrap();
    let one = "GET /x HTTP/1.1\r\nHost: evil.example\r\n\r\n";
    let last = "GET /x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n";
    burst.write_all((one.repeat(59) + last).as_bytes()).unwrap();
    let mut answers = String::new();
    burst.read_to_string(&mut answers).unwrap();
    assert_eq!(answers.matches("HTTP/1.1 421").count(), 60);
    let told_one_by_one = |j: &str| {
        j.lines()
            .filter(|l| l.starts_with("serve: refused"))
            .count()
    };
    assert_eq!(told_one_by_one(&d.journal()), 20, "{}", d.journal());
    // 300 connections from 127.0.0.1, each with half a request: 256 are held, the rest
    // closed at once.
    let conns: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (mut held, mut refused) = (Vec::new(), 0);
    for mut c in conns {
        c.set_nonblocking(true).unwrap();
        match c.read(&mut [0u8; 64]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => held.push(c),
            Ok(0) => refused += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((held.len(), refused), (256, 44));
    // The journal says so at once, and the rest in a sum: not a line for each.
    let told = |journal: &str| -> Vec<u64> {
        journal
            .lines()
            .filter(|l| l.ends_with("over the cap of 256 connections from one address"))
            .map(|l| l.split(' ').nth(2).unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(told(&d.journal()).first(), Some(&1), "{}", d.journal());
    // Another address is still answered.
    let other = curl(&format!("{}/", d.base), &["--interface", "127.0.0.2"]);
    assert_eq!(other.status, 200, "{}", other.body);
    assert!(other.body.contains("id=\"fleet\""));
    // The half-sent requests are closed once their head is overdue (10 s), not kept.
    let t0 = Instant::now();
    for c in &mut held {
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
        let answer = String::from_utf8_lossy(&buf);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(20));
    drop(held);
    let t0 = Instant::now();
    while told(&d.journal()).iter().sum::<u64>() < 44 && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let sums = told(&d.journal());
    assert!(
        sums.len() <= 3 && sums.iter().sum::<u64>() == 44,
        "{}",
        d.journal()
    );
    let counted = "serve: 40 more refusal(s) in the 10 s from ";
    let t0 = Instant::now();
    while !d.journal().contains(counted) && t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(d.journal().contains(counted), "{}", d.journal());
    assert!(
        d.journal()
            .contains("not told one by one: 127.0.0.1 ×40 (421)"),
        "{}",
        d.journal()
    );
    assert_eq!(told_one_by_one(&d.journal()), 20, "{}", d.journal());
    // And 127.0.0.1 is answered again.
    let again = curl(&format!("{}/", d.base), &[]);
    assert_eq!(again.status, 200, "{}", again.body);
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (installed by the test command)");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A CA in `dir` (NAME.crt, NAME.key) and a client certificate it signs (NAME-client.*).
fn client_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj"];
    let subj = format!("/CN={name} CA");
    ca.extend([subj.as_str(), "-keyout", &key, "-out", &crt]);
    ca.extend(EC);
    openssl(dir, &ca);
    client_cert(dir, name, &format!("{name}-client"));
}

/// A client certificate CLIENT.crt (and .key) signed by the CA NAME in `dir`.
fn client_cert(dir: &Path, name: &str, client: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let (ccsr, ckey, ccrt) = (
        format!("{client}.csr"),
        format!("{client}.key"),
        format!("{client}.crt"),
    );
    let mut req = vec![
        "req",
        "-new",
        "-subj",
        "/CN=shift engineer",
        "-keyout",
        &ckey,
        "-out",
        &ccsr,
    ];
    req.extend(EC);
    openssl(dir, &req);
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &ccsr,
            "-CA",
            &crt,
            "-CAkey",
            &key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            &ccrt,
        ],
    );
}

/// curl over TLS to `url` with the client certificate NAME.crt (and .key) in `dir`.
fn with_cert(url: &str, dir: &Path, name: &str) -> Got {
    let dir = dir.display();
    curl(
        url,
        &[
            "--cert",
            &format!("{dir}/{name}.crt"),
            "--key",
            &format!("{dir}/{name}.key"),
        ],
    )
}

#[test]
fn a_client_certificate_from_the_configured_ca_is_a_login() {
    let s = Site::new();
    let base = std::fs::read_to_string(s.config()).unwrap();
    let (cert, key) = self_signed(&s);
    // In the site's folder, where the config's relative paths start.
    let site = s.path("site");
    client_ca(&site, "plant");
    client_ca(&site, "other");
    // client-ca without TLS is refused when the config is read.
    std::fs::write(
        s.config(),
        format!("{base}\n[serve]\nclient-ca = \"plant.crt\"\n"),
    )
    .unwrap();
    let r = s.run(&["serve"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("`client-ca` needs TLS"), "{}", r.stderr);
    // With TLS and the CA, and no tokens: a certificate is the login, on any name.
    std::fs::write(
        s.config(),
        format!(
            "{base}\n[serve]\nlisten = \"0.0.0.0:0\"\ntls-certificate = \"{}\"\ntls-key = \"{}\"\nclient-ca = \"plant.crt\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let d = Dashboard::start(&s.config(), "0.0.0.0:0");
    let url = d.base.replace("0.0.0.0", "127.0.0.1") + "/";
    let dir = site.display().to_string();
    let with = |name: &str| {
        curl(
            &url,
            &[
                "--cert",
                &format!("{dir}/{name}-client.crt"),
                "--key",
                &format!("{dir}/{name}-client.key"),
                "-H",
                "Host: plc-backup.example",
            ],
        )
    };
    let ok = with("plant");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("id=\"fleet\""), "{}", ok.body);
    // No certificate, or one from another CA: no handshake, no page.
    assert_eq!(curl(&url, &[]).status, 0);
    assert_eq!(with("other").status, 0);
    // Nor a TLS session saved from a connection that had the certificate (openssl's
    // client): resumed, it would skip the certificate's checks, so none is resumed.
    let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
    let s_client = |extra: &[&str]| -> String {
        let mut c = Command::new("timeout")
            .args(["10", "openssl", "s_client", "-quiet", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .current_dir(&site)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        c.stdin
            .take()
            .unwrap()
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned()
    };
    let first = s_client(&[
        "-cert",
        "plant-client.crt",
        "-key",
        "plant-client.key",
        "-sess_out",
        "session.pem",
    ]);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let resumed = s_client(&["-sess_in", "session.pem"]);
    assert!(!resumed.contains("HTTP/1.1 200"), "{resumed}");
    let journal = d.journal_with(&["TLS handshake with 127.0.0.1:"]);
    assert!(
        journal.contains("TLS handshake with 127.0.0.1:"),
        "{journal}"
    );
    // A renewed server certificate is used from the next connection on, no restart.
    let served_subject = || {
        let o = Command::new("timeout")
            .args(["10", "openssl", "s_client", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-cert", "plant-client.crt", "-key", "plant-client.key"])
            .current_dir(&site)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.lines()
            .find(|l| l.starts_with("subject="))
            .unwrap_or_else(|| panic!("no certificate in {out}"))
            .to_string()
    };
    assert!(served_subject().contains("plcvault test"));
    let (new_crt, new_key) = (
        cert.with_extension("new.crt"),
        key.with_extension("new.key"),
    );
    openssl(
        &site,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=renewed",
            "-keyout",
            new_key.to_str().unwrap(),
            "-out",
            new_crt.to_str().unwrap(),
        ],
    );
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_crt, &cert).unwrap();
    assert!(served_subject().contains("renewed"), "{}", served_subject());
    assert_eq!(with("plant").status, 200);
    // With tokens as well, both are needed: the certificate alone is a 401.
    drop(d);
    let t = s.run(&["--json", "serve", "token"]);
    let line = t.records("serve-token")[0]["config"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.config(), format!("{text}tokens = [\"{line}\"]\n")).unwrap();
    let d = Dashboard::start(&s.config(), "0.0.0.0:0");
    let url = d.base.replace("0.0.0.0", "127.0.0.1") + "/";
    let cert_only = curl(
        &url,
        &[
            "--cert",
            &format!("{dir}/plant-client.crt"),
            "--key",
            &format!("{dir}/plant-client.key"),
        ],
    );
    assert_eq!(cert_only.status, 401, "{}", cert_only.body);
}

#[test]
fn a_client_certificate_revoked_in_the_crl_is_refused_from_the_next_connection_on() {
    let s = Site::new();
    let base = std::fs::read_to_string(s.config()).unwrap();
    let (cert, key) = self_signed(&s);
    let site = s.path("site");
    client_ca(&site, "plant");
    client_cert(&site, "plant", "second");
    // The CA's own books, as `openssl ca` keeps them, and its first list: nothing revoked.
    std::fs::write(site.join("index.txt"), "").unwrap();
    std::fs::write(site.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        site.join("ca.cnf"),
        "[ca]\ndefault_ca = plant\n[plant]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\ncertificate = plant.crt\nprivate_key = plant.key\n",
    )
    .unwrap();
    let gencrl = |out: &str| openssl(&site, &["ca", "-config", "ca.cnf", "-gencrl", "-out", out]);
    gencrl("plant.crl");
    let tls = format!(
        "{base}\n[serve]\nlisten = \"0.0.0.0:0\"\ntls-certificate = \"{}\"\ntls-key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    // A CRL without the CA it speaks for is refused when the config is read.
    std::fs::write(s.config(), format!("{tls}client-crl = \"plant.crl\"\n")).unwrap();
    let r = s.run(&["serve"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("`client-crl` needs `client-ca`"),
        "{}",
        r.stderr
    );
    // A file that is no CRL stops the start, saying what to give.
    std::fs::write(site.join("junk.crl"), "not a list\n").unwrap();
    std::fs::write(
        s.config(),
        format!("{tls}client-ca = \"plant.crt\"\nclient-crl = \"junk.crl\"\n"),
    )
    .unwrap();
    let r = s.run(&["serve"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no revocation list in it"),
        "{}",
        r.stderr
    );
    std::fs::write(
        s.config(),
        format!("{tls}client-ca = \"plant.crt\"\nclient-crl = \"plant.crl\"\n"),
    )
    .unwrap();
    let d = Dashboard::start(&s.config(), "0.0.0.0:0");
    let url = d.base.replace("0.0.0.0", "127.0.0.1") + "/";
    assert_eq!(with_cert(&url, &site, "plant-client").status, 200);
    assert_eq!(with_cert(&url, &site, "second").status, 200);
    // The second certificate is revoked and the list published: refused at the handshake
    // from the next connection on, without a restart; the first is still a login.
    openssl(&site, &["ca", "-config", "ca.cnf", "-revoke", "second.crt"]);
    gencrl("plant.crl");
    assert_eq!(with_cert(&url, &site, "second").status, 0);
    assert_eq!(with_cert(&url, &site, "plant-client").status, 200);
    let journal = d.journal_with(&["Revoked"]);
    assert!(
        journal.contains("TLS file(s) changed, read again: ") && journal.contains("plant.crl\n"),
        "{journal}"
    );
    assert!(
        journal.contains("serve: TLS handshake with 127.0.0.1:") && journal.contains("Revoked"),
        "{journal}"
    );
    // A list that is past its next update is refused for everyone (it may miss a
    // revocation), as is a list file broken while serving.
    let o = Command::new("faketime")
        .args(["-f", "-3d", "openssl", "ca", "-config", "ca.cnf", "-gencrl"])
        .args(["-crldays", "1", "-out", "plant.crl"])
        .current_dir(&site)
        .output()
        .expect("faketime (installed by the test command)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(with_cert(&url, &site, "plant-client").status, 0);
    let needle = "plant.crl is past its next update: every client certificate is refused";
    let journal = d.journal_with(&[needle]);
    assert!(journal.contains(needle), "{journal}");
    std::fs::write(site.join("plant.crl"), "half a list").unwrap();
    assert_eq!(with_cert(&url, &site, "plant-client").status, 0);
    assert!(
        d.journal()
            .contains("every connection is refused until they are fixed"),
        "{}",
        d.journal()
    );
    // A current list again: back in, and the revoked one still out.
    gencrl("plant.crl");
    assert_eq!(with_cert(&url, &site, "plant-client").status, 200);
    assert_eq!(with_cert(&url, &site, "second").status, 0);
}
