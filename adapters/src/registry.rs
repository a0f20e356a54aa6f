//! The one table that maps an adapter's name, as the config writes it, to the code that
//! reads its settings and builds its collector and writer. Adding an adapter adds a folder
//! and one line here.

use crate::device::Device;
use crate::settings::{Context, DeviceTable, SettingsError};

/// Builds a device from its adapter's part of the config.
type Build = fn(DeviceTable<'_>, &Context) -> Result<Device, SettingsError>;

/// Every adapter of this build: its name in the config, and what builds it.
pub const ADAPTERS: &[(&str, Build)] = &[
    #[cfg(feature = "files")]
    ("files", crate::files::settings::build),
    #[cfg(feature = "modbus")]
    ("modbus", crate::modbus::settings::build),
    #[cfg(feature = "ftp")]
    ("ftp", crate::ftp::settings::build),
];

/// The adapters of this build, by name.
pub fn names() -> Vec<&'static str> {
    ADAPTERS.iter().map(|(n, _)| *n).collect()
}

/// Builds the device `ctx.device` with adapter `adapter` from `table`.
///
/// Fails when the adapter is unknown to this build or its settings are wrong.
pub fn build(
    adapter: &str,
    table: DeviceTable<'_>,
    ctx: &Context,
) -> Result<Device, SettingsError> {
    match ADAPTERS.iter().find(|(n, _)| *n == adapter) {
        Some((_, build)) => build(table, ctx),
        None => Err(SettingsError {
            span: None,
            message: format!(
                "key `adapter`: `{adapter}` is not an adapter of this build\nfix: use one of: {}",
                names().join(", ")
            ),
        }),
    }
}
