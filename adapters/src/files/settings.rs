//! The `files` adapter's part of a `[[device]]` table.

use std::sync::Arc;

use serde::Deserialize;

use super::{FilesCollector, FilesOptions};
use crate::device::Device;
use crate::settings::{self, Context, DeviceTable, KindRule, SettingsError, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FilesSettings {
    path: Option<Spanned<String>>,
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    kind: Vec<KindRule>,
    #[serde(default)]
    optional: bool,
}

/// Builds a files device from its settings.
///
/// Fails naming the key (and its place) that is missing, unknown or invalid.
pub fn build(table: DeviceTable<'_>, ctx: &Context) -> Result<Device, SettingsError> {
    let whole = table.clone();
    let s: FilesSettings = settings::parse(table)?;
    let Some(path) = &s.path else {
        return Err(SettingsError::table(
            &whole,
            "(adapter files) needs key `path`\nfix: add path = \"/folder/with/exports\"",
        ));
    };
    let mut kinds = Vec::new();
    for k in &s.kind {
        kinds.push((
            k.pattern.get_ref().clone(),
            settings::kind(&k.kind, "kind")?,
        ));
    }
    let opts = FilesOptions {
        optional: s.optional,
        device: ctx.device.to_string(),
        root: ctx.resolve(path.get_ref()),
        include: s
            .include
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_else(|| vec!["**/*".into()]),
        exclude: s
            .exclude
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        kinds: kinds.clone(),
    };
    // Globs compile now, so that a bad one is a config error at its line.
    let collector = FilesCollector::new(opts).map_err(|e| {
        let msg = e.to_string();
        let at = if msg.contains("`include`") {
            s.include.as_ref().map(|v| v.span())
        } else if msg.contains("`exclude`") {
            s.exclude.as_ref().map(|v| v.span())
        } else {
            s.kind.first().map(|k| k.pattern.span())
        };
        SettingsError {
            span: at.or(Some(whole.span())),
            message: msg,
        }
    })?;
    Ok(Device {
        collector: Arc::new(collector),
        writer: None,
        permit: None,
        kinds,
    })
}
