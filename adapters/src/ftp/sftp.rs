//! A read-only SFTP client (SSH File Transfer Protocol version 3, over SSH through
//! `russh`), blocking on the collector's worker threads while the SSH connection runs on
//! the process's tokio runtime. It can send only the requests in `ALLOWED`: `ReadOnly`
//! wraps the protocol session and has no method that writes, removes, renames or opens
//! with a write flag. The server's host key must match the pinned SHA-256 fingerprint
//! (as `ssh-keygen -lf` prints it); an unknown key is refused and its fingerprint told.
//! One request in flight, each with a timeout; every request but a `READ` of an open file
//! waits for the device's pacer slot (reads are the file's data stream, as an FTP data
//! connection is).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{HashAlg, PublicKeyOrCertificate};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::runtime::Handle;

use super::client::{FtpError, Listed, Password};

/// The only SFTP requests this client sends (besides `INIT`, the protocol's handshake).
pub const ALLOWED: &[&str] = &["OPEN(READ)", "READ", "OPENDIR", "READDIR", "CLOSE"];

/// Bytes asked for per `READ` (OpenSSH's largest; servers send less when they allow less).
const READ_LEN: u32 = 255 * 1024;

/// The largest SFTP packet accepted from the server (a read reply of `READ_LEN` fits).
const MAX_PACKET: u32 = 256 * 1024 + 1024;

/// How the client proves who it is.
#[derive(Clone, Debug)]
pub enum SshAuth {
    Password(Password),
    /// An OpenSSH private key file (not encrypted with a passphrase).
    Key(PathBuf),
}

/// The connection settings.
#[derive(Clone, Debug)]
pub struct SshEndpoint {
    pub address: String,
    pub user: String,
    pub auth: SshAuth,
    /// The pinned host key, `SHA256:` and base64 (empty: none pinned yet, refuse all).
    pub host_key: String,
    pub timeout: Duration,
}

struct Client {
    pin: String,
    /// The key type and fingerprint the server showed, for the message when it is not the
    /// pinned one.
    seen: Arc<Mutex<Option<(String, String)>>>,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(c) => c.public_key().clone().into(),
        };
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let ok = !self.pin.is_empty() && fp == self.pin;
        *self.seen.lock().expect("fingerprint lock") = Some((key.algorithm().to_string(), fp));
        Ok(ok)
    }
}

/// An SFTP session on one SSH connection, logged in. Read-only by construction.
pub struct ReadOnly {
    rt: Handle,
    ssh: Option<russh::client::Handle<Client>>,
    sftp: Option<RawSftpSession>,
    timeout: Duration,
    pacer: Arc<Mutex<crate::pace::Pacer>>,
    /// Requests sent, for the record.
    pub requests: u64,
}

fn io_error(why: String) -> FtpError {
    FtpError::Io {
        why,
        timed_out: false,
    }
}

fn timed_out() -> FtpError {
    FtpError::Io {
        why: "the server did not answer in time".into(),
        timed_out: true,
    }
}

fn sftp_error(what: &str, e: SftpError) -> FtpError {
    match e {
        SftpError::Status(s) => FtpError::Refused {
            command: what.to_string(),
            code: s.status_code as u32,
            text: if s.error_message.is_empty() {
                s.status_code.to_string()
            } else {
                s.error_message.chars().take(300).collect()
            },
        },
        SftpError::Timeout => timed_out(),
        SftpError::IO(why) => io_error(format!("{what}: {why}")),
        other => FtpError::Protocol(format!(
            "{what}: {}",
            other.to_string().chars().take(300).collect::<String>()
        )),
    }
}

impl ReadOnly {
    /// Connects, checks the host key against the pin, logs in and starts the SFTP
    /// subsystem. `rt` runs the connection; this thread blocks on it.
    ///
    /// Fails on a refused connection, a host key that is not the pinned one, a failed
    /// login, or a server without SFTP.
    pub fn open(
        ep: &SshEndpoint,
        pacer: Arc<Mutex<crate::pace::Pacer>>,
        rt: Handle,
    ) -> Result<ReadOnly, FtpError> {
        let seen = Arc::new(Mutex::new(None));
        let handler = Client {
            pin: ep.host_key.clone(),
            seen: seen.clone(),
        };
        let config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(ep.timeout.max(Duration::from_secs(1)) * 6),
            nodelay: true,
            ..Default::default()
        });
        pacer.lock().expect("pacer lock").wait_blocking();
        let timeout = ep.timeout;
        let address = ep.address.clone();
        let connected = rt.block_on(async {
            tokio::time::timeout(timeout, russh::client::connect(config, address, handler)).await
        });
        let mut ssh = match connected {
            Err(_) => return Err(timed_out()),
            Ok(Ok(h)) => h,
            Ok(Err(russh::Error::UnknownKey)) => {
                let fp = seen.lock().expect("fingerprint lock").clone();
                return Err(FtpError::Identity(match fp {
                    Some((algo, fp)) if ep.host_key.is_empty() => format!(
                        "no host key is pinned; the server's {algo} host key has fingerprint {fp}, check it (ssh-keygen -lf on the device's {algo} host key) and pin it"
                    ),
                    Some((algo, fp)) => format!(
                        "the server's {algo} host key has fingerprint {fp}, not the pinned {}",
                        ep.host_key
                    ),
                    None => "the server's host key was refused".into(),
                }));
            }
            Ok(Err(russh::Error::IO(e))) => {
                return Err(io_error(format!("cannot connect to {}: {e}", ep.address)));
            }
            Ok(Err(e)) => {
                return Err(FtpError::Protocol(format!(
                    "SSH with {} failed: {e}",
                    ep.address
                )));
            }
        };
        let mut s = ReadOnly {
            rt,
            ssh: None,
            sftp: None,
            timeout,
            pacer,
            requests: 0,
        };
        s.pace();
        let user = ep.user.clone();
        let auth = match &ep.auth {
            SshAuth::Password(p) => {
                let password = p.read()?;
                s.run(ssh.authenticate_password(user, password))?
            }
            SshAuth::Key(path) => {
                let key = load_key(path).map_err(FtpError::Auth)?;
                let hash = s
                    .run(ssh.best_supported_rsa_hash())?
                    .map_err(|e| FtpError::Protocol(format!("SSH: {e}")))?
                    .flatten();
                let key = russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                s.run(ssh.authenticate_publickey(user, key))?
            }
        }
        .map_err(|e| FtpError::Protocol(format!("SSH login: {e}")))?;
        if !auth.success() {
            return Err(FtpError::Auth(format!(
                "the server refused the login of `{}`",
                ep.user
            )));
        }
        s.pace();
        let channel = s
            .run(ssh.channel_open_session())?
            .map_err(|e| FtpError::Protocol(format!("SSH session: {e}")))?;
        s.pace();
        s.run(channel.request_subsystem(true, "sftp"))?
            .map_err(|e| FtpError::Protocol(format!("the server has no SFTP: {e}")))?;
        let cfg = russh_sftp::client::Config {
            max_packet_len: MAX_PACKET,
            request_timeout_secs: timeout.as_secs().max(1) + 1,
            ..Default::default()
        };
        let stream = channel.into_stream();
        // The session's reader task is spawned on the runtime.
        let sftp =
            s.rt.block_on(async move { RawSftpSession::new_with_config(stream, cfg) });
        s.ssh = Some(ssh);
        s.pace();
        let version = s.run(sftp.init())?.map_err(|e| sftp_error("INIT", e))?;
        if version.version != 3 {
            return Err(FtpError::Protocol(format!(
                "the server speaks SFTP version {}, not 3",
                version.version
            )));
        }
        s.sftp = Some(sftp);
        Ok(s)
    }

    fn pace(&mut self) {
        self.pacer.lock().expect("pacer lock").wait_blocking();
        self.requests += 1;
    }

    /// Runs one request to completion on the runtime, within the timeout.
    fn run<F: Future>(&self, fut: F) -> Result<F::Output, FtpError> {
        let t = self.timeout;
        self.rt
            .block_on(async move { tokio::time::timeout(t, fut).await })
            .map_err(|_| timed_out())
    }

    fn session(&self) -> Result<&RawSftpSession, FtpError> {
        self.sftp
            .as_ref()
            .ok_or_else(|| FtpError::Protocol("the SFTP session is closed".into()))
    }

    /// Lists one folder: `OPENDIR`, `READDIR` until the end, `CLOSE`. More than
    /// `max_entries` entries is `TooLarge`.
    pub fn list(&mut self, dir: &str, max_entries: usize) -> Result<Vec<Listed>, FtpError> {
        self.pace();
        let handle = {
            let sftp = self.session()?;
            self.run(sftp.opendir(dir))?
                .map_err(|e| sftp_error(&format!("OPENDIR {dir}"), e))?
                .handle
        };
        let mut out = Vec::new();
        let listed = loop {
            self.pace();
            let sftp = self.session()?;
            match self.run(sftp.readdir(handle.as_str()))? {
                Ok(name) => {
                    let mut over = false;
                    for f in name.files {
                        if f.filename == "." || f.filename == ".." {
                            continue;
                        }
                        if out.len() >= max_entries {
                            over = true;
                            break;
                        }
                        out.push(entry(f.filename, &f.longname, &f.attrs));
                    }
                    if over {
                        break Err(FtpError::TooLarge(format!(
                            "folder `{dir}` has more than {max_entries} entries"
                        )));
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(sftp_error(&format!("READDIR {dir}"), e)),
            }
        };
        self.close(&handle);
        listed.map(|()| out)
    }

    /// Opens a file for reading only.
    pub fn open_file(&mut self, path: &str) -> Result<String, FtpError> {
        self.pace();
        let sftp = self.session()?;
        self.run(sftp.open(path, OpenFlags::READ, FileAttributes::empty()))?
            .map(|h| h.handle)
            .map_err(|e| sftp_error(&format!("OPEN {path}"), e))
    }

    /// Reads up to `len` bytes at `offset`; `None` at the end of the file.
    ///
    /// `READ`s of an open file are its data stream, as an FTP data connection is: one in
    /// flight, each waiting for the last, but not spaced by the rate cap (which paces the
    /// requests that start work: opening, listing, closing).
    pub fn read(
        &mut self,
        handle: &str,
        offset: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>, FtpError> {
        self.requests += 1;
        let len = (len as u32).clamp(1, READ_LEN);
        let sftp = self.session()?;
        match self.run(sftp.read(handle, offset, len))? {
            Ok(d) if d.data.len() > len as usize => Err(FtpError::Protocol(format!(
                "the server sent {} bytes for a read of {len}",
                d.data.len()
            ))),
            Ok(d) if d.data.is_empty() => Err(FtpError::Protocol(
                "the server sent no bytes and no end of file".into(),
            )),
            Ok(d) => Ok(Some(d.data)),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => Ok(None),
            Err(e) => Err(sftp_error("READ", e)),
        }
    }

    /// Closes a file or folder handle (a failure only loses the handle on the server).
    pub fn close(&mut self, handle: &str) {
        self.pace();
        if let Ok(sftp) = self.session() {
            let _ = self.run(sftp.close(handle));
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        // Ends the session without blocking: this may run inside an async task.
        let sftp = self.sftp.take();
        if let Some(ssh) = self.ssh.take() {
            self.rt.spawn(async move {
                if let Some(s) = sftp {
                    let _ = s.close_session();
                }
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    ssh.disconnect(russh::Disconnect::ByApplication, "", "en"),
                )
                .await;
            });
        }
    }
}

/// Reads and decodes a private key file (OpenSSH format, no passphrase).
///
/// Fails, saying why, when the file cannot be read, is a public key, is encrypted, or is
/// not a key.
pub fn load_key(path: &std::path::Path) -> Result<russh::keys::PrivateKey, String> {
    let text = vault::fsread::read_regular(path, 64 * 1024)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| format!("the key file {} is not text", path.display()))?;
    if text.trim_start().starts_with("ssh-") || text.trim_start().starts_with("ecdsa-") {
        return Err(format!(
            "the key file {} holds a public key; `key-file` names the private key (without .pub)",
            path.display()
        ));
    }
    russh::keys::decode_secret_key(&text, None).map_err(|e| {
        format!(
            "the key file {} is not a usable OpenSSH private key (one without a passphrase: ssh-keygen -p -N \"\" -f FILE removes it): {e}",
            path.display()
        )
    })
}

/// One `READDIR` entry as a listing entry: the type from the permission bits (or the
/// `ls -l` style long name when the server sends no permissions).
fn entry(name: String, longname: &str, a: &FileAttributes) -> Listed {
    const S_IFMT: u32 = 0o170000;
    let (dir, file) = match a.permissions.map(|p| p & S_IFMT) {
        Some(0o040000) => (true, false),
        Some(0o100000) => (false, true),
        Some(_) => (false, false),
        None => (longname.starts_with('d'), longname.starts_with('-')),
    };
    Listed {
        name,
        dir,
        size: a.size,
        modify: a.mtime.map(|t| t.to_string()),
        other: !dir && !file,
    }
}

/// The SHA-256 fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA... comment`),
/// as `ssh-keygen -lf` prints it.
///
/// Fails when the line is not a public key.
pub fn fingerprint_of_public_key(line: &str) -> Result<String, String> {
    russh::keys::PublicKey::from_openssh(line.trim())
        .map(|k| k.fingerprint(HashAlg::Sha256).to_string())
        .map_err(|e| e.to_string())
}

impl super::Remote for ReadOnly {
    fn connect(
        o: &super::FtpOptions,
        pacer: &super::SharedPacer,
        rt: &Handle,
    ) -> Result<Self, FtpError> {
        match &o.link {
            super::Link::Sftp(ep) => ReadOnly::open(ep, pacer.clone(), rt.clone()),
            super::Link::Ftp(_) => Err(FtpError::Protocol("not an SFTP device".into())),
        }
    }
    fn entries(&mut self, dir: &str, max: usize) -> Result<Vec<Listed>, FtpError> {
        self.list(dir, max)
    }
    fn file(
        shared: Arc<super::Shared<Self>>,
        path: String,
        size: Option<u64>,
    ) -> Arc<dyn crate::OpenStream> {
        Arc::new(RemoteFile { shared, path, size })
    }
    fn quit(self) {}
}

/// A file on the server, fetched when it is stored.
struct RemoteFile {
    shared: Arc<super::Shared<ReadOnly>>,
    path: String,
    size: Option<u64>,
}

impl crate::OpenStream for RemoteFile {
    fn open(&self) -> io::Result<Box<dyn io::Read + Send>> {
        let timeout = self.shared.opts.link.timeout();
        // At least 64 KiB/s on top of ten timeouts: a drip-feeding server is cut off.
        let allowed = timeout * 10 + Duration::from_secs(self.size.unwrap_or(0) / (64 * 1024));
        let mut s = self
            .shared
            .take()
            .map_err(|e| io::Error::other(e.to_string()))?;
        match s.open_file(&self.path) {
            Ok(handle) => Ok(Box::new(Transfer {
                shared: self.shared.clone(),
                state: Some((s, handle)),
                path: self.path.clone(),
                offset: 0,
                pending: Vec::new(),
                taken: 0,
                limit: self.size.map_or(super::UNLISTED_SIZE_CAP, |s| s + 1),
                listed: self.size.is_some(),
                deadline: std::time::Instant::now() + allowed,
            })),
            Err(e) => {
                // A refusal leaves the session usable; anything else may not.
                let keep = matches!(e, FtpError::Refused { .. });
                self.shared.give_back(keep.then_some(s));
                Err(io::Error::other(e.to_string()))
            }
        }
    }
    fn listed_size(&self) -> Option<u64> {
        self.size
    }
    fn describe(&self) -> String {
        format!("sftp://{}{}", self.shared.opts.link.address(), self.path)
    }
}

/// One file being read: `READ` requests of up to `READ_LEN` bytes, one at a time, at
/// the offset the last one ended (servers may send less than asked). At most the listed
/// size plus one byte is delivered (the length check then marks a file that grew), within
/// a deadline. A failed read is an error: the file is fetched again from its first byte
/// into a fresh store, never spliced.
struct Transfer {
    shared: Arc<super::Shared<ReadOnly>>,
    state: Option<(ReadOnly, String)>,
    path: String,
    offset: u64,
    pending: Vec<u8>,
    taken: usize,
    /// The listed size plus one, or `UNLISTED_SIZE_CAP` when the listing gave none.
    limit: u64,
    listed: bool,
    deadline: std::time::Instant,
}

impl Transfer {
    /// Closes the file; the session is kept when `keep`.
    fn end(&mut self, keep: bool) {
        if let Some((mut s, handle)) = self.state.take() {
            if keep {
                s.close(&handle);
            }
            self.shared.give_back(keep.then_some(s));
        }
    }
}

impl io::Read for Transfer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.taken < self.pending.len() {
            let n = buf.len().min(self.pending.len() - self.taken);
            buf[..n].copy_from_slice(&self.pending[self.taken..self.taken + n]);
            self.taken += n;
            return Ok(n);
        }
        let Some((s, handle)) = self.state.as_mut() else {
            return Ok(0);
        };
        if std::time::Instant::now() > self.deadline {
            self.end(false);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("`{}` was not transferred in time", self.path),
            ));
        }
        if self.offset >= self.limit {
            self.end(true);
            if !self.listed {
                return Err(super::unlisted_too_large(&self.path));
            }
            // More than listed: stop here; the length check does the rest.
            return Ok(0);
        }
        let room = (self.limit - self.offset).min(READ_LEN as u64) as usize;
        match s.read(handle, self.offset, room) {
            Ok(Some(data)) => {
                self.offset += data.len() as u64;
                self.pending = data;
                self.taken = 0;
                self.read(buf)
            }
            Ok(None) => {
                self.end(true);
                Ok(0)
            }
            Err(e) => {
                let keep = matches!(e, FtpError::Refused { .. });
                self.end(keep);
                Err(io::Error::other(format!("transfer not complete: {e}")))
            }
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.end(true);
    }
}
