//! Project-export formats a structured diff understands. Which one an artifact is comes
//! from what the collector recorded when it read the bytes (`ArtifactMeta::extra`
//! `format`: the extension together with the XML root element), never from a guess at
//! diff time.

pub mod l5x;

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
