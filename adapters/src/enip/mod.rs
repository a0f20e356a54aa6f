//! The `enip` adapter: Rockwell Logix controllers (ControlLogix, CompactLogix) over
//! EtherNet/IP, read-only: who the controller is (ListIdentity of the Ethernet module and
//! Get_Attribute_All of the controller's Identity object along the route path), its tag
//! directory (Get_Instance_Attribute_List on the Symbol object, controller and program
//! scope) and every tag's value (Read Tag, Read Tag Fragmented), all sent unconnected
//! through the Connection Manager. Nothing else is ever sent (see `READ_FUNCTIONS`); the
//! only write, Write Tag, belongs to the writer, which needs the device's write permit.
//!
//! Artifacts: `identity.txt` (identity view; the status words go into its metadata under
//! `state-` keys, recorded and never compared) and `tags/controller.csv`,
//! `tags/program-NAME.csv` (one line per tag: name, type, dimensions, kind, value; atomic
//! values decoded, structures as hex of their bytes with the template and structure
//! handle), recorded in format `enip-tags` so that the review compares them tag by tag.

pub mod client;
pub mod proto;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;

use std::fmt::Write as _;
use std::time::Duration;

use client::{Endpoint, EnipError, Session, Symbol, Value};
use proto::{DataType, Identity, Segment};

use crate::{
    AdapterError, ArtifactKind, ArtifactMeta, ArtifactSource, BoxFuture, Collection, Collector,
    DeviceRestore, RestoreFailure, RestoreItem, SourceData, WritePermit, Writer,
};

/// What a collection sends, as the README lists it.
pub const READ_FUNCTIONS: &[&str] = &[
    "ListIdentity (0x63)",
    "RegisterSession (0x65)",
    "UnRegisterSession (0x66)",
    "SendRRData (0x6F) with Unconnected Send (0x52) to the Connection Manager",
    "Large Forward Open (0x5B), else Forward Open (0x54): one class 3 explicit-messaging connection to the Message Router (never an I/O connection)",
    "SendUnitData (0x70) on that connection",
    "Forward Close (0x4E)",
    "Get_Attribute_All (0x01) on the Identity object",
    "Get_Instance_Attribute_List (0x55) on the Symbol object",
    "Read Tag (0x4C)",
    "Read Tag Fragmented (0x52)",
    "Multiple Service Packet (0x0A) to the Message Router, holding only Read Tag (0x4C)",
];

/// The largest value read in a Multiple Service Packet with others; larger ones are read
/// on their own.
pub const BATCH_VALUE_LIMIT: usize = 256;

/// The format the tag files are recorded in (the review compares them tag by tag).
pub const TAGS_FORMAT: &str = "enip-tags";
/// The first lines of the artifacts.
pub const TAGS_MAGIC: &str = "# plcvault enip tags v1";
pub const IDENTITY_MAGIC: &str = "# plcvault enip identity v1";

/// The range of `timeout`.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The most tags one collection lists (controller and program scopes together) unless
/// `max-tags` says otherwise, and the most it may say.
pub const DEFAULT_MAX_TAGS: usize = 100_000;
pub const MAX_TAGS: usize = 1_000_000;
/// The largest value one tag may have, and the most value bytes one collection holds.
pub const MAX_TAG_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_DEVICE_BYTES: u64 = 256 * 1024 * 1024;
/// Elements in one read: Read Tag's element count is 16 bits.
pub const MAX_ELEMENTS: u64 = 65_535;

/// A tag named in the config (`tags = ["Recipe[100]", "Program:Main.Speed"]`), read
/// without listing the directory (a controller or gateway without the Symbol object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedTag {
    /// `Recipe` or `Program:Main.Speed`.
    pub name: String,
    /// Elements (1 for a scalar).
    pub elements: u32,
}

impl NamedTag {
    /// Parses `Name`, `Name[N]`, `Program:P.Name[N]`.
    pub fn parse(s: &str) -> Option<NamedTag> {
        let (name, elements) = match s.strip_suffix(']').and_then(|r| r.split_once('[')) {
            Some((n, e)) => (n, e.parse::<u32>().ok().filter(|e| *e > 0)?),
            None => (s, 1),
        };
        let ok = match name.strip_prefix("Program:") {
            Some(rest) => rest
                .split_once('.')
                .is_some_and(|(p, t)| plain_name(p) && plain_name(t)),
            None => plain_name(name),
        };
        ok.then(|| NamedTag {
            name: name.to_string(),
            elements,
        })
    }
}

/// A Logix name: a letter or `_` first, then letters, digits and `_`, at most 40.
pub fn plain_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && s.len() <= 40
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Settings of one EtherNet/IP controller.
#[derive(Clone, Debug)]
pub struct EnipOptions {
    pub device: String,
    /// `host:port` (port 44818 unless given).
    pub address: String,
    pub route: Vec<(u8, u8)>,
    pub timeout: Duration,
    pub retries: u32,
    pub max_requests_per_second: f64,
    /// Tags read by name instead of listing (empty: list the directory).
    pub tags: Vec<NamedTag>,
    /// Program-scope tags too (when listing).
    pub programs: bool,
    pub max_tags: usize,
    /// Tag glob → kind, first match wins; values otherwise.
    pub kinds: Vec<(String, ArtifactKind)>,
    /// Messages over one class 3 connection (`messaging = "connected"`, the default)
    /// and small tags read many to a Multiple Service Packet; `false`: every message
    /// unconnected, one tag per request.
    pub connected: bool,
}

impl EnipOptions {
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
        if self.max_tags == 0 || self.max_tags > MAX_TAGS {
            return Err(bad(
                "max-tags",
                format!("{} is outside 1 to {MAX_TAGS}", self.max_tags),
            ));
        }
        if self.route.len() > 8 {
            return Err(bad("route", "more than 8 hops".into()));
        }
        Ok(())
    }

    /// The kind of a tag by the config's globs (first match), else values.
    pub fn kind_of(&self, tag: &str) -> ArtifactKind {
        self.kinds
            .iter()
            .find(|(g, _)| glob::Pattern::new(g).is_ok_and(|p| p.matches(tag)))
            .map_or(ArtifactKind::Values, |(_, k)| *k)
    }
}

/// Bytes as text that cannot forge a CSV field or a line: printable ASCII kept except
/// `,` `"` `\` `=`, the rest as `\xNN`.
pub fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if (0x20..0x7F).contains(&c) && !b",\"\\=".contains(&c) {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

/// The vendor names a Logix site meets; others by number.
fn vendor_name(v: u16) -> &'static str {
    match v {
        1 => "Rockwell Automation/Allen-Bradley",
        _ => "",
    }
}

fn device_type_name(t: u16) -> &'static str {
    match t {
        0x0C => "Communications Adapter",
        0x0E => "Programmable Logic Controller",
        _ => "",
    }
}

fn numbered(n: u16, name: &str) -> String {
    if name.is_empty() {
        n.to_string()
    } else {
        format!("{n} ({name})")
    }
}

/// The identity lines of one identity, each field prefixed.
fn identity_fields(prefix: &str, id: &Identity, out: &mut Vec<(String, String)>) {
    out.push((
        format!("{prefix}vendor"),
        numbered(id.vendor, vendor_name(id.vendor)),
    ));
    out.push((
        format!("{prefix}device-type"),
        numbered(id.device_type, device_type_name(id.device_type)),
    ));
    out.push((format!("{prefix}product-code"), id.product_code.to_string()));
    out.push((
        format!("{prefix}revision"),
        format!("{}.{:03}", id.revision.0, id.revision.1),
    ));
    out.push((
        format!("{prefix}serial-number"),
        format!("0x{:08x}", id.serial),
    ));
    out.push((format!("{prefix}product-name"), escape(&id.product_name)));
}

/// The key switch and mode in a Logix controller's status word (recorded, never compared).
pub fn status_text(status: u16) -> String {
    let key = match (status >> 12) & 0x03 {
        1 => "RUN",
        2 => "PROGRAM",
        3 => "REMOTE",
        _ => "-",
    };
    let fault = if status & 0x0F00 != 0 { " faulted" } else { "" };
    format!("0x{status:04x} key {key}{fault}")
}

/// `identity.txt`: the magic line, the device, then `field=value` lines.
pub fn identity_text(device: &str, fields: &[(String, String)]) -> Vec<u8> {
    let mut s = format!("{IDENTITY_MAGIC}\n# device={device}\n");
    for (k, v) in fields {
        let _ = writeln!(s, "{k}={v}");
    }
    s.into_bytes()
}

/// One tag as it goes into its scope's file.
#[derive(Clone, Debug, PartialEq)]
pub struct TagRow {
    /// As Logix names it within its scope (`Recipe`).
    pub name: String,
    /// `DINT`, `STRUCT template 0x0123 handle 0x4f2a`, `?` when it could not be read.
    pub type_name: String,
    /// `100`, `10x4`, or empty for a scalar.
    pub dims: String,
    pub kind: ArtifactKind,
    /// The decoded value, or `!not read: ...`.
    pub value: String,
}

/// A tag's canonical name across scopes: `Recipe`, `Program:Main.Speed`.
pub fn qualified(program: Option<&str>, name: &str) -> String {
    match program {
        Some(p) => format!("Program:{p}.{name}"),
        None => name.to_string(),
    }
}

/// The artifact that holds a scope's tags.
pub fn scope_artifact(program: Option<&str>) -> String {
    match program {
        Some(p) => format!("tags/program-{p}.csv"),
        None => "tags/controller.csv".into(),
    }
}

/// A scope's tag file: the magic line, the scope, the header, one line per tag by name.
pub fn tags_csv(program: Option<&str>, rows: &[TagRow]) -> Vec<u8> {
    let mut rows: Vec<&TagRow> = rows.iter().collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut s = format!(
        "{TAGS_MAGIC}\n# scope={}\nname,type,dimensions,kind,value\n",
        program.map_or("controller".to_string(), |p| format!("Program:{p}"))
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            r.name, r.type_name, r.dims, r.kind, r.value
        );
    }
    s.into_bytes()
}

/// One element of an atomic type as text: integers in decimal (bit strings in hex),
/// floats in their shortest exact form (NaN and infinities by their bits).
pub fn atomic_text(code: u16, b: &[u8]) -> String {
    let le = |n: usize| {
        let mut a = [0u8; 8];
        a[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(a)
    };
    match code {
        0xC1 | 0xC6 => b[0].to_string(),
        0xC2 => (b[0] as i8).to_string(),
        0xC3 => (le(2) as u16 as i16).to_string(),
        0xC4 => (le(4) as u32 as i32).to_string(),
        0xC5 => (le(8) as i64).to_string(),
        0xC7..=0xC9 => le(b.len()).to_string(),
        0xCA => {
            let v = f32::from_bits(le(4) as u32);
            if v.is_finite() {
                format!("{v}")
            } else {
                format!("bits:0x{:08x}", le(4))
            }
        }
        0xCB => {
            let v = f64::from_bits(le(8));
            if v.is_finite() {
                format!("{v}")
            } else {
                format!("bits:0x{:016x}", le(8))
            }
        }
        _ => format!("0x{:0w$x}", le(b.len()), w = b.len() * 2),
    }
}

/// A value as the tag file writes it: elements separated by spaces; a structure's bytes
/// in hex, one word per element when they divide evenly.
pub fn value_text(v: &Value, elements: u32) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match v.data_type {
        DataType::Atomic(code) => match proto::atomic(code) {
            Some(a) if v.bytes.len().is_multiple_of(a.size) && !v.bytes.is_empty() => v
                .bytes
                .chunks(a.size)
                .map(|c| atomic_text(code, c))
                .collect::<Vec<_>>()
                .join(" "),
            _ => hex(&v.bytes),
        },
        DataType::Struct(_) => {
            let n = elements.max(1) as usize;
            if n > 1 && v.bytes.len().is_multiple_of(n) {
                v.bytes
                    .chunks(v.bytes.len() / n)
                    .map(hex)
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                hex(&v.bytes)
            }
        }
    }
}

/// The symbolic path of a qualified tag name.
pub fn tag_path(name: &str) -> Vec<Segment> {
    match name
        .strip_prefix("Program:")
        .and_then(|r| r.split_once('.'))
    {
        Some((p, t)) => vec![
            Segment::Symbol(format!("Program:{p}")),
            Segment::Symbol(t.to_string()),
        ],
        None => vec![Segment::Symbol(name.to_string())],
    }
}

/// A user tag of a listing, and the programs it names; `None` for the controller's own
/// entries (system, module, routine, task and map symbols).
fn user_tag(s: &Symbol) -> Option<&str> {
    if s.kind.is_system() || s.name.starts_with("__") || s.name.contains(':') {
        return None;
    }
    Some(&s.name)
}

/// The type column and the element count of a listed symbol.
fn listed_type(s: &Symbol) -> (String, String, u64) {
    let dims: Vec<u32> = s.dims[..s.kind.dims()].to_vec();
    let elements: u64 = dims.iter().map(|d| u64::from(*d)).product();
    let dims_text = dims
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("x");
    let t = if s.kind.is_struct() {
        format!("STRUCT template 0x{:04x}", s.kind.code())
    } else {
        match proto::atomic(s.kind.code()) {
            Some(a) if a.code == 0xC1 && s.kind.bit() != 0 => {
                format!("BOOL bit {}", s.kind.bit())
            }
            Some(a) => a.name.to_string(),
            None => format!("type 0x{:04x}", s.kind.0),
        }
    };
    (t, dims_text, elements.max(1))
}

/// Collects one Logix controller.
pub struct EnipCollector {
    opts: EnipOptions,
}

/// A tag to read: its name in its scope, the type and dimensions the directory gave
/// (empty for a tag named in the config), its elements, and its size when known.
struct Planned {
    name: String,
    listed: String,
    dims: String,
    elements: u64,
    exact: Option<usize>,
    /// The type the directory gave, which every answer must carry: an atomic code, or
    /// a structure (`Some(None)`); `None` for a tag named in the config.
    want: Option<Option<u16>>,
}

impl Planned {
    fn listed(name: &str, s: &Symbol) -> Planned {
        let (listed, dims, elements) = listed_type(s);
        Planned {
            name: name.to_string(),
            listed,
            dims,
            elements,
            exact: exact_size(s, elements),
            want: Some((!s.kind.is_struct()).then(|| s.kind.code())),
        }
    }
}

/// What one scope's reads produced.
struct Scope {
    program: Option<String>,
    rows: Vec<TagRow>,
}

impl EnipCollector {
    /// Fails when the settings are invalid.
    pub fn new(opts: EnipOptions) -> Result<EnipCollector, AdapterError> {
        opts.validate()?;
        Ok(EnipCollector { opts })
    }

    fn unreachable(&self, why: String) -> AdapterError {
        AdapterError::Unreachable {
            device: self.opts.device.clone(),
            why,
            fix: format!(
                "check that {} is powered and reachable from this host (firewall, VLAN) and that it serves EtherNet/IP on TCP 44818",
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
        let ep = Endpoint {
            addr,
            route: o.route.clone(),
            timeout: o.timeout,
            connected: o.connected,
        };
        let mut s = Session::new(ep, o.max_requests_per_second, o.retries);
        s.open().await.map_err(|e| match e {
            EnipError::Timeout(why) => AdapterError::Timeout {
                device: o.device.clone(),
                why,
                fix: format!(
                    "check that {} is powered and reachable, or raise `timeout`",
                    o.address
                ),
            },
            EnipError::Refused { text, .. } => AdapterError::Refused {
                device: o.device.clone(),
                why: text,
                fix: "check that the address is the controller's Ethernet module".into(),
            },
            other => self.unreachable(other.to_string()),
        })?;
        Ok(s)
    }

    /// Reads a tag, after its retries; a controller that stopped answering is reported as
    /// the error, with the session made again for the next tag when it broke.
    async fn read_one(
        &self,
        s: &mut Session,
        name: &str,
        elements: u64,
        exact: Option<usize>,
        room: u64,
    ) -> Result<Value, EnipError> {
        let max = (MAX_TAG_BYTES as u64).min(room) as usize;
        let fragmented = elements > 1 || exact.is_none();
        s.read_tag(&tag_path(name), elements as u16, exact, max, fragmented)
            .await
    }

    async fn collect_now(&self) -> Result<Collection, AdapterError> {
        let o = &self.opts;
        let mut s = self.session().await?;
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
        let mut fields = Vec::new();
        let mut meta = ArtifactMeta::default();
        let mut stalled: Option<EnipError> = None;

        match s.list_identity().await {
            Ok((id, state)) => {
                identity_fields("module-", &id, &mut fields);
                meta.extra
                    .insert("state-module-status".into(), format!("0x{:04x}", id.status));
                if let Some(st) = state {
                    meta.extra
                        .insert("state-module-state".into(), st.to_string());
                }
            }
            Err(e) => {
                out.warnings.push(format!("ListIdentity not answered: {e}"));
                if e.stalled() {
                    stalled = Some(e);
                }
            }
        }
        if stalled.is_none() {
            match s.identity().await {
                Ok(id) => {
                    identity_fields("", &id, &mut fields);
                    meta.extra
                        .insert("state-status".into(), status_text(id.status));
                }
                Err(e) => {
                    out.complete = false;
                    out.warnings
                        .push(format!("the controller's identity not read: {e}"));
                    if e.stalled() {
                        stalled = Some(e);
                    }
                }
            }
        }

        if let Some(why) = s.unconnected_why.as_ref().filter(|w| !w.is_empty()) {
            out.warnings.push(format!(
                "the controller opened no connection ({why}); every message went unconnected, in smaller packets (messaging = \"unconnected\" stops asking)"
            ));
        }
        // What to read: the configured names, or the directory of each scope.
        let mut plan: Vec<(Option<String>, Vec<Planned>)> = Vec::new();
        if stalled.is_none() && !o.tags.is_empty() {
            let mut by_scope: std::collections::BTreeMap<Option<String>, Vec<_>> =
                Default::default();
            for t in &o.tags {
                let (program, local) = match t.name.strip_prefix("Program:") {
                    Some(r) => {
                        let (p, n) = r.split_once('.').expect("checked by NamedTag::parse");
                        (Some(p.to_string()), n.to_string())
                    }
                    None => (None, t.name.clone()),
                };
                let dims = if t.elements > 1 {
                    t.elements.to_string()
                } else {
                    String::new()
                };
                by_scope.entry(program).or_default().push(Planned {
                    name: local,
                    listed: String::new(),
                    dims,
                    elements: u64::from(t.elements),
                    exact: None,
                    want: None,
                });
            }
            plan.extend(by_scope);
        } else if stalled.is_none() {
            let mut total = 0usize;
            let mut programs = Vec::new();
            match s.symbols(None, o.max_tags).await {
                Ok(list) => {
                    total += list.len();
                    let mut tags = Vec::new();
                    for sym in &list {
                        if let Some(p) = sym.name.strip_prefix("Program:") {
                            programs.push(p.to_string());
                        }
                        if let Some(n) = user_tag(sym) {
                            tags.push(Planned::listed(n, sym));
                        }
                    }
                    plan.push((None, tags));
                }
                Err(e) => {
                    out.complete = false;
                    out.warnings
                        .push(format!("the controller's tag directory not read: {e}"));
                    if e.stalled() {
                        stalled = Some(e);
                    }
                }
            }
            programs.sort();
            programs.dedup();
            for p in programs.iter().filter(|_| o.programs) {
                if stalled.is_some() {
                    break;
                }
                match s.symbols(Some(p), o.max_tags.saturating_sub(total)).await {
                    Ok(list) => {
                        total += list.len();
                        let tags = list
                            .iter()
                            .filter_map(|sym| Some(Planned::listed(user_tag(sym)?, sym)))
                            .collect();
                        plan.push((Some(p.clone()), tags));
                    }
                    Err(e) => {
                        out.complete = false;
                        let fix = match &e {
                            EnipError::Refused {
                                status: proto::ST_PATH_UNKNOWN,
                                ..
                            } => {
                                " (if this controller does not serve program-scope tags, set programs = false)"
                            }
                            _ => "",
                        };
                        out.warnings
                            .push(format!("program {p}: its tags not read: {e}{fix}"));
                        if e.stalled() {
                            stalled = Some(e);
                        }
                    }
                }
            }
        }

        // Every tag's value, one transaction each.
        let mut read_bytes = 0u64;
        let mut skipped = 0usize;
        let mut scopes = Vec::new();
        let mut batching = o.connected;
        for (program, tags) in plan {
            let mut rows = Vec::new();
            // Small tags of known size, many to a packet: their values (or refusals).
            let mut early: std::collections::HashMap<usize, Result<Value, EnipError>> =
                Default::default();
            if batching && stalled.is_none() {
                let size = s.message_size();
                let mut batch: Vec<(usize, client::BatchRead)> = Vec::new();
                // A packet's request and its reply, as they grow (headers, offsets, the
                // embedded requests and replies); each stays 16 bytes within the size.
                let (empty_req, empty_reply) = (proto::multiple_size(std::iter::empty()), 6);
                let (mut req_bytes, mut reply_bytes) = (empty_req, empty_reply);
                let mut batches = Vec::new();
                for (i, t) in tags.iter().enumerate() {
                    let Some(exact) = t.exact else { continue };
                    let path = tag_path(&qualified(program.as_deref(), &t.name));
                    // The embedded Read Tag (service, path size, path, element count) and
                    // its reply (header, type, value), each with its offset.
                    let rq = 2 + proto::epath(&path).len() + 2 + 2;
                    let rp = 4 + 2 + exact + 2;
                    // Large values go on their own (Read Tag Fragmented).
                    if t.elements > u64::from(u16::MAX) || exact > BATCH_VALUE_LIMIT {
                        continue;
                    }
                    if req_bytes + rq + 16 > size || reply_bytes + rp + 16 > size {
                        batches.push(std::mem::take(&mut batch));
                        (req_bytes, reply_bytes) = (empty_req, empty_reply);
                    }
                    req_bytes += rq;
                    reply_bytes += rp;
                    batch.push((i, (path, t.elements as u16, exact)));
                }
                batches.push(batch);
                for b in batches.into_iter().filter(|b| b.len() > 1) {
                    let reads: Vec<_> = b.iter().map(|(_, r)| r.clone()).collect();
                    match s.read_many(&reads).await {
                        Ok(values) => {
                            for ((i, _), v) in b.iter().zip(values) {
                                // Too large for one reply after all: on its own below.
                                if !matches!(
                                    v,
                                    Err(EnipError::Refused {
                                        status: 0x06 | 0x11,
                                        ..
                                    })
                                ) {
                                    early.insert(*i, v);
                                }
                            }
                        }
                        Err(EnipError::Refused { text, .. }) => {
                            // No Multiple Service Packet here: one tag per request.
                            out.warnings.push(format!(
                                "the controller refused a Multiple Service Packet ({text}); tags read one per request"
                            ));
                            batching = false;
                            break;
                        }
                        Err(e) => {
                            if e.stalled() {
                                stalled = Some(e);
                                break;
                            }
                            // Read again one by one below, which reports what fails.
                        }
                    }
                }
            }
            for (
                i,
                Planned {
                    name,
                    listed,
                    dims,
                    elements,
                    exact,
                    want,
                },
            ) in tags.into_iter().enumerate()
            {
                let full = qualified(program.as_deref(), &name);
                let kind = o.kind_of(&full);
                let row = |type_name: String, value: String| TagRow {
                    name: name.clone(),
                    type_name,
                    dims: dims.clone(),
                    kind,
                    value,
                };
                if stalled.is_some() {
                    skipped += 1;
                    continue;
                }
                if elements > MAX_ELEMENTS {
                    out.complete = false;
                    out.warnings.push(format!(
                        "{full}: {elements} elements, more than one read holds ({MAX_ELEMENTS}); not read"
                    ));
                    rows.push(row(listed, "!not read: too many elements".into()));
                    continue;
                }
                let room = MAX_DEVICE_BYTES.saturating_sub(read_bytes);
                let read = match early.remove(&i) {
                    Some(v) => v,
                    None => self.read_one(&mut s, &full, elements, exact, room).await,
                };
                // An answer of another type than the directory's is not this tag's value.
                let read = match (read, want) {
                    (Ok(v), Some(w))
                        if match (v.data_type, w) {
                            (DataType::Atomic(c), Some(l)) => c != l,
                            (DataType::Struct(_), None) => false,
                            _ => true,
                        } =>
                    {
                        Err(EnipError::Garbage(format!(
                            "an answer of type {} for a tag the directory lists as {listed}",
                            match v.data_type {
                                DataType::Atomic(c) => proto::atomic(c)
                                    .map_or(format!("0x{c:04x}"), |a| a.name.to_string()),
                                DataType::Struct(h) => format!("STRUCT handle 0x{h:04x}"),
                            }
                        )))
                    }
                    (r, _) => r,
                };
                match read {
                    Ok(v) => {
                        read_bytes += v.bytes.len() as u64;
                        let type_name = match v.data_type {
                            DataType::Struct(h) if listed.starts_with("STRUCT") => {
                                format!("{listed} handle 0x{h:04x}")
                            }
                            DataType::Struct(h) => format!("STRUCT handle 0x{h:04x}"),
                            DataType::Atomic(c) if listed.is_empty() => proto::atomic(c)
                                .map_or(format!("type 0x{c:04x}"), |a| a.name.to_string()),
                            DataType::Atomic(_) => listed,
                        };
                        rows.push(row(type_name, value_text(&v, elements as u32)));
                    }
                    Err(EnipError::Refused { text, .. }) => {
                        // The controller's answer (no such tag, no external access):
                        // recorded, so that a change of it shows.
                        out.warnings.push(format!("{full} not read: {text}"));
                        rows.push(row(
                            if listed.is_empty() {
                                "?".into()
                            } else {
                                listed
                            },
                            format!("!not read: {}", escape(text.as_bytes())),
                        ));
                    }
                    Err(e) => {
                        out.complete = false;
                        out.warnings.push(format!("{full} not read: {e}"));
                        rows.push(row(
                            if listed.is_empty() {
                                "?".into()
                            } else {
                                listed
                            },
                            "!not read: no valid answer".into(),
                        ));
                        if e.stalled() {
                            stalled = Some(e);
                        }
                    }
                }
            }
            scopes.push(Scope { program, rows });
        }
        s.close().await;

        if let Some(e) = &stalled {
            out.complete = false;
            if skipped > 0 {
                out.warnings.push(format!(
                    "{skipped} later reads skipped: the controller stopped answering"
                ));
            }
            // The module answering for a controller that does not is not a collection.
            let controller = fields.iter().any(|(k, _)| k == "vendor");
            if !controller && scopes.iter().all(|sc| sc.rows.is_empty()) {
                return Err(AdapterError::Timeout {
                    device: o.device.clone(),
                    why: format!("{e} (after {} requests)", s.requests),
                    fix: format!(
                        "check that {} is powered and reachable, or raise `timeout`",
                        o.address
                    ),
                });
            }
        }
        out.artifacts.push(ArtifactSource {
            name: "identity.txt".into(),
            kind: ArtifactKind::Identity,
            meta,
            size_hint: None,
            data: SourceData::Bytes(identity_text(&o.device, &fields)),
        });
        for sc in scopes {
            let mut meta = ArtifactMeta::default();
            meta.extra.insert("format".into(), TAGS_FORMAT.into());
            let bytes = tags_csv(sc.program.as_deref(), &sc.rows);
            out.artifacts.push(ArtifactSource {
                name: scope_artifact(sc.program.as_deref()),
                kind: ArtifactKind::Values,
                meta,
                size_hint: Some(bytes.len() as u64),
                data: SourceData::Bytes(bytes),
            });
        }
        Ok(out)
    }
}

/// The bytes a listed atomic tag's value has (elements times its size); structures are
/// bounded, not known, without their template.
fn exact_size(s: &Symbol, elements: u64) -> Option<usize> {
    if s.kind.is_struct() {
        return None;
    }
    let a = proto::atomic(s.kind.code())?;
    usize::try_from(elements).ok()?.checked_mul(a.size)
}

impl Collector for EnipCollector {
    fn adapter(&self) -> &'static str {
        "enip"
    }
    fn source(&self) -> String {
        if self.opts.route.is_empty() {
            format!("enip://{}", self.opts.address)
        } else {
            format!(
                "enip://{} (route {})",
                self.opts.address,
                client::route_text(&self.opts.route)
            )
        }
    }
    fn read_functions(&self) -> &'static [&'static str] {
        READ_FUNCTIONS
    }
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        Box::pin(self.collect_now())
    }
}

/// A tag as a snapshot's file holds it, ready to write back.
#[derive(Clone, Debug, PartialEq)]
pub struct Writable {
    pub name: String,
    pub value: Value,
    pub elements: u16,
}

/// Parses a value column back into bytes for the type column; `None` for what cannot be
/// written (unread, unknown type).
pub fn parse_value(type_name: &str, dims: &str, value: &str) -> Option<(Value, u16)> {
    if value.starts_with('!') {
        return None;
    }
    let elements: u32 = if dims.is_empty() {
        1
    } else {
        dims.split('x')
            .map(|d| d.parse::<u32>().ok())
            .try_fold(1u32, |a, d| a.checked_mul(d?))?
    };
    let elements = u16::try_from(elements).ok()?;
    if let Some(rest) = type_name.strip_prefix("STRUCT") {
        let handle = rest.split("handle 0x").nth(1)?;
        let handle = u16::from_str_radix(handle.trim(), 16).ok()?;
        let hex: String = value.split(' ').collect();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        return Some((
            Value {
                data_type: DataType::Struct(handle),
                bytes,
            },
            elements,
        ));
    }
    let a = proto::atomic_named(type_name.split(' ').next()?)?;
    let mut bytes = Vec::new();
    for v in value.split(' ') {
        let le: Vec<u8> = match a.code {
            0xCA => {
                let x = match v.strip_prefix("bits:0x") {
                    Some(h) => f32::from_bits(u32::from_str_radix(h, 16).ok()?),
                    None => v.parse::<f32>().ok()?,
                };
                x.to_le_bytes().to_vec()
            }
            0xCB => {
                let x = match v.strip_prefix("bits:0x") {
                    Some(h) => f64::from_bits(u64::from_str_radix(h, 16).ok()?),
                    None => v.parse::<f64>().ok()?,
                };
                x.to_le_bytes().to_vec()
            }
            _ => {
                let n: i128 = match v.strip_prefix("0x") {
                    Some(h) => i128::from_str_radix(h, 16).ok()?,
                    None => v.parse().ok()?,
                };
                n.to_le_bytes()[..a.size].to_vec()
            }
        };
        bytes.extend_from_slice(&le);
    }
    (bytes.len() == a.size * usize::from(elements)).then_some((
        Value {
            data_type: DataType::Atomic(a.code),
            bytes,
        },
        elements,
    ))
}

/// The tags of a scope file that can be written back, and the lines that cannot.
pub fn writable_tags(name: &str, text: &str) -> (Vec<Writable>, Vec<String>) {
    let program = name
        .strip_prefix("tags/program-")
        .and_then(|r| r.strip_suffix(".csv"));
    let (mut ok, mut not) = (Vec::new(), Vec::new());
    for line in text.lines().skip_while(|l| l.starts_with('#')).skip(1) {
        let parts: Vec<&str> = line.splitn(5, ',').collect();
        let [tag, t, dims, _kind, value] = parts[..] else {
            not.push(line.to_string());
            continue;
        };
        match parse_value(t, dims, value) {
            Some((value, elements)) => ok.push(Writable {
                name: qualified(program, tag),
                value,
                elements,
            }),
            None => not.push(qualified(program, tag)),
        }
    }
    (ok, not)
}

/// Writes tag values back with Write Tag, for restores and drills onto a writable
/// controller (or simulator), then reads them back and compares.
pub struct EnipWriter {
    opts: EnipOptions,
}

impl EnipWriter {
    pub fn new(opts: EnipOptions) -> EnipWriter {
        EnipWriter { opts }
    }

    async fn restore_now(
        &self,
        items: &[RestoreItem],
        permit: &WritePermit,
    ) -> Result<DeviceRestore, AdapterError> {
        let o = &self.opts;
        permit.check(&o.device)?;
        let mut tags = Vec::new();
        let mut r = DeviceRestore::default();
        for a in items.iter().filter(|a| a.name.starts_with("tags/")) {
            let text = String::from_utf8_lossy(&a.bytes);
            let (ok, not) = writable_tags(&a.name, &text);
            tags.extend(ok.into_iter().map(|w| (a.name.clone(), w)));
            r.compared_only.extend(not);
        }
        if tags.is_empty() {
            return Err(AdapterError::Config {
                device: o.device.clone(),
                key: "snapshot".into(),
                why: "the snapshot holds no tag values (tags/*.csv) to restore".into(),
            });
        }
        let collector = EnipCollector::new(o.clone())?;
        let mut s = collector.session().await?;
        let t0 = std::time::Instant::now();
        for (artifact, w) in &tags {
            match s.write_tag(&tag_path(&w.name), &w.value, w.elements).await {
                Ok(()) => {
                    r.items += 1;
                    r.written += w.value.bytes.len() as u64;
                }
                Err(e) => r.failures.push(RestoreFailure {
                    artifact: artifact.clone(),
                    error: format!("{}: write: {e}", w.name),
                }),
            }
        }
        r.write_ms = t0.elapsed().as_millis() as u64;
        let t1 = std::time::Instant::now();
        for (artifact, w) in &tags {
            if r.failures
                .iter()
                .any(|f| f.error.starts_with(&format!("{}:", w.name)))
            {
                continue;
            }
            let exact = Some(w.value.bytes.len());
            match s
                .read_tag(
                    &tag_path(&w.name),
                    w.elements,
                    exact,
                    MAX_TAG_BYTES,
                    w.elements > 1 || matches!(w.value.data_type, DataType::Struct(_)),
                )
                .await
            {
                Ok(back) if back == w.value => {}
                Ok(_) => r.failures.push(RestoreFailure {
                    artifact: artifact.clone(),
                    error: format!("{}: read back differs", w.name),
                }),
                Err(e) => r.failures.push(RestoreFailure {
                    artifact: artifact.clone(),
                    error: format!("{}: read back: {e}", w.name),
                }),
            }
        }
        r.verify_ms = t1.elapsed().as_millis() as u64;
        r.requests = s.requests;
        s.close().await;
        Ok(r)
    }
}

impl Writer for EnipWriter {
    fn takes(&self, name: &str, _kind: ArtifactKind) -> bool {
        name.starts_with("tags/") && name.ends_with(".csv")
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
    fn named_tags_parse_and_reject_what_logix_would_not_name() {
        assert_eq!(
            NamedTag::parse("Recipe[100]"),
            Some(NamedTag {
                name: "Recipe".into(),
                elements: 100
            })
        );
        assert_eq!(
            NamedTag::parse("Program:Main.Speed").map(|t| t.elements),
            Some(1)
        );
        for bad in [
            "",
            "1abc",
            "a b",
            "Recipe[0]",
            "Recipe[x]",
            "Program:Main",
            "a,b",
        ] {
            assert_eq!(NamedTag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn values_are_exact_text_and_parse_back_to_the_same_bytes() {
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            (
                "DINT",
                "3",
                [-1i32, 7, 1 << 30]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            (
                "REAL",
                "3",
                [1.5f32, -0.0, 1e-7]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
            ("REAL", "", f32::NAN.to_le_bytes().to_vec()),
            ("LREAL", "", 0.1f64.to_le_bytes().to_vec()),
            ("SINT", "2", vec![0x80, 0x7F]),
            ("DWORD", "", vec![1, 2, 3, 0xFF]),
            ("ULINT", "", u64::MAX.to_le_bytes().to_vec()),
        ];
        for (t, dims, bytes) in cases {
            let a = proto::atomic_named(t).unwrap();
            let v = Value {
                data_type: DataType::Atomic(a.code),
                bytes: bytes.clone(),
            };
            let n = (bytes.len() / a.size) as u32;
            let text = value_text(&v, n);
            let (back, elements) =
                parse_value(t, dims, &text).unwrap_or_else(|| panic!("{t} {text}"));
            assert_eq!(back.bytes, bytes, "{t}: {text}");
            assert_eq!(u32::from(elements), n);
        }
        let s = Value {
            data_type: DataType::Struct(0x4F2A),
            bytes: vec![1, 2, 3, 4],
        };
        assert_eq!(value_text(&s, 2), "0102 0304");
        let (back, _) =
            parse_value("STRUCT template 0x0123 handle 0x4f2a", "2", "0102 0304").unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn device_text_cannot_forge_a_column_or_a_line() {
        assert_eq!(escape(b"1756-L61,\n=x"), "1756-L61\\x2c\\x0a\\x3dx");
    }
}
