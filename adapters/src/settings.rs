//! An adapter's settings: its part of a `[[device]]` table, deserialised by the adapter
//! itself (unknown keys refused), with spans kept so that every error still names the
//! config file's line and the key.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

pub use toml::Spanned;

/// The device table an adapter receives: the `[[device]]` table without the keys every
/// device has (`name`, `adapter`, `tags`, the comparison rules), spans intact.
pub type DeviceTable<'i> = toml::Spanned<toml::de::DeValue<'i>>;

/// What an adapter needs to know beyond its table.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The device's name.
    pub device: &'a str,
    /// The config file's folder: relative paths are resolved against it.
    pub base: &'a Path,
}

impl Context<'_> {
    /// `path` resolved against the config's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

/// A setting that is wrong, where it is (a byte range of the config file), and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub span: Option<Range<usize>>,
    /// One or more lines: what is wrong, then `fix: ...`.
    pub message: String,
}

impl SettingsError {
    /// An error at the value `at`.
    pub fn at<T>(at: &Spanned<T>, message: impl Into<String>) -> SettingsError {
        SettingsError {
            span: Some(at.span()),
            message: message.into(),
        }
    }

    /// An error about the device table as a whole (a missing key).
    pub fn table(table: &DeviceTable<'_>, message: impl Into<String>) -> SettingsError {
        SettingsError {
            span: Some(table.span()),
            message: message.into(),
        }
    }
}

/// Deserialises an adapter's settings type from its device table.
///
/// Fails with the span and message of the first key that is unknown, missing or of the
/// wrong type.
pub fn parse<T: DeserializeOwned>(table: DeviceTable<'_>) -> Result<T, SettingsError> {
    T::deserialize(toml::de::ValueDeserializer::from(table)).map_err(|e| SettingsError {
        span: e.span(),
        message: e.message().trim_end().to_string(),
    })
}

/// A duration setting within `min..=max`.
///
/// Fails naming the key, the value and the allowed range.
pub fn duration(
    d: &Spanned<String>,
    key: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, SettingsError> {
    let text = d.get_ref();
    let v = humantime::parse_duration(text).map_err(|e| {
        SettingsError::at(
            d,
            format!("key `{key}`: `{text}` is not a duration ({e})\nfix: write it like \"2s\" or \"500ms\""),
        )
    })?;
    if v < min || v > max {
        return Err(SettingsError::at(
            d,
            format!(
                "key `{key}`: `{text}` is outside {} to {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(v)
}

/// A kind name (`logic`, `recipe`, ...).
///
/// Fails listing the kinds.
pub fn kind(k: &Spanned<String>, key: &str) -> Result<crate::ArtifactKind, SettingsError> {
    k.get_ref()
        .parse()
        .map_err(|e| SettingsError::at(k, format!("key `{key}`: {e}")))
}
