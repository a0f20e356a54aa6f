//! plcvault: signed, verifiable backups of PLC programs, recipes and HMI images, with
//! restore drills. This binary holds the CLI, config, collection orchestration and the
//! embedded demo; storage lives in the `vault` crate and device access in `adapters`.

mod config;
mod ops;
mod output;
mod review;
mod runtime;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::{Out, Outcome};

#[derive(Parser, Debug)]
#[command(
    name = "plcvault",
    version,
    about = "Signed, verifiable backups of PLC programs, recipes and HMI images",
    after_help = "Exit codes: 0 all good; 1 findings (drift, damage, a failed drill); 3 a device could not be collected (unreachable, timed out, not read whole); 2 the command could not run (usage, config, I/O)."
)]
pub struct Cli {
    /// Config file [default: $PLCVAULT_CONFIG, else ./plcvault.toml, else
    /// /etc/plcvault/plcvault.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Write results as JSON Lines ({"type": ..., "data": {...}}) on stdout
    #[arg(long, global = true)]
    json: bool,
    /// More detail on stderr
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// No progress on stderr (warnings and errors still appear)
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum WitnessAction {
    /// Cosign the current checkpoint with this witness's key
    Cosign {
        /// The witness's private key (its public key trusted with role = "witness")
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ProofKind {
    /// That log entry N is in the signed checkpoint's tree
    Inclusion {
        /// The log entry number (from 1)
        entry: u64,
    },
    /// That the tree of the first N entries is a prefix of the signed checkpoint's tree
    Consistency {
        /// The older tree's size (an auditor's remembered checkpoint)
        #[arg(long)]
        from: u64,
    },
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate an Ed25519 key pair: PATH (private, mode 0600) and PATH.pub
    Keygen {
        /// Where to write the private key (mode 0600); the public half goes to PATH.pub
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// A comment stored in the .pub file (who or what the key is for)
        #[arg(long, default_value = "")]
        comment: String,
        /// What the key is for: `collector` (this host signs collections), `approver` (a
        /// person signs baselines and recoveries) or `witness` (another host cosigns the
        /// log's checkpoints); decides the [[trust]] snippet printed
        #[arg(long, default_value = "collector", value_parser = ["collector", "approver", "witness"])]
        role: String,
    },
    /// Set up a new site in DIR: starter config, collector key, vault and state folders
    Init {
        /// The new site's folder (created; must be empty)
        dir: PathBuf,
        /// Also make this approver's key pair (see --approver-key) and trust it
        #[arg(long, value_name = "NAME", requires = "approver_key")]
        approver: Option<String>,
        /// Where to write the approver's private key: outside the site (a token, the
        /// approver's machine); its .pub is copied into the site's keys/
        #[arg(long, value_name = "PATH", requires = "approver")]
        approver_key: Option<PathBuf>,
    },
    /// Check the config
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Collect devices into the vault as signed snapshots
    Collect {
        /// Devices to collect
        devices: Vec<String>,
        /// Collect every device in the config
        #[arg(long, conflicts_with = "devices")]
        all: bool,
    },
    /// Run the config's [[schedule]]s until SIGTERM or SIGINT (writes signed heartbeats)
    Daemon,
    /// Approve, show and list baselines (signed by an approver key)
    Baseline {
        #[command(subcommand)]
        action: BaselineAction,
    },
    /// Compare devices with their approved baselines (or two snapshots of one device)
    Diff {
        /// Devices: names, globs or tag:NAME
        devices: Vec<String>,
        /// Every device in the nightly run
        #[arg(long, conflicts_with = "devices")]
        all: bool,
        /// Collect the device now, read-only, without storing a snapshot
        #[arg(long, conflicts_with = "snapshot")]
        live: bool,
        /// The snapshot to compare (default: the newest)
        #[arg(long)]
        snapshot: Option<String>,
        /// `baseline` or a snapshot id
        #[arg(long, default_value = "baseline")]
        against: String,
        /// Also write a self-contained HTML change-review page
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Restore drill: restore the baseline (or a snapshot) into a scratch folder, read it
    /// back, compare every hash, time it, and sign the result into the log
    Drill {
        /// Devices: names, globs or tag:NAME
        devices: Vec<String>,
        /// Every device in the nightly run
        #[arg(long, conflicts_with = "devices")]
        all: bool,
        /// Drill this snapshot instead of the approved baseline
        #[arg(long)]
        snapshot: Option<String>,
        /// Restore into DIR/DEVICE and keep it (default: a temporary folder, removed)
        #[arg(long, value_name = "DIR", conflicts_with = "target")]
        to: Option<PathBuf>,
        /// Write the snapshot onto this device (must be `writable = true`) and read it back
        #[arg(long, value_name = "DEVICE")]
        target: Option<String>,
    },
    /// Where every device stands: backups, baselines, drift, drills, alarms
    Report {
        /// Also write the auditor's HTML page (IEC 62443-3-3 SR 3.4, 7.3, 7.4; NIS2)
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Also write a Prometheus textfile for node_exporter
        #[arg(long, value_name = "FILE")]
        prometheus: Option<PathBuf>,
        /// Instead: the fleet of sites that push to this [[remote]]'s bucket, each
        /// replica checked in place with the keys this config pins
        #[arg(long, value_name = "NAME", conflicts_with_all = ["html", "prometheus"])]
        remote: Option<String>,
    },
    /// List the snapshots the log records
    Snapshots {
        /// Only this device's (a name, glob or tag:NAME)
        device: Option<String>,
    },
    /// List a snapshot's artifacts (kind, size, SHA-256) without restoring it
    Ls {
        /// The device (its name, or a glob or tag:NAME that selects one)
        device: String,
        /// Snapshot id (prefix) or `latest`
        #[arg(default_value = "latest")]
        snapshot: String,
    },
    /// Write one artifact of a snapshot to standard output, streamed and verified
    Dump {
        /// The device (its name, or a glob or tag:NAME that selects one)
        device: String,
        /// The artifact's name, as `ls` prints it
        path: String,
        /// Snapshot id (prefix) or `latest`
        #[arg(long, default_value = "latest")]
        snapshot: String,
    },
    /// Verify the log, manifests and packs with the pinned public keys
    Verify {
        /// Also read every pack and re-hash every chunk (implies --full)
        #[arg(long)]
        read_data: bool,
        /// Check every entry, manifest and pack again, not only what came after the
        /// checkpoint this host verified last
        #[arg(long)]
        full: bool,
        /// Verify an exported evidence folder instead of the vault
        #[arg(long, value_name = "DIR", conflicts_with = "read_data")]
        evidence: Option<PathBuf>,
        /// With --evidence: the checkpoint of the evidence verified last (its `checkpoint`
        /// file); the log must extend it
        #[arg(long, value_name = "FILE", requires = "evidence")]
        from_checkpoint: Option<PathBuf>,
        /// With --evidence: how many trusted witnesses must have cosigned the checkpoint
        /// the evidence's log extends (entries after it must be younger than 48 h)
        #[arg(long, value_name = "N", requires = "evidence", default_value_t = 0)]
        witnesses: usize,
        /// Verify the replica on a [[remote]] object store in place instead (its signed
        /// checkpoint, entries, packs and manifests; with --read-data every pack hashed)
        #[arg(long, value_name = "NAME", conflicts_with_all = ["evidence", "full"])]
        remote: Option<String>,
    },
    /// Replicate the vault to a [[remote]] S3-compatible bucket (only what is missing,
    /// each object checked before it is written and read back, the signed checkpoint
    /// last), verify the replica in place, and sign a `copy` entry
    Push {
        /// The [[remote]]'s name
        remote: String,
        /// Read every object of the replica again and rewrite what differs
        #[arg(long)]
        check: bool,
    },
    /// Give a vault written before log v2 its Merkle tree and signed checkpoint, from its
    /// entries (no entry changes; the first write does the same)
    Upgrade,
    /// Write or bring up to date a whole replica of the vault on removable media (only
    /// what is missing, each file read back), verify it, and sign a `copy` entry
    Copy {
        /// The replica's folder (created when missing; must be empty or a replica of this
        /// vault)
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// A name for the medium, shown in the report (say "disk B, safe 2")
        #[arg(long, default_value = "")]
        label: String,
        /// Read every file the replica holds again and compare it with the vault's
        #[arg(long)]
        check: bool,
    },
    /// Apply the retention policy ([retention] keep-daily ...): sign into the log which
    /// snapshots are no longer kept. Never forgets the newest (complete) snapshot, the
    /// baseline and the approved ones before it, a recently drilled snapshot, or anything
    /// since the baseline while a device drifts. Deletes nothing: see `prune`
    Forget {
        /// Show what would be kept and forgotten, and why; sign nothing
        #[arg(long)]
        dry_run: bool,
        /// Only these devices (default: every device the vault holds)
        devices: Vec<String>,
    },
    /// Delete packs and manifests no kept snapshot needs and leftovers of failed runs,
    /// repack sparse packs; alone on the vault, crash-safe
    Prune {
        /// Show what would be deleted; delete and sign nothing
        #[arg(long)]
        dry_run: bool,
        /// Unused share of kept packs tolerated before repacking (default [retention]
        /// max-unused, 5%)
        #[arg(long, value_name = "SHARE", value_parser = parse_share_arg)]
        max_unused: Option<f64>,
        /// Leftovers younger than this are kept (default [retention] grace, 1 day)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Print a proof against the vault's signed checkpoint (RFC 9162, hashes in hex), for
    /// an auditor or a tool nobody here wrote to check
    Proof {
        #[command(subcommand)]
        what: ProofKind,
    },
    /// On a witness host: cosign the vault's signed checkpoint after checking it extends
    /// the one this host cosigned before (a fork is refused, exit 1)
    Witness {
        #[command(subcommand)]
        what: WitnessAction,
    },
    /// Accept, signed by an approver, a log state that writers refuse: an older vault copy
    /// put back on purpose, a lost vault replaced by a new one, entries dated by a wrong clock
    Recover {
        /// The approver's private key (its public key must be trusted as approver)
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// Why (recorded in the log)
        #[arg(long)]
        reason: String,
    },
    /// Export evidence for an auditor (log, manifests, drills, report; signed index)
    Evidence {
        #[command(subcommand)]
        action: EvidenceAction,
    },
    /// Restore a snapshot of a device into a folder (--to) or onto a writable device (--target)
    #[command(group(clap::ArgGroup::new("destination").required(true).args(["to", "target"])))]
    Restore {
        /// The device (its name, or a glob or tag:NAME that selects one)
        device: String,
        /// Snapshot id (prefix) or `latest`
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Target folder (created; must be empty unless --force)
        #[arg(long, value_name = "DIR", conflicts_with = "target")]
        to: Option<PathBuf>,
        /// Write the snapshot onto this device (Modbus registers and coils, S7 DB
        /// contents, Logix tag values; must be `writable = true`), then read it back
        #[arg(long, value_name = "DEVICE")]
        target: Option<String>,
        /// Restore into a folder that is not empty, replacing files with the same names
        #[arg(long)]
        force: bool,
        /// Keep setuid, setgid and sticky bits recorded with files (dropped by default)
        #[arg(long)]
        keep_special_bits: bool,
        /// Restore from the replica on this [[remote]] (checked in place first) with --to
        #[arg(long, value_name = "NAME", requires = "to")]
        remote: Option<String>,
    },
    /// OPC UA: plcvault's own client certificate
    Opcua {
        #[command(subcommand)]
        action: OpcuaAction,
    },
    /// Serve simulated PLCs (Modbus TCP, Siemens S7, Logix EtherNet/IP on 127.0.0.1) until SIGTERM or SIGINT
    Sim {
        /// How many Modbus PLCs
        #[arg(long, default_value_t = 1)]
        plcs: usize,
        /// How many simulated S7 CPUs (S7comm on ISO-on-TCP)
        #[arg(long, default_value_t = 0)]
        s7: usize,
        /// Logic blocks (OB, FB, FC) per S7 CPU, generated
        #[arg(long, default_value_t = 30)]
        blocks: usize,
        /// Let the S7 CPUs accept write var into their DBs (spares for drills)
        #[arg(long)]
        s7_writable: bool,
        /// How many simulated Logix controllers (EtherNet/IP, CIP)
        #[arg(long, default_value_t = 0)]
        enip: usize,
        /// Tags per Logix controller besides the generated recipe, motors and program
        #[arg(long, default_value_t = 100)]
        enip_tags: usize,
        /// Let the Logix controllers accept Write Tag (spares for drills)
        #[arg(long)]
        enip_writable: bool,
        /// Holding (and other) registers per PLC, generated
        #[arg(long, default_value_t = 1000)]
        registers: usize,
        /// Serve this register map instead (lines `TABLE START VALUE...`)
        #[arg(long, value_name = "FILE")]
        map: Option<PathBuf>,
        /// Write a config snippet with one [[device]] per PLC to FILE
        #[arg(long, value_name = "FILE")]
        write_config: Option<PathBuf>,
        /// The rate cap written into the snippet
        #[arg(long, default_value_t = 20.0)]
        max_requests_per_second: f64,
        /// How long each PLC takes to answer (a real controller answers within its scan cycle)
        #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
        response_delay: std::time::Duration,
    },
    /// Run the embedded demo plant: collect, verify, detect a change, restore
    Demo {
        /// Keep the demo plant and vault in DIR instead of a temporary folder
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Then leave the demo's dashboard running (on 127.0.0.1:8420, or --listen)
        #[arg(long)]
        serve: bool,
        /// Where the demo's dashboard listens (with --serve)
        #[arg(long, value_name = "ADDR:PORT", requires = "serve")]
        listen: Option<std::net::SocketAddr>,
    },
    /// The read-only web dashboard over the vault (127.0.0.1:8420 unless [serve] listen
    /// says otherwise; another address needs TLS and a login: tokens or client-ca)
    Serve {
        #[command(subcommand)]
        action: Option<ServeAction>,
        /// Listen here instead of [serve] listen
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Write what the Debian package installs beside the binary into DIR: man pages, shell
    /// completions and the starter config (used by src/deb/build.sh)
    #[command(hide = true)]
    Dist {
        /// Where to write (created)
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ServeAction {
    /// Make a bearer token: prints it once and the SHA-256 line for [serve] tokens
    Token,
}

#[derive(Subcommand, Debug)]
enum OpcuaAction {
    /// Make plcvault's client certificate and key (key mode 0600) if missing, and print the
    /// certificate's path and SHA-256 for the server's administrator to trust
    Cert {
        /// The PKI folder (an opcua device's `pki-dir`); default keys/opcua beside the config
        #[arg(long, value_name = "DIR")]
        pki_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum BaselineAction {
    /// Approve the snapshot you reviewed (--snapshot ID or latest, or --live) as the device's baseline
    Approve {
        /// The device (its name, or a glob or tag:NAME that selects one)
        device: String,
        /// The snapshot you reviewed: its id (prefix), or `latest` for the newest
        #[arg(long, conflicts_with = "live")]
        snapshot: Option<String>,
        /// Collect the device now, show the comparison, and approve that new snapshot
        #[arg(long)]
        live: bool,
        /// With --live: approve without asking (for scripts)
        #[arg(long, requires = "live")]
        yes: bool,
        /// The digest the review printed (16 hex digits are enough): refuse to sign when
        /// what would be signed differs from what was reviewed
        #[arg(long, value_name = "DIGEST")]
        review: Option<String>,
        /// The approver's private key (its public key must be trusted as approver)
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
        /// Change ticket
        #[arg(long)]
        ticket: String,
        /// Why (recorded in the approval)
        #[arg(long, default_value = "")]
        reason: String,
        /// Approve an incomplete or suspect snapshot (recorded in the approval)
        #[arg(long)]
        accept_suspect: bool,
    },
    /// Show the device's current baseline
    Show {
        /// The device (its name, or a glob or tag:NAME that selects one)
        device: String,
    },
    /// List every approval of the device
    History {
        /// The device (its name, or a glob or tag:NAME that selects one)
        device: String,
    },
}

#[derive(Subcommand, Debug)]
enum EvidenceAction {
    /// Write the evidence folder
    Export {
        /// The period: entries (with their proofs and manifests) from this date on; without
        /// it, the whole log
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// The checkpoint of the last audit (the `checkpoint` file of the evidence the
        /// auditor verified last): the export proves the log extends it
        #[arg(long, value_name = "FILE")]
        from_checkpoint: Option<PathBuf>,
        /// The evidence folder to write (created; must be empty)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Validate the config and the keys it names
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match run(&cli, &out) {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(e) => {
            let text = format!("{e:#}");
            // Each level of the error says what went wrong, and maybe the fix: the causes
            // join the message, the fixes come after it (an OS error never trails a fix).
            let mut what: Vec<String> = Vec::new();
            let mut fix: Vec<String> = Vec::new();
            for level in e.chain() {
                let level = level.to_string();
                let (w, f): (Vec<&str>, Vec<&str>) =
                    level.lines().partition(|l| !l.starts_with("fix:"));
                let w = w.join("\n       ");
                match what.last_mut() {
                    Some(last) if !w.is_empty() && !last.contains(&w) => {
                        last.push_str(": ");
                        last.push_str(&w);
                    }
                    None if !w.is_empty() => what.push(w),
                    _ => {}
                }
                fix.extend(f.into_iter().map(str::to_string));
            }
            output::to_stderr(&format!(
                "error: {}\n",
                output::printable(&what.join("\n       "))
            ));
            for f in fix {
                output::to_stderr(&format!("{f}\n"));
            }
            if out.json {
                out.record(
                    "error",
                    &serde_json::json!({ "message": text }),
                    String::new,
                );
            }
            ExitCode::from(Outcome::Failed as u8)
        }
    }
}

fn run(cli: &Cli, out: &Out) -> anyhow::Result<Outcome> {
    let load = || config::Config::load(&config::locate(cli.config.as_deref()));
    match &cli.command {
        Command::Keygen {
            out: path,
            comment,
            role,
        } => {
            let config = config::locate(cli.config.as_deref());
            let site = config
                .exists()
                .then(|| config.parent().map(Path::to_path_buf))
                .flatten();
            ops::commands::keygen(path, comment, role, site.as_deref(), out)
        }
        Command::Init {
            dir,
            approver,
            approver_key,
        } => ops::commands::init(dir, approver.as_deref().zip(approver_key.as_deref()), out),
        Command::Config {
            action: ConfigAction::Check,
        } => ops::commands::config_check(&load()?, out),
        Command::Collect { devices, all } => {
            let cfg = load()?;
            let selected = cfg.select(devices, *all)?;
            Ok(ops::collect::run(&cfg, &selected, out)?.0)
        }
        Command::Daemon => ops::schedule::daemon(load()?, out),
        Command::Report {
            remote: Some(name), ..
        } => ops::remote::fleet(&load()?, name, out),
        Command::Report {
            html, prometheus, ..
        } => {
            let cfg = load().inspect_err(|_| {
                if let Some(p) = prometheus {
                    review::report::write_failed_metrics(p, out);
                }
            })?;
            review::report::run(&cfg, html.as_deref(), prometheus.as_deref(), out)
        }
        Command::Drill {
            devices,
            all,
            snapshot,
            to,
            target,
        } => {
            let cfg = load()?;
            let selected = cfg.select(devices, *all)?;
            let onto = match target {
                Some(t) => Some(cfg.one(t)?),
                None => None,
            };
            ops::drill::run(
                &cfg,
                &selected,
                snapshot.as_deref(),
                to.as_deref(),
                onto,
                out,
            )
        }
        Command::Opcua {
            action: OpcuaAction::Cert { pki_dir },
        } => {
            let pki = match pki_dir {
                Some(p) => p.clone(),
                None => config::locate(cli.config.as_deref())
                    .parent()
                    .map(|d| d.join("keys/opcua"))
                    .unwrap_or_else(|| PathBuf::from("keys/opcua")),
            };
            let c = adapters::opcua::ensure_certificate(&pki).map_err(|e| {
                anyhow::anyhow!("{e}\nfix: check that the folder can be written, or give --pki-dir")
            })?;
            let until = humantime::format_rfc3339_seconds(c.not_after).to_string();
            out.record(
                "opcua-cert",
                &serde_json::json!({"certificate": c.path, "sha256": c.sha256, "not_after": until}),
                || {
                    format!(
                        "plcvault's OPC UA client certificate: {}\nSHA-256 {}\nvalid until {until}\ntrust it on the server (its PKI's trusted folder) if the server checks client certificates",
                        c.path.display(),
                        c.sha256
                    )
                },
            );
            if let Some(w) = c.expiry_warning(std::time::SystemTime::now()) {
                out.warn(w);
            }
            Ok(Outcome::Clean)
        }
        Command::Baseline { action } => match action {
            BaselineAction::Approve {
                device,
                snapshot,
                live,
                yes,
                review: reviewed,
                key,
                ticket,
                reason,
                accept_suspect,
            } => {
                let cfg = load()?;
                if *yes && !*live {
                    anyhow::bail!(
                        "--yes answers the question --live asks\nfix: leave out --yes, or use --live"
                    );
                }
                let mut collected = None;
                if *live {
                    // What can refuse the approval is checked before anything is collected.
                    review::baseline::check_approver(&cfg, device, key, ticket, !*yes)?;
                    collected = Some(ops::collect::for_approval(&cfg, device, out)?);
                }
                review::baseline::approve(
                    &cfg,
                    &review::baseline::ApproveOptions {
                        device,
                        snapshot: collected.as_deref().or(snapshot.as_deref()),
                        key,
                        ticket,
                        reason,
                        accept_suspect: *accept_suspect,
                        confirm: *live && !*yes,
                        review: reviewed.as_deref(),
                        live: *live,
                    },
                    out,
                )
            }
            BaselineAction::Show { device } => review::baseline::show(&load()?, device, false, out),
            BaselineAction::History { device } => {
                review::baseline::show(&load()?, device, true, out)
            }
        },
        Command::Diff {
            devices,
            all,
            live,
            snapshot,
            against,
            html,
        } => {
            let cfg = load()?;
            let selected = cfg.select(devices, *all)?;
            // A live read is an operation on the device; the review only compares.
            let targets = selected
                .into_iter()
                .map(|dev| (dev, live.then(|| ops::device::collect_live(dev))))
                .collect();
            review::baseline::diff(
                &cfg,
                targets,
                snapshot.as_deref(),
                against,
                html.as_deref(),
                out,
            )
        }
        Command::Snapshots { device } => {
            let cfg = load()?;
            // A glob or tag lists the snapshots of every device it selects.
            let names: Option<Vec<String>> = match device {
                Some(d) if d.starts_with("tag:") || d.contains(['*', '?', '[']) => Some(
                    cfg.select(std::slice::from_ref(d), false)?
                        .iter()
                        .map(|c| c.name.clone())
                        .collect(),
                ),
                Some(d) => Some(vec![d.clone()]),
                None => None,
            };
            ops::commands::snapshots(&cfg, names.as_deref(), out)
        }
        Command::Verify {
            evidence: Some(dir),
            from_checkpoint,
            witnesses,
            ..
        } => review::evidence::verify(&load()?, dir, (from_checkpoint.as_deref(), *witnesses), out),
        Command::Verify {
            remote: Some(name),
            read_data,
            ..
        } => ops::remote::verify(&load()?, name, *read_data, out),
        Command::Verify {
            read_data, full, ..
        } => ops::commands::verify(&load()?, *read_data, *full, out),
        Command::Push { remote, check } => ops::remote::push(&load()?, remote, *check, out),
        Command::Upgrade => ops::commands::upgrade(&load()?, out),
        Command::Copy { to, label, check } => ops::commands::copy(&load()?, to, label, *check, out),
        Command::Forget { dry_run, devices } => {
            let cfg = load()?;
            // Drift as the report sees it: a drifting device keeps everything since its
            // baseline; one whose comparison cannot run counts as drifting.
            let report = review::report::build(&cfg, std::time::SystemTime::now())?;
            let drift = report
                .devices
                .iter()
                .map(|d| (d.device.clone(), d.drift))
                .collect();
            let devices: Option<Vec<String>> = if devices.is_empty() {
                None
            } else {
                Some(
                    devices
                        .iter()
                        .map(|d| cfg.stored_device(d))
                        .collect::<anyhow::Result<_>>()?,
                )
            };
            ops::retain::forget(&cfg, devices.as_deref(), *dry_run, &drift, out)
        }
        Command::Prune {
            dry_run,
            max_unused,
            grace,
        } => ops::retain::prune(&load()?, *dry_run, *max_unused, *grace, out),
        Command::Witness {
            what: WitnessAction::Cosign { key },
        } => ops::commands::witness_cosign(&load()?, key, out),
        Command::Proof { what } => {
            let cfg = load()?;
            let (entry, from) = match what {
                ProofKind::Inclusion { entry } => (Some(*entry), None),
                ProofKind::Consistency { from } => (None, Some(*from)),
            };
            ops::commands::proof(&cfg, entry, from, out)
        }
        Command::Recover { key, reason } => ops::recover::run(&load()?, key, reason, out),
        Command::Evidence {
            action:
                EvidenceAction::Export {
                    since,
                    from_checkpoint,
                    out: dir,
                },
        } => review::evidence::export(
            &load()?,
            since.as_deref(),
            from_checkpoint.as_deref(),
            dir,
            out,
        ),
        Command::Restore {
            device,
            snapshot,
            to,
            target,
            force,
            keep_special_bits,
            remote,
        } => {
            let cfg = load()?;
            let device = &cfg.stored_device(device)?;
            match (to, target) {
                (Some(to), _) if remote.is_some() => ops::remote::restore(
                    &cfg,
                    remote.as_deref().expect("matched"),
                    device,
                    snapshot,
                    to,
                    *force,
                    out,
                ),
                (Some(to), _) => ops::commands::restore(
                    &cfg,
                    device,
                    snapshot,
                    to,
                    (*force, *keep_special_bits),
                    out,
                ),
                (None, Some(t)) => ops::commands::restore_onto(&cfg, device, snapshot, t, out),
                (None, None) => unreachable!("clap requires --to or --target"),
            }
        }
        Command::Demo {
            keep, serve: false, ..
        } => ops::demo::run(keep.as_deref(), out),
        Command::Demo {
            keep,
            serve: true,
            listen,
        } => {
            // The demo's site is kept (a temporary folder removed when serve stops).
            let tmp = match keep {
                Some(_) => None,
                None => Some(tempfile::tempdir()?),
            };
            let dir = keep
                .clone()
                .or_else(|| tmp.as_ref().map(|t| t.path().to_owned()))
                .expect("one of them");
            let done = ops::demo::run(Some(&dir), out)?;
            let dir = std::fs::canonicalize(&dir)?;
            let cfg = config::Config::load(&dir.join("site/plcvault.toml"))?;
            serve::run(cfg, *listen, out)?;
            Ok(done)
        }
        Command::Serve {
            action: Some(ServeAction::Token),
            ..
        } => serve::new_token(out),
        Command::Serve {
            action: None,
            listen,
        } => serve::run(load()?, *listen, out),
        Command::Dist { dir } => {
            use clap::CommandFactory;
            for path in ops::dist::write(Cli::command(), dir)? {
                out.info(format!("wrote {}", path.display()));
            }
            Ok(Outcome::Clean)
        }
        Command::Ls { device, snapshot } => {
            let cfg = load()?;
            ops::browse::ls(&cfg, &cfg.stored_device(device)?, snapshot, out)
        }
        Command::Dump {
            device,
            path,
            snapshot,
        } => {
            if out.json {
                anyhow::bail!(
                    "dump writes the artifact's bytes to standard output, not JSON\nfix: leave out --json"
                );
            }
            let cfg = load()?;
            ops::browse::dump(&cfg, &cfg.stored_device(device)?, path, snapshot, out)
        }
        Command::Sim {
            plcs,
            s7,
            blocks,
            s7_writable,
            enip,
            enip_tags,
            enip_writable,
            registers,
            map,
            write_config,
            max_requests_per_second,
            response_delay,
        } => ops::sim::run(
            &ops::sim::SimOptions {
                plcs: *plcs,
                s7: *s7,
                blocks: *blocks,
                s7_writable: *s7_writable,
                enip: *enip,
                enip_tags: *enip_tags,
                enip_writable: *enip_writable,
                registers: *registers,
                map: map.as_deref(),
                write_config: write_config.as_deref(),
                max_requests_per_second: *max_requests_per_second,
                response_delay: *response_delay,
            },
            out,
        ),
    }
}

fn parse_share_arg(s: &str) -> Result<f64, String> {
    config::parse_share(s)
}
