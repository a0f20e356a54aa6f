//! Off-site replicas on a real S3-compatible store: Garage (a single node on 127.0.0.1,
//! built once by `tests/run.sh` and cached outside the tree), with rclone (nobody here
//! wrote it either) as the outside hand that deletes and overwrites objects in the bucket.
//! Cases: first and incremental push, a push killed and resumed, a second site under its
//! own prefix, deleted / altered / overwritten objects found by `verify --remote`, the
//! store's missing `If-None-Match` enforcement reported, wrong credentials and an endpoint
//! that is down (exit 2, the local vault untouched), and `restore --remote`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, Site, noise};

/// The Garage binary: `PLCVAULT_GARAGE`, else where `tests/run.sh` caches it.
fn garage_bin(test: &str) -> Option<PathBuf> {
    let bin = std::env::var_os("PLCVAULT_GARAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/plcvault/garage-2.5.0/bin/garage")
        });
    let rclone = Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !bin.exists() || !rclone {
        assert_ne!(
            std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "{test}: needs Garage ({}) and rclone; run `bash tests/run.sh`, which builds and caches Garage and installs rclone",
            bin.display()
        );
        eprintln!("SKIPPED {test}: Garage or rclone missing (run `bash tests/run.sh`)");
        return None;
    }
    Some(bin)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-node Garage on 127.0.0.1 with one bucket and one key.
struct Garage {
    _dir: tempfile::TempDir,
    child: Child,
    endpoint: String,
    key_id: String,
    secret: String,
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Garage {
    fn start(bin: &Path) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (s3, rpc) = (free_port(), free_port());
        let cfg = dir.path().join("garage.toml");
        let secret: String = noise(32, 99).iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            &cfg,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n[s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&cfg)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let cli = |args: &[&str]| -> String {
            let t0 = Instant::now();
            loop {
                let o = Command::new(bin)
                    .arg("-c")
                    .arg(&cfg)
                    .args(args)
                    .output()
                    .unwrap();
                if o.status.success() {
                    return String::from_utf8_lossy(&o.stdout).into_owned();
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "garage {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        let node = cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap().to_string();
        cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        cli(&["layout", "apply", "--version", "1"]);
        let key = cli(&["key", "create", "plcvault-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {key}"))
                .trim()
                .to_string()
        };
        let (key_id, secret) = (field("Key ID:"), field("Secret key:"));
        cli(&["bucket", "create", "plcvault"]);
        cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "plcvault",
            "--key",
            "plcvault-test",
        ]);
        Garage {
            _dir: dir,
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id,
            secret,
        }
    }

    /// rclone against the bucket (`args` with `g:` as the remote).
    fn rclone(&self, args: &[&str]) {
        let o = Command::new("rclone")
            .args(args)
            .env("RCLONE_CONFIG_G_TYPE", "s3")
            .env("RCLONE_CONFIG_G_PROVIDER", "Other")
            .env("RCLONE_CONFIG_G_ENDPOINT", &self.endpoint)
            .env("RCLONE_CONFIG_G_REGION", "garage")
            .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", &self.key_id)
            .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", &self.secret)
            // A CA bundle for https is of no use on plain http, and rclone's S3 client
            // fails on it.
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A site whose config has `[[remote]] central` at `s3://plcvault/PREFIX`, credentials
/// in a 0600 file.
fn site_with_remote(g: &Garage, prefix: &str, endpoint: &str, secret: &str) -> Site {
    let site = Site::new();
    let creds = site.path("site/keys/s3.toml");
    std::fs::write(
        &creds,
        format!(
            "access-key-id = \"{}\"\nsecret-access-key = \"{secret}\"\n",
            g.key_id
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cfg = std::fs::read_to_string(site.config()).unwrap();
    cfg.push_str(&format!(
        "\n[[remote]]\nname = \"central\"\nurl = \"s3://plcvault/{prefix}\"\nendpoint = \"{endpoint}\"\nregion = \"garage\"\ncredentials = \"keys/s3.toml\"\n"
    ));
    std::fs::write(site.config(), cfg).unwrap();
    site
}

fn run_clean(site: &Site, args: &[&str]) -> Run {
    let r = site.run(args);
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
    r
}

fn log_files(site: &Site) -> usize {
    common::files_under(&site.vault().join("log")).len()
        + common::files_under(&site.vault().join("tlog")).len()
}

#[test]
fn push_verify_and_restore_through_a_real_object_store() {
    let Some(bin) = garage_bin("push_verify_and_restore_through_a_real_object_store") else {
        return;
    };
    let g = Garage::start(&bin);
    let site = site_with_remote(&g, "site-a", &g.endpoint, &g.secret);
    site.write("plant/OB1.awl", b"NETWORK 1\n A I 0.0\n");
    site.write("plant/hmi.img", &noise(3_000_000, 5));
    run_clean(&site, &["collect", "line1"]);

    // First push: the store's protections said, everything written and verified.
    let r = run_clean(&site, &["--json", "push", "central"]);
    let p = &r.records("push")[0];
    assert_eq!(p["protections"]["conditional_create"], false, "{p}");
    assert!(r.stderr.contains("NOT enforced"), "{}", r.stderr);
    let first = p["report"]["bytes"].as_u64().unwrap();
    assert!(first > 3_000_000, "{p}");
    let r = run_clean(&site, &["verify", "--remote", "central", "--read-data"]);
    assert!(r.stdout.contains("INTACT"), "{}", r.stdout);

    // Incremental: a night later only that night's objects are written.
    site.write("plant/OB1.awl", b"NETWORK 1\n A I 0.1\n");
    run_clean(&site, &["collect", "line1"]);
    let r = run_clean(&site, &["--json", "push", "central"]);
    let p = &r.records("push")[0]["report"];
    assert!(p["bytes"].as_u64().unwrap() < first / 100, "{p}");
    assert!(p["present"].as_u64().unwrap() > 0, "{p}");

    // Restore from the bucket, byte for byte.
    let to = site.path("restored");
    run_clean(
        &site,
        &[
            "restore",
            "line1",
            "--remote",
            "central",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(to.join("OB1.awl")).unwrap(),
        b"NETWORK 1\n A I 0.1\n"
    );
    assert_eq!(
        std::fs::read(to.join("hmi.img")).unwrap(),
        noise(3_000_000, 5)
    );

    // A push killed mid-way (80 MB of new images, three packs) and resumed: killed later
    // and later until one finishes, so that some kill lands while it writes.
    for i in 0..20 {
        site.write(&format!("plant/img{i}.bin"), &noise(4_000_000, 100 + 2 * i));
    }
    run_clean(&site, &["collect", "line1"]);
    let mut kills = 0;
    for step in 1..40 {
        let mut child = site.command(&["push", "central"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(150 * step));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        // Killed anywhere, the replica is its previous state plus objects no entry
        // names yet: it verifies.
        run_clean(&site, &["verify", "--remote", "central"]);
    }
    assert!(kills > 0, "no push was killed");
    let r = run_clean(&site, &["--json", "push", "central"]);
    let p = &r.records("push")[0]["report"];
    assert!(
        p["written"].as_u64().unwrap() <= 3,
        "a finished push left nothing: {p}"
    );
    let r = run_clean(&site, &["verify", "--remote", "central", "--read-data"]);
    assert!(r.stdout.contains("INTACT"), "{}", r.stdout);

    // A second site pushes to its own prefix of the same bucket; each verifies alone.
    let b = site_with_remote(&g, "site-b", &g.endpoint, &g.secret);
    b.write("plant/OB1.awl", b"site b\n");
    run_clean(&b, &["collect", "line1"]);
    run_clean(&b, &["push", "central"]);
    run_clean(&b, &["verify", "--remote", "central", "--read-data"]);
    run_clean(&site, &["verify", "--remote", "central", "--read-data"]);
    // The fleet view across the bucket's sites: with only this site's keys, the other
    // site's replica is not trusted; pinned too, both are intact.
    let r = site.run(&["--json", "report", "--remote", "central"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let sites = r.records("fleet-site");
    assert_eq!(sites.len(), 2, "{}", r.stdout);
    assert_eq!(sites[0]["intact"], true);
    assert_eq!(sites[1]["intact"], false);
    let mut cfg = std::fs::read_to_string(site.config()).unwrap();
    cfg.push_str(&format!(
        "\n[[trust]]\nname = \"site-b\"\nrole = \"collector\"\npublic-key = \"{}\"\n",
        b.path("site/keys/collector.key.pub").display()
    ));
    std::fs::write(site.config(), cfg).unwrap();
    let r = run_clean(&site, &["--json", "report", "--remote", "central"]);
    let sites = r.records("fleet-site");
    assert_eq!(sites[1]["prefix"], "site-b");
    assert_eq!(sites[1]["intact"], true, "{}", sites[1]);
    assert_eq!(sites[1]["devices"][0]["device"], "line1");
    assert!(
        sites[1]["devices"][0]["alarms"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Damage in the bucket, done by rclone: each found by verify --remote (exit 1).
    let packs: Vec<PathBuf> = common::files_under(&site.vault().join("packs"));
    let pack = packs[0]
        .strip_prefix(site.vault())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let key = format!("g:plcvault/site-a/{pack}");
    // Overwritten with other bytes of the same size: only --read-data can tell.
    let len = std::fs::metadata(&packs[0]).unwrap().len() as usize;
    let fake = site.path("fake.pack");
    std::fs::write(&fake, noise(len, 7)).unwrap();
    g.rclone(&["copyto", fake.to_str().unwrap(), &key]);
    let r = site.run(&["verify", "--remote", "central", "--read-data"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("[corrupt-pack]"), "{}", r.stdout);
    // An ordinary push takes it for there (same size); `push --check` rewrites it.
    run_clean(&site, &["push", "central", "--check"]);
    run_clean(&site, &["verify", "--remote", "central", "--read-data"]);
    // Deleted.
    g.rclone(&["deletefile", &key]);
    let r = site.run(&["verify", "--remote", "central"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("[missing-pack]"), "{}", r.stdout);
    run_clean(&site, &["push", "central"]);
    // A log entry replaced by another (an overwritten or forked remote log).
    let e2 = site.vault().join("log/00000000000000000002.entry");
    let e1 = site.vault().join("log/00000000000000000001.entry");
    g.rclone(&[
        "copyto",
        e1.to_str().unwrap(),
        "g:plcvault/site-a/log/00000000000000000002.entry",
    ]);
    let r = site.run(&["verify", "--remote", "central"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("[bad-checkpoint]"), "{}", r.stdout);
    // push never replaces a log object its checkpoint covers; the operator puts it back.
    g.rclone(&[
        "copyto",
        e2.to_str().unwrap(),
        "g:plcvault/site-a/log/00000000000000000002.entry",
    ]);
    run_clean(&site, &["verify", "--remote", "central"]);
    // `read-back = "etag"`: a write proven by the store's MD5 of what it received
    // (Garage's ETag is the body's MD5); the replica verifies whole.
    let mut cfg = std::fs::read_to_string(site.config()).unwrap();
    cfg.push_str(&format!(
        "\n[[remote]]\nname = \"etag\"\nurl = \"s3://plcvault/site-a-etag\"\nendpoint = \"{}\"\nregion = \"garage\"\ncredentials = \"keys/s3.toml\"\nread-back = \"etag\"\n",
        g.endpoint
    ));
    std::fs::write(site.config(), cfg).unwrap();
    run_clean(&site, &["push", "etag"]);
    run_clean(&site, &["verify", "--remote", "etag", "--read-data"]);
    // `read-back = "signed"`: a write proven by the store's own check of the SHA-256 each
    // PUT is signed with (x-amz-content-sha256), then a HEAD for the size; the replica
    // verifies whole.
    let mut cfg = std::fs::read_to_string(site.config()).unwrap();
    cfg.push_str(&format!(
        "\n[[remote]]\nname = \"signed\"\nurl = \"s3://plcvault/site-a-signed\"\nendpoint = \"{}\"\nregion = \"garage\"\ncredentials = \"keys/s3.toml\"\nread-back = \"signed\"\n",
        g.endpoint
    ));
    std::fs::write(site.config(), cfg).unwrap();
    run_clean(&site, &["push", "signed"]);
    run_clean(&site, &["verify", "--remote", "signed", "--read-data"]);
    // What that mode rests on, tried with a client nobody here wrote (curl's SigV4): the
    // store refuses a body whose SHA-256 is not the one signed, and keeps nothing.
    let body = site.path("body.bin");
    std::fs::write(&body, b"the bytes sent").unwrap();
    let wrong = "0".repeat(64);
    let o = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--aws-sigv4",
            "aws:amz:garage:s3",
            "--user",
        ])
        .arg(format!("{}:{}", g.key_id, g.secret))
        .args(["-H", &format!("x-amz-content-sha256: {wrong}"), "-T"])
        .arg(&body)
        .arg(format!("{}/plcvault/forged.bin", g.endpoint))
        .output()
        .expect("curl");
    let answer = String::from_utf8_lossy(&o.stdout);
    assert!(
        answer.ends_with("\n400") && answer.contains("InvalidDigest"),
        "{answer}"
    );
    let listed = Command::new("rclone")
        .args(["lsf", "g:plcvault/"])
        .env("RCLONE_CONFIG_G_TYPE", "s3")
        .env("RCLONE_CONFIG_G_PROVIDER", "Other")
        .env("RCLONE_CONFIG_G_ENDPOINT", &g.endpoint)
        .env("RCLONE_CONFIG_G_REGION", "garage")
        .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", &g.key_id)
        .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", &g.secret)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("site-a-signed/"), "{listed}");
    assert!(!listed.contains("forged.bin"), "{listed}");
    // A restore from a damaged replica is refused.
    g.rclone(&["deletefile", &key]);
    let r = site.run(&[
        "restore",
        "line1",
        "--remote",
        "central",
        "--to",
        site.path("r2").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("does not verify"), "{}", r.stderr);
}

#[test]
fn a_store_that_refuses_or_is_down_is_a_clear_error_and_the_vault_is_untouched() {
    let Some(bin) =
        garage_bin("a_store_that_refuses_or_is_down_is_a_clear_error_and_the_vault_is_untouched")
    else {
        return;
    };
    let g = Garage::start(&bin);
    // Wrong credentials.
    let site = site_with_remote(&g, "site-c", &g.endpoint, &"0".repeat(64));
    site.write("plant/OB1.awl", b"x\n");
    run_clean(&site, &["collect", "line1"]);
    let before = log_files(&site);
    let r = site.run(&["push", "central"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("credentials"), "{}", r.stderr);
    assert!(!r.stderr.contains(&g.secret) && !r.stdout.contains(&"0".repeat(64)));
    assert_eq!(log_files(&site), before, "nothing signed");
    // A credentials file others can read is refused before anything is sent.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        site.path("site/keys/s3.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let r = site.run(&["push", "central"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("chmod 600"), "{}", r.stderr);

    // An endpoint nobody listens on.
    let down = format!("http://127.0.0.1:{}", free_port());
    let site = site_with_remote(&g, "site-d", &down, &g.secret);
    site.write("plant/OB1.awl", b"x\n");
    run_clean(&site, &["collect", "line1"]);
    let before = log_files(&site);
    let t0 = Instant::now();
    let r = site.run(&["push", "central"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("cannot write to s3://plcvault/site-d"),
        "{}",
        r.stderr
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
    assert_eq!(log_files(&site), before);
    let r = site.run(&["verify", "--remote", "central"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    run_clean(&site, &["verify"]);
}
