//! The `ftp` adapter against pyftpdlib (an FTP server nobody on this team wrote), plain
//! and explicit FTPS: a tree with nested folders, spaces, non-ASCII names and an empty
//! file collected, restored byte-exact and compared; the server's own command log shows
//! that only read commands were sent; a wrong certificate pin and a wrong password are
//! told apart and stop nothing else.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Site;

/// pyftpdlib serving `root`, recording every command it receives.
struct Peer {
    child: Child,
    port: u16,
    fingerprint: Option<String>,
    log: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python(test: &str) -> Option<PathBuf> {
    let py = std::env::var_os("PLCVAULT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import pyftpdlib, OpenSSL"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: the pyftpdlib peer is required but not installed; run `bash tests/run.sh`"
        );
        eprintln!("SKIPPED {test}: pyftpdlib not installed (run `bash tests/run.sh`)");
        return None;
    }
    Some(py)
}

impl Peer {
    fn start(py: &Path, root: &Path, tls: Option<&Path>) -> Peer {
        Peer::with_faults(py, root, tls, &[])
    }

    fn with_faults(py: &Path, root: &Path, tls: Option<&Path>, faults: &[&str]) -> Peer {
        let log = root.with_extension("commands.jsonl");
        let mut cmd = Command::new(py);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ftp_server.py"))
            .arg(root)
            .arg(&log)
            .args(faults);
        if let Some(d) = tls {
            cmd.arg("--tls").arg(d);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = lines
            .next()
            .and_then(|l| l.ok())
            .and_then(|l| l.strip_prefix("PORT ").and_then(|p| p.parse().ok()))
            .expect("the FTP peer reports its port");
        let fingerprint = tls.map(|_| {
            lines
                .next()
                .and_then(|l| l.ok())
                .and_then(|l| l.strip_prefix("FINGERPRINT ").map(str::to_string))
                .expect("the FTPS peer reports its fingerprint")
        });
        Peer {
            child,
            port,
            fingerprint,
            log,
        }
    }

    /// The commands the server received with their arguments.
    fn commands_with_args(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["cmd"].as_str().unwrap().to_string(),
                    v["arg"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The commands the server received, in order.
    fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["cmd"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }
}

fn add_ftp(s: &Site, name: &str, port: u16, extra: &str) {
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    std::fs::write(s.path("site/ftp.pass"), "secret\n").unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"{name}\"\nadapter = \"ftp\"\naddress = \"127.0.0.1:{port}\"\nuser = \"plc\"\npassword-file = \"ftp.pass\"\nmax-requests-per-second = 500\ntimeout = \"5s\"\n{extra}\n"
    ));
    std::fs::write(s.config(), text).unwrap();
}

/// Only what the README lists for the ftp adapter.
const READ_COMMANDS: &[&str] = &[
    "USER", "PASS", "AUTH", "PBSZ", "PROT", "FEAT", "OPTS", "TYPE", "PWD", "CWD", "PASV", "EPSV",
    "LIST", "MLSD", "NLST", "SIZE", "MDTM", "RETR", "QUIT",
];

fn collect_restore_compare(
    s: &Site,
    peer: &Peer,
    root: &Path,
    files: &[(String, Vec<u8>)],
    dev: &str,
) {
    let r = s.run(&["--json", "collect", dev]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(
        (d["status"].as_str(), d["artifacts"].as_u64()),
        (Some("ok"), Some(files.len() as u64)),
        "{d}"
    );
    let out = s.path(&format!("restored-{dev}"));
    let r = s.run(&["restore", dev, "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (name, data) in files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
    // A change on the server is a finding against the previous snapshot.
    std::fs::write(
        root.join("recipes/batch 7.csv"),
        b"name;value\nsterilise_temp;72\n",
    )
    .unwrap();
    let r = s.run(&["collect", dev]);
    assert!(
        r.stdout.contains("sterilise_temp;72") || r.stdout.contains("batch 7.csv"),
        "{}",
        r.stdout
    );
    assert_read_only(&peer.commands(), "MLSD", "pyftpdlib");
}

/// The server's log holds the listing command `listing` and RETR, and nothing outside
/// the README's list.
fn assert_read_only(sent: &[String], listing: &str, server: &str) {
    assert!(
        sent.iter().any(|c| c == "RETR") && sent.iter().any(|c| c == listing),
        "{sent:?}"
    );
    let other: Vec<&String> = sent
        .iter()
        .filter(|c| !READ_COMMANDS.contains(&c.as_str()))
        .collect();
    assert!(
        other.is_empty(),
        "commands outside the read list reached {server}: {other:?}"
    );
}

#[test]
fn plain_ftp_collects_a_tree_read_only_and_restores_it_byte_exact() {
    let Some(py) = python("plain_ftp_collects_a_tree_read_only_and_restores_it_byte_exact") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let peer = Peer::start(&py, &root, None);
    add_ftp(&s, "panel1", peer.port, "");
    collect_restore_compare(&s, &peer, &root, &files, "panel1");
}

#[test]
fn project_exports_collected_over_ftp_are_compared_by_address() {
    let Some(py) = python("project_exports_collected_over_ftp_are_compared_by_address") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    std::fs::create_dir_all(&root).unwrap();
    let peer = Peer::start(&py, &root, None);
    add_ftp(&s, "ews", peer.port, "");
    common::exports_are_compared_by_address(&s, &root, "ews");
    assert_read_only(&peer.commands(), "MLSD", "pyftpdlib");
}

#[test]
fn ftps_with_the_pinned_certificate_collects_and_a_wrong_pin_is_refused_with_the_fingerprint() {
    let Some(py) = python("ftps_pinned") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let peer = Peer::start(&py, &root, Some(&s.path("tls")));
    let fp = peer.fingerprint.clone().unwrap();
    add_ftp(
        &s,
        "panel2",
        peer.port,
        &format!("protocol = \"ftps\"\ntls-fingerprint = \"{fp}\""),
    );
    add_ftp(
        &s,
        "panel3",
        peer.port,
        "protocol = \"ftps\"\ntls-fingerprint = \"\"",
    );
    collect_restore_compare(&s, &peer, &root, &files, "panel2");
    assert!(
        peer.commands().iter().any(|c| c == "AUTH"),
        "TLS was not used"
    );
    let r = s.run(&["--json", "collect", "panel3"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(d["error_kind"], "identity", "{d}");
    assert!(
        d["error"].as_str().unwrap().contains(&fp),
        "the fingerprint to pin is printed: {d}"
    );
}

#[test]
fn a_wrong_password_is_a_login_failure_and_a_dead_server_is_unreachable() {
    let Some(py) = python("a_wrong_password_is_a_login_failure") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    common::remote_plant(&root);
    let peer = Peer::start(&py, &root, None);
    add_ftp(&s, "panel4", peer.port, "");
    std::fs::write(s.path("site/ftp.pass"), "wrong\n").unwrap();
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text = text.replace(
        "password-file = \"ftp.pass\"",
        "password-file = \"bad.pass\"",
    );
    std::fs::write(s.path("site/bad.pass"), "wrong\n").unwrap();
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["--json", "collect", "panel4"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let d = &r.records("device")[0];
    assert_eq!(d["error_kind"], "auth", "{d}");
    assert!(
        !r.stdout.contains("wrong") && !r.stderr.contains("wrong"),
        "the password is never printed"
    );
    drop(peer);
    std::thread::sleep(Duration::from_millis(200));
    let r = s.run(&["--json", "collect", "panel4"]);
    let d = &r.records("device")[0];
    assert_eq!(d["error_kind"], "unreachable", "{d}");
}

#[test]
fn hostile_listing_entries_are_skipped_and_a_huge_listing_is_bounded() {
    let Some(py) = python("hostile_listing") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let peer = Peer::with_faults(&py, &root, None, &["--hostile"]);
    add_ftp(&s, "panel5", peer.port, "");
    let r = s.run(&["--json", "collect", "panel5"]);
    assert_eq!(
        r.code, 3,
        "a listing that names other places is an incomplete snapshot: {}",
        r.stdout
    );
    let d = &r.records("device")[0];
    assert_eq!(d["artifacts"].as_u64(), Some(files.len() as u64), "{d}");
    let w = d["warnings"].to_string();
    assert!(w.contains("../etc/passwd") && w.contains("a/b"), "{w}");
    let fetched: Vec<String> = peer
        .commands_with_args()
        .into_iter()
        .filter(|(c, _)| c == "RETR")
        .map(|(_, a)| a)
        .collect();
    assert!(
        fetched
            .iter()
            .all(|a| !a.contains("..") && !a.ends_with("/a/b")),
        "{fetched:?}"
    );

    let many = Peer::with_faults(&py, &root, None, &["--many", "100000"]);
    add_ftp(&s, "panel6", many.port, "max-files = 1000");
    let t0 = std::time::Instant::now();
    let r = s.run(&["--json", "collect", "panel6"]);
    // Nothing but the cut listing was read: a failed collection, not an empty snapshot.
    assert_eq!(r.code, 3, "{}", r.stdout);
    let d = &r.records("device")[0];
    assert_eq!(d["error_kind"], "nothing-read", "{d}");
    assert!(d["error"].to_string().contains("max-files"), "{d}");
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
}

#[test]
fn a_download_cut_short_is_fetched_again_and_one_that_keeps_growing_is_unstable() {
    let Some(py) = python("cut_short") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let peer = Peer::with_faults(
        &py,
        &root,
        None,
        &["--truncate-once", "panel.img", "--grow", "OB1.awl"],
    );
    add_ftp(&s, "panel7", peer.port, "");
    let r = s.run(&["--json", "collect", "panel7"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    let snaps = s
        .run(&["--json", "snapshots", "panel7"])
        .records("snapshot");
    assert_eq!(snaps[0]["complete"], false);
    // The image, cut short once, is stored whole; the file that keeps growing is marked.
    let out = s.path("restored7");
    let r = s.run(&["restore", "panel7", "--to", out.to_str().unwrap()]);
    assert!(r.code <= 1, "{}", r.stderr);
    let img = files
        .iter()
        .find(|(n, _)| n.ends_with("panel.img"))
        .unwrap();
    assert_eq!(std::fs::read(out.join(&img.0)).unwrap(), img.1);
    let retr = |name: &str| {
        peer.commands_with_args()
            .iter()
            .filter(|(c, a)| c == "RETR" && a.ends_with(name))
            .count()
    };
    assert_eq!(retr("panel.img"), 2, "fetched again after it came short");
    assert_eq!(retr("OB1.awl"), 3, "three tries, then unstable");
    let m = s.run(&[
        "--json",
        "diff",
        "panel7",
        "--against",
        snaps[0]["id"].as_str().unwrap(),
    ]);
    assert!(m.code <= 2, "{}", m.stderr);
}

#[test]
fn a_stalling_server_times_out_and_a_large_file_streams_in_flat_memory() {
    let Some(py) = python("stall") else { return };
    let s = Site::new();
    let root = s.path("server");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("OB1.awl"), b"NETWORK 1\n").unwrap();
    let peer = Peer::with_faults(&py, &root, None, &["--stall", "OB1.awl"]);
    add_ftp(&s, "panel8", peer.port, "");
    let text = std::fs::read_to_string(s.config())
        .unwrap()
        .replace("timeout = \"5s\"", "timeout = \"1s\"\nretries = 0");
    std::fs::write(s.config(), text).unwrap();
    let t0 = std::time::Instant::now();
    let r = s.run(&["--json", "collect", "panel8"]);
    assert!(r.code == 3, "{}", r.stdout);
    assert!(r.stdout.contains("in time"), "{}", r.stdout);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    drop(peer);

    // 200 MiB through FTP under an address-space limit that a copy held whole would break.
    let s = Site::new();
    let root = s.path("server");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("image.bin"), common::noise(200 * 1024 * 1024, 3)).unwrap();
    let peer = Peer::start(&py, &root, None);
    add_ftp(&s, "panel9", peer.port, "");
    common::collect_in_180_mib(&s, "panel9");
}

#[test]
fn a_server_streaming_past_the_listed_size_is_cut_off_and_a_failed_download_is_never_spliced() {
    let Some(py) = python("endless_and_splice") else {
        return;
    };
    let s = Site::new();
    let root = s.path("server");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("endless.bin"), b"ten bytes!").unwrap();
    std::fs::write(root.join("swap.bin"), vec![b'A'; 2000]).unwrap();
    let peer = Peer::with_faults(
        &py,
        &root,
        None,
        &["--endless", "endless.bin", "--cut-then-change", "swap.bin"],
    );
    add_ftp(&s, "panel10", peer.port, "");
    let t0 = std::time::Instant::now();
    let r = s.run(&["--json", "collect", "panel10"]);
    assert_eq!(
        r.code, 3,
        "a file longer than listed is unstable: {}{}",
        r.stdout, r.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    // The vault holds no runaway data: three capped tries of an 11-byte read.
    let vault_bytes: u64 = walk_size(&s.vault());
    assert!(
        vault_bytes < 1024 * 1024,
        "{vault_bytes} bytes in the vault"
    );
    let out = s.path("restored10");
    let r = s.run(&["restore", "panel10", "--to", out.to_str().unwrap()]);
    assert!(r.code <= 1, "{}", r.stderr);
    // The download that failed after 100 bytes was fetched again whole: all of the second
    // version, none of the first.
    assert_eq!(
        std::fs::read(out.join("swap.bin")).unwrap(),
        vec![b'B'; 2000]
    );
}

fn walk_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Debian's vsftpd, run unprivileged-style (`run_as_launching_user`) on a high port with
/// anonymous read-only access to `root`, logging every command it receives. It has no
/// MLSD, so the `ls -l` listing parser is what reads it.
struct Vsftpd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Vsftpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Vsftpd {
    fn start(dir: &Path, root: &Path) -> Option<Vsftpd> {
        const BIN: &str = "/usr/sbin/vsftpd";
        if !Path::new(BIN).exists() {
            assert_ne!(
                std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
                Ok("1"),
                "vsftpd is required but not installed; run `bash tests/run.sh` (apt-get install vsftpd)"
            );
            eprintln!("SKIPPED: vsftpd not installed (run `bash tests/run.sh`)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join("vsftpd.log");
        for _ in 0..5 {
            let port = free_port();
            let pasv = free_port();
            let config = dir.join("vsftpd.conf");
            std::fs::write(&log, "").unwrap();
            std::fs::write(
                &config,
                format!(
                    "listen=YES\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\nrun_as_launching_user=YES\nseccomp_sandbox=NO\nanonymous_enable=YES\nanon_root={}\nno_anon_password=YES\nlocal_enable=NO\nwrite_enable=NO\npasv_enable=YES\npasv_min_port={pasv}\npasv_max_port={}\nlog_ftp_protocol=YES\nxferlog_enable=YES\nxferlog_std_format=NO\nvsftpd_log_file={}\n",
                    root.display(),
                    pasv.saturating_add(20),
                    log.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(BIN)
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let t0 = std::time::Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    use std::io::Read;
                    let mut hello = [0u8; 3];
                    let _ = c.read_exact(&mut hello);
                    return Some(Vsftpd { child, port, log });
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("vsftpd did not start");
    }

    /// The commands it logged (`FTP command: Client "127.0.0.1", "RETR x"`), verb only.
    fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once("FTP command: Client ").map(|(_, r)| r))
            .filter_map(|r| r.split_once(", \"").map(|(_, c)| c))
            .map(|c| c.split([' ', '"']).next().unwrap_or("").to_string())
            .collect()
    }
}

#[test]
fn vsftpd_a_second_outside_server_is_collected_through_its_ls_listing_read_only() {
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let Some(peer) = Vsftpd::start(&s.path("vsftpd"), &root) else {
        return;
    };
    let mut text = std::fs::read_to_string(s.config()).unwrap();
    text.push_str(&format!(
        "\n[[device]]\nname = \"drive1\"\nadapter = \"ftp\"\naddress = \"127.0.0.1:{}\"\nroot = \"{}\"\nmax-requests-per-second = 500\ntimeout = \"5s\"\n",
        peer.port,
        root.display()
    ));
    std::fs::write(s.config(), text).unwrap();
    let r = s.run(&["--json", "collect", "drive1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(d["artifacts"].as_u64(), Some(files.len() as u64), "{d}");
    let out = s.path("restored");
    let r = s.run(&["restore", "drive1", "--to", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
    assert_read_only(&peer.commands(), "LIST", "vsftpd");
}

#[test]
fn a_server_listing_a_name_twice_gives_an_incomplete_snapshot_that_verifies_and_restores() {
    let Some(py) = python("twice") else { return };
    let s = Site::new();
    let root = s.path("server");
    let files = common::remote_plant(&root);
    let peer = Peer::with_faults(&py, &root, None, &["--twice"]);
    add_ftp(&s, "panel11", peer.port, "");
    let r = s.run(&["--json", "collect", "panel11"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    let d = &r.records("device")[0];
    assert_eq!(d["artifacts"].as_u64(), Some(files.len() as u64), "{d}");
    assert!(d["warnings"].to_string().contains("lists it twice"), "{d}");
    // Nothing the vault's own verify calls damaged was signed, and it restores.
    let v = s.run(&["verify"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    let out = s.path("restored11");
    let r = s.run(&["restore", "panel11", "--to", out.to_str().unwrap()]);
    assert!(r.code <= 1, "{}", r.stderr);
    for (name, data) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), data, "{name}");
    }
}
