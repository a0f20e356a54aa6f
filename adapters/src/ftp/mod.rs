//! The `ftp` adapter: HMIs, PLCs and panels that expose their project, recipe and log
//! folders over FTP, explicit FTPS or SFTP (Schneider M340/M580, Siemens HMI panels,
//! Beckhoff, B&R, many drives). Read-only: the FTP client (`client`) can send only the
//! commands in `client::ALLOWED`, the SFTP client (`sftp`) only the requests in
//! `sftp::ALLOWED`. One connection per device, one transfer at a time, every command or
//! request paced. Files are streamed into the vault as they are stored, never held whole;
//! a file whose length differs from its listing is fetched again, then marked unstable.
//! The tree walk and the checks on names are the same for both protocols (`Remote`).

use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::files::Selection;
use crate::{
    AdapterError, ArtifactKind, ArtifactMeta, ArtifactSource, BoxFuture, Collection, Collector,
    OpenStream, SourceData,
};

pub mod client;
pub(crate) mod settings;
#[cfg(feature = "sftp")]
pub mod sftp;

use client::{Conn, Endpoint, FtpError, Listed, Session};
use tokio::runtime::Handle;

type SharedPacer = Arc<Mutex<crate::pace::Pacer>>;

/// How the device is reached.
#[derive(Clone, Debug)]
pub enum Link {
    /// FTP, or explicit FTPS when `tls` is set.
    Ftp(Endpoint),
    #[cfg(feature = "sftp")]
    Sftp(sftp::SshEndpoint),
}

impl Link {
    pub fn address(&self) -> &str {
        match self {
            Link::Ftp(e) => &e.address,
            #[cfg(feature = "sftp")]
            Link::Sftp(e) => &e.address,
        }
    }
    pub fn timeout(&self) -> Duration {
        match self {
            Link::Ftp(e) => e.timeout,
            #[cfg(feature = "sftp")]
            Link::Sftp(e) => e.timeout,
        }
    }
    /// `ftp`, `ftps` or `sftp`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Link::Ftp(e) if e.tls.is_some() => "ftps",
            Link::Ftp(_) => "ftp",
            #[cfg(feature = "sftp")]
            Link::Sftp(_) => "sftp",
        }
    }
    fn password(&self) -> Option<&client::Password> {
        match self {
            Link::Ftp(e) => Some(&e.password),
            #[cfg(feature = "sftp")]
            Link::Sftp(e) => match &e.auth {
                sftp::SshAuth::Password(p) => Some(p),
                sftp::SshAuth::Key(_) => None,
            },
        }
    }
}

/// A logged-in session of one protocol: what the shared tree walk and the transfers need.
trait Remote: Send + Sized + 'static {
    /// Connects and logs in (once; `open_with_retries` tries again).
    fn connect(o: &FtpOptions, pacer: &SharedPacer, rt: &Handle) -> Result<Self, FtpError>;
    /// The entries of one folder, at most `max` (more is `FtpError::TooLarge`).
    fn entries(&mut self, dir: &str, max: usize) -> Result<Vec<Listed>, FtpError>;
    /// A file on the server as a stream opened when it is stored.
    fn file(shared: Arc<Shared<Self>>, path: String, size: Option<u64>) -> Arc<dyn OpenStream>;
    /// Says goodbye (blocking is allowed).
    fn quit(self);
}

impl Remote for Session {
    fn connect(o: &FtpOptions, pacer: &SharedPacer, _rt: &Handle) -> Result<Self, FtpError> {
        match &o.link {
            Link::Ftp(ep) => Session::open(ep, pacer.clone()),
            #[cfg(feature = "sftp")]
            Link::Sftp(_) => Err(FtpError::Protocol("not an FTP device".into())),
        }
    }
    fn entries(&mut self, dir: &str, max: usize) -> Result<Vec<Listed>, FtpError> {
        let (mlsd, lines) = self.list(dir, max)?;
        Ok(lines
            .iter()
            .filter_map(|line| {
                if mlsd {
                    client::parse_mlsd(line)
                } else {
                    client::parse_list(line)
                }
            })
            .collect())
    }
    fn file(shared: Arc<Shared<Self>>, path: String, size: Option<u64>) -> Arc<dyn OpenStream> {
        Arc::new(RemoteFile { shared, path, size })
    }
    fn quit(self) {
        Session::quit(self)
    }
}

/// What an FTP device is, as its settings give it.
#[derive(Clone, Debug)]
pub struct FtpOptions {
    pub device: String,
    pub link: Link,
    /// The remote folder collected, absolute (`/` by default).
    pub root: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub kinds: Vec<(String, ArtifactKind)>,
    pub max_files: usize,
    pub max_depth: usize,
    pub retries: u32,
    pub max_requests_per_second: f64,
}

pub struct FtpCollector {
    opts: FtpOptions,
    select: Selection,
}

/// The device's one connection, shared by the listing and every transfer; a transfer
/// takes it and gives it back (or drops it when it broke).
struct Shared<S: Remote> {
    opts: FtpOptions,
    /// The idle session, whether a transfer holds it, and why the device is down (set once
    /// connecting failed after every retry: the remaining files fail at once instead of
    /// each trying again).
    session: Mutex<(Option<S>, bool, Option<FtpError>)>,
    free: Condvar,
    pacer: SharedPacer,
    rt: Handle,
}

impl<S: Remote> Shared<S> {
    /// Takes the session, opening a new one when there is none (or the last one broke),
    /// with the configured retries.
    fn take(&self) -> Result<S, FtpError> {
        let mut g = self.session.lock().expect("session lock");
        while g.1 {
            g = self.free.wait(g).expect("session lock");
        }
        if let Some(e) = &g.2 {
            return Err(e.again());
        }
        g.1 = true;
        if let Some(s) = g.0.take() {
            return Ok(s);
        }
        drop(g);
        let opened = open_with_retries(&self.opts, &self.pacer, &self.rt);
        if let Err(e) = &opened {
            let mut g = self.session.lock().expect("session lock");
            g.2 = Some(e.clone());
            drop(g);
            self.give_back(None);
        }
        opened
    }

    fn give_back(&self, s: Option<S>) {
        let mut g = self.session.lock().expect("session lock");
        g.0 = s;
        g.1 = false;
        self.free.notify_one();
    }
}

impl<S: Remote> Drop for Shared<S> {
    fn drop(&mut self) {
        if let Ok(mut g) = self.session.lock()
            && let Some(s) = g.0.take()
        {
            s.quit();
        }
    }
}

fn open_with_retries<S: Remote>(
    o: &FtpOptions,
    pacer: &SharedPacer,
    rt: &Handle,
) -> Result<S, FtpError> {
    let backoff = crate::pace::Backoff::new(o.retries);
    let mut n = 0;
    loop {
        match S::connect(o, pacer, rt) {
            Ok(s) => return Ok(s),
            Err(e) if e.retryable() && n < backoff.retries => {
                std::thread::sleep(backoff.delay(n));
                n += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn adapter_error(o: &FtpOptions, e: FtpError) -> AdapterError {
    let device = o.device.clone();
    let addr = o.link.address();
    let sftp = o.link.scheme() == "sftp";
    match e {
        FtpError::Io {
            why,
            timed_out: true,
        } => AdapterError::Timeout {
            device,
            why,
            fix: format!("check that {addr} is reachable from this host, or raise `timeout`"),
        },
        FtpError::Io { why, .. } => AdapterError::Unreachable {
            device,
            why,
            fix: format!(
                "check that {addr} is powered, reachable (firewall, VLAN) and serves {}, and that `address` is right",
                if sftp { "SSH" } else { "FTP" }
            ),
        },
        FtpError::Auth(why) => AdapterError::Auth {
            device,
            why,
            fix: "check `user` and the password in `password-file` or `password-env` (or the `key-file`)"
                .into(),
        },
        FtpError::Identity(why) => AdapterError::Identity {
            device,
            why: why.clone(),
            fix: match why
                .split("fingerprint ")
                .nth(1)
                .and_then(|r| r.split(',').next())
            {
                Some(fp) if sftp => format!(
                    "if this is the device's host key, pin it: host-key-fingerprint = \"{}\"",
                    fp.trim()
                ),
                Some(fp) => format!(
                    "if this is the server's new certificate, pin it: tls-fingerprint = \"{}\"",
                    fp.trim()
                ),
                None if sftp => "check `host-key-fingerprint`".into(),
                None => "check `tls-fingerprint` or `ca-file`".into(),
            },
        },
        e @ FtpError::Refused { .. } => AdapterError::Refused {
            device,
            why: e.to_string(),
            fix: "check `root` and that this user may list and read it".into(),
        },
        FtpError::TooLarge(why) | FtpError::Protocol(why) => AdapterError::Protocol {
            device,
            why,
            fix: if sftp {
                "check that the address serves SSH with the SFTP subsystem".into()
            } else {
                "check that the address serves FTP (with `protocol = \"ftps\"`: explicit TLS)"
                    .into()
            },
        },
    }
}

impl FtpCollector {
    /// Fails when a glob does not compile.
    pub fn new(opts: FtpOptions) -> Result<FtpCollector, AdapterError> {
        let select = Selection::new(&opts.device, &opts.include, &opts.exclude, &opts.kinds)?;
        Ok(FtpCollector { opts, select })
    }

    /// Lists the tree below `root` (bounded in depth and number of entries) and hands back
    /// a stream per wanted file.
    fn scan(&self) -> Result<Collection, AdapterError> {
        match &self.opts.link {
            Link::Ftp(_) => self.scan_with::<Session>(),
            #[cfg(feature = "sftp")]
            Link::Sftp(_) => self.scan_with::<sftp::ReadOnly>(),
        }
    }

    fn scan_with<S: Remote>(&self) -> Result<Collection, AdapterError> {
        let o = &self.opts;
        let rt = Handle::try_current().map_err(|_| AdapterError::Protocol {
            device: o.device.clone(),
            why: "collected outside the async runtime".into(),
            fix: "this is a bug in plcvault; please report it".into(),
        })?;
        let pacer = Arc::new(Mutex::new(crate::pace::Pacer::new(
            o.max_requests_per_second,
        )));
        let mut session =
            Some(open_with_retries::<S>(o, &pacer, &rt).map_err(|e| adapter_error(o, e))?);
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
        let files = self.walk(&mut session, &mut out)?;
        let shared = Arc::new(Shared {
            opts: o.clone(),
            session: Mutex::new((session, false, None)),
            free: Condvar::new(),
            pacer,
            rt,
        });
        let stamp = format!("{}-modify", o.link.scheme());
        for (rel, full, size, modify) in files {
            let mut meta = ArtifactMeta::default();
            if let Some(m) = modify {
                meta.extra.insert(stamp.clone(), m);
            }
            out.artifacts.push(ArtifactSource {
                kind: self.select.kind_of(&rel),
                name: rel,
                meta,
                size_hint: size,
                data: SourceData::Stream(S::file(shared.clone(), full, size)),
            });
        }
        Ok(out)
    }

    /// Walks the tree: every listing entry's name is checked (a name that is not a plain
    /// name inside its folder is a warning and skipped), folders below `max-depth` and
    /// entries beyond `max-files` are not collected (the snapshot is then incomplete).
    /// Returns the wanted files, sorted: (name, remote path, size, modification stamp).
    #[allow(clippy::type_complexity)]
    fn walk<S: Remote>(
        &self,
        session: &mut Option<S>,
        out: &mut Collection,
    ) -> Result<Vec<(String, String, Option<u64>, Option<String>)>, AdapterError> {
        let o = &self.opts;
        let mut files = Vec::new();
        let mut todo = vec![(
            o.root.trim_end_matches('/').to_string(),
            String::new(),
            0usize,
        )];
        let mut seen = 0usize;
        while let Some((dir, prefix, depth)) = todo.pop() {
            let listing = if dir.is_empty() { "/" } else { &dir };
            let Some(s) = session.as_mut() else { break };
            let entries = match s.entries(listing, o.max_files.saturating_sub(seen).max(1)) {
                Ok(l) => l,
                Err(FtpError::TooLarge(why)) => {
                    // The listing was cut: that session is out of step; transfers get a
                    // new one.
                    *session = None;
                    out.complete = false;
                    out.warnings.push(format!(
                        "{why}; listing stopped at `max-files` = {} (raise it to collect more)",
                        o.max_files
                    ));
                    break;
                }
                Err(e) if depth > 0 && matches!(e, FtpError::Refused { .. }) => {
                    out.complete = false;
                    out.warnings
                        .push(format!("folder `{prefix}` not listed: {e}"));
                    continue;
                }
                Err(e) => return Err(adapter_error(o, e)),
            };
            for entry in entries {
                seen += 1;
                let name = &entry.name;
                if name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains(['/', '\\', '\0', '\r', '\n', '\u{FFFD}'])
                {
                    out.complete = false;
                    out.warnings.push(format!(
                        "skipped a listing entry named {:?} in `{}`: not a name inside the folder",
                        name,
                        if prefix.is_empty() { "/" } else { &prefix }
                    ));
                    continue;
                }
                let rel = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                if let Err(why) = vault::manifest::check_name(&rel) {
                    out.complete = false;
                    out.warnings.push(format!("skipped {why}"));
                    continue;
                }
                let full = format!("{dir}/{name}");
                if entry.dir {
                    if depth + 1 > o.max_depth {
                        out.complete = false;
                        out.warnings.push(format!(
                            "folder `{rel}` is deeper than `max-depth` = {}; not collected",
                            o.max_depth
                        ));
                    } else {
                        todo.push((full, rel, depth + 1));
                    }
                } else if entry.other {
                    out.warnings
                        .push(format!("skipped `{rel}`: a link or special file"));
                } else if self.select.wanted(&rel) {
                    files.push((rel, full, entry.size, entry.modify));
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

/// The most bytes read of a file whose listing gives no size (a server that streams
/// forever is cut off there; the file is then not stored).
pub const UNLISTED_SIZE_CAP: u64 = 4 << 30;

fn unlisted_too_large(path: &str) -> io::Error {
    io::Error::other(format!(
        "`{path}` has no size in the listing and sent more than {} GiB; not stored",
        UNLISTED_SIZE_CAP >> 30
    ))
}

/// A file on the server, fetched when it is stored.
struct RemoteFile {
    shared: Arc<Shared<Session>>,
    path: String,
    size: Option<u64>,
}

impl OpenStream for RemoteFile {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let timeout = self.shared.opts.link.timeout();
        // At least 64 KiB/s on top of ten timeouts: a drip-feeding server is cut off.
        let allowed = timeout * 10 + Duration::from_secs(self.size.unwrap_or(0) / (64 * 1024));
        let mut r = Transfer {
            shared: self.shared.clone(),
            path: self.path.clone(),
            state: None,
            delivered: 0,
            limit: self.size.map_or(UNLISTED_SIZE_CAP, |s| s + 1),
            listed: self.size.is_some(),
            deadline: std::time::Instant::now() + allowed,
        };
        r.start().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Box::new(r))
    }
    fn listed_size(&self) -> Option<u64> {
        self.size
    }
    fn describe(&self) -> String {
        format!(
            "{}://{}{}",
            self.shared.opts.link.scheme(),
            self.shared.opts.link.address(),
            self.path
        )
    }
}

/// One RETR in progress. It delivers at most the listed size plus one byte (a server that
/// sends more, or never stops, is cut off: the length then differs from the listing and
/// the file is fetched again, then marked unstable), within a deadline. A connection that
/// drops, or a transfer the server does not confirm, is an error: the file is fetched
/// again from its first byte into a fresh store, never spliced from two downloads.
struct Transfer {
    shared: Arc<Shared<Session>>,
    path: String,
    state: Option<(Session, Conn)>,
    delivered: u64,
    /// The listed size plus one, or `UNLISTED_SIZE_CAP` when the listing gave none.
    limit: u64,
    listed: bool,
    deadline: std::time::Instant,
}

impl Transfer {
    fn start(&mut self) -> Result<(), FtpError> {
        let mut s = self.shared.take()?;
        match s.start("RETR", &self.path) {
            Ok(conn) => {
                self.state = Some((s, conn));
                Ok(())
            }
            Err(e @ FtpError::Refused { .. }) => {
                self.shared.give_back(Some(s));
                Err(e)
            }
            Err(e) => {
                self.shared.give_back(None);
                Err(e)
            }
        }
    }

    /// Ends the transfer and drops its session (it is out of step).
    fn abandon(&mut self) {
        if let Some((_, conn)) = self.state.take() {
            drop(conn);
            self.shared.give_back(None);
        }
    }
}

impl Read for Transfer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((_, conn)) = self.state.as_mut() else {
            return Ok(0);
        };
        if std::time::Instant::now() > self.deadline {
            self.abandon();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("`{}` was not transferred in time", self.path),
            ));
        }
        if self.delivered >= self.limit {
            self.abandon();
            if !self.listed {
                return Err(unlisted_too_large(&self.path));
            }
            // More than listed: stop here; the length check does the rest.
            return Ok(0);
        }
        let room = buf.len().min((self.limit - self.delivered) as usize);
        match conn.read(&mut buf[..room]) {
            Ok(0) => {
                let (mut s, conn) = self.state.take().expect("in progress");
                drop(conn);
                match s.finish(&format!("RETR {}", self.path)) {
                    Ok(()) => {
                        self.shared.give_back(Some(s));
                        Ok(0)
                    }
                    Err(e) => {
                        self.shared.give_back(None);
                        Err(io::Error::other(format!("transfer not complete: {e}")))
                    }
                }
            }
            Ok(n) => {
                self.delivered += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        // A transfer left unfinished: close the data connection, read the server's reply
        // (426 or 226), and keep the session only when it answered.
        if let Some((mut s, conn)) = self.state.take() {
            drop(conn);
            let ok = s.finish(&format!("RETR {}", self.path)).is_ok();
            self.shared.give_back(ok.then_some(s));
        }
    }
}

impl Collector for FtpCollector {
    fn adapter(&self) -> &'static str {
        "ftp"
    }
    fn source(&self) -> String {
        format!(
            "{}://{}{}",
            self.opts.link.scheme(),
            self.opts.link.address(),
            self.opts.root
        )
    }
    fn read_functions(&self) -> &'static [&'static str] {
        match &self.opts.link {
            Link::Ftp(_) => client::ALLOWED,
            #[cfg(feature = "sftp")]
            Link::Sftp(_) => sftp::ALLOWED,
        }
    }
    fn preflight(&self) -> Vec<String> {
        let mut out = Vec::new();
        let password = self.opts.link.password();
        if let Some(Err(e)) = password.map(|p| p.read()) {
            out.push(e.to_string());
        }
        let mut secret = match password {
            Some(client::Password::File(p)) => Some(("password file", p)),
            _ => None,
        };
        #[cfg(feature = "sftp")]
        if let Link::Sftp(sftp::SshEndpoint {
            auth: sftp::SshAuth::Key(p),
            ..
        }) = &self.opts.link
        {
            if let Err(e) = sftp::load_key(p) {
                out.push(e);
            }
            secret = Some(("key file", p));
        }
        #[cfg(feature = "sftp")]
        if let Link::Sftp(ep) = &self.opts.link
            && ep.host_key.is_empty()
        {
            out.push(
                "no host key is pinned (host-key-fingerprint = \"\"): collections are refused until it is; the first prints the server's fingerprint to check and pin".into(),
            );
        }
        if let Some((what, p)) = secret
            && let Ok(m) = std::fs::metadata(p)
        {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o077 != 0 {
                out.push(format!(
                    "the {what} {} can be read by others (fix: chmod 600 {})",
                    p.display(),
                    p.display()
                ));
            }
        }
        out
    }
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        // The client blocks; keep it off the async worker threads.
        Box::pin(async move { tokio::task::block_in_place(|| self.scan()) })
    }
}
