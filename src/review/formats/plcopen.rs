//! PLCopen TC6 XML (`tc6_0200` from CODESYS and e!COCKPIT, `tc6_0201` from Beremiz and
//! OpenPLC) as addressed items: data types, POUs with each interface section (variables
//! with their types and initial values) and their bodies — ST and IL by line, FBD, LD and
//! SFC as their elements without positions or `localId` numbering — CODESYS methods,
//! global variable lists, and configurations, resources and tasks. A CODESYS `ObjectId`
//! GUID keys its object, so a rename is a rename. The file and content headers' times are
//! cosmetic.

use std::collections::BTreeMap;

use super::{Body, Export, child, children, text_of};

/// What every export changes without changing what runs.
pub const COSMETIC: &[&str] = &["creationDateTime", "modificationDateTime"];

/// Interface sections of a POU.
const SECTIONS: &[&str] = &[
    "inputVars",
    "outputVars",
    "inOutVars",
    "localVars",
    "tempVars",
    "externalVars",
    "globalVars",
    "accessVars",
];

/// Parses a PLCopen TC6 document.
///
/// Fails when the text is not XML or not a PLCopen `project`.
pub fn parse(text: &str) -> Result<Export, String> {
    let doc = super::parse_xml(text, "project")?;
    let root = doc.root_element();
    if !root
        .tag_name()
        .namespace()
        .is_some_and(|n| n.contains("plcopen.org/xml/tc6"))
    {
        return Err("not a PLCopen TC6 project".into());
    }
    let mut ex = Export {
        cosmetic: COSMETIC,
        line_base: 1,
        ..Export::default()
    };
    let mut file = BTreeMap::new();
    for h in ["fileHeader", "contentHeader"] {
        if let Some(n) = child(root, h) {
            for a in n.attributes() {
                file.insert(a.name().to_string(), a.value().to_string());
            }
        }
    }
    ex.add("File", "file", false, Body::Fields(file));
    ex.own(root);
    for h in ["fileHeader", "contentHeader"] {
        if let Some(n) = child(root, h) {
            ex.own(n);
        }
    }
    for n in root.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "dataType" => {
                let name = n.attribute("name").unwrap_or("");
                let mut f = BTreeMap::new();
                if let Some(b) = child(n, "baseType") {
                    describe_type(b, "", &mut f);
                    // Read whole where the description has every part of it.
                    let kind = b.children().find(|c| c.is_element());
                    if kind.is_some_and(|k| {
                        matches!(k.tag_name().name(), "struct" | "enum" | "derived" | "array")
                            || k.children().all(|c| !c.is_element())
                    }) {
                        ex.all(b);
                    }
                }
                ex.own(n);
                mark_object_id(n, &mut ex);
                ex.add_keyed(
                    &key(n, &format!("DataType {name}")),
                    &format!("DataType {name}"),
                    "datatype",
                    false,
                    Body::Fields(f),
                );
            }
            "pou" => {
                let at = format!("POU {}", n.attribute("name").unwrap_or(""));
                pou(n, &at, &at, &mut ex);
            }
            // A CODESYS interface (in a project's `addData`): its methods' signatures.
            "Interface" if n.attribute("name").is_some() => {
                let at = format!("Interface {}", n.attribute("name").unwrap_or(""));
                pou(n, &at, &at, &mut ex);
            }
            "Method" | "Action" | "Transition"
                if n.ancestors()
                    .any(|a| matches!(a.tag_name().name(), "pou" | "Interface")) =>
            {
                let (at, fallback) = owned(n);
                pou(n, &at, &fallback, &mut ex);
            }
            "action" | "transition" => {
                let (at, fallback) = owned(n);
                ex.own(n);
                ex.first(n, "body");
                if let Some(b) = child(n, "body") {
                    ex.add_keyed(
                        &format!("{fallback} body"),
                        &format!("{at} / Body"),
                        "code",
                        false,
                        body(b),
                    );
                }
            }
            "globalVars" => {
                // Beremiz and OpenPLC write configuration and resource variables in an
                // unnamed list: named by where it is.
                let mut at = match n.attribute("name") {
                    Some(name) => format!("GlobalVars {name}"),
                    None => format!("{} / GlobalVars", scope(n)),
                };
                // CODESYS writes the part of a list with other attributes (not
                // constant, say) inside the list's own `addData`: it goes with that list.
                let outer = n
                    .ancestors()
                    .skip(1)
                    .find(|a| a.tag_name().name() == "globalVars");
                let k = match outer {
                    Some(o) => {
                        let i = n
                            .prev_siblings()
                            .filter(|s| s.tag_name().name() == "globalVars")
                            .count()
                            + 1;
                        at.push_str(&format!(" (mixed attributes part {i})"));
                        format!("{} mixed {i}", key(o, &at))
                    }
                    None => key(n, &at),
                };
                ex.own(n);
                for v in children(n, "variable") {
                    ex.all(v);
                }
                mark_object_id(n, &mut ex);
                ex.add_keyed(&k, &at, "globals", false, Body::Fields(variables(n)));
            }
            "task" => {
                let at = format!("{} / Task {}", scope(n), n.attribute("name").unwrap_or(""));
                let mut f: BTreeMap<String, String> = n
                    .attributes()
                    .filter(|a| a.name() != "name")
                    .map(|a| (a.name().to_string(), a.value().to_string()))
                    .collect();
                let progs: Vec<String> = n
                    .children()
                    .filter(|c| c.tag_name().name() == "pouInstance")
                    .map(|c| {
                        format!(
                            "{}:{}",
                            c.attribute("name").unwrap_or(""),
                            c.attribute("typeName").unwrap_or("")
                        )
                    })
                    .collect();
                f.insert("pouInstances".into(), progs.join(", "));
                ex.own(n);
                for p in children(n, "pouInstance") {
                    ex.own(p);
                }
                ex.add(&at, "task", false, Body::Fields(f));
            }
            // Their names are in the addresses of what they hold.
            "configuration" | "resource" => ex.own(n),
            _ => {}
        }
    }
    ex.finish(&doc, &|a| {
        COSMETIC.contains(&a)
            || matches!(a, "x" | "y" | "width" | "height" | "localId" | "refLocalId")
    });
    Ok(ex)
}

/// Marks the `addData` element holding `n`'s CODESYS ObjectId as read.
fn mark_object_id(n: roxmltree::Node, ex: &mut Export) {
    if let Some(a) = child(n, "addData") {
        ex.own(a);
        for d in a.children().filter(|d| {
            d.attribute("name")
                .is_some_and(|x| x.ends_with("/objectid") || x.ends_with("/method"))
        }) {
            if d.attribute("name")
                .is_some_and(|x| x.ends_with("/objectid"))
            {
                ex.all(d);
            } else {
                // Methods are read as POUs of their own.
                ex.own(d);
            }
        }
    }
}

/// `Configuration C / Resource R` above a task.
fn scope(n: roxmltree::Node) -> String {
    let mut parts: Vec<String> = n
        .ancestors()
        .filter_map(|a| match a.tag_name().name() {
            "configuration" => Some(format!(
                "Configuration {}",
                a.attribute("name").unwrap_or("")
            )),
            "resource" => Some(format!("Resource {}", a.attribute("name").unwrap_or(""))),
            _ => None,
        })
        .collect();
    parts.reverse();
    parts.join(" / ")
}

/// The CODESYS ObjectId of `n` (in its own `addData`), else `fallback`.
fn key(n: roxmltree::Node, fallback: &str) -> String {
    // CODESYS puts it on methods and interfaces as an attribute.
    if let Some(id) = n.attribute("ObjectId").filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    child(n, "addData")
        .into_iter()
        .flat_map(|a| a.children())
        .filter(|d| {
            d.attribute("name")
                .is_some_and(|x| x.ends_with("/objectid"))
        })
        .map(|d| text_of(Some(d)))
        .find(|id| !id.is_empty())
        .unwrap_or_else(|| fallback.to_string())
}

/// The address of a method, action or transition (`POU FB_Belt / Method Start`), and its
/// key when it has no ObjectId of its own: under its POU's key, so that renaming the POU
/// renames it too.
fn owned(n: roxmltree::Node) -> (String, String) {
    let owner = n
        .ancestors()
        .skip(1)
        .find(|a| matches!(a.tag_name().name(), "pou" | "Interface"));
    let owner_at = format!(
        "{} {}",
        if owner.is_some_and(|o| o.tag_name().name() == "Interface") {
            "Interface"
        } else {
            "POU"
        },
        owner.and_then(|p| p.attribute("name")).unwrap_or("")
    );
    let owner_key = owner.map(|p| key(p, &owner_at)).unwrap_or(owner_at.clone());
    let what = format!(
        "{} {}",
        n.tag_name().name(),
        n.attribute("name").unwrap_or("")
    );
    (
        format!("{owner_at} / {what}"),
        format!("{owner_key} / {what}"),
    )
}

/// A POU (or a method, action, transition) at address `at`, keyed by its ObjectId, else
/// `fallback`; its interface sections and body under that key.
fn pou(n: roxmltree::Node, at: &str, fallback: &str, ex: &mut Export) {
    let k = key(n, fallback);
    let mut f: BTreeMap<String, String> = n
        .attributes()
        .filter(|a| a.name() != "name" && a.name() != "ObjectId")
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect();
    // Read: its attributes, the interface's return type and sections with every
    // variable, the first body, its ObjectId.
    ex.own(n);
    ex.first(n, "body");
    mark_object_id(n, ex);
    if let Some(i) = child(n, "interface") {
        ex.own(i);
        ex.first(i, "returnType");
        for s in i
            .children()
            .filter(|c| SECTIONS.contains(&c.tag_name().name()))
        {
            ex.own(s);
            for v in children(s, "variable") {
                ex.all(v);
            }
        }
    }
    if let Some(i) = child(n, "interface") {
        if let Some(r) = child(i, "returnType") {
            f.insert("returnType".into(), type_text(r));
        }
        for s in i
            .children()
            .filter(|c| SECTIONS.contains(&c.tag_name().name()))
        {
            let mut name = s.tag_name().name().to_string();
            for flag in ["constant", "retain", "persistent"] {
                if s.attribute(flag) == Some("true") {
                    name.push(' ');
                    name.push_str(flag);
                }
            }
            ex.add_keyed(
                &format!("{k} / {name}"),
                &format!("{at} / {name}"),
                "interface",
                false,
                Body::Fields(variables(s)),
            );
        }
    }
    ex.add_keyed(&k, at, "pou", false, Body::Fields(f));
    if let Some(b) = child(n, "body") {
        ex.add_keyed(
            &format!("{k} body"),
            &format!("{at} / Body"),
            "code",
            false,
            body(b),
        );
    }
}

/// Each variable: `TYPE := initial`, its documentation as ` // ...`.
fn variables(s: roxmltree::Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for v in s.children().filter(|c| c.tag_name().name() == "variable") {
        let mut t = child(v, "type").map(type_text).unwrap_or_default();
        // A located variable's address (`AT %IX0.0`) and any other attribute.
        let mut attrs: Vec<String> = v
            .attributes()
            .filter(|a| a.name() != "name")
            .map(|a| format!("{}={}", a.name(), a.value()))
            .collect();
        attrs.sort();
        if !attrs.is_empty() {
            t = format!("{t} [{}]", attrs.join(" "));
        }
        if let Some(iv) = child(v, "initialValue") {
            t.push_str(" := ");
            t.push_str(&value_text(iv));
        }
        let doc = text_of(child(v, "documentation"));
        if !doc.is_empty() {
            t.push_str(" // ");
            t.push_str(&doc.replace('\n', " "));
        }
        out.insert(v.attribute("name").unwrap_or("").to_string(), t);
    }
    out
}

/// A type as IEC text: `BOOL`, `MY_UDT`, `STRING(128)`, `ARRAY[0..9] OF INT`, ...
fn type_text(t: roxmltree::Node) -> String {
    let Some(e) = t.children().find(|c| c.is_element()) else {
        return String::new();
    };
    let base = || child(e, "baseType").map(type_text).unwrap_or_default();
    match e.tag_name().name() {
        "derived" => e.attribute("name").unwrap_or("").to_string(),
        "string" | "wstring" => {
            let k = e.tag_name().name().to_ascii_uppercase();
            match e.attribute("length") {
                Some(l) => format!("{k}({l})"),
                None => k,
            }
        }
        "array" => {
            let dims: Vec<String> = e
                .children()
                .filter(|c| c.tag_name().name() == "dimension")
                .map(|d| {
                    format!(
                        "{}..{}",
                        d.attribute("lower").unwrap_or(""),
                        d.attribute("upper").unwrap_or("")
                    )
                })
                .collect();
            format!("ARRAY[{}] OF {}", dims.join(","), base())
        }
        "pointer" => format!("POINTER TO {}", base()),
        "struct" => {
            let mut f = BTreeMap::new();
            describe_type(t, "", &mut f);
            format!("STRUCT {}", super::pairs(&f, "; "))
        }
        other => other.to_string(),
    }
}

/// A data type's base as fields: struct members, enum values, or the type.
fn describe_type(b: roxmltree::Node, prefix: &str, out: &mut BTreeMap<String, String>) {
    let Some(e) = b.children().find(|c| c.is_element()) else {
        return;
    };
    match e.tag_name().name() {
        "struct" => {
            for (k, v) in variables(e) {
                out.insert(format!("{prefix}Member {k}"), v);
            }
        }
        "enum" => {
            let values: Vec<String> = e
                .descendants()
                .filter(|v| v.tag_name().name() == "value")
                .map(|v| match v.attribute("value") {
                    Some(x) => format!("{}={x}", v.attribute("name").unwrap_or("")),
                    None => v.attribute("name").unwrap_or("").to_string(),
                })
                .collect();
            out.insert(format!("{prefix}values"), values.join(", "));
        }
        _ => {
            out.insert(format!("{prefix}type"), type_text(b));
        }
    }
}

/// An initial value as text.
fn value_text(v: roxmltree::Node) -> String {
    let Some(e) = v.children().find(|c| c.is_element()) else {
        return String::new();
    };
    match e.tag_name().name() {
        "simpleValue" => e.attribute("value").unwrap_or("").to_string(),
        _ => {
            let parts: Vec<String> = e
                .descendants()
                .filter(|d| d.tag_name().name() == "simpleValue")
                .filter_map(|d| d.attribute("value").map(str::to_string))
                .collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

/// A body: ST and IL as lines; FBD, LD and SFC as their elements, positions and
/// `localId` numbering left out, in document order.
fn body(b: roxmltree::Node) -> Body {
    let Some(lang) = b.children().find(|c| c.is_element()) else {
        return Body::Lines(Vec::new());
    };
    match lang.tag_name().name() {
        "ST" | "IL" => Body::Lines(
            text_of(Some(lang))
                .lines()
                .map(|l| l.trim_end().to_string())
                .collect(),
        ),
        _ => Body::Fields(graph(lang)),
    }
}

/// Attributes an editor changes when it moves, resizes or renumbers an element (not
/// `executionOrderId`: it decides the order an FBD runs in).
fn layout(name: &str) -> bool {
    matches!(
        name,
        "localId" | "refLocalId" | "height" | "width" | "x" | "y"
    )
}

/// Elements that only place or wire things.
fn placement(tag: &str) -> bool {
    matches!(
        tag,
        "position" | "relPosition" | "connectionPointIn" | "connectionPointOut" | "connection"
    )
}

/// An FBD, LD or SFC body as a graph: each element named by what it is (`block Labeller
/// (FB_Labeller)`, `inVariable TRUE`, `step Fill`, `contact Start`) with its content, and
/// each connection by the elements it joins (`connection inVariable TRUE →
/// block Labeller (FB_Labeller).Start`); positions and `localId` numbering left out.
fn graph(lang: roxmltree::Node) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
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
    let elements: Vec<roxmltree::Node> = lang.children().filter(|c| c.is_element()).collect();
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    for e in &elements {
        let tag = e.tag_name().name();
        let text = |n: &str| text_of(child(*e, n));
        let what = match tag {
            "block" => format!(
                "{} ({})",
                e.attribute("instanceName")
                    .unwrap_or(e.attribute("typeName").unwrap_or("")),
                e.attribute("typeName").unwrap_or("")
            ),
            "inVariable" | "outVariable" | "inOutVariable" => text("expression"),
            "contact" | "coil" => text("variable"),
            "step" | "connector" | "continuation" => e.attribute("name").unwrap_or("").into(),
            "jumpStep" => e.attribute("targetName").unwrap_or("").into(),
            "label" | "jump" => e.attribute("label").unwrap_or("").into(),
            _ => String::new(),
        };
        let base = if what.is_empty() {
            tag.to_string()
        } else {
            format!("{tag} {what}")
        };
        let name = unique(base);
        if let Some(id) = e.attribute("localId") {
            names.insert(id, name.clone());
        }
        let mut parts = Vec::new();
        for d in e.descendants().filter(|d| d.is_element()) {
            if d.ancestors().any(|a| placement(a.tag_name().name())) {
                continue;
            }
            let attrs: Vec<String> = d
                .attributes()
                .filter(|a| !layout(a.name()))
                .map(|a| format!("{}={}", a.name(), a.value()))
                .collect();
            let t: String = d
                .children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect();
            if d != *e {
                parts.push(format!("<{}>", d.tag_name().name()));
            }
            parts.extend(attrs);
            if !t.trim().is_empty() {
                parts.push(t.trim().to_string());
            }
        }
        f.insert(name, parts.join(" "));
    }
    // Connections: into each element (or a block's input pin) from the element (and
    // output pin) it names.
    for e in &elements {
        let to = names.get(e.attribute("localId").unwrap_or("")).cloned();
        for cpi in e
            .descendants()
            .filter(|d| d.tag_name().name() == "connectionPointIn")
        {
            let pin = cpi
                .ancestors()
                .take_while(|a| a != e)
                .find(|a| a.tag_name().name() == "variable")
                .and_then(|v| v.attribute("formalParameter"));
            let to = match (&to, pin) {
                (Some(t), Some(p)) => format!("{t}.{p}"),
                (Some(t), None) => t.clone(),
                (None, _) => "an element without localId".into(),
            };
            for c in children(cpi, "connection") {
                let from = c
                    .attribute("refLocalId")
                    .map(|r| {
                        names
                            .get(r)
                            .cloned()
                            .unwrap_or(format!("localId {r} (no such element)"))
                    })
                    .unwrap_or_default();
                let from = match c.attribute("formalParameter") {
                    Some(p) => format!("{from}.{p}"),
                    None => from,
                };
                let key = unique(format!("connection {from} → {to}"));
                f.insert(key, String::new());
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::super::compare;
    use super::*;

    const TC6: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<project xmlns="http://www.plcopen.org/xml/tc6_0200">
  <fileHeader companyName="x" productName="CODESYS" creationDateTime="2026-11-30T10:00:00" />
  <contentHeader name="Line1" modificationDateTime="2026-11-30T10:00:00" />
  <types>
    <dataTypes />
    <pous>
      <pou name="FB_Belt" pouType="functionBlock">
        <interface>
          <inputVars>
            <variable name="Start"><type><BOOL /></type></variable>
            <variable name="Speed"><type><INT /></type><initialValue><simpleValue value="10" /></initialValue></variable>
          </inputVars>
        </interface>
        <body>
          <ST><xhtml xmlns="http://www.w3.org/1999/xhtml">IF Start THEN
  Run := TRUE;
END_IF</xhtml></ST>
        </body>
        <addData>
          <data name="http://www.3s-software.com/plcopenxml/objectid" handleUnknown="discard">
            <ObjectId>aaaaaaaa-0000-0000-0000-000000000001</ObjectId>
          </data>
        </addData>
      </pou>
    </pous>
  </types>
  <instances><configurations /></instances>
</project>"#;

    fn changes(a: &str, b: &str) -> Vec<(String, &'static str)> {
        compare(&parse(a).unwrap(), &parse(b).unwrap())
            .into_iter()
            .map(|c| (c.address, c.what))
            .collect()
    }

    #[test]
    fn pous_interfaces_bodies_renames_and_headers() {
        assert!(changes(TC6, TC6).is_empty());
        assert_eq!(
            changes(TC6, &TC6.replace("Run := TRUE;", "Run := FALSE;")),
            [("POU FB_Belt / Body / Line 2".to_string(), "changed")]
        );
        assert_eq!(
            changes(TC6, &TC6.replace("value=\"10\"", "value=\"12\"")),
            [("POU FB_Belt / inputVars / Speed".to_string(), "changed")]
        );
        let renamed = TC6.replace("FB_Belt", "FB_BELT");
        let c = changes(TC6, &renamed);
        assert!(c.contains(&("POU FB_BELT".to_string(), "renamed")), "{c:?}");
        let bumped = TC6.replace("2026-11-30T10:00:00", "2026-12-01T09:00:00");
        let c = changes(TC6, &bumped);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|(_, w)| *w == "cosmetic"), "{c:?}");
    }

    #[test]
    fn every_corpus_plcopen_file_parses_and_its_method_pair_names_the_new_methods() {
        let Some(dir) = super::super::l5x::tests::corpus("plcopen corpus") else {
            return;
        };
        let base = dir.join("plcopen/MichielVanwelsenaere-HomeAutomation.CoDeSys3");
        let read = |c: &str, p: &str| {
            parse(&std::fs::read_to_string(base.join(c).join(p)).unwrap()).unwrap()
        };
        for (c, p) in [
            ("89b6545", "src/Exports/PLCopen.xml"),
            ("298b7bf", "src/Exports/PLCopen.xml"),
            ("d8149b1", "src/PLCopen/HomeAutomation.xml"),
            ("192d3fa", "src/PLCopen/HomeAutomation.xml"),
        ] {
            let ex = read(c, p);
            assert!(ex.items.len() > 10, "{c}");
            assert!(compare(&ex, &ex).is_empty());
        }
        let got = compare(
            &read("d8149b1", "src/PLCopen/HomeAutomation.xml"),
            &read("192d3fa", "src/PLCopen/HomeAutomation.xml"),
        );
        for pou in [
            "FB_RS485_EASTRON_SDM220_MQTT",
            "FB_RS485_EASTRON_SDM_POWER_MQTT",
        ] {
            let m = format!("POU {pou} / Method PubMqttMessage");
            assert!(
                got.iter().any(|c| c.address == m && c.what == "added"),
                "{m}: {got:?}"
            );
            let body = format!("POU {pou} / Method ProcessDataArray / Body");
            assert!(
                got.iter()
                    .any(|c| c.address.starts_with(&body) && c.what != "cosmetic"),
                "{body}: {got:?}"
            );
        }
        // Nothing else of substance changed: only those POUs, and the headers.
        assert!(
            got.iter()
                .all(|c| c.what == "cosmetic" || c.address.contains("EASTRON_SDM")),
            "{got:?}"
        );
    }

    #[test]
    fn the_mass_rename_pair_is_26_renames_and_no_object_added_or_removed() {
        let Some(dir) = super::super::l5x::tests::corpus("plcopen mass rename pair") else {
            return;
        };
        let base = dir.join("plcopen/MichielVanwelsenaere-HomeAutomation.CoDeSys3");
        let read = |c: &str| {
            parse(&std::fs::read_to_string(base.join(c).join("src/Exports/PLCopen.xml")).unwrap())
                .unwrap()
        };
        let got = compare(&read("89b6545"), &read("298b7bf"));
        let renamed = |kind: &str| {
            got.iter()
                .filter(|c| c.what == "renamed" && c.kind == kind)
                .filter(|c| !c.address.contains("(mixed attributes part"))
                .filter(|c| !c.address.starts_with("Interface "))
                .count()
        };
        // 26 objects with an `<ObjectId>` element renamed: 11 data types, 9 POUs, 6
        // variable lists.
        assert_eq!(
            (renamed("datatype"), renamed("pou"), renamed("globals")),
            (11, 9, 6)
        );
        // And the two CODESYS interfaces, whose ObjectId is an attribute (which the
        // pair's description does not count): renamed too, not added and removed.
        for (old, new) in [
            ("Interface RS485Device", "Interface I_RS485_DEVICE"),
            ("Interface RS485Transport", "Interface I_RS485_TRANSPORT"),
        ] {
            assert!(
                got.iter().any(|c| c.what == "renamed"
                    && c.old.as_deref() == Some(old)
                    && c.new.as_deref() == Some(new)),
                "{old} -> {new}: {:?}",
                got.iter()
                    .filter(|c| c.address.starts_with("Interface"))
                    .collect::<Vec<_>>()
            );
        }
        assert!(got.iter().any(|c| c.what == "renamed"
            && c.old.as_deref() == Some("POU PLC_PRG_MAIN")
            && c.new.as_deref() == Some("POU PRG_MAIN")));
        // POUs, methods, actions and types are the same objects: none added or removed.
        let gone: Vec<_> = got
            .iter()
            .filter(|c| matches!(c.what, "added" | "removed"))
            .filter(|c| c.kind != "interface")
            .collect();
        assert!(gone.is_empty(), "{gone:?}");
        // The headers' dates are the only cosmetic changes.
        let cosmetic: Vec<_> = got.iter().filter(|c| c.what == "cosmetic").collect();
        assert_eq!(cosmetic.len(), 2, "{cosmetic:?}");
    }
}
