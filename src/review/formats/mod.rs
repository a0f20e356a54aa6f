//! Project-export formats a structured diff understands. Which one an artifact is comes
//! from what the collector recorded when it read the bytes (`ArtifactMeta::extra`
//! `format`: the extension together with the XML root element), never from a guess at
//! diff time.

pub mod enip;
pub mod l5x;
#[cfg(test)]
pub mod mutations;
pub mod opcua;
pub mod plcopen;
pub mod siemens;
pub mod twincat;

use std::collections::BTreeMap;

/// The `ArtifactMeta::extra` key the collector records an export's format under. A pure
/// function of the name and the content, so never compared as metadata.
pub const FORMAT_KEY: &str = "format";

/// Records in `meta` the format of an artifact named `name` that starts with `head`.
pub fn record(meta: &mut vault::manifest::ArtifactMeta, name: &str, head: &[u8]) {
    if let Some(f) = detect(name, &head[..head.len().min(SNIFF)]) {
        meta.extra.insert(FORMAT_KEY.to_string(), f.to_string());
    }
}

/// How many leading bytes the collector keeps to tell the format.
pub const SNIFF: usize = 4096;

/// The format of an artifact named `name` whose content starts with `head`: `l5x`
/// (Rockwell), `plcopen` (PLCopen TC6 XML), `twincat` (TwinCAT 3 POU, GVL, DUT),
/// `siemens-source` (SCL, STL/AWL, UDT and DB sources), `binary-project` (a vendor project
/// that needs an export for a structured diff); `None` for anything else.
pub fn detect(name: &str, head: &[u8]) -> Option<&'static str> {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let root = || root_element(head);
    match ext.as_str() {
        "l5x" if root().as_deref() == Some("RSLogix5000Content") => Some("l5x"),
        "xml" if root().as_deref() == Some("project") && contains(head, b"plcopen.org/xml/tc6") => {
            Some("plcopen")
        }
        "tcpou" | "tcgvl" | "tcdut" if root().as_deref() == Some("TcPlcObject") => Some("twincat"),
        "scl" | "awl" | "stl" | "udt" | "db" if std::str::from_utf8(strip_bom(head)).is_ok() => {
            Some("siemens-source")
        }
        "acd" | "ap1x" | "zap1x" | "ap13" | "zap13" | "ap14" | "zap14" | "ap15" | "zap15"
        | "ap16" | "zap16" | "ap17" | "zap17" | "ap18" | "zap18" | "ap19" | "zap19" | "project"
        | "stu" => Some("binary-project"),
        _ => None,
    }
}

/// The field of an item whose content is source-protected or encoded: its hash.
pub const OPAQUE: &str = "encoded content";

/// Reads an export's text into its items; fails with the reason it cannot.
pub type Parser = fn(&str) -> Result<Export, String>;

/// The parser of a recorded format the review reads by address; `None` for others
/// (`binary-project`, anything unknown).
pub fn parser(format: &str) -> Option<Parser> {
    Some(match format {
        "l5x" => l5x::parse,
        "twincat" => twincat::parse,
        "plcopen" => plcopen::parse,
        "siemens-source" => siemens::parse,
        "enip-tags" => enip::parse,
        "opcua-nodes" => opcua::parse,
        _ => return None,
    })
}

/// When no item changed but the bytes did: the first difference between the documents'
/// canonical lines (element paths with their content, white space, attribute order, CDATA
/// splits and entities aside, and the format's layout and cosmetic attributes left out),
/// as a change of what the reader does not read by address; `None` when they are the
/// same (formatting only).
pub fn unread_change(format: &str, old: &str, new: &str) -> Option<Change> {
    let lines = |t: &str| -> Option<Vec<String>> {
        match format {
            "siemens-source" => Some(
                t.strip_prefix('\u{feff}')
                    .unwrap_or(t)
                    .lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|l| !l.is_empty())
                    .collect(),
            ),
            _ => {
                let root = match format {
                    "l5x" => "RSLogix5000Content",
                    "twincat" => "TcPlcObject",
                    _ => "project",
                };
                let doc = parse_xml(t, root).ok()?;
                let cosmetic: &[&str] = match format {
                    "l5x" => l5x::COSMETIC,
                    "twincat" => twincat::COSMETIC,
                    _ => plcopen::COSMETIC,
                };
                let drop = |a: &str| {
                    cosmetic.contains(&a)
                        || matches!(
                            a,
                            "X" | "Y"
                                | "Width"
                                | "Height"
                                | "HideDesc"
                                | "DescX"
                                | "DescY"
                                | "DescWidth"
                                | "x"
                                | "y"
                                | "width"
                                | "height"
                        )
                };
                Some(canonical(&doc, &drop))
            }
        }
    };
    let (a, b) = (lines(old)?, lines(new)?);
    if a == b {
        return None;
    }
    // The first run of lines that differ, as the line diff of the two aligns them.
    let (ra, rb): (Vec<&str>, Vec<&str>) = (
        a.iter().map(String::as_str).collect(),
        b.iter().map(String::as_str).collect(),
    );
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_millis(500))
        .diff_slices(&ra, &rb);
    let (or, nr) = diff
        .ops()
        .iter()
        .map(|op| op.as_tag_tuple())
        .find(|(tag, _, _)| *tag != similar::DiffTag::Equal)
        .map(|(_, o, n)| (o, n))?;
    let show = |v: &[String], r: std::ops::Range<usize>| -> Option<String> {
        let more = r.len().saturating_sub(10);
        let mut part: Vec<String> = v[r].iter().take(10).cloned().collect();
        if more > 0 {
            part.push(format!("… {more} more"));
        }
        (!part.is_empty()).then(|| part.join("\n"))
    };
    let at = b
        .get(nr.start)
        .filter(|_| !nr.is_empty())
        .or(a.get(or.start))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("")
        .to_string();
    let (old, new) = (show(&a, or), show(&b, nr));
    Some(Change {
        address: format!("File / {at}"),
        what: "changed",
        kind: "unread",
        context: false,
        old,
        new,
    })
}

/// A recorded format as people name it.
pub fn format_name(format: &str) -> &str {
    match format {
        "l5x" => "L5X",
        "twincat" => "TwinCAT 3 source",
        "plcopen" => "PLCopen XML",
        "siemens-source" => "a Siemens source",
        "binary-project" => "a binary project",
        f => f,
    }
}

/// Whether an artifact named `name` may be a project export the review reads by address
/// (by its extension alone; what it is comes from [`detect`] on its bytes).
pub fn maybe_export(name: &str) -> bool {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "l5x" | "xml" | "tcpou" | "tcgvl" | "tcdut" | "scl" | "awl" | "stl" | "udt" | "db"
    )
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The name of the first element of an XML text, past a BOM, the declaration,
/// processing instructions, comments, a doctype and white space.
pub fn root_element(head: &[u8]) -> Option<String> {
    let mut s = strip_bom(head);
    loop {
        while let [b, rest @ ..] = s {
            if b.is_ascii_whitespace() {
                s = rest;
            } else {
                break;
            }
        }
        if let Some(rest) = s.strip_prefix(b"<?") {
            s = &rest[rest.windows(2).position(|w| w == b"?>")? + 2..];
        } else if let Some(rest) = s.strip_prefix(b"<!--") {
            s = &rest[rest.windows(3).position(|w| w == b"-->")? + 3..];
        } else if let Some(rest) = s.strip_prefix(b"<!") {
            s = &rest[rest.iter().position(|&b| b == b'>')? + 1..];
        } else if let Some(rest) = s.strip_prefix(b"<") {
            let end = rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')?;
            let name = std::str::from_utf8(&rest[..end]).ok()?;
            // A prefixed root (`tc6:project`) is named by its local part.
            let local = name.rsplit(':').next().unwrap_or(name);
            return (!local.is_empty()).then(|| local.to_string());
        } else {
            return None;
        }
    }
}

/// The body of an item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Ladder rungs in order: (neutral text, comment).
    Rungs(Vec<(String, String)>),
    /// Structured-text lines in order.
    Lines(Vec<String>),
    /// Named values (attributes, members, decorated data), each its own address.
    Fields(BTreeMap<String, String>),
}

/// One addressed part of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// `Program MainProgram / Routine Conveyor1`, `Controller / Tag Recipe`, ...
    pub address: String,
    /// `routine`, `tag`, `datatype`, `aoi`, `module`, `task`, `program`, `file`.
    pub kind: &'static str,
    /// A dependency copied into the export (`Use="Context"`), not its target.
    pub context: bool,
    pub body: Body,
}

/// An export's items, by their key: a stable id where the format has one (a TwinCAT GUID:
/// a rename is a rename), else the address.
#[derive(Clone, Debug, Default)]
pub struct Export {
    pub items: BTreeMap<String, Item>,
    /// The field names that change without changing what runs, for this format.
    pub cosmetic: &'static [&'static str],
    /// The number of a body's first line as the format's editor shows it (L5X numbers ST
    /// lines from 0, TwinCAT and STEP 7 editors from 1).
    pub line_base: usize,
    /// What no item read: one line per element (path and own content) the reader did not
    /// mark as read, in document order — compared on every diff, so that nothing an export
    /// holds changes unreported and nothing an item reported is reported twice.
    pub unread: Vec<String>,
    /// Elements read while parsing, by node id: `OWN` (own content), `ALL` (the whole
    /// subtree). One byte per node, dropped once parsing is done.
    marks: Vec<u8>,
}

const OWN: u8 = 1;
const ALL: u8 = 2;

impl Export {
    /// Marks an element's own content (attributes, text) as read by an item.
    pub fn own(&mut self, n: roxmltree::Node) {
        self.mark(n, OWN);
    }

    /// Marks an element and everything below it as read by an item.
    pub fn all(&mut self, n: roxmltree::Node) {
        self.mark(n, ALL);
    }

    fn mark(&mut self, n: roxmltree::Node, how: u8) {
        let id = n.id().get_usize();
        if self.marks.len() <= id {
            self.marks.resize(id + 1, 0);
        }
        self.marks[id] |= how;
    }

    fn marked(&self, id: usize, how: u8) -> bool {
        self.marks.get(id).is_some_and(|m| m & how != 0)
    }

    /// Marks the first child of `n` named `name` (a reader reads only that one) as read,
    /// whole.
    pub fn first(&mut self, n: roxmltree::Node, name: &str) {
        if let Some(c) = child(n, name) {
            self.all(c);
        }
    }

    /// Collects what no item read, once the document is parsed: every element not marked,
    /// with its own content (the attributes `drop` names left out).
    pub fn finish(&mut self, doc: &roxmltree::Document, drop: &dyn Fn(&str) -> bool) {
        let mut stack = Vec::new();
        let mut out = Vec::new();
        self.unread_into(doc.root_element(), drop, &mut stack, &mut out);
        self.unread = out;
        self.marks = Vec::new();
    }

    fn unread_into(
        &self,
        n: roxmltree::Node,
        drop: &dyn Fn(&str) -> bool,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) {
        let id = n.id().get_usize();
        if self.marked(id, ALL) {
            return;
        }
        stack.push(step(n));
        if !self.marked(id, OWN) {
            out.push(format!("{} {}", stack.join("/"), own_content(n, drop)));
        }
        for c in n.children().filter(|c| c.is_element()) {
            self.unread_into(c, drop, stack, out);
        }
        stack.pop();
    }
    /// Adds an item keyed by its address.
    pub fn add(&mut self, address: &str, kind: &'static str, context: bool, body: Body) {
        self.add_keyed(address, address, kind, context, body);
    }

    /// Adds an item under a stable `key` (a GUID); a key met twice (a malformed export)
    /// keeps both, the second numbered.
    pub fn add_keyed(
        &mut self,
        key: &str,
        address: &str,
        kind: &'static str,
        context: bool,
        body: Body,
    ) {
        let (mut k, mut a) = (key.to_string(), address.to_string());
        // An item's attribute part is keyed `KEY\0`: numbered before the NUL, so that it
        // stays the part of the numbered item.
        let (stem, nul) = match key.strip_suffix('\u{0}') {
            Some(stem) => (stem, "\u{0}"),
            None => (key, ""),
        };
        let mut n = 2;
        while self.items.contains_key(&k) {
            k = format!("{stem} #{n}{nul}");
            a = format!("{address} #{n}");
            n += 1;
        }
        self.items.insert(
            k,
            Item {
                address: a,
                kind,
                context,
                body,
            },
        );
    }
}

/// `k=v` pairs joined by `sep`.
pub fn pairs(f: &BTreeMap<String, String>, sep: &str) -> String {
    f.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// One change between two exports, by address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// `Program MainProgram / Routine Conveyor1 / Rung 0→5`.
    pub address: String,
    /// `added`, `removed`, `changed`, `moved`, `comment`, `cosmetic`.
    pub what: &'static str,
    /// The kind of item (`routine`, `tag`, ...), which gives the class.
    pub kind: &'static str,
    /// In a dependency the export carries (`Use="Context"`), not its target.
    pub context: bool,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The changes from `old` to `new`, item by item; rungs aligned by their text, so that a
/// moved rung is one `moved` change, not a run of changed numbers.
pub fn compare(old: &Export, new: &Export) -> Vec<Change> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> =
        old.items.keys().chain(new.items.keys()).collect();
    let cosmetic = if new.cosmetic.is_empty() {
        old.cosmetic
    } else {
        new.cosmetic
    };
    // A routine's attributes are an item beside its body (key ending in NUL): added or
    // removed with it, it is not said twice.
    let both = |k: &str| {
        k.strip_suffix('\u{0}')
            .is_some_and(|body| old.items.contains_key(body) != new.items.contains_key(body))
    };
    for k in keys {
        if both(k) && old.items.contains_key(k.as_str()) != new.items.contains_key(k.as_str()) {
            continue;
        }
        match (old.items.get(k), new.items.get(k)) {
            (Some(o), None) => out.push(Change {
                address: o.address.clone(),
                what: "removed",
                kind: o.kind,
                context: o.context,
                old: Some(summary(&o.body)),
                new: None,
            }),
            (None, Some(n)) => out.push(Change {
                address: n.address.clone(),
                what: "added",
                kind: n.kind,
                context: n.context,
                old: None,
                new: Some(summary(&n.body)),
            }),
            (Some(o), Some(n)) => {
                let start = out.len();
                // A renamed object says so once, not again for its declaration, body or
                // the parts under it (whose own name stayed).
                let own = |a: &str| a.rsplit(" / ").next().unwrap_or("").to_string();
                if own(&o.address) != own(&n.address)
                    && !matches!(n.kind, "declaration" | "implementation" | "code")
                {
                    out.push(Change {
                        address: n.address.clone(),
                        what: "renamed",
                        kind: n.kind,
                        context: false,
                        old: Some(o.address.clone()),
                        new: Some(n.address.clone()),
                    });
                }
                compare_bodies(
                    &n.address,
                    n.kind,
                    (&o.body, &n.body),
                    (cosmetic, new.line_base),
                    &mut out,
                );
                for c in &mut out[start..] {
                    c.context = o.context || n.context;
                }
            }
            (None, None) => {}
        }
    }
    unread(&old.unread, &new.unread, &mut out);
    out
}

/// How many lines of an added or removed item's content a change carries.
const SHOWN: usize = 400;

/// An item's whole content, one line per rung, line or field (at most `SHOWN`, then how
/// many more): an added routine is reviewed from the tool, not elsewhere.
fn summary(b: &Body) -> String {
    let lines: Vec<String> = match b {
        Body::Rungs(r) => r
            .iter()
            .enumerate()
            .map(|(i, (t, c))| {
                if c.is_empty() {
                    format!("Rung {i}: {t}")
                } else {
                    format!("Rung {i}: {t}    // {}", c.replace('\n', " "))
                }
            })
            .collect(),
        Body::Lines(l) => l.clone(),
        Body::Fields(f) => f.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
    };
    if lines.is_empty() {
        return "(empty)".into();
    }
    let more = lines.len().saturating_sub(SHOWN);
    let mut out = lines.into_iter().take(SHOWN).collect::<Vec<_>>().join("\n");
    if more > 0 {
        out.push_str(&format!("\n… {more} more"));
    }
    out
}

fn compare_bodies(
    at: &str,
    kind: &'static str,
    (o, n): (&Body, &Body),
    (cosmetic, base): (&[&str], usize),
    out: &mut Vec<Change>,
) {
    let change = |address: String, what, old: Option<String>, new: Option<String>| Change {
        address,
        what,
        kind,
        context: false,
        old,
        new,
    };
    match (o, n) {
        (Body::Rungs(a), Body::Rungs(b)) => rungs(at, kind, a, b, out),
        (Body::Lines(a), Body::Lines(b)) => {
            let ra: Vec<&str> = a.iter().map(String::as_str).collect();
            let rb: Vec<&str> = b.iter().map(String::as_str).collect();
            let diff = similar::TextDiff::configure()
                .timeout(std::time::Duration::from_millis(500))
                .diff_slices(&ra, &rb);
            for op in diff.ops() {
                let (tag, or, nr) = op.as_tag_tuple();
                let line = |r: &std::ops::Range<usize>, v: &[String]| -> Option<String> {
                    (!r.is_empty()).then(|| v[r.clone()].join("\n"))
                };
                let what = match tag {
                    similar::DiffTag::Equal => continue,
                    similar::DiffTag::Delete => "removed",
                    similar::DiffTag::Insert => "added",
                    similar::DiffTag::Replace => "changed",
                };
                let lines = if nr.is_empty() {
                    format!("Line {}", or.start + base)
                } else if nr.len() == 1 {
                    format!("Line {}", nr.start + base)
                } else {
                    format!("Lines {}-{}", nr.start + base, nr.end - 1 + base)
                };
                out.push(change(
                    format!("{at} / {lines}"),
                    what,
                    line(&or, a),
                    line(&nr, b),
                ));
            }
        }
        (Body::Fields(a), Body::Fields(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (a.get(k), b.get(k));
                if x == y {
                    continue;
                }
                let what = if cosmetic.contains(&k.as_str()) {
                    "cosmetic"
                } else if k == OPAQUE {
                    "opaque"
                } else if k == "Description" {
                    "comment"
                } else if x.is_none() {
                    "added"
                } else if y.is_none() {
                    "removed"
                } else {
                    "changed"
                };
                out.push(change(format!("{at} / {k}"), what, x.cloned(), y.cloned()));
            }
        }
        _ => out.push(change(
            at.to_string(),
            "changed",
            Some(summary(o)),
            Some(summary(n)),
        )),
    }
}

/// How many runs of unread lines that differ are reported one by one.
const UNREAD_RUNS: usize = 20;

/// The runs of lines no item read that differ, each a logic change at the path of its
/// first element, with the lines before and after (at most 10 each).
fn unread(old: &[String], new: &[String], out: &mut Vec<Change>) {
    if old == new {
        return;
    }
    let (ra, rb): (Vec<&str>, Vec<&str>) = (
        old.iter().map(String::as_str).collect(),
        new.iter().map(String::as_str).collect(),
    );
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_millis(500))
        .diff_slices(&ra, &rb);
    let runs: Vec<_> = diff
        .ops()
        .iter()
        .map(|op| op.as_tag_tuple())
        .filter(|(tag, _, _)| *tag != similar::DiffTag::Equal)
        .collect();
    let show = |v: &[String], r: &std::ops::Range<usize>| -> Option<String> {
        let more = r.len().saturating_sub(10);
        let mut part: Vec<String> = v[r.clone()].iter().take(10).cloned().collect();
        if more > 0 {
            part.push(format!("… {more} more"));
        }
        (!part.is_empty()).then(|| part.join("\n"))
    };
    for (tag, or, nr) in runs.iter().take(UNREAD_RUNS) {
        let first = if nr.is_empty() {
            &old[or.start]
        } else {
            &new[nr.start]
        };
        let at = first.split(' ').next().unwrap_or("");
        out.push(Change {
            address: format!("File / {at}"),
            what: match tag {
                similar::DiffTag::Delete => "removed",
                similar::DiffTag::Insert => "added",
                _ => "changed",
            },
            kind: "unread",
            context: false,
            old: show(old, or),
            new: show(new, nr),
        });
    }
    if runs.len() > UNREAD_RUNS {
        out.push(Change {
            address: "File".into(),
            what: "changed",
            kind: "unread",
            context: false,
            old: None,
            new: Some(format!(
                "{} more runs of changed content outside the items (see the text of the export)",
                runs.len() - UNREAD_RUNS
            )),
        });
    }
}

/// Rungs aligned by their text: equal texts pair up (moved when the position changed),
/// a replaced run pairs position by position (changed), the rest is added or removed;
/// the comment of every paired rung is compared on its own.
fn rungs(
    at: &str,
    kind: &'static str,
    a: &[(String, String)],
    b: &[(String, String)],
    out: &mut Vec<Change>,
) {
    let ta: Vec<&str> = a.iter().map(|r| r.0.as_str()).collect();
    let tb: Vec<&str> = b.iter().map(|r| r.0.as_str()).collect();
    let diff = similar::TextDiff::configure()
        .timeout(std::time::Duration::from_millis(500))
        .diff_slices(&ta, &tb);
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    // Each run the alignment replaced: (old rungs, new rungs).
    let mut runs: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for op in diff.ops() {
        let (tag, or, nr) = op.as_tag_tuple();
        match tag {
            similar::DiffTag::Equal => pairs.extend(or.zip(nr)),
            _ => runs.push((or.collect(), nr.collect())),
        }
    }
    // A rung whose text left one place and arrived at another moved (found by text,
    // in one pass over what arrived).
    let mut arrived: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (_, came) in &runs {
        for &j in came.iter().rev() {
            arrived.entry(tb[j]).or_default().push(j);
        }
    }
    let mut moved = Vec::new();
    let (mut left_taken, mut came_taken) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    for (gone, _) in &runs {
        for &i in gone {
            if let Some(j) = arrived.get_mut(ta[i]).and_then(Vec::pop) {
                moved.push((i, j));
                left_taken.insert(i);
                came_taken.insert(j);
            }
        }
    }
    let change = |address: String, what, old: Option<String>, new: Option<String>| Change {
        address,
        what,
        kind,
        context: false,
        old,
        new,
    };
    for &(i, j) in &moved {
        out.push(change(
            format!("{at} / Rung {i}→{j}"),
            "moved",
            Some(a[i].0.clone()),
            Some(b[j].0.clone()),
        ));
    }
    // Within each replaced run, what is left pairs up in order (changed texts); the
    // surplus is added or removed where it stood.
    for (gone, came) in &runs {
        let mut left = gone.iter().filter(|i| !left_taken.contains(*i));
        let mut right = came.iter().filter(|j| !came_taken.contains(*j));
        loop {
            match (left.next(), right.next()) {
                (Some(&i), Some(&j)) => {
                    pairs.push((i, j));
                    out.push(change(
                        format!("{at} / Rung {j}"),
                        "changed",
                        Some(a[i].0.clone()),
                        Some(b[j].0.clone()),
                    ));
                }
                (Some(&i), None) => out.push(change(
                    format!("{at} / Rung {i}"),
                    "removed",
                    Some(a[i].0.clone()),
                    None,
                )),
                (None, Some(&j)) => out.push(change(
                    format!("{at} / Rung {j}"),
                    "added",
                    None,
                    Some(b[j].0.clone()),
                )),
                (None, None) => break,
            }
        }
    }
    pairs.extend(moved);
    pairs.sort_by_key(|p| p.1);
    for (i, j) in pairs {
        if a[i].1 != b[j].1 {
            out.push(change(
                format!("{at} / Rung {j} comment"),
                "comment",
                Some(a[i].1.clone()),
                Some(b[j].1.clone()),
            ));
        }
    }
}

/// Parses an export's XML (a leading BOM skipped, no DTD, at most 20 million nodes) and
/// checks that its root element is `root`.
///
/// Fails when the text is not XML or its root is another element.
pub fn parse_xml<'a>(text: &'a str, root: &str) -> Result<roxmltree::Document<'a>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let opt = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 20_000_000,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opt).map_err(|e| e.to_string())?;
    // Nesting deeper than any export has: refused before a reader recurses into it.
    let mut depth = vec![0u16; doc.descendants().count() + 1];
    for n in doc.descendants().filter(|n| n.is_element()) {
        let d = n.parent().map_or(0, |p| depth[p.id().get_usize()]) + 1;
        if usize::from(d) > MAX_DEPTH {
            return Err(format!(
                "elements nested deeper than {MAX_DEPTH} levels (line {})",
                doc.text_pos_at(n.range().start).row
            ));
        }
        depth[n.id().get_usize()] = d;
    }
    let got = doc.root_element().tag_name().name();
    if got != root {
        return Err(format!("the root element is {got}, not {root}"));
    }
    Ok(doc)
}

/// The attributes that name an element among its siblings, in the order looked for.
const NAMING: &[&str] = &["Name", "name", "Id", "Number", "Index", "Operand", "Type"];

/// An element's path step: `Port[1]` (by its naming attribute) or `Port#2` (the second of
/// its tag among siblings without one).
fn step(n: roxmltree::Node) -> String {
    let tag = n.tag_name().name();
    if let Some(v) = NAMING.iter().find_map(|a| n.attribute(*a)) {
        return format!("{tag}[{v}]");
    }
    let k = n
        .prev_siblings()
        .skip(1)
        .filter(|s| s.is_element() && s.tag_name().name() == tag)
        .count();
    if k == 0 {
        tag.to_string()
    } else {
        format!("{tag}#{}", k + 1)
    }
}

/// An element's own content as text: its attributes but those `drop` names, sorted, and
/// its text (CDATA included), each line trimmed and blank lines left out (a re-export
/// re-indents embedded text too).
pub fn own_content(n: roxmltree::Node, drop: &dyn Fn(&str) -> bool) -> String {
    let mut attrs: Vec<String> = n
        .attributes()
        .filter(|a| !drop(a.name()))
        .map(|a| format!("{}={}", a.name(), a.value()))
        .collect();
    attrs.sort();
    let text: String = n
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect();
    let text: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if !text.is_empty() {
        attrs.push(text.join("\n"));
    }
    attrs.join(" ")
}

/// Everything below `n` that the format's reader does not read as items of their own —
/// every element not excluded by `skip`, at its relative path (`Ports/Port[1]`), with its
/// own content — so that no part of an export can change unreported.
pub fn residual(
    n: roxmltree::Node,
    skip: &dyn Fn(roxmltree::Node) -> bool,
    drop: &dyn Fn(&str) -> bool,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
) {
    for c in n.children().filter(|c| c.is_element() && !skip(*c)) {
        let path = format!("{prefix}{}", step(c));
        let mut key = path.clone();
        let mut k = 2;
        while out.contains_key(&key) {
            key = format!("{path} #{k}");
            k += 1;
        }
        out.insert(key, own_content(c, drop));
        residual(c, skip, drop, &format!("{path}/"), out);
    }
}

/// The whole document as lines — element path, own content — with the attributes `drop`
/// names left out: what the catch-all compares when no item changed, so that white
/// space, attribute order, CDATA splits and entities are formatting, and anything else
/// is a change.
pub fn canonical(doc: &roxmltree::Document, drop: &dyn Fn(&str) -> bool) -> Vec<String> {
    canonical_node(doc.root_element(), drop)
}

/// The lines of [`canonical`] for the element `n` and everything below it.
pub fn canonical_node(n: roxmltree::Node, drop: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    canonical_into(n, drop, &mut stack, &mut out);
    out
}

fn canonical_into(
    n: roxmltree::Node,
    drop: &dyn Fn(&str) -> bool,
    stack: &mut Vec<String>,
    out: &mut Vec<String>,
) {
    stack.push(step(n));
    out.push(format!("{} {}", stack.join("/"), own_content(n, drop)));
    for c in n.children().filter(|c| c.is_element()) {
        canonical_into(c, drop, stack, out);
    }
    stack.pop();
}

/// The deepest nesting an export may have: readers walk it recursively.
pub const MAX_DEPTH: usize = 512;

/// The first child element of `n` named `name`.
pub fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

pub fn children<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

/// All text below `n` (CDATA included), trimmed of the export's own line breaks.
pub fn text_of(n: Option<roxmltree::Node>) -> String {
    n.map(|n| {
        n.descendants()
            .filter(|d| d.is_text())
            .filter_map(|d| d.text())
            .collect::<String>()
    })
    .unwrap_or_default()
    .trim()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_extension_and_the_root_element() {
        let l5x = b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\r\n<!-- exported -->\n<RSLogix5000Content SchemaRevision=\"1.0\">";
        assert_eq!(detect("a/b.L5X", l5x), Some("l5x"));
        // The extension alone is not enough, nor the root alone.
        assert_eq!(detect("a/b.L5X", b"<html>"), None);
        assert_eq!(detect("a/b.xml", l5x), None);
        let tc6 = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><project xmlns=\"http://www.plcopen.org/xml/tc6_0200\">";
        assert_eq!(detect("PLCopen.xml", tc6), Some("plcopen"));
        assert_eq!(
            detect(
                "x.TcPOU",
                b"<?xml version=\"1.0\"?>\n<TcPlcObject Version=\"1.1.0.1\">"
            ),
            Some("twincat")
        );
        assert_eq!(
            detect("FB10.scl", b"FUNCTION_BLOCK FB10"),
            Some("siemens-source")
        );
        assert_eq!(detect("line.ACD", b"\x00\x01"), Some("binary-project"));
        assert_eq!(detect("notes.txt", b"hello"), None);
        assert_eq!(root_element(b"<?xml"), None);
    }
}
