//! The `ftp` adapter's part of a `[[device]]` table.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::client::{Endpoint, Password, TlsTrust};
use super::{FtpCollector, FtpOptions, Link};
use crate::device::Device;
use crate::settings::KindRule;
use crate::settings::{self, Context, DeviceTable, SettingsError, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FtpSettings {
    address: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    tls_fingerprint: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    host_key_fingerprint: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    user: Option<String>,
    password_file: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    include: Option<Spanned<Vec<String>>>,
    exclude: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    kind: Vec<KindRule>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    max_requests_per_second: Option<Spanned<f64>>,
    max_files: Option<Spanned<usize>>,
    max_depth: Option<Spanned<usize>>,
}

/// `AA:BB:...` or 64 hex digits, as `openssl x509 -fingerprint -sha256` prints it.
fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    vault::hash::unhex(&hex).and_then(|v| v.try_into().ok())
}

/// Builds an FTP device from its settings.
///
/// Fails naming the key (and its place) that is missing, unknown or invalid.
pub fn build(table: DeviceTable<'_>, ctx: &Context) -> Result<Device, SettingsError> {
    let whole = table.clone();
    let s: FtpSettings = settings::parse(table)?;
    let Some(address) = &s.address else {
        return Err(SettingsError::table(
            &whole,
            "(adapter ftp) needs key `address`\nfix: add address = \"10.1.1.20:21\"",
        ));
    };
    let protocol = s
        .protocol
        .as_ref()
        .map_or("ftp", |p| p.get_ref().as_str())
        .to_string();
    let addr = settings::host_port(address.get_ref(), if protocol == "sftp" { 22 } else { 21 })
        .map_err(|e| SettingsError::at(address, format!("key `address`: {e}")))?;
    if protocol != "sftp"
        && let Some(k) = s.host_key_fingerprint.as_ref().or(s.key_file.as_ref())
    {
        return Err(SettingsError::at(
            k,
            format!(
                "an SSH setting with protocol {protocol}\nfix: set protocol = \"sftp\", or remove it"
            ),
        ));
    }
    let tls = match s.protocol.as_ref().map(|p| p.get_ref().as_str()) {
        None | Some("ftp") | Some("sftp") => {
            if let Some(k) = s.tls_fingerprint.as_ref().or(s.ca_file.as_ref()) {
                return Err(SettingsError::at(
                    k,
                    format!("a TLS setting with protocol {protocol}\nfix: set protocol = \"ftps\", or remove it"),
                ));
            }
            None
        }
        Some("ftps") => match (&s.tls_fingerprint, &s.ca_file) {
            // Empty: nothing pinned yet; the connection is refused and the server's
            // fingerprint printed, to be checked and pinned.
            (Some(fp), None) if fp.get_ref().is_empty() => Some(TlsTrust::Pinned([0; 32])),
            (Some(fp), None) => Some(TlsTrust::Pinned(parse_fingerprint(fp.get_ref()).ok_or_else(|| {
                SettingsError::at(fp, "key `tls-fingerprint`: not a SHA-256 fingerprint (64 hex digits, colons allowed)")
            })?)),
            (None, Some(ca)) => {
                let path = ctx.resolve(ca.get_ref());
                let text = vault::fsread::read_regular(&path, 1024 * 1024).map_err(|e| {
                    SettingsError::at(ca, format!("key `ca-file`: cannot read {}: {e}", path.display()))
                })?;
                use rustls::pki_types::pem::PemObject;
                let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&text)
                    .collect::<Result<_, _>>()
                    .map_err(|e| SettingsError::at(ca, format!("key `ca-file`: {e}")))?;
                if certs.is_empty() {
                    return Err(SettingsError::at(ca, "key `ca-file`: no certificate in it"));
                }
                Some(TlsTrust::Authorities(certs))
            }
            _ => {
                return Err(SettingsError::table(
                    &whole,
                    "(protocol ftps) needs exactly one of `tls-fingerprint` and `ca-file`\nfix: pin the server's certificate: set tls-fingerprint = \"\" once: plcvault refuses the server and prints its fingerprint, to check and pin",
                ));
            }
        },
        Some(other) => {
            let p = s.protocol.as_ref().expect("matched");
            return Err(SettingsError::at(
                p,
                format!("key `protocol`: `{other}` is not ftp, ftps or sftp"),
            ));
        }
    };
    let password = match (&s.password_file, &s.password_env) {
        (Some(f), None) => Password::File(ctx.resolve(f.get_ref())),
        (None, Some(v)) => Password::Env(v.get_ref().clone()),
        (None, None) => Password::Anonymous,
        (Some(f), Some(_)) => {
            return Err(SettingsError::at(
                f,
                "`password-file` and `password-env` both given\nfix: keep one",
            ));
        }
    };
    let timeout = match &s.timeout {
        None => Duration::from_secs(10),
        Some(t) => settings::duration(
            t,
            "timeout",
            Duration::from_millis(10),
            Duration::from_secs(600),
        )?,
    };
    let rate = s
        .max_requests_per_second
        .as_ref()
        .map_or(10.0, |r| *r.get_ref());
    if !(0.01..=10000.0).contains(&rate) {
        let r = s.max_requests_per_second.as_ref().expect("given");
        return Err(SettingsError::at(
            r,
            format!("key `max-requests-per-second`: {rate} is not between 0.01 and 10000"),
        ));
    }
    let retries = s.retries.as_ref().map_or(2, |r| *r.get_ref());
    if retries > 10 {
        return Err(SettingsError::at(
            s.retries.as_ref().expect("given"),
            "key `retries`: more than 10",
        ));
    }
    let root = s
        .root
        .as_ref()
        .map_or("/".to_string(), |r| r.get_ref().clone());
    if !root.starts_with('/') || root.split('/').any(|c| c == "..") {
        return Err(SettingsError::at(
            s.root.as_ref().expect("given"),
            "key `root`: must be an absolute remote folder without `..`",
        ));
    }
    if let Some(m) = s.max_files.as_ref().filter(|m| *m.get_ref() == 0) {
        return Err(SettingsError::at(m, "key `max-files`: must be at least 1"));
    }
    let mut kinds = Vec::new();
    for k in &s.kind {
        kinds.push((
            k.pattern.get_ref().clone(),
            settings::kind(&k.kind, "kind")?,
        ));
    }
    let link = if protocol == "sftp" {
        sftp_link(&s, &whole, ctx, addr, password, timeout)?
    } else {
        Link::Ftp(Endpoint {
            address: addr,
            tls,
            user: s.user.clone().unwrap_or_else(|| "anonymous".into()),
            password,
            timeout,
        })
    };
    let opts = FtpOptions {
        device: ctx.device.to_string(),
        link,
        root,
        include: s
            .include
            .as_ref()
            .map_or_else(|| vec!["**/*".into()], |v| v.get_ref().clone()),
        exclude: s
            .exclude
            .as_ref()
            .map_or_else(Vec::new, |v| v.get_ref().clone()),
        kinds: kinds.clone(),
        max_files: s.max_files.as_ref().map_or(100_000, |v| *v.get_ref()),
        max_depth: s.max_depth.as_ref().map_or(32, |v| *v.get_ref()),
        retries,
        max_requests_per_second: rate,
    };
    let collector = FtpCollector::new(opts).map_err(|e| SettingsError {
        span: Some(whole.span()),
        message: e.to_string(),
    })?;
    Ok(Device {
        collector: Arc::new(collector),
        writer: None,
        permit: None,
        kinds,
    })
}

/// An SFTP device's connection: the host key pinned (`SHA256:` and base64, as
/// `ssh-keygen -lf` prints it; empty: refuse and print it), a user, and a password or a
/// key file.
#[cfg(feature = "sftp")]
fn sftp_link(
    s: &FtpSettings,
    whole: &DeviceTable<'_>,
    ctx: &Context,
    address: String,
    password: Password,
    timeout: Duration,
) -> Result<Link, SettingsError> {
    use super::sftp::{SshAuth, SshEndpoint};
    let Some(pin) = &s.host_key_fingerprint else {
        return Err(SettingsError::table(
            whole,
            "(protocol sftp) needs key `host-key-fingerprint`\nfix: pin the device's host key: set host-key-fingerprint = \"\" once: plcvault refuses the server and prints its fingerprint, to check (ssh-keygen -lf on the device) and pin",
        ));
    };
    let host_key = pin.get_ref().trim().to_string();
    if !host_key.is_empty() && !is_ssh_fingerprint(&host_key) {
        return Err(SettingsError::at(
            pin,
            "key `host-key-fingerprint`: not a SHA-256 host key fingerprint (`SHA256:` and 43 base64 characters, as ssh-keygen -lf prints it)",
        ));
    }
    let Some(user) = s.user.clone() else {
        return Err(SettingsError::table(
            whole,
            "(protocol sftp) needs key `user`\nfix: add user = \"backup\" (the account plcvault logs in as)",
        ));
    };
    let auth = match (&s.key_file, password) {
        (Some(k), Password::Anonymous) => SshAuth::Key(ctx.resolve(k.get_ref())),
        (None, Password::Anonymous) => {
            return Err(SettingsError::table(
                whole,
                "(protocol sftp) needs `key-file`, `password-file` or `password-env`\nfix: add key-file = \"plcvault_ed25519\" (an OpenSSH private key without a passphrase)",
            ));
        }
        (Some(k), _) => {
            return Err(SettingsError::at(
                k,
                "`key-file` and a password both given\nfix: keep one",
            ));
        }
        (None, p) => SshAuth::Password(p),
    };
    Ok(Link::Sftp(SshEndpoint {
        address,
        user,
        auth,
        host_key,
        timeout,
    }))
}

#[cfg(not(feature = "sftp"))]
fn sftp_link(
    s: &FtpSettings,
    _whole: &DeviceTable<'_>,
    _ctx: &Context,
    _address: String,
    _password: Password,
    _timeout: Duration,
) -> Result<Link, SettingsError> {
    Err(SettingsError::at(
        s.protocol.as_ref().expect("sftp given"),
        "key `protocol`: this build of plcvault has no SFTP (cargo feature `sftp`)",
    ))
}

/// `SHA256:` and the unpadded base64 of 32 bytes.
fn is_ssh_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}
