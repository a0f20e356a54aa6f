//! The node files the opcua adapter records (`nodes/ROOT.txt`, format `opcua-nodes`) as
//! addressed items: one per node (`Node ns=2;s=Recipes/2:Speed`) with its NodeId, class,
//! data type, access level, kind and value, so that a change reads as node, field, old,
//! new. Item kinds are the enip tag files' (`values-tag`, `recipe-tag`, ...): a node's
//! value takes the class of its recorded kind.

use std::collections::BTreeMap;

use super::enip::item_kind;
use super::{Body, Export};

/// The browse path a change's address names, and whether the change is of its value.
pub fn node_of(address: &str) -> Option<(String, bool)> {
    let rest = address.strip_prefix("Node ")?;
    match rest.rsplit_once(" / ") {
        Some((path, f)) => Some((path.to_string(), f == "value")),
        None => Some((rest.to_string(), false)),
    }
}

/// Reads a node file into its items.
///
/// Fails when it is not a node file of this version.
pub fn parse(text: &str) -> Result<Export, String> {
    let mut lines = text.lines();
    if lines.next() != Some(adapters::opcua::NODES_MAGIC) {
        return Err("not a plcvault opcua node file (v1)".into());
    }
    if !lines.next().is_some_and(|l| l.starts_with("# root=")) {
        return Err("no root line".into());
    }
    if lines.next() != Some(adapters::opcua::NODES_HEADER) {
        return Err("no header line".into());
    }
    let mut ex = Export::default();
    for (n, line) in lines.enumerate() {
        let parts: Vec<&str> = line.splitn(7, '\t').collect();
        let [path, nodeid, class, dtype, access, kind, value] = parts[..] else {
            return Err(format!("line {} has {} fields, not 7", n + 4, parts.len()));
        };
        let item = item_kind(kind).ok_or_else(|| format!("line {}: kind `{kind}`", n + 4))?;
        let mut f = BTreeMap::new();
        for (k, v) in [
            ("nodeid", nodeid),
            ("class", class),
            ("datatype", dtype),
            ("access", access),
            ("kind", kind),
            ("value", value),
        ] {
            if !v.is_empty() {
                f.insert(k.to_string(), v.to_string());
            }
        }
        ex.add(&format!("Node {path}"), item, false, Body::Fields(f));
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::formats::compare;

    const OLD: &str = "# plcvault opcua nodes v1\n# root=ns=2;s=R\n# path\tnodeid\tclass\tdatatype\taccess\tkind\tvalue\nns=2;s=R\tns=2;s=R\tObject\t\t\tvalues\t\nns=2;s=R/2:Speed\tns=2;s=R.Speed\tVariable\tDouble\trw\trecipe\t1.5\nns=2;s=R/2:Old\tns=2;s=R.Old\tVariable\tInt32\tr\tvalues\t1\n";

    #[test]
    fn a_change_is_named_by_browse_path_and_field() {
        let new = OLD
            .replace("rw\trecipe\t1.5", "r\trecipe\t2.5")
            .replace("2:Old\tns=2;s=R.Old", "2:New\tns=2;s=R.New");
        let c = compare(&parse(OLD).unwrap(), &parse(&new).unwrap());
        let got: Vec<(String, &str)> = c.into_iter().map(|c| (c.address, c.what)).collect();
        assert_eq!(
            got,
            [
                ("Node ns=2;s=R/2:New".to_string(), "added"),
                ("Node ns=2;s=R/2:Old".to_string(), "removed"),
                ("Node ns=2;s=R/2:Speed / access".to_string(), "changed"),
                ("Node ns=2;s=R/2:Speed / value".to_string(), "changed"),
            ]
        );
        assert_eq!(
            node_of("Node ns=2;s=R/2:Speed / value"),
            Some(("ns=2;s=R/2:Speed".into(), true))
        );
        assert!(parse("x").is_err());
        assert!(parse(&OLD.replace("\trecipe\t", "\tsecret\t")).is_err());
    }
}
