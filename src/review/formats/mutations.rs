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

mod tests {
    use super::*;

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
