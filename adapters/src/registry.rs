//! The one table that maps an adapter's name, as the config writes it, to the code that
//! reads its settings and builds its collector and writer. Adding an adapter adds a folder
//! and one line here.

use crate::device::Device;
use crate::settings::{Context, DeviceTable, SettingsError};

/// Builds a device from its adapter's part of the config.
type Build = fn(DeviceTable<'_>, &Context) -> Result<Device, SettingsError>;

/// One adapter: its name in the config, what builds it, and whether its artifacts are
/// files by name (then a file's extension gives its class when no approved rule does, so
/// that a config edit can raise a class but never lower it).
pub struct Adapter {
    pub name: &'static str,
    pub build: Build,
    pub files_by_name: bool,
}

/// Every adapter of this build.
pub const ADAPTERS: &[Adapter] = &[
    #[cfg(feature = "files")]
    Adapter {
        name: "files",
        build: crate::files::settings::build,
        files_by_name: true,
    },
    #[cfg(feature = "modbus")]
    Adapter {
        name: "modbus",
        build: crate::modbus::settings::build,
        files_by_name: false,
    },
    #[cfg(feature = "ftp")]
    Adapter {
        name: "ftp",
        build: crate::ftp::settings::build,
        files_by_name: true,
    },
    #[cfg(feature = "s7")]
    Adapter {
        name: "s7",
        build: crate::s7::settings::build,
        files_by_name: false,
    },
    #[cfg(feature = "enip")]
    Adapter {
        name: "enip",
        build: crate::enip::settings::build,
        files_by_name: false,
    },
    #[cfg(feature = "opcua")]
    Adapter {
        name: "opcua",
        build: crate::opcua::settings::build,
        files_by_name: false,
    },
];

/// The adapters of this build, by name.
pub fn names() -> Vec<&'static str> {
    ADAPTERS.iter().map(|a| a.name).collect()
}

/// Whether the artifacts an adapter (by the name a manifest records) collects are files
/// by name. Unknown adapters: yes (the stricter choice: the extension may raise a class).
pub fn files_by_name(adapter: &str) -> bool {
    ADAPTERS
        .iter()
        .find(|a| a.name == adapter)
        .is_none_or(|a| a.files_by_name)
}

/// Builds the device `ctx.device` with adapter `adapter` from `table`.
///
/// Fails when the adapter is unknown to this build or its settings are wrong.
pub fn build(
    adapter: &str,
    table: DeviceTable<'_>,
    ctx: &Context,
) -> Result<Device, SettingsError> {
    match ADAPTERS.iter().find(|a| a.name == adapter) {
        Some(a) => (a.build)(table, ctx),
        None => Err(SettingsError {
            span: None,
            message: format!(
                "key `adapter`: `{adapter}` is not an adapter of this build\nfix: use one of: {}",
                names().join(", ")
            ),
        }),
    }
}
