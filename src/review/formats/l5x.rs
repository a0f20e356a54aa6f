//! Rockwell Logix L5X exports as addressed items: routines (RLL rungs with their comments,
//! ST lines, other bodies canonically), tags (attributes and decorated values), data types
//! and their members, add-on instructions (parameters, local tags, routines), modules,
//! tasks and the file's own attributes. What an engineer reviews, by address
//! (`Program MainProgram / Routine Conveyor1`), with the cosmetic attributes named.

use std::collections::BTreeMap;

use super::{Body, Export, child, children, pairs, text_of};

/// Attributes that change on every export or edit without changing what the controller
/// runs: listed as cosmetic, never hidden.
pub const COSMETIC: &[&str] = &[
    "ExportDate",
    "ExportOptions",
    "Owner",
    "LastModifiedDate",
    "EditedDate",
    "CreatedDate",
    "CreatedBy",
    "EditedBy",
    "TargetLastEdited",
    "ProjectCreationDate",
    // A tag's raw `<Data>` (L5K or hex) beside its decorated data: the same value.
    RAW_DATA,
];

/// The field of a tag's raw data beside decorated data.
pub const RAW_DATA: &str = "raw data";

/// Parses an L5X export.
///
/// Fails when the text is not XML or not an `RSLogix5000Content` document.
pub fn parse(text: &str) -> Result<Export, String> {
    let doc = super::parse_xml(text, "RSLogix5000Content")?;
    let root = doc.root_element();
    let mut ex = Export {
        cosmetic: COSMETIC,
        ..Export::default()
    };
    let mut file = BTreeMap::new();
    for a in root.attributes() {
        file.insert(a.name().to_string(), a.value().to_string());
    }
    ex.add("File", "file", false, Body::Fields(file));
    ex.own(root);
    walk(root, "", false, &mut ex);
    ex.finish(&doc, &|a| {
        COSMETIC.contains(&a)
            || matches!(
                a,
                "X" | "Y" | "Width" | "Height" | "HideDesc" | "DescX" | "DescY" | "DescWidth"
            )
    });
    Ok(ex)
}

/// Marks `n` as read with its first description (what `fields_of` reads).
fn mark_fields(n: roxmltree::Node, ex: &mut Export) {
    ex.own(n);
    ex.first(n, "Description");
}

fn is_context(n: roxmltree::Node, inherited: bool) -> bool {
    match n.attribute("Use") {
        Some("Context") => true,
        Some("Target") => false,
        _ => inherited,
    }
}

/// The attributes of `n` as fields, with its description.
fn fields_of(n: roxmltree::Node) -> BTreeMap<String, String> {
    let mut f: BTreeMap<String, String> = n
        .attributes()
        .filter(|a| a.name() != "Name" && a.name() != "Use")
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect();
    let d = text_of(child(n, "Description"));
    if !d.is_empty() {
        f.insert("Description".into(), d);
    }
    f
}

/// Attributes an element's own content leaves out: its name (the address has it), `Use`
/// (the item says dependency), and the cosmetic ones (compared as their own fields).
fn dropped(a: &str) -> bool {
    a == "Name" || a == "Use" || COSMETIC.contains(&a)
}

/// Adds to `f` every element below `n` but the children named in `read` (what the item
/// already reads) and descriptions: nothing an export holds goes unread.
fn rest(n: roxmltree::Node, read: &[&str], f: &mut BTreeMap<String, String>) {
    let skip = |c: roxmltree::Node| {
        let t = c.tag_name().name();
        t == "Description"
            || (c.parent() == Some(n) && read.contains(&t))
            || (t == "Data" && c.attribute("Format") == Some("Decorated"))
    };
    let keep = |a: &str| a == "Use" || COSMETIC.contains(&a);
    super::residual(n, &skip, &keep, "", f);
}

fn walk(n: roxmltree::Node, scope: &str, inherited: bool, ex: &mut Export) {
    for c in n.children().filter(|c| c.is_element()) {
        let ctx = is_context(c, inherited);
        let name = c.attribute("Name").unwrap_or("");
        match c.tag_name().name() {
            "Controller" => {
                mark_fields(c, ex);
                ex.add("Controller", "controller", ctx, Body::Fields(fields_of(c)));
                walk(c, "Controller", ctx, ex);
            }
            "Program" => {
                let here = if scope.is_empty() || scope == "Controller" {
                    format!("Program {name}")
                } else {
                    format!("{scope} / Program {name}")
                };
                mark_fields(c, ex);
                ex.add(&here, "program", ctx, Body::Fields(fields_of(c)));
                walk(c, &here, ctx, ex);
            }
            "AddOnInstructionDefinition" => {
                let here = format!("AOI {name}");
                let mut f = fields_of(c);
                for p in child(c, "Parameters")
                    .into_iter()
                    .flat_map(|p| children(p, "Parameter"))
                {
                    f.insert(
                        format!("Parameter {}", p.attribute("Name").unwrap_or("")),
                        tag_text(p),
                    );
                }
                for t in child(c, "LocalTags")
                    .into_iter()
                    .flat_map(|p| children(p, "LocalTag"))
                {
                    f.insert(
                        format!("LocalTag {}", t.attribute("Name").unwrap_or("")),
                        tag_text(t),
                    );
                }
                dependencies(c, &mut f);
                rest(
                    c,
                    &["Parameters", "LocalTags", "Routines", "Dependencies"],
                    &mut f,
                );
                ex.add(&here, "aoi", ctx, Body::Fields(f));
                // Everything but its routines is in its fields.
                ex.own(c);
                for k in c.children().filter(|k| k.is_element()) {
                    if k.tag_name().name() != "Routines" {
                        ex.all(k);
                    }
                }
                if let Some(r) = child(c, "Routines") {
                    ex.own(r);
                    walk(r, &here, ctx, ex);
                }
            }
            "Routine" => {
                let here = if scope.is_empty() {
                    format!("Routine {name}")
                } else {
                    format!("{scope} / Routine {name}")
                };
                let body = routine_body(c, ex);
                mark_fields(c, ex);
                let attrs = fields_of(c);
                ex.add(&here, "routine", ctx, body);
                // Its type and description, beside the body.
                ex.add_keyed(
                    &format!("{here}\u{0}"),
                    &here,
                    "routine",
                    ctx,
                    Body::Fields(attrs),
                );
            }
            // Source-protected content: only its hash can be compared.
            "EncodedData" => {
                let what = match c.attribute("EncodedType").unwrap_or("") {
                    "AddOnInstructionDefinition" => "AOI",
                    other => other,
                };
                let here = if scope.is_empty() || what == "AOI" {
                    format!("{what} {name}")
                } else {
                    format!("{scope} / {what} {name}")
                };
                let mut f = fields_of(c);
                // The encoded text without its line breaks and indentation (base64 is
                // the same with any white space).
                let body: String = c
                    .descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .flat_map(|t| t.chars().filter(|ch| !ch.is_whitespace()))
                    .collect();
                f.insert(
                    super::OPAQUE.into(),
                    format!("sha256 {}", vault::Hash::of(body.as_bytes()).to_hex()),
                );
                let kind = if what == "AOI" { "aoi" } else { "routine" };
                ex.all(c);
                ex.add(&here, kind, ctx, Body::Fields(f));
            }
            "Tag" => {
                let owner = if scope.is_empty() {
                    "Controller"
                } else {
                    scope
                };
                let mut f = fields_of(c);
                f.insert("value".into(), tag_value(c));
                // The raw `<Data>` beside decorated data is the same value in another
                // form: cosmetic, listed; everything else a tag holds (consumed and
                // produced connections, forces, operand comments, alarms) is read.
                if children(c, "Data").any(|d| d.attribute("Format") == Some("Decorated")) {
                    let raw: Vec<String> = children(c, "Data")
                        .filter(|d| d.attribute("Format") != Some("Decorated"))
                        .map(|d| super::own_content(d, &|_| false))
                        .collect();
                    if !raw.is_empty() {
                        f.insert(RAW_DATA.into(), raw.join(" | "));
                    }
                    rest(c, &["Data"], &mut f);
                } else {
                    rest(c, &[], &mut f);
                }
                ex.all(c);
                ex.add(
                    &format!("{owner} / Tag {name}"),
                    "tag",
                    ctx,
                    Body::Fields(f),
                );
            }
            "DataType" => {
                let mut f = fields_of(c);
                dependencies(c, &mut f);
                rest(c, &["Members", "Dependencies"], &mut f);
                // The hidden SINT members that hold a data type's BOOLs are named by the
                // editor (`ZZZZZZZZZZUDT_A0`, after the type): named here by their order,
                // in the BOOLs' `Target` too, so that only their number and type count.
                let members: Vec<roxmltree::Node> = child(c, "Members")
                    .into_iter()
                    .flat_map(|m| children(m, "Member"))
                    .collect();
                let hosts: BTreeMap<&str, String> = members
                    .iter()
                    .filter(|m| m.attribute("Hidden") == Some("true"))
                    .filter_map(|m| m.attribute("Name"))
                    .filter(|n| n.starts_with("ZZZZZZZZZZ"))
                    .enumerate()
                    .map(|(i, n)| (n, format!("(hidden BOOL host {})", i + 1)))
                    .collect();
                for m in members {
                    let name = m.attribute("Name").unwrap_or("");
                    let mut mf = fields_of(m);
                    if let Some(t) = mf.get_mut("Target")
                        && let Some(h) = hosts.get(t.as_str())
                    {
                        *t = h.clone();
                    }
                    let name = hosts.get(name).map(String::as_str).unwrap_or(name);
                    f.insert(format!("Member {name}"), pairs(&mf, " "));
                }
                // Read: its own attributes and description, each member's, its
                // dependencies and (by `rest`) everything else but the members.
                mark_fields(c, ex);
                for k in c.children().filter(|k| k.is_element()) {
                    match k.tag_name().name() {
                        "Members" => {
                            ex.own(k);
                            for m in children(k, "Member") {
                                mark_fields(m, ex);
                            }
                        }
                        _ => ex.all(k),
                    }
                }
                ex.add(
                    &format!("DataType {name}"),
                    "datatype",
                    ctx,
                    Body::Fields(f),
                );
            }
            "Module" => {
                // Everything a module holds: ports and addresses, keying, connections
                // and their RPIs, configuration data.
                let mut f = fields_of(c);
                rest(c, &[], &mut f);
                ex.all(c);
                ex.add(&format!("Module {name}"), "module", ctx, Body::Fields(f));
            }
            "Task" => {
                let mut f = fields_of(c);
                let progs: Vec<&str> = c
                    .descendants()
                    .filter(|d| d.tag_name().name() == "ScheduledProgram")
                    .filter_map(|d| d.attribute("Name"))
                    .collect();
                f.insert("ScheduledPrograms".into(), progs.join(", "));
                // An event task's trigger, and anything else a task holds.
                rest(c, &["ScheduledPrograms"], &mut f);
                ex.all(c);
                ex.add(&format!("Task {name}"), "task", ctx, Body::Fields(f));
            }
            // A description is its owner's field.
            "Description" => {}
            // Containers (`Tags`, `Programs`) and elements read as nothing else
            // (`RedundancyInfo`, `Security`, `WallClockTime`, `ParameterConnections`...):
            // their own content is an item, then what is inside.
            other => {
                ex.own(c);
                let own = super::own_content(c, &dropped);
                if !own.is_empty() {
                    let here = if scope.is_empty() {
                        other.to_string()
                    } else {
                        format!("{scope} / {other}")
                    };
                    let mut f = BTreeMap::new();
                    f.insert("attributes".into(), own);
                    ex.add(&here, "other", ctx, Body::Fields(f));
                }
                walk(c, scope, ctx, ex)
            }
        }
    }
}

/// The data types and instructions an AOI or a data type depends on, as one field.
fn dependencies(n: roxmltree::Node, f: &mut BTreeMap<String, String>) {
    let mut d: Vec<String> = child(n, "Dependencies")
        .into_iter()
        .flat_map(|d| children(d, "Dependency"))
        .map(|d| {
            format!(
                "{} {}",
                d.attribute("Type").unwrap_or(""),
                d.attribute("Name").unwrap_or("")
            )
        })
        .collect();
    d.sort();
    d.dedup();
    if !d.is_empty() {
        f.insert("Dependencies".into(), d.join(", "));
    }
}

/// A tag's value: its decorated data when there is some (the raw `<Data>` hex is the same
/// value in another form), else the raw data.
fn tag_value(t: roxmltree::Node) -> String {
    // An AOI's parameters and local tags hold theirs as `DefaultData`.
    let datas: Vec<roxmltree::Node> = t
        .children()
        .filter(|c| matches!(c.tag_name().name(), "Data" | "DefaultData"))
        .collect();
    // Every decorated copy (an export has one; a second is read, not skipped).
    let decorated_copies: Vec<String> = datas
        .iter()
        .filter(|d| d.attribute("Format") == Some("Decorated"))
        .map(|d| {
            let mut parts = Vec::new();
            decorated(*d, "", &mut parts);
            parts.join(" ")
        })
        .collect();
    if !decorated_copies.is_empty() {
        return decorated_copies.join(" | ");
    }
    datas
        .iter()
        .map(|d| text_of(Some(*d)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn decorated(n: roxmltree::Node, path: &str, out: &mut Vec<String>) {
    for c in n.children().filter(|c| c.is_element()) {
        let name = c.attribute("Name").or(c.attribute("Index")).unwrap_or("");
        let here = if name.is_empty() {
            path.to_string()
        } else if path.is_empty() {
            name.to_string()
        } else if name.starts_with('[') {
            format!("{path}{name}")
        } else {
            format!("{path}.{name}")
        };
        if let Some(v) = c.attribute("Value") {
            out.push(format!(
                "{}={v}",
                if here.is_empty() { "value" } else { &here }
            ));
        }
        decorated(c, &here, out);
    }
}

fn tag_text(t: roxmltree::Node) -> String {
    let mut f = fields_of(t);
    rest(t, &["Data", "DefaultData"], &mut f);
    format!("{} value={}", pairs(&f, " "), tag_value(t))
}

/// A line's text without the export's own layout around it: leading or trailing white
/// space that holds a line break is the file's indentation, not the line's.
fn strip_layout(t: &str) -> &str {
    let lead = t.len() - t.trim_start().len();
    let t = if t[..lead].contains('\n') {
        &t[lead..]
    } else {
        t
    };
    let trail = t.trim_end().len();
    if t[trail..].contains('\n') {
        &t[..trail]
    } else {
        t
    }
}

/// A routine's body, marking in `ex` what it read: the first RLL, ST, FBD or SFC body
/// (a second one is left unread, so it is compared as such), each rung's first text and
/// comment, every ST line.
fn routine_body(r: roxmltree::Node, ex: &mut Export) -> Body {
    if let Some(rll) = child(r, "RLLContent") {
        ex.own(rll);
        for g in children(rll, "Rung") {
            ex.own(g);
            ex.first(g, "Text");
            ex.first(g, "Comment");
        }
        return Body::Rungs(
            children(rll, "Rung")
                .map(|g| {
                    let text = text_of(child(g, "Text"));
                    // A rung of a pending online edit (inserted, replaced, deleted) says so.
                    let text = match g.attribute("Type") {
                        None | Some("N") => text,
                        Some(t) => format!("[Type={t}] {text}"),
                    };
                    (text, text_of(child(g, "Comment")))
                })
                .collect(),
        );
    }
    if let Some(st) = child(r, "STContent") {
        ex.own(st);
        for l in children(st, "Line") {
            ex.all(l);
        }
        let mut lines: Vec<(u64, String)> = children(st, "Line")
            .map(|l| {
                let n = l
                    .attribute("Number")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(u64::MAX);
                let t: String = l
                    .descendants()
                    .filter(|d| d.is_text())
                    .filter_map(|d| d.text())
                    .collect();
                (n, strip_layout(&t).to_string())
            })
            .collect();
        lines.sort_by_key(|(n, _)| *n);
        return Body::Lines(lines.into_iter().map(|(_, t)| t).collect());
    }
    let mut f = BTreeMap::new();
    // FBD sheets and SFC charts as graphs: elements named by their operand, wires and
    // links by the elements they join; IDs and positions (what an editor renumbers and
    // moves) left out.
    if let Some(fbd) = child(r, "FBDContent") {
        ex.all(fbd);
        for s in children(fbd, "Sheet") {
            let at = format!("Sheet {} / ", s.attribute("Number").unwrap_or("?"));
            graph(s, &at, &mut f);
        }
        return Body::Fields(f);
    }
    if let Some(sfc) = child(r, "SFCContent") {
        ex.all(sfc);
        graph(sfc, "", &mut f);
        return Body::Fields(f);
    }
    // Other bodies: their elements without positions, one field per element in order.
    for k in r.children().filter(|k| k.is_element()) {
        ex.all(k);
    }
    for (i, d) in r
        .descendants()
        .filter(|d| d.is_element())
        .skip(1)
        .enumerate()
    {
        f.insert(
            format!("{i:05} {}", d.tag_name().name()),
            canonical(d, false),
        );
    }
    Body::Fields(f)
}

/// Attributes an editor changes when it moves or renumbers an element.
fn layout(name: &str) -> bool {
    matches!(
        name,
        "ID" | "X" | "Y" | "Width" | "Height" | "HideDesc" | "DescX" | "DescY" | "DescWidth"
    )
}

/// An element as text: its attributes other than layout, then (with `deep`) every
/// element below it with its attributes, and the text, in document order.
fn canonical(n: roxmltree::Node, deep: bool) -> String {
    let mut parts = Vec::new();
    let mut push = |d: roxmltree::Node, tag: bool| {
        let attrs: Vec<String> = d
            .attributes()
            .filter(|a| !layout(a.name()))
            .map(|a| format!("{}={}", a.name(), a.value()))
            .collect();
        if tag {
            parts.push(format!("<{}>", d.tag_name().name()));
        }
        parts.extend(attrs);
        let text: String = d
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect();
        if !text.trim().is_empty() {
            parts.push(text.trim().to_string());
        }
    };
    push(n, false);
    if deep {
        for d in n.descendants().filter(|d| d.is_element()).skip(1) {
            push(d, true);
        }
    }
    parts.join(" ")
}

/// The elements of an FBD sheet or an SFC chart below `c` as fields named by operand
/// (`Block BAND_01 (BAND)`, `IRef Speed`, `Step Step_000`), and its wires and links
/// by the elements they join (`Wire IRef Speed → Block BAND_01 (BAND).In1`).
fn graph(c: roxmltree::Node, at: &str, f: &mut BTreeMap<String, String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut unique = |base: String| {
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base} #{n}")
        }
    };
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    let links = |e: &roxmltree::Node| matches!(e.tag_name().name(), "Wire" | "DirectedLink");
    for e in c.children().filter(|e| e.is_element() && !links(e)) {
        let tag = e.tag_name().name();
        let base = match (e.attribute("Operand"), tag) {
            (Some(o), "Block" | "AddOnInstruction" | "Function" | "JSR" | "SBR" | "RET") => {
                format!("{tag} {o} ({})", e.attribute("Type").unwrap_or(""))
            }
            (Some(o), _) => format!("{tag} {o}"),
            (None, _) => tag.to_string(),
        };
        let name = unique(base);
        if let Some(id) = e.attribute("ID") {
            names.insert(id, name.clone());
        }
        // Legs of a branch are joined by links too.
        for (k, d) in e
            .descendants()
            .filter(|d| d.is_element() && *d != e)
            .filter(|d| d.attribute("ID").is_some())
            .enumerate()
        {
            names.insert(
                d.attribute("ID").unwrap_or(""),
                format!("{name} {} {}", d.tag_name().name(), k + 1),
            );
        }
        f.insert(format!("{at}{name}"), canonical(e, true));
    }
    for e in c.children().filter(|e| e.is_element() && links(e)) {
        let end = |id: &str, param: &str| {
            let who = e
                .attribute(id)
                .map(|i| {
                    names
                        .get(i)
                        .cloned()
                        .unwrap_or(format!("ID {i} (no such element)"))
                })
                .unwrap_or_default();
            match e.attribute(param) {
                Some(p) => format!("{who}.{p}"),
                None => who,
            }
        };
        let word = if e.tag_name().name() == "Wire" {
            "Wire"
        } else {
            "Link"
        };
        let key = unique(format!(
            "{word} {} → {}",
            end("FromID", "FromParam"),
            end("ToID", "ToParam")
        ));
        let rest: Vec<String> = e
            .attributes()
            .filter(|a| !matches!(a.name(), "FromID" | "ToID" | "FromParam" | "ToParam"))
            .map(|a| format!("{}={}", a.name(), a.value()))
            .collect();
        f.insert(format!("{at}{key}"), rest.join(" "));
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{Change, compare};
    use super::*;

    const OLD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<RSLogix5000Content SchemaRevision="1.0" SoftwareRevision="20.01" TargetName="R" TargetType="Routine" ExportDate="Thu Feb 22 15:54:34 2018">
<Controller Use="Context" Name="C">
<Tags Use="Context">
<Tag Name="Speed" TagType="Base" DataType="DINT" Radix="Decimal">
<Data>E8 03 00 00</Data>
<Data Format="Decorated"><DataValue DataType="DINT" Radix="Decimal" Value="1000"/></Data>
</Tag>
</Tags>
<Programs Use="Context">
<Program Use="Context" Name="Main">
<Routines Use="Context">
<Routine Use="Target" Name="Belt" Type="RLL">
<RLLContent>
<Rung Number="0" Type="N"><Comment><![CDATA[first]]></Comment><Text><![CDATA[XIC(A)OTE(B);]]></Text></Rung>
<Rung Number="1" Type="N"><Text><![CDATA[XIC(C)OTE(D);]]></Text></Rung>
<Rung Number="2" Type="N"><Text><![CDATA[XIC(E)OTE(F);]]></Text></Rung>
</RLLContent>
</Routine>
</Routines>
</Program>
</Programs>
</Controller>
</RSLogix5000Content>"#;

    fn changes(old: &str, new: &str) -> Vec<(String, &'static str)> {
        compare(&parse(old).unwrap(), &parse(new).unwrap())
            .into_iter()
            .map(|c| (c.address, c.what))
            .collect()
    }

    #[test]
    fn a_moved_rung_is_one_move_and_its_comment_stays_where_it_was() {
        // Rung 0's text moves to the end; the comment stays on position 0.
        let new = OLD
            .replace("<![CDATA[XIC(A)OTE(B);]]>", "<![CDATA[XIC(C)OTE(D);]]>")
            .replacen(
                "<Rung Number=\"1\" Type=\"N\"><Text><![CDATA[XIC(C)OTE(D);]]>",
                "<Rung Number=\"1\" Type=\"N\"><Text><![CDATA[XIC(E)OTE(F);]]>",
                1,
            )
            .replacen(
                "<Rung Number=\"2\" Type=\"N\"><Text><![CDATA[XIC(E)OTE(F);]]>",
                "<Rung Number=\"2\" Type=\"N\"><Text><![CDATA[XIC(A)OTE(B);]]>",
                1,
            );
        assert_eq!(
            changes(OLD, &new),
            [
                (
                    "Program Main / Routine Belt / Rung 0→2".to_string(),
                    "moved"
                ),
                (
                    "Program Main / Routine Belt / Rung 0 comment".to_string(),
                    "comment"
                ),
                (
                    "Program Main / Routine Belt / Rung 2 comment".to_string(),
                    "comment"
                ),
            ]
        );
    }

    /// The shared corpus of real exports (`PLCVAULT_CORPUS`, default `../shared/corpus`),
    /// or `None`, saying plainly that the test did not run, where there is none (the
    /// corpus is test data beside the repository, never in it; CI has it).
    pub fn corpus(test: &str) -> Option<std::path::PathBuf> {
        let dir = std::env::var_os("PLCVAULT_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
            });
        if dir.join("pairs.tsv").exists() {
            return Some(dir);
        }
        eprintln!(
            "DID NOT RUN {test}: no corpus at {} (set PLCVAULT_CORPUS)",
            dir.display()
        );
        None
    }

    #[test]
    fn the_belt_conveyor_pair_is_one_moved_rung_and_three_comment_changes() {
        let Some(dir) = corpus("l5x belt conveyor pair") else {
            return;
        };
        let at = dir.join("l5x/alairjunior-l5x2c/6a3a3c7/examples");
        let read = |n: &str| std::fs::read_to_string(at.join(n)).unwrap();
        let got = changes(
            &read("belt_conveyor.L5X"),
            &read("belt_conveyor_wrong_rearm.L5X"),
        );
        let r = "Program MainProgram / Routine Conveyor1";
        assert_eq!(
            got,
            [
                (format!("{r} / Rung 0→5"), "moved"),
                (format!("{r} / Rung 0 comment"), "comment"),
                (format!("{r} / Rung 5 comment"), "comment"),
                (format!("{r} / Rung 9 comment"), "comment"),
            ]
        );
    }

    #[test]
    fn every_corpus_l5x_parses_and_matches_itself() {
        let Some(dir) = corpus("l5x corpus parse") else {
            return;
        };
        let mut n = 0;
        for e in walkdir::WalkDir::new(dir.join("l5x")) {
            let e = e.unwrap();
            if !e
                .file_name()
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with(".l5x")
            {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            let text = text.trim_start_matches('\u{feff}');
            let ex = parse(text).unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            assert!(ex.items.len() > 1, "{}", e.path().display());
            assert!(compare(&ex, &ex).is_empty());
            n += 1;
        }
        assert!(n >= 10, "{n} L5X files");
    }

    #[test]
    fn the_logix_library_pairs_give_their_stated_changes() {
        let Some(dir) = corpus("l5x LogixLibraries pairs") else {
            return;
        };
        let lib = dir.join("l5x/JeremyMedders-LogixLibraries");
        // "COMMIT:PATH" of the old and the new version.
        let pair = |a: &str, b: &str| {
            let read = |at: &str| {
                let (commit, path) = at.split_once(':').unwrap();
                parse(&std::fs::read_to_string(lib.join(commit).join(path)).unwrap()).unwrap()
            };
            compare(&read(a), &read(b))
        };
        let ie = "src/Device/Cisco/IE4000/Dvc_CiscoIE4000_AOI.L5X";
        // Metadata only: every change cosmetic.
        let c = pair(&format!("9cf9590:{ie}"), &format!("453a129:{ie}"));
        assert_eq!(c.len(), 9, "{c:?}");
        assert!(c.iter().all(|c| c.what == "cosmetic"), "{c:?}");
        // One parameter's usage, and dates.
        let c = pair(&format!("453a129:{ie}"), &format!("9a7c644:{ie}"));
        let real: Vec<&Change> = c.iter().filter(|c| c.what != "cosmetic").collect();
        assert_eq!(real.len(), 1, "{c:?}");
        assert_eq!(real[0].address, "AOI Dvc_CiscoIE4000 / Parameter Val_Fault");
        assert!(real[0].old.as_deref().unwrap().contains("Usage=Input"));
        assert!(real[0].new.as_deref().unwrap().contains("Usage=Output"));
        // ST lines inserted and one changed, a local tag and a dependency AOI added.
        let sd = "src/System/Sys_SDCard_AOI.L5X";
        let c = pair(&format!("62b9bd4:{sd}"), &format!("a526379:{sd}"));
        let has = |addr: &str, what: &str| c.iter().any(|c| c.address == addr && c.what == what);
        assert!(
            has("AOI Sys_SDCard / Routine Logic / Lines 5-6", "added"),
            "{c:?}"
        );
        assert!(
            has("AOI Sys_SDCard / Routine Logic / Line 8", "changed"),
            "{c:?}"
        );
        assert!(has("AOI Sys_SDCard / LocalTag Module", "added"), "{c:?}");
        assert!(has("AOI Sys_Module", "added"), "{c:?}");
        let line8 = c.iter().find(|c| c.address.ends_with("Line 8")).unwrap();
        assert_eq!(line8.old.as_deref(), Some("PG.Inp_Enable := 1;"));
        assert_eq!(
            line8.new.as_deref(),
            Some("PG.Inp_Enable := Module.Sts_Connected;")
        );
    }

    #[test]
    fn values_timestamps_and_itself() {
        assert!(changes(OLD, OLD).is_empty());
        let bumped = OLD.replace("Thu Feb 22 15:54:34 2018", "Fri Feb 23 08:00:00 2018");
        assert_eq!(
            changes(OLD, &bumped),
            [("File / ExportDate".to_string(), "cosmetic")]
        );
        let value = OLD.replace("Value=\"1000\"", "Value=\"1200\"");
        assert_eq!(
            changes(OLD, &value),
            [("Controller / Tag Speed / value".to_string(), "changed")]
        );
        let edited = OLD.replace("XIC(C)OTE(D);", "XIO(C)OTE(D);");
        assert_eq!(
            changes(OLD, &edited),
            [(
                "Program Main / Routine Belt / Rung 1".to_string(),
                "changed"
            )]
        );
        assert!(parse("<html/>").is_err());
    }

    #[test]
    fn the_sdcard_revision_pair_gives_exactly_its_stated_changes() {
        let Some(dir) = corpus("l5x SDCard revision pair") else {
            return;
        };
        let lib = dir.join("l5x/JeremyMedders-LogixLibraries");
        let sd = "src/System/Sys_SDCard_AOI.L5X";
        let read =
            |c: &str| parse(&std::fs::read_to_string(lib.join(c).join(sd)).unwrap()).unwrap();
        let got: Vec<(String, &str, bool)> = compare(&read("a526379"), &read("03ccc11"))
            .into_iter()
            .map(|c| (c.address, c.what, c.context))
            .collect();
        let want = [
            ("AOI Sys_Module / EditedDate", "cosmetic", true),
            ("AOI Sys_Module / SoftwareRevision", "changed", true),
            ("AOI Sys_Module / Routine Logic / Line 43", "changed", true),
            ("AOI Sys_Module / Routine Prescan / Line 2", "changed", true),
            ("AOI Sys_SDCard / EditedDate", "cosmetic", false),
            ("AOI Sys_SDCard / Parameter Ref_MsgResp", "changed", false),
            ("AOI Sys_SDCard / Revision", "changed", false),
            ("AOI Sys_SDCard / SoftwareRevision", "changed", false),
            ("AOI Sys_SDCard / Routine Logic / Line 2", "changed", false),
            ("AOI Sys_SDCard / Routine Logic / Line 20", "changed", false),
            (
                "AOI Sys_SDCard / Routine Prescan / Line 2",
                "changed",
                false,
            ),
            ("File / ExportDate", "cosmetic", false),
            ("File / SoftwareRevision", "changed", false),
            ("File / TargetLastEdited", "cosmetic", false),
            ("File / TargetRevision", "changed", false),
        ];
        let want: Vec<(String, &str, bool)> = want
            .iter()
            .map(|(a, w, c)| (a.to_string(), *w, *c))
            .collect();
        assert_eq!(got, want);
    }

    const FBD: &str = r#"<?xml version="1.0"?>
<RSLogix5000Content SchemaRevision="1.0" TargetType="Routine">
<Controller Use="Context" Name="C"><Programs Use="Context"><Program Use="Context" Name="Main"><Routines Use="Context">
<Routine Use="Target" Name="Mix" Type="FBD">
<FBDContent SheetSize="Letter" SheetOrientation="Landscape">
<Sheet Number="1">
<IRef ID="0" X="100" Y="100" Operand="Start" HideDesc="false"/>
<IRef ID="1" X="140" Y="140" Operand="Enable" HideDesc="false"/>
<ORef ID="3" X="880" Y="140" Operand="Run" HideDesc="false"/>
<Block Type="BAND" ID="4" X="240" Y="80" Operand="BAND_01" VisiblePins="In1 In2 Out" HideDesc="false"/>
<Wire FromID="0" ToID="4" ToParam="In1"/>
<Wire FromID="1" ToID="4" ToParam="In2"/>
<Wire FromID="4" FromParam="Out" ToID="3"/>
</Sheet>
</FBDContent>
</Routine>
<Routine Use="Target" Name="Seq" Type="SFC">
<SFCContent SheetSize="Letter" StepName="Step">
<Step ID="0" X="200" Y="100" Operand="Fill" HideDesc="false" DescX="240" DescY="80" DescWidth="0" InitialStep="true"/>
<Transition ID="1" X="200" Y="180" Operand="Full" HideDesc="false"><Condition><STContent><Line Number="0"><![CDATA[Level > 90]]></Line></STContent></Condition></Transition>
<Step ID="2" X="200" Y="260" Operand="Drain" HideDesc="false"/>
<DirectedLink FromID="0" ToID="1" Show="true"/>
<DirectedLink FromID="1" ToID="2" Show="true"/>
</SFCContent>
</Routine>
</Routines></Program></Programs></Controller>
</RSLogix5000Content>"#;

    #[test]
    fn fbd_and_sfc_are_graphs_named_by_operand_not_by_id_or_position() {
        // Moved and renumbered: every ID and coordinate differs, nothing that runs does.
        let moved = FBD
            .replace("ID=\"0\"", "ID=\"10\"")
            .replace("FromID=\"0\"", "FromID=\"10\"")
            .replace("X=\"240\" Y=\"80\"", "X=\"400\" Y=\"300\"")
            .replace("Y=\"260\"", "Y=\"300\"");
        assert!(changes(FBD, &moved).is_empty());
        let sheet = "Program Main / Routine Mix / Sheet 1";
        // A wire moved to another pin.
        let rewired = FBD.replace(
            "<Wire FromID=\"1\" ToID=\"4\" ToParam=\"In2\"/>",
            "<Wire FromID=\"1\" ToID=\"4\" ToParam=\"In1\"/>",
        );
        assert_eq!(
            changes(FBD, &rewired),
            [
                (
                    format!("{sheet} / Wire IRef Enable → Block BAND_01 (BAND).In1"),
                    "added"
                ),
                (
                    format!("{sheet} / Wire IRef Enable → Block BAND_01 (BAND).In2"),
                    "removed"
                ),
            ]
        );
        // A block's instruction changed.
        let bor = FBD.replace("Type=\"BAND\"", "Type=\"BOR\"");
        let c = changes(FBD, &bor);
        assert!(
            c.contains(&(format!("{sheet} / Block BAND_01 (BOR)"), "added")),
            "{c:?}"
        );
        // An SFC transition's condition and a link.
        let cond = FBD.replace("Level > 90", "Level > 95");
        assert_eq!(
            changes(FBD, &cond),
            [(
                "Program Main / Routine Seq / Transition Full".to_string(),
                "changed"
            )]
        );
        let relinked = FBD.replace(
            "<DirectedLink FromID=\"1\" ToID=\"2\" Show=\"true\"/>",
            "<DirectedLink FromID=\"1\" ToID=\"0\" Show=\"true\"/>",
        );
        let c = changes(FBD, &relinked);
        assert!(
            c.contains(&(
                "Program Main / Routine Seq / Link Transition Full → Step Fill".to_string(),
                "added"
            )),
            "{c:?}"
        );
    }

    #[test]
    fn encoded_content_is_opaque_and_dependencies_descriptions_and_rung_types_count() {
        let aoi = |body: &str, dep: &str, desc: &str, bits: &str| {
            format!(
                r#"<RSLogix5000Content SchemaRevision="1.0" TargetType="AddOnInstructionDefinition">
<Controller Use="Context" Name="C">
<DataTypes Use="Context"><DataType Name="UDT_A" Family="NoFamily" Class="User"><Members>
<Member Name="{bits}" DataType="SINT" Dimension="0" Radix="Decimal" Hidden="true"/>
<Member Name="Flag" DataType="BIT" Dimension="0" Radix="Decimal" Hidden="false" Target="{bits}" BitNumber="0"/>
</Members></DataType></DataTypes>
<AddOnInstructionDefinitions Use="Context">
<EncodedData EncodedType="AddOnInstructionDefinition" Name="Secret" EditedDate="2023-01-01" EncryptionConfig="9">
{body}
</EncodedData>
<AddOnInstructionDefinition Use="Target" Name="Open" Revision="1.0">
<Dependencies><Dependency Type="DataType" Name="{dep}"/></Dependencies>
<Routines><Routine Name="Logic" Type="RLL"><Description><![CDATA[{desc}]]></Description><RLLContent>
<Rung Number="0" Type="N"><Text><![CDATA[XIC(A)OTE(B);]]></Text></Rung>
</RLLContent></Routine></Routines>
</AddOnInstructionDefinition>
</AddOnInstructionDefinitions>
</Controller>
</RSLogix5000Content>"#
            )
        };
        let old = aoi("QUJD\nREVG", "UDT_A", "main", "ZZZZZZZZZZUDT_A0");
        // The same encoded text laid out anew is the same content.
        assert!(
            changes(
                &old,
                &aoi("  QUJDREVG  ", "UDT_A", "main", "ZZZZZZZZZZUDT_A0")
            )
            .is_empty()
        );
        let c = compare(
            &parse(&old).unwrap(),
            &parse(&aoi("QUJDREVH", "UDT_A", "main", "ZZZZZZZZZZUDT_A0")).unwrap(),
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            (c[0].address.as_str(), c[0].what),
            ("AOI Secret / encoded content", "opaque")
        );
        assert_eq!(
            changes(&old, &aoi("QUJDREVG", "UDT_B", "main", "ZZZZZZZZZZUDT_A0")),
            [("AOI Open / Dependencies".to_string(), "changed")]
        );
        assert_eq!(
            changes(
                &old,
                &aoi("QUJDREVG", "UDT_A", "the main one", "ZZZZZZZZZZUDT_A0")
            ),
            [(
                "AOI Open / Routine Logic / Description".to_string(),
                "comment"
            )]
        );
        // The hidden host of BOOL members is named by the editor: its name is no change,
        // its type is.
        assert!(changes(&old, &aoi("QUJDREVG", "UDT_A", "main", "ZZZZZZZZZZUDT_A1")).is_empty());
        assert_eq!(
            changes(&old, &old.replace("DataType=\"SINT\"", "DataType=\"INT\"")),
            [(
                "DataType UDT_A / Member (hidden BOOL host 1)".to_string(),
                "changed"
            )]
        );
        // A rung of a pending online edit is not the same rung.
        let pending = old.replace("Type=\"N\"", "Type=\"D\"");
        assert_eq!(
            changes(&old, &pending),
            [("AOI Open / Routine Logic / Rung 0".to_string(), "changed")]
        );
    }
}
