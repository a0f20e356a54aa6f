//! `plcvault serve`: a read-only web dashboard over the vault.
//!
//! Server-rendered HTML, no scripts, no external resources. It holds no private key and
//! offers nothing that changes the vault or a device: GET and HEAD only. The log is
//! verified as `verify` does (incrementally) whenever the log's files change, and at least
//! every minute; a failure shows on every page. On loopback it answers anyone on this host;
//! on any other address it needs TLS and a login: a bearer token (stored as a SHA-256 in
//! the config) or a client certificate from the configured CA, or both.

mod journal;
mod pages;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::output::{Out, Outcome};
use crate::review::report::Report;

/// Requests answered at once; more wait for a slot (up to `REQUEST_TIME`).
const MAX_IN_FLIGHT: usize = 256;
/// The most one request may take, waiting for a slot included.
const REQUEST_TIME: Duration = Duration::from_secs(20);
/// The longest URL taken (path and query).
const MAX_URL: usize = 4096;
/// How long a TLS handshake may take.
const HANDSHAKE_TIME: Duration = Duration::from_secs(5);
/// Connections held at once, and from one address; more are closed at once rather than
/// queued, so a crowd of silent sockets cannot use up the process's files.
/// Fewer when the process's file limit would not leave `SPARE_FILES` for reading the
/// vault (see `connection_caps`).
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_PEER: usize = 256;
const SPARE_FILES: usize = 128;
/// How long a request's head may take to arrive; it is also how long an idle kept-alive
/// connection stays open (a client sending one byte now and then is closed after it).
const HEADER_TIME: Duration = Duration::from_secs(10);
/// hyper's read buffer cap (its floor is 8 KiB). hyper reads past it before it refuses a
/// head: measured, a head of about 112 KiB is still read, 120 KiB is a 431.
const MAX_HEAD: usize = 64 * 1024;
/// The longest one connection lives: then it is closed once the request in flight is
/// answered (or `REQUEST_TIME` and `STOP_GRACE` later, a client that does not read).
const CONNECTION_TIME: Duration = Duration::from_secs(120);
/// After SIGTERM, how long connections still open may finish.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The report is built again at least this often, changed log or not.
const MAX_REPORT_AGE: Duration = Duration::from_secs(60);

/// The strict policy every response carries: nothing but this page's own inline styles
/// and data: images; no scripts, no frames, no forms posting elsewhere.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What every page is drawn from: the report (verification included) and when it was made.
pub struct Built {
    pub report: Report,
    pub history: vault::History,
    pub at: SystemTime,
    made: Instant,
    fingerprint: u64,
}

pub struct Served {
    pub cfg: Config,
    cache: tokio::sync::Mutex<Option<Arc<Built>>>,
    slots: tokio::sync::Semaphore,
    tokens: Vec<[u8; 32]>,
    /// Names other than this host's own are answered (tokens or client certificates set).
    any_name: bool,
    /// The address it listens on, answered as a name too (127.0.0.2 is this host's as well).
    own_ip: String,
}

impl Served {
    /// The report, built again when the log's files changed or it is older than a minute.
    async fn current(self: &Arc<Self>) -> Result<Arc<Built>, String> {
        let mut cache = self.cache.lock().await;
        let me = self.clone();
        let fingerprint = tokio::task::spawn_blocking(move || log_fingerprint(&me.cfg.vault.path))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(b) = cache.as_ref()
            && b.fingerprint == fingerprint
            && b.made.elapsed() < MAX_REPORT_AGE
        {
            return Ok(b.clone());
        }
        let me = self.clone();
        let (report, history) = tokio::task::spawn_blocking(move || {
            crate::review::report::build_with_history(&me.cfg, SystemTime::now())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e:#}"))?;
        let b = Arc::new(Built {
            report,
            history,
            at: SystemTime::now(),
            made: Instant::now(),
            fingerprint,
        });
        *cache = Some(b.clone());
        Ok(b)
    }
}

/// A cheap summary of the files `verify` reads first, the vault's marker and the log's
/// (names, sizes, modification and change times, inodes): any write, append, replacement
/// or tampering changes it.
fn log_fingerprint(vault: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    file_stamp(&vault.join("VAULT")).hash(&mut h);
    let mut stack = vec![vault.join("log"), vault.join("tlog")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            dir.hash(&mut h);
            continue;
        };
        let mut names: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            e.path().hash(&mut h);
            meta_stamp(&m).hash(&mut h);
        }
    }
    h.finish()
}

/// `plcvault serve`: listens until SIGTERM or SIGINT.
///
/// Fails when the address cannot be bound, or a non-loopback address lacks TLS or tokens.
pub fn run(cfg: Config, listen: Option<SocketAddr>, out: &Out) -> Result<Outcome> {
    let addr = listen.unwrap_or(cfg.serve.listen);
    let tls = Tls::new(&cfg.serve)?;
    if !addr.ip().is_loopback() {
        if tls.is_none() {
            bail!(
                "serve on {addr}, not a loopback address, needs TLS: the pages name every device and its state\nfix: set [serve] tls-certificate and tls-key (PEM), or listen on 127.0.0.1"
            );
        }
        if cfg.serve.tokens.is_empty() && cfg.serve.client_ca.is_none() {
            bail!(
                "serve on {addr}, not a loopback address, needs authentication\nfix: run `plcvault serve token`, put the line it prints under [serve] tokens, and give the token to who may look; or set [serve] client-ca to the CA whose client certificates may look"
            );
        }
    }
    let served = Arc::new(Served {
        tokens: cfg.serve.tokens.clone(),
        // With client certificates every connection proved who it is in the handshake.
        any_name: !cfg.serve.tokens.is_empty() || cfg.serve.client_ca.is_some(),
        own_ip: addr.ip().to_string(),
        cfg,
        cache: tokio::sync::Mutex::new(None),
        slots: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
    });
    crate::runtime::block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        out.say(format!(
            "plcvault dashboard on {scheme}://{bound}/ (read-only; stop with Ctrl-C)"
        ));
        let app = router(served);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = stop_tx.send(true);
            // Held until the process ends: a dropped sender would read as "stopped" too.
            std::future::pending::<()>().await;
        });
        accept_loop(listener, tls, app, stop).await;
        Ok::<_, anyhow::Error>(())
    })??;
    Ok(Outcome::Clean)
}

/// `plcvault serve token`: a new random bearer token and the config line of its hash.
pub fn new_token(out: &Out) -> Result<Outcome> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token = vault::hash::hex(&raw);
    let hash = vault::hash::hex(&Sha256::digest(token.as_bytes()));
    out.record(
        "serve-token",
        &serde_json::json!({"token": token, "config": format!("sha256:{hash}")}),
        || {
            format!(
                "token (give it to who may look; it is not stored): {token}\nadd to [serve] tokens: \"sha256:{hash}\"\nuse: curl -H 'Authorization: Bearer {token}' https://HOST:8420/"
            )
        },
    );
    Ok(Outcome::Clean)
}

fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(pages::fleet))
        .route("/device/{name}", get(pages::device))
        .route("/device/{name}/diff", get(pages::diff))
        .route("/audit", get(pages::audit))
        .route("/metrics", get(pages::metrics))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(served.clone(), guard))
        .with_state(served)
}

/// What every request passes first: only GET and HEAD, no body, a bounded URL, the token
/// when tokens are set, a free slot and a time limit; and the headers every answer carries.
async fn guard(State(s): State<Arc<Served>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let mut note = "";
    let resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        pages::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this dashboard only reads: GET and HEAD",
        )
    } else if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().ok().and_then(|n| n.parse::<u64>().ok()) != Some(0))
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || !axum::body::HttpBody::is_end_stream(req.body())
    {
        pages::error(StatusCode::PAYLOAD_TOO_LARGE, "requests carry no body here")
    } else if req.uri().to_string().len() > MAX_URL {
        pages::error(StatusCode::URI_TOO_LONG, "the address is too long")
    } else if let Err(why) = request_host(&req) {
        pages::error(StatusCode::BAD_REQUEST, why)
    } else if !s.any_name
        && !request_host(&req).is_ok_and(|n| is_loopback_name(n) || n == Some(&s.own_ip))
    {
        // Without a login only this host's own names are answered: a page elsewhere whose
        // name an attacker points at 127.0.0.1 (DNS rebinding) gets nothing.
        pages::error(
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers only as localhost, 127.0.0.1, [::1] or the address it listens on; set [serve] tokens or client-ca to serve other names",
        )
    } else if !s.tokens.is_empty() && !authorized(&s.tokens, &req) {
        // Told apart in the journal: a probe without a token, or a guess.
        note = if req.headers().contains_key(header::AUTHORIZATION) {
            " (a token that matches none)"
        } else {
            " (no token)"
        };
        let mut r = pages::error(
            StatusCode::UNAUTHORIZED,
            "a bearer token is needed (Authorization: Bearer TOKEN); ask the administrator for one",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"plcvault\""),
        );
        r
    } else {
        match tokio::time::timeout(REQUEST_TIME, async {
            let _slot = s.slots.acquire().await.expect("never closed");
            next.run(req).await
        })
        .await
        {
            Ok(r) => return with_headers(r),
            Err(_) => pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the page took too long; try again",
            ),
        }
    };
    // What the guard refused goes to the journal: who, what and why, for the security
    // officer (a failed login is an auditable event). Method and path are cut short and
    // quoted, never raw.
    let who = peer.map_or("?".into(), |p| p.to_string());
    let path: String = path.chars().take(200).collect();
    let method: String = method.chars().take(20).collect();
    let class = if note.contains("matches none") {
        journal::Class::Credential
    } else {
        journal::Class::Noise
    };
    let why = format!("{}{}", resp.status().as_u16(), note.replace(['(', ')'], ""));
    journal::refused(
        class,
        peer.map(|p| p.ip()),
        &why,
        format_args!(
            "serve: refused {who} {method:?} {path:?}: {}{note}",
            resp.status()
        ),
    );
    with_headers(resp)
}

/// The headers every answer carries.
fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The host name the request is addressed to, without its port: the authority of an
/// absolute-form target, which wins over the Host header (RFC 9112 3.2.2), or the one Host
/// header. More than one Host header, user information or a port that is not a number is
/// a bad request (RFC 9112 3.2), so that the name checked is the name a proxy or browser
/// saw.
fn request_host(req: &Request) -> Result<Option<&str>, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    let authority = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => match header {
            Some(h) => h.to_str().map_err(|_| "the Host header is not text")?,
            // HTTP/1.1 demands one; an HTTP/1.0 request may come without.
            None if req.version() >= axum::http::Version::HTTP_11 => {
                return Err("no Host header");
            }
            None => return Ok(None),
        },
    };
    let (name, port, bracketed) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (name, port) = v6.split_once(']').ok_or("an unclosed [ in the host")?;
            (name, port, true)
        }
        None => match authority.find(':') {
            Some(i) => (&authority[..i], &authority[i..], false),
            None => (authority, "", false),
        },
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    // Brackets hold an IPv6 address and nothing else (RFC 3986 3.2.2).
    let name_ok = if bracketed {
        name.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    if !port_ok || !name_ok {
        return Err("the Host is not a host name and port");
    }
    Ok(Some(name))
}

/// Whether the name is this host's own: localhost, 127.0.0.1 or ::1.
fn is_loopback_name(name: Option<&str>) -> bool {
    name.is_some_and(|n| {
        matches!(
            n.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "::1"
        )
    })
}

/// Whether the request's bearer token hashes to one of the configured ones.
fn authorized(tokens: &[[u8; 32]], req: &Request) -> bool {
    let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 11.1).
            let (scheme, token) = v.split_once([' ', '\t'])?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
    else {
        return false;
    };
    let h: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    // Every hash compared, whatever matched first.
    tokens.iter().fold(false, |ok, t| ok | (*t == h))
}

/// The TLS side of the dashboard: its acceptor, made again whenever one of its files
/// changes, so that a certificate revoked in a new CRL is refused from the next connection
/// on, and a renewed certificate is used without a restart.
struct Tls {
    serve: crate::config::ServeConfig,
    /// The files' stamp when the acceptor was made, and the acceptor, or why changed files
    /// cannot be used (every connection is refused until they are fixed).
    made: std::sync::Mutex<(Vec<u64>, Result<tokio_rustls::TlsAcceptor, String>)>,
}

impl Tls {
    /// None without `tls-certificate`; an error when the files do not make a TLS setup.
    fn new(serve: &crate::config::ServeConfig) -> Result<Option<Arc<Tls>>> {
        if serve.tls.is_none() {
            return Ok(None);
        }
        let stamp = Self::stamp(serve);
        let acceptor = tls_config(serve)?;
        Ok(Some(Arc::new(Tls {
            serve: serve.clone(),
            made: std::sync::Mutex::new((stamp, Ok(acceptor))),
        })))
    }

    /// The files the TLS setup is made of: certificate, key, client CA and CRL.
    fn files(serve: &crate::config::ServeConfig) -> Vec<&Path> {
        let (cert, key) = serve.tls.as_ref().expect("called with TLS set");
        let mut files = vec![cert.as_path(), key.as_path()];
        files.extend(serve.client_ca.as_deref());
        files.extend(serve.client_crl.as_deref());
        files
    }

    fn stamp(serve: &crate::config::ServeConfig) -> Vec<u64> {
        Self::files(serve).into_iter().map(file_stamp).collect()
    }

    /// The acceptor for a new connection, made again first if one of its files changed:
    /// a renewed certificate or a newly published CRL counts from the next connection on.
    fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = Self::stamp(&self.serve);
        if stamp != made.0 {
            let files = Self::files(&self.serve)
                .iter()
                .zip(stamp.iter().zip(&made.0))
                .filter(|(_, (new, old))| new != old)
                .map(|(f, _)| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            made.0 = stamp;
            made.1 = match tls_config(&self.serve) {
                Ok(a) => {
                    // A list's signature is checked at each handshake, not here.
                    eprintln!("[serve] TLS file(s) changed, read again: {files}");
                    Ok(a)
                }
                Err(e) => {
                    eprintln!(
                        "{e:#}\nuntil it is fixed, every connection to the dashboard is refused"
                    );
                    Err(format!("{e:#}").replace('\n', "; "))
                }
            };
        }
        made.1.clone()
    }
}

/// A summary of a file's identity and contents' age: any replacement or write changes it.
fn file_stamp(path: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match std::fs::metadata(path) {
        Ok(m) => meta_stamp(&m).hash(&mut h),
        Err(e) => e.kind().to_string().hash(&mut h),
    }
    h.finish()
}

/// What of a file's metadata any write or replacement moves: size, modification and
/// change times, inode. The change time matters: an edit that puts size and modification
/// time back (`touch -r`) still moves it, and no caller can set it.
fn meta_stamp(m: &std::fs::Metadata) -> (u64, i64, i64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// The TLS identity, and with `client-ca` the client certificates it demands: a chain to
/// that CA, valid now, for client authentication (webpki's checks), and with `client-crl`
/// revoked by none of the CA's lists, which must be current; or no handshake.
fn tls_config(serve: &crate::config::ServeConfig) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
    let (cert, key) = serve.tls.as_ref().expect("called with TLS set");
    let (cert, key) = (cert.as_path(), key.as_path());
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "[serve] tls-certificate {}: {e}\nfix: give the certificate chain as PEM",
                cert.display()
            )
        })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!(
            "[serve] tls-key {}: {e}\nfix: give the certificate's private key as PEM",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?;
    let builder = match serve.client_ca.as_deref() {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let fix = "fix: give the CA certificate(s) that sign the dashboard's client certificates, as PEM";
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("[serve] client-ca {}: {e}\n{fix}", ca.display()))?;
            if cas.is_empty() {
                bail!(
                    "[serve] client-ca {}: no certificate in it\n{fix}",
                    ca.display()
                );
            }
            for c in cas {
                roots.add(c).map_err(|e| {
                    anyhow::anyhow!("[serve] client-ca {}: {e}\n{fix}", ca.display())
                })?;
            }
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if let Some(crl) = serve.client_crl.as_deref() {
                let fix =
                    "fix: give the CA's certificate revocation list(s) as PEM (openssl ca -gencrl)";
                let crls = CertificateRevocationListDer::pem_file_iter(crl)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        anyhow::anyhow!("[serve] client-crl {}: {e}\n{fix}", crl.display())
                    })?;
                if crls.is_empty() {
                    bail!(
                        "[serve] client-crl {}: no revocation list in it\n{fix}",
                        crl.display()
                    );
                }
                // A certificate whose CA has no list here, or whose list is past its next
                // update, is refused too: what it does not know it does not let in.
                verifier = verifier.with_crls(crls).enforce_revocation_expiration();
            }
            let verifier = verifier.build().map_err(|e| match (&e, &serve.client_crl) {
                (rustls::server::VerifierBuilderError::InvalidCrl(_), Some(crl)) => anyhow::anyhow!(
                    "[serve] client-crl {}: {e}\nfix: give the CA's certificate revocation list(s) as PEM (openssl ca -gencrl)",
                    crl.display()
                ),
                _ => anyhow::anyhow!("[serve] client-ca {}: {e}\n{fix}", ca.display()),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .context("[serve] tls-certificate and tls-key do not make a TLS identity")?;
    // No session resumption: a resumed session skips the client certificate's checks, so
    // a certificate that has since expired, or a list past its next update, would still
    // let in whoever kept the session. Every connection makes a full handshake.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts until stopped, each connection in its own task under the caps; then gives the
/// connections still open `STOP_GRACE` to finish.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<Tls>>,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (max_conns, max_per_peer) = connection_caps();
    let conns = Arc::new(tokio::sync::Semaphore::new(max_conns));
    let peers = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let mut over = journal::OverCap::default();
    let mut tell = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (tcp, peer) = tokio::select! {
            _ = tell.tick() => {
                over.tick(false);
                journal::roll(false);
                continue;
            }
            r = listener.accept() => match r {
                Ok(c) => c,
                // Out of files or the like: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        // Never wait for a slot: closed at once, so the accepting goes on.
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            over.closed(peer, "connections", max_conns);
            continue;
        };
        let Some(slot) = PeerSlot::take(&peers, peer.ip(), max_per_peer) else {
            over.closed(peer, "connections from one address", max_per_peer);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let tls = match &tls {
            None => None,
            Some(t) => match t.acceptor() {
                Ok(a) => Some((a, t.serve.client_crl.clone())),
                // The TLS files changed and cannot be used: nobody is let in.
                Err(why) => {
                    journal::always(
                        "tls-unusable",
                        Duration::from_secs(60),
                        format_args!(
                            "serve: the TLS files cannot be used ({why}): every connection is refused until they are fixed"
                        ),
                    );
                    journal::refused(
                        journal::Class::Noise,
                        Some(peer.ip()),
                        "TLS files unusable",
                        format_args!(
                            "serve: refused {peer}: the TLS files cannot be used (see above)"
                        ),
                    );
                    continue;
                }
            },
        };
        let (app, stop) = (app.clone(), stop.clone());
        tokio::spawn(async move {
            let _held = (permit, slot);
            match tls {
                None => connection(tcp, peer, app, stop).await,
                Some((tls, crl)) => {
                    match tokio::time::timeout(HANDSHAKE_TIME, tls.accept(tcp)).await {
                        Ok(Ok(io)) => connection(io, peer, app, stop).await,
                        // A refused client certificate among them: the journal says which.
                        Ok(Err(e)) => {
                            let (class, why, expired_list) = journal::handshake_failure(&e);
                            if expired_list && let Some(crl) = crl {
                                journal::always(
                                    "crl-expired",
                                    Duration::from_secs(60),
                                    format_args!(
                                        "serve: [serve] client-crl {} is past its next update: every client certificate is refused until a fresh list is published (openssl ca -gencrl)",
                                        crl.display()
                                    ),
                                );
                            }
                            journal::refused(
                                class,
                                Some(peer.ip()),
                                &why,
                                format_args!("serve: TLS handshake with {peer} failed: {e}"),
                            );
                        }
                        Err(_) => journal::refused(
                            journal::Class::Noise,
                            Some(peer.ip()),
                            "TLS handshake timeout",
                            format_args!(
                                "serve: TLS handshake with {peer} did not finish within {} s",
                                HANDSHAKE_TIME.as_secs()
                            ),
                        ),
                    }
                }
            }
        });
    }
    let _ = tokio::time::timeout(STOP_GRACE, conns.acquire_many(max_conns as u32)).await;
    // No count is lost to a restart.
    over.tick(true);
    journal::roll(true);
}

/// The connections held at once, and from one address: `MAX_CONNECTIONS` and
/// `MAX_PER_PEER`, or fewer when the file limit is low. The soft limit is raised first,
/// as far as the hard limit allows (the packaged unit sets `LimitNOFILE` instead).
fn connection_caps() -> (usize, usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = (MAX_CONNECTIONS + SPARE_FILES) as u64;
    if let Some(soft) = limit.current
        && soft < want
    {
        let raised = limit.maximum.map_or(want, |hard| hard.min(want));
        let new = Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, new).is_ok() {
            limit.current = Some(raised);
        }
    }
    // None is no limit at all.
    let files = limit.current.map_or(usize::MAX, |n| n as usize);
    let conns = files.saturating_sub(SPARE_FILES).clamp(8, MAX_CONNECTIONS);
    (conns, MAX_PER_PEER.min(conns / 2).max(1))
}

/// One connection: HTTP/1.1 with a header-read timeout and a lifetime, closed gracefully
/// when the dashboard stops.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIME)
        .max_buf_size(MAX_HEAD);
    let conn = http.serve_connection(
        hyper_util::rt::TokioIo::new(io),
        hyper_util::service::TowerToHyperService::new(app.layer(axum::Extension(Peer(peer)))),
    );
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => {}
        _ = tokio::time::sleep(CONNECTION_TIME) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(REQUEST_TIME + STOP_GRACE, conn).await;
}

/// The address a request came from, put in its extensions by the connection.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// A connection counted against its peer's address, uncounted when dropped.
struct PeerSlot {
    peers: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PeerSlot {
    fn take(
        peers: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        max: usize,
    ) -> Option<Self> {
        let mut held = peers.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: peers.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// The query of the diff page: `snapshot` (default the newest) and `against` (default
/// the baseline).
#[derive(serde::Deserialize, Default)]
pub struct DiffQuery {
    pub snapshot: Option<String>,
    pub against: Option<String>,
}

/// The fleet page's filters.
#[derive(serde::Deserialize, Default)]
pub struct FleetQuery {
    pub tag: Option<String>,
    pub alarm: Option<String>,
}

// Re-exported for the pages.
pub(crate) type Shared = State<Arc<Served>>;
// A path or query axum cannot read comes as the rejection, for the dashboard's own page.
pub(crate) type Name = Result<UrlPath<String>, axum::extract::rejection::PathRejection>;
pub(crate) type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}
