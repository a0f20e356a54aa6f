//! The `opcua` adapter's part of a `[[device]]` table.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Login, OpcuaCollector, OpcuaOptions, OpcuaWriter, Secret, Security};
use crate::device::{Device, WritePermit};
use crate::settings::{self, Context, DeviceTable, SettingsError, Spanned};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct OpcuaSettings {
    /// `opc.tcp://host:port/path`.
    address: Option<Spanned<String>>,
    /// `None`, `Basic256Sha256` or `Aes128-Sha256-RsaOaep`: asked for explicitly.
    security_policy: Option<Spanned<String>>,
    /// `Sign` or `SignAndEncrypt` (`None` with the policy None).
    security_mode: Option<Spanned<String>>,
    /// The server certificate's SHA-256, 64 hex digits (colons allowed).
    server_thumbprint: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    /// An X.509 user certificate (DER or PEM) to log in with, instead of `user`.
    user_certificate: Option<Spanned<String>>,
    /// Its private key (PEM, mode 0600).
    user_key: Option<Spanned<String>>,
    /// The folder of plcvault's own certificate and key (default `keys/opcua`).
    pki_dir: Option<Spanned<String>>,
    nodes: Option<Spanned<Vec<String>>>,
    max_depth: Option<Spanned<usize>>,
    max_nodes: Option<Spanned<usize>>,
    /// The most text one collection holds, in MiB (default 256).
    max_mib: Option<Spanned<usize>>,
    timeout: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    deadline: Option<Spanned<String>>,
    max_requests_per_second: Option<Spanned<f64>>,
    /// Grants the write permit (Write of node values, for restores and drills onto a
    /// spare or simulator).
    writable: Option<Spanned<bool>>,
    #[serde(default)]
    kind: Vec<crate::settings::KindRule>,
}

/// Builds an OPC UA device from its settings.
///
/// Fails naming the key (and its place) that is missing, unknown or invalid.
pub fn build(table: DeviceTable<'_>, ctx: &Context) -> Result<Device, SettingsError> {
    let whole = table.clone();
    let s: OpcuaSettings = settings::parse(table)?;
    let Some(address) = &s.address else {
        return Err(SettingsError::table(
            &whole,
            "(adapter opcua) needs key `address`\nfix: add address = \"opc.tcp://10.1.1.40:4840\"",
        ));
    };
    let url = address.get_ref().trim().to_string();
    if !url.starts_with("opc.tcp://") || url.len() <= "opc.tcp://".len() {
        return Err(SettingsError::at(
            address,
            format!(
                "key `address`: `{url}` is not an opc.tcp:// URL\nfix: write address = \"opc.tcp://HOST:4840/PATH\""
            ),
        ));
    }
    let Some(policy) = &s.security_policy else {
        return Err(SettingsError::table(
            &whole,
            "(adapter opcua) needs key `security-policy`: plcvault never picks one for you\nfix: add security-policy = \"Basic256Sha256\" with security-mode = \"SignAndEncrypt\" and server-thumbprint, or security-policy = \"None\" to connect without security (named in every report)",
        ));
    };
    let mode = s.security_mode.as_ref().map(|m| m.get_ref().as_str());
    let security = match (policy.get_ref().as_str(), mode) {
        ("None", None | Some("None")) => Security::None,
        ("None", Some(m)) => {
            return Err(SettingsError::at(
                s.security_mode.as_ref().expect("some"),
                format!(
                    "key `security-mode`: `{m}` needs a security policy other than None\nfix: security-policy = \"Basic256Sha256\", or leave security-mode out"
                ),
            ));
        }
        (
            p @ ("Basic256Sha256" | "Aes128-Sha256-RsaOaep"),
            Some(m @ ("Sign" | "SignAndEncrypt")),
        ) => Security::Secure {
            policy: p.to_string(),
            encrypt: m == "SignAndEncrypt",
        },
        ("Basic256Sha256" | "Aes128-Sha256-RsaOaep", other) => {
            return Err(SettingsError::at(
                s.security_mode.as_ref().unwrap_or(policy),
                format!(
                    "key `security-mode`: {} is not a mode for a secure policy\nfix: security-mode = \"SignAndEncrypt\" (or \"Sign\")",
                    other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                ),
            ));
        }
        (p, _) => {
            return Err(SettingsError::at(
                policy,
                format!(
                    "key `security-policy`: `{p}` is not one plcvault speaks\nfix: write \"Basic256Sha256\", \"Aes128-Sha256-RsaOaep\" or \"None\""
                ),
            ));
        }
    };
    let thumbprint = match &s.server_thumbprint {
        None => None,
        Some(t) => {
            let hex: String = t.get_ref().chars().filter(|c| *c != ':').collect();
            match vault::hash::unhex(&hex).and_then(|v| <[u8; 32]>::try_from(v).ok()) {
                Some(d) => Some(d),
                None if hex.is_empty() => None,
                None => {
                    return Err(SettingsError::at(
                        t,
                        "key `server-thumbprint`: not a SHA-256 (64 hex digits)\nfix: leave it empty, run `plcvault collect` once: it prints the server's thumbprint to pin",
                    ));
                }
            }
        }
    };
    let secret = match (&s.password_file, &s.password_env) {
        (Some(f), None) => Some(Secret::File(ctx.resolve(f.get_ref()))),
        (None, Some(v)) => Some(Secret::Env(v.get_ref().clone())),
        (None, None) => None,
        (Some(f), Some(_)) => {
            return Err(SettingsError::at(
                f,
                "`password-file` and `password-env` both given\nfix: keep one",
            ));
        }
    };
    let mut login = match (&s.user, secret) {
        (Some(u), Some(p)) => Login::User(u.get_ref().clone(), p),
        (None, None) => Login::Anonymous,
        (Some(u), None) => {
            return Err(SettingsError::at(
                u,
                "key `user` needs `password-file` or `password-env` (never the password itself)\nfix: add password-file = \"keys/opcua.pw\" (mode 0600)",
            ));
        }
        (None, Some(_)) => {
            return Err(SettingsError::table(
                &whole,
                "a password is given without `user`\nfix: add user = \"NAME\"",
            ));
        }
    };
    if let (Login::User(..), Security::None) = (&login, &security) {
        return Err(SettingsError::at(
            s.user.as_ref().expect("some"),
            "key `user` with security-policy = \"None\": the password would cross the network in clear text\nfix: use security-policy = \"Basic256Sha256\" with security-mode = \"SignAndEncrypt\", or leave `user` and the password out for an anonymous session",
        ));
    }
    match (&s.user_certificate, &s.user_key) {
        (None, None) => {}
        (Some(c), Some(k)) => {
            if let Some(u) = &s.user {
                return Err(SettingsError::at(
                    u,
                    "`user` and `user-certificate` both given\nfix: keep one way to log in",
                ));
            }
            if security == Security::None {
                return Err(SettingsError::at(
                    c,
                    "key `user-certificate` with security-policy = \"None\": nothing ties the login to the server it is meant for\nfix: use security-policy = \"Basic256Sha256\" with security-mode = \"SignAndEncrypt\"",
                ));
            }
            login = Login::Certificate {
                cert: ctx.resolve(c.get_ref()),
                key: ctx.resolve(k.get_ref()),
            };
        }
        (Some(c), None) => {
            return Err(SettingsError::at(
                c,
                "key `user-certificate` needs `user-key`\nfix: add user-key = \"keys/opcua-user.pem\" (mode 0600)",
            ));
        }
        (None, Some(k)) => {
            return Err(SettingsError::at(
                k,
                "key `user-key` without `user-certificate`\nfix: add user-certificate = \"keys/opcua-user.der\"",
            ));
        }
    }
    let nodes = s
        .nodes
        .as_ref()
        .map(|n| n.get_ref().clone())
        .unwrap_or_default();
    if nodes.is_empty() {
        return Err(SettingsError::table(
            &whole,
            "(adapter opcua) needs key `nodes`: the roots to snapshot\nfix: add nodes = [\"ns=2;s=Recipes\"] (NodeIds; i=85 is the Objects folder)",
        ));
    }
    let mut files = std::collections::HashMap::new();
    for n in &nodes {
        if super::parse_node_id(n).is_none() {
            return Err(SettingsError::at(
                s.nodes.as_ref().expect("some"),
                format!(
                    "key `nodes`: `{n}` is not a NodeId\nfix: write ns=2;s=Recipes, ns=3;i=1001, i=85"
                ),
            ));
        }
        // Each root is one file of the snapshot: two roots naming one file would make
        // every collection incomplete.
        if let Some(other) = files.insert(super::root_artifact(n), n) {
            return Err(SettingsError::at(
                s.nodes.as_ref().expect("some"),
                if other == n {
                    format!("key `nodes`: `{n}` is listed twice\nfix: list each root once")
                } else {
                    format!(
                        "key `nodes`: `{other}` and `{n}` would be stored as the same file ({})\nfix: snapshot their common parent instead, or one of them",
                        super::root_artifact(n)
                    )
                },
            ));
        }
    }
    let timeout = match &s.timeout {
        None => Duration::from_secs(5),
        Some(t) => settings::duration(
            t,
            "timeout",
            Duration::from_millis(100),
            Duration::from_secs(120),
        )?,
    };
    let max_mib = s
        .max_mib
        .as_ref()
        .map_or(super::MAX_SNAPSHOT_BYTES >> 20, |m| *m.get_ref());
    if !(1..=4096).contains(&max_mib) {
        return Err(SettingsError::at(
            s.max_mib.as_ref().expect("given"),
            format!("key `max-mib`: {max_mib} is outside 1 to 4096"),
        ));
    }
    let deadline = match &s.deadline {
        None => Duration::from_secs(30 * 60),
        Some(t) => settings::duration(
            t,
            "deadline",
            Duration::from_secs(1),
            Duration::from_secs(24 * 3600),
        )?,
    };
    let rate = s
        .max_requests_per_second
        .as_ref()
        .map_or(20.0, |r| *r.get_ref());
    if !(0.1..=1000.0).contains(&rate) {
        return Err(SettingsError::at(
            s.max_requests_per_second.as_ref().expect("given"),
            format!("key `max-requests-per-second`: {rate} is outside 0.1 to 1000"),
        ));
    }
    let retries = s.retries.as_ref().map_or(2, |r| *r.get_ref());
    if retries > 10 {
        return Err(SettingsError::at(
            s.retries.as_ref().expect("given"),
            "key `retries`: more than 10",
        ));
    }
    let max_depth = s.max_depth.as_ref().map_or(10, |d| *d.get_ref());
    if max_depth == 0 {
        return Err(SettingsError::at(
            s.max_depth.as_ref().expect("given"),
            "key `max-depth`: must be at least 1 (the root's children)",
        ));
    }
    let max_nodes = s.max_nodes.as_ref().map_or(50_000, |d| *d.get_ref());
    if max_nodes == 0 || max_nodes > super::MAX_NODES {
        return Err(SettingsError::at(
            s.max_nodes.as_ref().expect("given"),
            format!("key `max-nodes`: must be 1 to {}", super::MAX_NODES),
        ));
    }
    let mut kinds = Vec::new();
    for k in &s.kind {
        let pattern = k.pattern.get_ref();
        if glob::Pattern::new(pattern).is_err() {
            return Err(SettingsError::at(
                &k.pattern,
                format!("[[device.kind]] key `match`: `{pattern}` is not a browse-path glob"),
            ));
        }
        kinds.push((pattern.clone(), settings::kind(&k.kind, "kind")?));
    }
    let opts = OpcuaOptions {
        device: ctx.device.to_string(),
        url,
        security,
        thumbprint,
        login,
        pki_dir: ctx.resolve(
            s.pki_dir
                .as_ref()
                .map_or("keys/opcua", |p| p.get_ref().as_str()),
        ),
        nodes,
        max_depth,
        max_nodes,
        max_bytes: max_mib << 20,
        timeout,
        retries,
        deadline,
        max_requests_per_second: rate,
        kinds,
    };
    let permit = s
        .writable
        .as_ref()
        .is_some_and(|w| *w.get_ref())
        .then(|| WritePermit::granted_by_config(ctx.device));
    // Writes go only to a server that proved who it is over a signed channel: under
    // security None anyone answering at the address would take them.
    if let Some(w) = s.writable.as_ref().filter(|_| permit.is_some())
        && (opts.security == Security::None || opts.thumbprint.is_none())
    {
        return Err(SettingsError::at(
            w,
            "key `writable` needs a secure channel to a pinned server: writes under security None, or to an unpinned certificate, would go to whoever answers at the address\nfix: set security-policy = \"Basic256Sha256\", security-mode = \"SignAndEncrypt\" and server-thumbprint",
        ));
    }
    Ok(Device {
        collector: Arc::new(OpcuaCollector::new(opts.clone())),
        writer: Some(Arc::new(OpcuaWriter::new(opts))),
        permit,
        // Kinds are per node, recorded in each node's line (a change of one is a finding).
        kinds: vec![("nodes/*".into(), crate::ArtifactKind::Values)],
    })
}
