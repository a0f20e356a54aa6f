//! The `modbus` adapter: Modbus TCP holding and input registers, coils, discrete inputs,
//! and device identification (function 43/14), collected read-only and gently.
//!
//! Plant safety is built in rather than configured: the collector holds a read-only
//! client that refuses any request but functions 1, 2, 3, 4 and 43/14; it sends one
//! request at a time per device; it waits so that request starts are at least
//! `1 / max-requests-per-second` apart (retries included); every request has a timeout,
//! and retries back off exponentially. Reads are split at the protocol limits (125
//! registers, 2,000 bits). Each range becomes one artifact in a canonical line-oriented
//! text form, so any two snapshots compare register by register.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_modbus::client::{Client, Context, tcp};
use tokio_modbus::prelude::{ExceptionCode, ReadCode, Request, Response, Slave};

use crate::device::WritePermit;
use crate::pace::{Backoff, Failed, Pacer, Tries};
use crate::{
    AdapterError, ArtifactKind, ArtifactMeta, ArtifactSource, BoxFuture, Collection, Collector,
    DeviceRestore, RestoreFailure, RestoreItem, SourceData, Writer,
};

pub(crate) mod settings;
#[cfg(feature = "sim")]
pub mod sim;

/// Registers per read request (Modbus limit for functions 3 and 4).
pub const MAX_REGISTERS: u16 = 125;
/// Bits per read request (Modbus limit for functions 1 and 2).
pub const MAX_BITS: u16 = 2000;

/// The four Modbus data tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    Holding,
    Input,
    Coils,
    Discrete,
}

impl Table {
    pub const ALL: [Table; 4] = [Table::Holding, Table::Input, Table::Coils, Table::Discrete];

    pub fn as_str(&self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
            Table::Coils => "coils",
            Table::Discrete => "discrete",
        }
    }

    /// The read function code for this table.
    pub fn function(&self) -> u8 {
        match self {
            Table::Coils => 1,
            Table::Discrete => 2,
            Table::Holding => 3,
            Table::Input => 4,
        }
    }

    pub fn is_bits(&self) -> bool {
        matches!(self, Table::Coils | Table::Discrete)
    }

    pub fn max_per_request(&self) -> u16 {
        if self.is_bits() {
            MAX_BITS
        } else {
            MAX_REGISTERS
        }
    }

    /// Parses `holding`, `input`, `coils` or `discrete`.
    pub fn parse(s: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured range: becomes one artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSpec {
    pub table: Table,
    pub start: u16,
    /// At least 1; `start + count - 1` at most 65535.
    pub count: u16,
    pub kind: ArtifactKind,
    pub label: String,
}

impl RangeSpec {
    /// Last address, inclusive.
    pub fn end(&self) -> u16 {
        self.start + (self.count - 1)
    }

    /// The artifact name: `holding/0-1999.csv`.
    pub fn artifact_name(&self) -> String {
        format!("{}/{}-{}.csv", self.table, self.start, self.end())
    }

    /// `recipes (holding 0-1999)`
    pub fn describe(&self) -> String {
        if self.label.is_empty() {
            format!("{} {}-{}", self.table, self.start, self.end())
        } else {
            format!(
                "{} ({} {}-{})",
                self.label,
                self.table,
                self.start,
                self.end()
            )
        }
    }

    /// The read requests for this range, split at the protocol limits.
    pub fn requests(&self) -> Vec<(u16, u16)> {
        let max = self.table.max_per_request() as u32;
        let mut out = Vec::new();
        let mut addr = self.start as u32;
        let end = self.start as u32 + self.count as u32;
        while addr < end {
            let n = (end - addr).min(max);
            out.push((addr as u16, n as u16));
            addr += n;
        }
        out
    }
}

/// The range of `max-requests-per-second`: slower than one request per 100 s makes a
/// collection pointless, faster than 1,000 floods any controller.
pub const MIN_RATE: f64 = 0.01;
pub const MAX_RATE: f64 = 1000.0;
/// The range of `timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// The most `retries`.
pub const MAX_RETRIES: u32 = 10;

/// Settings of one Modbus device.
#[derive(Clone, Debug)]
pub struct ModbusOptions {
    pub device: String,
    /// `host:port`.
    pub address: String,
    pub unit: u8,
    pub identify: bool,
    pub timeout: Duration,
    pub retries: u32,
    pub max_requests_per_second: f64,
    pub ranges: Vec<RangeSpec>,
}

impl ModbusOptions {
    /// Checks what the config parser cannot: ranges inside the address space, counts,
    /// overlaps, rates. Each error names the setting.
    /// Fails when a setting is out of its range (rates, timeouts, retries, ranges).
    pub fn validate(&self) -> Result<(), AdapterError> {
        let bad = |key: &str, why: String| AdapterError::Config {
            device: self.device.clone(),
            key: key.to_string(),
            why,
        };
        if !(MIN_RATE..=MAX_RATE).contains(&self.max_requests_per_second) {
            return Err(bad(
                "max-requests-per-second",
                format!(
                    "{} is not between {MIN_RATE} (one request per 100 s) and {MAX_RATE}",
                    self.max_requests_per_second
                ),
            ));
        }
        if self.timeout < MIN_TIMEOUT || self.timeout > MAX_TIMEOUT {
            return Err(bad(
                "timeout",
                format!(
                    "{} is not between {} and {}",
                    humantime::format_duration(self.timeout),
                    humantime::format_duration(MIN_TIMEOUT),
                    humantime::format_duration(MAX_TIMEOUT)
                ),
            ));
        }
        if self.retries > MAX_RETRIES {
            return Err(bad(
                "retries",
                format!("{} is more than {MAX_RETRIES}", self.retries),
            ));
        }
        if self.ranges.is_empty() && !self.identify {
            return Err(bad(
                "range",
                "the device has no [[device.range]] and identify = false: nothing to collect"
                    .into(),
            ));
        }
        for (i, r) in self.ranges.iter().enumerate() {
            if r.count == 0 {
                return Err(bad("range.count", format!("range {} has count 0", i + 1)));
            }
            if r.start as u32 + r.count as u32 - 1 > 65535 {
                return Err(bad(
                    "range.count",
                    format!(
                        "range {} ({} {} + {}) runs past address 65535",
                        i + 1,
                        r.table,
                        r.start,
                        r.count
                    ),
                ));
            }
            for (j, other) in self.ranges.iter().enumerate().take(i) {
                if other.table == r.table && other.start <= r.end() && r.start <= other.end() {
                    return Err(bad(
                        "range",
                        format!(
                            "range {} ({}) overlaps range {} ({})",
                            i + 1,
                            r.describe(),
                            j + 1,
                            other.describe()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The device answered with a Modbus exception.
    Exception(String),
    /// No answer, or the connection failed, after every retry.
    Transport(String),
    /// The answer was malformed (wrong length, unit or transaction): never stored.
    Garbage(String),
    /// No answer within the timeout, after every retry.
    Timeout(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Exception(e) => write!(f, "device answered with exception {e}"),
            ReadError::Transport(e) => write!(f, "{e}"),
            ReadError::Garbage(e) => write!(f, "malformed reply ({e})"),
            ReadError::Timeout(e) => write!(f, "{e}"),
        }
    }
}

fn exception_name(e: ExceptionCode) -> String {
    let code: u8 = e.into();
    let name = match code {
        1 => "illegal function",
        2 => "illegal data address",
        3 => "illegal data value",
        4 => "server device failure",
        5 => "acknowledge",
        6 => "server device busy",
        8 => "memory parity error",
        10 => "gateway path unavailable",
        11 => "gateway target failed to respond",
        _ => "unknown",
    };
    format!("{code} ({name})")
}

/// One Modbus TCP connection, opened on first use and dropped when it broke, so that the
/// next attempt makes a new one. Shared by the collector (through `ReadOnly`) and the
/// writer.
struct Link {
    ctx: Option<Context>,
    addr: SocketAddr,
    unit: u8,
    timeout: Duration,
}

impl Link {
    fn new(addr: SocketAddr, unit: u8, timeout: Duration) -> Link {
        Link {
            ctx: None,
            addr,
            unit,
            timeout,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        match tokio::time::timeout(
            self.timeout,
            tcp::connect_slave(self.addr, Slave(self.unit)),
        )
        .await
        {
            Ok(Ok(ctx)) => {
                self.ctx = Some(ctx);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("cannot connect to {}: {e}", self.addr)),
            Err(_) => Err(format!(
                "no connection to {} within {:?}",
                self.addr, self.timeout
            )),
        }
    }

    /// Drops the connection (politely, briefly).
    async fn drop_connection(&mut self) {
        if let Some(mut ctx) = self.ctx.take() {
            let _ = tokio::time::timeout(Duration::from_millis(100), ctx.disconnect()).await;
        }
    }

    /// One request, one answer. A Modbus exception is final; anything else drops the
    /// connection and may be retried.
    async fn call(&mut self, req: Request<'static>) -> Result<Response, Failed<ReadError>> {
        if self.ctx.is_none() {
            self.connect()
                .await
                .map_err(|e| Failed::Retry(ReadError::Transport(e)))?;
        }
        let ctx = self.ctx.as_mut().expect("connected above");
        let failed = match tokio::time::timeout(self.timeout, ctx.call(req)).await {
            Ok(Ok(Ok(resp))) => return Ok(resp),
            Ok(Ok(Err(exc))) => {
                return Err(Failed::Final(ReadError::Exception(exception_name(exc))));
            }
            Err(_) => ReadError::Timeout(format!("no answer within {:?}", self.timeout)),
            Ok(Err(tokio_modbus::Error::Transport(e))) => {
                ReadError::Transport(format!("connection failed: {e}"))
            }
            Ok(Err(tokio_modbus::Error::Protocol(e))) => ReadError::Garbage(e.to_string()),
        };
        self.drop_connection().await;
        Err(Failed::Retry(failed))
    }
}

/// The only requests a collector may send.
pub fn is_read_request(r: &Request<'_>) -> bool {
    matches!(
        r,
        Request::ReadCoils(..)
            | Request::ReadDiscreteInputs(..)
            | Request::ReadHoldingRegisters(..)
            | Request::ReadInputRegisters(..)
            | Request::ReadDeviceIdentification(..)
    )
}

/// A collector's Modbus session: read functions only, paced, retried.
struct Session {
    link: Link,
    pacer: Pacer,
    backoff: Backoff,
    requests: u64,
}

impl Session {
    /// Sends `req` (paced), retrying transport failures with capped exponential backoff
    /// on a new connection.
    async fn request(&mut self, req: Request<'static>) -> Result<Response, ReadError> {
        assert!(is_read_request(&req), "collectors send read functions only");
        let mut tries = Tries::new(self.backoff);
        loop {
            self.pacer.wait().await;
            self.requests += 1;
            match self.link.call(req.clone()).await {
                Ok(r) => return Ok(r),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    async fn read_range(&mut self, r: &RangeSpec) -> Result<Vec<u16>, ReadError> {
        let mut values = Vec::with_capacity(r.count as usize);
        for (addr, n) in r.requests() {
            let req = match r.table {
                Table::Holding => Request::ReadHoldingRegisters(addr, n),
                Table::Input => Request::ReadInputRegisters(addr, n),
                Table::Coils => Request::ReadCoils(addr, n),
                Table::Discrete => Request::ReadDiscreteInputs(addr, n),
            };
            let part: Vec<u16> = match (r.table, self.request(req).await?) {
                (Table::Holding, Response::ReadHoldingRegisters(w))
                | (Table::Input, Response::ReadInputRegisters(w)) => {
                    if w.len() != n as usize {
                        return Err(ReadError::Garbage(format!(
                            "asked for {n} registers at {addr}, got {}",
                            w.len()
                        )));
                    }
                    w
                }
                (Table::Coils, Response::ReadCoils(bits))
                | (Table::Discrete, Response::ReadDiscreteInputs(bits)) => {
                    // Bits come padded to whole bytes.
                    if bits.len() < n as usize || bits.len() > (n as usize).div_ceil(8) * 8 {
                        return Err(ReadError::Garbage(format!(
                            "asked for {n} bits at {addr}, got {}",
                            bits.len()
                        )));
                    }
                    bits.into_iter().take(n as usize).map(u16::from).collect()
                }
                (_, other) => {
                    return Err(ReadError::Garbage(format!(
                        "answer of the wrong kind: {:?}",
                        other.function_code()
                    )));
                }
            };
            values.extend(part);
        }
        Ok(values)
    }

    /// Reads the identification objects (regular level, else basic). `Ok(None)` when the
    /// device does not support function 43/14.
    async fn identify(&mut self) -> Result<Option<Vec<(u8, String)>>, ReadError> {
        for code in [ReadCode::Regular, ReadCode::Basic] {
            let mut objects = Vec::new();
            let mut next = 0u8;
            let mut unsupported = false;
            for _ in 0..16 {
                match self
                    .request(Request::ReadDeviceIdentification(code, next))
                    .await
                {
                    Ok(Response::ReadDeviceIdentification(r)) => {
                        for o in r.device_id_objects {
                            objects.push((o.id, String::from_utf8_lossy(&o.value).into_owned()));
                        }
                        if !r.more_follows || r.next_object_id <= next {
                            break;
                        }
                        next = r.next_object_id;
                    }
                    Ok(other) => {
                        return Err(ReadError::Garbage(format!(
                            "answer of the wrong kind: {:?}",
                            other.function_code()
                        )));
                    }
                    Err(ReadError::Exception(_)) => {
                        unsupported = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !unsupported {
                objects.sort_by_key(|o| o.0);
                objects.dedup_by_key(|o| o.0);
                return Ok(Some(objects));
            }
        }
        Ok(None)
    }
}

/// The first line of a range's canonical text.
pub const RANGE_MAGIC: &str = "# plcvault modbus range v1";

/// The canonical text of one range: a header naming device, unit, table and range, then
/// `address,value` lines in address order.
///
/// The header's fields come in a fixed order and the label is the rest of the line,
/// escaped (`\\`, `\n`, `\r`, `\u{..}` for other control characters), so no label can
/// forge another field or cut the line. `parse_range_text` reads it back exactly.
pub fn range_text(device: &str, unit: u8, r: &RangeSpec, values: &[u16]) -> Vec<u8> {
    let mut s = String::with_capacity(values.len() * 10 + 200);
    s.push_str(RANGE_MAGIC);
    s.push('\n');
    s.push_str(&format!(
        "# device={device} unit={unit} table={} start={} count={} label={}\n",
        r.table,
        r.start,
        r.count,
        escape_label(&r.label)
    ));
    s.push_str("address,value\n");
    for (i, v) in values.iter().enumerate() {
        s.push_str(&format!("{},{v}\n", r.start as u32 + i as u32));
    }
    s.into_bytes()
}

/// A label as the header holds it: backslash, line breaks and control characters escaped.
pub fn escape_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The label an escaped header value stands for.
///
/// Fails on an escape `escape_label` never writes.
pub fn unescape_label(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('u') => {
                let rest = chars.as_str();
                let code = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .filter(|(hex, _)| (1..=6).contains(&hex.len()))
                    .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok())
                    .and_then(char::from_u32)
                    .ok_or("bad \\u{..} escape in the label")?;
                out.push(code);
                let used = rest.find('}').map_or(rest.len(), |i| i + 1);
                chars = rest[used..].chars();
            }
            _ => return Err("bad escape in the label".into()),
        }
    }
    Ok(out)
}

/// A range's canonical text, read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeText {
    pub device: String,
    pub unit: u8,
    pub table: Table,
    pub start: u16,
    pub label: String,
    /// The values of addresses `start`, `start + 1`, … in order.
    pub values: Vec<u16>,
}

/// Name of an identification object (Modbus spec, table of objects 0x00-0x06).
pub fn object_name(id: u8) -> String {
    match id {
        0 => "vendor_name".into(),
        1 => "product_code".into(),
        2 => "revision".into(),
        3 => "vendor_url".into(),
        4 => "product_name".into(),
        5 => "model_name".into(),
        6 => "user_application_name".into(),
        other => format!("object_0x{other:02x}"),
    }
}

/// The canonical text of the identification.
pub fn identity_text(device: &str, unit: u8, objects: &[(u8, String)]) -> Vec<u8> {
    let mut s = format!(
        "# plcvault modbus identification v1\n# device={device} unit={unit} function=43/14\n"
    );
    for (id, value) in objects {
        s.push_str(&format!(
            "{}={}\n",
            object_name(*id),
            // Escaped as range labels are: a value cannot forge a line, and no two
            // different values read the same.
            escape_label(value)
        ));
    }
    s.into_bytes()
}

/// Collects one Modbus TCP device.
pub struct ModbusCollector {
    opts: ModbusOptions,
}

impl ModbusCollector {
    /// Fails when the settings are invalid.
    pub fn new(opts: ModbusOptions) -> Result<ModbusCollector, AdapterError> {
        opts.validate()?;
        Ok(ModbusCollector { opts })
    }

    fn unreachable(&self, why: String) -> AdapterError {
        AdapterError::Unreachable {
            device: self.opts.device.clone(),
            why,
            fix: format!(
                "check that {} is powered, reachable from this host (firewall, VLAN) and serves Modbus TCP, and that `address` is right",
                self.opts.address
            ),
        }
    }
}

impl Collector for ModbusCollector {
    fn adapter(&self) -> &'static str {
        "modbus"
    }

    fn source(&self) -> String {
        format!("modbus://{} unit {}", self.opts.address, self.opts.unit)
    }

    fn read_functions(&self) -> &'static [&'static str] {
        &[
            "1 read coils",
            "2 read discrete inputs",
            "3 read holding registers",
            "4 read input registers",
            "43/14 read device identification",
        ]
    }

    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        Box::pin(self.collect_now())
    }
}

impl ModbusCollector {
    async fn collect_now(&self) -> Result<Collection, AdapterError> {
        let o = &self.opts;
        let addr = tokio::net::lookup_host(&o.address)
            .await
            .map_err(|e| self.unreachable(format!("cannot resolve {}: {e}", o.address)))?
            .next()
            .ok_or_else(|| self.unreachable(format!("{} resolves to no address", o.address)))?;
        let mut session = Session {
            link: Link::new(addr, o.unit, o.timeout),
            pacer: Pacer::new(o.max_requests_per_second),
            backoff: Backoff::new(o.retries),
            requests: 0,
        };
        // Connect with the same retries as requests: a device that never accepts a
        // connection is unreachable (or timing out), not merely incomplete.
        let mut tries = Tries::new(session.backoff);
        loop {
            session.pacer.wait().await;
            match session.link.connect().await {
                Ok(()) => break,
                Err(e) => {
                    let timed_out = e.starts_with("no connection");
                    if let Err(e) = tries.after(Failed::Retry(e)).await {
                        return Err(if timed_out {
                            AdapterError::Timeout {
                                device: o.device.clone(),
                                why: e,
                                fix: format!(
                                    "check that {} is powered and reachable from this host (firewall, VLAN), or raise `timeout`",
                                    o.address
                                ),
                            }
                        } else {
                            self.unreachable(e)
                        });
                    }
                }
            }
        }
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
        let mut failures = 0u32;
        // A device that stopped answering (every retry timed out or the connection
        // failed) is not asked again in this run: the remaining reads are skipped, not
        // each retried against a controller that may be struggling.
        let mut down: Option<(ReadError, String)> = None;
        let stopped = |e: &ReadError| matches!(e, ReadError::Timeout(_) | ReadError::Transport(_));
        if o.identify {
            match session.identify().await {
                Ok(Some(objects)) => out.artifacts.push(ArtifactSource {
                    name: "identity/device-identification.txt".into(),
                    kind: ArtifactKind::Identity,
                    meta: ArtifactMeta::default(),
                    data: SourceData::Bytes(identity_text(&o.device, o.unit, &objects)),
                    size_hint: None,
                }),
                Ok(None) => out.warnings.push(
                    "the device does not support identification (43/14); no identity artifact"
                        .into(),
                ),
                Err(e) => {
                    failures += 1;
                    out.complete = false;
                    let w = format!("identification not read: {e}");
                    out.warnings.push(w.clone());
                    if stopped(&e) {
                        down = Some((e, w));
                    }
                }
            }
        }
        for r in &o.ranges {
            if let Some((why, _)) = &down {
                failures += 1;
                out.complete = false;
                out.warnings.push(format!(
                    "range {} not read: skipped, the device stopped answering ({why})",
                    r.describe()
                ));
                continue;
            }
            match session.read_range(r).await {
                Ok(values) => out.artifacts.push(ArtifactSource {
                    name: r.artifact_name(),
                    kind: r.kind,
                    meta: ArtifactMeta::default(),
                    data: SourceData::Bytes(range_text(&o.device, o.unit, r, &values)),
                    size_hint: None,
                }),
                Err(e) => {
                    failures += 1;
                    out.complete = false;
                    let w = format!("range {} not read completely: {e}", r.describe());
                    out.warnings.push(w.clone());
                    if stopped(&e) {
                        down = Some((e, w));
                    }
                }
            }
        }
        session.link.drop_connection().await;
        // Nothing read because the device stopped answering: a timeout or an unreachable
        // device, as alerting wants to tell it, not merely "nothing read".
        if out.artifacts.is_empty()
            && let Some((e, first)) = down
        {
            let why = format!(
                "{first} (after {} requests; {} later reads skipped)",
                session.requests,
                failures.saturating_sub(1)
            );
            let fix = format!(
                "check that {} is powered and reachable from this host (firewall, VLAN) and that unit {} answers, or raise `timeout`",
                o.address, o.unit
            );
            return Err(match e {
                ReadError::Timeout(_) => AdapterError::Timeout {
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
        if failures > 0 && out.artifacts.is_empty() {
            out.warnings.push(format!(
                "nothing could be read from {} after {} requests",
                o.address, session.requests
            ));
        }
        Ok(out)
    }
}

/// Registers per write request (function 16).
pub const MAX_WRITE_REGISTERS: u16 = 123;
/// Bits per write request (function 15).
pub const MAX_WRITE_BITS: u16 = 1968;

/// What writing back did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub requests: u64,
    /// Registers and coils written.
    pub written: u64,
    /// Ranges of read-only tables (input registers, discrete inputs) that were not
    /// written; they are compared after the restore instead.
    pub skipped: Vec<String>,
}

/// Writes a snapshot's holding registers and coils back to a device, for restores and
/// drills. A separate type from the collector, and it writes only with the device's
/// `WritePermit` (created from `writable = true`): a collection can never write.
pub struct ModbusWriter {
    opts: ModbusOptions,
}

impl ModbusWriter {
    pub fn new(opts: ModbusOptions) -> ModbusWriter {
        ModbusWriter { opts }
    }

    fn not_permitted(&self) -> AdapterError {
        AdapterError::Config {
            device: self.opts.device.clone(),
            key: "writable".into(),
            why: "the device is not marked `writable = true`; plcvault never writes to it (fix: set writable = true only on a spare PLC or simulator meant for restores and drills)".into(),
        }
    }

    /// Writes `values` of each range (holding: function 16; coils: function 15), paced
    /// like reads, one request at a time, retried like reads on a new connection.
    ///
    /// Fails before any request without a permit for this device; fails when the device
    /// cannot be reached or refuses a write; what was written before stays written (read
    /// back to see the state).
    pub async fn write(
        &self,
        ranges: &[(RangeSpec, Vec<u16>)],
        permit: &WritePermit,
    ) -> Result<WriteReport, AdapterError> {
        let o = &self.opts;
        if permit.device() != o.device {
            return Err(self.not_permitted());
        }
        let fail = |why: String| AdapterError::Unreachable {
            device: o.device.clone(),
            why,
            fix: format!(
                "check that {} is reachable and accepts writes to these addresses",
                o.address
            ),
        };
        let addr = tokio::net::lookup_host(&o.address)
            .await
            .map_err(|e| fail(format!("cannot resolve {}: {e}", o.address)))?
            .next()
            .ok_or_else(|| fail(format!("{} resolves to no address", o.address)))?;
        let mut pacer = Pacer::new(o.max_requests_per_second);
        let backoff = Backoff::new(o.retries);
        let mut link = Link::new(addr, o.unit, o.timeout);
        let mut report = WriteReport::default();
        for (r, values) in ranges {
            if values.len() != r.count as usize {
                return Err(fail(format!(
                    "{}: {} values for {} addresses",
                    r.describe(),
                    values.len(),
                    r.count
                )));
            }
            let max = match r.table {
                Table::Holding => MAX_WRITE_REGISTERS,
                Table::Coils => MAX_WRITE_BITS,
                Table::Input | Table::Discrete => {
                    report.skipped.push(r.describe());
                    continue;
                }
            };
            let mut offset = 0usize;
            while offset < values.len() {
                let n = (values.len() - offset).min(max as usize);
                let start = r.start + offset as u16;
                let part = &values[offset..offset + n];
                let req: Request<'static> = match r.table {
                    Table::Holding => Request::WriteMultipleRegisters(start, part.to_vec().into()),
                    _ => Request::WriteMultipleCoils(
                        start,
                        part.iter().map(|v| *v != 0).collect::<Vec<_>>().into(),
                    ),
                };
                let mut tries = Tries::new(backoff);
                loop {
                    pacer.wait().await;
                    report.requests += 1;
                    match link.call(req.clone()).await {
                        Ok(_) => break,
                        Err(f) => tries.after(f).await.map_err(|e| match e {
                            ReadError::Exception(exc) => AdapterError::Refused {
                                device: o.device.clone(),
                                why: format!(
                                    "{}: the device refused the write at {start} with exception {exc}",
                                    r.describe()
                                ),
                                fix: "check that these addresses are writable on this device"
                                    .into(),
                            },
                            other => fail(format!(
                                "{}: no answer to the write at {start} ({other})",
                                r.describe()
                            )),
                        })?,
                    }
                }
                report.written += n as u64;
                offset += n;
            }
        }
        link.drop_connection().await;
        Ok(report)
    }

    /// Writes the snapshot's register ranges, then reads exactly those ranges back through
    /// the read-only collector and compares them value by value.
    async fn restore_now(
        &self,
        items: &[RestoreItem],
        permit: &WritePermit,
    ) -> Result<DeviceRestore, AdapterError> {
        let o = &self.opts;
        if permit.device() != o.device {
            return Err(self.not_permitted());
        }
        let bad = |why: String| AdapterError::Config {
            device: o.device.clone(),
            key: "snapshot".into(),
            why,
        };
        let mut ranges = Vec::new();
        for a in items {
            if !self.takes(&a.name, a.kind) {
                continue;
            }
            let text = std::str::from_utf8(&a.bytes)
                .map_err(|_| bad(format!("{} is not text", a.name)))?;
            let parsed = parse_range_text(text).map_err(|e| bad(format!("{}: {e}", a.name)))?;
            let spec = RangeSpec {
                table: parsed.table,
                start: parsed.start,
                count: parsed.values.len() as u16,
                kind: a.kind,
                label: String::new(),
            };
            ranges.push((spec, parsed.values));
        }
        if ranges.is_empty() {
            return Err(bad(
                "the snapshot holds no register ranges to restore".into()
            ));
        }
        let t0 = std::time::Instant::now();
        let written = self.write(&ranges, permit).await?;
        let write_ms = t0.elapsed().as_millis() as u64;
        let mut read_opts = o.clone();
        read_opts.identify = false;
        read_opts.ranges = ranges.iter().map(|(r, _)| r.clone()).collect();
        let t1 = std::time::Instant::now();
        let back = ModbusCollector::new(read_opts)?.collect().await?;
        let verify_ms = t1.elapsed().as_millis() as u64;
        let mut failures: Vec<RestoreFailure> = back
            .warnings
            .iter()
            .map(|w| RestoreFailure {
                artifact: String::new(),
                error: format!("read back: {w}"),
            })
            .collect();
        for (r, values) in &ranges {
            let name = r.artifact_name();
            let got = back
                .artifacts
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| match &a.data {
                    SourceData::Bytes(b) => std::str::from_utf8(b)
                        .ok()
                        .and_then(|t| parse_range_text(t).ok()),
                    _ => None,
                });
            let Some(got) = got else {
                failures.push(RestoreFailure {
                    artifact: name,
                    error: "could not be read back".into(),
                });
                continue;
            };
            let diff: Vec<String> = values
                .iter()
                .zip(&got.values)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(5)
                .map(|(i, (a, b))| format!("{}: expected {a}, read {b}", r.start as usize + i))
                .collect();
            if !diff.is_empty() {
                let what = if matches!(r.table, Table::Input | Table::Discrete) {
                    "read-only table differs from the snapshot"
                } else {
                    "read back differs from what was written"
                };
                failures.push(RestoreFailure {
                    artifact: name,
                    error: format!("{what}: {}", diff.join("; ")),
                });
            }
        }
        Ok(DeviceRestore {
            items: ranges.len() as u64,
            written: written.written,
            requests: written.requests,
            compared_only: written.skipped,
            write_ms,
            verify_ms,
            failures,
        })
    }
}

impl Writer for ModbusWriter {
    fn takes(&self, name: &str, kind: ArtifactKind) -> bool {
        name.ends_with(".csv") && kind != ArtifactKind::Identity
    }

    fn restore<'a>(
        &'a self,
        items: &'a [RestoreItem],
        permit: &'a WritePermit,
    ) -> BoxFuture<'a, Result<DeviceRestore, AdapterError>> {
        Box::pin(self.restore_now(items, permit))
    }
}

/// Parses the canonical text of a range (as `range_text` writes it) back into its fields
/// and values: the one parser the collector's writer and the diff share.
///
/// Strict and bounded: the header's fields in their order, every address from `start` on
/// exactly once and in order, `count` values that fit the 65,536 addresses of a table.
///
/// Fails, saying what is wrong, when the text is not such an artifact.
pub fn parse_range_text(text: &str) -> Result<RangeText, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("the text does not end with a newline (cut?)")?;
    let mut lines = body.split('\n');
    if lines.next() != Some(RANGE_MAGIC) {
        return Err("not a plcvault modbus range".into());
    }
    let header = lines.next().ok_or("no header line")?;
    let field = |rest: &str, key: &str| -> Result<(String, String), String> {
        let rest = rest
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .ok_or_else(|| format!("the header has no `{key}=` where it belongs"))?;
        let (value, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        Ok((value.to_string(), rest.to_string()))
    };
    let rest = header
        .strip_prefix("# ")
        .ok_or("the header does not start with `# `")?;
    let (device, rest) = field(rest, "device")?;
    let (unit, rest) = field(&rest, "unit")?;
    let (table, rest) = field(&rest, "table")?;
    let (start, rest) = field(&rest, "start")?;
    let (count, rest) = field(&rest, "count")?;
    let label = rest
        .strip_prefix("label=")
        .ok_or("the header has no `label=` where it belongs")?;
    // Numbers are plain decimal digits (no sign, no spaces), names as the config allows.
    fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
        Some(text)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("bad {what} `{text}`"))
    }
    if device.is_empty()
        || !device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!("bad device name `{device}`"));
    }
    let unit: u8 = number(&unit, "unit")?;
    let table = Table::parse(&table).ok_or_else(|| format!("unknown table `{table}`"))?;
    let start: u16 = number(&start, "start")?;
    let count: u32 = number(&count, "count")?;
    if u64::from(start) + u64::from(count) > 65_536 {
        return Err(format!(
            "start {start} + count {count} is past address 65535"
        ));
    }
    if lines.next() != Some("address,value") {
        return Err("no `address,value` line".into());
    }
    let mut values = Vec::with_capacity(count.min(65_536) as usize);
    for l in lines {
        if values.len() as u32 >= count {
            return Err(format!("more than {count} values"));
        }
        let (a, v) = l.split_once(',').ok_or_else(|| format!("bad line `{l}`"))?;
        let a: u32 = number(a, "address").map_err(|e| format!("{e} in `{l}`"))?;
        let want = u32::from(start) + values.len() as u32;
        if a != want {
            return Err(format!("address {a} is not the next one ({want})"));
        }
        let v: u16 = number(v, "value").map_err(|e| format!("{e} in `{l}`"))?;
        if table.is_bits() && v > 1 {
            return Err(format!("bad line `{l}`"));
        }
        values.push(v);
    }
    if values.len() as u32 != count {
        return Err(format!("{} values for count {count}", values.len()));
    }
    let parsed = RangeText {
        device,
        unit,
        table,
        start,
        label: unescape_label(label)?,
        values,
    };
    // Canonical or nothing: written again, it must be these exact bytes (no leading zeros,
    // no needless escapes), so no two texts read as the same range.
    let spec = RangeSpec {
        table,
        start,
        count: parsed.values.len() as u16,
        kind: ArtifactKind::Values,
        label: parsed.label.clone(),
    };
    if parsed.values.is_empty()
        || range_text(&parsed.device, unit, &spec, &parsed.values) != text.as_bytes()
    {
        return Err("not in canonical form (leading zeros, needless escapes?)".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(table: Table, start: u16, count: u16) -> RangeSpec {
        RangeSpec {
            table,
            start,
            count,
            kind: ArtifactKind::Recipe,
            label: "r".into(),
        }
    }

    #[test]
    fn requests_split_at_protocol_limits() {
        assert_eq!(
            range(Table::Holding, 0, 250).requests(),
            vec![(0, 125), (125, 125)]
        );
        assert_eq!(
            range(Table::Holding, 10, 126).requests(),
            vec![(10, 125), (135, 1)]
        );
        assert_eq!(
            range(Table::Coils, 0, 4001).requests(),
            vec![(0, 2000), (2000, 2000), (4000, 1)]
        );
        assert_eq!(range(Table::Input, 65535, 1).requests(), vec![(65535, 1)]);
        assert_eq!(
            range(Table::Holding, 65411, 125).requests(),
            vec![(65411, 125)]
        );
    }

    fn opts(ranges: Vec<RangeSpec>) -> ModbusOptions {
        ModbusOptions {
            device: "plc".into(),
            address: "127.0.0.1:502".into(),
            unit: 1,
            identify: false,
            timeout: Duration::from_secs(1),
            retries: 1,
            max_requests_per_second: 20.0,
            ranges,
        }
    }

    #[test]
    fn bad_ranges_are_named() {
        let e = opts(vec![range(Table::Holding, 65500, 100)])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("65535") && e.contains("range.count"), "{e}");
        let e = opts(vec![range(Table::Holding, 0, 0)])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("count 0"), "{e}");
        let e = opts(vec![
            range(Table::Holding, 0, 10),
            range(Table::Holding, 9, 5),
        ])
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("overlaps"), "{e}");
        // The same addresses in different tables do not overlap.
        opts(vec![
            range(Table::Holding, 0, 10),
            range(Table::Input, 0, 10),
        ])
        .validate()
        .unwrap();
        assert!(opts(vec![]).validate().is_err());
    }

    #[test]
    fn canonical_text_is_one_line_per_address() {
        let r = range(Table::Holding, 100, 3);
        let t = String::from_utf8(range_text("plc", 1, &r, &[7, 0, 65535])).unwrap();
        assert!(
            t.ends_with("address,value\n100,7\n101,0\n102,65535\n"),
            "{t}"
        );
        assert!(t.contains("table=holding start=100 count=3"));
        assert_eq!(r.artifact_name(), "holding/100-102.csv");
    }

    // Issue 9, case 5: a label with spaces was cut at its first word in the diff, and a
    // label holding `table=coils` overrode the table.
    #[test]
    fn hostile_labels_round_trip_and_forge_nothing() {
        let hostile = [
            "interlocks enabled",
            "x table=coils start=7 count=1",
            " label=y",
            "two\nlines\r\n100,9",
            "back\\slash \\n not a newline",
            "tab\tand nul\0 and bell\u{7} and NEL\u{85}",
            "unicode ümlaut — ✓ \u{202e}rtl",
            "",
            "trailing space ",
            "\\u{41}",
        ];
        for label in hostile {
            let mut r = range(Table::Input, 10, 2);
            r.label = label.to_string();
            let text = String::from_utf8(range_text("plc-1", 3, &r, &[1, 65535])).unwrap();
            assert_eq!(
                text.lines().count(),
                5,
                "one header line for {label:?}:\n{text}"
            );
            let back = parse_range_text(&text).unwrap_or_else(|e| panic!("{label:?}: {e}"));
            assert_eq!(
                back,
                RangeText {
                    device: "plc-1".into(),
                    unit: 3,
                    table: Table::Input,
                    start: 10,
                    label: label.to_string(),
                    values: vec![1, 65535],
                },
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_range_texts_are_refused_not_guessed() {
        let good =
            String::from_utf8(range_text("p", 1, &range(Table::Holding, 0, 2), &[5, 6])).unwrap();
        assert!(parse_range_text(&good).is_ok());
        let bad = [
            good.replace("count=2", "count=18446744073709551615"),
            good.replace("count=2", "count=65537"),
            good.replace("count=2", "count=4294967295"),
            good.replace("start=0 count=2", "start=65535 count=4294967295"),
            good.replace("start=0 count=2", "start=65535 count=2"),
            good.replace("1,6\n", "1,65536\n"),
            good.replace("1,6\n", "2,6\n"),
            good.replace("1,6\n", "1,6\n2,7\n"),
            good.replace("1,6\n", ""),
            good.trim_end().to_string(),
            good.replace("table=holding ", "label=a table=holding "),
            good.replace("label=r", "label=bad\\q"),
            good.replace("label=r", "label=\\u{110000}"),
            good.replace("label=r", "label=\\u{41"),
            good.replace("address,value\n", ""),
            good.replace("# device", "#device"),
            good.replace("unit=1", "unit=256"),
            good.replace("holding", "coilz"),
            good.replace("unit=1", "unit=+1"),
            good.replace("device=p ", "device=p/q "),
            good.replace("1,6\n", "1,+6\n"),
            good.replace("unit=1", "unit=001"),
            good.replace("start=0 ", "start=00 "),
            good.replace("1,6\n", "01,6\n"),
            good.replace("1,6\n", "1,06\n"),
            good.replace("label=r", "label=\\u{72}"),
            String::from_utf8(range_text("p", 1, &range(Table::Coils, 0, 2), &[1, 2])).unwrap(),
            String::new(),
        ];
        for (i, text) in bad.iter().enumerate() {
            assert!(parse_range_text(text).is_err(), "case {i} parsed:\n{text}");
        }
    }
}
