//! The S7 client: one ISO-on-TCP connection per CPU, one request in flight, every request
//! paced and timed out, and each read a transaction that starts again from its first
//! request on a new connection when the old one broke (an upload cut in the middle is
//! uploaded again, never kept short).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::proto::{self, BlockType, Pdu, WireError};
use crate::pace::{Backoff, Failed, Pacer, Tries};

/// Why a read failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S7Error {
    /// The CPU answered and said no (function not available, block protected, object
    /// does not exist): final, not retried.
    Refused(String),
    /// No answer within the timeout.
    Timeout(String),
    /// The connection could not be made or broke.
    Transport(String),
    /// A reply the protocol does not allow (never stored).
    Garbage(String),
}

impl std::fmt::Display for S7Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S7Error::Refused(e) => write!(f, "the CPU refused: {e}"),
            S7Error::Timeout(e) | S7Error::Transport(e) => f.write_str(e),
            // `WireError` says "malformed reply" itself.
            S7Error::Garbage(e) if e.starts_with("malformed") => f.write_str(e),
            S7Error::Garbage(e) => write!(f, "malformed reply ({e})"),
        }
    }
}

impl S7Error {
    /// The device stopped answering (after every retry): the other reads are skipped.
    pub fn stopped(&self) -> bool {
        matches!(self, S7Error::Timeout(_) | S7Error::Transport(_))
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub local_tsap: u16,
    pub remote_tsap: u16,
    /// The PDU size asked for; the CPU may grant less.
    pub pdu_size: u16,
    pub timeout: Duration,
}

struct Conn {
    stream: TcpStream,
    pdu: u16,
    next_ref: u16,
}

/// One read transaction.
#[derive(Clone, Debug)]
pub enum Op {
    /// SZL id and index.
    Szl(u16, u16),
    /// Block numbers (with flags and language) of one type.
    ListType(BlockType),
    /// Block info of one block.
    Info(BlockType, u16),
    /// A whole block, at most this many bytes.
    Upload(BlockType, u16, u32),
    /// DB number, start, length.
    ReadDb(u16, u32, u32),
}

/// The most bytes a userdata answer (an SZL, a block list) may have in all its pieces.
pub const MAX_USERDATA: usize = 256 * 1024;

/// A paced, retrying session with one CPU.
pub struct Session {
    ep: Endpoint,
    conn: Option<Conn>,
    pacer: Pacer,
    backoff: Backoff,
    /// Requests sent (connection set-up included).
    pub requests: u64,
    /// The PDU size of the last connection.
    pub pdu: u16,
}

impl Session {
    pub fn new(ep: Endpoint, max_per_second: f64, retries: u32) -> Session {
        Session {
            pdu: ep.pdu_size,
            ep,
            conn: None,
            pacer: Pacer::new(max_per_second),
            backoff: Backoff::new(retries),
            requests: 0,
        }
    }

    /// Connects (TCP, COTP with the TSAPs, setup communication), with the retries.
    ///
    /// Fails when every attempt failed, or the CPU refused the connection.
    pub async fn open(&mut self) -> Result<(), S7Error> {
        let mut tries = Tries::new(self.backoff);
        loop {
            match self.connect().await {
                Ok(()) => return Ok(()),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    pub async fn close(&mut self) {
        self.conn = None;
    }

    async fn connect(&mut self) -> Result<(), Failed<S7Error>> {
        let t = self.ep.timeout;
        let io = |e: String| Failed::Retry(S7Error::Transport(e));
        let timeout = |what: &str| {
            Failed::Retry(S7Error::Timeout(format!(
                "no answer to the {what} within {}",
                humantime::format_duration(t)
            )))
        };
        self.pacer.wait().await;
        self.requests += 1;
        let mut stream = match tokio::time::timeout(t, TcpStream::connect(self.ep.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(io(format!("cannot connect to {}: {e}", self.ep.addr))),
            Err(_) => return Err(timeout("connection")),
        };
        let _ = stream.set_nodelay(true);
        let cr = proto::Cotp {
            code: proto::COTP_CR,
            dst_ref: 0,
            src_ref: 0x0001,
            src_tsap: Some(self.ep.local_tsap),
            dst_tsap: Some(self.ep.remote_tsap),
            tpdu_size: Some(0x0A),
        };
        let cc = async {
            proto::write_tpkt(&mut stream, &cr.encode()).await?;
            let reply = proto::read_tpkt(&mut stream, 64).await?;
            proto::Cotp::decode(&reply)
        };
        match tokio::time::timeout(t, cc).await {
            Err(_) => return Err(timeout("ISO connection request")),
            Ok(Err(WireError::Io(e))) => {
                // A CPU closes the connection when no module sits at the TSAP asked for.
                return Err(Failed::Final(S7Error::Refused(format!(
                    "the ISO connection to TSAP {:04X} was not accepted ({e})",
                    self.ep.remote_tsap
                ))));
            }
            Ok(Err(WireError::Garbage(e))) => return Err(Failed::Retry(S7Error::Garbage(e))),
            Ok(Ok(c)) if c.code != proto::COTP_CC => {
                return Err(Failed::Final(S7Error::Refused(format!(
                    "the ISO connection to TSAP {:04X} was not confirmed",
                    self.ep.remote_tsap
                ))));
            }
            Ok(Ok(_)) => {}
        }
        let mut conn = Conn {
            stream,
            pdu: self.ep.pdu_size,
            next_ref: 1,
        };
        self.pacer.wait().await;
        self.requests += 1;
        let setup = Self::exchange(
            &mut conn,
            t,
            Pdu::job(0, proto::setup_param(self.ep.pdu_size), vec![]),
            usize::from(proto::MAX_PDU),
        )
        .await?;
        if setup.error != 0 {
            return Err(Failed::Final(S7Error::Refused(format!(
                "setup communication: {}",
                proto::error_text(setup.error)
            ))));
        }
        let granted = proto::setup_pdu_size(&setup.param).map_err(retry_garbage)?;
        // Below 64 bytes not even a block info answer fits: not a size a CPU grants.
        if granted < 64 {
            return Err(Failed::Retry(S7Error::Garbage(format!(
                "a PDU size of {granted} bytes"
            ))));
        }
        // Honour the smaller of the two; never more than was asked.
        conn.pdu = granted.min(self.ep.pdu_size);
        self.pdu = conn.pdu;
        self.conn = Some(conn);
        Ok(())
    }

    /// One request and its reply on `conn`, with the timeout; the reply must carry the
    /// request's PDU reference and fit the PDU size.
    async fn exchange(
        conn: &mut Conn,
        t: Duration,
        mut req: Pdu,
        max: usize,
    ) -> Result<Pdu, Failed<S7Error>> {
        req.pdu_ref = conn.next_ref;
        conn.next_ref = conn.next_ref.wrapping_add(1).max(1);
        let bytes = req.encode();
        let round = async {
            proto::write_pdu(&mut conn.stream, &bytes).await?;
            let reply = proto::read_pdu(&mut conn.stream, max).await?;
            Pdu::decode(&reply)
        };
        let reply = match tokio::time::timeout(t, round).await {
            Err(_) => {
                return Err(Failed::Retry(S7Error::Timeout(format!(
                    "no answer within {}",
                    humantime::format_duration(t)
                ))));
            }
            Ok(Err(WireError::Io(e))) => return Err(Failed::Retry(S7Error::Transport(e))),
            Ok(Err(WireError::Garbage(e))) => return Err(Failed::Retry(S7Error::Garbage(e))),
            Ok(Ok(p)) => p,
        };
        if reply.pdu_ref != req.pdu_ref {
            return Err(Failed::Retry(S7Error::Garbage(format!(
                "the reply names PDU {} to request {}",
                reply.pdu_ref, req.pdu_ref
            ))));
        }
        Ok(reply)
    }

    /// Paces, connects when needed, and exchanges one PDU; a failed exchange drops the
    /// connection so that the next attempt makes a new one.
    async fn call(&mut self, req: Pdu) -> Result<Pdu, Failed<S7Error>> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        self.pacer.wait().await;
        self.requests += 1;
        let conn = self.conn.as_mut().expect("connected above");
        let max = usize::from(conn.pdu);
        let r = Self::exchange(conn, self.ep.timeout, req, max).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    /// Runs `op` with the retries, each attempt from its first request.
    ///
    /// Fails when the CPU refuses or every attempt failed.
    pub async fn run(&mut self, op: &Op) -> Result<Vec<u8>, S7Error> {
        let mut tries = Tries::new(self.backoff);
        loop {
            let r = match op {
                Op::Szl(id, index) => {
                    let mut q = id.to_be_bytes().to_vec();
                    q.extend_from_slice(&index.to_be_bytes());
                    self.userdata(proto::G_CPU, proto::SF_READ_SZL, &q).await
                }
                Op::ListType(t) => {
                    self.userdata(proto::G_BLOCK, proto::SF_LIST_TYPE, &[0x30, t.code()])
                        .await
                }
                Op::Info(t, n) => {
                    let mut q = vec![0x30, t.code()];
                    q.extend_from_slice(format!("{n:05}").as_bytes());
                    q.push(b'A');
                    self.userdata(proto::G_BLOCK, proto::SF_BLOCK_INFO, &q)
                        .await
                }
                Op::Upload(t, n, max) => self.upload(*t, *n, *max).await,
                Op::ReadDb(db, start, len) => self.read_db(*db, *start, *len).await,
            };
            match r {
                Ok(v) => return Ok(v),
                Err(f) => {
                    // Whatever went wrong mid-transaction (a lying reply, a cut upload),
                    // the next attempt starts on a new connection: the CPU forgets an
                    // upload left open, and no stale reply is read as the next one.
                    if matches!(f, Failed::Retry(_)) {
                        self.conn = None;
                    }
                    tries.after(f).await?
                }
            }
        }
    }

    /// A userdata function and every piece of its answer.
    async fn userdata(
        &mut self,
        group: u8,
        sf: u8,
        payload: &[u8],
    ) -> Result<Vec<u8>, Failed<S7Error>> {
        let mut out = Vec::new();
        let mut seq = 0u8;
        let mut first = true;
        // At least one byte per piece: a bound on the pieces as on the bytes.
        for _ in 0..MAX_USERDATA {
            let req = Pdu {
                rosctr: proto::USERDATA,
                pdu_ref: 0,
                error: 0,
                param: proto::userdata_param(group, sf, seq),
                data: proto::userdata_data(if first { payload } else { &[] }),
            };
            let reply = self.call(req).await?;
            let r = proto::parse_userdata_reply(&reply, group, sf).map_err(retry_garbage)?;
            // A refusal is a whole answer: the connection stays (a new one per refused
            // block info would weigh on the CPU).
            if r.error != 0 || r.return_code != proto::RC_OK {
                return Err(Failed::Final(S7Error::Refused(if r.error != 0 {
                    proto::error_text(r.error)
                } else {
                    proto::item_error_text(r.return_code)
                })));
            }
            if r.more && r.payload.is_empty() {
                return Err(retry_garbage(WireError::Garbage(
                    "an empty piece that says more follow".into(),
                )));
            }
            if out.len() + r.payload.len() > MAX_USERDATA {
                return Err(Failed::Final(S7Error::Garbage(format!(
                    "an answer longer than {MAX_USERDATA} bytes"
                ))));
            }
            out.extend_from_slice(&r.payload);
            if !r.more {
                return Ok(out);
            }
            seq = r.seq;
            first = false;
        }
        Err(Failed::Final(S7Error::Garbage(
            "an answer that never ends".into(),
        )))
    }

    /// Start upload, upload pieces until the last, end upload; the bytes must be exactly
    /// as many as announced and no more than `max`.
    async fn upload(&mut self, t: BlockType, n: u16, max: u32) -> Result<Vec<u8>, Failed<S7Error>> {
        let start = self
            .call(Pdu::job(0, proto::start_upload_param(t, n), vec![]))
            .await?;
        if start.error != 0 {
            return Err(Failed::Final(S7Error::Refused(proto::error_text(
                start.error,
            ))));
        }
        let (id, len) = proto::parse_start_upload_reply(&start.param).map_err(retry_garbage)?;
        if len > max {
            self.conn = None;
            return Err(Failed::Final(S7Error::Refused(format!(
                "the block is {len} bytes, more than the {max} plcvault uploads"
            ))));
        }
        let mut out = Vec::with_capacity(len as usize);
        loop {
            let piece = self
                .call(Pdu::job(
                    0,
                    proto::upload_param(proto::F_UPLOAD, id),
                    vec![],
                ))
                .await?;
            if piece.error != 0 {
                self.conn = None;
                return Err(Failed::Final(S7Error::Refused(proto::error_text(
                    piece.error,
                ))));
            }
            let (bytes, more) = proto::parse_upload_reply(&piece).map_err(retry_garbage)?;
            if out.len() + bytes.len() > len as usize || (more && bytes.is_empty()) {
                return Err(retry_garbage(WireError::Garbage(format!(
                    "upload pieces longer than the {len} bytes announced"
                ))));
            }
            out.extend_from_slice(&bytes);
            if !more {
                break;
            }
        }
        if out.len() != len as usize {
            return Err(retry_garbage(WireError::Garbage(format!(
                "the upload ended after {} of the {len} bytes announced",
                out.len()
            ))));
        }
        let end = self
            .call(Pdu::job(
                0,
                proto::upload_param(proto::F_END_UPLOAD, id),
                vec![],
            ))
            .await?;
        if end.error != 0 {
            // The bytes are whole; a CPU that does not close the upload cleanly is told
            // by dropping the connection.
            self.conn = None;
        }
        Ok(out)
    }

    /// `len` bytes of DB `db` from `start`, in requests that fit the PDU.
    async fn read_db(&mut self, db: u16, start: u32, len: u32) -> Result<Vec<u8>, Failed<S7Error>> {
        let mut out = Vec::with_capacity(len as usize);
        while (out.len() as u32) < len {
            if self.conn.is_none() {
                self.connect().await?;
            }
            // Reply overhead: 12 header, 2 parameters, 4 item header.
            let room = u32::from(self.pdu).saturating_sub(18).max(1);
            let at = start + out.len() as u32;
            let n = (len - out.len() as u32).min(room) as u16;
            let mut param = vec![proto::F_READ_VAR, 1];
            param.extend_from_slice(&proto::any_item(db, at, n));
            let reply = self.call(Pdu::job(0, param, vec![])).await?;
            if reply.error != 0 {
                return Err(Failed::Final(S7Error::Refused(proto::error_text(
                    reply.error,
                ))));
            }
            let bytes = parse_read_reply(&reply, n).map_err(|e| match e {
                ReadReply::Item(rc) => Failed::Final(S7Error::Refused(format!(
                    "DB{db} bytes {at}..{}: {}",
                    at + u32::from(n),
                    proto::item_error_text(rc)
                ))),
                ReadReply::Wire(w) => retry_garbage(w),
            })?;
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// Writes `bytes` into DB `db` from `start` (restores onto a writable CPU only: the
    /// caller holds the device's write permit).
    ///
    /// Fails when a write is refused or the connection fails after the retries.
    pub async fn write_db(&mut self, db: u16, start: u32, bytes: &[u8]) -> Result<(), S7Error> {
        let mut done = 0usize;
        while done < bytes.len() {
            let mut tries = Tries::new(self.backoff);
            loop {
                let r = async {
                    if self.conn.is_none() {
                        self.connect().await?;
                    }
                    // Request overhead: 10 header, 14 parameters, 4 data header.
                    let room = usize::from(self.pdu).saturating_sub(28).max(1);
                    let n = (bytes.len() - done).min(room);
                    let at = start + done as u32;
                    let mut param = vec![proto::F_WRITE_VAR, 1];
                    param.extend_from_slice(&proto::any_item(db, at, n as u16));
                    let mut data = vec![0x00, 0x04];
                    data.extend_from_slice(&((n * 8) as u16).to_be_bytes());
                    data.extend_from_slice(&bytes[done..done + n]);
                    let reply = self.call(Pdu::job(0, param, data)).await?;
                    match reply.data.first() {
                        _ if reply.error != 0 => Err(Failed::Final(S7Error::Refused(
                            proto::error_text(reply.error),
                        ))),
                        Some(&proto::RC_OK) => Ok(n),
                        Some(rc) => Err(Failed::Final(S7Error::Refused(format!(
                            "write DB{db} at {at}: {}",
                            proto::item_error_text(*rc)
                        )))),
                        None => Err(retry_garbage(WireError::Garbage(
                            "a write reply without its item".into(),
                        ))),
                    }
                }
                .await;
                match r {
                    Ok(n) => {
                        done += n;
                        break;
                    }
                    Err(f) => tries.after(f).await?,
                }
            }
        }
        Ok(())
    }
}

fn retry_garbage(e: WireError) -> Failed<S7Error> {
    Failed::Retry(S7Error::Garbage(e.to_string()))
}

enum ReadReply {
    Item(u8),
    Wire(WireError),
}

/// The bytes of a one-item read var reply of `n` bytes.
fn parse_read_reply(p: &Pdu, n: u16) -> Result<Vec<u8>, ReadReply> {
    let wire = |s: &str| ReadReply::Wire(WireError::Garbage(s.into()));
    if p.rosctr != proto::ACK_DATA || p.param != [proto::F_READ_VAR, 1] {
        return Err(wire("not a read var reply to one item"));
    }
    let d = &p.data;
    if d.len() < 4 {
        return Err(ReadReply::Item(
            *d.first().ok_or_else(|| wire("an empty read reply"))?,
        ));
    }
    if d[0] != proto::RC_OK {
        return Err(ReadReply::Item(d[0]));
    }
    let len = u16::from_be_bytes([d[2], d[3]]) as usize;
    // Transport sizes 0x03 (bit), 0x04 (byte/word: length in bits), 0x09 (octets).
    let bytes = match d[1] {
        0x04 | 0x03 => len.div_ceil(8),
        _ => len,
    };
    if bytes != d.len() - 4 || bytes != usize::from(n) {
        return Err(wire(&format!(
            "a read reply of {} bytes ({bytes} by its length field) for {n} asked",
            d.len() - 4
        )));
    }
    Ok(d[4..].to_vec())
}
