//! The `opcua` adapter: OPC UA servers (S7-1500, Beckhoff, B&R, Codesys, SCADA servers,
//! gateways), read-only, through the async-opcua client: who the server is (BuildInfo,
//! its certificate's SHA-256, its namespaces) and a snapshot of each configured root of
//! its address space (Browse, BrowseNext, Read), bounded in depth and node count.
//!
//! Security is asked for, never picked: `security-policy` must be named (`None` too), a
//! secure endpoint needs the server certificate pinned by SHA-256 (`server-thumbprint`;
//! an unknown certificate is refused and its thumbprint printed to pin), and the policy
//! and mode are written into `identity.txt`, so every report names them.
//!
//! Artifacts: `identity.txt` (identity view) and `nodes/<root>.txt`, one line per node in
//! browse-path order: path, NodeId, NodeClass, DataType, AccessLevel and value (arrays and
//! structures in a canonical text); a value the server refuses is recorded with its status
//! code and a warning.

pub mod settings;
mod write;

pub use write::{NodeValue, OpcuaWriter, node_values, parse_variant};

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use opcua::client::{ClientBuilder, IdentityToken, Session};
use opcua::types::{
    AttributeId, BrowseDescription, BrowseDirection, BrowseResultMask, ByteString, DataValue,
    EndpointDescription, MessageSecurityMode, NodeClass, NodeClassMask, NodeId, ReadValueId,
    ReferenceDescription, ReferenceTypeId, StatusCode, TimestampsToReturn, UserTokenType, Variant,
};
use sha2::{Digest, Sha256};

use crate::pace::{Backoff, Failed, Pacer, Tries};
use crate::{
    AdapterError, ArtifactKind, ArtifactMeta, ArtifactSource, BoxFuture, Collection, Collector,
    SourceData,
};

/// What a collection sends, as the README lists it.
pub const READ_FUNCTIONS: &[&str] = &[
    "GetEndpoints",
    "OpenSecureChannel / CloseSecureChannel",
    "CreateSession, ActivateSession, CloseSession",
    "Browse, BrowseNext (continuation points released)",
    "Read (server status, BuildInfo, namespaces, node attributes and values)",
];

pub const IDENTITY_MAGIC: &str = "# plcvault opcua identity v1";
pub const NODES_MAGIC: &str = "# plcvault opcua nodes v1";
pub const NODES_HEADER: &str = "# path\tnodeid\tclass\tdatatype\taccess\tkind\tvalue";
/// The format the node files are recorded in (the review compares them node by node).
pub const NODES_FORMAT: &str = "opcua-nodes";
/// The most nodes `max-nodes` may allow.
pub const MAX_NODES: usize = 1_000_000;
/// Nodes per Browse and per Read request, and references per node in one Browse answer
/// (more come with BrowseNext).
const BROWSE_BATCH: usize = 50;
/// The most text one collection holds by default (`max-mib`: browse paths while walking,
/// then node lines, all roots together): a server naming its nodes with long strings or
/// serving huge values is stopped there, never allowed to fill the memory.
pub const MAX_SNAPSHOT_BYTES: usize = 256 << 20;
const READ_BATCH: usize = 500;
const REFS_PER_NODE: u32 = 200;

/// A password kept out of the config.
#[derive(Clone)]
pub enum Secret {
    File(PathBuf),
    Env(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::File(p) => write!(f, "File({})", p.display()),
            Secret::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl Secret {
    fn read(&self) -> Result<String, String> {
        match self {
            Secret::File(p) => {
                private_to_owner(p, "password file")?;
                let b = vault::fsread::read_regular(p, 4096)
                    .map_err(|e| format!("cannot read the password file {}: {e}", p.display()))?;
                let s = String::from_utf8(b)
                    .map_err(|_| format!("the password file {} is not UTF-8", p.display()))?;
                Ok(s.trim_end_matches(['\r', '\n']).to_string())
            }
            Secret::Env(v) => std::env::var(v)
                .map_err(|_| format!("the environment variable {v} (password-env) is not set")),
        }
    }
}

/// Refuses a secret file (password, private key) that others than its owner can read.
fn private_to_owner(p: &std::path::Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Err(format!(
            "the {what} {} can be read by others (mode {:o}); chmod 600 it",
            p.display(),
            m.permissions().mode() & 0o777
        )),
        _ => Ok(()),
    }
}

/// Who the session is opened as.
#[derive(Clone, Debug)]
pub enum Login {
    Anonymous,
    /// A user name and where its password is read from.
    User(String, Secret),
    /// An X.509 user certificate (DER or PEM) and its private key (PEM, mode 0600).
    Certificate {
        cert: PathBuf,
        key: PathBuf,
    },
}

/// The security asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    None,
    Secure { policy: String, encrypt: bool },
}

impl Security {
    fn policy_uri(&self) -> String {
        let name = match self {
            Security::None => "None",
            Security::Secure { policy, .. } if policy == "Aes128-Sha256-RsaOaep" => {
                "Aes128_Sha256_RsaOaep"
            }
            Security::Secure { policy, .. } => policy.as_str(),
        };
        format!("http://opcfoundation.org/UA/SecurityPolicy#{name}")
    }

    fn mode(&self) -> MessageSecurityMode {
        match self {
            Security::None => MessageSecurityMode::None,
            Security::Secure { encrypt: true, .. } => MessageSecurityMode::SignAndEncrypt,
            Security::Secure { encrypt: false, .. } => MessageSecurityMode::Sign,
        }
    }

    fn text(&self) -> String {
        match self {
            Security::None => "None (no signing, no encryption)".into(),
            Security::Secure { policy, encrypt } => format!(
                "{policy} {}",
                if *encrypt { "SignAndEncrypt" } else { "Sign" }
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub struct OpcuaOptions {
    pub device: String,
    pub url: String,
    pub security: Security,
    pub thumbprint: Option<[u8; 32]>,
    pub login: Login,
    pub pki_dir: PathBuf,
    pub nodes: Vec<String>,
    pub max_depth: usize,
    pub max_nodes: usize,
    /// The most text one collection holds, in bytes (`max-mib`).
    pub max_bytes: usize,
    pub timeout: Duration,
    pub retries: u32,
    /// The most one collection may take, retries and backoffs included.
    pub deadline: Duration,
    pub max_requests_per_second: f64,
    /// Browse-path glob → kind, first match wins; values otherwise.
    pub kinds: Vec<(String, ArtifactKind)>,
}

impl OpcuaOptions {
    /// The kind of the node at `path` (`ns=2;s=Recipes/2:Speed`) under the kind rules.
    pub fn kind_of(&self, path: &str) -> ArtifactKind {
        self.kinds
            .iter()
            .find(|(g, _)| glob::Pattern::new(g).is_ok_and(|p| p.matches(path)))
            .map_or(ArtifactKind::Values, |(_, k)| *k)
    }
}

/// A NodeId as the config writes it (`ns=2;s=Recipes`, `i=85`).
pub fn parse_node_id(s: &str) -> Option<NodeId> {
    if let Ok(n) = s.parse::<NodeId>() {
        return (!n.is_null()).then_some(n);
    }
    // A string identifier may hold what the library's parser does not take (a line
    // end, say, from a server that named it so): `ns=N;s=` and the rest as it is.
    let (ns, id) = match s.strip_prefix("ns=") {
        Some(r) => {
            let (ns, id) = r.split_once(';')?;
            (ns.parse::<u16>().ok()?, id)
        }
        None => (0, s),
    };
    Some(NodeId::new(ns, id.strip_prefix("s=")?.to_string()))
}

/// The artifact name of a root: `nodes/ns=2;s=Recipes.txt` with what a vault name cannot
/// hold replaced.
pub fn root_artifact(root: &str) -> String {
    let safe: String = root
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=;.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("nodes/{safe}.txt")
}

/// Text that cannot break a line or a field: tabs, line ends and backslashes escaped.
pub(super) fn field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A value as canonical text: numbers exact (floats the shortest text that reads back to
/// the same bits, NaN by its bits), strings quoted with escapes, arrays in brackets, and
/// what has no text of its own (structures) as its encoding's debug form with its type.
pub fn variant_text(v: &Variant) -> String {
    match v {
        Variant::Empty => "null".into(),
        Variant::Boolean(b) => b.to_string(),
        Variant::SByte(x) => x.to_string(),
        Variant::Byte(x) => x.to_string(),
        Variant::Int16(x) => x.to_string(),
        Variant::UInt16(x) => x.to_string(),
        Variant::Int32(x) => x.to_string(),
        Variant::UInt32(x) => x.to_string(),
        Variant::Int64(x) => x.to_string(),
        Variant::UInt64(x) => x.to_string(),
        Variant::Float(x) if x.is_nan() => format!("bits:0x{:08x}", x.to_bits()),
        Variant::Float(x) => format!("{x:?}"),
        Variant::Double(x) if x.is_nan() => format!("bits:0x{:016x}", x.to_bits()),
        Variant::Double(x) => format!("{x:?}"),
        Variant::String(s) => match s.value() {
            Some(s) => format!("\"{}\"", field(s).replace('"', "\\\"")),
            None => "null".into(),
        },
        Variant::ByteString(b) => match b.value.as_ref() {
            Some(b) => format!("0x{}", hex(b)),
            None => "null".into(),
        },
        // What a server names itself (identifiers, names, locales) is escaped like every
        // field, so that no value can break the line or forge another.
        Variant::DateTime(d) => field(&d.to_string()),
        Variant::StatusCode(s) => field(&format!("{s}")),
        Variant::NodeId(n) => field(&n.to_string()),
        Variant::ExpandedNodeId(n) => field(&n.to_string()),
        Variant::QualifiedName(q) => field(&q.to_string()),
        Variant::LocalizedText(t) => format!(
            "{}:\"{}\"",
            field(t.locale.value().as_deref().unwrap_or("")),
            field(t.text.value().as_deref().unwrap_or(""))
        ),
        Variant::Guid(g) => field(&g.to_string()),
        Variant::Array(a) => {
            let items: Vec<String> = a.values.iter().map(variant_text).collect();
            match &a.dimensions {
                Some(d) if d.len() > 1 => format!("{d:?}[{}]", items.join(", ")),
                _ => format!("[{}]", items.join(", ")),
            }
        }
        other => field(&format!("{other:?}")),
    }
}

/// Collects one OPC UA server.
pub struct OpcuaCollector {
    opts: OpcuaOptions,
}

/// One node's Browse answer while it is taken whole.
struct Page<'a> {
    parent: &'a String,
    refs: Vec<ReferenceDescription>,
    cp: ByteString,
    status: StatusCode,
}

/// One node found under a root.
struct Found {
    path: String,
    node: NodeId,
    class: NodeClass,
}

impl OpcuaCollector {
    pub fn new(opts: OpcuaOptions) -> OpcuaCollector {
        OpcuaCollector { opts }
    }

    fn err_unreachable(&self, why: String) -> AdapterError {
        AdapterError::Unreachable {
            device: self.opts.device.clone(),
            why,
            fix: format!(
                "check that {} is reachable from this host (firewall, VLAN) and serves OPC UA there",
                self.opts.url
            ),
        }
    }

    fn err_timeout(&self, what: &str) -> AdapterError {
        AdapterError::Timeout {
            device: self.opts.device.clone(),
            why: format!(
                "no answer to {what} within {}",
                humantime::format_duration(self.opts.timeout)
            ),
            fix: format!("check that {} is up, or raise `timeout`", self.opts.url),
        }
    }

    async fn timed<T>(
        &self,
        pacer: &mut Pacer,
        what: &str,
        f: impl std::future::Future<Output = Result<T, opcua::types::Error>>,
    ) -> Result<T, AdapterError> {
        pacer.wait().await;
        match tokio::time::timeout(self.opts.timeout, f).await {
            Err(_) => Err(self.err_timeout(what)),
            Ok(Err(e)) if connection_lost(e.status()) => {
                Err(self.err_unreachable(format!("the connection was lost during {what}: {e}")))
            }
            Ok(Err(e)) if e.status() == StatusCode::BadTimeout => Err(self.err_timeout(what)),
            Ok(Err(e)) => Err(AdapterError::Protocol {
                device: self.opts.device.clone(),
                why: format!("{what}: {e}"),
                fix: "see the server's log; the snapshot was not stored".into(),
            }),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// A whole collection, tried again on a new connection and session (after a backoff,
    /// up to `retries` times) when the server stopped answering or the connection broke;
    /// what an attempt had read is dropped, never stored in part.
    async fn collect_now(&self) -> Result<Collection, AdapterError> {
        let d = self.opts.deadline;
        tokio::time::timeout(d, self.collect_retried())
            .await
            .unwrap_or_else(|_| {
                Err(AdapterError::Timeout {
                    device: self.opts.device.clone(),
                    why: format!(
                        "the collection took longer than `deadline` ({}); what it had read was dropped, nothing stored",
                        humantime::format_duration(d)
                    ),
                    fix: "lower `max-nodes` or narrow `nodes`, raise `max-requests-per-second` if the server can take it, or raise `deadline`".into(),
                })
            })
    }

    async fn collect_retried(&self) -> Result<Collection, AdapterError> {
        let mut tries = Tries::new(Backoff::new(self.opts.retries));
        let mut failed = Vec::new();
        loop {
            match self.attempt().await {
                Ok(mut c) => {
                    if let Some(w) = read_certificate(&self.opts.pki_dir)
                        .ok()
                        .and_then(|own| own.expiry_warning(std::time::SystemTime::now()))
                    {
                        c.warnings.push(w.replace('\n', "; "));
                    }
                    for (i, why) in failed.iter().enumerate() {
                        c.warnings.push(format!(
                            "attempt {} failed and was dropped ({why}); attempt {} read the server whole on a new session",
                            i + 1,
                            failed.len() + 1
                        ));
                    }
                    return Ok(c);
                }
                Err(e @ (AdapterError::Timeout { .. } | AdapterError::Unreachable { .. })) => {
                    failed.push(e.to_string().lines().next().unwrap_or("").to_string());
                    tries.after(Failed::Retry(e)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One collection on one connection and session.
    async fn attempt(&self) -> Result<Collection, AdapterError> {
        self.in_session(async |session, pacer, endpoint, thumb| {
            self.snapshot(session, pacer, endpoint, thumb).await
        })
        .await
    }

    /// Runs `work` on one new connection and session (the endpoint chosen by the security
    /// settings, the server certificate checked against the pin, the login made), then
    /// closes the session; `work` gets the session, the request pacer, the endpoint and
    /// the server certificate's SHA-256 in hex.
    async fn in_session<R>(
        &self,
        work: impl AsyncFnOnce(
            &Session,
            &mut Pacer,
            &EndpointDescription,
            &str,
        ) -> Result<R, AdapterError>,
    ) -> Result<R, AdapterError> {
        let o = &self.opts;
        let mut pacer = Pacer::new(o.max_requests_per_second);
        prepare_pki(&o.pki_dir).map_err(|e| AdapterError::Config {
            device: o.device.clone(),
            key: "pki-dir".into(),
            why: format!("cannot create {}: {e}", o.pki_dir.display()),
        })?;
        let mut client = client_builder(&o.pki_dir)
            // The server certificate is checked here, against the pinned SHA-256.
            .trust_server_certs(true)
            .verify_server_certs(false)
            .session_retry_limit(0)
            .keep_alive_interval(Duration::from_secs(3600))
            .request_timeout(o.timeout)
            .session_timeout(60_000)
            // A server may answer a Browse with every reference at once (asyncua does,
            // whatever page size is asked): messages of up to 16 MiB in 64 KiB chunks.
            .max_message_size(16 * 1024 * 1024)
            .max_chunk_count(256)
            .max_array_length(1_000_000)
            .client()
            .map_err(|e| AdapterError::Config {
                device: o.device.clone(),
                key: "pki-dir".into(),
                why: e.join("; "),
            })?;
        restrict_private_keys(&o.pki_dir);
        let endpoints = self
            .timed(
                &mut pacer,
                "GetEndpoints",
                client.get_server_endpoints_from_url(o.url.as_str()),
            )
            .await
            .map_err(|e| match e {
                AdapterError::Protocol { why, .. } if why.contains("BadSecurityPolicyRejected") => {
                    AdapterError::Unreachable {
                        device: o.device.clone(),
                        why: format!("the server refuses an unsecured channel even for GetEndpoints ({why})"),
                        fix: "plcvault reads the endpoints and the server's certificate over security None (no login, no values) before it opens the secure channel against the pinned thumbprint: let the server answer discovery over None (open62541: securityPolicyNoneDiscoveryOnly = true; most servers do by default)".into(),
                    }
                }
                AdapterError::Protocol { why, .. } => self.err_unreachable(why),
                e => e,
            })?;
        let want_uri = o.security.policy_uri();
        let want_mode = o.security.mode();
        let Some(endpoint) = endpoints
            .iter()
            .find(|e| e.security_policy_uri.as_ref() == want_uri && e.security_mode == want_mode)
            .cloned()
        else {
            let offered: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{} {:?}",
                        match e.security_policy_uri.as_ref().rsplit('#').next() {
                            Some("Aes128_Sha256_RsaOaep") => "Aes128-Sha256-RsaOaep",
                            Some(p) => p,
                            None => "",
                        },
                        e.security_mode
                    )
                })
                .collect();
            return Err(AdapterError::Refused {
                device: o.device.clone(),
                why: format!(
                    "the server offers no endpoint with {}; it offers: {}",
                    o.security.text(),
                    offered.join(", ")
                ),
                fix: "set security-policy and security-mode to one it offers".into(),
            });
        };
        let cert = endpoint.server_certificate.as_ref().to_vec();
        let thumb = Sha256::digest(&cert);
        let thumb_hex = hex(&thumb);
        match (&o.thumbprint, &o.security) {
            (Some(p), _) if p[..] != thumb[..] => {
                return Err(AdapterError::Identity {
                    device: o.device.clone(),
                    why: format!(
                        "the server's certificate has SHA-256 {thumb_hex}, not the pinned {}",
                        hex(p)
                    ),
                    fix: "if the certificate was renewed on purpose, pin the new one: server-thumbprint = \"".to_string()
                        + &thumb_hex
                        + "\"; otherwise find out who answers at that address",
                });
            }
            (None, Security::Secure { .. }) => {
                return Err(AdapterError::Identity {
                    device: o.device.clone(),
                    why: format!(
                        "the server's certificate (SHA-256 {thumb_hex}) is not pinned: plcvault does not trust a certificate it was not told"
                    ),
                    fix: format!(
                        "check the thumbprint on the server itself, then add server-thumbprint = \"{thumb_hex}\""
                    ),
                });
            }
            _ => {}
        }
        let want = match &o.login {
            Login::Anonymous => UserTokenType::Anonymous,
            Login::User(..) => UserTokenType::UserName,
            Login::Certificate { .. } => UserTokenType::Certificate,
        };
        let offered: Vec<UserTokenType> = endpoint
            .user_identity_tokens
            .iter()
            .flatten()
            .map(|t| t.token_type)
            .collect();
        if !(offered.contains(&want) || want == UserTokenType::Anonymous && offered.is_empty()) {
            let name = |t: &UserTokenType| match t {
                UserTokenType::Anonymous => "anonymous",
                UserTokenType::UserName => "user and password (`user`, `password-file`)",
                UserTokenType::Certificate => "user certificate (`user-certificate`, `user-key`)",
                UserTokenType::IssuedToken => "issued token (not supported)",
            };
            return Err(AdapterError::Auth {
                device: o.device.clone(),
                why: format!(
                    "the server does not accept a login by {} on this endpoint; it accepts: {}",
                    name(&want),
                    offered.iter().map(name).collect::<Vec<_>>().join(", ")
                ),
                fix: "configure one of the logins it accepts".into(),
            });
        }
        let identity = match &o.login {
            Login::Anonymous => IdentityToken::Anonymous,
            Login::User(u, secret) => {
                let pw = secret.read().map_err(|why| AdapterError::Auth {
                    device: o.device.clone(),
                    why,
                    fix: "make the password file readable (mode 0600) or set the variable".into(),
                })?;
                IdentityToken::new_user_name(u.clone(), pw)
            }
            Login::Certificate { cert, key } => {
                let auth = |why: String| {
                    AdapterError::Auth {
                    device: o.device.clone(),
                    why,
                    fix: "point user-certificate and user-key at the certificate (DER or PEM) and its PEM key (mode 0600)".into(),
                }
                };
                private_to_owner(key, "user key").map_err(auth)?;
                IdentityToken::new_x509_path(cert, key).map_err(|e| {
                    auth(format!(
                        "cannot read the user certificate {} or key {}: {}",
                        cert.display(),
                        key.display(),
                        e.status()
                    ))
                })?
            }
        };
        // The configured address, never the one the server advertises: that came over an
        // unauthenticated channel and may name a host this side cannot reach (NAT) or
        // another server altogether. The policy, mode, certificate and logins are kept.
        let mut at = endpoint.clone();
        at.endpoint_url = o.url.as_str().into();
        let (session, event_loop) = client
            .connect_to_endpoint_directly(at, identity)
            .map_err(|e| self.err_unreachable(e.to_string()))?;
        pacer.wait().await;
        let mut handle = event_loop.spawn();
        let connected = tokio::time::timeout(o.timeout * 3, async {
            tokio::select! {
                ok = session.wait_for_connection() => if ok { Ok(()) } else { Err(None) },
                end = &mut handle => Err(end.ok()),
            }
        })
        .await;
        let result = match connected {
            Err(_) => Err(self.err_timeout("CreateSession/ActivateSession")),
            Ok(Err(status)) => Err(self.session_refused(status)),
            Ok(Ok(())) => {
                // A lost connection ends this attempt: the library would otherwise make
                // a session again on its own, behind the retry budget's back.
                session.disable_reconnects();
                work(&session, &mut pacer, &endpoint, &thumb_hex).await
            }
        };
        pacer.wait().await;
        let _ = tokio::time::timeout(o.timeout, session.disconnect()).await;
        handle.abort();
        result
    }

    fn session_refused(&self, status: Option<StatusCode>) -> AdapterError {
        let o = &self.opts;
        let text = status.map_or("the session ended".to_string(), |s| format!("{s}"));
        if status.is_some_and(connection_lost) {
            return self.err_unreachable(format!("no session: {text}"));
        }
        let auth = status.is_some_and(|s| {
            matches!(
                s,
                StatusCode::BadUserAccessDenied
                    | StatusCode::BadIdentityTokenInvalid
                    | StatusCode::BadIdentityTokenRejected
            )
        });
        if auth {
            AdapterError::Auth {
                device: o.device.clone(),
                why: format!("the server refused the login: {text}"),
                fix: "check `user` and the password file or variable".into(),
            }
        } else {
            AdapterError::Refused {
                device: o.device.clone(),
                why: format!("no session: {text}"),
                fix: "check the security settings against the server's endpoints, and that the server trusts plcvault's certificate (in pki-dir/own)".into(),
            }
        }
    }

    async fn read(
        &self,
        session: &Session,
        pacer: &mut Pacer,
        ids: Vec<ReadValueId>,
    ) -> Result<Vec<DataValue>, AdapterError> {
        let n = ids.len();
        let values = self
            .timed(
                pacer,
                "Read",
                session.read(&ids, TimestampsToReturn::Neither, 0.0),
            )
            .await?;
        if values.len() != n {
            return Err(AdapterError::Protocol {
                device: self.opts.device.clone(),
                why: format!("{} results to a Read of {n}", values.len()),
                fix: "the snapshot was not stored".into(),
            });
        }
        Ok(values)
    }

    async fn snapshot(
        &self,
        session: &Session,
        pacer: &mut Pacer,
        endpoint: &EndpointDescription,
        thumb_hex: &str,
    ) -> Result<Collection, AdapterError> {
        let o = &self.opts;
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
        // BuildInfo's parts, the server state, the namespace table.
        let ids: Vec<ReadValueId> = [2262u32, 2263, 2261, 2264, 2265, 2266, 2259, 2255]
            .iter()
            .map(|i| value_of(NodeId::new(0, *i)))
            .collect();
        let v = self.read(session, pacer, ids).await?;
        let names = [
            "product-uri",
            "manufacturer",
            "product-name",
            "software-version",
            "build-number",
            "build-date",
        ];
        let mut text = format!("{IDENTITY_MAGIC}\n# device={}\n", field(&o.device));
        let mut build_date = None;
        for (name, dv) in names.iter().zip(&v) {
            let value = match &dv.value {
                Some(Variant::String(s)) => field(s.value().as_deref().unwrap_or("")),
                Some(other) => variant_text(other),
                None => "not available".into(),
            };
            // open62541 stamps BuildDate with the server's start time: in the identity it
            // would be a finding at every restart. Recorded, not compared (as the state).
            if *name == "build-date" {
                build_date = Some(value);
                continue;
            }
            let _ = writeln!(text, "{name}={value}");
        }
        let _ = writeln!(text, "certificate-sha256={thumb_hex}");
        let _ = writeln!(text, "security={}", o.security.text());
        let _ = writeln!(
            text,
            "application-uri={}",
            field(endpoint.server.application_uri.as_ref())
        );
        if let Some(Variant::Array(a)) = &v[7].value {
            for (i, ns) in a.values.iter().enumerate() {
                let _ = writeln!(text, "namespace-{i}={}", variant_text(ns));
            }
        }
        let mut meta = ArtifactMeta::default();
        if let Some(d) = build_date {
            meta.extra.insert("state-build-date".into(), d);
        }
        if let Some(state) = &v[6].value {
            meta.extra
                .insert("state-server".into(), variant_text(state));
        }
        meta.extra.insert(
            "state-endpoint".into(),
            field(endpoint.endpoint_url.as_ref()),
        );
        out.artifacts.push(ArtifactSource {
            name: "identity.txt".into(),
            kind: ArtifactKind::Identity,
            meta,
            size_hint: None,
            data: SourceData::Bytes(text.into_bytes()),
        });
        let mut total = 0usize;
        let mut budget = o.max_bytes;
        for root in &o.nodes {
            let id = parse_node_id(root).expect("checked by the settings");
            let found = match self
                .browse_root(
                    session,
                    pacer,
                    &id,
                    root,
                    o.max_nodes.saturating_sub(total),
                    budget,
                )
                .await?
            {
                Ok(found) => {
                    total += found.len();
                    self.node_lines(session, pacer, root, found, budget, &mut out)
                        .await?
                }
                Err(why) => Err(why),
            };
            match found {
                Ok(bytes) => {
                    budget = budget.saturating_sub(bytes.len());
                    let mut meta = ArtifactMeta::default();
                    meta.extra.insert("format".into(), NODES_FORMAT.into());
                    out.artifacts.push(ArtifactSource {
                        name: root_artifact(root),
                        kind: ArtifactKind::Values,
                        meta,
                        size_hint: Some(bytes.len() as u64),
                        data: SourceData::Bytes(bytes),
                    });
                }
                Err(why) => {
                    out.complete = false;
                    out.warnings.push(format!("{root}: not stored: {why}"));
                }
            }
        }
        Ok(out)
    }

    /// Every node below `root` by hierarchical references, breadth first, within the
    /// depth and node bounds; `Ok(Err(why))` when the root cannot be snapshot whole.
    async fn browse_root(
        &self,
        session: &Session,
        pacer: &mut Pacer,
        root: &NodeId,
        name: &str,
        room: usize,
        budget: usize,
    ) -> Result<Result<Vec<Found>, String>, AdapterError> {
        let o = &self.opts;
        let mut path_bytes = name.len();
        let mut found = vec![Found {
            path: name.to_string(),
            node: root.clone(),
            class: NodeClass::Unspecified,
        }];
        let mut seen = std::collections::HashSet::new();
        seen.insert(root.clone());
        let mut frontier: Vec<(NodeId, String)> = vec![(root.clone(), name.to_string())];
        let mut depth = 0usize;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for chunk in frontier.chunks(BROWSE_BATCH) {
                let descs: Vec<BrowseDescription> = chunk
                    .iter()
                    .map(|(n, _)| BrowseDescription {
                        node_id: n.clone(),
                        browse_direction: BrowseDirection::Forward,
                        reference_type_id: ReferenceTypeId::HierarchicalReferences.into(),
                        include_subtypes: true,
                        node_class_mask: NodeClassMask::all().bits(),
                        result_mask: BrowseResultMask::All as u32,
                    })
                    .collect();
                let results = self
                    .timed(pacer, "Browse", session.browse(&descs, REFS_PER_NODE, None))
                    .await?;
                if results.len() != chunk.len() {
                    return Err(AdapterError::Protocol {
                        device: o.device.clone(),
                        why: format!("{} results to a Browse of {}", results.len(), chunk.len()),
                        fix: "the snapshot was not stored".into(),
                    });
                }
                // Every answer's continuation point is followed or, when a bound or a
                // bad status stops the walk, released: the server holds none after.
                let mut pages: Vec<Page> = chunk
                    .iter()
                    .zip(results)
                    .map(|((_, parent), r)| Page {
                        parent,
                        refs: r.references.unwrap_or_default(),
                        cp: r.continuation_point,
                        status: r.status_code,
                    })
                    .collect();
                let mut stop = None;
                for page in &mut pages {
                    if let Some(why) = self
                        .take_page(session, pacer, page, found.len(), room)
                        .await?
                    {
                        stop = Some(why);
                        break;
                    }
                    let parent = page.parent;
                    for rd in std::mem::take(&mut page.refs) {
                        if rd.node_id.server_index != 0 || !rd.node_id.namespace_uri.is_null() {
                            continue;
                        }
                        let node = rd.node_id.node_id.clone();
                        if !seen.insert(node.clone()) {
                            continue;
                        }
                        // A node this many hops below the root (the frontier is `depth`).
                        if depth + 1 > o.max_depth {
                            stop = Some(format!(
                                "deeper than max-depth = {} (raise it to snapshot the whole tree)",
                                o.max_depth
                            ));
                            break;
                        }
                        let path = format!("{parent}/{}", rd.browse_name);
                        path_bytes += path.len();
                        if path_bytes > budget {
                            stop = Some(too_big(o.max_bytes));
                            break;
                        }
                        found.push(Found {
                            path: path.clone(),
                            node: node.clone(),
                            class: rd.node_class,
                        });
                        if found.len() > room {
                            stop = Some(too_many(o.max_nodes));
                            break;
                        }
                        next.push((node, path));
                    }
                    if stop.is_some() {
                        break;
                    }
                }
                if let Some(why) = stop {
                    for p in pages {
                        if !p.cp.is_null() {
                            self.release(session, pacer, p.cp).await;
                        }
                    }
                    return Ok(Err(why));
                }
            }
            frontier = next;
            depth += 1;
        }
        Ok(Ok(found))
    }

    /// One node's answer whole: its continuation point followed to the end, unless the
    /// references would pass the node bound or the server answers a bad status; then
    /// `Some(why)`, the point left in `page` for the caller to release.
    async fn take_page(
        &self,
        session: &Session,
        pacer: &mut Pacer,
        page: &mut Page<'_>,
        found: usize,
        room: usize,
    ) -> Result<Option<String>, AdapterError> {
        let Page {
            parent,
            refs,
            cp,
            status,
        } = page;
        if !status.is_good() {
            return Ok(Some(format!("Browse of {parent}: {status}")));
        }
        while !cp.is_null() {
            if found + refs.len() > room {
                return Ok(Some(too_many(self.opts.max_nodes)));
            }
            let more = self
                .timed(
                    pacer,
                    "BrowseNext",
                    session.browse_next(false, std::slice::from_ref(cp)),
                )
                .await?;
            let Some(m) = more.into_iter().next() else {
                *cp = ByteString::null();
                break;
            };
            if !m.status_code.is_good() {
                // The point is spent either way: the server answered for it.
                *cp = ByteString::null();
                return Ok(Some(format!("BrowseNext of {parent}: {}", m.status_code)));
            }
            let page = m.references.unwrap_or_default();
            // Every page must bring references and a new point: a server that answers
            // with an empty page or the same point again would keep the walk going
            // forever. The point it gave is left for the caller to release.
            let stuck =
                !m.continuation_point.is_null() && (page.is_empty() || m.continuation_point == *cp);
            refs.extend(page);
            *cp = m.continuation_point;
            if stuck {
                return Ok(Some(format!(
                    "BrowseNext of {parent}: the server answered a page with no progress (an empty page or the same continuation point); the walk was stopped"
                )));
            }
        }
        Ok(None)
    }

    async fn release(&self, session: &Session, pacer: &mut Pacer, cp: ByteString) {
        let _ = self
            .timed(pacer, "BrowseNext", session.browse_next(true, &[cp]))
            .await;
    }

    /// The nodes' lines: their class, and for variables data type, access level and value.
    async fn node_lines(
        &self,
        session: &Session,
        pacer: &mut Pacer,
        root: &str,
        mut found: Vec<Found>,
        budget: usize,
        out: &mut Collection,
    ) -> Result<Result<Vec<u8>, String>, AdapterError> {
        // The root's class is not in a reference: read it.
        let v = self
            .read(
                session,
                pacer,
                vec![attr(found[0].node.clone(), AttributeId::NodeClass)],
            )
            .await?;
        if let Some(Variant::Int32(c)) = v[0].value {
            found[0].class = NodeClass::try_from(c).unwrap_or(NodeClass::Unspecified);
        }
        let vars: Vec<usize> = (0..found.len())
            .filter(|i| found[*i].class == NodeClass::Variable)
            .collect();
        // Each variable's data type, access and value as text, counted against the budget
        // batch by batch.
        let mut attrs: Vec<Option<[String; 3]>> = (0..found.len()).map(|_| None).collect();
        let mut bytes: usize = found.iter().map(|f| 2 * f.path.len() + 32).sum();
        for chunk in vars.chunks(READ_BATCH / 3) {
            let ids: Vec<ReadValueId> = chunk
                .iter()
                .flat_map(|i| {
                    let n = found[*i].node.clone();
                    [
                        attr(n.clone(), AttributeId::DataType),
                        attr(n.clone(), AttributeId::AccessLevel),
                        attr(n, AttributeId::Value),
                    ]
                })
                .collect();
            let v = self.read(session, pacer, ids).await?;
            for (k, i) in chunk.iter().enumerate() {
                let (d, acc, val) = (&v[3 * k], &v[3 * k + 1], &v[3 * k + 2]);
                let dtype = match &d.value {
                    Some(Variant::NodeId(n)) => data_type_name(n),
                    _ => String::new(),
                };
                let access = match &acc.value {
                    Some(Variant::Byte(b)) => access_text(*b),
                    _ => String::new(),
                };
                let status = val.status.unwrap_or(StatusCode::Good);
                let value = if status.is_good() {
                    val.value.as_ref().map_or("null".into(), variant_text)
                } else {
                    out.warnings
                        .push(format!("{}: value not read: {status}", found[*i].path));
                    format!("!status {status}")
                };
                bytes += dtype.len() + access.len() + value.len();
                attrs[*i] = Some([dtype, access, value]);
            }
            if bytes > budget {
                return Ok(Err(too_big(self.opts.max_bytes)));
            }
        }
        let mut lines: Vec<String> = Vec::with_capacity(found.len());
        for (f, a) in found.iter().zip(attrs) {
            let [dtype, access, value] = a.unwrap_or_default();
            lines.push(format!(
                "{}\t{}\t{:?}\t{dtype}\t{access}\t{}\t{value}",
                field(&f.path),
                field(&f.node.to_string()),
                f.class,
                self.opts.kind_of(&f.path)
            ));
        }
        lines.sort();
        let mut text = format!("{NODES_MAGIC}\n# root={}\n{NODES_HEADER}\n", field(root));
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        Ok(Ok(text.into_bytes()))
    }
}

fn too_big(max: usize) -> String {
    format!(
        "its text passes max-mib = {} (long browse names or huge values): narrow `nodes`, lower `max-nodes` or raise `max-mib`",
        max >> 20
    )
}

/// Statuses that say the connection, channel or session is gone: worth a new attempt.
fn connection_lost(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::BadConnectionClosed
            | StatusCode::BadNotConnected
            | StatusCode::BadServerNotConnected
            | StatusCode::BadSecureChannelClosed
            | StatusCode::BadSecureChannelIdInvalid
            | StatusCode::BadSessionClosed
            | StatusCode::BadSessionIdInvalid
            | StatusCode::BadCommunicationError
            | StatusCode::BadDisconnect
            | StatusCode::BadNoCommunication
            | StatusCode::BadTcpInternalError
    )
}

fn too_many(max: usize) -> String {
    format!("more nodes than max-nodes = {max} (raise it to snapshot the whole tree)")
}

fn value_of(n: NodeId) -> ReadValueId {
    attr(n, AttributeId::Value)
}

fn attr(n: NodeId, a: AttributeId) -> ReadValueId {
    ReadValueId {
        node_id: n,
        attribute_id: a as u32,
        ..Default::default()
    }
}

/// The name of a built-in data type (`Int32`), else the NodeId.
fn data_type_name(n: &NodeId) -> String {
    const BUILTIN: [&str; 25] = [
        "Boolean",
        "SByte",
        "Byte",
        "Int16",
        "UInt16",
        "Int32",
        "UInt32",
        "Int64",
        "UInt64",
        "Float",
        "Double",
        "String",
        "DateTime",
        "Guid",
        "ByteString",
        "XmlElement",
        "NodeId",
        "ExpandedNodeId",
        "StatusCode",
        "QualifiedName",
        "LocalizedText",
        "Structure",
        "DataValue",
        "BaseDataType",
        "DiagnosticInfo",
    ];
    match n.as_u32() {
        Some(i @ 1..=25) if n.namespace == 0 => BUILTIN[i as usize - 1].to_string(),
        // A server names its own types: escaped, so no name can break the line.
        _ => field(&n.to_string()),
    }
}

/// An AccessLevel byte as letters: r (read), w (write), h (history read), H (history
/// write), s (semantic change), t (status write), T (timestamp write).
pub(super) fn access_text(b: u8) -> String {
    let letters = ['r', 'w', 'h', 'H', 's', 't', 'T'];
    let s: String = (0..7)
        .filter(|i| b & (1 << i) != 0)
        .map(|i| letters[i])
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// The client as plcvault names itself, its certificate and key in `pki` (made when
/// missing).
fn client_builder(pki: &std::path::Path) -> ClientBuilder {
    ClientBuilder::new()
        .application_name("plcvault")
        .application_uri("urn:plcvault:client")
        .product_uri("urn:plcvault")
        .pki_dir(pki.to_owned())
        .create_sample_keypair(true)
}

/// plcvault's own client certificate in `pki` (made with its key when missing), and the
/// certificate's SHA-256 in hex, for the server's administrator to trust.
///
/// Fails when the folder cannot be written or the certificate not read.
pub fn ensure_certificate(pki: &std::path::Path) -> Result<OwnCertificate, String> {
    prepare_pki(pki).map_err(|e| format!("cannot create {}: {e}", pki.display()))?;
    client_builder(pki).client().map_err(|e| e.join("; "))?;
    restrict_private_keys(pki);
    read_certificate(pki)
}

/// plcvault's own client certificate in `pki`, as it is.
///
/// Fails when it is missing or not a certificate.
pub fn read_certificate(pki: &std::path::Path) -> Result<OwnCertificate, String> {
    let path = pki.join("own").join("cert.der");
    let der = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let not_after = opcua::crypto::X509::from_der(&der)
        .and_then(|c| c.not_after())
        .map_err(|e| format!("{} is not a certificate: {e:?}", path.display()))?;
    Ok(OwnCertificate {
        path,
        sha256: hex(&Sha256::digest(&der)),
        not_after: std::time::SystemTime::from(not_after),
    })
}

/// plcvault's own client certificate, as `opcua cert` shows it.
#[derive(Debug, Clone)]
pub struct OwnCertificate {
    pub path: PathBuf,
    pub sha256: String,
    /// When it expires: servers that check client certificates refuse it after.
    pub not_after: std::time::SystemTime,
}

impl OwnCertificate {
    /// A sentence when it has expired or expires within 30 days, saying how to renew.
    pub fn expiry_warning(&self, now: std::time::SystemTime) -> Option<String> {
        let left = self.not_after.duration_since(now).unwrap_or_default();
        let until = humantime::format_rfc3339_seconds(self.not_after);
        let when = if left.is_zero() {
            format!("expired on {until}")
        } else if left < Duration::from_secs(30 * 86400) {
            format!("expires on {until}")
        } else {
            return None;
        };
        let pki = self
            .path
            .parent()
            .and_then(|p| p.parent())
            .unwrap_or(&self.path);
        Some(format!(
            "plcvault's OPC UA client certificate {} {when}; servers that check client certificates will refuse it\nfix: move {}/own and {}/private aside, run `plcvault opcua cert --pki-dir {}` for a new one, and have each server trust it",
            self.path.display(),
            pki.display(),
            pki.display(),
            pki.display()
        ))
    }
}

/// Makes the PKI folder and its `private` folder, the latter open to its owner only
/// (0700) before the library writes a key into it: the key file is narrowed to 0600 only
/// after it is written, and no one else can reach it in between.
fn prepare_pki(pki: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::create_dir_all(pki)?;
    let private = pki.join("private");
    match std::fs::DirBuilder::new().mode(0o700).create(&private) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700))
        }
        other => other,
    }
}

/// Makes the private keys in the PKI folder readable by their owner only.
fn restrict_private_keys(pki: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(dir) = std::fs::read_dir(pki.join("private")) {
        for e in dir.flatten() {
            let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o600));
        }
    }
}

impl Collector for OpcuaCollector {
    fn adapter(&self) -> &'static str {
        "opcua"
    }
    fn source(&self) -> String {
        format!("{} ({})", self.opts.url, self.opts.security.text())
    }
    fn read_functions(&self) -> &'static [&'static str] {
        READ_FUNCTIONS
    }
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        Box::pin(self.collect_now())
    }
}
