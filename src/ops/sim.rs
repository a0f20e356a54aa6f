//! `plcvault sim`: simulated PLCs for trying plcvault without a plant, and for the fleet
//! benchmark. Serves N Modbus TCP PLCs, M Siemens S7 CPUs and K Logix controllers
//! (EtherNet/IP) on 127.0.0.1 (ports chosen
//! by the OS), writes a config snippet naming them, and on SIGTERM/SIGINT prints what each
//! received: the request count, the functions, the most requests in any one second and
//! the most in flight at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use adapters::enip::sim::{EnipSim, EnipSimConfig};
use adapters::modbus::sim::{SimConfig, SimMap, SimPlc};
use adapters::s7::sim::{S7Sim, S7SimConfig};
use anyhow::{Context, Result};
use serde::Serialize;

use crate::output::{Out, Outcome};

pub struct SimOptions<'a> {
    pub plcs: usize,
    pub s7: usize,
    /// Logic blocks per S7 CPU.
    pub blocks: usize,
    pub s7_writable: bool,
    /// Logix controllers, their extra tags, and whether they accept Write Tag.
    pub enip: usize,
    pub enip_tags: usize,
    pub enip_writable: bool,
    pub registers: usize,
    pub map: Option<&'a Path>,
    pub write_config: Option<&'a Path>,
    pub max_requests_per_second: f64,
    /// How long each PLC takes to answer a request.
    pub response_delay: Duration,
}

#[derive(Serialize)]
struct PlcStats<F: Ord + Serialize> {
    device: String,
    address: String,
    requests: usize,
    functions: BTreeSet<F>,
    max_per_second: usize,
    max_in_flight: usize,
}

impl<F: Ord + Serialize> PlcStats<F> {
    /// What a simulated device received: one request per time in `times` (in order).
    fn of(
        device: &str,
        address: std::net::SocketAddr,
        times: Vec<std::time::Instant>,
        functions: BTreeSet<F>,
        max_in_flight: usize,
    ) -> PlcStats<F> {
        PlcStats {
            device: device.to_string(),
            address: address.to_string(),
            requests: times.len(),
            functions,
            max_per_second: max_per_second(&times),
            max_in_flight,
        }
    }
}

/// The most of `times` (in order) within any one second.
fn max_per_second(times: &[std::time::Instant]) -> usize {
    let mut most = 0;
    let mut j = 0;
    for i in 0..times.len() {
        while times[i].duration_since(times[j]) >= Duration::from_secs(1) {
            j += 1;
        }
        most = most.max(i - j + 1);
    }
    most
}

fn print_stats<F: Ord + Serialize + std::fmt::Debug>(out: &Out, stats: &PlcStats<F>) {
    out.record("sim-plc", stats, || {
        format!(
            "{}: {} requests, functions {:?}, at most {} in one second, at most {} in flight",
            stats.device,
            stats.requests,
            stats.functions,
            stats.max_per_second,
            stats.max_in_flight
        )
    });
}

pub fn run(opts: &SimOptions, out: &Out) -> Result<Outcome> {
    let map = match opts.map {
        Some(p) => Some(
            SimMap::parse(
                &std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        ),
        None => None,
    };
    let runtime = crate::runtime::get()?;
    let mut plcs = Vec::new();
    let mut snippet = String::new();
    for i in 0..opts.plcs {
        let name = format!("sim-plc-{:03}", i + 1);
        let m = map
            .clone()
            .unwrap_or_else(|| SimMap::generated(opts.registers, i as u64 + 1));
        let mut sim_cfg = SimConfig::new(m);
        sim_cfg.response_delay = opts.response_delay;
        let plc = runtime.block_on(SimPlc::start("127.0.0.1:0", sim_cfg))?;
        snippet.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nadapter = \"modbus\"\naddress = \"{}\"\ntags = [\"sim\"]\nmax-requests-per-second = {}\n\n[[device.range]]\ntable = \"holding\"\nstart = 0\ncount = {}\nkind = \"recipe\"\n",
            plc.addr(),
            opts.max_requests_per_second,
            opts.registers.clamp(1, 65536)
        ));
        plcs.push((name, plc));
    }
    let mut cpus = Vec::new();
    for i in 0..opts.s7 {
        let name = format!("sim-s7-{:03}", i + 1);
        let mut c = S7SimConfig::generated(opts.blocks, i as u64 + 1);
        c.response_delay = opts.response_delay;
        c.writable = opts.s7_writable;
        let cpu = runtime.block_on(S7Sim::start("127.0.0.1:0", c))?;
        snippet.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nadapter = \"s7\"\naddress = \"{}\"\ntags = [\"sim\"]\nmax-requests-per-second = {}\n{}\n[[device.db]]\nnumber = 10\nsize = 200\nkind = \"recipe\"\n",
            cpu.addr(),
            opts.max_requests_per_second,
            if opts.s7_writable {
                // A spare for drills: out of the nightly run.
                "writable = true\nnightly = false\n"
            } else {
                ""
            },
        ));
        cpus.push((name, cpu));
    }
    let mut logix = Vec::new();
    for i in 0..opts.enip {
        let name = format!("sim-logix-{:03}", i + 1);
        let mut c = EnipSimConfig::generated(opts.enip_tags, i as u64 + 1);
        c.response_delay = opts.response_delay;
        c.writable = opts.enip_writable;
        let plc = runtime.block_on(EnipSim::start("127.0.0.1:0", c))?;
        snippet.push_str(&format!(
            "\n[[device]]\nname = \"{name}\"\nadapter = \"enip\"\naddress = \"{}\"\ntags = [\"sim\"]\nmax-requests-per-second = {}\nmax-tags = {}\n{}\n[[device.kind]]\nmatch = \"Recipe\"\nkind = \"recipe\"\n\n[[device.kind]]\nmatch = \"Setpoint\"\nkind = \"recipe\"\n",
            plc.addr(),
            opts.max_requests_per_second,
            (opts.enip_tags + 100).max(1000),
            if opts.enip_writable {
                "writable = true\nnightly = false\n"
            } else {
                ""
            },
        ));
        logix.push((name, plc));
    }
    match opts.write_config {
        Some(p) => {
            // Written whole, then renamed: a reader never sees half a snippet.
            let tmp = p.with_extension("partial");
            std::fs::write(&tmp, &snippet)?;
            std::fs::rename(&tmp, p)?;
            out.info(format!(
                "{} simulated PLC(s), {} S7 CPU(s) and {} Logix controller(s) running; config snippet in {}",
                plcs.len(),
                cpus.len(),
                logix.len(),
                p.display()
            ));
        }
        None => out.say(snippet.trim_start()),
    }
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<_, std::io::Error>(())
    })?;
    for (name, plc) in &plcs {
        let reqs = plc.requests();
        let stats = PlcStats::of(
            name,
            plc.addr(),
            reqs.iter().map(|r| r.at).collect(),
            reqs.iter().map(|r| r.function).collect(),
            plc.max_in_flight(),
        );
        print_stats(out, &stats);
    }
    for (name, cpu) in &cpus {
        let reqs = cpu.requests();
        let stats = PlcStats::of(
            name,
            cpu.addr(),
            reqs.iter().map(|r| r.at).collect(),
            reqs.iter().map(|r| r.function.clone()).collect(),
            cpu.max_in_flight(),
        );
        print_stats(out, &stats);
    }
    for (name, plc) in &logix {
        let reqs = plc.requests();
        // The rate is of requests on the wire; a packet's Read Tags are its content.
        let stats = PlcStats::of(
            name,
            plc.addr(),
            reqs.iter().filter(|r| r.frame).map(|r| r.at).collect(),
            reqs.iter().map(|r| r.function.clone()).collect(),
            plc.max_in_flight(),
        );
        print_stats(out, &stats);
    }
    Ok(Outcome::Clean)
}
