//! The `modbus` adapter's part of a `[[device]]` table.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{ModbusCollector, ModbusOptions, ModbusWriter, RangeSpec, Table};
use crate::ArtifactKind;
use crate::device::{Device, WritePermit};
use crate::settings::{self, Context, DeviceTable, SettingsError, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ModbusSettings {
    address: Option<Spanned<String>>,
    unit: Option<Spanned<u8>>,
    identify: Option<bool>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    max_requests_per_second: Option<Spanned<f64>>,
    writable: Option<Spanned<bool>>,
    #[serde(default)]
    range: Vec<RangeSettings>,
}

/// `[[device.range]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RangeSettings {
    table: Spanned<String>,
    start: Spanned<u32>,
    count: Spanned<u32>,
    kind: Option<Spanned<String>>,
    #[serde(default)]
    label: String,
}

/// Builds a Modbus device from its settings; `writable = true` grants the write permit.
///
/// Fails naming the key (and its place) that is missing, unknown or invalid.
pub fn build(table: DeviceTable<'_>, ctx: &Context) -> Result<Device, SettingsError> {
    let whole = table.clone();
    let s: ModbusSettings = settings::parse(table)?;
    let Some(address) = &s.address else {
        return Err(SettingsError::table(
            &whole,
            "(adapter modbus) needs key `address`\nfix: add address = \"10.1.1.10:502\"",
        ));
    };
    let a = address.get_ref();
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.is_empty() => {
            if !port.parse::<u16>().is_ok_and(|p| p > 0) {
                return Err(SettingsError::at(
                    address,
                    format!(
                        "key `address`: port `{port}` in `{a}` is not a TCP port\nfix: use a port from 1 to 65535 (Modbus TCP is 502)"
                    ),
                ));
            }
        }
        _ => {
            return Err(SettingsError::at(
                address,
                format!("key `address`: `{a}` has no port\nfix: write host:port, e.g. \"{a}:502\""),
            ));
        }
    }
    let timeout = match &s.timeout {
        None => Duration::from_secs(2),
        Some(t) => settings::duration(t, "timeout", super::MIN_TIMEOUT, super::MAX_TIMEOUT)?,
    };
    let mut ranges = Vec::new();
    for r in &s.range {
        let table = Table::parse(r.table.get_ref()).ok_or_else(|| {
            SettingsError::at(
                &r.table,
                format!(
                    "[[device.range]] key `table`: `{}` is not a table\nfix: use holding, input, coils or discrete",
                    r.table.get_ref()
                ),
            )
        })?;
        let kind = match &r.kind {
            Some(k) => settings::kind(k, "[[device.range]] kind")?,
            None => ArtifactKind::Values,
        };
        let (start, count) = (*r.start.get_ref(), *r.count.get_ref());
        if start > 65535 {
            return Err(SettingsError::at(
                &r.start,
                format!("[[device.range]] key `start`: {start} is past address 65535"),
            ));
        }
        if count == 0 || count > 65535 || u64::from(start) + u64::from(count) - 1 > 65535 {
            let why = if count == 0 {
                "count is 0".to_string()
            } else if count > 65535 {
                format!("count {count} is more than one range can hold")
            } else {
                format!("{start} + {count} runs past address 65535")
            };
            return Err(SettingsError::at(
                &r.count,
                format!(
                    "[[device.range]] key `count`: {why}\nfix: a range holds 1 to 65,535 addresses and ends at 65535 at the latest; split larger ones"
                ),
            ));
        }
        ranges.push(RangeSpec {
            table,
            start: start as u16,
            count: count as u16,
            kind,
            label: r.label.clone(),
        });
    }
    let opts = ModbusOptions {
        device: ctx.device.to_string(),
        address: a.clone(),
        unit: s.unit.as_ref().map(|u| *u.get_ref()).unwrap_or(1),
        identify: s.identify.unwrap_or(true),
        timeout,
        retries: s.retries.as_ref().map(|r| *r.get_ref()).unwrap_or(2),
        max_requests_per_second: s
            .max_requests_per_second
            .as_ref()
            .map(|r| *r.get_ref())
            .unwrap_or(20.0),
        ranges,
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
            ],
            s.range.first().map(|r| r.table.span()),
            &whole,
        )
    })?;
    let kinds = opts
        .ranges
        .iter()
        .map(|r| (r.artifact_name(), r.kind))
        .collect();
    let permit = s
        .writable
        .as_ref()
        .is_some_and(|w| *w.get_ref())
        .then(|| WritePermit::granted_by_config(ctx.device));
    let collector = ModbusCollector::new(opts.clone()).map_err(|e| SettingsError {
        span: Some(whole.span()),
        message: e.to_string(),
    })?;
    Ok(Device {
        collector: Arc::new(collector),
        writer: Some(Arc::new(ModbusWriter::new(opts))),
        permit,
        kinds,
    })
}
