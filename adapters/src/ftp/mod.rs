//! The `ftp` adapter: HMIs, PLCs and panels that expose their project, recipe and log
//! folders over FTP or explicit FTPS (Schneider M340/M580, Siemens HMI panels, Beckhoff,
//! B&R, many drives). Read-only: the client (`client`) can send only the commands in
//! `client::ALLOWED`. One control connection per device, one transfer at a time, every
//! command paced. Files are streamed into the vault as they are stored, never held whole;
//! a file whose length differs from its listing is fetched again, then marked unstable.

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

use client::{Conn, Endpoint, FtpError, Session};

/// What an FTP device is, as its settings give it.
#[derive(Clone, Debug)]
pub struct FtpOptions {
    pub device: String,
    pub endpoint: Endpoint,
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

/// The device's one control connection, shared by the listing and every transfer; a
/// transfer takes it and gives it back (or drops it when it broke).
struct Shared {
    opts: FtpOptions,
    session: Mutex<(Option<Session>, bool)>,
    free: Condvar,
    pacer: Arc<Mutex<crate::pace::Pacer>>,
}

impl Shared {
    /// Takes the session, opening a new one when there is none (or the last one broke),
    /// with the configured retries.
    fn take(&self) -> Result<Session, FtpError> {
        let mut g = self.session.lock().expect("session lock");
        while g.1 {
            g = self.free.wait(g).expect("session lock");
        }
        g.1 = true;
        if let Some(s) = g.0.take() {
            return Ok(s);
        }
        drop(g);
        let opened = open_with_retries(&self.opts, &self.pacer);
        if opened.is_err() {
            self.give_back(None);
        }
        opened
    }

    fn give_back(&self, s: Option<Session>) {
        let mut g = self.session.lock().expect("session lock");
        g.0 = s;
        g.1 = false;
        self.free.notify_one();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(mut g) = self.session.lock()
            && let Some(s) = g.0.take()
        {
            s.quit();
        }
    }
}

fn open_with_retries(
    o: &FtpOptions,
    pacer: &Arc<Mutex<crate::pace::Pacer>>,
) -> Result<Session, FtpError> {
    let backoff = crate::pace::Backoff::new(o.retries);
    let mut n = 0;
    loop {
        match Session::open(&o.endpoint, pacer.clone()) {
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
    let addr = &o.endpoint.address;
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
                "check that {addr} is powered, reachable (firewall, VLAN) and serves FTP, and that `address` is right"
            ),
        },
        FtpError::Auth(why) => AdapterError::Auth {
            device,
            why,
            fix: "check `user` and the password in `password-file` or `password-env`".into(),
        },
        FtpError::Identity(why) => AdapterError::Identity {
            device,
            why: why.clone(),
            fix: match why
                .split("fingerprint ")
                .nth(1)
                .and_then(|r| r.split(',').next())
            {
                Some(fp) => format!(
                    "if this is the server's new certificate, pin it: tls-fingerprint = \"{}\"",
                    fp.trim()
                ),
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
            fix: "check that the address serves FTP (with `protocol = \"ftps\"`: explicit TLS)"
                .into(),
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
        let o = &self.opts;
        let pacer = Arc::new(Mutex::new(crate::pace::Pacer::new(
            o.max_requests_per_second,
        )));
        let mut session = Some(open_with_retries(o, &pacer).map_err(|e| adapter_error(o, e))?);
        let mut out = Collection {
            complete: true,
            ..Collection::default()
        };
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
            let (mlsd, lines) = match s.list(listing, o.max_files.saturating_sub(seen).max(1)) {
                Ok(l) => l,
                Err(FtpError::TooLarge(why)) => {
                    // The listing was cut: that session is out of step; transfers get a
                    // new one.
                    session = None;
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
            for line in lines {
                let parsed = if mlsd {
                    client::parse_mlsd(&line)
                } else {
                    client::parse_list(&line)
                };
                let Some(entry) = parsed else { continue };
                seen += 1;
                let name = &entry.name;
                if name.is_empty()
                    || name == "."
                    || name == ".."
                    || name.contains(['/', '\\', '\0', '\r', '\n'])
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
        let shared = Arc::new(Shared {
            opts: o.clone(),
            session: Mutex::new((session, false)),
            free: Condvar::new(),
            pacer,
        });
        for (rel, full, size, modify) in files {
            let mut meta = ArtifactMeta::default();
            if let Some(m) = modify {
                meta.extra.insert("ftp-modify".into(), m);
            }
            out.artifacts.push(ArtifactSource {
                kind: self.select.kind_of(&rel),
                name: rel,
                meta,
                size_hint: size,
                data: SourceData::Stream(Arc::new(RemoteFile {
                    shared: shared.clone(),
                    path: full,
                    size,
                })),
            });
        }
        Ok(out)
    }
}

/// A file on the server, fetched when it is stored.
struct RemoteFile {
    shared: Arc<Shared>,
    path: String,
    size: Option<u64>,
}

impl OpenStream for RemoteFile {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        let timeout = self.shared.opts.endpoint.timeout;
        // At least 64 KiB/s on top of ten timeouts: a drip-feeding server is cut off.
        let allowed = timeout * 10 + Duration::from_secs(self.size.unwrap_or(0) / (64 * 1024));
        let mut r = Transfer {
            shared: self.shared.clone(),
            path: self.path.clone(),
            state: None,
            delivered: 0,
            limit: self.size.map(|s| s + 1),
            deadline: std::time::Instant::now() + allowed,
        };
        r.start().map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Box::new(r))
    }
    fn listed_size(&self) -> Option<u64> {
        self.size
    }
    fn describe(&self) -> String {
        format!("ftp://{}{}", self.shared.opts.endpoint.address, self.path)
    }
}

/// One RETR in progress. It delivers at most the listed size plus one byte (a server that
/// sends more, or never stops, is cut off: the length then differs from the listing and
/// the file is fetched again, then marked unstable), within a deadline. A connection that
/// drops, or a transfer the server does not confirm, is an error: the file is fetched
/// again from its first byte into a fresh store, never spliced from two downloads.
struct Transfer {
    shared: Arc<Shared>,
    path: String,
    state: Option<(Session, Conn)>,
    delivered: u64,
    limit: Option<u64>,
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
        let room = match self.limit {
            Some(limit) if self.delivered >= limit => {
                // More than listed: stop here; the length check does the rest.
                self.abandon();
                return Ok(0);
            }
            Some(limit) => buf.len().min((limit - self.delivered) as usize),
            None => buf.len(),
        };
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
        let scheme = if self.opts.endpoint.tls.is_some() {
            "ftps"
        } else {
            "ftp"
        };
        format!(
            "{scheme}://{}{}",
            self.opts.endpoint.address, self.opts.root
        )
    }
    fn read_functions(&self) -> &'static [&'static str] {
        client::ALLOWED
    }
    fn preflight(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = self.opts.endpoint.password.read() {
            out.push(e.to_string());
        }
        if let client::Password::File(p) = &self.opts.endpoint.password
            && let Ok(m) = std::fs::metadata(p)
        {
            use std::os::unix::fs::PermissionsExt;
            if m.permissions().mode() & 0o077 != 0 {
                out.push(format!(
                    "the password file {} can be read by others (fix: chmod 600 {})",
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
