//! Writing node values back onto an OPC UA server marked `writable = true`, for restores
//! and drills onto a spare or simulator: the only place this adapter sends Write, and
//! only with the device's write permit.
//!
//! A node file's line says a node's data type, access level and value as canonical text
//! (see `variant_text`). The variables the server lets the user write (`w` in the access)
//! whose value has a text this module reads back into a value (the built-in scalars and
//! one-dimensional arrays of them) are written, unless the target's UserAccessLevel says
//! this login may not write them (then they are failures, never sent); every variable with a value is then read
//! back and its text compared with the snapshot's, so a read-only node that differs is
//! found too.

use opcua::types::{
    Array, AttributeId, ByteString, DataValue, NodeId, StatusCode, Variant, VariantScalarTypeId,
    WriteValue,
};

use super::{OpcuaCollector, OpcuaOptions, READ_BATCH, attr, variant_text};
use crate::{
    AdapterError, ArtifactKind, BoxFuture, DeviceRestore, RestoreFailure, RestoreItem, WritePermit,
    Writer,
};

/// Nodes per Write request.
const WRITE_BATCH: usize = 100;

/// The CurrentWrite bit of an AccessLevel or UserAccessLevel byte.
const CURRENT_WRITE: u8 = 0x02;

/// One variable of a node file, as the snapshot recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeValue {
    pub path: String,
    pub node: NodeId,
    /// The value's canonical text, as recorded.
    pub text: String,
    /// The value to write, when the node is writable and its text reads back into one.
    pub write: Option<Variant>,
}

/// The variables of a node file that have a value, in file order; lines that are not
/// node lines are errors (the file is not a node file of this format).
pub fn node_values(text: &str) -> Result<Vec<NodeValue>, String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split('\t').collect();
        let [path, node, class, dtype, access, _kind, value] = parts[..] else {
            return Err(format!("line {}: not 7 tab-separated fields", i + 1));
        };
        if class != "Variable" || value.is_empty() || value == "null" || value.starts_with('!') {
            continue;
        }
        let node = unfield(node)
            .and_then(|n| super::parse_node_id(&n))
            .ok_or_else(|| format!("line {}: `{node}` is not a NodeId", i + 1))?;
        // A collection records each node once: a second line for one is not of its making.
        if !seen.insert(node.clone()) {
            return Err(format!("line {}: node {node} is listed twice", i + 1));
        }
        let write = access
            .contains('w')
            .then(|| parse_variant(dtype, value))
            .flatten();
        out.push(NodeValue {
            path: unfield(path).unwrap_or_else(|| path.to_string()),
            node,
            text: value.to_string(),
            write,
        });
    }
    Ok(out)
}

/// Undoes `field`: `\\`, `\t`, `\n`, `\r`, `\"` and `\u{..}`.
fn unfield(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next()? {
            '\\' => out.push('\\'),
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            '"' => out.push('"'),
            'u' => {
                if it.next()? != '{' {
                    return None;
                }
                let hex: String = it.by_ref().take_while(|c| *c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A built-in scalar type by the name the node file gives it.
fn scalar_type(dtype: &str) -> Option<VariantScalarTypeId> {
    use VariantScalarTypeId as T;
    Some(match dtype {
        "Boolean" => T::Boolean,
        "SByte" => T::SByte,
        "Byte" => T::Byte,
        "Int16" => T::Int16,
        "UInt16" => T::UInt16,
        "Int32" => T::Int32,
        "UInt32" => T::UInt32,
        "Int64" => T::Int64,
        "UInt64" => T::UInt64,
        "Float" => T::Float,
        "Double" => T::Double,
        "String" => T::String,
        "ByteString" => T::ByteString,
        _ => return None,
    })
}

/// The value a canonical text stands for, for the built-in scalars and one-dimensional
/// arrays of them; `None` for anything else (it is compared, not written).
pub fn parse_variant(dtype: &str, text: &str) -> Option<Variant> {
    let t = scalar_type(dtype)?;
    let v = match text.strip_prefix('[') {
        Some(inner) => {
            let items = split_items(inner.strip_suffix(']')?)?;
            let values = items
                .iter()
                .map(|i| parse_scalar(t, i))
                .collect::<Option<Vec<_>>>()?;
            Variant::Array(Box::new(Array::new(t, values).ok()?))
        }
        None => parse_scalar(t, text)?,
    };
    // Only what reads back to the very text recorded: no lossy guess is ever written.
    (variant_text(&v) == text).then_some(v)
}

/// The items of an array's text (`1, 2, 3`, `"a, b", "c"`), split at the commas outside
/// quotes.
fn split_items(s: &str) -> Option<Vec<&str>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&s[start..i]);
                start = i + 2;
                if s.get(i + 1..i + 2) != Some(" ") {
                    return None;
                }
            }
            _ => {}
        }
    }
    if quoted || start > s.len() {
        return None;
    }
    items.push(&s[start..]);
    Some(items)
}

fn parse_scalar(t: VariantScalarTypeId, s: &str) -> Option<Variant> {
    use VariantScalarTypeId as T;
    Some(match t {
        T::Boolean => Variant::Boolean(s.parse().ok()?),
        T::SByte => Variant::SByte(s.parse().ok()?),
        T::Byte => Variant::Byte(s.parse().ok()?),
        T::Int16 => Variant::Int16(s.parse().ok()?),
        T::UInt16 => Variant::UInt16(s.parse().ok()?),
        T::Int32 => Variant::Int32(s.parse().ok()?),
        T::UInt32 => Variant::UInt32(s.parse().ok()?),
        T::Int64 => Variant::Int64(s.parse().ok()?),
        T::UInt64 => Variant::UInt64(s.parse().ok()?),
        T::Float => Variant::Float(match s.strip_prefix("bits:0x") {
            Some(h) => f32::from_bits(u32::from_str_radix(h, 16).ok()?),
            None => s.parse().ok()?,
        }),
        T::Double => Variant::Double(match s.strip_prefix("bits:0x") {
            Some(h) => f64::from_bits(u64::from_str_radix(h, 16).ok()?),
            None => s.parse().ok()?,
        }),
        T::String => {
            let inner = s.strip_prefix('"')?.strip_suffix('"')?;
            Variant::String(unfield(inner)?.into())
        }
        T::ByteString => {
            let b = vault::hash::unhex(s.strip_prefix("0x")?)?;
            Variant::ByteString(ByteString::from(b))
        }
        _ => return None,
    })
}

fn is_node_file(name: &str) -> bool {
    name.starts_with("nodes/") && name.ends_with(".txt")
}

/// Writes node values back with Write, for restores and drills onto a writable server,
/// then reads every recorded value back and compares its text.
pub struct OpcuaWriter {
    opts: OpcuaOptions,
}

impl OpcuaWriter {
    pub fn new(opts: OpcuaOptions) -> OpcuaWriter {
        OpcuaWriter { opts }
    }

    async fn restore_now(
        &self,
        items: &[RestoreItem],
        permit: &WritePermit,
    ) -> Result<DeviceRestore, AdapterError> {
        let o = &self.opts;
        permit.check(&o.device)?;
        let mut nodes: Vec<(String, NodeValue)> = Vec::new();
        // The snapshot's namespace table, from its identity: NodeIds are written by
        // namespace index, which means nothing on a server whose table differs.
        let namespaces: Vec<(u16, String)> = items
            .iter()
            .filter(|a| a.name == "identity.txt")
            .flat_map(|a| {
                String::from_utf8_lossy(&a.bytes)
                    .into_owned()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                Some((k.strip_prefix("namespace-")?.parse().ok()?, v.to_string()))
            })
            .collect();
        for a in items.iter().filter(|a| is_node_file(&a.name)) {
            let text = std::str::from_utf8(&a.bytes).map_err(|_| AdapterError::Config {
                device: o.device.clone(),
                key: "snapshot".into(),
                why: format!("{} is not UTF-8 text", a.name),
            })?;
            let values = node_values(text).map_err(|why| AdapterError::Config {
                device: o.device.clone(),
                key: "snapshot".into(),
                why: format!("{}: {why}", a.name),
            })?;
            nodes.extend(values.into_iter().map(|v| (a.name.clone(), v)));
        }
        if !nodes.iter().any(|(_, v)| v.write.is_some()) {
            return Err(AdapterError::Config {
                device: o.device.clone(),
                key: "snapshot".into(),
                why: "the snapshot holds no value of a writable node (nodes/*.txt) to restore"
                    .into(),
            });
        }
        let collector = OpcuaCollector::new(o.clone());
        collector
            .in_session(async |session, pacer, _, _| {
                let mut r = DeviceRestore::default();
                let used: std::collections::BTreeSet<u16> =
                    nodes.iter().map(|(_, v)| v.node.namespace).filter(|n| *n > 0).collect();
                if !used.is_empty() {
                    let ns = collector
                        .read(session, pacer, vec![attr(NodeId::new(0, 2255u32), AttributeId::Value)])
                        .await?;
                    r.requests += 1;
                    let theirs: Vec<String> = match &ns[0].value {
                        Some(Variant::Array(a)) => a.values.iter().map(variant_text).collect(),
                        _ => Vec::new(),
                    };
                    for i in used {
                        let ours = namespaces.iter().find(|(n, _)| *n == i).map(|(_, u)| u.as_str());
                        let there = theirs.get(usize::from(i)).map(String::as_str);
                        if ours.is_none() || ours != there {
                            return Err(AdapterError::Refused {
                                device: o.device.clone(),
                                why: format!(
                                    "namespace index {i} is {} on this server but {} in the snapshot: its NodeIds would name other nodes here",
                                    there.unwrap_or("missing"),
                                    ours.unwrap_or("not recorded")
                                ),
                                fix: "restore onto a server with the same namespace table (the same project), or restore to a folder with --to DIR".into(),
                            });
                        }
                    }
                }
                let mut not_written = std::collections::HashSet::new();
                let t0 = std::time::Instant::now();
                let candidates: Vec<&(String, NodeValue)> =
                    nodes.iter().filter(|(_, v)| v.write.is_some()).collect();
                // What this login may write here, as the target says (UserAccessLevel):
                // a value it may not write is a failure named before anything is sent.
                let mut writes = Vec::with_capacity(candidates.len());
                for chunk in candidates.chunks(READ_BATCH) {
                    let ids = chunk
                        .iter()
                        .map(|(_, v)| attr(v.node.clone(), AttributeId::UserAccessLevel))
                        .collect();
                    let levels = collector.read(session, pacer, ids).await?;
                    r.requests += 1;
                    for (item, d) in chunk.iter().zip(levels) {
                        let (artifact, v) = item;
                        let level = match (&d.status, &d.value) {
                            (Some(st), _) if !st.is_good() => Err(format!("{st}")),
                            (_, Some(Variant::Byte(b))) => Ok(*b),
                            (_, other) => Err(format!("{other:?}")),
                        };
                        match level {
                            Ok(b) if b & CURRENT_WRITE != 0 => writes.push(*item),
                            Ok(b) => {
                                not_written.insert(v.node.clone());
                                r.failures.push(RestoreFailure {
                                    artifact: artifact.clone(),
                                    error: format!(
                                        "{}: not written: the target lets this login only `{}` it (UserAccessLevel)",
                                        v.path,
                                        super::access_text(b)
                                    ),
                                });
                            }
                            Err(why) => {
                                not_written.insert(v.node.clone());
                                r.failures.push(RestoreFailure {
                                    artifact: artifact.clone(),
                                    error: format!(
                                        "{}: not written: its UserAccessLevel could not be read ({why})",
                                        v.path
                                    ),
                                });
                            }
                        }
                    }
                }
                for chunk in writes.chunks(WRITE_BATCH) {
                    let wv: Vec<WriteValue> = chunk
                        .iter()
                        .map(|(_, v)| WriteValue {
                            node_id: v.node.clone(),
                            attribute_id: AttributeId::Value as u32,
                            index_range: Default::default(),
                            value: DataValue::value_only(v.write.clone().expect("writable")),
                        })
                        .collect();
                    let written = r.written;
                    let st = collector
                        .timed(pacer, "Write", session.write(&wv))
                        .await
                        .map_err(|e| {
                            e.noted(&format!(
                                "{written} of {} values had been written before this Write: the target now holds a mix of its own and the snapshot's; run the restore again",
                                writes.len()
                            ))
                        })?;
                    r.requests += 1;
                    if st.len() != chunk.len() {
                        return Err(AdapterError::Protocol {
                            device: o.device.clone(),
                            why: format!("{} results to a Write of {}", st.len(), chunk.len()),
                            fix: "see the server's log; read the device back before trusting it"
                                .into(),
                        });
                    }
                    for ((artifact, v), s) in chunk.iter().zip(st) {
                        if s.is_good() {
                            r.items += 1;
                            r.written += 1;
                        } else {
                            not_written.insert(v.node.clone());
                            r.failures.push(RestoreFailure {
                                artifact: artifact.clone(),
                                error: format!("{}: write: {s}", v.path),
                            });
                        }
                    }
                }
                r.write_ms = t0.elapsed().as_millis() as u64;
                let t1 = std::time::Instant::now();
                for chunk in nodes.chunks(READ_BATCH) {
                    let ids = chunk
                        .iter()
                        .map(|(_, v)| attr(v.node.clone(), AttributeId::Value))
                        .collect();
                    let written = r.written;
                    let back = collector.read(session, pacer, ids).await.map_err(|e| {
                        e.noted(&format!(
                            "{written} values were written; reading them back failed, so the restore is not verified"
                        ))
                    })?;
                    r.requests += 1;
                    for ((artifact, v), d) in chunk.iter().zip(back) {
                        let status = d.status.unwrap_or(StatusCode::Good);
                        let text = d.value.as_ref().map_or("null".into(), variant_text);
                        let written = v.write.is_some();
                        if !written {
                            r.compared_only.push(v.path.clone());
                        }
                        let error = if !status.is_good() {
                            format!("{}: read back: {status}", v.path)
                        } else if text != v.text {
                            format!(
                                "{}: read back differs{}: {} (snapshot {})",
                                v.path,
                                if written {
                                    ""
                                } else {
                                    " (read-only, not written)"
                                },
                                text,
                                v.text
                            )
                        } else {
                            continue;
                        };
                        // A refused write is already a failure of its own.
                        if not_written.contains(&v.node) {
                            continue;
                        }
                        r.failures.push(RestoreFailure {
                            artifact: artifact.clone(),
                            error,
                        });
                    }
                }
                r.verify_ms = t1.elapsed().as_millis() as u64;
                Ok(r)
            })
            .await
    }
}

impl Writer for OpcuaWriter {
    fn takes(&self, name: &str, _kind: ArtifactKind) -> bool {
        // The identity for its namespace table; it is compared, never written.
        is_node_file(name) || name == "identity.txt"
    }
    fn restore<'a>(
        &'a self,
        items: &'a [RestoreItem],
        permit: &'a WritePermit,
    ) -> BoxFuture<'a, Result<DeviceRestore, AdapterError>> {
        Box::pin(self.restore_now(items, permit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_into_the_text_they_came_from_or_not_at_all() {
        for (dtype, text) in [
            ("Int32", "[0, 10, -20]"),
            ("Double", "1.5"),
            ("Double", "bits:0x7ff8000000000001"),
            ("Float", "80.25"),
            ("String", "\"Bottle 0.5l, \\\"new\\\"\\t\\u{1}\""),
            ("String", "[\"a, b\", \"c\"]"),
            ("Boolean", "true"),
            ("UInt16", "[]"),
            ("ByteString", "0x00ff"),
        ] {
            let v = parse_variant(dtype, text).unwrap_or_else(|| panic!("{dtype} {text}"));
            assert_eq!(variant_text(&v), text);
        }
        for (dtype, text) in [
            ("Int32", "1.5"),
            ("Byte", "256"),
            ("Int32", "[1,2]"),
            ("String", "\"open"),
            ("DateTime", "2026-11-01T00:00:00Z"),
            ("Int32", "[2, 2][1, 2, 3, 4]"),
            ("Double", "1.50"),
        ] {
            assert_eq!(parse_variant(dtype, text), None, "{dtype} {text}");
        }
    }

    #[test]
    fn only_variables_with_a_value_are_taken_and_only_writable_ones_written() {
        let text = "# plcvault opcua nodes v1\n# root=ns=2;s=R\n# path\tnodeid\tclass\tdatatype\taccess\tkind\tvalue\n\
            ns=2;s=R\tns=2;s=R\tObject\t\t\tvalues\t\n\
            ns=2;s=R/2:A\tns=2;s=R.A\tVariable\tDouble\trw\tvalues\t1.5\n\
            ns=2;s=R/2:B\tns=2;s=R.B\tVariable\tFloat\tr\tvalues\t2.5\n\
            ns=2;s=R/2:C\tns=2;s=R.C\tVariable\tInt32\trw\tvalues\t!status BadInternalError\n";
        let v = node_values(text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].write, Some(Variant::Double(1.5)));
        assert_eq!(v[1].write, None);
        assert!(node_values("a\tb\n").is_err());
        let twice = format!("{text}ns=2;s=R/2:A2\tns=2;s=R.A\tVariable\tDouble\trw\tvalues\t2.5\n");
        assert!(node_values(&twice).unwrap_err().contains("listed twice"));
    }

    #[test]
    fn a_string_node_id_the_library_cannot_parse_is_read_back_from_its_field() {
        let line = |id: &NodeId| {
            format!(
                "ns=2;s=R/2:X\t{}\tVariable\tDouble\trw\tvalues\t1.5\n",
                super::super::field(&id.to_string())
            )
        };
        for id in [
            NodeId::new(2, "Evil\nX"),
            NodeId::new(2, ""),
            NodeId::new(2, "a;b=c"),
        ] {
            let v = node_values(&line(&id)).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(v[0].node, id);
        }
    }

    #[test]
    fn a_client_certificate_near_its_end_is_warned_about_with_how_to_renew() {
        let day = std::time::Duration::from_secs(86400);
        let now = std::time::SystemTime::now();
        let c = |left| super::super::OwnCertificate {
            path: "/site/keys/opcua/own/cert.der".into(),
            sha256: String::new(),
            not_after: now + left,
        };
        assert_eq!(c(day * 60).expiry_warning(now), None);
        let soon = c(day * 10).expiry_warning(now).unwrap();
        assert!(
            soon.contains("expires on") && soon.contains("opcua cert --pki-dir /site/keys/opcua"),
            "{soon}"
        );
        let gone = c(day * 10).expiry_warning(now + day * 20).unwrap();
        assert!(gone.contains("expired on"), "{gone}");
    }

    #[test]
    fn what_a_server_names_cannot_break_a_line() {
        let evil = "x\n2:Y\tns=2;s=Y\tVariable\tDouble\trw\tvalues\t9999";
        for v in [
            Variant::NodeId(Box::new(NodeId::new(2, evil))),
            Variant::QualifiedName(Box::new(opcua::types::QualifiedName::new(2, evil))),
            Variant::LocalizedText(Box::new(opcua::types::LocalizedText::new(evil, "t"))),
        ] {
            let t = variant_text(&v);
            assert!(!t.contains('\n') && !t.contains('\t'), "{t}");
        }
    }
}
