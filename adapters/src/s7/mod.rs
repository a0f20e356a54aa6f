//! The `s7` adapter: Siemens S7-300/400 (and S7-1200/1500 with PUT/GET in classic access)
//! over S7comm on ISO-on-TCP, read-only: CPU identity from the SZL, the block directory
//! with each block's info and checksum, every block uploaded (PLC to plcvault), and data
//! block contents read with read var. Nothing else is ever sent (see `READ_FUNCTIONS`);
//! the only write, write var into data blocks, belongs to the writer, which needs the
//! device's write permit (`writable = true`).
//!
//! Artifacts: `identity.txt` (order number, versions, names, serial, protection level and
//! key switch; the CPU's operating state and the PDU size go into its metadata under
//! `state-` keys, recorded and never compared), `blocks.csv` (one line per block with its
//! info fields and checksum), `blocks/FB10.mc7` (each uploaded block, whole) and
//! `data/DB10.bin` (configured DB contents).

pub mod client;
pub mod proto;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;

use std::fmt::Write as _;
use std::time::Duration;

use client::{Endpoint, Op, S7Error, Session};
use proto::BlockType;

use crate::{
    AdapterError, ArtifactKind, ArtifactMeta, ArtifactSource, BoxFuture, Collection, Collector,
    DeviceRestore, RestoreFailure, RestoreItem, SourceData, WritePermit, Writer,
};

/// What a collection sends, as the README lists it.
pub const READ_FUNCTIONS: &[&str] = &[
    "COTP connect",
    "setup communication (0xF0)",
    "read SZL (userdata 4/1)",
    "list blocks of type (userdata 3/2)",
    "block info (userdata 3/3)",
    "start upload (0x1D)",
    "upload (0x1E)",
    "end upload (0x1F)",
    "read var (0x04)",
];

/// The range of `timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest block plcvault uploads (an S7-300/400 block is at most 64 KiB of load
/// memory; S7-1500 blocks in classic access are larger, but not this large).
pub const MAX_BLOCK: u32 = 4 * 1024 * 1024;
/// The largest DB range read as data, and the end of the addresses a DB read can name
/// (S7ANY addresses bits in 24 bits: 2 MiB).
pub const MAX_DB_READ: u32 = 1024 * 1024;
pub const DB_ADDRESS_END: u64 = 1 << 21;
/// The most block bytes one collection holds for a CPU: a CPU that lists more (or lies
/// about sizes) gets the rest skipped, the snapshot incomplete, never unbounded memory.
pub const MAX_DEVICE_UPLOAD: u64 = 256 * 1024 * 1024;

/// A data block read as data (`[[device.db]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbSpec {
    pub number: u16,
    pub start: u32,
    pub size: u32,
    pub kind: ArtifactKind,
}

impl DbSpec {
    /// `data/DB10.bin`, or `data/DB10@100.bin` when it does not start at byte 0.
    pub fn artifact_name(&self) -> String {
        if self.start == 0 {
            format!("data/DB{}.bin", self.number)
        } else {
            format!("data/DB{}@{}.bin", self.number, self.start)
        }
    }

    /// The DB number and start byte an artifact name stands for.
    pub fn parse_name(name: &str) -> Option<(u16, u32)> {
        let rest = name.strip_prefix("data/DB")?.strip_suffix(".bin")?;
        let (n, start) = rest.split_once('@').unwrap_or((rest, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(n) && digits(start)).then(|| Some((n.parse().ok()?, start.parse().ok()?)))?
    }
}

/// Settings of one S7 device.
#[derive(Clone, Debug)]
pub struct S7Options {
    pub device: String,
    /// `host:port` (port 102 unless given).
    pub address: String,
    pub local_tsap: u16,
    pub remote_tsap: u16,
    pub pdu_size: u16,
    pub timeout: Duration,
    pub retries: u32,
    pub max_requests_per_second: f64,
    /// Block types listed (and uploaded, with `upload`).
    pub blocks: Vec<BlockType>,
    pub upload: bool,
    pub dbs: Vec<DbSpec>,
    /// Glob → kind, first match wins; then OB/FB/FC logic, SDB config, DB values.
    pub kinds: Vec<(String, ArtifactKind)>,
}

impl S7Options {
    /// Fails when a setting is out of its range.
    pub fn validate(&self) -> Result<(), AdapterError> {
        let bad = |key: &str, why: String| AdapterError::Config {
            device: self.device.clone(),
            key: key.into(),
            why,
        };
        if !(0.1..=1000.0).contains(&self.max_requests_per_second) {
            return Err(bad(
                "max-requests-per-second",
                format!("{} is outside 0.1 to 1000", self.max_requests_per_second),
            ));
        }
        if self.timeout < MIN_TIMEOUT || self.timeout > MAX_TIMEOUT {
            return Err(bad("timeout", "outside 100ms to 60s".into()));
        }
        if self.retries > 10 {
            return Err(bad("retries", format!("{} is more than 10", self.retries)));
        }
        if !(proto::MIN_PDU..=proto::MAX_PDU).contains(&self.pdu_size) {
            return Err(bad(
                "pdu-size",
                format!("{} is outside 240 to 960", self.pdu_size),
            ));
        }
        for (i, d) in self.dbs.iter().enumerate() {
            if d.size == 0 || d.size > MAX_DB_READ {
                return Err(bad(
                    "db",
                    format!(
                        "DB{}: size {} is outside 1 to {MAX_DB_READ}",
                        d.number, d.size
                    ),
                ));
            }
            if u64::from(d.start) + u64::from(d.size) > DB_ADDRESS_END {
                return Err(bad(
                    "db",
                    format!(
                        "DB{}: start {} + size {} runs past byte {DB_ADDRESS_END}, the last a read can address",
                        d.number, d.start, d.size
                    ),
                ));
            }
            if self.dbs[..i]
                .iter()
                .any(|e| e.number == d.number && e.start == d.start)
            {
                return Err(bad(
                    "db",
                    format!("DB{} from byte {} is listed twice", d.number, d.start),
                ));
            }
        }
        if self.blocks.is_empty() {
            return Err(bad(
                "blocks",
                "no block type listed: no logic would be watched\nfix: leave `blocks` out (all five) or list OB, FB, FC, DB, SDB".into(),
            ));
        }
        Ok(())
    }

    fn endpoint(&self, addr: std::net::SocketAddr) -> Endpoint {
        Endpoint {
            addr,
            local_tsap: self.local_tsap,
            remote_tsap: self.remote_tsap,
            pdu_size: self.pdu_size,
            timeout: self.timeout,
        }
    }

    /// The kind of an artifact by the config's globs, else by block type.
    pub fn kind_of(&self, name: &str) -> ArtifactKind {
        for (g, k) in &self.kinds {
            if glob::Pattern::new(g).is_ok_and(|p| p.matches(name)) {
                return *k;
            }
        }
        let block = name.strip_prefix("blocks/").unwrap_or("");
        if block.starts_with("SDB") {
            ArtifactKind::Config
        } else if block.starts_with("DB") || name.starts_with("data/") {
            ArtifactKind::Values
        } else {
            ArtifactKind::Logic
        }
    }
}

/// A block's info, as the CPU reports it (userdata 3/3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockInfo {
    pub flags: u8,
    pub language: u8,
    pub load_length: u32,
    pub security: u32,
    pub code_time: (u32, u16),
    pub interface_time: (u32, u16),
    pub sbb_length: u16,
    pub local_data: u16,
    pub mc7_length: u16,
    pub author: String,
    pub family: String,
    pub name: String,
    pub version: u8,
    pub checksum: u16,
}

impl BlockInfo {
    /// Parses the 78-byte block info answer.
    ///
    /// Fails when it is shorter than its fixed fields.
    pub fn parse(b: &[u8]) -> Result<BlockInfo, String> {
        if b.len() < 70 {
            return Err(format!(
                "block info of {} bytes (78 expected, at least 70 for its fields)",
                b.len()
            ));
        }
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(BlockInfo {
            flags: b[9],
            language: b[10],
            load_length: u32_at(14),
            security: u32_at(18),
            code_time: (u32_at(22), u16_at(26)),
            interface_time: (u32_at(28), u16_at(32)),
            sbb_length: u16_at(34),
            local_data: u16_at(38),
            mc7_length: u16_at(40),
            author: text_field(&b[42..50]),
            family: text_field(&b[50..58]),
            name: text_field(&b[58..66]),
            version: b[66],
            checksum: u16_at(68),
        })
    }
}

/// The language of a block, by its code.
pub fn language_name(code: u8) -> String {
    match code {
        1 => "STL".into(),
        2 => "LAD".into(),
        3 => "FBD".into(),
        4 => "SCL".into(),
        5 => "DB".into(),
        6 => "GRAPH".into(),
        7 => "SDB".into(),
        8 => "CPU-DB".into(),
        17 => "SDB".into(),
        c => format!("0x{c:02x}"),
    }
}

/// An S7 timestamp (milliseconds since midnight, days since 1984-01-01) in RFC 3339.
pub fn s7_time((ms, days): (u32, u16)) -> String {
    if ms == 0 && days == 0 {
        return "-".into();
    }
    const EPOCH_1984: u64 = 441_763_200;
    let t = std::time::UNIX_EPOCH
        + Duration::from_secs(EPOCH_1984 + u64::from(days) * 86400)
        + Duration::from_millis(u64::from(ms.min(86_399_999)));
    humantime::format_rfc3339_millis(t).to_string()
}

/// Text from a CPU: NUL and space padding trimmed; a byte that is not printable ASCII (or
/// is a comma, a quote, a backslash or `=`, or a `+`, `-` or `@` that would start the field
/// as a spreadsheet formula) escaped as `\xNN`, so that no value can forge a line, a column
/// or a field, and no two different values read the same.
pub fn text_field(b: &[u8]) -> String {
    let end = b
        .iter()
        .rposition(|&c| c != 0 && c != b' ')
        .map_or(0, |i| i + 1);
    let mut s = String::new();
    for (i, &c) in b[..end].iter().enumerate() {
        let formula = i == 0 && b"+-@".contains(&c);
        if (0x20..0x7F).contains(&c) && !b",\"\\=".contains(&c) && !formula {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

/// Identity fields from the SZL answers that could be read, in Siemens' layout (ID,
/// index, record length, record count, records). An answer in another layout is kept as
/// hex, so a change still shows, with a warning.
pub fn parse_szl(id: u16, data: &[u8], fields: &mut Vec<(String, String)>) -> Result<(), String> {
    if data.len() < 8 {
        return Err(format!("{} bytes, not an SZL list", data.len()));
    }
    let got = u16::from_be_bytes([data[0], data[1]]);
    let len = u16::from_be_bytes([data[4], data[5]]) as usize;
    let n = u16::from_be_bytes([data[6], data[7]]) as usize;
    let body = &data[8..];
    // Siemens' record lengths: 28 (module identification), 34 (component
    // identification), 20 (protection); a list of other records is another layout.
    let want = match id {
        0x0011 => 28,
        0x001C => 34,
        0x0232 => 20,
        _ => len,
    };
    if got & 0x0FFF != id & 0x0FFF || len != want || len.checked_mul(n) != Some(body.len()) {
        return Err(format!(
            "SZL {got:#06x} with {n} records of {len} bytes in {} bytes",
            body.len()
        ));
    }
    for r in body.chunks(len) {
        let index = u16::from_be_bytes([r[0], r[1]]);
        let rec = &r[2..];
        let u16_at = |i: usize| rec.get(i..i + 2).map(|v| u16::from_be_bytes([v[0], v[1]]));
        match id {
            0x0011 => {
                let what = match index {
                    1 => "module",
                    6 => "hardware",
                    7 => "firmware",
                    _ => "",
                };
                if what.is_empty() {
                    continue;
                }
                fields.push((format!("{what}-order-number"), text_field(&rec[..20])));
                let (g, e) = (u16_at(22).unwrap_or(0), u16_at(24).unwrap_or(0));
                let version = if index == 7 && g >> 8 == u16::from(b'V') {
                    format!("V{}.{}.{}", g & 0xFF, e >> 8, e & 0xFF)
                } else {
                    format!("{e}")
                };
                fields.push((format!("{what}-version"), version));
            }
            0x001C => {
                let name = match index {
                    1 => "station-name",
                    2 => "module-name",
                    3 => "plant-designation",
                    4 => "copyright",
                    5 => "serial-number",
                    7 => "module-type",
                    8 => "memory-card-serial",
                    11 => "location-designation",
                    _ => continue,
                };
                fields.push((name.into(), text_field(&rec[..rec.len().min(32)])));
            }
            0x0232 if index == 4 => {
                let level = u16_at(0).unwrap_or(0);
                fields.push((
                    "protection-level".into(),
                    match level {
                        1 => "1 (no protection)".into(),
                        2 => "2 (write protection)".into(),
                        3 => "3 (read and write protection)".into(),
                        l => format!("{l}"),
                    },
                ));
                fields.push((
                    "protection-parameter".into(),
                    format!("{}", u16_at(2).unwrap_or(0)),
                ));
                let key = u16_at(6).unwrap_or(0);
                fields.push((
                    "key-switch".into(),
                    match key {
                        1 => "RUN".into(),
                        2 => "RUN-P".into(),
                        3 => "STOP".into(),
                        4 => "MRES".into(),
                        k => format!("{k} (none)"),
                    },
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The CPU's operating state from SZL 0x0424 (recorded, never compared).
pub fn parse_cpu_state(data: &[u8]) -> Option<String> {
    // Header of 8, then records of 20: event id (2), ae (1), state (1) ...
    let state = *data.get(8 + 3)?;
    Some(
        match state & 0x0F {
            0x08 => "RUN",
            0x04 => "STOP",
            0x03 => "STARTUP",
            0x02 => "HOLD",
            _ => return Some(format!("0x{state:02x}")),
        }
        .to_string(),
    )
}

/// A read that failed after its retries: the snapshot is not whole, the warning says
/// what, and a CPU that stopped answering is remembered as down (the rest is skipped).
fn failed(out: &mut Collection, down: &mut Option<(S7Error, String)>, warning: String, e: S7Error) {
    out.complete = false;
    out.warnings.push(warning.clone());
    if e.stopped() {
        *down = Some((e, warning));
    }
}

/// Collects one S7 CPU.
pub struct S7Collector {
    opts: S7Options,
}

impl S7Collector {
    /// Fails when the settings are invalid.
    pub fn new(opts: S7Options) -> Result<S7Collector, AdapterError> {
        opts.validate()?;
        Ok(S7Collector { opts })
    }

    fn unreachable(&self, why: String) -> AdapterError {
        AdapterError::Unreachable {
            device: self.opts.device.clone(),
            why,
            fix: format!(
                "check that {} is powered and reachable from this host (firewall, VLAN) and that it listens on ISO-on-TCP",
                self.opts.address
            ),
        }
    }

    async fn session(&self) -> Result<Session, AdapterError> {
        let o = &self.opts;
        let addr = tokio::net::lookup_host(&o.address)
            .await
            .map_err(|e| self.unreachable(format!("cannot resolve {}: {e}", o.address)))?
            .next()
            .ok_or_else(|| self.unreachable(format!("{} resolves to no address", o.address)))?;
        let mut s = Session::new(o.endpoint(addr), o.max_requests_per_second, o.retries);
        s.open().await.map_err(|e| match e {
            S7Error::Timeout(why) => AdapterError::Timeout {
                device: o.device.clone(),
                why,
                fix: format!(
                    "check that {} is powered and reachable, or raise `timeout`",
                    o.address
                ),
            },
            S7Error::Refused(why) => AdapterError::Refused {
                device: o.device.clone(),
                why,
                fix: "check `rack` and `slot` (S7-300: 0 and 2; S7-1200/1500: 0 and 1) or the TSAPs, and that PUT/GET access is allowed on an S7-1200/1500".into(),
            },
            other => self.unreachable(other.to_string()),
        })?;
        Ok(s)
    }

    async fn collect_now(&self) -> Result<Collection, AdapterError> {
        let o = &self.opts;
        let mut s = self.session().await?;
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
        // The first read that finds the CPU gone stops the run: the rest are skipped.
        let mut down: Option<(S7Error, String)> = None;
        let mut skipped = 0u32;
        let mut uploaded = 0u64;

        // Identity from the SZL.
        let mut fields = Vec::new();
        let mut state = None;
        for (id, index) in [(0x0011u16, 0u16), (0x001C, 0), (0x0232, 4), (0x0424, 0)] {
            if down.is_some() {
                skipped += 1;
                continue;
            }
            match s.run(&Op::Szl(id, index)).await {
                Ok(data) if id == 0x0424 => state = parse_cpu_state(&data),
                Ok(data) => {
                    if let Err(e) = parse_szl(id, &data, &mut fields) {
                        out.warnings.push(format!(
                            "SZL {id:#06x} is not in Siemens' layout ({e}); kept as hex"
                        ));
                        fields.push((format!("szl-{id:04x}"), hex(&data)));
                    }
                }
                Err(S7Error::Refused(e)) => {
                    fields.push((format!("szl-{id:04x}"), "not available".into()));
                    out.warnings
                        .push(format!("SZL {id:#06x} not available: {e}"));
                }
                Err(e) => {
                    failed(
                        &mut out,
                        &mut down,
                        format!("SZL {id:#06x} not read: {e}"),
                        e,
                    );
                }
            }
        }

        // The block directory, each block's info and its body.
        let mut rows = Vec::new();
        for t in &o.blocks {
            if down.is_some() {
                skipped += 1;
                continue;
            }
            let list = match s.run(&Op::ListType(*t)).await {
                Ok(l) if l.len() % 4 == 0 => l,
                Ok(l) => {
                    out.complete = false;
                    out.warnings.push(format!(
                        "the {t} list is {} bytes, not whole entries of 4; not used",
                        l.len()
                    ));
                    continue;
                }
                // No block of this type: CPUs answer an empty list or "object does not
                // exist"; neither is news.
                Err(S7Error::Refused(e)) if e.starts_with("0x0a ") => continue,
                Err(S7Error::Refused(e)) => {
                    out.warnings.push(format!("no {t} list: {e}"));
                    continue;
                }
                Err(e) => {
                    failed(
                        &mut out,
                        &mut down,
                        format!("the {t} list not read: {e}"),
                        e,
                    );
                    continue;
                }
            };
            let mut numbers: Vec<u16> = list
                .chunks(4)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            numbers.sort_unstable();
            numbers.dedup();
            for n in numbers {
                if down.is_some() {
                    skipped += 1;
                    continue;
                }
                let label = format!("{t}{n}");
                let info = match s.run(&Op::Info(*t, n)).await {
                    Ok(b) => match BlockInfo::parse(&b) {
                        Ok(i) => Some(i),
                        Err(e) => {
                            // Not what a CPU answers: the snapshot is not whole.
                            out.complete = false;
                            out.warnings
                                .push(format!("{label}: {e}; block info not used"));
                            None
                        }
                    },
                    Err(S7Error::Refused(e)) => {
                        out.warnings.push(format!("{label}: no block info: {e}"));
                        None
                    }
                    Err(e) => {
                        failed(
                            &mut out,
                            &mut down,
                            format!("{label}: block info not read: {e}"),
                            e,
                        );
                        continue;
                    }
                };
                let room = MAX_DEVICE_UPLOAD.saturating_sub(uploaded);
                let upload = if !o.upload {
                    "not asked".to_string()
                } else if room == 0 {
                    out.complete = false;
                    out.warnings.push(format!(
                        "{label} not uploaded: this CPU's blocks passed {} in this collection",
                        MAX_DEVICE_UPLOAD
                    ));
                    "skipped (size cap)".to_string()
                } else {
                    let max = (MAX_BLOCK as u64).min(room) as u32;
                    match s.run(&Op::Upload(*t, n, max)).await {
                        Ok(bytes) => {
                            uploaded += bytes.len() as u64;
                            let name = format!("blocks/{label}.mc7");
                            let mut meta = ArtifactMeta::default();
                            if let Some(i) = &info {
                                meta.extra
                                    .insert("checksum".into(), format!("{:04x}", i.checksum));
                            }
                            out.artifacts.push(ArtifactSource {
                                kind: o.kind_of(&name),
                                name,
                                meta,
                                size_hint: Some(bytes.len() as u64),
                                data: SourceData::Bytes(bytes),
                            });
                            "yes".to_string()
                        }
                        // Know-how protected, or not there: recorded with its info.
                        Err(S7Error::Refused(e))
                            if e.starts_with("0xd241") || e.starts_with("0xd209") =>
                        {
                            out.warnings.push(format!(
                                "{label} not uploaded: {e}; its block info is recorded in blocks.csv"
                            ));
                            format!("refused {}", text_field(e.as_bytes()))
                        }
                        // Any other refusal (busy, resources, our size cap) may pass: the
                        // snapshot is not whole, and the next collection tries again.
                        Err(S7Error::Refused(e)) => {
                            out.complete = false;
                            out.warnings
                                .push(format!("{label} not uploaded this time: {e}"));
                            "failed".to_string()
                        }
                        Err(e) => {
                            failed(&mut out, &mut down, format!("{label} not uploaded: {e}"), e);
                            "failed".to_string()
                        }
                    }
                };
                rows.push((*t, n, info, upload));
            }
        }

        // Data blocks read as data.
        for d in &o.dbs {
            if down.is_some() {
                skipped += 1;
                continue;
            }
            match s.run(&Op::ReadDb(d.number, d.start, d.size)).await {
                Ok(bytes) => out.artifacts.push(ArtifactSource {
                    name: d.artifact_name(),
                    kind: d.kind,
                    meta: ArtifactMeta::default(),
                    size_hint: Some(bytes.len() as u64),
                    data: SourceData::Bytes(bytes),
                }),
                Err(e) => {
                    failed(
                        &mut out,
                        &mut down,
                        format!("DB{} not read: {e}", d.number),
                        e,
                    );
                }
            }
        }
        s.close().await;

        if let Some((e, first)) = &down {
            if skipped > 0 {
                out.warnings.push(format!(
                    "{skipped} later reads skipped: the CPU stopped answering"
                ));
            }
            if rows.is_empty() && out.artifacts.is_empty() {
                let why = format!(
                    "{first} (after {} requests; {skipped} later reads skipped)",
                    s.requests
                );
                let fix = format!(
                    "check that {} is powered and reachable from this host, or raise `timeout`",
                    o.address
                );
                return Err(match e {
                    S7Error::Timeout(_) => AdapterError::Timeout {
                        device: o.device.clone(),
                        why,
                        fix,
                    },
                    _ => AdapterError::Unreachable {
                        device: o.device.clone(),
                        why,
                        fix,
                    },
                });
            }
        }
        // Recorded, never compared: the operating state and the PDU size granted.
        let mut meta = ArtifactMeta::default();
        if let Some(st) = state {
            meta.extra.insert("state-cpu".into(), st);
        }
        meta.extra
            .insert("state-pdu-size".into(), s.pdu.to_string());
        out.artifacts.push(ArtifactSource {
            name: "identity.txt".into(),
            kind: ArtifactKind::Identity,
            meta,
            size_hint: None,
            data: SourceData::Bytes(identity_text(&o.device, &fields)),
        });
        out.artifacts.push(ArtifactSource {
            name: "blocks.csv".into(),
            kind: ArtifactKind::Logic,
            meta: ArtifactMeta::default(),
            size_hint: None,
            data: SourceData::Bytes(blocks_csv(&rows)),
        });
        Ok(out)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first line of `identity.txt`; the diff shows its fields one by one.
pub const IDENTITY_MAGIC: &str = "# plcvault s7 identification v1";

/// `identity.txt`: the magic line, the device, then `field=value` lines.
pub fn identity_text(device: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("{IDENTITY_MAGIC}\n# device={device}\n");
    for (k, v) in fields {
        let _ = writeln!(s, "{k}={v}");
    }
    s.into_bytes()
}

/// `blocks.csv`: one line per block, sorted by type and number.
pub fn blocks_csv(rows: &[(BlockType, u16, Option<BlockInfo>, String)]) -> Vec<u8> {
    let mut rows: Vec<_> = rows.iter().collect();
    rows.sort_by_key(|r| (r.0, r.1));
    let mut s = String::from(
        "block,language,flags,load-length,mc7-length,sbb-length,local-data,author,family,name,version,code-time,interface-time,protected,checksum,uploaded\n",
    );
    for (t, n, info, upload) in rows {
        match info {
            Some(i) => {
                let _ = writeln!(
                    s,
                    "{t}{n},{},0x{:02x},{},{},{},{},{},{},{},{}.{},{},{},{},{:04x},{upload}",
                    language_name(i.language),
                    i.flags,
                    i.load_length,
                    i.mc7_length,
                    i.sbb_length,
                    i.local_data,
                    i.author,
                    i.family,
                    i.name,
                    i.version >> 4,
                    i.version & 0x0F,
                    s7_time(i.code_time),
                    s7_time(i.interface_time),
                    if i.security != 0 { "yes" } else { "no" },
                    i.checksum,
                );
            }
            None => {
                let _ = writeln!(s, "{t}{n},,,,,,,,,,,,,,,{upload}");
            }
        }
    }
    s.into_bytes()
}

impl Collector for S7Collector {
    fn adapter(&self) -> &'static str {
        "s7"
    }
    fn source(&self) -> String {
        format!(
            "s7://{} (TSAP {:04X})",
            self.opts.address, self.opts.remote_tsap
        )
    }
    fn read_functions(&self) -> &'static [&'static str] {
        READ_FUNCTIONS
    }
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        Box::pin(self.collect_now())
    }
}

/// Writes DB contents back with write var, for restores and drills onto a writable CPU,
/// then reads them back with read var and compares. Blocks are never downloaded.
pub struct S7Writer {
    opts: S7Options,
}

impl S7Writer {
    pub fn new(opts: S7Options) -> S7Writer {
        S7Writer { opts }
    }

    async fn restore_now(
        &self,
        items: &[RestoreItem],
        permit: &WritePermit,
    ) -> Result<DeviceRestore, AdapterError> {
        let o = &self.opts;
        permit.check(&o.device)?;
        let dbs: Vec<(u16, u32, &RestoreItem)> = items
            .iter()
            .filter_map(|a| DbSpec::parse_name(&a.name).map(|(n, s)| (n, s, a)))
            .collect();
        if dbs.is_empty() {
            return Err(AdapterError::Config {
                device: o.device.clone(),
                key: "snapshot".into(),
                why: "the snapshot holds no DB contents (data/DB*.bin) to restore".into(),
            });
        }
        let collector = S7Collector::new(o.clone())?;
        let mut s = collector.session().await?;
        let mut r = DeviceRestore::default();
        let t0 = std::time::Instant::now();
        for (n, start, a) in &dbs {
            match s.write_db(*n, *start, &a.bytes).await {
                Ok(()) => {
                    r.items += 1;
                    r.written += a.bytes.len() as u64;
                }
                Err(e) => r.failures.push(RestoreFailure {
                    artifact: a.name.clone(),
                    error: format!("write: {e}"),
                }),
            }
        }
        r.write_ms = t0.elapsed().as_millis() as u64;
        let t1 = std::time::Instant::now();
        for (n, start, a) in &dbs {
            if r.failures.iter().any(|f| f.artifact == a.name) {
                continue;
            }
            match s.run(&Op::ReadDb(*n, *start, a.bytes.len() as u32)).await {
                Ok(back) if back == a.bytes => {}
                Ok(back) => {
                    let at = back
                        .iter()
                        .zip(&a.bytes)
                        .position(|(x, y)| x != y)
                        .unwrap_or(0);
                    r.failures.push(RestoreFailure {
                        artifact: a.name.clone(),
                        error: format!("read back differs from byte {at} on"),
                    });
                }
                Err(e) => r.failures.push(RestoreFailure {
                    artifact: a.name.clone(),
                    error: format!("read back: {e}"),
                }),
            }
        }
        r.verify_ms = t1.elapsed().as_millis() as u64;
        r.requests = s.requests;
        s.close().await;
        Ok(r)
    }
}

impl Writer for S7Writer {
    fn takes(&self, name: &str, _kind: ArtifactKind) -> bool {
        DbSpec::parse_name(name).is_some()
    }
    fn restore<'a>(
        &'a self,
        items: &'a [RestoreItem],
        permit: &'a WritePermit,
    ) -> BoxFuture<'a, Result<DeviceRestore, AdapterError>> {
        Box::pin(self.restore_now(items, permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names_round_trip() {
        let d = DbSpec {
            number: 10,
            start: 0,
            size: 4,
            kind: ArtifactKind::Recipe,
        };
        assert_eq!(DbSpec::parse_name(&d.artifact_name()), Some((10, 0)));
        assert_eq!(DbSpec::parse_name("data/DB7@100.bin"), Some((7, 100)));
        assert_eq!(DbSpec::parse_name("data/DBx.bin"), None);
        assert_eq!(DbSpec::parse_name("blocks/DB1.mc7"), None);
    }

    #[test]
    fn cpu_text_cannot_forge_a_column_or_a_line() {
        assert_eq!(text_field(b"ab,c\n=\0\0 "), "ab\\x2cc\\x0a\\x3d");
        assert_eq!(text_field(b"\"x\""), "\\x22x\\x22");
        assert_eq!(text_field(b"+SUM"), "\\x2bSUM");
        assert_eq!(text_field(b"a-b"), "a-b");
        assert_eq!(s7_time((0, 0)), "-");
        assert_eq!(s7_time((1000, 1)), "1984-01-02T00:00:01.000Z");
    }
}
