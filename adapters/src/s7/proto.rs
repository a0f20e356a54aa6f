//! S7comm on ISO-on-TCP, as both sides speak it: RFC 1006 TPKT frames, the ISO 8073 COTP
//! connection (CR/CC with TSAPs, DT data units), and S7 PDUs (job, ack-data and userdata
//! headers, parameters and data). Shared by the client (`super::client`) and the simulated
//! CPU (`super::sim`); nothing here does I/O beyond reading and writing whole frames, and
//! every length read from the wire is checked before it is trusted.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// S7 protocol id, first byte of every S7 PDU.
pub const PROTOCOL_ID: u8 = 0x32;
/// PDU types (ROSCTR).
pub const JOB: u8 = 0x01;
pub const ACK: u8 = 0x02;
pub const ACK_DATA: u8 = 0x03;
pub const USERDATA: u8 = 0x07;

/// Job functions.
pub const F_READ_VAR: u8 = 0x04;
pub const F_WRITE_VAR: u8 = 0x05;
pub const F_START_UPLOAD: u8 = 0x1D;
pub const F_UPLOAD: u8 = 0x1E;
pub const F_END_UPLOAD: u8 = 0x1F;
pub const F_SETUP: u8 = 0xF0;

/// Userdata function groups and the subfunctions plcvault uses.
pub const G_BLOCK: u8 = 0x03;
pub const G_CPU: u8 = 0x04;
pub const SF_LIST_ALL: u8 = 0x01;
pub const SF_LIST_TYPE: u8 = 0x02;
pub const SF_BLOCK_INFO: u8 = 0x03;
pub const SF_READ_SZL: u8 = 0x01;

/// Area code of data blocks in read/write var.
pub const AREA_DB: u8 = 0x84;
/// Item return code: success.
pub const RC_OK: u8 = 0xFF;

/// The smallest and largest PDU sizes S7 CPUs negotiate (S7-200 240, S7-300 240 or 480,
/// S7-400 480 or 960, S7-1500 960).
pub const MIN_PDU: u16 = 240;
pub const MAX_PDU: u16 = 960;

/// Bytes of the S7 header: 10, and 12 for (ack-)data replies with their error fields.
const HEADER: usize = 10;
const HEADER_ACK: usize = 12;

/// A COTP DT data unit's header: length 2, code 0xF0, TPDU number with the EOT bit.
const COTP_DT: [u8; 3] = [0x02, 0xF0, 0x80];

/// Block types as the protocol writes them (ASCII in listings and file names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlockType {
    Ob,
    Fb,
    Fc,
    Db,
    Sdb,
}

impl BlockType {
    pub const ALL: [BlockType; 5] = [
        BlockType::Ob,
        BlockType::Fb,
        BlockType::Fc,
        BlockType::Db,
        BlockType::Sdb,
    ];

    /// The code in listings, block info and upload names (`'8'` OB, `'A'` DB ...).
    pub fn code(self) -> u8 {
        match self {
            BlockType::Ob => 0x38,
            BlockType::Db => 0x41,
            BlockType::Sdb => 0x42,
            BlockType::Fc => 0x43,
            BlockType::Fb => 0x45,
        }
    }

    pub fn from_code(c: u8) -> Option<BlockType> {
        BlockType::ALL.into_iter().find(|t| t.code() == c)
    }

    /// The sub-block type in an MC7 header.
    pub fn subblock(self) -> u8 {
        match self {
            BlockType::Ob => 0x08,
            BlockType::Db => 0x0A,
            BlockType::Sdb => 0x0B,
            BlockType::Fc => 0x0C,
            BlockType::Fb => 0x0E,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockType::Ob => "OB",
            BlockType::Db => "DB",
            BlockType::Sdb => "SDB",
            BlockType::Fc => "FC",
            BlockType::Fb => "FB",
        }
    }

    pub fn parse(s: &str) -> Option<BlockType> {
        BlockType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for BlockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong on the wire or in a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The connection failed, closed or timed out.
    Io(String),
    /// The bytes are not what the protocol allows (a lying length, a wrong reference,
    /// a fragment too many): never stored.
    Garbage(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => f.write_str(e),
            WireError::Garbage(e) => write!(f, "malformed reply ({e})"),
        }
    }
}

fn garbage(why: impl Into<String>) -> WireError {
    WireError::Garbage(why.into())
}

/// Reads one TPKT frame and returns what it carries, refusing frames longer than `max`.
///
/// Fails when the stream ends or the frame header is not TPKT version 3.
pub async fn read_tpkt<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, WireError> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head)
        .await
        .map_err(|e| WireError::Io(format!("connection closed: {e}")))?;
    if head[0] != 3 {
        return Err(garbage(format!("TPKT version {} (not 3)", head[0])));
    }
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    if len < 7 || len - 4 > max {
        return Err(garbage(format!(
            "TPKT length {len} outside 7..={}",
            max + 4
        )));
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body)
        .await
        .map_err(|e| WireError::Io(format!("connection closed inside a frame: {e}")))?;
    Ok(body)
}

/// Writes `payload` as one TPKT frame.
///
/// Fails when the connection fails.
pub async fn write_tpkt<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> Result<(), WireError> {
    let len = payload.len() + 4;
    let mut frame = Vec::with_capacity(len);
    frame.extend_from_slice(&[3, 0]);
    frame.extend_from_slice(&(len as u16).to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame)
        .await
        .map_err(|e| WireError::Io(format!("cannot send: {e}")))
}

/// A COTP connection request or confirm, as far as S7 uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cotp {
    /// 0xE0 request, 0xD0 confirm.
    pub code: u8,
    pub src_ref: u16,
    pub dst_ref: u16,
    pub src_tsap: Option<u16>,
    pub dst_tsap: Option<u16>,
    /// TPDU size code (0x0A = 1024 bytes).
    pub tpdu_size: Option<u8>,
}

pub const COTP_CR: u8 = 0xE0;
pub const COTP_CC: u8 = 0xD0;
pub const COTP_DR: u8 = 0x80;
pub const COTP_ER: u8 = 0x70;

impl Cotp {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![0, self.code];
        v.extend_from_slice(&self.dst_ref.to_be_bytes());
        v.extend_from_slice(&self.src_ref.to_be_bytes());
        v.push(0); // class 0
        if let Some(s) = self.tpdu_size {
            v.extend_from_slice(&[0xC0, 1, s]);
        }
        if let Some(t) = self.src_tsap {
            v.extend_from_slice(&[0xC1, 2]);
            v.extend_from_slice(&t.to_be_bytes());
        }
        if let Some(t) = self.dst_tsap {
            v.extend_from_slice(&[0xC2, 2]);
            v.extend_from_slice(&t.to_be_bytes());
        }
        v[0] = (v.len() - 1) as u8;
        v
    }

    /// Fails when the bytes are not a CR or CC with well-formed parameters.
    pub fn decode(b: &[u8]) -> Result<Cotp, WireError> {
        // A disconnect request (DR) or error (ER) instead of a confirm: the CPU refuses
        // (no module at that TSAP); said as such, not as garbage.
        if b.len() >= 2 && matches!(b[1] & 0xF0, COTP_DR | COTP_ER) {
            return Ok(Cotp {
                code: b[1] & 0xF0,
                src_ref: 0,
                dst_ref: 0,
                src_tsap: None,
                dst_tsap: None,
                tpdu_size: None,
            });
        }
        if b.len() < 7 || b[0] as usize != b.len() - 1 {
            return Err(garbage("COTP connection header of a wrong length"));
        }
        let mut c = Cotp {
            code: b[1] & 0xF0,
            dst_ref: u16::from_be_bytes([b[2], b[3]]),
            src_ref: u16::from_be_bytes([b[4], b[5]]),
            src_tsap: None,
            dst_tsap: None,
            tpdu_size: None,
        };
        if c.code != COTP_CR && c.code != COTP_CC {
            return Err(garbage(format!(
                "COTP code {:#04x} where CR or CC was due",
                b[1]
            )));
        }
        let mut i = 7;
        while i < b.len() {
            let (code, len) = (
                b[i],
                *b.get(i + 1).ok_or_else(|| garbage("COTP parameter cut"))? as usize,
            );
            let v = b
                .get(i + 2..i + 2 + len)
                .ok_or_else(|| garbage("COTP parameter cut"))?;
            match (code, len) {
                (0xC0, 1) => c.tpdu_size = Some(v[0]),
                (0xC1, 2) => c.src_tsap = Some(u16::from_be_bytes([v[0], v[1]])),
                (0xC2, 2) => c.dst_tsap = Some(u16::from_be_bytes([v[0], v[1]])),
                _ => {}
            }
            i += 2 + len;
        }
        Ok(c)
    }
}

/// Reads one S7 PDU from COTP DT units, joining units until the one with the EOT bit;
/// refuses a PDU longer than `max` (the negotiated size) and more than `max / 16 + 4`
/// units, so a peer that never ends a PDU cannot make plcvault wait or grow without end.
///
/// Fails when a unit is not DT, or the limits are passed.
pub async fn read_pdu<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Vec<u8>, WireError> {
    let mut pdu = Vec::new();
    for _ in 0..(max / 16 + 4) {
        let frame = read_tpkt(r, max + 3).await?;
        if frame.len() < 3 || frame[0] != 2 || frame[1] != 0xF0 {
            return Err(garbage("a COTP unit that is not data (DT)"));
        }
        pdu.extend_from_slice(&frame[3..]);
        if pdu.len() > max {
            return Err(garbage(format!("a PDU longer than the {max} bytes agreed")));
        }
        if frame[2] & 0x80 != 0 {
            return Ok(pdu);
        }
    }
    Err(garbage("a PDU that never ends (too many COTP units)"))
}

/// Writes one S7 PDU as a single COTP DT unit.
///
/// Fails when the connection fails.
pub async fn write_pdu<W: AsyncWrite + Unpin>(w: &mut W, pdu: &[u8]) -> Result<(), WireError> {
    let mut payload = COTP_DT.to_vec();
    payload.extend_from_slice(pdu);
    write_tpkt(w, &payload).await
}

/// One S7 PDU, decoded into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub rosctr: u8,
    pub pdu_ref: u16,
    /// Error class and code of ack and ack-data replies (0: none).
    pub error: u16,
    pub param: Vec<u8>,
    pub data: Vec<u8>,
}

impl Pdu {
    pub fn job(pdu_ref: u16, param: Vec<u8>, data: Vec<u8>) -> Pdu {
        Pdu {
            rosctr: JOB,
            pdu_ref,
            error: 0,
            param,
            data,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![PROTOCOL_ID, self.rosctr, 0, 0];
        v.extend_from_slice(&self.pdu_ref.to_be_bytes());
        v.extend_from_slice(&(self.param.len() as u16).to_be_bytes());
        v.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
        if self.rosctr == ACK || self.rosctr == ACK_DATA {
            v.extend_from_slice(&self.error.to_be_bytes());
        }
        v.extend_from_slice(&self.param);
        v.extend_from_slice(&self.data);
        v
    }

    /// Fails when the header is not S7, or its lengths do not add up to the PDU's.
    pub fn decode(b: &[u8]) -> Result<Pdu, WireError> {
        if b.len() < HEADER || b[0] != PROTOCOL_ID {
            return Err(garbage("not an S7 PDU (protocol id 0x32)"));
        }
        let rosctr = b[1];
        let head = match rosctr {
            ACK | ACK_DATA => HEADER_ACK,
            JOB | USERDATA => HEADER,
            other => return Err(garbage(format!("unknown PDU type {other:#04x}"))),
        };
        if b.len() < head {
            return Err(garbage("S7 header cut"));
        }
        let plen = u16::from_be_bytes([b[6], b[7]]) as usize;
        let dlen = u16::from_be_bytes([b[8], b[9]]) as usize;
        if head + plen + dlen != b.len() {
            return Err(garbage(format!(
                "the header says {} parameter and {} data bytes, the PDU holds {}",
                plen,
                dlen,
                b.len() - head
            )));
        }
        Ok(Pdu {
            rosctr,
            pdu_ref: u16::from_be_bytes([b[4], b[5]]),
            error: if head == HEADER_ACK {
                u16::from_be_bytes([b[10], b[11]])
            } else {
                0
            },
            param: b[head..head + plen].to_vec(),
            data: b[head + plen..].to_vec(),
        })
    }
}

/// Setup communication parameters: the PDU size asked for (or granted).
pub fn setup_param(pdu_size: u16) -> Vec<u8> {
    let mut p = vec![F_SETUP, 0, 0, 1, 0, 1];
    p.extend_from_slice(&pdu_size.to_be_bytes());
    p
}

/// The PDU size in a setup communication parameter block.
///
/// Fails when it is not one.
pub fn setup_pdu_size(param: &[u8]) -> Result<u16, WireError> {
    if param.len() != 8 || param[0] != F_SETUP {
        return Err(garbage("not a setup communication reply"));
    }
    Ok(u16::from_be_bytes([param[6], param[7]]))
}

/// An S7ANY address item of `len` bytes of data block `db` from byte `start`.
pub fn any_item(db: u16, start: u32, len: u16) -> [u8; 12] {
    let bit = start * 8;
    let mut i = [0x12, 0x0A, 0x10, 0x02, 0, 0, 0, 0, AREA_DB, 0, 0, 0];
    i[4..6].copy_from_slice(&len.to_be_bytes());
    i[6..8].copy_from_slice(&db.to_be_bytes());
    i[9] = (bit >> 16) as u8;
    i[10] = (bit >> 8) as u8;
    i[11] = bit as u8;
    i
}

/// A decoded S7ANY item: data block, start byte, length in bytes.
///
/// Fails when the item is not a byte-wise DB address.
pub fn parse_any_item(i: &[u8]) -> Result<(u8, u16, u32, u16), WireError> {
    if i.len() != 12 || i[0] != 0x12 || i[1] != 0x0A || i[2] != 0x10 {
        return Err(garbage("not an S7ANY item"));
    }
    let len = u16::from_be_bytes([i[4], i[5]]);
    let db = u16::from_be_bytes([i[6], i[7]]);
    let bit = (u32::from(i[9]) << 16) | (u32::from(i[10]) << 8) | u32::from(i[11]);
    // Transport size 0x02 BYTE (1 per element), 0x04 WORD (2), 0x06 DWORD (4).
    let mult = match i[3] {
        0x01..=0x03 => 1u32,
        0x04 | 0x05 => 2,
        0x06..=0x08 => 4,
        other => return Err(garbage(format!("transport size {other:#04x}"))),
    };
    let bytes = u32::from(len) * mult;
    if bytes > u32::from(u16::MAX) {
        return Err(garbage("an item longer than a PDU"));
    }
    Ok((i[8], db, bit / 8, bytes as u16))
}

/// A userdata request's parameters: a first request (`seq` 0) or a follow-up asking for
/// the next piece of answer `seq`.
pub fn userdata_param(group: u8, subfunction: u8, seq: u8) -> Vec<u8> {
    if seq == 0 {
        vec![0x00, 0x01, 0x12, 0x04, 0x11, 0x40 | group, subfunction, 0]
    } else {
        vec![
            0x00,
            0x01,
            0x12,
            0x08,
            0x12,
            0x40 | group,
            subfunction,
            seq,
            0,
            0,
            0,
            0,
        ]
    }
}

/// The data part of a userdata request or reply carrying `payload` (octet string), or
/// the empty one (return code 0x0A) of a follow-up.
pub fn userdata_data(payload: &[u8]) -> Vec<u8> {
    if payload.is_empty() {
        return vec![0x0A, 0, 0, 0];
    }
    let mut d = vec![RC_OK, 0x09];
    d.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    d.extend_from_slice(payload);
    d
}

/// A userdata request, as the simulated CPU reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserdataRequest {
    pub group: u8,
    pub subfunction: u8,
    /// 0 for a first request; the answer's sequence number for a follow-up.
    pub seq: u8,
    pub payload: Vec<u8>,
}

/// Fails when the parameters or data are not a userdata request.
pub fn parse_userdata_request(p: &Pdu) -> Result<UserdataRequest, WireError> {
    let q = &p.param;
    if q.len() < 8 || q[0..3] != [0x00, 0x01, 0x12] || q[3] as usize != q.len() - 4 {
        return Err(garbage("userdata parameters"));
    }
    if q[5] >> 4 != 4 {
        return Err(garbage("a userdata request of type other than request"));
    }
    let payload = match p.data.as_slice() {
        [0x0A, _, 0, 0] | [] => Vec::new(),
        [RC_OK, _, hi, lo, rest @ ..] if u16::from_be_bytes([*hi, *lo]) as usize == rest.len() => {
            rest.to_vec()
        }
        _ => return Err(garbage("userdata request data")),
    };
    Ok(UserdataRequest {
        group: q[5] & 0x0F,
        subfunction: q[6],
        seq: q[7],
        payload,
    })
}

/// A userdata reply's parameters: `seq` names the answer for follow-ups, `more` says
/// another piece follows, `error` is the function's error code (0: none).
pub fn userdata_reply_param(
    group: u8,
    subfunction: u8,
    seq: u8,
    more: bool,
    error: u16,
) -> Vec<u8> {
    let mut p = vec![
        0x00,
        0x01,
        0x12,
        0x08,
        0x12,
        0x80 | group,
        subfunction,
        seq,
        0,
        u8::from(more),
    ];
    p.extend_from_slice(&error.to_be_bytes());
    p
}

/// One piece of a userdata reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserdataReply {
    pub seq: u8,
    pub more: bool,
    /// The function's error code in the parameters, 0 when none.
    pub error: u16,
    /// The data part's return code (0xFF success).
    pub return_code: u8,
    pub payload: Vec<u8>,
}

/// Fails when the reply is not a userdata reply to `group`/`subfunction` or its data
/// length lies.
pub fn parse_userdata_reply(
    p: &Pdu,
    group: u8,
    subfunction: u8,
) -> Result<UserdataReply, WireError> {
    let q = &p.param;
    if p.rosctr != USERDATA {
        return Err(garbage(format!(
            "PDU type {:#04x} where userdata was due",
            p.rosctr
        )));
    }
    if q.len() != 12
        || q[0..4] != [0x00, 0x01, 0x12, 0x08]
        || q[5] != 0x80 | group
        || q[6] != subfunction
    {
        return Err(garbage("userdata reply parameters for another function"));
    }
    let error = u16::from_be_bytes([q[10], q[11]]);
    let d = &p.data;
    if d.len() < 4 {
        return Err(garbage("userdata reply data cut"));
    }
    let len = u16::from_be_bytes([d[2], d[3]]) as usize;
    if len != d.len() - 4 {
        return Err(garbage(format!(
            "userdata reply says {len} data bytes and holds {}",
            d.len() - 4
        )));
    }
    Ok(UserdataReply {
        seq: q[7],
        more: q[9] != 0,
        error,
        return_code: d[0],
        payload: d[4..].to_vec(),
    })
}

/// The name of a block in upload requests: `_0` type, five digits, `A` (active).
pub fn upload_name(t: BlockType, number: u16) -> Vec<u8> {
    let mut v = vec![b'_', b'0', t.code()];
    v.extend_from_slice(format!("{number:05}").as_bytes());
    v.push(b'A');
    v
}

/// Start upload parameters for block `t` `number`.
pub fn start_upload_param(t: BlockType, number: u16) -> Vec<u8> {
    let name = upload_name(t, number);
    let mut p = vec![F_START_UPLOAD, 0, 0, 0, 0, 0, 0, 0, name.len() as u8];
    p.extend_from_slice(&name);
    p
}

/// Upload and end upload parameters for upload `id`.
pub fn upload_param(function: u8, id: u32) -> Vec<u8> {
    let mut p = vec![function, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p
}

/// The upload id and the block length a start upload reply announces.
///
/// Fails when the reply is not one.
pub fn parse_start_upload_reply(param: &[u8]) -> Result<(u32, u32), WireError> {
    if param.len() < 9 || param[0] != F_START_UPLOAD {
        return Err(garbage("not a start upload reply"));
    }
    let id = u32::from_be_bytes([param[4], param[5], param[6], param[7]]);
    let n = param[8] as usize;
    let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    // A CPU writes the length as a counted string (`7` and seven digits, as Wireshark
    // decodes it); snap7's server as three zero bytes and five digits. Both are taken.
    let digits = match param.get(9..) {
        Some(d) if n == d.len() && all_digits(d) => d,
        Some(d) if d.len() == 7 && n == 0 && d[..2] == [0, 0] && all_digits(&d[2..]) => &d[2..],
        _ => return Err(garbage("the block length of a start upload reply")),
    };
    let len = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| garbage("the block length of a start upload reply"))?;
    Ok((id, len))
}

/// One upload reply's bytes and whether more follow.
///
/// Fails when the reply is not one or its length field lies.
pub fn parse_upload_reply(p: &Pdu) -> Result<(Vec<u8>, bool), WireError> {
    if p.param.len() != 2 || p.param[0] != F_UPLOAD || p.param[1] > 1 {
        return Err(garbage("not an upload reply"));
    }
    let d = &p.data;
    if d.len() < 4 {
        return Err(garbage("upload reply data cut"));
    }
    let len = u16::from_be_bytes([d[0], d[1]]) as usize;
    if len != d.len() - 4 {
        return Err(garbage(format!(
            "an upload piece says {len} bytes and holds {}",
            d.len() - 4
        )));
    }
    Ok((d[4..].to_vec(), p.param[1] == 1))
}

/// An upload reply piece.
pub fn upload_reply_data(bytes: &[u8]) -> Vec<u8> {
    let mut d = (bytes.len() as u16).to_be_bytes().to_vec();
    d.extend_from_slice(&[0x00, 0xFB]);
    d.extend_from_slice(bytes);
    d
}

/// The words of an S7 error (header error class and code, or a userdata error code).
pub fn error_text(code: u16) -> String {
    let what = match code {
        0x8104 => "function not available (context not supported)",
        0x8500 => "wrong PDU size",
        0xD209 => "block not found",
        0xD241 => "protection level too low (know-how protected or password)",
        0xD20E => "block protected",
        0xD401 => "SZL not available",
        0xD402 => "SZL index not available",
        0x0500 | 0x0501 => "resource not available",
        c if c >> 8 == 0x81 => "application relationship error",
        c if c >> 8 == 0x84 => "request error",
        c if c >> 8 == 0x85 => "PDU size error",
        c if c >> 8 == 0xD2 => "upload error",
        c if c >> 8 == 0xD4 => "diagnostic error",
        _ => "error",
    };
    format!("{code:#06x} ({what})")
}

/// The words of a read/write var item return code.
pub fn item_error_text(rc: u8) -> String {
    let what = match rc {
        0x01 => "hardware fault",
        0x03 => "access denied",
        0x05 => "address out of range",
        0x06 => "data type not supported",
        0x07 => "data type inconsistent",
        0x0A => "object does not exist",
        _ => "error",
    };
    format!("{rc:#04x} ({what})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdus_round_trip_and_lying_lengths_are_refused() {
        let p = Pdu::job(7, setup_param(960), vec![]);
        let b = p.encode();
        assert_eq!(Pdu::decode(&b).unwrap(), p);
        let mut lie = b.clone();
        lie[9] = 4; // data length 4, none present
        assert!(matches!(Pdu::decode(&lie), Err(WireError::Garbage(_))));
        let ack = Pdu {
            rosctr: ACK_DATA,
            pdu_ref: 1,
            error: 0xD209,
            param: vec![F_START_UPLOAD],
            data: vec![],
        };
        assert_eq!(Pdu::decode(&ack.encode()).unwrap(), ack);
    }

    #[test]
    fn cotp_requests_round_trip() {
        let c = Cotp {
            code: COTP_CR,
            src_ref: 1,
            dst_ref: 0,
            src_tsap: Some(0x0100),
            dst_tsap: Some(0x0102),
            tpdu_size: Some(0x0A),
        };
        assert_eq!(Cotp::decode(&c.encode()).unwrap(), c);
        assert!(Cotp::decode(&[2, 0xE0, 0]).is_err());
    }

    #[test]
    fn items_and_upload_names() {
        let i = any_item(10, 100, 50);
        assert_eq!(parse_any_item(&i).unwrap(), (AREA_DB, 10, 100, 50));
        assert_eq!(upload_name(BlockType::Fb, 10), b"_0E00010A");
        let mut p = vec![F_START_UPLOAD, 0, 1, 0, 0, 0, 0, 7, 7];
        p.extend_from_slice(b"0000123");
        assert_eq!(parse_start_upload_reply(&p).unwrap(), (7, 123));
        p[10] = b'x';
        assert!(parse_start_upload_reply(&p).is_err());
        // snap7's layout: three zero bytes and five digits.
        let mut q = vec![F_START_UPLOAD, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        q.extend_from_slice(b"00086");
        assert_eq!(parse_start_upload_reply(&q).unwrap(), (1, 86));
    }

    #[tokio::test]
    async fn a_pdu_in_pieces_is_joined_and_an_endless_one_refused() {
        let mut wire = Vec::new();
        for (i, piece) in [&b"\x32\x01"[..], b"\x00\x00"].iter().enumerate() {
            let mut u = vec![2, 0xF0, if i == 1 { 0x80 } else { 0 }];
            u.extend_from_slice(piece);
            write_tpkt(&mut wire, &u).await.unwrap();
        }
        let pdu = read_pdu(&mut wire.as_slice(), 960).await.unwrap();
        assert_eq!(pdu, b"\x32\x01\x00\x00");
        let mut endless = Vec::new();
        for _ in 0..100 {
            write_tpkt(&mut endless, &[2, 0xF0, 0, 1]).await.unwrap();
        }
        assert!(matches!(
            read_pdu(&mut endless.as_slice(), 240).await,
            Err(WireError::Garbage(_))
        ));
    }
}
