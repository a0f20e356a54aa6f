//! TwinCAT 3 sources (`.TcPOU`, `.TcGVL`, `.TcDUT`) as addressed items: each object
//! (POU, GVL, DUT, and their methods, properties, actions and transitions) keyed by its
//! GUID `Id`, so a rename is a rename, with its declaration and implementation as lines.
//! `ProductVersion` and the `LineIds` blocks (the editor's line maps) are cosmetic.

use std::collections::BTreeMap;

use super::{Body, Export, child, text_of};

/// What changes with the TwinCAT build that saved the file, not with what runs.
pub const COSMETIC: &[&str] = &["ProductVersion", "LineIds"];

/// The objects that carry code or declarations.
const OBJECTS: &[&str] = &[
    "POU",
    "GVL",
    "DUT",
    "Itf",
    "Method",
    "Property",
    "Action",
    "Transition",
    "Get",
    "Set",
];

/// Parses a TwinCAT 3 source.
///
/// Fails when the text is not XML or not a `TcPlcObject`.
pub fn parse(text: &str) -> Result<Export, String> {
    let doc = super::parse_xml(text, "TcPlcObject")?;
    let root = doc.root_element();
    let mut ex = Export {
        cosmetic: COSMETIC,
        line_base: 1,
        ..Export::default()
    };
    let mut file: BTreeMap<String, String> = root
        .attributes()
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect();
    let line_ids = doc
        .descendants()
        .filter(|d| d.tag_name().name() == "LineIds")
        .count();
    file.insert("LineIds".into(), format!("{line_ids} blocks"));
    ex.add("File", "file", false, Body::Fields(file));
    ex.own(root);
    // The editor's line maps: cosmetic, counted in the file's fields.
    for d in doc
        .descendants()
        .filter(|d| d.tag_name().name() == "LineIds")
    {
        ex.all(d);
    }
    for c in root.children().filter(|c| c.is_element()) {
        object(c, "", &mut ex);
    }
    ex.finish(&doc, &|a| {
        COSMETIC.contains(&a) || matches!(a, "X" | "Y" | "Width" | "Height" | "x" | "y")
    });
    Ok(ex)
}

/// A declaration or implementation as lines: its text (ST, CDATA), or, for a graphical
/// body (CFC, LD, FBD, SFC saved as XML), every element with its attributes and text, one
/// line each, positions aside.
fn lines(n: Option<roxmltree::Node>) -> Body {
    let graphical = n.and_then(|n| {
        n.children()
            .find(|c| c.is_element() && c.tag_name().name() != "ST")
    });
    if let Some(g) = graphical {
        let layout = |a: &str| matches!(a, "X" | "Y" | "Width" | "Height" | "x" | "y");
        return Body::Lines(super::canonical_node(g, &layout));
    }
    Body::Lines(
        text_of(n)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect(),
    )
}

fn object(n: roxmltree::Node, scope: &str, ex: &mut Export) {
    let tag = n.tag_name().name();
    if !OBJECTS.contains(&tag) {
        return;
    }
    let name = n.attribute("Name").unwrap_or("");
    let here = match (scope.is_empty(), name.is_empty()) {
        (true, _) => format!("{tag} {name}"),
        (false, true) => format!("{scope} / {tag}"),
        (false, false) => format!("{scope} / {tag} {name}"),
    };
    // The GUID when there is one: the object's identity across renames.
    let key = n
        .attribute("Id")
        .map(str::to_string)
        .unwrap_or_else(|| here.clone());
    let kind: &'static str = match tag {
        "POU" => "pou",
        "GVL" => "gvl",
        "DUT" => "dut",
        "Itf" => "interface",
        "Method" => "method",
        "Property" => "property",
        "Action" => "action",
        "Transition" => "transition",
        _ => "accessor",
    };
    let fields: BTreeMap<String, String> = n
        .attributes()
        .filter(|a| !matches!(a.name(), "Name" | "Id"))
        .map(|a| (a.name().to_string(), a.value().to_string()))
        .collect();
    ex.add_keyed(&key, &here, kind, false, Body::Fields(fields));
    // Read: its attributes, its first declaration and implementation (a second one is
    // left unread, so it is compared as such).
    ex.own(n);
    ex.first(n, "Declaration");
    ex.first(n, "Implementation");
    if let Some(d) = child(n, "Declaration") {
        ex.add_keyed(
            &format!("{key} declaration"),
            &format!("{here} / Declaration"),
            "declaration",
            false,
            lines(Some(d)),
        );
    }
    if let Some(i) = child(n, "Implementation") {
        ex.add_keyed(
            &format!("{key} implementation"),
            &format!("{here} / Implementation"),
            "implementation",
            false,
            lines(Some(i)),
        );
    }
    for c in n.children().filter(|c| c.is_element()) {
        object(c, &here, ex);
    }
}

#[cfg(test)]
mod tests {
    use super::super::compare;
    use super::*;

    const POU: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<TcPlcObject Version="1.1.0.1" ProductVersion="3.1.4024.3">
  <POU Name="FB_Belt" Id="{11111111-0000-0000-0000-000000000001}" SpecialFunc="None">
    <Declaration><![CDATA[FUNCTION_BLOCK FB_Belt
VAR
    Speed : INT := 10;
END_VAR]]></Declaration>
    <Implementation>
      <ST><![CDATA[IF Start THEN
    Run := TRUE;
END_IF]]></ST>
    </Implementation>
    <Method Name="Stop" Id="{11111111-0000-0000-0000-000000000002}">
      <Declaration><![CDATA[METHOD Stop : BOOL]]></Declaration>
      <Implementation>
        <ST><![CDATA[Run := FALSE;]]></ST>
      </Implementation>
    </Method>
    <LineIds Name="FB_Belt">
      <LineId Id="3" Count="0" />
    </LineIds>
  </POU>
</TcPlcObject>"#;

    fn changes(a: &str, b: &str) -> Vec<(String, &'static str)> {
        compare(&parse(a).unwrap(), &parse(b).unwrap())
            .into_iter()
            .map(|c| (c.address, c.what))
            .collect()
    }

    #[test]
    fn code_lines_renames_and_the_editors_noise() {
        assert!(changes(POU, POU).is_empty());
        let edited = POU.replace("Run := FALSE;", "Run := Start;");
        assert_eq!(
            changes(POU, &edited),
            [(
                "POU FB_Belt / Method Stop / Implementation / Line 1".to_string(),
                "changed"
            )]
        );
        let renamed = POU.replace("Name=\"Stop\"", "Name=\"Halt\"");
        assert_eq!(
            changes(POU, &renamed),
            [("POU FB_Belt / Method Halt".to_string(), "renamed")]
        );
        let noise = POU.replace("3.1.4024.3", "3.1.4022.18").replace(
            "<LineIds Name=\"FB_Belt\">\n      <LineId Id=\"3\" Count=\"0\" />\n    </LineIds>",
            "",
        );
        let c = changes(POU, &noise);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c.iter().all(|(_, w)| *w == "cosmetic"), "{c:?}");
        assert!(parse("<TcPlcObjectX/>").is_err());
    }

    #[test]
    fn the_tcunit_pairs_of_the_corpus() {
        let Some(dir) = super::super::l5x::tests::corpus("twincat pairs") else {
            return;
        };
        let at = |c: &str| {
            let p = dir.join(format!(
                "twincat/tcunit-TcUnit/{c}/TcUnit/TcUnit/POUs/FB_TestSuite.TcPOU"
            ));
            parse(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        // Pure cosmetic: ProductVersion and every LineIds block removed.
        let c = compare(&at("c7d7021"), &at("b6edc60"));
        assert!(
            !c.is_empty() && c.iter().all(|c| c.what == "cosmetic"),
            "{c:?}"
        );
        // Logic: a method added, others rewritten; no change to the POU body.
        let c = compare(&at("5059342"), &at("c7d7021"));
        assert!(
            c.iter().any(
                |c| c.address == "POU FB_TestSuite / Method GetNumberOfTestsToAnalyse"
                    && c.what == "added"
            ),
            "{c:?}"
        );
        assert!(
            !c.iter().any(
                |c| c.address.starts_with("POU FB_TestSuite / Implementation")
                    || c.address.starts_with("POU FB_TestSuite / Declaration")
            ),
            "the POU body and declaration are unchanged: {c:?}"
        );
        assert!(
            c.iter().any(|c| c
                .address
                .starts_with("POU FB_TestSuite / Method AddTest / Implementation")),
            "{c:?}"
        );
    }

    #[test]
    fn a_graphical_body_is_compared_by_its_elements_and_attributes() {
        let ld = |negated: &str| {
            format!(
                r#"<?xml version="1.0" encoding="utf-8"?>
<TcPlcObject Version="1.1.0.1" ProductVersion="3.1.4024.3">
  <POU Name="PRG_Ld" Id="{{22222222-0000-0000-0000-000000000001}}" SpecialFunc="None">
    <Declaration><![CDATA[PROGRAM PRG_Ld]]></Declaration>
    <Implementation>
      <LD>
        <Network X="10" Y="20"><Contact Name="bStart" Negated="{negated}" /><Coil Name="bRun" /></Network>
      </LD>
    </Implementation>
  </POU>
</TcPlcObject>"#
            )
        };
        assert!(changes(&ld("false"), &ld("false").replace("X=\"10\"", "X=\"90\"")).is_empty());
        assert_eq!(
            changes(&ld("false"), &ld("true")),
            [(
                "POU PRG_Ld / Implementation / Line 3".to_string(),
                "changed"
            )]
        );
    }
}
