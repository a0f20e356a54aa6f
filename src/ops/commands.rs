//! The smaller commands: keygen, init, config check, snapshots, verify and restore.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use vault::{Index, RestoreOptions, SecretKey, Vault, VerifyOptions};

use crate::config::Config;
use crate::output::{Out, Outcome, human_bytes};

/// `keygen`: a key pair, and the `[[trust]]` lines to paste. `site` is the folder of the
/// config in use, if there is one: the public key's path is written relative to it.
pub fn keygen(
    path: &Path,
    comment: &str,
    role: &str,
    site: Option<&Path>,
    out: &Out,
) -> Result<Outcome> {
    let key = SecretKey::generate()?;
    let pub_path = key.write_pair(path, comment)?;
    #[derive(Serialize)]
    struct Keygen<'a> {
        private: &'a Path,
        public: &'a Path,
        public_key: String,
    }
    out.record(
        "keygen",
        &Keygen {
            private: path,
            public: &pub_path,
            public_key: key.public().to_hex(),
        },
        || {
            let advice = match role {
                "approver" => "Keep the private key with its owner (a laptop or a token), never on the collector host;\ncopy only the .pub file to the site, next to its plcvault.toml, and paste this into that config\n(public-key is resolved against the config's folder):",
                "witness" => "Keep the private key on the witness host (a central server, the auditor's machine), never on the collector host;\nrun `plcvault witness cosign --key` there on a copy of the vault, and paste this into the config of the site and of every verifier\n(public-key is resolved against the config's folder):",
                _ => "This host signs what it collects with it ([vault] key in the config).\nPaste this into the config of this site and of every verifier\n(public-key is resolved against the config's folder):",
            };
            format!(
                "wrote private key {} (mode 0600)\n\
                 wrote public key  {}  fingerprint {}\n{advice}\n\n\
                 [[trust]]\nname = \"{}\"\nrole = \"{role}\"\npublic-key = \"{}\"",
                path.display(),
                pub_path.display(),
                key.public().fingerprint(),
                path.file_stem().and_then(|s| s.to_str()).unwrap_or(role),
                trust_path(&pub_path, site, role != "collector")
            )
        },
    );
    Ok(Outcome::Clean)
}

/// How a `[[trust]]` entry names a public key: relative to the site's folder when it lies
/// inside it; an approver's (copied next to the config) by its file name; else absolute.
fn trust_path(pub_path: &Path, site: Option<&Path>, approver: bool) -> String {
    let abs = std::fs::canonicalize(pub_path).unwrap_or_else(|_| pub_path.to_owned());
    if let Some(site) = site.and_then(|s| std::fs::canonicalize(s).ok())
        && let Ok(rel) = abs.strip_prefix(&site)
    {
        return rel.display().to_string();
    }
    if approver && let Some(name) = abs.file_name() {
        return name.to_string_lossy().into_owned();
    }
    abs.display().to_string()
}

/// `init DIR [--approver NAME --approver-key PATH]`: a new site; with an approver, also
/// their key pair at PATH (meant to be outside DIR: a token, the approver's machine), its
/// public half copied into the site and trusted as approver.
pub fn init(dir: &Path, approver: Option<(&str, &Path)>, out: &Out) -> Result<Outcome> {
    let cfg_path = dir.join("plcvault.toml");
    if cfg_path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a site's config\nfix: choose an empty folder",
            cfg_path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some((name, path)) = approver {
        if !vault::log::is_device_name(name) {
            bail!(
                "`{name}` is not a name for a key (letters, digits, - _ .)\nfix: pass --approver alice"
            );
        }
        // Where the path really leads: its nearest existing folder with links resolved,
        // then the rest (a key folder may not exist yet), so that neither `..` nor a link
        // into the site hides it.
        let real = |p: &Path| -> PathBuf {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
            let mut base = abs.as_path();
            let mut rest = Vec::new();
            loop {
                if let Ok(c) = std::fs::canonicalize(base) {
                    let mut out = c;
                    for part in rest.iter().rev() {
                        match part {
                            std::path::Component::ParentDir => {
                                out.pop();
                            }
                            std::path::Component::CurDir => {}
                            other => out.push(other),
                        }
                    }
                    return out;
                }
                match (base.parent(), base.components().next_back()) {
                    (Some(parent), Some(last)) => {
                        rest.push(last);
                        base = parent;
                    }
                    _ => return abs.clone(),
                }
            }
        };
        if real(path).starts_with(real(dir)) {
            bail!(
                "the approver's key would be written inside the site ({}); an approver key on the collector host lets the host approve its own collections\nfix: give --approver-key a path outside the site (a token, or the approver's own machine)",
                path.display()
            );
        }
    }
    // Everything that would be refused is refused before anything is written, so that a
    // failed init leaves nothing behind to trip the next one.
    let collector_key = dir.join("keys/collector.key");
    let mut taken: Vec<PathBuf> = vec![collector_key.clone(), dir.join("keys/collector.key.pub")];
    if let Some((_, path)) = approver {
        taken.push(path.to_owned());
        taken.push(PathBuf::from(format!("{}.pub", path.display())));
    }
    if let Some(t) = taken.iter().find(|p| p.exists()) {
        bail!(
            "{} already exists; refusing to overwrite a key\nfix: remove it if an earlier init left it, or choose another {}",
            t.display(),
            if t.starts_with(dir) {
                "folder"
            } else {
                "--approver-key"
            }
        );
    }
    let key = SecretKey::generate()?;
    key.write_pair(&collector_key, "collector")?;
    let mut approver_trust = String::new();
    if let Some((name, path)) = approver {
        let pub_path = SecretKey::generate()?.write_pair(path, name)?;
        let site_pub = dir.join(format!("keys/{name}.key.pub"));
        std::fs::copy(&pub_path, &site_pub)
            .with_context(|| format!("cannot copy {} into the site", pub_path.display()))?;
        approver_trust = format!(
            "\n[[trust]]\nname = \"{name}\"\nrole = \"approver\"\npublic-key = \"keys/{name}.key.pub\"\n"
        );
        out.info(format!(
            "wrote the approver key of `{name}`: {} (private, mode 0600: take it away from this host) and {}",
            path.display(),
            site_pub.display()
        ));
    }
    Vault::open_or_create(&dir.join("vault"))?;
    std::fs::create_dir_all(dir.join("state"))?;
    let text = site_config(
        "# plcvault site config, written by `plcvault init`.",
        "vault",
        "state",
    );
    let text = match text.split_once("\n# Each approver's public key") {
        Some((head, tail)) if !approver_trust.is_empty() => {
            format!("{head}{approver_trust}\n# Each approver's public key{tail}")
        }
        _ => text.clone(),
    };
    std::fs::write(&cfg_path, text)?;
    out.record(
        "init",
        &serde_json::json!({ "config": cfg_path, "public_key": key.public().to_hex() }),
        || {
            format!(
                "created {}\n  config  {}\n  key     {} (public key fingerprint {})\n  vault   {}\n\
                 next: add a [[device]] to the config, then run `plcvault --config {} collect --all`",
                dir.display(),
                cfg_path.display(),
                dir.join("keys/collector.key").display(),
                key.public().fingerprint(),
                dir.join("vault").display(),
                cfg_path.display()
            )
        },
    );
    Ok(Outcome::Clean)
}

/// A site's starter config: `init`'s (paths in the site's folder) and the Debian package's
/// `/etc/plcvault/plcvault.toml` (the vault and state under /var/lib/plcvault).
pub fn site_config(first_line: &str, vault: &str, state: &str) -> String {
    format!(
        r#"{first_line} Every key with its default is in
# config.example.toml; this file is complete without it. Relative paths start here.
[site]
name = "my plant"              # what review pages and the report call the plant

[vault]
path = "{vault}"
key = "keys/collector.key"     # this host's signing key (never an approver's)
state = "{state}"                # what this host remembers of the log: never inside the vault's folder
                               # or on the media the vault is carried or copied on (mount those at `path`)
stale-after = "26h"            # verify reports a log older than this as stale

[[trust]]
name = "collector"
role = "collector"
public-key = "keys/collector.key.pub"

# Each approver's public key: `plcvault keygen --role approver --out alice.key` on the
# approver's machine prints these lines; copy only the .pub file here.
# [[trust]]
# name = "alice"
# role = "approver"
# public-key = "alice.key.pub"

# One [[device]] per PLC, HMI, export folder or workstation. Every device takes name,
# adapter, tags (free labels) and nightly (false for a spare: out of --all, schedules
# and alarms).
#
# [[device]]                   # an engineering workstation's export folder
# name = "line1-exports"
# adapter = "files"
# path = "/srv/eng/line1"
# exclude = ["**/*.tmp"]
#
# [[device]]                   # a PLC's registers over Modbus TCP (read-only functions)
# name = "line1-plc"
# adapter = "modbus"
# address = "10.1.1.10:502"
# [[device.range]]
# table = "holding"            # holding | input | coils | discrete
# start = 0
# count = 100
# kind = "recipe"
#
# [[device]]                   # an HMI panel over FTP, FTPS or SFTP
# name = "line1-panel"
# adapter = "ftp"
# protocol = "sftp"
# address = "10.1.1.20"
# host-key-fingerprint = ""    # "" refuses the server once and prints its key to pin
# user = "backup"
# key-file = "keys/panel_ed25519"
#
# [[device]]                   # a Siemens S7-300/400 CPU (S7-1200/1500: slot 1, PUT/GET allowed)
# name = "line1-cpu"
# adapter = "s7"
# address = "10.1.1.30"
# rack = 0
# slot = 2
# [[device.db]]                # a DB read as data (blocks are uploaded anyway)
# number = 10
# size = 200
# kind = "recipe"

# Run by `plcvault daemon` (or use cron; see the README):
# [[schedule]]
# name = "nightly"
# cron = "0 2 * * *"
# action = "collect"           # collect | drill
"#
    )
}

pub fn config_check(cfg: &Config, out: &Out) -> Result<Outcome> {
    let mut warnings = Vec::new();
    if let Some(k) = &cfg.vault.key {
        match SecretKey::load(k) {
            Ok(key) if cfg.trust.lookup(&key.public()).is_none() => warnings.push(format!(
                "signing key {} is not trusted by any [[trust]] entry; its log entries would fail verification",
                k.display()
            )),
            Ok(_) => {}
            Err(e) => return Err(cfg.key_error(k, e)),
        }
    }
    if cfg.devices.is_empty() {
        warnings.push("no [[device]] is configured".into());
    }
    let mut problems = Vec::new();
    for d in &cfg.devices {
        for w in d.adapter.collector.preflight() {
            warnings.push(format!("device `{}`: {w}", d.name));
        }
        for p in d.adapter.collector.problems() {
            problems.push(format!("device `{}`: {p}", d.name));
        }
    }
    if !problems.is_empty() {
        for w in &warnings {
            out.warn(w);
        }
        bail!("{}: {}", cfg.file.display(), problems.join("\n"));
    }
    out.record(
        "config",
        &serde_json::json!({
            "file": cfg.file,
            "vault": cfg.vault.path,
            "devices": cfg.devices.iter().map(|d| &d.name).collect::<Vec<_>>(),
            "trusted_keys": cfg.trust.keys.iter().map(|k| serde_json::json!({"name": k.name, "role": k.role, "key": k.key})).collect::<Vec<_>>(),
            "warnings": warnings,
        }),
        || {
            let mut s = format!(
                "{}: ok — vault {}, {} device(s), {} trusted key(s)",
                cfg.file.display(),
                cfg.vault.path.display(),
                cfg.devices.len(),
                cfg.trust.keys.len()
            );
            for w in &warnings {
                s.push_str(&format!("\nwarning: {w}"));
            }
            s
        },
    );
    Ok(Outcome::Clean)
}

/// Warns when the log does not extend the head this host remembers: "latest" may not be.
pub(crate) fn warn_if_doubtful(cfg: &Config, vault: &Vault, out: &Out) {
    if let Some(d) = cfg.head_doubt(vault) {
        out.warn(format!(
            "{d}; newer snapshots may be missing — run `plcvault verify`"
        ));
    }
}

pub fn snapshots(cfg: &Config, devices: Option<&[String]>, out: &Out) -> Result<Outcome> {
    let vault = cfg.vault_for_reading()?;
    warn_if_doubtful(cfg, &vault, out);
    let history = cfg.history(&vault)?;
    if !history.findings.is_empty() {
        out.warn(format!(
            "the log has {} integrity finding(s); untrusted entries are not listed — run `plcvault verify`",
            history.findings.len()
        ));
    }
    let list: Vec<_> = match devices {
        Some(names) => {
            let mut l: Vec<_> = names.iter().flat_map(|d| history.snapshots_of(d)).collect();
            l.sort_by_key(|s| s.seq);
            l.dedup_by_key(|s| s.seq);
            l
        }
        None => history.snapshots(),
    };
    if !list.is_empty() {
        out.say(format!(
            "{:<12}  {:<24}  {:<20}  {:>9}  {:>10}  {:>5}  complete",
            "snapshot", "time", "device", "artifacts", "size", "entry"
        ));
    }
    for s in &list {
        out.record("snapshot", s, || {
            format!(
                "{:<12}  {:<24}  {:<20}  {:>9}  {:>10}  {:>5}  {}",
                s.id,
                s.time,
                s.device,
                s.artifacts,
                human_bytes(s.bytes),
                s.seq,
                if s.complete { "yes" } else { "NO" }
            )
        });
    }
    if list.is_empty() {
        // A name that is neither in the config nor in the log is a typo, not a device
        // without backups.
        if let Some(names) = devices
            && !names.is_empty()
            && names
                .iter()
                .all(|n| !cfg.devices.iter().any(|d| &d.name == n))
        {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            return Err(cfg.unknown_device(&names));
        }
        out.say("no snapshots yet");
    }
    Ok(Outcome::Clean)
}

/// Prints an inclusion proof of log entry `entry`, or a consistency proof from the tree
/// of `from` entries, against the vault's signed checkpoint (record `proof`).
///
/// Fails when the checkpoint is not trusted or does not cover what was asked.
pub fn proof(cfg: &Config, entry: Option<u64>, from: Option<u64>, out: &Out) -> Result<Outcome> {
    let vault = cfg.vault_for_reading()?;
    let keys: Vec<vault::PublicKey> = cfg.trust.keys.iter().map(|k| k.key).collect();
    let p = match (entry, from) {
        (Some(e), _) => vault::tiles::prove_inclusion(vault.root(), vault.id(), &keys, e),
        (None, Some(f)) => vault::tiles::prove_consistency(vault.root(), vault.id(), &keys, f),
        (None, None) => unreachable!("clap asks for one"),
    }
    .map_err(|why| anyhow::anyhow!("{why}\nfix: run `plcvault verify` and read its findings"))?;
    out.record("proof", &p, || {
        let what = match (p.entry, p.from) {
            (Some(e), _) => format!("entry {e} (leaf {}) is in", p.leaf.map(|l| l.to_hex()).unwrap_or_default()),
            (None, Some(f)) => format!(
                "the tree of {f} entries (root {}) is a prefix of",
                p.old_root.map(|r| r.to_hex()).unwrap_or_default()
            ),
            _ => String::new(),
        };
        let mut t = format!(
            "{what} the signed checkpoint of {} entries (root {}); proof, {} hashes from the leaf up:",
            p.size,
            p.root.to_hex(),
            p.proof.len()
        );
        for h in &p.proof {
            t.push_str(&format!("\n  {}", h.to_hex()));
        }
        t
    });
    Ok(Outcome::Clean)
}

/// `upgrade`: gives a vault written before log v2 its Merkle tree (tiles and a checkpoint
/// signed with this host's key) from its entries, and shows that no entry changed: every
/// entry file's SHA-256 before and after. Idempotent: a vault that has the tree is
/// brought up to date.
///
/// Fails when the vault cannot be written, the key cannot be loaded, or the log was cut
/// below its checkpoint (verify reports it).
pub fn upgrade(cfg: &Config, out: &Out) -> Result<Outcome> {
    let key = cfg.signing_key()?;
    let vault = vault::guard::open_for_append(&cfg.vault.path, &cfg.vault.state)?;
    vault::guard::check(&vault)?;
    let (seqs, _) = vault::log::list(vault.root())?;
    let newest = seqs.last().copied().unwrap_or(0);
    let hashes = |seqs: &[u64]| -> Result<Vec<vault::Hash>> {
        seqs.iter()
            .map(|&s| Ok(vault::Hash::of(&vault::log::read(vault.root(), s)?.0)))
            .collect()
    };
    let before = hashes(&seqs)?;
    let had = vault::tiles::read_checkpoint(vault.root())?.is_some();
    vault::tiles::sync(vault.root(), vault.id(), &key, newest).map_err(|why| {
        anyhow::anyhow!("{why}\nfix: run `plcvault verify` and read its findings")
    })?;
    let after = hashes(&seqs)?;
    if before != after {
        anyhow::bail!(
            "log entries changed while the tree was built: another writer rewrote them; run `plcvault verify`"
        );
    }
    let keys: Vec<vault::PublicKey> = cfg.trust.keys.iter().map(|k| k.key).collect();
    let (c, _) = vault::tiles::trusted_checkpoint(vault.root(), vault.id(), &keys)
        .map_err(|why| anyhow::anyhow!("{why}"))?;
    out.record(
        "upgrade",
        &serde_json::json!({"entries": seqs.len(), "size": c.size, "root": c.root, "had_tree": had, "entries_unchanged": true}),
        || {
            format!(
                "{} the log's Merkle tree: {} entries, root {}; every entry's SHA-256 is the same before and after (full groups of 256 now in bundles)",
                if had { "brought up to date" } else { "built" },
                c.size,
                c.root.to_hex()
            )
        },
    );
    Ok(Outcome::Clean)
}

/// A witness's cosignature of the vault's current checkpoint with `key` (a `witness`
/// key), after checking that it extends the one this host cosigned before (remembered in
/// the state folder as `<vault id>.witnessed`). A checkpoint that cannot be true together
/// with that one is a critical finding (exit 1) and is not cosigned.
///
/// Fails when the key cannot be read or is not trusted as witness, or the checkpoint is
/// not trusted.
pub fn witness_cosign(cfg: &Config, key: &std::path::Path, out: &Out) -> Result<Outcome> {
    let vault = cfg.vault_for_reading()?;
    let secret = vault::SecretKey::load(key)
        .with_context(|| format!("cannot read the witness key {}", key.display()))?;
    let public = secret.public();
    if !cfg
        .trust
        .keys
        .iter()
        .any(|k| k.key == public && k.role == vault::Role::Witness)
    {
        anyhow::bail!(
            "{} is not trusted as a witness key by this config\nfix: add its public key as a [[trust]] entry with role = \"witness\"",
            key.display()
        );
    }
    let writers: Vec<vault::PublicKey> = cfg
        .trust
        .keys
        .iter()
        .filter(|k| k.role != vault::Role::Witness)
        .map(|k| k.key)
        .collect();
    let memory = cfg.vault.state.join(format!("{}.witnessed", vault.id()));
    let seen = match std::fs::read_to_string(&memory) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", memory.display())),
    };
    match vault::tiles::cosign(vault.root(), vault.id(), &writers, &secret, seen.as_deref()) {
        Ok((c, note)) => {
            std::fs::create_dir_all(&cfg.vault.state)?;
            vault::atomic::write_replace(&cfg.vault.state, &memory, note.as_bytes()).with_context(
                || {
                    format!(
                        "cannot remember the cosigned checkpoint in {}",
                        memory.display()
                    )
                },
            )?;
            out.record(
                "cosigned",
                &serde_json::json!({"size": c.size, "root": c.root, "witness": vault::tiles::key_name(vault.id(), &public)}),
                || format!("cosigned the checkpoint of {} entries (root {}) as witness {}", c.size, c.root.to_hex(), vault::tiles::key_name(vault.id(), &public)),
            );
            Ok(Outcome::Clean)
        }
        Err(vault::tiles::CosignError::Fork(why)) => {
            out.record(
                "finding",
                &serde_json::json!({"kind": "fork", "severity": "critical", "message": why}),
                || format!("CRITICAL fork: {why}\nnot cosigned; keep this witness's state ({}) as evidence", memory.display()),
            );
            Ok(Outcome::Findings)
        }
        Err(vault::tiles::CosignError::Untrusted(why))
        | Err(vault::tiles::CosignError::Io(why)) => Err(anyhow::anyhow!(
            "{why}\nfix: run `plcvault verify` on the vault and read its findings"
        )),
    }
}

pub fn verify(cfg: &Config, read_data: bool, full: bool, out: &Out) -> Result<Outcome> {
    let vault = cfg.vault_for_reading()?;
    let t0 = Instant::now();
    out.info(format!(
        "verifying {}{}",
        vault.root().display(),
        if read_data {
            " (reading all data)"
        } else if full {
            " (every entry)"
        } else {
            ""
        }
    ));
    let report = vault::verify(
        &vault,
        &cfg.trust,
        &VerifyOptions {
            read_data,
            full,
            stale_after: cfg.vault.stale_after,
            state_dir: Some(cfg.vault.state.clone()),
            threads: cfg.threads,
            witnesses: cfg.vault.witnesses,
            witness_grace: cfg.vault.witness_grace,
            ..Default::default()
        },
    )?;
    for f in &report.findings {
        out.record("finding", f, || format!("FINDING {f}"));
    }
    for n in &report.notes {
        out.record("note", &serde_json::json!({ "message": n }), || {
            format!("note: {n}")
        });
    }
    let duration_ms = t0.elapsed().as_millis() as u64;
    out.record(
        "verify",
        &serde_json::json!({
            "clean": report.is_clean(),
            "findings": report.findings.len(),
            "entries": report.entries,
            "snapshots": report.snapshots,
            "packs": report.packs,
            "chunks_checked": report.chunks_checked,
            "bytes_checked": report.bytes_checked,
            "head_seq": report.head_seq,
            "head_hash": report.head_hash,
            "read_data": read_data,
            "duration_ms": duration_ms,
        }),
        || {
            format!(
                "{}: {} log entries, {} snapshots, {} packs{}; {}",
                if report.is_clean() {
                    "INTACT"
                } else {
                    "DAMAGED"
                },
                report.entries,
                report.snapshots,
                report.packs,
                if read_data {
                    format!(
                        ", {} chunks ({}) re-hashed",
                        report.chunks_checked,
                        human_bytes(report.bytes_checked)
                    )
                } else {
                    String::new()
                },
                if report.is_clean() && read_data {
                    "every signature, hash and chain link checks out, and every byte was re-read"
                        .to_string()
                } else if report.is_clean() {
                    "every signature, hash and chain link checks out; pack contents were not \
                     re-read (run `verify --read-data` for that)"
                        .to_string()
                } else {
                    format!("{} finding(s)", report.findings.len())
                }
            )
        },
    );
    Ok(if report.is_clean() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

pub fn restore(
    cfg: &Config,
    device: &str,
    snapshot: &str,
    to: &Path,
    (force, keep_special_bits): (bool, bool),
    out: &Out,
) -> Result<Outcome> {
    let (vault, snap, manifest, index) = crate::ops::browse::open(cfg, device, snapshot, out)?;
    // Said only when it will start: a folder that is not empty is refused below.
    if force || !std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
        out.info(format!(
            "restoring snapshot {} of `{device}` ({} artifacts, {}) into {}",
            snap.id,
            manifest.artifacts.len(),
            human_bytes(manifest.total_size()),
            to.display()
        ));
    }
    let t0 = Instant::now();
    let report = vault::restore(
        &vault,
        &index,
        &manifest,
        to,
        &RestoreOptions {
            force,
            threads: cfg.threads,
            keep_special_bits,
        },
    )?;
    let secs = t0.elapsed().as_secs_f64();
    for f in &report.failed {
        out.record("restore-failure", f, || {
            format!("FAILED  {}: {}", f.name, f.error.replace('\n', " "))
        });
    }
    out.record(
        "restore",
        &serde_json::json!({
            "device": device, "snapshot": snap.id, "target": to,
            "artifacts": report.artifacts, "bytes": report.bytes,
            "failed": report.failed.len(), "duration_ms": (secs * 1000.0) as u64,
        }),
        || {
            restore_summary(
                &report,
                manifest.artifacts.len(),
                &snap.id,
                &format!("in {secs:.2} s"),
            )
        },
    );
    Ok(restore_outcome(&report))
}

/// The line a restore ends with: how much of the snapshot was restored, `whence` (how
/// long it took, or where from), and whether everything matched its SHA-256.
pub fn restore_summary(
    report: &vault::RestoreReport,
    artifacts: usize,
    snapshot: &str,
    whence: &str,
) -> String {
    format!(
        "{} {} of {artifacts} artifacts ({}) of snapshot {snapshot} {whence}; {}",
        if report.failed.is_empty() {
            "restored"
        } else {
            "PARTLY restored"
        },
        report.artifacts,
        human_bytes(report.bytes),
        if report.failed.is_empty() {
            "every chunk and file matched its SHA-256".to_string()
        } else {
            format!(
                "{} failed (see above) and were not written; the rest matched their SHA-256",
                report.failed.len()
            )
        }
    )
}

/// Exit 1 when an artifact failed to restore.
pub fn restore_outcome(report: &vault::RestoreReport) -> Outcome {
    if report.failed.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    }
}

/// `restore DEVICE --target DEVICE2`: writes the snapshot onto a writable device and
/// reads it back.
pub fn restore_onto(
    cfg: &Config,
    device: &str,
    snapshot: &str,
    target: &str,
    out: &Out,
) -> Result<Outcome> {
    let target = cfg.one(target)?;
    let vault = cfg.vault_for_reading()?;
    warn_if_doubtful(cfg, &vault, out);
    let history = cfg.history(&vault)?;
    let snap = cfg.find_snapshot(&history, device, Some(snapshot))?;
    let manifest = vault::manifest::load(vault.root(), &snap.manifest)?;
    crate::ops::drill::check_target(&manifest, target, false)?;
    let (index, _) = Index::load_reading(&vault, &history);
    let read = |a: &vault::ArtifactEntry| -> Result<Vec<u8>> {
        Ok(vault::read_artifact(&vault, &index, a, 64 * 1024 * 1024)?)
    };
    out.info(format!(
        "writing snapshot {} of `{device}` onto `{}`",
        snap.id, target.name
    ));
    let r = crate::ops::drill::restore_to_device(&manifest, &read, target)?;
    for f in &r.failures {
        out.record("restore-failure", f, || {
            format!("FAILED  {}: {}", f.artifact, f.error)
        });
    }
    out.record("restore", &r, || {
        format!(
            "{} snapshot {} onto `{}`: {} value(s) written in {} request(s) ({:.2} s), read back in {:.2} s{}",
            if r.failures.is_empty() { "restored" } else { "PARTLY restored" },
            snap.id,
            r.target,
            r.written,
            r.requests,
            r.write_ms as f64 / 1000.0,
            r.verify_ms as f64 / 1000.0,
            if r.compared_only.is_empty() {
                String::new()
            } else {
                format!("; compared, not written (read-only): {}", r.compared_only.join(", "))
            }
        )
    });
    Ok(if r.failures.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `copy --to DIR [--label TEXT] [--check]`: a replica of the vault as of its signed
/// checkpoint, verified where it was written with the pinned keys, then a signed `copy`
/// entry in the vault's log naming the medium, the entries it holds and its size.
///
/// Fails when the vault does not verify, DIR is inside the vault (or the vault inside
/// it), holds something else, or cannot be written, or the replica does not verify.
pub fn copy(cfg: &Config, to: &Path, label: &str, check: bool, out: &Out) -> Result<Outcome> {
    let key = cfg.signing_key()?;
    // Held shared: a prune waits for the copy, and the copy for a prune.
    let vault = cfg.vault_for_reading()?.hold(vault::Hold::Shared)?;
    vault::guard::check(&vault.clone().remembering(&cfg.vault.state))
        .context("refusing to copy")?;
    if label.chars().any(char::is_control) || label.len() > 200 {
        bail!(
            "the label has control characters or more than 200 bytes\nfix: give a short one-line label"
        );
    }
    // Where DIR is (or would be), links resolved, before anything is made.
    let resolved = {
        let mut existing = std::path::absolute(to)?;
        let mut rest = Vec::new();
        while !existing.exists() {
            match (
                existing.file_name().map(|n| n.to_owned()),
                existing.parent(),
            ) {
                (Some(n), Some(p)) => {
                    rest.push(n);
                    existing = p.to_path_buf();
                }
                _ => break,
            }
        }
        let mut p = std::fs::canonicalize(&existing)?;
        p.extend(rest.iter().rev());
        p
    };
    let (a, b) = (std::fs::canonicalize(vault.root())?, resolved);
    if a.starts_with(&b) || b.starts_with(&a) {
        bail!(
            "{} and the vault {} are inside one another\nfix: copy to another disk",
            to.display(),
            vault.root().display()
        );
    }
    std::fs::create_dir_all(to).with_context(|| {
        format!(
            "cannot create {}\nfix: mount the medium, or give a folder that can be made",
            to.display()
        )
    })?;
    // Incremental: every file copied is checked against its name or the tree anyway.
    cfg.require_intact(&vault, false, ("copy", "a copy must be of an intact vault"))?;
    let history = cfg.history(&vault)?;
    let target = vault::storage::LocalDir::new(to);
    let r = vault::replica::copy(&vault, &cfg.trust, &history, &target, check)?;
    // The replica verified as another machine would: every entry, manifest and pack it
    // holds, against the pinned keys.
    let replica = vault::Vault::open(to)?;
    let v = vault::verify(
        &replica,
        &cfg.trust,
        &vault::VerifyOptions {
            update_state: false,
            threads: cfg.threads,
            stale_after: None,
            ..Default::default()
        },
    )?;
    if !v.is_clean() {
        bail!(
            "the replica on {} does not verify: {} problem(s), first: {}\nfix: run `plcvault copy --check --to {}`; nothing was signed",
            to.display(),
            v.findings.len(),
            v.findings[0],
            to.display()
        );
    }
    let event = vault::log::Event::Copy {
        disk: r.disk.clone(),
        label: label.to_string(),
        target: to.display().to_string(),
        size: r.size,
        head: r.head,
        root: r.root,
        written: r.written,
        bytes: r.bytes,
        total_bytes: r.total_bytes,
    };
    let entry = vault::guard::append(&vault.remembering(&cfg.vault.state), &key, &event)?;
    out.record(
        "copy",
        &serde_json::json!({"report": r, "label": label, "entry": entry.file_seq, "verified": true}),
        || {
            format!(
                "{} replica on {} (disk {}{}): entries 1 to {} (head {}), {} files written ({} bytes), {} already there; {} bytes in all; verified with the pinned keys; signed as log entry {}",
                if r.new_replica { "wrote a new" } else { "brought up to date the" },
                to.display(),
                &r.disk[..12],
                if label.is_empty() { String::new() } else { format!(", {label}") },
                r.size,
                &r.head.to_hex()[..12],
                r.written,
                r.bytes,
                r.present,
                r.total_bytes,
                entry.file_seq
            )
        },
    );
    Ok(Outcome::Clean)
}
