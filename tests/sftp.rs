//! The `ftp` adapter with `protocol = "sftp"` against OpenSSH's `sshd` and `sftp-server`
//! (nobody on this team wrote them), run unprivileged on a high port of 127.0.0.1 with a
//! throw-away host key. `sftp-server -l DEBUG` records every request it receives; the
//! safety test reads that record. A small TCP relay in the test cuts or stalls the
//! connection to show retries on a new connection and timeouts.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Site;

const SSHD: &str = "/usr/sbin/sshd";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// `sshd` serving SFTP of `root` to the current user, recording each SFTP request.
struct Peer {
    child: Child,
    port: u16,
    /// The host key's fingerprint as `ssh-keygen -lf` prints it.
    fingerprint: String,
    /// A client key the server accepts.
    key: PathBuf,
    trace: PathBuf,
    user: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_peer(test: &str) -> bool {
    let ok = Path::new(SSHD).exists()
        && Path::new(SFTP_SERVER).exists()
        && Command::new("ssh-keygen").arg("-?").output().is_ok();
    if !ok {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: OpenSSH's sshd is required but not installed; run `bash tests/run.sh` (apt-get install openssh-server)"
        );
        eprintln!("SKIPPED {test}: OpenSSH's sshd not installed (run `bash tests/run.sh`)");
    }
    ok
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Peer {
    fn start(dir: &Path, root: &Path) -> Peer {
        std::fs::create_dir_all(dir).unwrap();
        let host = dir.join("host_key");
        let key = dir.join("client_key");
        keygen(&host);
        keygen(&key);
        std::fs::copy(key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
        let fp = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(host.with_extension("pub"))
            .output()
            .unwrap();
        let fingerprint = String::from_utf8(fp.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        let trace = dir.join("sftp-trace.log");
        // As root, sshd needs its privilege-separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin yes\nLogLevel FATAL\nSubsystem sftp {SFTP_SERVER} -e -l DEBUG -R 2>>{}\n",
                    host.display(),
                    dir.join("authorized_keys").display(),
                    trace.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Peer {
                        child,
                        port,
                        fingerprint,
                        key,
                        trace,
                        user,
                    };
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = root;
        panic!("sshd did not start");
    }

    /// Every SFTP request the server logged: (request, argument text). With `-R`, the
    /// server announces right after `received client version` which extensions it
    /// refuses (`Refusing hardlink request in read-only mode`, ...); those lines are its
    /// own, not requests, and are left out.
    fn requests(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let mut out = Vec::new();
        let mut announcing = false;
        for line in text.lines() {
            if line.starts_with("received client version") {
                announcing = true;
                continue;
            }
            if announcing && line.starts_with("Refusing ") {
                continue;
            }
            announcing = false;
            out.extend(request_of(line));
        }
        out
    }

    /// How often `name` was opened.
    fn opens(&self, name: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(r, a)| r == "open" && a.contains(name))
            .count()
    }
}

/// The request a line of `sftp-server -l DEBUG` records, if it records one. Requests
/// are logged as `open "PATH" flags READ mode 0666`, `opendir "PATH"`,
/// `debug1: request 4: readdir "PATH" (handle 0)`, `stat name "PATH"` and so on; a
/// request the server refuses is logged as `Refusing open request in read-only mode`.
fn request_of(line: &str) -> Option<(String, String)> {
    let l = match line.split_once(": request ") {
        Some((_, rest)) => rest.split_once(": ")?.1,
        None => line,
    };
    if let Some(rest) = l.strip_prefix("Refusing ") {
        return Some(("refused".into(), rest.into()));
    }
    let (verb, rest) = l.split_once(' ').unwrap_or((l, ""));
    let known = [
        "open",
        "close",
        "read",
        "write",
        "opendir",
        "readdir",
        "closedir",
        "stat",
        "lstat",
        "fstat",
        "setstat",
        "fsetstat",
        "remove",
        "mkdir",
        "rmdir",
        "realpath",
        "rename",
        "readlink",
        "symlink",
        "limits",
        "statvfs",
        "fstatvfs",
        "hardlink",
        "fsync",
        "posix-rename",
        "lsetstat",
        "copy-data",
        "home-directory",
        "expand-path",
    ];
    (known.contains(&verb) && !rest.starts_with("len ")).then(|| (verb.to_string(), rest.into()))
}

/// What the README lists for SFTP: open read-only, read, readdir, stat, close.
const READ_REQUESTS: &[&str] = &[
    "open", "read", "opendir", "readdir", "stat", "close", "closedir",
];

fn assert_read_only(peer: &Peer) {
    let sent = peer.requests();
    assert!(
        sent.iter().any(|(r, _)| r == "read") && sent.iter().any(|(r, _)| r == "readdir"),
        "{sent:?}"
    );
    let other: Vec<_> = sent
        .iter()
        .filter(|(r, a)| {
            !READ_REQUESTS.contains(&r.as_str()) || (r == "open" && !a.contains(" flags READ mode"))
        })
        .collect();
    assert!(
        other.is_empty(),
        "requests outside the read list reached the server: {other:?}"
    );
}

/// Adds an SFTP device reaching `port` (the server, or a relay before it).
fn add_sftp(s: &Site, name: &str, peer: &Peer, port: u16, root: &Path, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    let auth = if extra.contains("password-") || extra.contains("key-file") {
        String::new()
    } else {
        format!("key-file = \"{}\"\n", peer.key.display())
    };
    let pin = if extra.contains("host-key-fingerprint") {
        String::new()
    } else {
        format!("host-key-fingerprint = \"{}\"\n", peer.fingerprint)
    };
    text.push_str(&format!(
        "\n[[device]]\nname = \"{name}\"\nadapter = \"ftp\"\nprotocol = \"sftp\"\naddress = \"127.0.0.1:{port}\"\nuser = \"{}\"\nroot = \"{}\"\nmax-requests-per-second = 500\ntimeout = \"5s\"\n{auth}{pin}{extra}\n",
        peer.user,
        root.display()
    ));
    std::fs::write(s.config(), text).unwrap();
}

#[test]
fn sftp_collects_a_tree_read_only_diffs_drills_reports_and_restores_it_byte_exact() {
    if !have_peer("sftp_collects") {
        return;
    }
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    // A link out of the root is not followed.
    std::os::unix::fs::symlink("/etc/passwd", root.join("recipes/passwd")).unwrap();
    let peer = Peer::start(&s.path("sshd"), &root);
    add_sftp(&s, "hmi1", &peer, peer.port, &root, "");
    let r = s.run(&["--json", "collect", "hmi1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(
        (d["status"].as_str(), d["artifacts"].as_u64()),
        (Some("ok"), Some(files.len() as u64)),
        "{d}"
    );
    assert!(d["warnings"].to_string().contains("recipes/passwd"), "{d}");
    let out = s.path("restored");
    let r = s.run(&["restore", "hmi1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
    assert!(!out.join("recipes/passwd").exists());

    // Approve, change a recipe (text view) and the panel image (binary view), compare.
    let key = s.add_approver();
    let r = s.approve("hmi1", &key, "CHG-1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(
        root.join("recipes/batch 7.csv"),
        b"name;value\nsterilise_temp;72\n",
    )
    .unwrap();
    let mut img = files[2].1.clone();
    img[1_000_000] ^= 0xff;
    std::fs::write(root.join("hmi/Übersicht/panel.img"), &img).unwrap();
    let r = s.run(&["collect", "hmi1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let r = s.run(&["--json", "diff", "hmi1"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let findings = r.records("finding");
    let finding = |name: &str| {
        findings
            .iter()
            .find(|f| f["artifact"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no finding for {name}: {findings:?}"))
            .clone()
    };
    let recipe = finding("recipes/batch 7.csv");
    assert_eq!(recipe["view"], "text", "{recipe}");
    assert!(
        recipe["diff"]
            .as_str()
            .unwrap()
            .contains("+sterilise_temp;72"),
        "{recipe}"
    );
    let image = finding("hmi/Übersicht/panel.img");
    assert_eq!(image["view"], "binary", "{image}");
    assert_eq!(image["ranges"], serde_json::json!([[1_000_000, 1_000_001]]));

    // A drill of the approved baseline into a folder, then the report shows the device.
    let drilled = s.path("drills");
    let r = s.run(&["--json", "drill", "hmi1", "--to", drilled.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read(drilled.join("hmi1/recipes/batch 7.csv")).unwrap(),
        files[1].1
    );
    let html = s.path("report.html");
    let r = s.run(&["report", "--html", html.to_str().unwrap()]);
    assert!(r.code <= 1, "{}{}", r.stdout, r.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<td>hmi1</td>")
            && page.contains("drift: 2 finding(s)")
            && page.contains(&format!("folder:{}", drilled.join("hmi1").display())),
        "{page}"
    );
    assert_read_only(&peer);
}

#[test]
fn project_exports_collected_over_sftp_are_compared_by_address() {
    if !have_peer("project_exports_over_sftp") {
        return;
    }
    let s = Site::new();
    let root = s.path("server");
    std::fs::create_dir_all(&root).unwrap();
    let peer = Peer::start(&s.path("sshd"), &root);
    add_sftp(&s, "ews", &peer, peer.port, &root, "");
    common::exports_are_compared_by_address(&s, &root, "ews");
}

#[test]
fn an_unknown_or_changed_host_key_is_refused_with_its_fingerprint_and_a_bad_login_is_auth() {
    if !have_peer("host_keys") {
        return;
    }
    let s = Site::new();
    let root = s.path("server");
    common::remote_plant(&root);
    let peer = Peer::start(&s.path("sshd"), &root);
    add_sftp(
        &s,
        "new",
        &peer,
        peer.port,
        &root,
        "host-key-fingerprint = \"\"",
    );
    add_sftp(
        &s,
        "changed",
        &peer,
        peer.port,
        &root,
        "host-key-fingerprint = \"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
    );
    for dev in ["new", "changed"] {
        let r = s.run(&["--json", "collect", dev]);
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        let d = &r.records("device")[0];
        assert_eq!(d["error_kind"], "identity", "{d}");
        assert!(
            d["error"].as_str().unwrap().contains(&peer.fingerprint),
            "the fingerprint to pin is printed: {d}"
        );
        assert!(
            d["fix"].to_string().contains("host-key-fingerprint")
                || r.stdout.contains("host-key-fingerprint"),
            "{}",
            r.stdout
        );
    }
    // Nothing reached the SFTP subsystem of a server that was not trusted.
    assert!(peer.requests().is_empty(), "{:?}", peer.requests());

    std::fs::write(s.path("site/bad.pass"), "wrong\n").unwrap();
    add_sftp(
        &s,
        "badpass",
        &peer,
        peer.port,
        &root,
        "password-file = \"bad.pass\"",
    );
    let other = s.path("other_key");
    keygen(&other);
    add_sftp(
        &s,
        "badkey",
        &peer,
        peer.port,
        &root,
        &format!("key-file = \"{}\"", other.display()),
    );
    for dev in ["badpass", "badkey"] {
        let r = s.run(&["--json", "collect", dev]);
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        let d = &r.records("device")[0];
        assert_eq!(d["error_kind"], "auth", "{d}");
        assert!(!r.stdout.contains("wrong") && !r.stderr.contains("wrong"));
    }
    drop(peer);
    std::thread::sleep(Duration::from_millis(200));
    let r = s.run(&["--json", "collect", "badkey"]);
    assert_eq!(
        r.records("device")[0]["error_kind"],
        "unreachable",
        "{}",
        r.stdout
    );
}

/// A TCP relay before the server. `cut_after`: the first connection is cut once that
/// many bytes came from the server; `stall_after`: every connection stops passing bytes
/// from the server after that many (and stays open).
struct Relay {
    port: u16,
    connections: Arc<AtomicUsize>,
}

fn relay(upstream: u16, cut_after: Option<usize>, stall_after: Option<usize>) -> Relay {
    relay_with(upstream, cut_after, stall_after, false)
}

/// `relay`, and with `mute_later` every connection after the first is accepted and never
/// answered (a device that stopped answering after the listing).
fn relay_with(
    upstream: u16,
    cut_after: Option<usize>,
    stall_after: Option<usize>,
    mute_later: bool,
) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        let cut_done = Arc::new(AtomicBool::new(false));
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let n = count.fetch_add(1, Ordering::SeqCst);
            if mute_later && n > 0 {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(60));
                    drop(client);
                });
                continue;
            }
            let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pump(c2, s2, None, None));
            let cut = if n == 0 && !cut_done.swap(true, Ordering::SeqCst) {
                cut_after
            } else {
                None
            };
            std::thread::spawn(move || pump(server, client, cut, stall_after));
        }
    });
    Relay { port, connections }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: Option<usize>, stall: Option<usize>) {
    let mut buf = [0u8; 16 * 1024];
    let mut passed = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        passed += n;
        if cut.is_some_and(|c| passed > c) {
            break;
        }
        if stall.is_some_and(|s| passed > s) {
            std::thread::sleep(Duration::from_secs(120));
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[test]
fn a_connection_cut_mid_file_is_fetched_again_on_a_new_one_and_a_growing_file_is_unstable() {
    if !have_peer("cut_mid_file") {
        return;
    }
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let peer = Peer::start(&s.path("sshd"), &root);
    let cut = relay(peer.port, Some(1024 * 1024), None);
    add_sftp(&s, "hmi2", &peer, cut.port, &root, "");
    let r = s.run(&["--json", "collect", "hmi2"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        cut.connections.load(Ordering::SeqCst) >= 2,
        "a new connection"
    );
    assert_eq!(peer.opens("panel.img"), 2, "{:?}", peer.requests());
    let out = s.path("restored");
    let r = s.run(&["restore", "hmi2", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }

    // A file that grows while it is read is fetched again, then marked unstable.
    let stop = Arc::new(AtomicBool::new(false));
    let growing = root.join("PLC1/OB1.awl");
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(growing)
                .unwrap();
            while !stop.load(Ordering::SeqCst) {
                f.write_all(&[b'x'; 4096]).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let before = peer.opens("OB1.awl");
    let r = s.run(&["--json", "collect", "hmi2"]);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("OB1.awl"), "{}", r.stdout);
    assert_eq!(
        peer.opens("OB1.awl") - before,
        3,
        "three tries, then unstable"
    );
    let snaps = s.run(&["--json", "snapshots", "hmi2"]).records("snapshot");
    assert_eq!(snaps.last().unwrap()["complete"], false, "{snaps:?}");
    assert_read_only(&peer);
}

#[test]
fn a_stalling_server_times_out_a_huge_folder_is_bounded_and_a_large_file_streams_flat() {
    if !have_peer("stall") {
        return;
    }
    let s = Site::new();
    let root = s.path("server");
    let many = s.path("many");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&many).unwrap();
    std::fs::write(root.join("image.bin"), common::noise(200 * 1024 * 1024, 3)).unwrap();
    for i in 0..100_000 {
        std::fs::File::create(many.join(format!("f{i:06}"))).unwrap();
    }
    let peer = Peer::start(&s.path("sshd"), &root);

    // 100,000 entries in one folder: the listing stops at max-files.
    add_sftp(&s, "many", &peer, peer.port, &many, "max-files = 1000");
    let t0 = Instant::now();
    let r = s.run(&["--json", "collect", "many"]);
    // Nothing but the cut listing was read: a failed collection, not an empty snapshot.
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(d["error_kind"], "nothing-read", "{d}");
    assert!(d["error"].to_string().contains("max-files"), "{d}");
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());

    // The server stops sending in the middle of the image: a timeout, not a hang.
    let stall = relay(peer.port, None, Some(512 * 1024));
    add_sftp(&s, "stall", &peer, stall.port, &root, "retries = 0");
    let text = std::fs::read_to_string(s.config()).unwrap();
    let at = text.rfind("timeout = \"5s\"").unwrap();
    let text = format!("{}timeout = \"1s\"{}", &text[..at], &text[at + 14..]);
    std::fs::write(s.config(), text).unwrap();
    let t0 = Instant::now();
    let r = s.run(&["--json", "collect", "stall"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert_eq!(
        r.records("device")[0]["error_kind"],
        "nothing-read",
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("in time"), "{}", r.stdout);
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());

    // 200 MiB under an address-space limit that a copy held whole would break.
    add_sftp(&s, "big", &peer, peer.port, &root, "");
    common::collect_in_180_mib(&s, "big");
    assert_read_only(&peer);
}

#[test]
fn ftp_and_sftp_settings_errors_name_the_key_and_say_what_to_do() {
    let cases = [
        (
            "protocol = \"sftp\"\nuser = \"b\"\nkey-file = \"k\"",
            "needs key `host-key-fingerprint`",
        ),
        (
            "protocol = \"sftp\"\nuser = \"b\"\nkey-file = \"k\"\nhost-key-fingerprint = \"AA:BB\"",
            "not a SHA-256 host key fingerprint",
        ),
        (
            "protocol = \"sftp\"\nkey-file = \"k\"\nhost-key-fingerprint = \"\"",
            "needs key `user`",
        ),
        (
            "protocol = \"sftp\"\nuser = \"b\"\nhost-key-fingerprint = \"\"",
            "needs `key-file`",
        ),
        (
            "protocol = \"sftp\"\nuser = \"b\"\nkey-file = \"k\"\npassword-env = \"P\"\nhost-key-fingerprint = \"\"",
            "`key-file` and a password both given",
        ),
        (
            "protocol = \"sftp\"\nuser = \"b\"\nkey-file = \"k\"\nhost-key-fingerprint = \"\"\ntls-fingerprint = \"\"",
            "a TLS setting with protocol sftp",
        ),
        (
            "protocol = \"ftps\"\ntls-fingerprint = \"\"\nkey-file = \"k\"",
            "an SSH setting with protocol ftps",
        ),
        (
            "host-key-fingerprint = \"\"",
            "an SSH setting with protocol ftp",
        ),
        ("protocol = \"scp\"", "is not ftp, ftps or sftp"),
    ];
    for (body, expected) in cases {
        let s = Site::new();
        let mut text = std::fs::read_to_string(s.config()).unwrap();
        text.push_str(&format!(
            "\n[[device]]\nname = \"hmix\"\nadapter = \"ftp\"\naddress = \"10.1.1.20\"\n{body}\n"
        ));
        std::fs::write(s.config(), &text).unwrap();
        let r = s.run(&["config", "check"]);
        assert_eq!(r.code, 2, "{body}: {}", r.stderr);
        assert!(r.stderr.contains(expected), "{body}: {}", r.stderr);
        assert!(r.stderr.contains("plcvault.toml:"), "{body}: {}", r.stderr);
    }
    // A pinned, valid device passes the check; a key file others can read is a warning.
    let s = Site::new();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.path("site/k"), "x").unwrap();
    text.push_str("\n[[device]]\nname = \"hmiy\"\nadapter = \"ftp\"\naddress = \"10.1.1.20\"\nprotocol = \"sftp\"\nuser = \"b\"\nkey-file = \"k\"\nhost-key-fingerprint = \"SHA256:7DkTAi1OXPadpjzHHz31fbUFRIfX4hnOuxis0NN8NxE\"\n");
    std::fs::write(s.config(), &text).unwrap();
    let r = s.run(&["config", "check"]);
    assert!(r.code <= 1, "{}", r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("key file") && all.contains("chmod 600"),
        "{all}"
    );
    assert!(all.contains("not a usable OpenSSH private key"), "{all}");
    // A public key given as the key file is told as such.
    std::fs::write(
        s.path("site/k"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test\n",
    )
    .unwrap();
    let r = s.run(&["config", "check"]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("holds a public key"), "{all}");
}

#[test]
fn a_device_that_stops_answering_after_the_listing_fails_the_rest_at_once() {
    if !have_peer("stops_answering") {
        return;
    }
    let s = Site::new();
    let root = s.path("server");
    common::remote_plant(&root);
    let peer = Peer::start(&s.path("sshd"), &root);
    // The first connection is cut inside the image; every later one is never answered.
    let r = relay_with(peer.port, Some(1024 * 1024), None, true);
    add_sftp(&s, "hmi9", &peer, r.port, &root, "retries = 1");
    let text = std::fs::read_to_string(s.config()).unwrap();
    let at = text.rfind("timeout = \"5s\"").unwrap();
    let text = format!("{}timeout = \"1s\"{}", &text[..at], &text[at + 14..]);
    std::fs::write(s.config(), text).unwrap();
    let out = s.run(&["--json", "collect", "hmi9"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    // One reconnect with its one retry, then the device is down for this collection: not
    // three tries of every remaining file.
    assert_eq!(r.connections.load(Ordering::SeqCst), 3, "{}", out.stdout);
    assert!(out.stdout.contains("stopped answering"), "{}", out.stdout);
}
