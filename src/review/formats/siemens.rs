//! Siemens text sources (`.scl`, `.awl`/`.stl`, `.udt`, `.db`) as addressed items: each
//! block (`FB "Conveyor"`) with its header attributes, each interface section
//! (`VAR_INPUT` ...) and its body as lines — split at `NETWORK` for STL, one body for
//! SCL, the start values of a DB — so a change is named by block, section or network and
//! line.

use std::collections::BTreeMap;

use super::{Body, Export};

/// Block keywords and how an engineer names them.
const BLOCKS: &[(&str, &str)] = &[
    ("FUNCTION_BLOCK", "FB"),
    ("FUNCTION", "FC"),
    ("ORGANIZATION_BLOCK", "OB"),
    ("DATA_BLOCK", "DB"),
    ("TYPE", "UDT"),
];

/// Header attributes of a block.
const HEADER: &[&str] = &[
    "TITLE",
    "AUTHOR",
    "FAMILY",
    "VERSION",
    "NAME",
    "KNOW_HOW_PROTECT",
];

/// The code of a line with its comments removed (`//` to the end, `(* … *)` and
/// `/* … */`, which may span lines: `open` carries the one still open), upper-cased and
/// trimmed: what keywords are looked for in, so that an `END_FUNCTION_BLOCK` inside a
/// comment ends nothing.
fn code_of(line: &str, open: &mut Option<&'static str>) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        if let Some(close) = *open {
            match rest.find(close) {
                Some(i) => {
                    rest = &rest[i + close.len()..];
                    *open = None;
                }
                None => break,
            }
        }
        let next = ["//", "(*", "/*"]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min();
        match next {
            None => {
                out.push_str(rest);
                break;
            }
            Some((i, "//")) => {
                out.push_str(&rest[..i]);
                break;
            }
            Some((i, m)) => {
                out.push_str(&rest[..i]);
                out.push(' ');
                rest = &rest[i + 2..];
                *open = Some(if m == "(*" { "*)" } else { "*/" });
            }
        }
    }
    out.trim().to_ascii_uppercase()
}

/// Parses a Siemens source.
///
/// Fails when no block is found, or a block does not end.
pub fn parse(text: &str) -> Result<Export, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ex = Export {
        line_base: 1,
        ..Export::default()
    };
    let mut lines = text.lines().map(|l| l.trim_end()).peekable();
    let mut blocks = 0;
    // Keywords are not case-sensitive; comments hide them.
    let mut open = None;
    let mut outside: Vec<String> = Vec::new();
    while let Some(line) = lines.next() {
        let t = line.trim();
        let code = code_of(line, &mut open);
        let Some((kw, short)) = BLOCKS.iter().find(|(kw, _)| {
            code.strip_prefix(kw)
                .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t', '"']))
        }) else {
            // Text between blocks is compared too.
            if !t.is_empty() {
                outside.push(t.to_string());
            }
            continue;
        };
        // The name as written (the keyword may be in any case; a comment before it aside).
        let named = if t.to_ascii_uppercase().starts_with(kw) {
            t
        } else {
            code.as_str()
        };
        let name = named[kw.len()..]
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        let at = format!("{short} {name}");
        let end = format!("END_{kw}");
        let mut header = BTreeMap::new();
        let mut sections: Vec<(String, Vec<String>)> = Vec::new();
        let mut body: Vec<String> = Vec::new();
        let mut in_body = false;
        let mut section: Option<(String, Vec<String>)> = None;
        let mut ended = false;
        for l in lines.by_ref() {
            let u = l.trim();
            let code = code_of(l, &mut open);
            if code == end
                || code.starts_with(&format!("{end} "))
                || code.starts_with(&format!("{end};"))
            {
                ended = true;
                break;
            }
            if in_body {
                body.push(l.to_string());
                continue;
            }
            if let Some((name, lines)) = &mut section {
                if code.starts_with("END_VAR") || code.starts_with("END_STRUCT") {
                    sections.push((name.clone(), std::mem::take(lines)));
                    section = None;
                } else {
                    lines.push(u.to_string());
                }
                continue;
            }
            if code == "BEGIN" {
                in_body = true;
            } else if code.starts_with("VAR") || code == "STRUCT" {
                section = Some((code.clone(), Vec::new()));
            } else if let Some(h) = HEADER.iter().find(|h| code.starts_with(*h)) {
                let v = u[h.len()..].trim_start_matches([' ', ':', '=']).trim();
                header.insert(h.to_string(), v.to_string());
            } else if !u.is_empty() {
                // Attributes `{ ... }` and header comments, in order.
                let n = header.len();
                header.insert(format!("line {n:03}"), u.to_string());
            }
        }
        if !ended {
            return Err(format!("{at} does not end with {end}"));
        }
        blocks += 1;
        ex.add(&at, "block", false, Body::Fields(header));
        for (name, lines) in sections {
            ex.add(
                &format!("{at} / {name}"),
                "interface",
                false,
                Body::Lines(lines),
            );
        }
        let network = |l: &str| l.trim_start().to_ascii_uppercase().starts_with("NETWORK");
        let stl = body.iter().any(|l| network(l));
        if stl {
            let mut n = 0;
            let mut net: Vec<String> = Vec::new();
            for l in body {
                if network(&l) {
                    if n > 0 || !net.is_empty() {
                        ex.add(
                            &format!("{at} / Network {n}"),
                            "code",
                            false,
                            Body::Lines(std::mem::take(&mut net)),
                        );
                    }
                    n += 1;
                } else {
                    net.push(l);
                }
            }
            ex.add(
                &format!("{at} / Network {n}"),
                "code",
                false,
                Body::Lines(net),
            );
        } else {
            let what = if *short == "DB" {
                "Start values"
            } else {
                "Body"
            };
            ex.add(
                &format!("{at} / {what}"),
                if *short == "DB" { "values" } else { "code" },
                false,
                Body::Lines(body),
            );
        }
    }
    if blocks == 0 {
        return Err("no FUNCTION_BLOCK, FUNCTION, ORGANIZATION_BLOCK, DATA_BLOCK or TYPE".into());
    }
    if !outside.is_empty() {
        ex.add("Outside blocks", "code", false, Body::Lines(outside));
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::super::compare;
    use super::*;

    const FB: &str = "FUNCTION_BLOCK \"Conveyor\"\nTITLE = Conveyor\nAUTHOR : 'Alice'\nVERSION : 1.0\n   VAR_INPUT\n      start : Bool;\n      speed : Int := 10;\n   END_VAR\nBEGIN\n  IF #start THEN\n    #run := TRUE;\n  END_IF;\nEND_FUNCTION_BLOCK\n";

    fn changes(a: &str, b: &str) -> Vec<(String, &'static str)> {
        compare(&parse(a).unwrap(), &parse(b).unwrap())
            .into_iter()
            .map(|c| (c.address, c.what))
            .collect()
    }

    #[test]
    fn scl_blocks_sections_and_lines() {
        assert!(changes(FB, FB).is_empty());
        assert_eq!(
            changes(FB, &FB.replace("#run := TRUE;", "#run := FALSE;")),
            [("FB Conveyor / Body / Line 2".to_string(), "changed")]
        );
        assert_eq!(
            changes(FB, &FB.replace("speed : Int := 10;", "speed : Int := 12;")),
            [("FB Conveyor / VAR_INPUT / Line 2".to_string(), "changed")]
        );
        assert_eq!(
            changes(FB, &FB.replace("VERSION : 1.0", "VERSION : 1.1")),
            [("FB Conveyor / VERSION".to_string(), "changed")]
        );
        assert!(parse("FUNCTION_BLOCK \"X\"\nBEGIN\n").is_err());
        assert!(parse("hello").is_err());
    }

    #[test]
    fn stl_networks_are_items() {
        let awl = "FUNCTION \"Mix\" : VOID\nBEGIN\nNETWORK\nTITLE = start\n      A     I 0.0;\n      =     Q 0.0;\nNETWORK\nTITLE = stop\n      AN    I 0.1;\n      R     Q 0.0;\nEND_FUNCTION\n";
        assert_eq!(
            changes(awl, &awl.replace("AN    I 0.1;", "A     I 0.1;")),
            [("FC Mix / Network 2 / Line 2".to_string(), "changed")]
        );
    }

    #[test]
    fn every_corpus_scl_source_parses_and_matches_itself() {
        let Some(dir) = super::super::l5x::tests::corpus("siemens sources") else {
            return;
        };
        let mut n = 0;
        for e in walkdir::WalkDir::new(dir.join("scl")) {
            let e = e.unwrap();
            if !e.file_name().to_string_lossy().ends_with(".scl") {
                continue;
            }
            let ex = parse(&std::fs::read_to_string(e.path()).unwrap())
                .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
            assert!(ex.items.len() > 2, "{}", e.path().display());
            assert!(compare(&ex, &ex).is_empty());
            n += 1;
        }
        assert!(n >= 5, "{n} sources");
    }
}
