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

/// `[[device.kind]]`: artifact kind by glob, first match wins.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KindRule {
    #[serde(rename = "match")]
    pub pattern: Spanned<String>,
    pub kind: Spanned<String>,
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

/// An adapter's validation error as a settings error at the key it names: `spans` maps
/// keys to where they are, `other` is the place for any other key, and the device table
/// the place of last resort.
pub fn invalid(
    e: crate::AdapterError,
    spans: &[(&str, Option<Range<usize>>)],
    other: Option<Range<usize>>,
    table: &DeviceTable<'_>,
) -> SettingsError {
    let span = match &e {
        crate::AdapterError::Config { key, .. } => spans
            .iter()
            .find(|(k, _)| k == key)
            .map_or(other, |(_, s)| s.clone()),
        _ => None,
    };
    SettingsError {
        span: span.or(Some(table.span())),
        message: e.to_string(),
    }
}

/// A kind name (`logic`, `recipe`, ...).
///
/// Fails listing the kinds.
pub fn kind(k: &Spanned<String>, key: &str) -> Result<crate::ArtifactKind, SettingsError> {
    k.get_ref()
        .parse()
        .map_err(|e| SettingsError::at(k, format!("key `{key}`: {e}")))
}

/// A network address as `host:port` for connecting: `host`, `host:port`, an IPv6 address
/// bare or in brackets (`::1`, `[::1]`, `[::1]:22`); `default_port` when none is given.
///
/// Fails, saying what to write, on a scheme, spaces, an empty host or a bad port.
pub fn host_port(addr: &str, default_port: u16) -> Result<String, String> {
    const HOW: &str = "write host, host:port or [IPv6]:port, e.g. \"10.1.1.20\"";
    if addr.is_empty() || addr.contains(char::is_whitespace) || addr.contains("://") {
        return Err(format!("`{addr}` is not an address\nfix: {HOW}"));
    }
    let port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "port `{p}` is not a TCP port (1 to 65535)\nfix: {HOW}"
        )),
    };
    if let Some(rest) = addr.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!(
                "`{addr}`: an IPv6 address in brackets needs its `]`\nfix: {HOW}"
            ));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address\nfix: {HOW}"));
        }
        return match after {
            "" => Ok(format!("[{host}]:{default_port}")),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok(format!("[{host}]:{}", port(p)?)),
                None => Err(format!("`{addr}` is not an address\nfix: {HOW}")),
            },
        };
    }
    if addr.matches(':').count() > 1 {
        return match addr.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(format!("[{addr}]:{default_port}")),
            Err(_) => Err(format!(
                "`{addr}` is not an address (an IPv6 address with a port goes in brackets: [::1]:22)\nfix: {HOW}"
            )),
        };
    }
    match addr.rsplit_once(':') {
        Some(("", _)) => Err(format!("`{addr}` has no host\nfix: {HOW}")),
        Some((host, p)) => Ok(format!("{host}:{}", port(p)?)),
        None => Ok(format!("{addr}:{default_port}")),
    }
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn addresses_get_their_port_and_ipv6_its_brackets() {
        assert_eq!(host_port("10.1.1.20", 21).unwrap(), "10.1.1.20:21");
        assert_eq!(host_port("panel:2121", 21).unwrap(), "panel:2121");
        assert_eq!(host_port("::1", 22).unwrap(), "[::1]:22");
        assert_eq!(host_port("[::1]", 22).unwrap(), "[::1]:22");
        assert_eq!(host_port("[fe80::1]:2222", 22).unwrap(), "[fe80::1]:2222");
        for bad in [
            "",
            " 10.1.1.20",
            "sftp://10.1.1.20",
            ":22",
            "h:0",
            "h:99999",
            "[::1",
            "[zz]:1",
            "1::2::3",
            "[::1]x",
        ] {
            assert!(host_port(bad, 22).is_err(), "{bad}");
        }
    }
}
