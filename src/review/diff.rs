//! Comparison of a device's state with its approved baseline (or any two snapshots):
//! which artifacts were added, removed or changed, and inside a changed artifact the
//! view that fits it — registers as address, old, new; text as a unified diff; binary as
//! sizes, changed byte ranges and hashes; identification as field, old, new. Every finding
//! has a class and a severity. The rules (volatile ranges, severities, shrink limit) are
//! those recorded in the baseline's approval, never the config's directly.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::config::rules::{
    Class, Rules, Severity, Volatile, default_severity, parse_volatile,
};
use vault::manifest::ArtifactStatus;
use vault::{ArtifactEntry, ArtifactKind, Hash, Manifest};

/// One register (or bit) that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegisterChange {
    pub address: u32,
    pub old: Option<u16>,
    pub new: Option<u16>,
}

/// One identification field that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The view of a change that fits the artifact.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "view", rename_all = "kebab-case")]
pub enum View {
    None,
    Registers {
        table: String,
        label: String,
        changes: Vec<RegisterChange>,
    },
    Text {
        /// Unified hunks (`@@` headers and ` `, `-`, `+` lines; no file header, so every
        /// line's first character is its kind), at most `MAX_VIEW_LINES` lines.
        diff: String,
        /// Lines added and removed in the whole diff.
        added: usize,
        removed: usize,
        /// Set when the diff was cut or hit its time limit.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Binary {
        old_size: u64,
        new_size: u64,
        old_sha256: Hash,
        new_sha256: Hash,
        /// Changed byte ranges `[start, end)` in the new content.
        ranges: Vec<[u64; 2]>,
        /// Whether ranges are exact (both read) or chunk-granular (large artifacts).
        exact: bool,
        /// Set when the ranges were cut, or a text was too large for a line diff.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Identity {
        fields: Vec<FieldChange>,
    },
    /// One addressed item of a project export (a rung, an ST line, a tag's value), old
    /// and new.
    Item {
        address: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        old: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        new: Option<String>,
    },
}

/// One difference from the approved state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiffFinding {
    pub device: String,
    /// The artifact, or empty for the whole snapshot.
    pub artifact: String,
    /// `added`, `removed`, `changed`, `metadata`, `shrank`, `unstable`, `incomplete`,
    /// `no-baseline`.
    pub change: String,
    pub class: Class,
    pub severity: Severity,
    pub summary: String,
    #[serde(flatten)]
    pub view: View,
}

/// Every artifact's status in a comparison.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArtifactStatusLine {
    pub device: String,
    pub artifact: String,
    /// `added`, `removed`, `changed`, `unchanged`, `volatile`.
    pub status: String,
}

/// What a comparison found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    pub findings: Vec<DiffFinding>,
    pub artifacts: Vec<ArtifactStatusLine>,
}

impl Comparison {
    /// Findings at warning or above: drift that fails the run.
    pub fn drift(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity >= Severity::Warning)
    }
}

/// Reads an artifact's content for a view (bounded; `None` when too large or unreadable).
pub type Reader<'a> = dyn Fn(&ArtifactEntry) -> Option<Vec<u8>> + 'a;

/// Contents of a live read by artifact name (`None` when too large to hold for a view).
pub type LiveData = std::collections::HashMap<String, Option<Vec<u8>>>;

/// Contents up to this size are read for exact views.
pub const VIEW_LIMIT: u64 = 8 * 1024 * 1024;

/// Project exports the review reads by address (L5X, PLCopen, TwinCAT, Siemens sources)
/// are read up to this size: a whole controller's L5X is tens of MiB.
pub const STRUCTURED_LIMIT: u64 = 64 * 1024 * 1024;

/// How much of an artifact a view reads: [`STRUCTURED_LIMIT`] for an export the collector
/// recorded in a format the review reads by address, else [`VIEW_LIMIT`].
pub fn view_limit(a: &ArtifactEntry) -> u64 {
    match a.meta.extra.get(crate::review::formats::FORMAT_KEY) {
        Some(f) if crate::review::formats::parser(f).is_some() => STRUCTURED_LIMIT,
        _ => VIEW_LIMIT,
    }
}

/// Compares `new` with `old` under `rules`. `read_old` and `read_new` fetch contents for
/// the views.
pub fn compare(
    device: &str,
    old: &Manifest,
    new: &Manifest,
    rules: &Rules,
    read_old: &Reader,
    read_new: &Reader,
) -> Comparison {
    let volatile: Vec<Volatile> = rules
        .volatile
        .iter()
        .filter_map(|r| parse_volatile(r).ok())
        .collect();
    // The view comes from what the collector recorded (the adapter), never from the bytes:
    // a workstation file that starts like register text is still a file.
    let adapter = (old.adapter == new.adapter).then_some(old.adapter.as_str());
    let file_volatile = |name: &str| {
        volatile
            .iter()
            .any(|v| matches!(v, Volatile::Files(p) if p.matches(name)))
    };
    let sev = |c: Class| {
        rules
            .severity
            .get(&c)
            .copied()
            .unwrap_or(default_severity(c))
    };
    let a: BTreeMap<&str, &ArtifactEntry> =
        old.artifacts.iter().map(|x| (x.name.as_str(), x)).collect();
    let b: BTreeMap<&str, &ArtifactEntry> =
        new.artifacts.iter().map(|x| (x.name.as_str(), x)).collect();
    let mut out = Comparison::default();
    let mut finding = |artifact: &str, change: &str, class: Class, summary: String, view: View| {
        out.findings.push(DiffFinding {
            device: device.to_string(),
            artifact: artifact.to_string(),
            change: change.to_string(),
            class,
            severity: sev(class),
            summary,
            view,
        });
    };
    // The class of a change is the gravest of the kinds the artifact has in the baseline,
    // in the new snapshot, and under the approved kind rules (for a files device, then by
    // extension): a config edit may raise a class, never lower one.
    let kind_rules: Vec<(glob::Pattern, ArtifactKind)> = rules
        .kinds
        .iter()
        .filter_map(|(g, k)| glob::Pattern::new(g).ok().map(|p| (p, *k)))
        .collect();
    let files = adapters::registry::files_by_name(&new.adapter);
    let class_of = |name: &str, kinds: &[ArtifactKind]| -> Class {
        let approved = kind_rules
            .iter()
            .find(|(p, _)| p.matches_with(name, adapters::files::MATCH))
            .map(|(_, k)| *k)
            .or_else(|| files.then(|| adapters::files::default_kind(name)));
        kinds
            .iter()
            .copied()
            .chain(approved)
            .map(Class::of)
            .max_by_key(|c| (sev(*c), *c == Class::Logic))
            .unwrap_or(Class::Config)
    };
    let mut statuses = Vec::new();
    if !new.complete {
        finding(
            "",
            "incomplete",
            Class::Suspect,
            format!(
                "the collection was incomplete: {}",
                if new.warnings.is_empty() {
                    "see the snapshot's warnings".to_string()
                } else {
                    new.warnings.join("; ")
                }
            ),
            View::None,
        );
    }
    let names: std::collections::BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    for name in names {
        let status = |s: &str| ArtifactStatusLine {
            device: device.to_string(),
            artifact: name.to_string(),
            status: s.to_string(),
        };
        // Volatile globs cover content changes of what existed at approval; an artifact
        // added or removed is always a finding.
        if file_volatile(name) && a.contains_key(name) && b.contains_key(name) {
            statuses.push(status("volatile"));
            continue;
        }
        match (a.get(name), b.get(name)) {
            (None, Some(n)) => {
                statuses.push(status("added"));
                finding(
                    name,
                    "added",
                    class_of(name, &[n.kind]),
                    format!("{name} was added ({})", crate::output::human_bytes(n.size)),
                    View::None,
                );
            }
            (Some(o), None) => {
                statuses.push(status("removed"));
                finding(
                    name,
                    "removed",
                    Class::Suspect,
                    format!(
                        "{name} vanished (it was {}, {} in the baseline)",
                        crate::output::human_bytes(o.size),
                        o.kind
                    ),
                    View::None,
                );
            }
            (Some(o), Some(n)) => {
                if n.status == ArtifactStatus::Unstable {
                    finding(
                        name,
                        "unstable",
                        Class::Suspect,
                        format!("{name} kept changing while it was read"),
                        View::None,
                    );
                }
                if o.sha256 == n.sha256 {
                    if !meta_change(o, n).is_empty() {
                        statuses.push(status("changed"));
                        finding(
                            name,
                            "metadata",
                            Class::Metadata,
                            format!(
                                "{name}: same content, metadata changed ({})",
                                meta_change(o, n)
                            ),
                            View::None,
                        );
                    } else {
                        statuses.push(status("unchanged"));
                    }
                    continue;
                }
                // A project export both sides recorded as such: changes by address.
                let remark = match structured(o, n, read_old, read_new) {
                    Structured::No => None,
                    Structured::Fallback(why) => Some(why),
                    Structured::Items(items) => {
                        // Value changes of controller tags an approved `tag:` rule
                        // names are expected; anything else about them is not.
                        let items: Vec<_> = items
                            .into_iter()
                            .filter(|c| !tag_volatile(c, &volatile))
                            .collect();
                        if items.is_empty() {
                            statuses.push(status("volatile"));
                            continue;
                        }
                        statuses.push(status("changed"));
                        let base = class_of(name, &[o.kind, n.kind]);
                        for c in items {
                            let class = match c.what {
                                "cosmetic" => Class::Cosmetic,
                                "comment" => Class::Comment,
                                // What no item reads, or a part the reader knows only
                                // by its content: logic until a reviewer says otherwise.
                                _ if matches!(c.kind, "unread" | "other") => Class::Logic,
                                _ if crate::review::formats::enip::recorded_kind(c.kind)
                                    .is_some() =>
                                {
                                    enip_class(&c, base, &sev)
                                }
                                _ => match c.kind {
                                    "routine" | "aoi" | "datatype" | "pou" | "gvl" | "dut"
                                    | "globals" | "interface" | "method" | "property"
                                    | "action" | "transition" | "accessor" | "declaration"
                                    | "implementation" | "block" | "code" => Class::Logic,
                                    "tag" if c.address.ends_with("/ value") => {
                                        if base == Class::Recipe {
                                            Class::Recipe
                                        } else {
                                            Class::Values
                                        }
                                    }
                                    "program" | "tag" | "module" | "task" | "controller"
                                    | "file" => Class::Config,
                                    _ => base,
                                },
                            };
                            let summary = format!(
                                "{name}: {} {}{}",
                                c.address,
                                match c.what {
                                    "opaque" => {
                                        "opaque: hash changed (source-protected or encoded)"
                                    }
                                    // The class says comment; the address often does too.
                                    "comment" => "changed",
                                    w => w,
                                },
                                if c.context {
                                    " (a dependency the export carries, Use=\"Context\")"
                                } else {
                                    ""
                                }
                            );
                            finding(
                                name,
                                c.what,
                                class,
                                summary,
                                View::Item {
                                    address: c.address,
                                    old: c.old,
                                    new: c.new,
                                },
                            );
                        }
                        continue;
                    }
                };
                let view = view_of(o, n, read_old, read_new, &volatile, adapter);
                if let View::Registers { changes, .. } = &view
                    && changes.is_empty()
                {
                    // Every difference is in an approved volatile range.
                    statuses.push(status("volatile"));
                    continue;
                }
                statuses.push(status("changed"));
                if o.size > 0 && (n.size as f64) < o.size as f64 * (1.0 - rules.shrink_limit) {
                    finding(
                        name,
                        "shrank",
                        Class::Suspect,
                        format!(
                            "{name} shrank from {} to {} (more than {:.0}%)",
                            crate::output::human_bytes(o.size),
                            crate::output::human_bytes(n.size),
                            rules.shrink_limit * 100.0
                        ),
                        View::None,
                    );
                }
                let mut summary = summarize(name, n.kind, &view);
                // A project export (a program) that cannot be read by address is still
                // a program: logic, whatever its extension says.
                let class = if remark.is_some() {
                    summary.push_str(&format!(
                        "; not compared by address: {}",
                        remark.as_deref().unwrap_or("")
                    ));
                    Class::Logic
                } else {
                    class_of(name, &[o.kind, n.kind])
                };
                finding(name, "changed", class, summary, view);
            }
            (None, None) => {}
        }
    }
    out.artifacts = statuses;
    out
}

/// Whether an approved `tag:GLOB` rule masks a controller tag's value change.
fn tag_volatile(c: &crate::review::formats::Change, volatile: &[Volatile]) -> bool {
    if c.what != "changed" || crate::review::formats::enip::recorded_kind(c.kind).is_none() {
        return false;
    }
    if let Some((path, value)) = crate::review::formats::opcua::node_of(&c.address) {
        return value
            && volatile
                .iter()
                .any(|v| matches!(v, Volatile::Nodes(p) if p.matches(&path)));
    }
    match crate::review::formats::enip::tag_of(&c.address) {
        Some((tag, true)) => volatile
            .iter()
            .any(|v| matches!(v, Volatile::Tags(p) if p.matches(&tag))),
        _ => false,
    }
}

/// The class of a change to a controller tag or an OPC UA node: its value takes the graver of the kind the
/// collector recorded for the tag and the artifact's class; a tag added, removed, retyped,
/// resized or given another kind is a configuration change (a download did it).
fn enip_class(
    c: &crate::review::formats::Change,
    base: Class,
    sev: &dyn Fn(Class) -> Severity,
) -> Class {
    let value = crate::review::formats::enip::tag_of(&c.address)
        .or_else(|| crate::review::formats::opcua::node_of(&c.address))
        .is_some_and(|(_, v)| v);
    if c.what != "changed" || !value {
        return Class::Config;
    }
    let recorded = crate::review::formats::enip::recorded_kind(c.kind)
        .and_then(|k| k.parse::<ArtifactKind>().ok())
        .map(Class::of)
        .unwrap_or(Class::Values);
    [recorded, base]
        .into_iter()
        .max_by_key(|c| sev(*c))
        .unwrap_or(recorded)
}

/// What the review makes of a changed artifact the collector recorded as a project export.
enum Structured {
    /// Not an export (or not recorded as one): the byte or text view, no remark.
    No,
    /// An export that cannot be read by address: the byte or text view, and why.
    Fallback(String),
    /// The item changes, by address.
    Items(Vec<crate::review::formats::Change>),
}

/// The item changes of a project export both snapshots recorded in a format the review
/// reads by address, when both parse. Bytes that differ with no item changed are one
/// cosmetic change (formatting), so that a changed file never reads as unchanged.
fn structured(
    o: &ArtifactEntry,
    n: &ArtifactEntry,
    read_old: &Reader,
    read_new: &Reader,
) -> Structured {
    use crate::review::formats::{self, FORMAT_KEY};
    let format = |a: &ArtifactEntry| a.meta.extra.get(FORMAT_KEY).cloned();
    let (fo, fn_) = (format(o), format(n));
    let Some(f) = fn_.clone().or(fo.clone()) else {
        return Structured::No;
    };
    if f == "binary-project" {
        return Structured::Fallback(
            "a binary project: export needed for a structured diff (L5X, PLCopen XML, TwinCAT or Siemens sources)".into(),
        );
    }
    let Some(parse) = formats::parser(&f) else {
        return Structured::No;
    };
    let name = formats::format_name(&f);
    if fo != fn_ {
        return Structured::Fallback(format!(
            "recorded as {} before and as {} now",
            fo.as_deref()
                .map(formats::format_name)
                .unwrap_or("plain content"),
            fn_.as_deref()
                .map(formats::format_name)
                .unwrap_or("plain content"),
        ));
    }
    if o.size > STRUCTURED_LIMIT || n.size > STRUCTURED_LIMIT {
        return Structured::Fallback(format!(
            "over {} (read by address up to that size)",
            crate::output::human_bytes(STRUCTURED_LIMIT)
        ));
    }
    // One side at a time, its bytes dropped once parsed: the peak is one file, its
    // parse tree and the two item lists.
    let side = |a: &ArtifactEntry, read: &Reader, which: &str| {
        let bytes = read(a).ok_or("the content could not be read back from the vault")?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| format!("the {which} version is not UTF-8 text ({e})"))?;
        parse(text).map_err(|e| format!("the {which} version does not parse as {name}: {e}"))
    };
    let (a, b) = match side(o, read_old, "old").and_then(|a| Ok((a, side(n, read_new, "new")?))) {
        Ok(p) => p,
        Err(why) => return Structured::Fallback(why),
    };
    let mut c = formats::compare(&a, &b);
    // XML exports compare what no item read on every diff (`Export::unread`). A Siemens
    // source is all items: bytes that differ with none changed are formatting, or lines
    // the items normalise (white space) — told apart on the whole text.
    if f == "siemens-source" && c.is_empty() {
        let unread = read_old(o).zip(read_new(n)).and_then(|(x, y)| {
            formats::unread_change(
                &f,
                std::str::from_utf8(&x).ok()?,
                std::str::from_utf8(&y).ok()?,
            )
        });
        c.extend(unread);
    }
    if c.is_empty() {
        c.push(formats::Change {
            address: "File".into(),
            what: "cosmetic",
            kind: "file",
            context: false,
            old: None,
            new: Some("bytes differ, no item changed (formatting, white space or order)".into()),
        });
    }
    Structured::Items(c)
}

fn meta_change(o: &ArtifactEntry, n: &ArtifactEntry) -> String {
    let mut parts = Vec::new();
    if o.meta.mode != n.meta.mode {
        parts.push(format!(
            "mode {} -> {}",
            o.meta.mode.map(|m| format!("{m:o}")).unwrap_or("-".into()),
            n.meta.mode.map(|m| format!("{m:o}")).unwrap_or("-".into())
        ));
    }
    if o.meta.mtime != n.meta.mtime {
        parts.push("mtime".into());
    }
    // `state-` keys record the device's state at collection (an S7 CPU's RUN or STOP):
    // kept in the manifest, never compared.
    let keys: std::collections::BTreeSet<&String> = o
        .meta
        .extra
        .keys()
        .chain(n.meta.extra.keys())
        // Nor the export format: a function of name and content, both compared already.
        .filter(|k| !k.starts_with("state-") && k.as_str() != crate::review::formats::FORMAT_KEY)
        .collect();
    for k in keys {
        if o.meta.extra.get(k) != n.meta.extra.get(k) {
            parts.push(k.clone());
        }
    }
    parts.join(", ")
}

fn summarize(name: &str, kind: ArtifactKind, view: &View) -> String {
    match view {
        View::Registers {
            table,
            label,
            changes,
        } => {
            let what = if label.is_empty() {
                table.clone()
            } else {
                format!("{label} ({table})")
            };
            format!(
                "{name}: {} {} changed in {what}",
                changes.len(),
                if changes.len() == 1 {
                    "address"
                } else {
                    "addresses"
                }
            )
        }
        View::Text { added, removed, .. } => {
            format!("{name} ({kind}): {added} line(s) added, {removed} removed")
        }
        View::Binary {
            old_size,
            new_size,
            ranges,
            ..
        } => {
            let human = crate::output::human_bytes;
            let size = if old_size == new_size {
                format!("size unchanged, {}", human(*old_size))
            } else {
                format!(
                    "{} -> {} ({:+} B)",
                    human(*old_size),
                    human(*new_size),
                    i128::from(*new_size) - i128::from(*old_size)
                )
            };
            format!(
                "{name} ({kind}): {} changed byte range(s), {size}",
                ranges.len()
            )
        }
        View::Item { address, .. } => format!("{name}: {address} changed"),
        View::Identity { fields } => format!(
            "{name}: identification changed ({})",
            fields
                .iter()
                .map(|f| f.field.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        View::None => format!("{name} changed"),
    }
}

/// The header and values of a canonical register text, by address, read with the same
/// strict parser the collector's writer uses (`adapters::modbus::parse_range_text`).
fn parse_registers(text: &str) -> Option<(adapters::modbus::RangeText, BTreeMap<u32, u16>)> {
    let r = adapters::modbus::parse_range_text(text).ok()?;
    let values = (u32::from(r.start)..)
        .zip(r.values.iter().copied())
        .collect();
    Some((r, values))
}

/// The fields of an identity artifact of `adapter` (Modbus 43/14 objects, S7 SZL
/// fields), by its first line; `None` for anything else.
fn parse_identity(text: &str, adapter: &str) -> Option<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let magic = match adapter {
        "modbus" => "# plcvault modbus identification v1",
        "s7" => adapters::s7::IDENTITY_MAGIC,
        "enip" => adapters::enip::IDENTITY_MAGIC,
        "opcua" => adapters::opcua::IDENTITY_MAGIC,
        _ => return None,
    };
    if lines.next()? != magic {
        return None;
    }
    Some(
        lines
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn view_of(
    o: &ArtifactEntry,
    n: &ArtifactEntry,
    read_old: &Reader,
    read_new: &Reader,
    volatile: &[Volatile],
    // The adapter that collected both sides (the structured views are its), if the same.
    adapter: Option<&str>,
) -> View {
    let registers = adapter == Some("modbus");
    let small = o.size <= view_limit(o) && n.size <= view_limit(n);
    let contents = if small {
        read_old(o).zip(read_new(n))
    } else {
        None
    };
    let Some((old, new)) = contents else {
        return chunk_ranges(o, n);
    };
    let texts = std::str::from_utf8(&old)
        .ok()
        .zip(std::str::from_utf8(&new).ok());
    if let Some((ot, nt)) = texts {
        // The register view only for the same device, unit, table, start and label: a
        // changed header is shown as the text change it is.
        if registers
            && let (Some((h, ov)), Some((nh, nv))) = (parse_registers(ot), parse_registers(nt))
            && (&h.device, h.unit, h.table, h.start, &h.label)
                == (&nh.device, nh.unit, nh.table, nh.start, &nh.label)
        {
            let table = h.table.as_str().to_string();
            let label = h.label.clone();
            let masked = |addr: u32| {
                volatile.iter().any(|v| matches!(v, Volatile::Registers { table: t, start, end } if *t == table && (*start..=*end).contains(&addr)))
            };
            let addrs: std::collections::BTreeSet<u32> =
                ov.keys().chain(nv.keys()).copied().collect();
            let changes: Vec<RegisterChange> = addrs
                .into_iter()
                .filter(|a| ov.get(a) != nv.get(a) && !masked(*a))
                .map(|a| RegisterChange {
                    address: a,
                    old: ov.get(&a).copied(),
                    new: nv.get(&a).copied(),
                })
                .collect();
            // Changed bytes always yield a finding unless an approved rule masks them:
            // a difference outside the masked values (header, other lines) falls through
            // to the text view below.
            let unmasked = |t: &'_ str| -> Vec<String> {
                t.lines()
                    .filter(|l| {
                        l.split_once(',')
                            .and_then(|(a, _)| a.parse::<u32>().ok())
                            .is_none_or(|a| !masked(a))
                    })
                    .map(str::to_string)
                    .collect()
            };
            if !changes.is_empty() || unmasked(ot) == unmasked(nt) {
                return View::Registers {
                    table,
                    label,
                    changes,
                };
            }
        }
        if let Some(adapter) = adapter
            && let (Some(of), Some(nf)) = (parse_identity(ot, adapter), parse_identity(nt, adapter))
        {
            let keys: std::collections::BTreeSet<&String> = of.keys().chain(nf.keys()).collect();
            let fields: Vec<FieldChange> = keys
                .into_iter()
                .filter(|k| of.get(*k) != nf.get(*k))
                .map(|k| FieldChange {
                    field: k.clone(),
                    old: of.get(k).cloned(),
                    new: nf.get(k).cloned(),
                })
                .collect();
            if !fields.is_empty() {
                return View::Identity { fields };
            }
        }
        if !ot.contains('\0') && !nt.contains('\0') {
            if ot.len().max(nt.len()) as u64 <= LINE_DIFF_LIMIT {
                return text_view(ot, nt);
            }
            return byte_ranges(
                o,
                n,
                &old,
                &new,
                Some(format!(
                    "{} bytes of text is more than a line diff is made for ({LINE_DIFF_LIMIT}); changed byte ranges shown",
                    ot.len().max(nt.len())
                )),
            );
        }
    }
    byte_ranges(o, n, &old, &new, None)
}

/// Texts up to this size get a line diff; larger ones changed byte ranges.
pub const LINE_DIFF_LIMIT: u64 = 4 * 1024 * 1024;
/// A line diff stops refining after this long (the result stays correct, maybe not minimal).
const LINE_DIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
/// The most lines a text view keeps, and the most byte ranges a binary view lists.
pub const MAX_VIEW_LINES: usize = 2000;
pub const MAX_RANGES: usize = 1000;

/// A bounded line diff: a deadline on the matching, a cap on the lines kept, counts from
/// the diff itself (never from how lines look), and line ends kept so that a CR/LF-only
/// change stays visible.
fn text_view(ot: &str, nt: &str) -> View {
    let t0 = std::time::Instant::now();
    let td = similar::TextDiff::configure()
        .timeout(LINE_DIFF_TIMEOUT)
        .diff_lines(ot, nt);
    let (mut added, mut removed) = (0, 0);
    for c in td.iter_all_changes() {
        match c.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    let slow = t0.elapsed() >= LINE_DIFF_TIMEOUT;
    let mut diff = String::new();
    let (mut kept, mut cut) = (0usize, 0usize);
    for hunk in td.unified_diff().context_radius(2).iter_hunks() {
        let block = hunk.to_string();
        for line in block.split_inclusive('\n') {
            if kept < MAX_VIEW_LINES {
                diff.push_str(line);
                kept += 1;
            } else {
                cut += 1;
            }
        }
    }
    let mut notes = Vec::new();
    if slow {
        notes.push(
            "the line diff reached its time limit: the changes shown are real but may not be the fewest"
                .to_string(),
        );
    }
    if cut > 0 {
        notes.push(format!("{cut} more line(s) of the diff are not shown"));
    }
    View::Text {
        diff,
        added,
        removed,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// Exact changed byte ranges (at most `MAX_RANGES` listed).
fn byte_ranges(
    o: &ArtifactEntry,
    n: &ArtifactEntry,
    old: &[u8],
    new: &[u8],
    note: Option<String>,
) -> View {
    let mut ranges: Vec<[u64; 2]> = Vec::new();
    let mut more = 0usize;
    let common = old.len().min(new.len());
    let mut i = 0;
    while i < common {
        if old[i] != new[i] {
            let start = i;
            while i < common && old[i] != new[i] {
                i += 1;
            }
            if ranges.len() < MAX_RANGES {
                ranges.push([start as u64, i as u64]);
            } else {
                more += 1;
            }
        } else {
            i += 1;
        }
    }
    if new.len() != old.len() {
        ranges.push([common as u64, new.len().max(old.len()) as u64]);
    }
    let mut notes: Vec<String> = note.into_iter().collect();
    if more > 0 {
        notes.push(format!("{more} more changed range(s) not listed"));
    }
    View::Binary {
        old_size: o.size,
        new_size: n.size,
        old_sha256: o.sha256,
        new_sha256: n.sha256,
        ranges,
        exact: true,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// Changed ranges at chunk granularity, from the chunk lists alone (no content read).
fn chunk_ranges(o: &ArtifactEntry, n: &ArtifactEntry) -> View {
    let old_ids: std::collections::HashSet<Hash> = o.chunks.iter().map(|c| c.0).collect();
    let mut ranges: Vec<[u64; 2]> = Vec::new();
    let mut pos = 0u64;
    for (id, len) in &n.chunks {
        let end = pos + *len as u64;
        if !old_ids.contains(id) {
            match ranges.last_mut() {
                Some(last) if last[1] == pos => last[1] = end,
                _ => ranges.push([pos, end]),
            }
        }
        pos = end;
    }
    View::Binary {
        old_size: o.size,
        new_size: n.size,
        old_sha256: o.sha256,
        new_sha256: n.sha256,
        ranges,
        exact: false,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::check_volatile;
    use std::collections::HashMap;
    use vault::manifest::{ArtifactMeta, ArtifactStatus};

    /// Register text of holding 0..10 as the collector writes it: `values` set, the rest 0.
    fn regs(values: &[(u32, u16)], label: &str) -> Vec<u8> {
        let mut all = [0u16; 10];
        for (a, v) in values {
            all[*a as usize] = *v;
        }
        let spec = adapters::modbus::RangeSpec {
            table: adapters::modbus::Table::Holding,
            start: 0,
            count: 10,
            kind: ArtifactKind::Recipe,
            label: label.into(),
        };
        adapters::modbus::range_text("d", 1, &spec, &all)
    }

    fn art(name: &str, kind: ArtifactKind, data: &[u8]) -> ArtifactEntry {
        ArtifactEntry {
            name: name.into(),
            kind,
            size: data.len() as u64,
            sha256: Hash::of(data),
            status: ArtifactStatus::Ok,
            meta: ArtifactMeta::default(),
            chunks: vec![(Hash::of(data), data.len() as u32)],
        }
    }

    fn manifest(arts: Vec<ArtifactEntry>) -> Manifest {
        manifest_of("modbus", arts)
    }

    fn manifest_of(adapter: &str, arts: Vec<ArtifactEntry>) -> Manifest {
        Manifest {
            v: 1,
            device: "d".into(),
            adapter: adapter.into(),
            source: "-".into(),
            complete: true,
            warnings: vec![],
            artifacts: arts,
        }
    }

    fn run(
        old: &[(&str, ArtifactKind, Vec<u8>)],
        new: &[(&str, ArtifactKind, Vec<u8>)],
        rules: &Rules,
    ) -> Comparison {
        let store: HashMap<Hash, Vec<u8>> = old
            .iter()
            .chain(new.iter())
            .map(|(_, _, d)| (Hash::of(d), d.clone()))
            .collect();
        let om = manifest(old.iter().map(|(n, k, d)| art(n, *k, d)).collect());
        let nm = manifest(new.iter().map(|(n, k, d)| art(n, *k, d)).collect());
        let read = |a: &ArtifactEntry| store.get(&a.sha256).cloned();
        compare("d", &om, &nm, rules, &read, &read)
    }

    // Issue 9, case 5: the label is shown whole, and a label cannot change the table a
    // volatile rule is matched against.
    #[test]
    fn register_labels_are_shown_whole_and_cannot_forge_the_table() {
        let label = "interlocks enabled table=coils";
        let old = regs(&[(4, 1)], label);
        let new = regs(&[(4, 0)], label);
        let rules = Rules {
            volatile: vec!["coils:0-9".into()],
            ..Rules::default()
        };
        let c = run(
            &[("holding/0-9.csv", ArtifactKind::Recipe, old)],
            &[("holding/0-9.csv", ArtifactKind::Recipe, new)],
            &rules,
        );
        assert_eq!(c.findings.len(), 1, "{:?}", c.findings);
        let View::Registers {
            table,
            label: shown,
            changes,
        } = &c.findings[0].view
        else {
            panic!("{:?}", c.findings[0].view)
        };
        assert_eq!((table.as_str(), shown.as_str()), ("holding", label));
        assert_eq!(changes.len(), 1);
    }

    // Red-team of issue 9: a changed label (or unit, device) with a changed value showed
    // only the value, under the old label.
    #[test]
    fn a_changed_range_header_is_shown_not_hidden_behind_the_values() {
        let old = regs(&[(4, 1)], "interlocks enabled");
        let new = regs(&[(4, 0)], "interlocks DISABLED");
        let c = run(
            &[("holding/0-9.csv", ArtifactKind::Recipe, old)],
            &[("holding/0-9.csv", ArtifactKind::Recipe, new)],
            &Rules::default(),
        );
        assert_eq!(c.findings.len(), 1, "{:?}", c.findings);
        let View::Text { diff, .. } = &c.findings[0].view else {
            panic!("{:?}", c.findings[0].view)
        };
        assert!(
            diff.contains("interlocks DISABLED") && diff.contains("+4,0"),
            "{diff}"
        );
    }

    #[test]
    fn registers_show_address_old_new_and_volatile_ranges_are_masked() {
        let old = regs(&[(0, 1), (1, 2), (5, 7)], "recipes");
        let new = regs(&[(0, 1), (1, 3), (5, 9)], "recipes");
        let c = run(
            &[("holding/0-9.csv", ArtifactKind::Recipe, old.clone())],
            &[("holding/0-9.csv", ArtifactKind::Recipe, new.clone())],
            &Rules::default(),
        );
        assert_eq!(c.findings.len(), 1);
        let f = &c.findings[0];
        assert_eq!((f.class, f.severity), (Class::Recipe, Severity::Warning));
        let View::Registers { changes, label, .. } = &f.view else {
            panic!("{:?}", f.view)
        };
        assert_eq!(label, "recipes");
        assert_eq!(
            changes,
            &vec![
                RegisterChange {
                    address: 1,
                    old: Some(2),
                    new: Some(3)
                },
                RegisterChange {
                    address: 5,
                    old: Some(7),
                    new: Some(9)
                }
            ]
        );
        // Address 5 volatile: one change left; 1 and 5 volatile: no finding.
        let rules = Rules {
            volatile: vec!["holding:5-5".into()],
            ..Rules::default()
        };
        let c = run(
            &[("holding/0-9.csv", ArtifactKind::Recipe, old.clone())],
            &[("holding/0-9.csv", ArtifactKind::Recipe, new.clone())],
            &rules,
        );
        let View::Registers { changes, .. } = &c.findings[0].view else {
            panic!()
        };
        assert_eq!(changes.len(), 1);
        let rules = Rules {
            volatile: vec!["holding:0-9".into()],
            ..Rules::default()
        };
        let c = run(
            &[("holding/0-9.csv", ArtifactKind::Recipe, old)],
            &[("holding/0-9.csv", ArtifactKind::Recipe, new)],
            &rules,
        );
        assert!(c.findings.is_empty(), "{:?}", c.findings);
        assert_eq!(c.artifacts[0].status, "volatile");
    }

    #[test]
    fn text_binary_identity_added_removed_shrunk() {
        let c = run(
            &[
                ("OB1.awl", ArtifactKind::Logic, b"A I0.0\n= Q0.0\n".to_vec()),
                ("panel.img", ArtifactKind::Image, vec![0u8; 100]),
                (
                    "identity/device-identification.txt",
                    ArtifactKind::Identity,
                    b"# plcvault modbus identification v1\n# x\nrevision=V1.0\nvendor_name=A\n"
                        .to_vec(),
                ),
                ("gone.csv", ArtifactKind::Recipe, b"x".to_vec()),
                ("big.csv", ArtifactKind::Recipe, vec![b'a'; 1000]),
            ],
            &[
                ("OB1.awl", ArtifactKind::Logic, b"A I0.1\n= Q0.0\n".to_vec()),
                ("panel.img", ArtifactKind::Image, {
                    let mut v = vec![0u8; 100];
                    v[10] = 1;
                    v[11] = 1;
                    v[50] = 2;
                    v
                }),
                (
                    "identity/device-identification.txt",
                    ArtifactKind::Identity,
                    b"# plcvault modbus identification v1\n# x\nrevision=V2.0\nvendor_name=A\n"
                        .to_vec(),
                ),
                ("new.st", ArtifactKind::Logic, b"x := 1;".to_vec()),
                ("big.csv", ArtifactKind::Recipe, vec![b'a'; 100]),
            ],
            &Rules::default(),
        );
        let by = |a: &str, ch: &str| {
            c.findings
                .iter()
                .find(|f| f.artifact == a && f.change == ch)
                .unwrap_or_else(|| panic!("{a} {ch}: {:?}", c.findings))
        };
        let t = by("OB1.awl", "changed");
        assert_eq!((t.class, t.severity), (Class::Logic, Severity::Critical));
        let View::Text { diff, .. } = &t.view else {
            panic!()
        };
        assert!(
            diff.contains("-A I0.0") && diff.contains("+A I0.1"),
            "{diff}"
        );
        let View::Binary { ranges, exact, .. } = &by("panel.img", "changed").view else {
            panic!()
        };
        assert_eq!((ranges.clone(), *exact), (vec![[10, 12], [50, 51]], true));
        let View::Identity { fields } = &by("identity/device-identification.txt", "changed").view
        else {
            panic!()
        };
        assert_eq!(
            fields,
            &vec![FieldChange {
                field: "revision".into(),
                old: Some("V1.0".into()),
                new: Some("V2.0".into())
            }]
        );
        assert_eq!(by("gone.csv", "removed").class, Class::Suspect);
        assert_eq!(by("new.st", "added").class, Class::Logic);
        assert_eq!(by("big.csv", "shrank").class, Class::Suspect);
    }

    // Regression (issue 18, case 1): a files artifact that starts like register text was
    // parsed as registers, and a changed logic line became "volatile", no finding.
    #[test]
    fn a_magic_first_line_hides_nothing() {
        let fake = |body: &str| {
            format!("# plcvault modbus range v1\n# device=d unit=1 table=holding start=0 count=1 label=x\naddress,value\n0,1\n{body}")
                .into_bytes()
        };
        let old = art(
            "logic/FB1.st",
            ArtifactKind::Logic,
            &fake("Q := I1 AND I2;\n"),
        );
        let new = art(
            "logic/FB1.st",
            ArtifactKind::Logic,
            &fake("Q := I1 OR TRUE;\n"),
        );
        let data: HashMap<Hash, Vec<u8>> = [
            (old.sha256, fake("Q := I1 AND I2;\n")),
            (new.sha256, fake("Q := I1 OR TRUE;\n")),
        ]
        .into_iter()
        .collect();
        let read = |a: &ArtifactEntry| data.get(&a.sha256).cloned();
        for adapter in ["files", "modbus"] {
            let c = compare(
                "d",
                &manifest_of(adapter, vec![old.clone()]),
                &manifest_of(adapter, vec![new.clone()]),
                &Rules::default(),
                &read,
                &read,
            );
            assert_eq!(c.findings.len(), 1, "{adapter}: {:?}", c.findings);
            let f = &c.findings[0];
            assert_eq!((f.class, f.severity), (Class::Logic, Severity::Critical));
            let View::Text { diff, .. } = &f.view else {
                panic!("{adapter}: {:?}", f.view)
            };
            assert!(diff.contains("+Q := I1 OR TRUE;"), "{diff}");
        }
        // A volatile rule masks register values, not other bytes.
        let c = compare(
            "d",
            &manifest_of("modbus", vec![old.clone()]),
            &manifest_of("modbus", vec![new.clone()]),
            &Rules {
                volatile: vec!["holding:*".into()],
                ..Rules::default()
            },
            &read,
            &read,
        );
        assert_eq!(c.findings.len(), 1, "{:?}", c.findings);
    }

    fn random_ab_lines(bytes: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(bytes);
        while out.len() < bytes {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(if x & 1 == 0 { b"A\n" } else { b"B\n" });
        }
        out
    }

    // Regression (issue 18, case 8): an 8 MiB file of random A/B lines took 63 s of CPU,
    // 443 MB and 25 MB of JSON to compare.
    #[test]
    fn text_diffs_are_bounded_in_size_time_and_output() {
        // Larger than a line diff is made for: byte ranges, capped, and said so.
        let big_old = random_ab_lines(8 << 20, 1);
        let big_new = random_ab_lines(8 << 20, 2);
        let c = run(
            &[("log.txt", ArtifactKind::Other, big_old)],
            &[("log.txt", ArtifactKind::Other, big_new)],
            &Rules::default(),
        );
        let View::Binary { ranges, note, .. } = &c.findings[0].view else {
            panic!("{:?}", c.findings[0].view)
        };
        assert!(ranges.len() <= MAX_RANGES + 1, "{}", ranges.len());
        let note = note.as_deref().unwrap_or_default();
        assert!(
            note.contains("line diff") && note.contains("not listed"),
            "{note}"
        );
        // Within the limit: a line diff with a deadline, and a capped view.
        let c = run(
            &[("log.txt", ArtifactKind::Other, random_ab_lines(1 << 20, 3))],
            &[("log.txt", ArtifactKind::Other, random_ab_lines(1 << 20, 4))],
            &Rules::default(),
        );
        let View::Text {
            diff,
            added,
            removed,
            note,
        } = &c.findings[0].view
        else {
            panic!("{:?}", c.findings[0].view)
        };
        assert!(diff.lines().count() <= MAX_VIEW_LINES);
        assert!(*added > 0 && *removed > 0);
        assert!(
            note.as_deref().is_some_and(|n| n.contains("not shown")),
            "{note:?}"
        );
    }

    // Issue 18, case 8: lines starting with `--` or `++` were shown as `---`/`+++` and left
    // out of the counts; a CR/LF-only change was invisible.
    #[test]
    fn text_views_count_every_line_and_show_line_ends() {
        let c = run(
            &[(
                "a.st",
                ArtifactKind::Logic,
                b"x := 1;\n-- old comment\n".to_vec(),
            )],
            &[("a.st", ArtifactKind::Logic, b"x := 1;\n++ new\n".to_vec())],
            &Rules::default(),
        );
        let f = &c.findings[0];
        let View::Text {
            diff,
            added,
            removed,
            ..
        } = &f.view
        else {
            panic!()
        };
        assert_eq!((*added, *removed), (1, 1), "{diff}");
        assert!(
            f.summary.contains("1 line(s) added, 1 removed"),
            "{}",
            f.summary
        );
        assert!(diff.starts_with("@@"), "no file header: {diff}");
        let c = run(
            &[("b.st", ArtifactKind::Logic, b"A I0.0\r\n".to_vec())],
            &[("b.st", ArtifactKind::Logic, b"A I0.0\n".to_vec())],
            &Rules::default(),
        );
        let View::Text { diff, .. } = &c.findings[0].view else {
            panic!()
        };
        assert!(diff.contains("-A I0.0\r\n+A I0.0\n"), "{diff:?}");
    }

    // Issue 18: for random artifacts of every adapter and kind, any byte change (outside
    // volatile rules; here there are none) gives at least one finding, whatever the content
    // looks like — including content that imitates register or identification text.
    #[test]
    fn property_any_changed_byte_gives_a_finding() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let kinds = ArtifactKind::ALL;
        for case in 0..600 {
            let adapter = ["files", "modbus"][rnd(2) as usize];
            let kind = kinds[rnd(kinds.len() as u64) as usize];
            let len = 1 + rnd(3000) as usize;
            let old: Vec<u8> = match rnd(5) {
                0 => (0..len).map(|_| rnd(256) as u8).collect(),
                1 => (0..len).map(|_| b"AB \n;:=-+"[rnd(9) as usize]).collect(),
                2 => {
                    let mut t = String::from(
                        "# plcvault modbus range v1\n# device=d unit=1 table=holding start=0 count=50 label=x\naddress,value\n",
                    );
                    for a in 0..50 {
                        t.push_str(&format!("{a},{}\n", rnd(65536)));
                    }
                    t.into_bytes()
                }
                3 => format!(
                    "# plcvault modbus identification v1\n# x\nrevision=V{}\nvendor_name=A\n",
                    rnd(100)
                )
                .into_bytes(),
                _ => format!("{}\n", "NETWORK 1\n A I0.0\n".repeat(1 + rnd(50) as usize))
                    .into_bytes(),
            };
            let mut new = old.clone();
            match rnd(3) {
                0 => {
                    let i = rnd(new.len() as u64) as usize;
                    new[i] ^= 1 + rnd(255) as u8;
                }
                1 => {
                    let i = rnd(new.len() as u64 + 1) as usize;
                    new.insert(i, rnd(256) as u8);
                }
                _ => {
                    let i = rnd(new.len() as u64) as usize;
                    new.remove(i);
                }
            }
            if new == old {
                continue;
            }
            let name = [
                "a.st",
                "holding/0-49.csv",
                "identity/device-identification.txt",
                "x.bin",
            ][rnd(4) as usize];
            let (o, n) = (art(name, kind, &old), art(name, kind, &new));
            let data: HashMap<Hash, Vec<u8>> = [(o.sha256, old.clone()), (n.sha256, new.clone())]
                .into_iter()
                .collect();
            let read = |a: &ArtifactEntry| data.get(&a.sha256).cloned();
            let c = compare(
                "d",
                &manifest_of(adapter, vec![o]),
                &manifest_of(adapter, vec![n]),
                &Rules::default(),
                &read,
                &read,
            );
            assert!(
                !c.findings.is_empty(),
                "case {case}: {adapter} {kind:?} {name}: a changed byte gave no finding"
            );
        }
    }

    // Issue 20: a project export read by address still reports every changed byte: a
    // change of nothing that runs is a cosmetic finding, bytes that no longer parse are
    // the text view with the reason.
    #[test]
    fn property_any_changed_byte_of_an_export_gives_a_finding() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let entry = |name: &str, data: &[u8]| {
            let mut a = art(name, ArtifactKind::Logic, data);
            crate::review::formats::record(&mut a.meta, name, data);
            a
        };
        let mut structured = 0;
        for case in 0..400 {
            let (name, text) = crate::review::formats::mutations::FIXTURES
                [rnd(crate::review::formats::mutations::FIXTURES.len() as u64) as usize];
            let old = text.as_bytes().to_vec();
            let mut new = old.clone();
            let i = rnd(new.len() as u64) as usize;
            match rnd(3) {
                0 => new[i] ^= 1 + rnd(255) as u8,
                1 => new.insert(i, b" <>&\"x0\n\t"[rnd(9) as usize]),
                _ => {
                    new.remove(i);
                }
            }
            let (o, n) = (entry(name, &old), entry(name, &new));
            let data: HashMap<Hash, Vec<u8>> = [(o.sha256, old.clone()), (n.sha256, new.clone())]
                .into_iter()
                .collect();
            let read = |a: &ArtifactEntry| data.get(&a.sha256).cloned();
            let c = compare(
                "d",
                &manifest_of("files", vec![o]),
                &manifest_of("files", vec![n]),
                &Rules::default(),
                &read,
                &read,
            );
            assert!(
                !c.findings.is_empty(),
                "case {case}: {name} byte {i}: a changed byte gave no finding"
            );
            if c.findings
                .iter()
                .any(|f| matches!(f.view, View::Item { .. }))
            {
                structured += 1;
            } else {
                assert!(
                    c.findings
                        .iter()
                        .any(|f| f.summary.contains("not compared by address")),
                    "case {case}: {name}: a fallback without its reason: {:?}",
                    c.findings
                );
            }
        }
        // Most single-byte edits still parse: the test exercises the item view.
        assert!(structured > 100, "{structured}");
    }

    /// Compares two versions of an export as a files device would (format recorded from
    /// the bytes): (class, summary) of each finding.
    fn export_findings(name: &str, old: &str, new: &str) -> Vec<(Class, String)> {
        let entry = |data: &[u8]| {
            let mut a = art(name, adapters::files::default_kind(name), data);
            crate::review::formats::record(&mut a.meta, name, data);
            a
        };
        let (o, n) = (entry(old.as_bytes()), entry(new.as_bytes()));
        let data: HashMap<Hash, Vec<u8>> = [
            (o.sha256, old.as_bytes().to_vec()),
            (n.sha256, new.as_bytes().to_vec()),
        ]
        .into_iter()
        .collect();
        let read = |a: &ArtifactEntry| data.get(&a.sha256).cloned();
        compare(
            "d",
            &manifest_of("files", vec![o]),
            &manifest_of("files", vec![n]),
            &Rules::default(),
            &read,
            &read,
        )
        .findings
        .into_iter()
        .map(|f| (f.class, f.summary))
        .collect()
    }

    // Issue 20, red team: what an export holds beyond the items read is never noise.
    #[test]
    fn changes_outside_the_items_read_are_findings_never_noise() {
        let l5x = include_str!("../../tests/fixtures/exports/Line2.L5X");
        let redate = |t: &str| t.replace("Mon Nov 30 10:00:00 2026", "Tue Dec 01 03:00:00 2026");
        // A module's keying, read by address; hidden behind a re-export's new date.
        let f = export_findings(
            "Line2.L5X",
            l5x,
            &redate(l5x).replace("<EKey State=\"ExactMatch\"/>", "<EKey State=\"Disabled\"/>"),
        );
        assert!(
            f.contains(&(
                Class::Config,
                "Line2.L5X: Module Local / EKey changed".into()
            )),
            "{f:?}"
        );
        // An element no reader knows, with only the date beside it: a logic finding at
        // its path, not "cosmetic".
        let hidden =
            redate(l5x).replace("<Tasks>", "<SafetyInfo SafetyLocked=\"false\"/>\n<Tasks>");
        let base = l5x.replace("<Tasks>", "<SafetyInfo SafetyLocked=\"true\"/>\n<Tasks>");
        let f = export_findings("Line2.L5X", &base, &hidden);
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic && s.contains("SafetyInfo")),
            "{f:?}"
        );
        // An AOI parameter's default value.
        let f = export_findings(
            "Line2.L5X",
            l5x,
            &l5x.replacen(
                "<Parameter Name=\"Max\" TagType=\"Base\" DataType=\"REAL\" Usage=\"Input\" Radix=\"Float\" Required=\"true\" Visible=\"true\" ExternalAccess=\"Read/Write\"/>",
                "<Parameter Name=\"Max\" TagType=\"Base\" DataType=\"REAL\" Usage=\"Input\" Radix=\"Float\" Required=\"true\" Visible=\"true\" ExternalAccess=\"Read/Write\">\n<DefaultData Format=\"Decorated\">\n<DataValue DataType=\"REAL\" Radix=\"Float\" Value=\"99.0\"/>\n</DefaultData>\n</Parameter>",
                1,
            ),
        );
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic
                    && s.contains("AOI AOI_Limit / Parameter Max changed")),
            "{f:?}"
        );
        // An added routine carries its rungs, for review from the tool.
        let added = l5x.replace(
            "<Routine Name=\"Mixing\" Type=\"FBD\">",
            "<Routine Name=\"Bypass\" Type=\"RLL\">\n<RLLContent>\n<Rung Number=\"0\" Type=\"N\">\n<Text>\n<![CDATA[OTL(Guard_Closed);]]>\n</Text>\n</Rung>\n</RLLContent>\n</Routine>\n<Routine Name=\"Mixing\" Type=\"FBD\">",
        );
        let c = crate::review::formats::compare(
            &crate::review::formats::l5x::parse(l5x).unwrap(),
            &crate::review::formats::l5x::parse(&added).unwrap(),
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].new.as_deref(), Some("Rung 0: OTL(Guard_Closed);"));
        // Nesting deeper than any export: the text view with the reason, no crash.
        let deep = l5x.replace(
            "<Tasks>",
            &format!("{}{}<Tasks>", "<a>".repeat(20_000), "</a>".repeat(20_000)),
        );
        let f = export_findings("Line2.L5X", l5x, &deep);
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic && s.contains("nested deeper than")),
            "{f:?}"
        );
        // PLCopen: a located variable's address, and task settings behind a new date.
        let tc6 = include_str!("../../tests/fixtures/exports/Line2.plcopen.xml");
        let f = export_findings(
            "Line2.plcopen.xml",
            tc6,
            &tc6.replace(
                "<variable name=\"Start\">",
                "<variable name=\"Start\" address=\"%IX7.7\">",
            ),
        );
        assert!(
            f.iter().any(|(c, s)| *c == Class::Logic
                && s.contains("POU FB_Labeller / inputVars / Start changed")),
            "{f:?}"
        );
        let f = export_findings(
            "Line2.plcopen.xml",
            tc6,
            &tc6.replace("2026-11-30T10:00:00.000", "2026-12-01T10:00:00.000")
                .replace("<taskCycle>", "<taskCycle interval=\"T#1000ms\">"),
        );
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic && s.contains("task[MainTask]")),
            "{f:?}"
        );
        // Round 2: a second rung text beside a tag value change is still found; a comment
        // edit is a comment and nothing else; reordered tags are formatting.
        let f = export_findings(
            "Line2.L5X",
            l5x,
            &l5x.replace("Value=\"88\"", "Value=\"72\"").replace(
                "<![CDATA[XIO(Guard_Closed)OTU(Run);]]>\n</Text>",
                "<![CDATA[XIO(Guard_Closed)OTU(Run);]]>\n</Text>\n<Text>\n<![CDATA[OTL(Run);]]>\n</Text>",
            ),
        );
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic && s.contains("Rung[2]/Text#2 added")),
            "{f:?}"
        );
        let f = export_findings(
            "Line2.L5X",
            l5x,
            &l5x.replace("Safety: guard door stops the filler", "guard door"),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, Class::Comment, "{f:?}");
        let (a, b) = (
            l5x.find("<Tag Name=\"LineSpeed\"").unwrap(),
            l5x.find("<Tag Name=\"Juice\"").unwrap(),
        );
        let c = l5x.find("<Tag Name=\"Setpoints\"").unwrap();
        let swapped = format!("{}{}{}{}", &l5x[..a], &l5x[b..c], &l5x[a..b], &l5x[c..]);
        let f = export_findings("Line2.L5X", l5x, &swapped);
        assert!(f.iter().all(|(c, _)| *c == Class::Cosmetic), "{f:?}");
        // Siemens: an END inside a comment ends nothing; a block in lower case is a block.
        let scl = include_str!("../../tests/fixtures/exports/FB20_Mixer.scl");
        let f = export_findings(
            "FB20_Mixer.scl",
            scl,
            &scl.replace(
                "\tEND_IF;\nEND_FUNCTION_BLOCK",
                "\tEND_IF;\n(*\nEND_FUNCTION_BLOCK *)\n\t#Speed := #MaxSpeed;\nEND_FUNCTION_BLOCK",
            ),
        );
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic && s.contains("FB FB20_Mixer / Body / Lines")),
            "{f:?}"
        );
        let f = export_findings(
            "FB20_Mixer.scl",
            scl,
            &format!("{scl}\nfunction_block \"Evil\"\nbegin\n  #x := 1;\nend_function_block\n"),
        );
        assert!(
            f.iter()
                .any(|(c, s)| *c == Class::Logic && s.contains("FB Evil added")),
            "{f:?}"
        );
    }

    #[test]
    fn volatile_rules_parse_or_say_why_not() {
        assert!(check_volatile("holding:100-199").is_ok());
        assert!(check_volatile("input:*").is_ok());
        assert!(check_volatile("logs/**").is_ok());
        assert!(check_volatile("holding:9-1").is_err());
        assert!(check_volatile("holding:x").is_err());
    }
}
