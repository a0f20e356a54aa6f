//! Change review in the engineer's terms (issue 20): project exports diffed by address.
//! A small L5X of our own runs everywhere; the real exports of the shared corpus run where
//! it is (`PLCVAULT_CORPUS`, default `../shared/corpus`).

mod common;

use common::Site;

const ROUTINE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<RSLogix5000Content SchemaRevision="1.0" SoftwareRevision="33.01" TargetName="Belt" TargetType="Routine" ExportDate="Mon Nov 30 10:00:00 2026">
<Controller Use="Context" Name="Line1">
<Tags Use="Context">
<Tag Name="Speed" TagType="Base" DataType="DINT" Radix="Decimal">
<Data Format="Decorated"><DataValue DataType="DINT" Radix="Decimal" Value="1000"/></Data>
</Tag>
</Tags>
<Programs Use="Context">
<Program Use="Context" Name="Main">
<Routines Use="Context">
<Routine Use="Target" Name="Belt" Type="RLL">
<RLLContent>
<Rung Number="0" Type="N"><Comment><![CDATA[Start the belt]]></Comment><Text><![CDATA[XIC(Start)OTL(Run);]]></Text></Rung>
<Rung Number="1" Type="N"><Text><![CDATA[XIC(Stop)OTU(Run);]]></Text></Rung>
<Rung Number="2" Type="N"><Text><![CDATA[XIC(Run)OTE(Motor);]]></Text></Rung>
</RLLContent>
</Routine>
</Routines>
</Program>
</Programs>
</Controller>
</RSLogix5000Content>
"#;

fn findings(s: &Site) -> Vec<serde_json::Value> {
    s.run(&["--json", "diff", "line1", "--live"])
        .records("finding")
}

#[test]
fn an_l5x_rung_change_is_a_logic_finding_by_address_and_a_re_export_is_cosmetic() {
    let s = Site::new();
    s.write("plant/Belt.L5X", ROUTINE.as_bytes());
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);

    // Re-exported: only the date differs. Listed as cosmetic, no drift.
    s.write(
        "plant/Belt.L5X",
        ROUTINE
            .replace("Mon Nov 30 10:00:00 2026", "Tue Dec 01 09:00:00 2026")
            .as_bytes(),
    );
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 0, "a re-export is no drift: {}", r.stdout);
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["class"].as_str(), f[0]["address"].as_str()),
        (Some("cosmetic"), Some("File / ExportDate"))
    );

    // Someone inverts the stop rung: one logic finding naming the rung, old and new text.
    s.write(
        "plant/Belt.L5X",
        ROUTINE
            .replace("XIC(Stop)OTU(Run);", "XIO(Stop)OTU(Run);")
            .as_bytes(),
    );
    let r = s.run(&["--json", "collect", "line1"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["class"], "logic");
    assert_eq!(f[0]["severity"], "critical");
    assert_eq!(f[0]["address"], "Program Main / Routine Belt / Rung 1");
    assert_eq!(
        (f[0]["old"].as_str(), f[0]["new"].as_str()),
        (Some("XIC(Stop)OTU(Run);"), Some("XIO(Stop)OTU(Run);"))
    );
    let r = s.run(&["diff", "line1", "--live"]);
    assert!(
        r.stdout.contains("Program Main / Routine Belt / Rung 1")
            && r.stdout.contains("+ XIO(Stop)OTU(Run);"),
        "{}",
        r.stdout
    );

    // A tag's value: values, by address.
    s.write(
        "plant/Belt.L5X",
        ROUTINE
            .replace("Value=\"1000\"", "Value=\"1500\"")
            .as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["address"].as_str(), f[0]["class"].as_str()),
        (Some("Controller / Tag Speed / value"), Some("values"))
    );

    // Bytes that differ with no item changed never read as "no change".
    s.write(
        "plant/Belt.L5X",
        ROUTINE
            .replace("<Rung Number=\"2\"", "\n\n<Rung Number=\"2\"")
            .as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["class"], "cosmetic");

    // Not parseable any more: the text view, never silence.
    s.write(
        "plant/Belt.L5X",
        ROUTINE.replace("</RSLogix5000Content>", "").as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["view"], "text");
}

#[test]
fn the_belt_conveyor_pair_of_the_corpus_is_one_moved_rung_and_three_comments() {
    let dir = std::env::var_os("PLCVAULT_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
        });
    let at = dir.join("l5x/alairjunior-l5x2c/6a3a3c7/examples");
    // The corpus is test data beside the repository (CI has it); without it, say so.
    if !at.exists() {
        eprintln!(
            "DID NOT RUN: no corpus at {} (set PLCVAULT_CORPUS)",
            dir.display()
        );
        return;
    }
    let s = Site::new();
    s.write(
        "plant/Conveyor.L5X",
        &std::fs::read(at.join("belt_conveyor.L5X")).unwrap(),
    );
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write(
        "plant/Conveyor.L5X",
        &std::fs::read(at.join("belt_conveyor_wrong_rearm.L5X")).unwrap(),
    );
    let f = findings(&s);
    let got: Vec<(String, String)> = f
        .iter()
        .map(|f| {
            (
                f["address"].as_str().unwrap().to_string(),
                f["class"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let r = "Program MainProgram / Routine Conveyor1";
    assert_eq!(
        got,
        [
            (format!("{r} / Rung 0→5"), "logic".to_string()),
            (format!("{r} / Rung 0 comment"), "comment".to_string()),
            (format!("{r} / Rung 5 comment"), "comment".to_string()),
            (format!("{r} / Rung 9 comment"), "comment".to_string()),
        ]
    );
}

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
  </POU>
</TcPlcObject>
"#;

#[test]
fn a_twincat_method_change_is_named_and_a_rebuild_by_another_version_is_cosmetic() {
    let s = Site::new();
    s.write("plant/POUs/FB_Belt.TcPOU", POU.as_bytes());
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write(
        "plant/POUs/FB_Belt.TcPOU",
        POU.replace("3.1.4024.3", "3.1.4022.18").as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["class"].as_str(), f[0]["address"].as_str()),
        (Some("cosmetic"), Some("File / ProductVersion"))
    );
    s.write(
        "plant/POUs/FB_Belt.TcPOU",
        POU.replace("Run := FALSE;", "Run := Start;").as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        f[0]["address"],
        "POU FB_Belt / Method Stop / Implementation / Line 1"
    );
    assert_eq!(
        (f[0]["class"].as_str(), f[0]["severity"].as_str()),
        (Some("logic"), Some("critical"))
    );
}

#[test]
fn an_scl_source_change_is_named_by_block_section_and_line() {
    let fb = "FUNCTION_BLOCK \"Conveyor\"\nTITLE = Conveyor\nVERSION : 1.0\n   VAR_INPUT\n      start : Bool;\n   END_VAR\nBEGIN\n  IF #start THEN\n    #run := TRUE;\n  END_IF;\nEND_FUNCTION_BLOCK\n";
    let s = Site::new();
    s.write("plant/PLC1/Conveyor.scl", fb.as_bytes());
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write(
        "plant/PLC1/Conveyor.scl",
        fb.replace("#run := TRUE;", "#run := #start AND FALSE;")
            .as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["address"], "FB Conveyor / Body / Line 2");
    assert_eq!(f[0]["class"], "logic");
}

#[test]
fn a_plcopen_body_line_change_is_named_by_pou_and_line() {
    let tc6 = r#"<?xml version="1.0" encoding="utf-8"?>
<project xmlns="http://www.plcopen.org/xml/tc6_0201">
  <fileHeader companyName="x" productName="Beremiz" creationDateTime="2026-11-30T10:00:00" />
  <contentHeader name="Line1" modificationDateTime="2026-11-30T10:00:00" />
  <types><dataTypes /><pous>
    <pou name="main" pouType="program">
      <interface><localVars><variable name="run"><type><BOOL /></type></variable></localVars></interface>
      <body><ST><xhtml xmlns="http://www.w3.org/1999/xhtml">run := start;
out := run;</xhtml></ST></body>
    </pou>
  </pous></types>
  <instances><configurations /></instances>
</project>
"#;
    let s = Site::new();
    s.write("plant/openplc/plc.xml", tc6.as_bytes());
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    s.write(
        "plant/openplc/plc.xml",
        tc6.replace("out := run;", "out := NOT run;").as_bytes(),
    );
    let f = findings(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["address"], "POU main / Body / Line 2");
    assert_eq!(f[0]["class"], "logic");
}

/// The README's examples for the committed whole-controller fixture: a recipe value in a
/// structure tag, a rewired FBD block input, an SFC condition, each at its address with
/// its class; the HTML page puts each program in its own side-by-side table.
#[test]
fn a_controller_exports_values_wires_and_steps_are_named_as_the_readme_shows() {
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exports/Line2.L5X"),
    )
    .unwrap();
    let s = Site::new();
    s.write("plant/Line2.L5X", fixture.as_bytes());
    assert_eq!(s.run(&["collect", "line1"]).code, 0);
    let alice = s.add_approver();
    assert_eq!(s.approve("line1", &alice, "CHG-1").code, 0);
    let changed = fixture
        .replace(
            "<DataValueMember Name=\"SteriliseTemp\" DataType=\"DINT\" Radix=\"Decimal\" Value=\"88\"/>",
            "<DataValueMember Name=\"SteriliseTemp\" DataType=\"DINT\" Radix=\"Decimal\" Value=\"72\"/>",
        )
        .replace(
            "<Wire FromID=\"1\" ToID=\"3\" ToParam=\"SourceB\"/>",
            "<Wire FromID=\"0\" ToID=\"3\" ToParam=\"SourceB\"/>",
        )
        .replace("Bottle_Present AND Guard_Closed", "Bottle_Present");
    assert_ne!(changed, fixture);
    s.write("plant/Line2.L5X", changed.as_bytes());
    let html = s.path("review.html");
    let r = s.run(&["diff", "line1", "--live", "--html", html.to_str().unwrap()]);
    for line in [
        "[info    ] values    Line2.L5X: Controller / Tag Juice / value changed",
        "- Enabled=1 FillVolume=1000.0 SteriliseTemp=88",
        "+ Enabled=1 FillVolume=1000.0 SteriliseTemp=72",
        "[critical] logic     Line2.L5X: Program Filling / Routine Mixing / Sheet 1 / Wire IRef Tank_Level → Block MUL_01 (MUL).SourceB added",
        "[critical] logic     Line2.L5X: Program Filling / Routine Mixing / Sheet 1 / Wire IRef Juice.FillVolume → Block MUL_01 (MUL).SourceB removed",
        "[critical] logic     Line2.L5X: Program Filling / Routine Sequence / Transition Bottle_In changed",
    ] {
        assert!(r.stdout.contains(line), "{line}\n{}", r.stdout);
    }
    let page = std::fs::read_to_string(&html).unwrap();
    for section in [
        "<h3>Line2.L5X — Controller</h3>",
        "<h3>Line2.L5X — Program Filling</h3>",
    ] {
        assert_eq!(page.matches(section).count(), 1, "{section}");
    }
    assert!(
        page.contains("<td>Routine Sequence / Transition Bottle_In</td>"),
        "{page}"
    );
}
