//! The `s7` adapter's part of a `[[device]]` table.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::proto::BlockType;
use super::{DbSpec, S7Collector, S7Options, S7Writer};
use crate::device::{Device, WritePermit};
use crate::settings::{self, Context, DeviceTable, SettingsError, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct S7Settings {
    address: Option<Spanned<String>>,
    rack: Option<Spanned<u8>>,
    slot: Option<Spanned<u8>>,
    /// `pg` (programming device, default), `op` or `basic`: the high byte of the CPU's TSAP.
    connection: Option<Spanned<String>>,
    local_tsap: Option<Spanned<String>>,
    remote_tsap: Option<Spanned<String>>,
    pdu_size: Option<Spanned<u16>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    max_requests_per_second: Option<Spanned<f64>>,
    blocks: Option<Spanned<Vec<String>>>,
    upload: Option<bool>,
    writable: Option<Spanned<bool>>,
    #[serde(default)]
    db: Vec<DbSettings>,
    #[serde(default)]
    kind: Vec<crate::settings::KindRule>,
}

/// `[[device.db]]`: a data block read as data.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DbSettings {
    number: Spanned<u16>,
    #[serde(default)]
    start: u32,
    size: Spanned<u32>,
    kind: Option<Spanned<String>>,
}

/// A TSAP written `"01.02"` or `"0102"` (hex, as STEP 7 shows them).
fn tsap(t: &Spanned<String>, key: &str) -> Result<u16, SettingsError> {
    let raw = t.get_ref();
    let text: String = match raw.split_once('.') {
        Some((a, b)) if a.len() == 2 && b.len() == 2 => format!("{a}{b}"),
        Some(_) => String::new(),
        None => raw.clone(),
    };
    if text.len() != 4 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(SettingsError::at(
            t,
            format!(
                "key `{key}`: `{}` is not a TSAP\nfix: write two hex bytes, e.g. \"01.02\"",
                t.get_ref()
            ),
        ));
    }
    u16::from_str_radix(&text, 16).map_err(|_| {
        SettingsError::at(
            t,
            format!(
                "key `{key}`: `{}` is not hex\nfix: write two hex bytes, e.g. \"01.02\"",
                t.get_ref()
            ),
        )
    })
}

/// Builds an S7 device from its settings; `writable = true` grants the write permit
/// (write var into DBs, for restores and drills onto a spare).
///
/// Fails naming the key (and its place) that is missing, unknown or invalid.
pub fn build(table: DeviceTable<'_>, ctx: &Context) -> Result<Device, SettingsError> {
    let whole = table.clone();
    let s: S7Settings = settings::parse(table)?;
    let Some(address) = &s.address else {
        return Err(SettingsError::table(
            &whole,
            "(adapter s7) needs key `address`\nfix: add address = \"10.1.1.20\" (port 102 unless given)",
        ));
    };
    let addr = settings::host_port(address.get_ref(), 102)
        .map_err(|e| SettingsError::at(address, format!("key `address`: {e}")))?;
    let rack = s.rack.as_ref().map_or(0, |r| *r.get_ref());
    let slot = s.slot.as_ref().map_or(2, |r| *r.get_ref());
    if rack > 7 || slot > 31 {
        let at = if rack > 7 {
            s.rack.as_ref()
        } else {
            s.slot.as_ref()
        };
        return Err(SettingsError::at(
            at.expect("set when out of range"),
            "key `rack` or `slot`: a rack is 0 to 7 and a slot 0 to 31\nfix: S7-300/400: rack 0, slot 2; S7-1200/1500: rack 0, slot 1",
        ));
    }
    let kind_byte = match s.connection.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("pg") => 1u16,
        Some("op") => 2,
        Some("basic") => 3,
        Some(other) => {
            return Err(SettingsError::at(
                s.connection.as_ref().expect("matched"),
                format!(
                    "key `connection`: `{other}` is not a connection type\nfix: use pg, op or basic"
                ),
            ));
        }
    };
    let remote_tsap = match &s.remote_tsap {
        Some(t) if s.rack.is_some() || s.slot.is_some() || s.connection.is_some() => {
            return Err(SettingsError::at(
                t,
                "key `remote-tsap` names the CPU's TSAP, and `rack`, `slot` or `connection` too\nfix: give either remote-tsap or rack and slot (with connection)",
            ));
        }
        Some(t) => tsap(t, "remote-tsap")?,
        None => (kind_byte << 8) | (u16::from(rack) * 32) | u16::from(slot),
    };
    let local_tsap = match &s.local_tsap {
        Some(t) => tsap(t, "local-tsap")?,
        None => 0x0100,
    };
    let timeout = match &s.timeout {
        None => Duration::from_secs(2),
        Some(t) => settings::duration(t, "timeout", super::MIN_TIMEOUT, super::MAX_TIMEOUT)?,
    };
    let blocks = match &s.blocks {
        None => BlockType::ALL.to_vec(),
        Some(list) => {
            let mut v = Vec::new();
            for b in list.get_ref() {
                let t = BlockType::parse(b).ok_or_else(|| {
                    SettingsError::at(
                        list,
                        format!("key `blocks`: `{b}` is not a block type\nfix: use OB, FB, FC, DB and SDB"),
                    )
                })?;
                if !v.contains(&t) {
                    v.push(t);
                }
            }
            v
        }
    };
    let mut dbs = Vec::new();
    for d in &s.db {
        let kind = match &d.kind {
            Some(k) => settings::kind(k, "[[device.db]] kind")?,
            None => crate::ArtifactKind::Values,
        };
        dbs.push(DbSpec {
            number: *d.number.get_ref(),
            start: d.start,
            size: *d.size.get_ref(),
            kind,
        });
    }
    let mut kinds = Vec::new();
    for k in &s.kind {
        let pattern = k.pattern.get_ref();
        if glob::Pattern::new(pattern).is_err() {
            return Err(SettingsError::at(
                &k.pattern,
                format!("[[device.kind]] key `match`: `{pattern}` is not a glob"),
            ));
        }
        kinds.push((pattern.clone(), settings::kind(&k.kind, "kind")?));
    }
    let opts = S7Options {
        device: ctx.device.to_string(),
        address: addr,
        local_tsap,
        remote_tsap,
        pdu_size: s.pdu_size.as_ref().map_or(960, |p| *p.get_ref()),
        timeout,
        retries: s.retries.as_ref().map_or(2, |r| *r.get_ref()),
        max_requests_per_second: s
            .max_requests_per_second
            .as_ref()
            .map_or(20.0, |r| *r.get_ref()),
        blocks,
        upload: s.upload.unwrap_or(true),
        dbs,
        kinds: kinds.clone(),
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
                ("pdu-size", s.pdu_size.as_ref().map(|v| v.span())),
            ],
            s.db.first().map(|d| d.size.span()),
            &whole,
        )
    })?;
    // The kinds the adapter gives (bound to approvals with the comparison rules): the
    // config's globs, then the configured DBs by name.
    let mut all_kinds = kinds;
    all_kinds.extend(opts.dbs.iter().map(|d| (d.artifact_name(), d.kind)));
    let permit = s
        .writable
        .as_ref()
        .is_some_and(|w| *w.get_ref())
        .then(|| WritePermit::granted_by_config(ctx.device));
    let collector = S7Collector::new(opts.clone()).map_err(|e| SettingsError {
        span: Some(whole.span()),
        message: e.to_string(),
    })?;
    Ok(Device {
        collector: Arc::new(collector),
        writer: Some(Arc::new(S7Writer::new(opts))),
        permit,
        kinds: all_kinds,
    })
}
