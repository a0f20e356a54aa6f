//! A minimal, read-only FTP client (RFC 959, EPSV of RFC 2428, MLSD of RFC 3659, explicit
//! TLS of RFC 4217), blocking, on the collector's worker threads. It can send only the
//! commands in `ALLOWED`; there is no code path for STOR, DELE, RNFR/RNTO, MKD, RMD, SITE
//! or APPE. Every command waits for its pacer slot; every read and write has a timeout;
//! replies and listings are read line by line with length limits.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::pace::Pacer;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// The only commands this client sends.
pub const ALLOWED: &[&str] = &[
    "USER", "PASS", "AUTH", "PBSZ", "PROT", "FEAT", "OPTS", "TYPE", "PWD", "CWD", "PASV", "EPSV",
    "LIST", "MLSD", "NLST", "SIZE", "MDTM", "RETR", "QUIT",
];

/// The most bytes of one folder's listing held.
pub const MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;

/// The longest reply or listing line read (a longer one is garbage).
pub const MAX_LINE: usize = 8192;
/// The most lines one multi-line reply may have.
const MAX_REPLY_LINES: usize = 1000;

/// Why a command failed, sorted as the adapter reports it.
#[derive(Clone, Debug)]
pub enum FtpError {
    /// Connecting, reading or writing failed (or timed out: `timed_out`).
    Io { why: String, timed_out: bool },
    /// The server answered with a refusal (4xx/5xx) to `command`.
    Refused {
        command: String,
        code: u32,
        text: String,
    },
    /// Login failed (530 and friends to USER/PASS).
    Auth(String),
    /// The server's certificate is not the pinned one.
    Identity(String),
    /// The server sent what the protocol does not allow (a bad reply, a too long line).
    Protocol(String),
    /// A listing over the bounds (`max-files`, 16 MiB); the session must be dropped.
    TooLarge(String),
}

impl std::fmt::Display for FtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FtpError::Io { why, .. } => write!(f, "{why}"),
            FtpError::Refused {
                command,
                code,
                text,
            } => {
                write!(f, "the server answered {code} to {command}: {text}")
            }
            FtpError::Auth(w)
            | FtpError::Identity(w)
            | FtpError::Protocol(w)
            | FtpError::TooLarge(w) => write!(f, "{w}"),
        }
    }
}

impl FtpError {
    fn io(e: io::Error) -> FtpError {
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<PinMismatch>()) {
            return FtpError::Identity(inner.0.clone());
        }
        FtpError::Io {
            why: if timed_out {
                "the server did not answer in time".into()
            } else {
                format!("connection failed: {e}")
            },
            timed_out,
        }
    }

    /// The same error, for the files after the one that met it.
    pub fn again(&self) -> FtpError {
        match self {
            FtpError::Io { why, timed_out } => FtpError::Io {
                why: format!(
                    "{why} (the device stopped answering; not tried again in this collection)"
                ),
                timed_out: *timed_out,
            },
            other => other.clone(),
        }
    }

    /// True when trying again on a new connection may help.
    pub fn retryable(&self) -> bool {
        matches!(self, FtpError::Io { .. })
            || matches!(self, FtpError::Refused { code, .. } if (400..500).contains(code))
    }
}

/// How the server's TLS certificate is trusted.
#[derive(Clone, Debug)]
pub enum TlsTrust {
    /// The SHA-256 of the certificate (DER), 32 bytes.
    Pinned([u8; 32]),
    /// Certificates of these authorities (a CA file), checked with the host name.
    Authorities(Vec<CertificateDer<'static>>),
}

/// Where the password comes from: read when connecting, never kept in the config's text,
/// never printed.
#[derive(Clone)]
pub enum Password {
    /// `anonymous` logins: the conventional e-mail-like password.
    Anonymous,
    File(std::path::PathBuf),
    Env(String),
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Anonymous => f.write_str("Anonymous"),
            Password::File(p) => write!(f, "File({})", p.display()),
            Password::Env(v) => write!(f, "Env({v})"),
        }
    }
}

impl Password {
    /// The password now.
    ///
    /// Fails (as a login failure) when the file cannot be read or the variable is unset.
    pub fn read(&self) -> Result<String, FtpError> {
        match self {
            Password::Anonymous => Ok("plcvault@".into()),
            Password::File(p) => {
                let bytes = vault::fsread::read_regular(p, 4096).map_err(|e| {
                    FtpError::Auth(format!(
                        "cannot read the password file {}: {e}",
                        p.display()
                    ))
                })?;
                String::from_utf8(bytes)
                    .map(|t| t.trim_end_matches(['\r', '\n']).to_string())
                    .map_err(|_| {
                        FtpError::Auth(format!("the password file {} is not text", p.display()))
                    })
            }
            Password::Env(v) => std::env::var(v).map_err(|_| {
                FtpError::Auth(format!(
                    "the environment variable `{v}` (password-env) is not set"
                ))
            }),
        }
    }
}

/// The connection settings.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub address: String,
    pub tls: Option<TlsTrust>,
    pub user: String,
    pub password: Password,
    pub timeout: Duration,
}

/// A stream: plain TCP, or TLS over it.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// While the control connection is handed to TLS.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is closed")
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Closed => Err(closed()),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
            Conn::Closed => Err(closed()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
            Conn::Closed => Err(closed()),
        }
    }
}

/// A reply: code and text (lines joined).
#[derive(Debug)]
pub struct Reply {
    pub code: u32,
    pub text: String,
}

/// An open control connection, logged in.
pub struct Session {
    ctrl: BufReader<Conn>,
    peer: IpAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    timeout: Duration,
    /// Commands sent, for the record.
    pub commands: u64,
    /// The device's pacer, shared by every connection to it (a reconnect does not reset it).
    pacer: Arc<std::sync::Mutex<crate::pace::Pacer>>,
    pub features: Vec<String>,
}

/// SHA-256 of a certificate, as `AA:BB:...` (how `openssl x509 -fingerprint -sha256` prints it).
pub fn fingerprint(cert: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts exactly the pinned certificate (its handshake signature still checked).
#[derive(Debug)]
struct PinVerifier {
    pin: [u8; 32],
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        let got: [u8; 32] = sha2::Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has SHA-256 fingerprint {}, not the pinned one",
                fingerprint(end_entity.as_ref())
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn tls_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>, FtpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| FtpError::Protocol(format!("TLS setup: {e}")))?;
    let config = match trust {
        TlsTrust::Pinned(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinVerifier {
                pin: *pin,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        TlsTrust::Authorities(certs) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .map_err(|e| FtpError::Protocol(format!("CA file: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, FtpError> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| FtpError::Io {
        timed_out: e.kind() == io::ErrorKind::TimedOut,
        why: format!("cannot connect to {addr}: {e}"),
    })?;
    s.set_read_timeout(Some(timeout)).map_err(FtpError::io)?;
    s.set_write_timeout(Some(timeout)).map_err(FtpError::io)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn wrap_tls(
    tcp: TcpStream,
    config: &Arc<rustls::ClientConfig>,
    name: &ServerName<'static>,
) -> Result<Conn, FtpError> {
    let conn = rustls::ClientConnection::new(config.clone(), name.clone())
        .map_err(|e| FtpError::Protocol(format!("TLS: {e}")))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Complete the handshake now, so that a certificate mismatch is told as such.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("not the pinned one") || msg.contains("certificate") {
                FtpError::Identity(msg)
            } else {
                FtpError::io(e)
            }
        })?;
    }
    Ok(Conn::Tls(Box::new(s)))
}

/// Reads one line (without CRLF), at most `MAX_LINE` bytes.
pub fn read_line(r: &mut impl BufRead) -> Result<Option<String>, FtpError> {
    read_line_by(r, None)
}

/// Reads one line, giving up at `deadline` (a server that sends a byte now and then
/// cannot keep a reply open for hours: each read also has the socket's timeout).
pub fn read_line_by(
    r: &mut impl BufRead,
    deadline: Option<Instant>,
) -> Result<Option<String>, FtpError> {
    let mut buf = Vec::new();
    loop {
        if deadline.is_some_and(|d| Instant::now() > d) {
            return Err(FtpError::Io {
                why: "the server did not finish a line in time".into(),
                timed_out: true,
            });
        }
        let chunk = r.fill_buf().map_err(FtpError::io)?;
        if chunk.is_empty() {
            break;
        }
        let room = MAX_LINE + 2 - buf.len();
        let take = chunk.len().min(room);
        match chunk[..take].iter().position(|&b| b == b'\n') {
            Some(i) => {
                buf.extend_from_slice(&chunk[..=i]);
                r.consume(i + 1);
                break;
            }
            None => {
                buf.extend_from_slice(&chunk[..take]);
                r.consume(take);
                if buf.len() >= MAX_LINE + 2 {
                    break;
                }
            }
        }
    }
    let n = buf.len();
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(FtpError::Protocol(format!(
            "a line longer than {MAX_LINE} bytes, or cut"
        )));
    }
    buf.pop();
    if buf.ends_with(b"\r") {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| FtpError::Protocol("a line that is not UTF-8".into()))
}

impl Session {
    /// Connects, reads the greeting, goes to TLS (when asked), logs in, binary mode.
    ///
    /// Fails on a refused connection, a certificate that is not the pinned one, a failed
    /// login, or a server that will not do TLS.
    pub fn open(
        ep: &Endpoint,
        pacer: Arc<std::sync::Mutex<crate::pace::Pacer>>,
    ) -> Result<Session, FtpError> {
        let addr = ep
            .address
            .to_socket_addrs()
            .map_err(|e| FtpError::Io {
                why: format!("cannot resolve {}: {e}", ep.address),
                timed_out: false,
            })?
            .next()
            .ok_or_else(|| FtpError::Io {
                why: format!("{} resolves to no address", ep.address),
                timed_out: false,
            })?;
        let host = ep
            .address
            .rsplit_once(':')
            .map_or(&ep.address[..], |(h, _)| h);
        let server_name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
            .map_err(|_| FtpError::Protocol(format!("`{host}` is not a host name")))?;
        let tcp = connect_tcp(addr, ep.timeout)?;
        let mut s = Session {
            ctrl: BufReader::new(Conn::Plain(tcp)),
            peer: addr.ip(),
            tls: None,
            server_name,
            timeout: ep.timeout,
            commands: 0,
            pacer,
            features: Vec::new(),
        };
        let hello = s.reply()?;
        if hello.code != 220 {
            return Err(FtpError::Refused {
                command: "(greeting)".into(),
                code: hello.code,
                text: hello.text,
            });
        }
        if let Some(trust) = &ep.tls {
            let config = tls_config(trust)?;
            s.expect("AUTH", "TLS", &[234])?;
            // Nothing may follow the 234 in plain text: it would be read as TLS replies.
            if !s.ctrl.buffer().is_empty() {
                return Err(FtpError::Protocol(
                    "the server sent more after accepting AUTH TLS".into(),
                ));
            }
            let Conn::Plain(tcp) = std::mem::replace(s.ctrl.get_mut(), Conn::Closed) else {
                return Err(FtpError::Protocol(
                    "the control connection is not plain".into(),
                ));
            };
            *s.ctrl.get_mut() = wrap_tls(tcp, &config, &s.server_name)?;
            s.tls = Some(config);
        }
        let user = s.command("USER", &ep.user)?;
        match user.code {
            230 => {}
            331 | 332 => {
                let password = ep.password.read()?;
                let pass = s.command("PASS", &password)?;
                if !(200..300).contains(&pass.code) {
                    return Err(FtpError::Auth(format!(
                        "the server refused the login of `{}` ({} {})",
                        ep.user, pass.code, pass.text
                    )));
                }
            }
            c => {
                return Err(FtpError::Auth(format!(
                    "the server refused user `{}` ({c} {})",
                    ep.user, user.text
                )));
            }
        }
        if s.tls.is_some() {
            s.expect("PBSZ", "0", &[200])?;
            s.expect("PROT", "P", &[200])?;
        }
        let feat = s.command("FEAT", "")?;
        if feat.code == 211 {
            s.features = feat
                .text
                .lines()
                .skip(1)
                .map(|l| l.trim().to_ascii_uppercase())
                .filter(|l| !l.is_empty() && !l.starts_with("211"))
                .collect();
        }
        if s.has("UTF8") {
            let _ = s.command("OPTS", "UTF8 ON")?;
        }
        s.expect("TYPE", "I", &[200])?;
        Ok(s)
    }

    pub fn has(&self, feature: &str) -> bool {
        self.features
            .iter()
            .any(|f| f == feature || f.starts_with(&format!("{feature} ")))
    }

    /// Reads one reply (multi-line replies joined), bounded.
    fn reply(&mut self) -> Result<Reply, FtpError> {
        let deadline = Some(Instant::now() + self.timeout);
        let first = read_line_by(&mut self.ctrl, deadline)?
            .ok_or_else(|| FtpError::io(io::Error::from(io::ErrorKind::UnexpectedEof)))?;
        let code: u32 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| FtpError::Protocol(format!("not an FTP reply: `{first}`")))?;
        let mut text = first.get(4..).unwrap_or("").to_string();
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            for _ in 0..MAX_REPLY_LINES {
                let line = read_line_by(&mut self.ctrl, deadline)?
                    .ok_or_else(|| FtpError::io(io::Error::from(io::ErrorKind::UnexpectedEof)))?;
                let last = line.starts_with(&end) || line == code.to_string();
                text.push('\n');
                text.push_str(&line);
                if last {
                    return Ok(Reply { code, text });
                }
            }
            return Err(FtpError::Protocol(format!(
                "a reply of more than {MAX_REPLY_LINES} lines"
            )));
        }
        Ok(Reply { code, text })
    }

    /// Sends one allowed command (paced) and reads its reply.
    fn command(&mut self, cmd: &str, arg: &str) -> Result<Reply, FtpError> {
        assert!(
            ALLOWED.contains(&cmd),
            "FTP collectors send read commands only"
        );
        if arg.contains(['\r', '\n']) {
            return Err(FtpError::Protocol(format!(
                "refusing to send a {cmd} argument with a line break"
            )));
        }
        self.pacer.lock().expect("pacer lock").wait_blocking();
        self.commands += 1;
        let line = if arg.is_empty() {
            format!("{cmd}\r\n")
        } else {
            format!("{cmd} {arg}\r\n")
        };
        let w = self.ctrl.get_mut();
        w.write_all(line.as_bytes())
            .and_then(|_| w.flush())
            .map_err(FtpError::io)?;
        self.reply()
    }

    fn expect(&mut self, cmd: &str, arg: &str, ok: &[u32]) -> Result<Reply, FtpError> {
        let r = self.command(cmd, arg)?;
        if ok.contains(&r.code) {
            Ok(r)
        } else {
            Err(FtpError::Refused {
                command: cmd.into(),
                code: r.code,
                text: r.text,
            })
        }
    }

    /// Opens a passive data connection: EPSV, else PASV, always to the control
    /// connection's peer (the address a PASV reply names is ignored, as curl does).
    fn data(&mut self) -> Result<TcpStream, FtpError> {
        let port = match self.command("EPSV", "")? {
            r if r.code == 229 => r
                .text
                .split('|')
                .nth(3)
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| FtpError::Protocol(format!("bad EPSV reply `{}`", r.text)))?,
            _ => {
                let r = self.expect("PASV", "", &[227])?;
                let inner = r
                    .text
                    .split_once('(')
                    .and_then(|(_, t)| t.split_once(')'))
                    .map(|(t, _)| t)
                    .ok_or_else(|| FtpError::Protocol(format!("bad PASV reply `{}`", r.text)))?;
                let n: Vec<u16> = inner
                    .split(',')
                    .filter_map(|x| x.trim().parse().ok())
                    .collect();
                if n.len() != 6 || n[4] > 255 || n[5] > 255 {
                    return Err(FtpError::Protocol(format!("bad PASV reply `{}`", r.text)));
                }
                n[4] * 256 + n[5]
            }
        };
        connect_tcp(SocketAddr::new(self.peer, port), self.timeout)
    }

    fn data_conn(&mut self, tcp: TcpStream) -> Result<Conn, FtpError> {
        match &self.tls {
            Some(cfg) => {
                let cfg = cfg.clone();
                let name = self.server_name.clone();
                wrap_tls(tcp, &cfg, &name)
            }
            None => Ok(Conn::Plain(tcp)),
        }
    }

    /// Starts a transfer: data connection, then `cmd path`; the server's 125/150.
    pub fn start(&mut self, cmd: &str, path: &str) -> Result<Conn, FtpError> {
        let tcp = self.data()?;
        let r = self.command(cmd, path)?;
        if r.code != 125 && r.code != 150 {
            return Err(FtpError::Refused {
                command: format!("{cmd} {path}"),
                code: r.code,
                text: r.text,
            });
        }
        self.data_conn(tcp)
    }

    /// Ends a transfer: reads the server's final reply (226/250 when complete).
    pub fn finish(&mut self, what: &str) -> Result<(), FtpError> {
        let r = self.reply()?;
        if r.code == 226 || r.code == 250 {
            Ok(())
        } else {
            Err(FtpError::Refused {
                command: what.into(),
                code: r.code,
                text: r.text,
            })
        }
    }

    /// The lines of a listing of `dir` (MLSD when the server has it, else LIST), at most
    /// `max_lines` of them.
    pub fn list(&mut self, dir: &str, max_lines: usize) -> Result<(bool, Vec<String>), FtpError> {
        let mlsd = self.has("MLST");
        let cmd = if mlsd { "MLSD" } else { "LIST" };
        let conn = self.start(cmd, dir)?;
        let mut r = BufReader::new(conn);
        let mut lines = Vec::new();
        let mut bytes = 0usize;
        let deadline = Some(Instant::now() + self.timeout * 60);
        while let Some(l) = read_line_by(&mut r, deadline)? {
            bytes += l.len();
            if lines.len() >= max_lines || bytes > MAX_LISTING_BYTES {
                // The listing was not read to its end: this session is out of step.
                return Err(FtpError::TooLarge(format!(
                    "the listing of `{dir}` has more than {max_lines} entries or {MAX_LISTING_BYTES} bytes"
                )));
            }
            lines.push(l);
        }
        drop(r);
        self.finish(&format!("{cmd} {dir}"))?;
        Ok((mlsd, lines))
    }

    /// QUIT, politely and briefly.
    pub fn quit(mut self) {
        let _ = self.ctrl.get_mut().write_all(b"QUIT\r\n");
        self.commands += 1;
        let _ = self.reply();
    }
}

/// One entry of a listing.
#[derive(Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub dir: bool,
    pub size: Option<u64>,
    /// MLSD `modify` (YYYYMMDDHHMMSS[.sss]), when given.
    pub modify: Option<String>,
    /// A link or something else that is neither file nor folder.
    pub other: bool,
}

/// Parses one MLSD line (`fact=value;...; name`).
pub fn parse_mlsd(line: &str) -> Option<Listed> {
    let (facts, name) = line.split_once(' ')?;
    let mut l = Listed {
        name: name.to_string(),
        dir: false,
        size: None,
        modify: None,
        other: false,
    };
    let mut kind = None;
    for f in facts.split(';').filter(|f| !f.is_empty()) {
        let (k, v) = f.split_once('=')?;
        match k.to_ascii_lowercase().as_str() {
            "type" => kind = Some(v.to_ascii_lowercase()),
            "size" => l.size = v.parse().ok(),
            "modify" => l.modify = Some(v.to_string()),
            _ => {}
        }
    }
    match kind.as_deref() {
        Some("cdir") | Some("pdir") => return None,
        Some("dir") => l.dir = true,
        Some("file") => {}
        _ => l.other = true,
    }
    Some(l)
}

/// Parses one Unix `ls -l` style LIST line.
pub fn parse_list(line: &str) -> Option<Listed> {
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..8 {
        let t = rest.trim_start();
        let end = t.find(' ')?;
        fields.push(&t[..end]);
        rest = &t[end..];
    }
    let name = rest.strip_prefix(' ')?.to_string();
    let perms = fields[0];
    if name == "." || name == ".." || perms.len() < 10 {
        return None;
    }
    Some(Listed {
        dir: perms.starts_with('d'),
        other: !perms.starts_with(['-', 'd']),
        size: fields[4].parse().ok(),
        modify: None,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_and_hostile_lines_are_not_names_of_other_places() {
        let l = parse_mlsd("type=file;size=12;modify=20261201093000; my recipe.csv").unwrap();
        assert_eq!(
            (l.name.as_str(), l.size, l.dir, l.other),
            ("my recipe.csv", Some(12), false, false)
        );
        assert!(parse_mlsd("type=cdir; .").is_none());
        assert!(parse_mlsd("type=OS.unix=symlink; link").unwrap().other);
        let l =
            parse_list("-rw-r--r--   1 owner group   1234 Dec  1 09:30 two  spaces.txt").unwrap();
        assert_eq!((l.name.as_str(), l.size), ("two  spaces.txt", Some(1234)));
        assert!(
            parse_list("drwxr-xr-x 2 o g 4096 Dec 1 09:30 sub")
                .unwrap()
                .dir
        );
        assert!(
            parse_list("lrwxrwxrwx 1 o g 4 Dec 1 09:30 l -> x")
                .unwrap()
                .other
        );
        assert!(parse_list("total 12").is_none());
        // A name that tries to leave the root is returned as a name: the collector checks it.
        assert_eq!(
            parse_mlsd("type=file;size=1; ../etc/passwd").unwrap().name,
            "../etc/passwd"
        );
    }

    #[test]
    fn lines_are_bounded() {
        let long = format!("{}\r\n", "x".repeat(MAX_LINE + 10));
        let mut r = BufReader::new(long.as_bytes());
        assert!(matches!(read_line(&mut r), Err(FtpError::Protocol(_))));
        let mut r = BufReader::new(&b"220 hi\r\n"[..]);
        assert_eq!(read_line(&mut r).unwrap().unwrap(), "220 hi");
    }
}
