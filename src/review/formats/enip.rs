//! The tag files the enip adapter records (`tags/controller.csv`,
//! `tags/program-NAME.csv`, format `enip-tags`) as addressed items: one per tag
//! (`Controller / Tag Recipe`, `Program MainProgram / Tag StepNo`) with its type,
//! dimensions and kind, and its value element by element (`value`, `value[3]`,
//! `value[1,2]`), so that a change reads as tag, element, old, new.

use std::collections::BTreeMap;

use super::{Body, Export};

/// The item kind of a tag of the given recorded kind (its value changes take the class
/// of that kind; see `review::diff`).
pub fn item_kind(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "values" => "values-tag",
        "recipe" => "recipe-tag",
        "config" => "config-tag",
        "logic" => "logic-tag",
        "identity" => "identity-tag",
        "image" => "image-tag",
        "other" => "other-tag",
        _ => return None,
    })
}

/// The recorded kind of an item kind made by [`item_kind`].
pub fn recorded_kind(item: &str) -> Option<&'static str> {
    Some(match item {
        "values-tag" => "values",
        "recipe-tag" => "recipe",
        "config-tag" => "config",
        "logic-tag" => "logic",
        "identity-tag" => "identity",
        "image-tag" => "image",
        "other-tag" => "other",
        _ => return None,
    })
}

/// The tag a change's address names, as Logix qualifies it (`Recipe`,
/// `Program:MainProgram.StepNo`), and whether the change is of its value.
pub fn tag_of(address: &str) -> Option<(String, bool)> {
    let mut parts = address.split(" / ");
    let owner = parts.next()?;
    let name = parts.next()?.strip_prefix("Tag ")?;
    let value = parts.next().is_some_and(|f| f.starts_with("value"));
    let full = match owner.strip_prefix("Program ") {
        Some(p) => format!("Program:{p}.{name}"),
        None if owner == "Controller" => name.to_string(),
        None => return None,
    };
    Some((full, value))
}

/// The field name of element `i` of an array of `dims`: `value[3]`, `value[1,2]`.
fn element(i: usize, dims: &[usize]) -> String {
    let mut idx = Vec::with_capacity(dims.len());
    let mut rest = i;
    for d in dims.iter().rev() {
        idx.push(rest % d.max(&1));
        rest /= d.max(&1);
    }
    idx.reverse();
    let idx: Vec<String> = idx.iter().map(usize::to_string).collect();
    format!("value[{}]", idx.join(","))
}

/// Reads a tag file into its items.
///
/// Fails when it is not a tag file of this version.
pub fn parse(text: &str) -> Result<Export, String> {
    let mut lines = text.lines();
    if lines.next() != Some(adapters::enip::TAGS_MAGIC) {
        return Err("not a plcvault enip tag file (v1)".into());
    }
    let scope = lines
        .next()
        .and_then(|l| l.strip_prefix("# scope="))
        .ok_or("no scope line")?;
    let owner = match scope.strip_prefix("Program:") {
        Some(p) => format!("Program {p}"),
        None if scope == "controller" => "Controller".to_string(),
        None => return Err(format!("scope `{scope}`")),
    };
    if lines.next() != Some("name,type,dimensions,kind,value") {
        return Err("no header line".into());
    }
    let mut ex = Export::default();
    for (n, line) in lines.enumerate() {
        let parts: Vec<&str> = line.splitn(5, ',').collect();
        let [name, type_name, dims, kind, value] = parts[..] else {
            return Err(format!("line {} has {} fields, not 5", n + 4, parts.len()));
        };
        let item = item_kind(kind).ok_or_else(|| format!("line {}: kind `{kind}`", n + 4))?;
        let mut f = BTreeMap::new();
        f.insert("type".to_string(), type_name.to_string());
        if !dims.is_empty() {
            f.insert("dimensions".to_string(), dims.to_string());
        }
        f.insert("kind".to_string(), kind.to_string());
        let shape: Option<Vec<usize>> = if dims.is_empty() {
            Some(Vec::new())
        } else {
            dims.split('x').map(|d| d.parse().ok()).collect()
        };
        let elements: Vec<&str> = value.split(' ').collect();
        match shape {
            Some(s)
                if !value.starts_with('!')
                    && !s.is_empty()
                    && elements.len() == s.iter().product::<usize>() =>
            {
                for (i, e) in elements.iter().enumerate() {
                    f.insert(element(i, &s), e.to_string());
                }
            }
            _ => {
                f.insert("value".to_string(), value.to_string());
            }
        }
        ex.add(
            &format!("{owner} / Tag {name}"),
            item,
            false,
            Body::Fields(f),
        );
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::formats::compare;

    const OLD: &str = "# plcvault enip tags v1\n# scope=Program:Main\nname,type,dimensions,kind,value\nGrid,INT,2x3,recipe,1 2 3 4 5 6\nSpeed,DINT,,values,10\nOld,DINT,,values,1\n";

    #[test]
    fn a_change_is_named_by_tag_and_element() {
        let new = OLD
            .replace("1 2 3 4 5 6", "1 2 3 4 9 6")
            .replace("Speed,DINT,,values,10", "Speed,REAL,,values,10")
            .replace("Old,DINT,,values,1\n", "New,DINT,,values,1\n");
        let c = compare(&parse(OLD).unwrap(), &parse(&new).unwrap());
        let got: Vec<(String, &str, Option<String>, Option<String>)> = c
            .into_iter()
            .map(|c| (c.address, c.what, c.old, c.new))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Program Main / Tag Grid / value[1,1]".to_string(),
                    "changed",
                    Some("5".into()),
                    Some("9".into())
                ),
                (
                    "Program Main / Tag New".into(),
                    "added",
                    None,
                    Some("kind: values\ntype: DINT\nvalue: 1".into())
                ),
                (
                    "Program Main / Tag Old".into(),
                    "removed",
                    Some("kind: values\ntype: DINT\nvalue: 1".into()),
                    None
                ),
                (
                    "Program Main / Tag Speed / type".into(),
                    "changed",
                    Some("DINT".into()),
                    Some("REAL".into())
                ),
            ]
        );
        assert_eq!(
            tag_of("Program Main / Tag Grid / value[1,1]"),
            Some(("Program:Main.Grid".into(), true))
        );
        assert_eq!(
            tag_of("Controller / Tag Speed / type"),
            Some(("Speed".into(), false))
        );
    }

    #[test]
    fn what_is_not_a_tag_file_does_not_parse() {
        assert!(parse("name,type\n").is_err());
        assert!(parse(&OLD.replace(",values,10", ",values")).is_err());
        assert!(parse(&OLD.replace("recipe", "secret")).is_err());
    }
}
