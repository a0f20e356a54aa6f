//! The `ftp` adapter: HMIs, PLCs and panels that expose their project, recipe and log
//! folders over FTP or explicit FTPS (Schneider M340/M580, Siemens HMI panels, Beckhoff,
//! B&R, many drives). Read-only: the client (`client`) can send only the commands in
//! `client::ALLOWED`. One control connection per device, one transfer at a time, every
//! command paced. Files are streamed into the vault as they are stored, never held whole;
//! a file whose length differs from its listing is fetched again, then marked unstable.

use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use glob::Pattern;

use crate::files::{MATCH, compile, default_kind};
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
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    kinds: Vec<(Pattern, ArtifactKind)>,
}

/// The device's one control connection, shared by the listing and every transfer; a
/// transfer takes it and gives it back (or drops it when it broke).
struct Shared {
    opts: FtpOptions,
    session: Mutex<(Option<Session>, bool)>,
    free: Condvar,
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
        let opened = open_with_retries(&self.opts);
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

fn open_with_retries(o: &FtpOptions) -> Result<Session, FtpError> {
    let backoff = crate::pace::Backoff::new(o.retries);
    let mut n = 0;
    loop {
        match Session::open(&o.endpoint, o.max_requests_per_second) {
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
        FtpError::Protocol(why) => AdapterError::Protocol {
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
        let include = compile(&opts.device, "include", &opts.include)?;
        let exclude = compile(&opts.device, "exclude", &opts.exclude)?;
        let globs: Vec<String> = opts.kinds.iter().map(|(g, _)| g.clone()).collect();
        let kinds = compile(&opts.device, "kind.match", &globs)?
            .into_iter()
            .zip(opts.kinds.iter().map(|(_, k)| *k))
            .collect();
        Ok(FtpCollector {
            opts,
            include,
            exclude,
            kinds,
        })
    }

    fn wanted(&self, name: &str) -> bool {
        self.include.iter().any(|p| p.matches_with(name, MATCH))
            && !self.exclude.iter().any(|p| p.matches_with(name, MATCH))
    }

    fn kind_of(&self, name: &str) -> ArtifactKind {
        self.kinds
            .iter()
            .find(|(p, _)| p.matches_with(name, MATCH))
            .map(|(_, k)| *k)
            .unwrap_or_else(|| default_kind(name))
    }

    /// Lists the tree below `root` (bounded in depth and number of entries) and hands back
    /// a stream per wanted file.
    fn scan(&self) -> Result<Collection, AdapterError> {
        let o = &self.opts;
        let mut session = open_with_retries(o).map_err(|e| adapter_error(o, e))?;
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
            let (mlsd, lines) = match session.list(listing, o.max_files.saturating_sub(seen).max(1))
            {
                Ok(l) => l,
                Err(FtpError::Protocol(why)) if why.contains("more than") => {
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
                    || name.contains(['/', '\\', '\0'])
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
                } else if self.wanted(&rel) {
                    files.push((rel, full, entry.size, entry.modify));
                }
            }
        }
        files.sort();
        let shared = Arc::new(Shared {
            opts: o.clone(),
            session: Mutex::new((Some(session), false)),
            free: Condvar::new(),
        });
        for (rel, full, size, modify) in files {
            let mut meta = ArtifactMeta::default();
            if let Some(m) = modify {
                meta.extra.insert("ftp-modify".into(), m);
            }
            out.artifacts.push(ArtifactSource {
                kind: self.kind_of(&rel),
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
        let mut r = Transfer {
            shared: self.shared.clone(),
            path: self.path.clone(),
            state: None,
            delivered: 0,
            retries_left: self.shared.opts.retries,
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

/// One RETR in progress. A connection that drops mid-file is replaced and the file fetched
/// again from its start, skipping what was already delivered (REST is never sent), so the
/// store sees one unbroken stream or an error, never a truncated file.
struct Transfer {
    shared: Arc<Shared>,
    path: String,
    state: Option<(Session, Conn)>,
    delivered: u64,
    retries_left: u32,
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

    /// After a broken transfer: a new connection, the file again, what was delivered skipped.
    fn restart(&mut self) -> Result<(), FtpError> {
        if let Some((_, conn)) = self.state.take() {
            drop(conn);
            self.shared.give_back(None);
        }
        self.start()?;
        let mut skip = self.delivered;
        let mut buf = vec![0u8; 64 * 1024];
        while skip > 0 {
            let (_, conn) = self.state.as_mut().expect("started");
            let n = conn
                .read(&mut buf[..skip.min(64 * 1024) as usize])
                .map_err(|e| FtpError::Io {
                    why: e.to_string(),
                    timed_out: false,
                })?;
            if n == 0 {
                return Err(FtpError::Protocol(format!(
                    "`{}` is shorter than before the connection dropped",
                    self.path
                )));
            }
            skip -= n as u64;
        }
        Ok(())
    }
}

impl Read for Transfer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some((_, conn)) = self.state.as_mut() else {
                return Ok(0);
            };
            match conn.read(buf) {
                Ok(0) => {
                    let (mut s, conn) = self.state.take().expect("in progress");
                    drop(conn);
                    match s.finish(&format!("RETR {}", self.path)) {
                        Ok(()) => {
                            self.shared.give_back(Some(s));
                            return Ok(0);
                        }
                        Err(e) => {
                            self.shared.give_back(None);
                            if self.retries_left == 0 {
                                return Err(io::Error::other(format!(
                                    "transfer not complete: {e}"
                                )));
                            }
                            // The server ended the transfer early: fetch it again.
                            self.retries_left -= 1;
                            std::thread::sleep(Duration::from_millis(200));
                            self.restart().map_err(|again| {
                                io::Error::other(format!(
                                    "transfer not complete ({e}) and the file could not be fetched again: {again}"
                                ))
                            })?;
                        }
                    }
                }
                Ok(n) => {
                    self.delivered += n as u64;
                    return Ok(n);
                }
                Err(e) if self.retries_left > 0 => {
                    self.retries_left -= 1;
                    std::thread::sleep(Duration::from_millis(200));
                    if let Err(again) = self.restart() {
                        return Err(io::Error::other(format!(
                            "the connection dropped ({e}) and the file could not be fetched again: {again}"
                        )));
                    }
                }
                Err(e) => return Err(e),
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
        match self.opts.endpoint.password.read() {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }
    fn collect(&self) -> BoxFuture<'_, Result<Collection, AdapterError>> {
        // The client blocks; keep it off the async worker threads.
        Box::pin(async move { tokio::task::block_in_place(|| self.scan()) })
    }
}
