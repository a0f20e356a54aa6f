//! The systemd units the package installs (`src/deb/`): each scored by `systemd-analyze
//! security` as "OK" or better (exposure at most 3.9 of 10), each running plcvault as its
//! own user with the filesystem read-only but for its state.

use std::path::{Path, PathBuf};
use std::process::Command;

fn units() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/deb");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_service_is_hardened_and_scored_ok_by_systemd_analyze() {
    let services = units();
    assert_eq!(services.len(), 3, "{services:?}");
    for u in &services {
        let text = std::fs::read_to_string(u).unwrap();
        for want in [
            "User=plcvault",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/plcvault\n",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=\n",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        ] {
            assert!(text.contains(want), "{}: no {want}", u.display());
        }
        let o = match Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--root=/"])
            .arg(u)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
                    panic!("systemd-analyze is required (PLCVAULT_REQUIRE_PEERS=1): {e}");
                }
                eprintln!("SKIPPED systemd-analyze security: {e}");
                return;
            }
        };
        let out = String::from_utf8_lossy(&o.stdout);
        let line = out
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {out}{}",
                    u.display(),
                    String::from_utf8_lossy(&o.stderr)
                )
            });
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(score < 4.0, "{}: {line}", u.display());
        assert!(line.contains("OK") || line.contains("SAFE"), "{line}");
    }
}

fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{tool} is required (PLCVAULT_REQUIRE_PEERS=1)");
        }
        eprintln!("SKIPPED the package test: no {tool}");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed: {text}");
    text
}

/// The package is built by `src/deb/build.sh` from the test binary, its contents checked,
/// then installed into a scratch root by dpkg itself (its maintainer scripts run with
/// DPKG_ROOT), used there, and purged.
#[test]
fn the_package_installs_the_account_config_key_units_man_pages_and_completions() {
    for tool in [
        "dpkg-deb",
        "dpkg",
        "objdump",
        "readelf",
        "systemd-sysusers",
        "bash",
    ] {
        if !require(tool) {
            return;
        }
    }
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let out = run(Command::new("bash")
        .arg(top.join("src/deb/build.sh"))
        .arg(work.path().join("out"))
        .arg(env!("CARGO_BIN_EXE_plcvault")));
    let deb = PathBuf::from(out.lines().last().unwrap().trim());
    assert!(deb.exists(), "{out}");
    assert!(
        deb.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("plcvault_0."),
        "{deb:?}"
    );

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for want in [
        "Package: plcvault",
        "Depends: libc6 (>= 2.",
        "Section: admin",
        "conffiles",
        "postinst",
    ] {
        assert!(info.contains(want), "no {want} in:\n{info}");
    }
    let list = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let mut man_pages = 0;
    for line in list.lines() {
        // Every file root's, nothing writable by others.
        assert!(line.contains(" root/root "), "{line}");
        let mode = line.split_whitespace().next().unwrap();
        assert_eq!(&mode[8..9], "-", "{line}");
        if line.contains("/usr/share/man/man1/") && line.ends_with(".1.gz") {
            man_pages += 1;
        }
    }
    for want in [
        "./usr/bin/plcvault",
        "./etc/plcvault/plcvault.toml",
        "./usr/lib/sysusers.d/plcvault.conf",
        "./usr/lib/systemd/system/plcvault-daemon.service",
        "./usr/lib/systemd/system/plcvault-collect.service",
        "./usr/lib/systemd/system/plcvault-collect.timer",
        "./usr/lib/systemd/system/plcvault-serve.service",
        "./usr/share/man/man1/plcvault.1.gz",
        "./usr/share/man/man1/plcvault-collect.1.gz",
        "./usr/share/man/man1/plcvault-serve.1.gz",
        "./usr/share/bash-completion/completions/plcvault",
        "./usr/share/zsh/vendor-completions/_plcvault",
        "./usr/share/fish/vendor_completions.d/plcvault.fish",
        "./usr/share/doc/plcvault/copyright",
        "./usr/share/doc/plcvault/changelog.Debian.gz",
    ] {
        assert!(
            list.lines()
                .any(|l| l.ends_with(want) || l.contains(&format!("{want} "))),
            "no {want} in:\n{list}"
        );
    }
    assert!(man_pages >= 20, "{man_pages} man pages:\n{list}");
    // The hidden packaging command has no page of its own.
    assert!(!list.contains("plcvault-dist.1"), "{list}");

    // Installed by dpkg into a scratch root.
    let r = work.path().join("root");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
    }
    std::fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(format!("--root={}", r.display()))
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--force-not-root",
                "--log=/dev/null",
            ])
            .args(args))
    };
    let said = dpkg(&["-i", deb.to_str().unwrap()]);
    assert!(
        said.contains("systemctl enable --now plcvault-collect.timer"),
        "{said}"
    );
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).unwrap();
    let account = passwd
        .lines()
        .find(|l| l.starts_with("plcvault:"))
        .unwrap_or_else(|| panic!("no plcvault account: {passwd}"));
    let fields: Vec<&str> = account.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!((1..1000).contains(&uid), "a system account: {account}");
    assert_eq!(fields[5], "/var/lib/plcvault", "{account}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{account}");
    use std::os::unix::fs::MetadataExt;
    let gid: u32 = fields[3].parse().unwrap();
    let key = r.join("etc/plcvault/keys/collector.key");
    // What the service writes is the account's; the keys folder and the public key are
    // root's (the account reads them, and cannot swap the trusted key); the private key
    // the account's alone.
    for (p, mode, owner, group) in [
        (r.join("var/lib/plcvault"), 0o700, uid, gid),
        (r.join("var/lib/plcvault/vault"), 0o700, uid, gid),
        (r.join("var/lib/plcvault/state"), 0o700, uid, gid),
        (r.join("etc/plcvault/keys"), 0o750, 0, gid),
        (r.join("etc/plcvault/keys/opcua"), 0o700, uid, gid),
        (key.clone(), 0o600, uid, gid),
        (r.join("etc/plcvault/keys/collector.key.pub"), 0o644, 0, 0),
    ] {
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(m.mode() & 0o777, mode, "{}", p.display());
        assert_eq!((m.uid(), m.gid()), (owner, group), "{}", p.display());
    }
    let config = r.join("etc/plcvault/plcvault.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("path = \"/var/lib/plcvault/vault\""),
        "{text}"
    );
    // The installed binary accepts the starter config: its key is the one trusted.
    let o = Command::new(r.join("usr/bin/plcvault"))
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.code().unwrap() <= 1, "{said}");
    assert!(said.contains("no [[device]] is configured"), "{said}");
    assert!(!said.contains("not trusted"), "{said}");
    // The completion loads in bash and completes subcommands.
    let comp = r.join("usr/share/bash-completion/completions/plcvault");
    let listed = run(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && COMP_WORDS=(plcvault col) COMP_CWORD=1 && _plcvault plcvault col plcvault && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        comp.display()
    )));
    assert!(listed.lines().any(|l| l == "collect"), "{listed}");
    // The hidden packaging command is not offered.
    let listed = run(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && COMP_WORDS=(plcvault di) COMP_CWORD=1 && _plcvault plcvault di plcvault && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        comp.display()
    )));
    assert_eq!(listed.trim(), "diff", "{listed}");
    // The man pages are plain ASCII roff (groff warns on anything else).
    for e in std::fs::read_dir(r.join("usr/share/man/man1")).unwrap() {
        let p = e.unwrap().path();
        let text = Command::new("gzip").arg("-dc").arg(&p).output().unwrap();
        assert!(text.status.success(), "{}", p.display());
        assert!(text.stdout.is_ascii(), "{} is not ASCII", p.display());
    }
    // A reinstall (an upgrade) keeps the key; a purge keeps the evidence.
    let before = std::fs::read(&key).unwrap();
    dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key was made again"
    );
    // As `systemctl enable` leaves it: a purge takes the link away with the unit.
    let wants = r.join("etc/systemd/system/timers.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/plcvault-collect.timer",
        wants.join("plcvault-collect.timer"),
    )
    .unwrap();
    let said = dpkg(&["--purge", "plcvault"]);
    assert!(said.contains("were kept"), "{said}");
    assert!(
        std::fs::symlink_metadata(wants.join("plcvault-collect.timer")).is_err(),
        "the enable link dangles"
    );
    assert!(!r.join("usr/bin/plcvault").exists());
    assert!(!config.exists(), "a purge removes the conffile");
    assert!(key.exists() && r.join("var/lib/plcvault/vault").is_dir());
}
