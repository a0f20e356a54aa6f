//! The `enip` adapter's part of a `[[device]]` table.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{EnipCollector, EnipOptions, EnipWriter, NamedTag};
use crate::device::{Device, WritePermit};
use crate::settings::{self, Context, DeviceTable, SettingsError, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EnipSettings {
    address: Option<Spanned<String>>,
    /// The controller's slot in the chassis behind the Ethernet module (route 1,SLOT).
    slot: Option<Spanned<u8>>,
    /// Port and link pairs, `"1,0"` or `"1,2,2,10"`; `""` for a controller reached
    /// directly (no Connection Manager hop).
    route: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    max_requests_per_second: Option<Spanned<f64>>,
    /// Only these tags (the device's `tags` are its labels, common to every adapter).
    read_tags: Option<Spanned<Vec<String>>>,
    programs: Option<bool>,
    max_tags: Option<Spanned<usize>>,
    writable: Option<Spanned<bool>>,
    /// `connected` (default: one class 3 connection, many tags to a packet) or
    /// `unconnected` (every message on its own, one tag per request).
    messaging: Option<Spanned<String>>,
    #[serde(default)]
    kind: Vec<crate::settings::KindRule>,
}

/// A route path written as port,link pairs.
fn route(r: &Spanned<String>) -> Result<Vec<(u8, u8)>, SettingsError> {
    let text = r.get_ref().trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let nums: Option<Vec<u8>> = text.split(',').map(|n| n.trim().parse().ok()).collect();
    match nums {
        Some(n) if n.len() % 2 == 0 && n.chunks(2).all(|p| (1..=14).contains(&p[0])) => {
            Ok(n.chunks(2).map(|p| (p[0], p[1])).collect())
        }
        _ => Err(SettingsError::at(
            r,
            format!(
                "key `route`: `{text}` is not a route path\nfix: write port,link pairs, e.g. \"1,0\" (backplane, slot 0), or \"\" for a controller reached directly"
            ),
        )),
    }
}

/// Builds an EtherNet/IP device from its settings; `writable = true` grants the write
/// permit (Write Tag, for restores and drills onto a spare or simulator).
///
/// Fails naming the key (and its place) that is missing, unknown or invalid.
pub fn build(table: DeviceTable<'_>, ctx: &Context) -> Result<Device, SettingsError> {
    let whole = table.clone();
    let s: EnipSettings = settings::parse(table)?;
    let Some(address) = &s.address else {
        return Err(SettingsError::table(
            &whole,
            "(adapter enip) needs key `address`\nfix: add address = \"10.1.1.30\" (port 44818 unless given)",
        ));
    };
    let addr = settings::host_port(address.get_ref(), 44818)
        .map_err(|e| SettingsError::at(address, format!("key `address`: {e}")))?;
    let route = match (&s.route, &s.slot) {
        (Some(r), Some(_)) => {
            return Err(SettingsError::at(
                r,
                "keys `route` and `slot` both name the path to the controller\nfix: give one: slot = 0, or route = \"1,0\"",
            ));
        }
        (Some(r), None) => route(r)?,
        (None, Some(slot)) => vec![(1, *slot.get_ref())],
        (None, None) => vec![(1, 0)],
    };
    let timeout = match &s.timeout {
        None => Duration::from_secs(2),
        Some(t) => settings::duration(t, "timeout", super::MIN_TIMEOUT, super::MAX_TIMEOUT)?,
    };
    let mut tags = Vec::new();
    if let Some(list) = &s.read_tags {
        for t in list.get_ref() {
            let Some(n) = NamedTag::parse(t) else {
                return Err(SettingsError::at(
                    list,
                    format!(
                        "key `read-tags`: `{t}` is not a tag\nfix: write Name, Name[ELEMENTS] or Program:PROGRAM.Name"
                    ),
                ));
            };
            if tags.iter().any(|x: &NamedTag| x.name == n.name) {
                return Err(SettingsError::at(
                    list,
                    format!("key `read-tags`: `{}` is listed twice", n.name),
                ));
            }
            tags.push(n);
        }
        if tags.is_empty() {
            return Err(SettingsError::at(
                list,
                "key `read-tags` is empty: nothing would be read\nfix: leave it out to read the controller's whole tag directory",
            ));
        }
    }
    let mut kinds = Vec::new();
    for k in &s.kind {
        let pattern = k.pattern.get_ref();
        if glob::Pattern::new(pattern).is_err() {
            return Err(SettingsError::at(
                &k.pattern,
                format!("[[device.kind]] key `match`: `{pattern}` is not a tag glob"),
            ));
        }
        kinds.push((pattern.clone(), settings::kind(&k.kind, "kind")?));
    }
    let connected = match s.messaging.as_ref().map(|m| m.get_ref().as_str()) {
        None | Some("connected") => true,
        Some("unconnected") => false,
        Some(other) => {
            return Err(SettingsError::at(
                s.messaging.as_ref().expect("some"),
                format!(
                    "key `messaging`: `{other}` is not a way to message\nfix: write messaging = \"connected\" (one class 3 connection, the default) or \"unconnected\""
                ),
            ));
        }
    };
    let opts = EnipOptions {
        device: ctx.device.to_string(),
        address: addr,
        route,
        timeout,
        retries: s.retries.as_ref().map_or(2, |r| *r.get_ref()),
        max_requests_per_second: s
            .max_requests_per_second
            .as_ref()
            .map_or(20.0, |r| *r.get_ref()),
        tags,
        programs: s.programs.unwrap_or(true),
        max_tags: s
            .max_tags
            .as_ref()
            .map_or(super::DEFAULT_MAX_TAGS, |m| *m.get_ref()),
        kinds,
        connected,
    };
    opts.validate().map_err(|e| {
        settings::invalid(
            e,
            &[
                (
                    "max-requests-per-second",
                    s.max_requests_per_second.as_ref().map(|v| v.span()),
                ),
                ("retries", s.retries.as_ref().map(|v| v.span())),
                ("timeout", s.timeout.as_ref().map(|v| v.span())),
                ("max-tags", s.max_tags.as_ref().map(|v| v.span())),
                ("route", s.route.as_ref().map(|v| v.span())),
            ],
            None,
            &whole,
        )
    })?;
    let permit = s
        .writable
        .as_ref()
        .is_some_and(|w| *w.get_ref())
        .then(|| WritePermit::granted_by_config(ctx.device));
    let collector = EnipCollector::new(opts.clone()).map_err(|e| SettingsError {
        span: Some(whole.span()),
        message: e.to_string(),
    })?;
    Ok(Device {
        collector: Arc::new(collector),
        writer: Some(Arc::new(EnipWriter::new(opts))),
        permit,
        // Kinds are per tag, recorded in each tag's line (a change of one is a finding).
        kinds: vec![("tags/*".into(), crate::ArtifactKind::Values)],
    })
}
