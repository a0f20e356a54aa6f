//! Seeded one-token mutations of real exports, each of which must be reported at exactly
//! the mutated address and nowhere else; and edits that change nothing that runs
//! (re-indenting, reordered attributes, bumped timestamps), which must give no logic or
//! config change. Run on the shared corpus where it is, on committed fixtures always.

use super::{Body, Export, compare};

/// A small deterministic generator (xorshift), so a failure names the seed that replays it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Changes one character of `s` at a random position to another printable one that keeps
/// XML well-formed (no `<`, `&`, `]`, quotes).
fn mutate_token(s: &str, rng: &mut Rng) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let candidates: Vec<usize> = chars
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let i = candidates[rng.below(candidates.len())];
    let old = chars[i];
    let new = if old.is_ascii_digit() {
        char::from(b'0' + ((old as u8 - b'0' + 1) % 10))
    } else if old == 'Z' {
        'A'
    } else if old == 'z' {
        'a'
    } else {
        char::from(old as u8 + 1)
    };
    let mut out = chars;
    out[i] = new;
    Some(out.into_iter().collect())
}

/// For each of `n` seeds: picks an item's body entry (a rung, a line), mutates one token
/// in the source text where that entry's text appears once, and checks that the compare
/// names exactly that item.
fn one_token_mutations(text: &str, parse: fn(&str) -> Result<Export, String>, n: usize) -> usize {
    let base = parse(text).unwrap();
    let mut entries: Vec<(String, String)> = Vec::new();
    for item in base.items.values() {
        match &item.body {
            Body::Rungs(r) => {
                entries.extend(r.iter().map(|(t, _)| (item.address.clone(), t.clone())))
            }
            Body::Lines(l) => entries.extend(
                l.iter()
                    .filter(|t| t.trim().len() > 3)
                    .map(|t| (item.address.clone(), t.clone())),
            ),
            Body::Fields(_) => {}
        }
    }
    // Only entries whose text appears once in the whole file can be mutated unambiguously.
    entries.retain(|(_, t)| text.matches(t.as_str()).count() == 1);
    assert!(!entries.is_empty(), "nothing to mutate");
    let mut tried = 0;
    let mut rng = Rng(0x5EED_u64 ^ text.len() as u64);
    for seed in 0..n {
        let (address, entry) = &entries[rng.below(entries.len())];
        let Some(mutated) = mutate_token(entry, &mut rng) else {
            continue;
        };
        let new_text = text.replacen(entry.as_str(), &mutated, 1);
        let Ok(new) = parse(&new_text) else {
            continue;
        };
        let got = compare(&base, &new);
        assert_eq!(
            got.len(),
            1,
            "seed {seed}: {entry:?} -> {mutated:?}: {got:?}"
        );
        assert!(
            got[0].address.starts_with(address.as_str()) && got[0].what == "changed",
            "seed {seed}: mutated in {address}, reported {got:?}"
        );
        tried += 1;
    }
    tried
}

/// For each of `n` seeds: mutates one token in the value of an attribute `attr` on a line
/// that `line` accepts (a tag's decorated `Value`, a member's `DataType`, a variable's
/// initial value), and checks that exactly one change is reported, at an address `at`
/// accepts. Returns how many were checked.
fn value_mutations(
    text: &str,
    parse: super::Parser,
    (attr, line): (&str, fn(&str) -> bool),
    at: fn(&str) -> bool,
    n: usize,
) -> usize {
    let base = parse(text).unwrap();
    let needle = format!(" {attr}=\"");
    // Byte ranges of the values of `attr` on accepted lines.
    let mut values = Vec::new();
    let mut offset = 0;
    for l in text.split_inclusive('\n') {
        if line(l.trim_start()) {
            for (i, _) in l.match_indices(&needle) {
                let start = offset + i + needle.len();
                if let Some(len) = text[start..].find('"') {
                    values.push(start..start + len);
                }
            }
        }
        offset += l.len();
    }
    let mut rng = Rng(0xA77_u64 ^ text.len() as u64);
    let mut tried = 0;
    for seed in 0..n {
        if values.is_empty() {
            break;
        }
        let r = values[rng.below(values.len())].clone();
        let Some(mutated) = mutate_token(&text[r.clone()], &mut rng) else {
            continue;
        };
        let new_text = format!("{}{mutated}{}", &text[..r.start], &text[r.end..]);
        let Ok(new) = parse(&new_text) else {
            continue;
        };
        let got: Vec<_> = compare(&base, &new)
            .into_iter()
            .filter(|c| c.what != "cosmetic")
            .collect();
        assert_eq!(
            got.len(),
            1,
            "seed {seed}: {attr}={:?} -> {mutated:?}: {got:?}",
            &text[r.clone()]
        );
        assert!(
            at(&got[0].address) && got[0].what == "changed",
            "seed {seed}: {attr} mutated, reported {got:?}"
        );
        tried += 1;
    }
    tried
}

/// The value mutations of a format: L5X tag values and member types, PLCopen initial
/// values.
fn values_of(format: &str, text: &str, parse: super::Parser, n: usize) -> usize {
    match format {
        "l5x" => {
            value_mutations(
                text,
                parse,
                ("Value", |l| {
                    l.starts_with("<DataValue") || l.starts_with("<Element")
                }),
                |a| {
                    a.ends_with("/ value")
                        || a.contains("/ LocalTag ")
                        || a.contains("/ Parameter ")
                },
                n,
            ) + value_mutations(
                text,
                parse,
                ("DataType", |l| l.starts_with("<Member ")),
                |a| a.contains("/ Member "),
                n,
            )
        }
        "plcopen" => value_mutations(
            text,
            parse,
            ("value", |l| l.contains("<simpleValue")),
            |a| a.starts_with("POU ") || a.starts_with("DataType ") || a.starts_with("GlobalVars "),
            n,
        ),
        _ => 0,
    }
}

/// Edits that change nothing that runs: the same text re-indented (white space between
/// elements), and every timestamp the format calls cosmetic bumped.
fn harmless_edits(text: &str, parse: fn(&str) -> Result<Export, String>) {
    let base = parse(text).unwrap();
    let reindented = text
        .replace(">\n<", ">\n    <")
        .replace(">\r\n<", ">\r\n    <");
    let got = compare(&base, &parse(&reindented).unwrap());
    assert!(got.is_empty(), "re-indented: {got:?}");
    let bumped = text
        .replace("2023-", "2025-")
        .replace("2024-", "2025-")
        .replace("2022-", "2025-")
        .replace(
            "ProductVersion=\"3.1.4022.18\"",
            "ProductVersion=\"3.1.4026.1\"",
        );
    for c in compare(&base, &parse(&bumped).unwrap()) {
        assert!(
            c.what == "cosmetic" || c.what == "comment",
            "bumped dates changed {c:?}"
        );
    }
}

/// The committed fixtures, one or two per format (`tests/fixtures/exports/`): name and text.
pub const FIXTURES: &[(&str, &str)] = &[
    (
        "Line2.L5X",
        include_str!("../../../tests/fixtures/exports/Line2.L5X"),
    ),
    (
        "FB_Capper.TcPOU",
        include_str!("../../../tests/fixtures/exports/FB_Capper.TcPOU"),
    ),
    (
        "Line2.plcopen.xml",
        include_str!("../../../tests/fixtures/exports/Line2.plcopen.xml"),
    ),
    (
        "FB20_Mixer.scl",
        include_str!("../../../tests/fixtures/exports/FB20_Mixer.scl"),
    ),
    (
        "FC30_Valves.awl",
        include_str!("../../../tests/fixtures/exports/FC30_Valves.awl"),
    ),
];

/// The parser of a fixture, by the format the collector records for it.
pub fn fixture_parser(name: &str, text: &str) -> super::Parser {
    let f = super::detect(name, text.as_bytes()).expect("a fixture has a format");
    super::parser(f).expect("a fixture's format is read by address")
}

mod tests {
    use super::*;

    #[test]
    fn the_committed_fixtures_parse_survive_harmless_edits_and_name_every_mutation() {
        for (name, text) in FIXTURES {
            let parse = fixture_parser(name, text);
            let ex = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(ex.items.len() > 2, "{name}");
            assert!(compare(&ex, &ex).is_empty(), "{name}");
            if !name.ends_with(".scl") && !name.ends_with(".awl") {
                harmless_edits(text, parse);
            }
            let done = one_token_mutations(text, parse, 60);
            assert!(done >= 5, "{name}: only {done} mutations checked");
            let format = super::super::detect(name, text.as_bytes()).unwrap();
            let values = values_of(format, text, parse, 60);
            assert!(
                values >= 30 || !matches!(format, "l5x" | "plcopen"),
                "{name}: only {values} value mutations checked"
            );
        }
    }

    fn corpus_files(dir: &str, ext: &str) -> Vec<String> {
        let Some(root) = super::super::l5x::tests::corpus(dir) else {
            return Vec::new();
        };
        walkdir::WalkDir::new(root.join(dir))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .ends_with(ext)
            })
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    }

    #[test]
    fn two_hundred_one_token_mutations_per_format_are_each_named_at_their_address() {
        for (dir, ext, parse) in [
            (
                "l5x",
                ".l5x",
                super::super::l5x::parse as fn(&str) -> Result<Export, String>,
            ),
            ("twincat", ".tcpou", super::super::twincat::parse),
            ("plcopen", ".xml", super::super::plcopen::parse),
            ("scl", ".scl", super::super::siemens::parse),
        ] {
            let files = corpus_files(dir, ext);
            if files.is_empty() {
                continue;
            }
            let mut done = 0;
            let per_file = 200usize.div_ceil(files.len()) + 20;
            for text in files.iter().filter(|t| parse(t).is_ok()) {
                if done >= 200 {
                    break;
                }
                let body_entries = parse(text)
                    .unwrap()
                    .items
                    .values()
                    .any(|i| !matches!(i.body, Body::Fields(_)));
                if body_entries {
                    done += one_token_mutations(text, parse, per_file);
                }
            }
            assert!(done >= 200, "{dir}: only {done} mutations checked");
            // Tag values, member types, initial values.
            if matches!(dir, "l5x" | "plcopen") {
                let mut values = 0;
                for text in files.iter().filter(|t| parse(t).is_ok()) {
                    if values >= 200 {
                        break;
                    }
                    values += values_of(dir, text, parse, 70);
                }
                assert!(
                    values >= 200,
                    "{dir}: only {values} value mutations checked"
                );
            }
        }
    }

    #[test]
    fn reindenting_and_bumped_dates_change_nothing_that_runs() {
        for (dir, ext, parse) in [
            (
                "l5x",
                ".l5x",
                super::super::l5x::parse as fn(&str) -> Result<Export, String>,
            ),
            ("twincat", ".tcpou", super::super::twincat::parse),
            ("plcopen", ".xml", super::super::plcopen::parse),
        ] {
            for text in corpus_files(dir, ext) {
                harmless_edits(&text, parse);
            }
        }
    }
}

/// Inventories agree with implementations nobody here wrote: the Python `l5x` package
/// (controller and program tags of a full-controller export) and blark (a TwinCAT POU's
/// methods), run from the workspace's `.venv` as the test command installs it.
mod outside {
    use std::process::Command;

    fn inventory(kind: &str, file: &std::path::Path) -> Option<serde_json::Value> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let py = root.join(".venv/bin/python");
        let module = if kind == "l5x" { "l5x" } else { "blark" };
        let have = py.exists()
            && Command::new(&py)
                .args(["-c", &format!("import {module}")])
                .status()
                .is_ok_and(|s| s.success());
        if !have {
            assert!(
                std::env::var("PLCVAULT_REQUIRE_PEERS").as_deref() != Ok("1"),
                "{module} is required (PLCVAULT_REQUIRE_PEERS=1); run `bash tests/run.sh`"
            );
            eprintln!("SKIPPED: {module} not installed (run `bash tests/run.sh`)");
            return None;
        }
        let out = Command::new(&py)
            .arg(root.join("tests/peers/inventory.py"))
            .arg(kind)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout).unwrap())
    }

    fn names(v: &serde_json::Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_l5x_package_lists_the_tags_we_list() {
        let Some(dir) = super::super::l5x::tests::corpus("l5x inventory") else {
            return;
        };
        let file = dir.join(
            "l5x/johnpuksta-l5x-lint/4f03e2b/tests/unit/data/valid/projects/ACDTestsWithAOI.L5X",
        );
        let Some(inv) = inventory("l5x", &file) else {
            return;
        };
        let ex = super::super::l5x::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let ours = |prefix: &str| -> Vec<String> {
            let mut v: Vec<String> = ex
                .items
                .values()
                .filter(|i| i.kind == "tag")
                .filter_map(|i| i.address.strip_prefix(prefix).map(str::to_string))
                .collect();
            v.sort();
            v
        };
        assert_eq!(ours("Controller / Tag "), names(&inv["controller_tags"]));
        for (p, tags) in inv["programs"].as_object().unwrap() {
            assert_eq!(
                ours(&format!("Program {p} / Tag ")),
                names(tags),
                "program {p}"
            );
        }
    }

    /// PLCopen by plain XML element counts, from Python's own XML parser (nothing of
    /// ours): as many POUs, methods and data types as the file has elements.
    #[test]
    fn plain_xml_counts_agree_with_our_plcopen_items() {
        let Some(dir) = super::super::l5x::tests::corpus("plcopen element counts") else {
            return;
        };
        let base = dir.join("plcopen/MichielVanwelsenaere-HomeAutomation.CoDeSys3");
        for (commit, path) in [
            ("89b6545", "src/Exports/PLCopen.xml"),
            ("298b7bf", "src/Exports/PLCopen.xml"),
            ("d8149b1", "src/PLCopen/HomeAutomation.xml"),
            ("192d3fa", "src/PLCopen/HomeAutomation.xml"),
        ] {
            let file = base.join(commit).join(path);
            let script = "import sys, xml.etree.ElementTree as E\nt = E.parse(sys.argv[1])\nn = lambda tag: sum(1 for e in t.iter() if e.tag.split('}')[-1] == tag)\nprint(n('pou'), n('Method'), n('dataType'))";
            let out = Command::new("python3")
                .args(["-c", script])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let ex =
                super::super::plcopen::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let count = |f: &dyn Fn(&super::super::Item) -> bool| {
                ex.items.values().filter(|i| f(i)).count()
            };
            let pous = count(&|i| {
                i.kind == "pou" && i.address.starts_with("POU ") && !i.address.contains(" / ")
            });
            let methods = count(&|i| i.kind == "pou" && i.address.contains(" / Method "));
            let types = count(&|i| i.kind == "datatype");
            assert_eq!(format!("{pous} {methods} {types}"), theirs, "{commit}");
        }
    }

    #[test]
    fn blark_lists_the_methods_we_list() {
        let Some(dir) = super::super::l5x::tests::corpus("twincat inventory") else {
            return;
        };
        for commit in ["5059342", "c7d7021", "b6edc60"] {
            let file = dir.join(format!(
                "twincat/tcunit-TcUnit/{commit}/TcUnit/TcUnit/POUs/FB_TestSuite.TcPOU"
            ));
            let Some(inv) = inventory("blark", &file) else {
                return;
            };
            let ex =
                super::super::twincat::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let pou = inv["name"].as_str().unwrap();
            let mut ours: Vec<String> = ex
                .items
                .values()
                .filter(|i| i.kind == "method")
                .filter_map(|i| {
                    i.address
                        .strip_prefix(&format!("POU {pou} / Method "))
                        .map(str::to_string)
                })
                .collect();
            ours.sort();
            assert_eq!(ours, names(&inv["parts"]["Method"]), "{commit}");
        }
    }
}
