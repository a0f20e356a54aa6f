//! `plcvault serve`: a read-only web dashboard over the vault.
//!
//! Server-rendered HTML, no scripts, no external resources. It holds no private key and
//! offers nothing that changes the vault or a device: GET and HEAD only. The log is
//! verified as `verify` does (incrementally) whenever the log's files change, and at least
//! every minute; a failure shows on every page. On loopback it answers anyone on this host;
//! on any other address it needs TLS and a bearer token (stored as a SHA-256 in the config).

mod pages;

use std::net::SocketAddr;
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
/// How long a TLS handshake may take, and how many may run at once (more connections
/// are closed at once rather than queued behind them).
const HANDSHAKE_TIME: Duration = Duration::from_secs(5);
const MAX_HANDSHAKES: usize = 1024;
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
            let report = crate::review::report::build(&me.cfg, SystemTime::now())?;
            // The history the pages draw from, read with the report: a page never shows
            // a newer reading of the log than the verification above it.
            let vault = me.cfg.vault_for_reading()?;
            let history = me.cfg.history(&vault)?;
            Ok::<_, anyhow::Error>((report, history))
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

/// A cheap summary of the log's files (names, sizes, modification times): any write,
/// append or tampering changes it.
fn log_fingerprint(vault: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
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
            m.len().hash(&mut h);
            m.modified().ok().hash(&mut h);
        }
    }
    h.finish()
}

/// `plcvault serve`: listens until SIGTERM or SIGINT.
///
/// Fails when the address cannot be bound, or a non-loopback address lacks TLS or tokens.
pub fn run(cfg: Config, listen: Option<SocketAddr>, out: &Out) -> Result<Outcome> {
    let addr = listen.unwrap_or(cfg.serve.listen);
    let tls = match &cfg.serve.tls {
        Some((cert, key)) => Some(tls_config(cert, key)?),
        None => None,
    };
    if !addr.ip().is_loopback() {
        if tls.is_none() {
            bail!(
                "serve on {addr}, not a loopback address, needs TLS: the pages name every device and its state\nfix: set [serve] tls-certificate and tls-key (PEM), or listen on 127.0.0.1"
            );
        }
        if cfg.serve.tokens.is_empty() {
            bail!(
                "serve on {addr}, not a loopback address, needs authentication\nfix: run `plcvault serve token`, put the line it prints under [serve] tokens, and give the token to who may look"
            );
        }
    }
    let served = Arc::new(Served {
        tokens: cfg.serve.tokens.clone(),
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
        let (stopped_tx, mut stopped) = tokio::sync::watch::channel(false);
        let stop = async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = stopped_tx.send(true);
        };
        let serving = async {
            match tls {
                None => axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                    .context("the dashboard stopped"),
                Some(tls) => axum::serve(TlsListener::new(listener, tls), app)
                    .with_graceful_shutdown(stop)
                    .await
                    .context("the dashboard stopped"),
            }
        };
        // Stopped: connections still open get a few seconds, not forever.
        let grace = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        tokio::select! {
            r = serving => r?,
            _ = grace => {}
        }
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
        .fallback(|| async { pages::error(StatusCode::NOT_FOUND, "no such page") })
        .layer(axum::middleware::from_fn_with_state(served.clone(), guard))
        .with_state(served)
}

/// What every request passes first: only GET and HEAD, no body, a bounded URL, the token
/// when tokens are set, a free slot and a time limit; and the headers every answer carries.
async fn guard(State(s): State<Arc<Served>>, req: Request, next: Next) -> Response {
    let mut resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        pages::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this dashboard only reads: GET and HEAD",
        )
    } else if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v != "0")
        || req.headers().contains_key(header::TRANSFER_ENCODING)
        || !axum::body::HttpBody::is_end_stream(req.body())
    {
        pages::error(StatusCode::PAYLOAD_TOO_LARGE, "requests carry no body here")
    } else if req.uri().to_string().len() > MAX_URL {
        pages::error(StatusCode::URI_TOO_LONG, "the address is too long")
    } else if s.tokens.is_empty() && !local_host(&req) {
        // Without tokens only this host's own names are answered: a page elsewhere whose
        // name an attacker points at 127.0.0.1 (DNS rebinding) gets nothing.
        pages::error(
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers only as localhost, 127.0.0.1 or [::1]; set [serve] tokens to serve other names",
        )
    } else if !s.tokens.is_empty() && !authorized(&s.tokens, &req) {
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
            Ok(r) => r,
            Err(_) => pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the page took too long; try again",
            ),
        }
    };
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

/// Whether the request names this host by a loopback name (the Host header, or the
/// authority of an HTTP/2 request).
fn local_host(req: &Request) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1"
    )
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

fn tls_config(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("[serve] tls-certificate and tls-key do not make a TLS identity")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// TCP connections, each handshaken in its own task (a slow client holds up no one),
/// handed to axum once TLS is up.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let local = listener.local_addr().expect("bound");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // Never wait for a slot: a crowd of silent sockets must not hold up the
                // accepting of everyone after them.
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    drop(tcp);
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(tcp)).await
                    {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { rx, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
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
pub(crate) type Name = UrlPath<String>;
pub(crate) type Q<T> = Query<T>;
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}
