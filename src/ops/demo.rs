//! The embedded demo plant: `plcvault demo`.
//!
//! Builds a small plant in a temporary folder (PLC program exports, recipes, a config
//! file and a 64 MiB HMI image) and starts two simulated PLCs (Modbus TCP on
//! 127.0.0.1:0), then runs the real commands on it: collect, verify, a recipe file, a logic
//! file and a recipe register changed behind the tool's back, collect again, and a restore
//! of the first snapshot proved byte-identical against hashes taken at generation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
use adapters::s7::proto::BlockType;
use adapters::s7::sim::{S7Sim, S7SimConfig};

use crate::config::Config;
use crate::output::{Out, Outcome, human_bytes};

const IMAGE_SIZE: usize = 64 * 1024 * 1024;

/// Deterministic bytes for the HMI image: runs of structured data (compressible, like
/// fonts and screens) between runs of noise (like compressed bitmaps).
fn hmi_image(seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(IMAGE_SIZE);
    let mut x = seed | 1;
    let mut block = 0u64;
    while out.len() < IMAGE_SIZE {
        block += 1;
        if block.is_multiple_of(2) {
            for i in 0..65536u64 {
                out.push(((i * 31 + block) % 251) as u8 & 0x7f);
            }
        } else {
            for _ in 0..8192 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    out.truncate(IMAGE_SIZE);
    out
}

fn plc_program(name: &str, networks: usize) -> String {
    // An FB's source says FUNCTION_BLOCK, an OB's ORGANIZATION_BLOCK.
    let kw = if name.starts_with("FB") {
        "FUNCTION_BLOCK"
    } else {
        "ORGANIZATION_BLOCK"
    };
    let mut s =
        format!("// {name} — exported from the engineering workstation\n{kw} {name}\nBEGIN\n");
    for n in 1..=networks {
        s.push_str(&format!(
            "NETWORK {n} // conveyor section {n}\n      A     I {}.{}\n      AN    I {}.{}\n      =     Q {}.{}\n",
            n / 8,
            n % 8,
            (n + 3) / 8,
            (n + 3) % 8,
            n / 8,
            n % 8
        ));
    }
    s.push_str(&format!("END_{kw}\n"));
    s
}

/// The palletiser's ladder routine as Studio 5000 exports it (L5X, one routine).
fn palletiser_l5x() -> String {
    let rungs = [
        ("Start the palletiser", "XIC(Start)XIO(Stop)OTL(Run);"),
        ("", "XIC(Stop)OTU(Run);"),
        (
            "Safety: the light curtain stops the robot",
            "XIC(Run)XIC(LightCurtain_OK)OTE(Robot_Enable);",
        ),
        ("", "XIC(Robot_Enable)TON(T_Cycle,?,?);"),
        ("", "XIC(T_Cycle.DN)CTU(C_Layers,?,?);"),
    ];
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<RSLogix5000Content SchemaRevision=\"1.0\" SoftwareRevision=\"33.01\" TargetName=\"Palletiser\" TargetType=\"Routine\" TargetSubType=\"RLL\" ContainsContext=\"true\" Owner=\"Line 1\" ExportDate=\"Mon Nov 30 10:00:00 2026\" ExportOptions=\"References DecoratedData Context\">\n<Controller Use=\"Context\" Name=\"PLC3\">\n<Programs Use=\"Context\">\n<Program Use=\"Context\" Name=\"MainProgram\">\n<Routines Use=\"Context\">\n<Routine Use=\"Target\" Name=\"Palletiser\" Type=\"RLL\">\n<RLLContent>\n",
    );
    for (i, (comment, text)) in rungs.iter().enumerate() {
        s.push_str(&format!(
            "<Rung Number=\"{i}\" Type=\"N\">\n<Comment>\n<![CDATA[{comment}]]>\n</Comment>\n<Text>\n<![CDATA[{text}]]>\n</Text>\n</Rung>\n"
        ));
    }
    s.push_str("</RLLContent>\n</Routine>\n</Routines>\n</Program>\n</Programs>\n</Controller>\n</RSLogix5000Content>\n");
    s
}

/// The doser's function block as TwinCAT 3 saves it (`.TcPOU`): declaration,
/// implementation, a method, and the editor's `LineIds`.
fn doser_tcpou() -> String {
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>
<TcPlcObject Version=\"1.1.0.1\" ProductVersion=\"3.1.4024.12\">
  <POU Name=\"FB_Doser\" Id=\"{6f3c2a10-4b1e-4c8a-9d2f-0a1b2c3d4e5f}\" SpecialFunc=\"None\">
    <Declaration><![CDATA[FUNCTION_BLOCK FB_Doser
VAR_INPUT
    bStart : BOOL;
    rSetpoint : REAL; // ml per bottle
END_VAR
VAR_OUTPUT
    bValveOpen : BOOL;
END_VAR
VAR
    rDosed : REAL;
END_VAR]]></Declaration>
    <Implementation>
      <ST><![CDATA[IF bStart AND rDosed < rSetpoint THEN
    bValveOpen := Limit();
ELSE
    bValveOpen := FALSE;
END_IF]]></ST>
    </Implementation>
    <Method Name=\"Limit\" Id=\"{6f3c2a10-4b1e-4c8a-9d2f-0a1b2c3d4e60}\">
      <Declaration><![CDATA[METHOD Limit : BOOL]]></Declaration>
      <Implementation>
        <ST><![CDATA[// never more than the bottle holds
Limit := rSetpoint <= 1000.0;]]></ST>
      </Implementation>
    </Method>
    <LineIds Name=\"FB_Doser\">
      <LineId Id=\"3\" Count=\"4\" />
    </LineIds>
    <LineIds Name=\"FB_Doser.Limit\">
      <LineId Id=\"2\" Count=\"1\" />
    </LineIds>
  </POU>
</TcPlcObject>
"
    .to_string()
}

fn recipe(product: &str, fill_ml: u32, temp_c: u32) -> String {
    format!(
        "parameter;value;unit\nproduct;{product};\nfill_volume;{fill_ml};ml\ncap_torque;{};Ncm\nsterilise_temp;{temp_c};degC\nline_speed;{};bottles/min\n",
        120 + fill_ml / 10,
        240 + fill_ml / 5
    )
}

/// Writes the plant; returns the SHA-256 of every file, taken independently of the vault.
fn build_plant(root: &Path) -> Result<BTreeMap<String, [u8; 32]>> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("PLC1/OB1.awl".into(), plc_program("OB1", 40).into_bytes()),
        ("PLC1/FB10_Conveyor.scl".into(), plc_program("FB10", 120).into_bytes()),
        ("PLC2/OB1.awl".into(), plc_program("OB1", 25).into_bytes()),
        ("PLC3/Palletiser.L5X".into(), palletiser_l5x().into_bytes()),
        ("PLC4/FB_Doser.TcPOU".into(), doser_tcpou().into_bytes()),
        ("recipes/Still_Water_500ml.csv".into(), recipe("Still Water", 500, 82).into_bytes()),
        ("recipes/Orange_Juice_1l.csv".into(), recipe("Orange Juice", 1000, 88).into_bytes()),
        ("config/network.xml".into(), b"<network><plc name=\"PLC1\" ip=\"10.1.1.10\"/><plc name=\"PLC2\" ip=\"10.1.1.11\"/></network>\n".to_vec()),
        ("hmi/Panel_Line1.img".into(), hmi_image(62443)),
    ];
    files.push((
        "hmi/Panel_Line1.img.tmp".into(),
        b"editor scratch file, excluded".to_vec(),
    ));
    let mut hashes = BTreeMap::new();
    for (name, data) in files {
        let path = root.join(&name);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, &data).with_context(|| format!("cannot write {}", path.display()))?;
        if !name.ends_with(".tmp") {
            hashes.insert(name, Sha256::digest(&data).into());
        }
    }
    Ok(hashes)
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// The simulated PLCs of the demo line: name, what it runs, seed, holding registers.
const PLCS: [(&str, &str, u64, usize); 2] = [
    (
        "filler-plc",
        "filler: recipes in holding registers 0-99",
        11,
        100,
    ),
    (
        "capper-plc",
        "capper: torque set-points in holding registers 0-199",
        12,
        200,
    ),
];

/// The filler's recipe: register 3 holds the sterilisation temperature in degC.
const STERILISE_REGISTER: u16 = 3;

fn plc_config(name: &str, addr: std::net::SocketAddr, registers: usize) -> String {
    format!(
        r#"
[[device]]
name = "{name}"
adapter = "modbus"
address = "{addr}"
unit = 1
identify = true
timeout = "1s"
retries = 2
max-requests-per-second = 50

[[device.range]]
table = "holding"
start = 0
count = {registers}
kind = "recipe"
label = "recipes"

[[device.range]]
table = "coils"
start = 0
count = 32
kind = "config"
label = "interlocks enabled"

[[device.range]]
table = "input"
start = 0
count = 16
kind = "values"
label = "live measurements"
"#
    )
}

fn changed_of(reports: &[crate::ops::collect::DeviceReport], device: &str) -> Vec<String> {
    reports
        .iter()
        .find(|r| r.device == device)
        .and_then(|r| r.changes.as_ref())
        .map(|c| c.changed.clone())
        .unwrap_or_default()
}

/// The demo's folder: `keep` (new or empty, made absolute), else a temporary one removed
/// when the guard drops.
///
/// Fails when `keep` is not empty or cannot be created.
fn demo_dir(keep: Option<&Path>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    match keep {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                bail!(
                    "{} is not empty\nfix: give --keep a new or empty folder",
                    d.display()
                );
            }
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            // Absolute, since the demo's config and simulators refer to it from elsewhere.
            let abs = std::fs::canonicalize(d)
                .with_context(|| format!("cannot resolve {}", d.display()))?;
            Ok((None, abs))
        }
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("plcvault-demo-")
                .tempdir()?;
            let path = tmp.path().to_owned();
            Ok((Some(tmp), path))
        }
    }
}

/// The simulated line: the production PLCs, the labeller's S7 CPU, the spare CPU, and
/// their `[[device]]` tables.
struct Line {
    plcs: Vec<SimPlc>,
    labeller: S7Sim,
    _spare: SimPlc,
    config: String,
}

/// The labeller's S7 CPU: the function block whose logic is changed behind the tool's back.
const LABELLER_FB: u16 = 2;

/// Starts the two production PLCs and the writable spare on 127.0.0.1.
///
/// Fails when a simulator cannot listen.
fn start_line(runtime: &tokio::runtime::Runtime, out: &Out) -> Result<Line> {
    let mut plcs = Vec::new();
    let mut plc_cfg = String::new();
    for (name, what, seed, registers) in PLCS {
        let mut map = SimMap::generated(registers.max(32), seed);
        if name == "filler-plc" {
            map.holding[STERILISE_REGISTER as usize] = 88;
        }
        let mut sim_cfg = SimConfig::new(map);
        sim_cfg.identity = Some(vec![
            (0, "ACME Automation".into()),
            (1, format!("{}-CPU", name.to_uppercase())),
            (2, "V4.2.1".into()),
            (4, what.into()),
        ]);
        let plc = runtime.block_on(SimPlc::start("127.0.0.1:0", sim_cfg))?;
        out.say(format!(
            "     {name:<12} {:<22} {what}",
            plc.addr().to_string()
        ));
        plc_cfg.push_str(&plc_config(name, plc.addr(), registers));
        plcs.push(plc);
    }
    // The labeller: a Siemens S7-300 with generated program blocks, read over S7comm.
    let mut s7 = S7SimConfig::generated(24, 7);
    s7.station = "LINE1-LABELLER".into();
    let labeller = runtime.block_on(S7Sim::start("127.0.0.1:0", s7))?;
    out.say(format!(
        "     {:<12} {:<22} labeller: Siemens S7-300 CPU, program blocks read over S7comm",
        "labeller-cpu",
        labeller.addr().to_string()
    ));
    plc_cfg.push_str(&format!(
        "\n[[device]]\nname = \"labeller-cpu\"\nadapter = \"s7\"\naddress = \"{}\"\nrack = 0\nslot = 2\ntimeout = \"1s\"\nmax-requests-per-second = 200\n\n[[device.db]]\nnumber = 10\nsize = 200\nkind = \"recipe\"\n",
        labeller.addr()
    ));
    // A spare filler CPU on the test bench: the only device plcvault may write to.
    let mut spare_map = SimMap::generated(100, 99);
    spare_map.input = SimMap::generated(100, PLCS[0].2).input;
    let spare = runtime.block_on(SimPlc::start("127.0.0.1:0", SimConfig::new(spare_map)))?;
    out.say(format!(
        "     {:<12} {:<22} spare filler CPU on the test bench (writable, for restore drills)",
        "spare-filler",
        spare.addr().to_string()
    ));
    plc_cfg.push_str(&plc_config("spare-filler", spare.addr(), 100).replacen(
        "identify = true",
        "identify = true\nwritable = true",
        1,
    ));
    Ok(Line {
        plcs,
        labeller,
        _spare: spare,
        config: plc_cfg,
    })
}

/// Writes the site: keys for the collector and for Alice, and the config trusting both.
/// Returns the config's path.
///
/// Fails when a file cannot be written.
fn write_site(site: &Path, plant: &Path, plc_cfg: &str) -> Result<PathBuf> {
    let key = vault::SecretKey::generate()?;
    key.write_pair(&site.join("keys/collector.key"), "demo collector")?;
    vault::SecretKey::generate()?
        .write_pair(&site.join("keys/alice.key"), "Alice, process engineer")?;
    let cfg_path = site.join("plcvault.toml");
    std::fs::write(
        &cfg_path,
        format!(
            r#"[vault]
path = "vault"
key = "keys/collector.key"
state = "state"

[[trust]]
name = "collector"
role = "collector"
public-key = "keys/collector.key.pub"

[[trust]]
name = "alice"
role = "approver"
public-key = "keys/alice.key.pub"

[[device]]
name = "line1"
adapter = "files"
path = "{}"
exclude = ["**/*.tmp"]
{plc_cfg}"#,
            plant.display()
        ),
    )?;
    Ok(cfg_path)
}

pub fn run(keep: Option<&Path>, out: &Out) -> Result<Outcome> {
    let t0 = Instant::now();
    let (_tmp, dir) = demo_dir(keep)?;
    let runtime = crate::runtime::get()?;
    let plant = dir.join("plant/line1");
    let site = dir.join("site");
    out.say(format!(
        "plcvault demo — a bottling line with two Modbus PLCs, a Siemens S7 CPU and one HMI panel, built in {}\n",
        dir.display()
    ));

    out.say("1. The engineering workstation's export folder (what a technician saves after each change):");
    let originals = build_plant(&plant)?;
    for name in originals.keys() {
        let size = std::fs::metadata(plant.join(name))?.len();
        out.say(format!("     {name:<32} {:>10}", human_bytes(size)));
    }
    out.say(
        "   and the line's controllers, simulated here: two Modbus TCP PLCs and a Siemens S7 CPU:",
    );
    let line = start_line(runtime, out)?;

    out.say(
        "\n2. A site is set up: a signing key for this collector host, one for Alice, the process",
    );
    out.say("   engineer who approves changes, a vault, and a config that trusts only their public halves.");
    let cfg_path = write_site(&site, &plant, &line.config)?;
    let alice = site.join("keys/alice.key");
    let cfg = Config::load(&cfg_path)?;
    // The production devices; the spare is a restore target, not collected.
    let devices: Vec<&crate::config::DeviceConfig> =
        cfg.devices.iter().filter(|d| !d.writable()).collect();
    let collect = |out: &Out| crate::ops::collect::run_on(runtime.handle(), &cfg, &devices, out);

    out.say(
        "\n3. Nightly collection: every file is hashed (SHA-256), cut into chunks, compressed and",
    );
    out.say(
        "   stored once; the PLCs are read with read-only Modbus functions, at most 50 requests",
    );
    out.say("   a second each; every snapshot is signed and chained into the vault's log.");
    let (o1, first) = collect(out)?;
    if o1 != Outcome::Clean {
        bail!("the first collection did not complete cleanly");
    }
    let first_id = |device: &str| -> Result<String> {
        first
            .iter()
            .find(|r| r.device == device)
            .and_then(|r| r.snapshot.clone())
            .with_context(|| format!("the first collection stored nothing for {device}"))
    };

    out.say(
        "\n4. Audit: verify every signature, every chain link and re-read every byte of the vault.",
    );
    let v = crate::ops::commands::verify(&cfg, true, true, out)?;
    if v != Outcome::Clean {
        bail!("verification of a fresh vault found damage");
    }

    out.say(
        "\n5. Commissioning: Alice reviews the collection and approves it as the baseline of every",
    );
    out.say("   device with her own key, under change ticket CHG-1001. Approvals are signed log entries.");
    approve_all(&cfg, &devices, &alice, out)?;

    out.say(
        "\n6. Behind the tool's back, someone lowers the sterilisation temperature of a recipe",
    );
    out.say(
        "   file (88 -> 72 degC), edits the conveyor logic, bypasses the light curtain in the\n   palletiser's ladder (a rung of its L5X export), raises the doser's limit in a\n   TwinCAT method, and writes 72 into the filler PLC's",
    );
    out.say(format!(
        "   recipe register {STERILISE_REGISTER} with a laptop, and downloads a changed FB{LABELLER_FB} into the"
    ));
    out.say("   labeller's S7 CPU — nobody files a change request.");
    tamper(&plant, &line.plcs[0], &line.labeller)?;

    out.say(
        "\n7. The next nightly collection compares every device with its approved baseline and",
    );
    out.say(
        "   reports each unauthorised change with its class (the 64 MiB image is re-hashed too,",
    );
    out.say("   but none of it is stored again). An alerting system sees exit code 1:");
    let (drift, second) = collect(out)?;
    if drift != Outcome::Findings {
        bail!(
            "the demo expected the nightly run to report drift (exit 1), it ended with {drift:?}"
        );
    }
    let (got_files, got_filler) = expect_drift(&second)?;
    review_page(&cfg, &devices, keep, &dir, out)?;

    let identical = prove_restore(
        &cfg,
        &dir,
        &originals,
        &first_id("line1")?,
        &first_id("filler-plc")?,
        out,
    )?;

    out.say(
        "\n9. Recovery drills, as auditors ask for them: the exports' baseline is restored into a",
    );
    out.say(
        "   scratch folder and every file's hash proved; the filler's approved baseline is written",
    );
    out.say(
        "   onto the spare CPU with Modbus functions 15/16 and read back register by register.",
    );
    out.say("   Each result is a signed log entry.");
    drills(&cfg, &devices, out)?;

    out.say(
        "\n10. An offline copy, as IEC 62443 SR 7.3 asks: the whole vault written to removable media",
    );
    out.say(
        "    (here a folder standing in for a USB disk), each file read back, verified with the",
    );
    out.say("    public keys alone, and recorded as a signed `copy` entry:");
    crate::ops::commands::copy(&cfg, &dir.join("usb-disk"), "demo disk A", false, out)?;

    out.say("\n11. Where the plant stands (what `plcvault report` prints; --html writes the auditor's page):");
    crate::review::report::run(&cfg, None, None, out)?;

    let total = t0.elapsed().as_secs_f64();
    drop(line);
    out.say(format!(
        "\nDemo finished in {total:.1} s. {}",
        match keep {
            Some(_) => format!(
                "Everything is kept in {}; try: plcvault --config {} snapshots (the simulated PLCs have stopped)",
                dir.display(),
                cfg_path.display()
            ),
            None => "The temporary folder has been removed (use --keep DIR to keep it).".into(),
        }
    ));
    out.record(
        "demo",
        &serde_json::json!({
            "ok": true,
            "seconds": total,
            "changed": {"line1": got_files, "filler-plc": got_filler},
            "restored_identical": identical,
        }),
        String::new,
    );
    Ok(Outcome::Clean)
}

/// Checks that the second collection reported exactly the changes made behind the tool's
/// back; returns the changed artifacts of the exports and of the filler.
///
/// Fails when the collection reported other changes.
fn expect_drift(
    second: &[crate::ops::collect::DeviceReport],
) -> Result<(Vec<String>, Vec<String>)> {
    let expected_files = vec![
        "PLC1/FB10_Conveyor.scl".to_string(),
        "PLC3/Palletiser.L5X".to_string(),
        "PLC4/FB_Doser.TcPOU".to_string(),
        "recipes/Orange_Juice_1l.csv".to_string(),
    ];
    let got_files = changed_of(second, "line1");
    let got_filler = changed_of(second, "filler-plc");
    let got_capper = changed_of(second, "capper-plc");
    let got_labeller = changed_of(second, "labeller-cpu");
    let fb = format!("blocks/FB{LABELLER_FB}.mc7");
    if got_files != expected_files
        || got_filler != ["holding/0-99.csv"]
        || !got_capper.is_empty()
        || got_labeller != ["blocks.csv".to_string(), fb.clone()]
    {
        bail!(
            "the demo expected changes in {expected_files:?}, filler-plc holding/0-99.csv and labeller-cpu blocks.csv and {fb}, the collection reported {got_files:?}, {got_filler:?}, {got_capper:?}, {got_labeller:?}"
        );
    }
    Ok((got_files, got_filler))
}

/// Compares every device with its baseline, checks each finding's class, and writes the
/// change-review page (beside a kept demo, else in the temporary folder of the system).
///
/// Fails when a finding is not the one expected or the page cannot be written.
fn review_page(
    cfg: &Config,
    devices: &[&crate::config::DeviceConfig],
    keep: Option<&Path>,
    dir: &Path,
    out: &Out,
) -> Result<()> {
    // The change-review page for the paperwork, outside the temporary folder.
    let html = match keep {
        Some(_) => dir.join("change-review.html"),
        None => {
            std::env::temp_dir().join(format!("plcvault-demo-review-{}.html", std::process::id()))
        }
    };
    let reviews = review_all(cfg, devices)?;
    let classes = |d: &str| -> Vec<String> {
        reviews
            .iter()
            .filter(|r| r.device == d)
            .flat_map(|r| {
                r.comparison
                    .findings
                    .iter()
                    .map(|f| format!("{}:{}", f.class, f.artifact))
            })
            .collect()
    };
    let expected = [
        (
            "line1",
            vec![
                "logic:PLC1/FB10_Conveyor.scl",
                "cosmetic:PLC3/Palletiser.L5X",
                "logic:PLC3/Palletiser.L5X",
                "cosmetic:PLC4/FB_Doser.TcPOU",
                "logic:PLC4/FB_Doser.TcPOU",
                "recipe:recipes/Orange_Juice_1l.csv",
            ],
        ),
        ("filler-plc", vec!["recipe:holding/0-99.csv"]),
        ("capper-plc", vec![]),
        (
            "labeller-cpu",
            vec!["logic:blocks.csv", "logic:blocks/FB2.mc7"],
        ),
    ];
    for (d, want) in expected {
        if classes(d) != want {
            bail!(
                "the demo expected findings {want:?} for {d}, the comparison found {:?}",
                classes(d)
            );
        }
    }
    crate::review::html::write_html(
        &html,
        "plcvault change review: bottling line 1",
        &reviews,
        &[],
    )?;
    out.say(format!(
        "   The change-review page with every finding, the baseline's approver and ticket is at\n   {}",
        html.display()
    ));
    Ok(())
}

/// Restores the first snapshots of the exports and of the filler into `dir/restored` and
/// proves every file byte-identical to the plant as generated, and the filler's approved
/// recipe register on record. Returns the number of identical files.
///
/// Fails when a restore fails or a file differs.
fn prove_restore(
    cfg: &Config,
    dir: &Path,
    originals: &BTreeMap<String, [u8; 32]>,
    line1_first: &str,
    filler_first: &str,
    out: &Out,
) -> Result<usize> {
    out.say(format!(
        "\n8. Recovery: restore the first snapshot of the exports ({line1_first}) into an empty folder"
    ));
    out.say("   and prove every file byte-identical to the plant as it was generated.");
    let restored = dir.join("restored");
    let r = crate::ops::commands::restore(
        cfg,
        "line1",
        line1_first,
        &restored.join("line1"),
        (false, false),
        out,
    )?;
    if r != Outcome::Clean {
        bail!("the restore reported failures");
    }
    let mut identical = 0;
    for (name, hash) in originals {
        let got = sha256_file(&restored.join("line1").join(name))?;
        if &got != hash {
            bail!("{name} restored with different content");
        }
        identical += 1;
    }
    if restored.join("line1/hmi/Panel_Line1.img.tmp").exists() {
        bail!("an excluded file was restored");
    }
    out.say(format!(
        "   {identical} of {} files byte-identical (SHA-256 of each restored file equals the hash taken at generation);",
        originals.len()
    ));
    let r = crate::ops::commands::restore(
        cfg,
        "filler-plc",
        filler_first,
        &restored.join("filler-plc"),
        (false, false),
        out,
    )?;
    if r != Outcome::Clean {
        bail!("the restore of the filler PLC's snapshot reported failures");
    }
    let regs = std::fs::read_to_string(restored.join("filler-plc/holding/0-99.csv"))?;
    let line = format!("{STERILISE_REGISTER},88");
    if !regs.lines().any(|l| l == line) {
        bail!("the filler's first snapshot does not hold register {STERILISE_REGISTER} = 88");
    }
    out.say(format!(
        "   the filler's approved recipe is on record: register {STERILISE_REGISTER} = 88 in holding/0-99.csv."
    ));
    Ok(identical)
}

/// Drills the exports' and the capper's baselines into scratch folders and the filler's
/// onto the spare CPU.
///
/// Fails when a drill fails.
fn drills(cfg: &Config, devices: &[&crate::config::DeviceConfig], out: &Out) -> Result<()> {
    let filler: Vec<&crate::config::DeviceConfig> = devices
        .iter()
        .copied()
        .filter(|d| d.name == "filler-plc")
        .collect();
    let others: Vec<&crate::config::DeviceConfig> = devices
        .iter()
        .copied()
        .filter(|d| d.name != "filler-plc")
        .collect();
    let spare_cfg = cfg.one("spare-filler")?;
    let d1 = crate::ops::drill::run(cfg, &others, None, None, None, out)?;
    let d2 = crate::ops::drill::run(cfg, &filler, None, None, Some(spare_cfg), out)?;
    if d1 != Outcome::Clean || d2 != Outcome::Clean {
        bail!("a demo drill failed");
    }
    Ok(())
}

/// Alice approves the newest snapshot of every device as its baseline (ticket CHG-1001).
///
/// Fails when an approval fails.
fn approve_all(
    cfg: &Config,
    devices: &[&crate::config::DeviceConfig],
    alice: &Path,
    out: &Out,
) -> Result<()> {
    for d in devices {
        let r = crate::review::baseline::approve(
            cfg,
            &crate::review::baseline::ApproveOptions {
                device: &d.name,
                snapshot: Some("latest"),
                key: alice,
                ticket: "CHG-1001",
                reason: "commissioning of line 1",
                accept_suspect: false,
                confirm: false,
                review: None,
                live: false,
            },
            out,
        )?;
        if r != Outcome::Clean {
            bail!("the approval of {} failed", d.name);
        }
    }
    Ok(())
}

/// Changes behind the tool's back: a recipe file, a logic file, a recipe register and a
/// function block in the S7 CPU.
///
/// Fails when a plant file cannot be rewritten.
fn tamper(plant: &Path, filler: &SimPlc, labeller: &S7Sim) -> Result<()> {
    let recipe = plant.join("recipes/Orange_Juice_1l.csv");
    let text = std::fs::read_to_string(&recipe)?.replace("sterilise_temp;88", "sterilise_temp;72");
    std::fs::write(&recipe, text)?;
    let logic = plant.join("PLC1/FB10_Conveyor.scl");
    let text = std::fs::read_to_string(&logic)?.replace("AN    I 2.7", "A     I 2.7");
    std::fs::write(&logic, text)?;
    // The light-curtain condition bypassed in the palletiser's ladder, and re-exported.
    let ladder = plant.join("PLC3/Palletiser.L5X");
    let text = std::fs::read_to_string(&ladder)?
        .replace(
            "XIC(Run)XIC(LightCurtain_OK)OTE(Robot_Enable);",
            "XIC(Run)OTE(Robot_Enable);",
        )
        .replace("Mon Nov 30 10:00:00 2026", "Tue Dec 01 02:10:00 2026");
    std::fs::write(&ladder, text)?;
    // The doser's limit raised tenfold in its method, saved by a newer TwinCAT build.
    let doser = plant.join("PLC4/FB_Doser.TcPOU");
    let text = std::fs::read_to_string(&doser)?
        .replace("rSetpoint <= 1000.0", "rSetpoint <= 10000.0")
        .replace("3.1.4024.12", "3.1.4026.5");
    std::fs::write(&doser, text)?;
    filler.set_holding(STERILISE_REGISTER, 72);
    labeller.update(|c| {
        if let Some(b) = c.block_mut(BlockType::Fb, LABELLER_FB) {
            b.code_mut()[7] ^= 0x01;
            b.reseal();
        }
    });
    Ok(())
}

/// Each device's newest snapshot compared with its baseline.
fn review_all(
    cfg: &Config,
    devices: &[&crate::config::DeviceConfig],
) -> Result<Vec<crate::review::html::Review>> {
    let vault = vault::Vault::open(&cfg.vault.path)?;
    let history = cfg.history(&vault)?;
    let (index, _) = vault::Index::load_reading(&vault, &history);
    let read = |a: &vault::ArtifactEntry| {
        vault::read_artifact(&vault, &index, a, crate::review::diff::view_limit(a)).ok()
    };
    devices
        .iter()
        .map(|d| {
            let snap = history.find_snapshot(Some(&d.name), None)?;
            let m = vault::manifest::load(vault.root(), &snap.manifest)?;
            crate::review::baseline::review_against_baseline(
                &vault,
                &index,
                &history,
                d,
                &m,
                format!("snapshot {}", snap.id),
                &read,
            )
        })
        .collect()
}
