//! The EtherNet/IP and CIP codec shared by the client and the simulated controller:
//! encapsulation frames (24-byte header, little-endian), common packet format items,
//! CIP message router requests and replies, EPATH segments, the Unconnected Send wrapper
//! of the Connection Manager, and the Logix data types. Every length read off the wire is
//! checked against what holds it; nothing here allocates more than a frame's own length,
//! which is capped.

use std::fmt;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Encapsulation commands.
pub const CMD_NOP: u16 = 0x0000;
pub const CMD_LIST_SERVICES: u16 = 0x0004;
pub const CMD_LIST_IDENTITY: u16 = 0x0063;
pub const CMD_REGISTER_SESSION: u16 = 0x0065;
pub const CMD_UNREGISTER_SESSION: u16 = 0x0066;
pub const CMD_SEND_RR_DATA: u16 = 0x006F;
pub const CMD_SEND_UNIT_DATA: u16 = 0x0070;

/// Common packet format item types.
pub const ITEM_NULL: u16 = 0x0000;
pub const ITEM_IDENTITY: u16 = 0x000C;
pub const ITEM_CONNECTED_ADDRESS: u16 = 0x00A1;
pub const ITEM_CONNECTED_DATA: u16 = 0x00B1;
pub const ITEM_UNCONNECTED_DATA: u16 = 0x00B2;

/// CIP services.
pub const SVC_GET_ATTRIBUTE_ALL: u8 = 0x01;
pub const SVC_GET_ATTRIBUTE_LIST: u8 = 0x03;
pub const SVC_MULTIPLE: u8 = 0x0A;
pub const SVC_GET_ATTRIBUTE_SINGLE: u8 = 0x0E;
pub const SVC_FORWARD_CLOSE: u8 = 0x4E;
pub const SVC_READ_TAG: u8 = 0x4C;
pub const SVC_WRITE_TAG: u8 = 0x4D;
pub const SVC_READ_TAG_FRAGMENTED: u8 = 0x52;
/// The same code as Read Tag Fragmented, sent to the Connection Manager.
pub const SVC_UNCONNECTED_SEND: u8 = 0x52;
pub const SVC_WRITE_TAG_FRAGMENTED: u8 = 0x53;
pub const SVC_FORWARD_OPEN: u8 = 0x54;
pub const SVC_GET_INSTANCE_ATTRIBUTE_LIST: u8 = 0x55;
pub const SVC_LARGE_FORWARD_OPEN: u8 = 0x5B;

/// CIP classes.
pub const CLASS_IDENTITY: u16 = 0x01;
pub const CLASS_MESSAGE_ROUTER: u16 = 0x02;
pub const CLASS_CONNECTION_MANAGER: u16 = 0x06;
pub const CLASS_PROGRAM_NAME: u16 = 0x64;
pub const CLASS_SYMBOL: u16 = 0x6B;
pub const CLASS_TEMPLATE: u16 = 0x6C;

/// CIP general status codes.
pub const ST_OK: u8 = 0x00;
pub const ST_CONNECTION_FAILURE: u8 = 0x01;
pub const ST_PATH_SEGMENT: u8 = 0x04;
pub const ST_PATH_UNKNOWN: u8 = 0x05;
pub const ST_PARTIAL: u8 = 0x06;
pub const ST_NOT_SUPPORTED: u8 = 0x08;
pub const ST_PRIVILEGE: u8 = 0x0F;
pub const ST_NOT_ENOUGH_DATA: u8 = 0x13;
pub const ST_ATTRIBUTE_UNSUPPORTED: u8 = 0x14;
pub const ST_TOO_MUCH_DATA: u8 = 0x15;
pub const ST_OBJECT_MISSING: u8 = 0x16;
pub const ST_EMBEDDED: u8 = 0x1E;
pub const ST_GENERAL: u8 = 0xFF;

/// Encapsulation status codes.
pub const ENCAP_OK: u32 = 0;
pub const ENCAP_INVALID_COMMAND: u32 = 0x0001;
pub const ENCAP_INVALID_SESSION: u32 = 0x0064;
pub const ENCAP_INVALID_LENGTH: u32 = 0x0065;

/// The encapsulation header's size, and the largest frame either side accepts (a Large
/// Forward Open carries 4,002 bytes; an encapsulation length field allows 65,535).
pub const HEADER: usize = 24;
pub const MAX_FRAME: usize = 65_535;

/// Why a frame could not be read or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    Io(String),
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

/// One encapsulation frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub command: u16,
    pub session: u32,
    pub status: u32,
    pub context: [u8; 8],
    pub options: u32,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn new(command: u16, session: u32, context: [u8; 8], data: Vec<u8>) -> Frame {
        Frame {
            command,
            session,
            status: 0,
            context,
            options: 0,
            data,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER + self.data.len());
        b.extend_from_slice(&self.command.to_le_bytes());
        b.extend_from_slice(&(self.data.len() as u16).to_le_bytes());
        b.extend_from_slice(&self.session.to_le_bytes());
        b.extend_from_slice(&self.status.to_le_bytes());
        b.extend_from_slice(&self.context);
        b.extend_from_slice(&self.options.to_le_bytes());
        b.extend_from_slice(&self.data);
        b
    }
}

/// Reads one frame whose data is at most `max` bytes.
///
/// Fails when the connection breaks or the header announces more than `max`.
pub async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Frame, WireError> {
    let mut h = [0u8; HEADER];
    r.read_exact(&mut h)
        .await
        .map_err(|e| WireError::Io(format!("the connection broke: {e}")))?;
    let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
    if len > max {
        return Err(garbage(format!(
            "a frame of {len} bytes, more than the {max} accepted"
        )));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)
        .await
        .map_err(|e| WireError::Io(format!("the connection broke inside a frame: {e}")))?;
    Ok(Frame {
        command: u16::from_le_bytes([h[0], h[1]]),
        session: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        status: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
        context: h[12..20].try_into().expect("8 bytes"),
        options: u32::from_le_bytes([h[20], h[21], h[22], h[23]]),
        data,
    })
}

/// Writes one frame.
///
/// Fails when the connection breaks.
pub async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, f: &Frame) -> Result<(), WireError> {
    w.write_all(&f.encode())
        .await
        .map_err(|e| WireError::Io(format!("the connection broke: {e}")))
}

/// A cursor over little-endian fields that fails, never panics, past the end.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, at: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| {
                garbage(format!(
                    "{n} bytes wanted at byte {} of {}",
                    self.at,
                    self.b.len()
                ))
            })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }
    pub fn left(&self) -> usize {
        self.b.len() - self.at
    }
}

/// One common packet format item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub kind: u16,
    pub data: Vec<u8>,
}

/// Encodes items as a common packet format list.
pub fn cpf(items: &[Item]) -> Vec<u8> {
    let mut b = (items.len() as u16).to_le_bytes().to_vec();
    for i in items {
        b.extend_from_slice(&i.kind.to_le_bytes());
        b.extend_from_slice(&(i.data.len() as u16).to_le_bytes());
        b.extend_from_slice(&i.data);
    }
    b
}

/// Decodes a common packet format list; every item must lie inside `b` and nothing may
/// follow the last.
pub fn parse_cpf(b: &[u8]) -> Result<Vec<Item>, WireError> {
    let mut r = Reader::new(b);
    let n = r.u16()?;
    if n > 16 {
        return Err(garbage(format!("{n} packet items")));
    }
    let mut out = Vec::new();
    for _ in 0..n {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        out.push(Item {
            kind,
            data: r.take(len)?.to_vec(),
        });
    }
    if r.left() != 0 {
        return Err(garbage(format!(
            "{} bytes after the packet items",
            r.left()
        )));
    }
    Ok(out)
}

/// SendRRData's data: interface handle, timeout, then the items.
pub fn rr_data(timeout_s: u16, items: &[Item]) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 0];
    b.extend_from_slice(&timeout_s.to_le_bytes());
    b.extend_from_slice(&cpf(items));
    b
}

/// The items of SendRRData or SendUnitData data.
pub fn parse_rr_data(b: &[u8]) -> Result<Vec<Item>, WireError> {
    if b.len() < 6 {
        return Err(garbage(format!("{} bytes of SendRRData", b.len())));
    }
    parse_cpf(&b[6..])
}

/// One EPATH segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Class(u16),
    Instance(u32),
    Attribute(u16),
    /// ANSI extended symbol (a tag or program name).
    Symbol(String),
    /// A member or array index.
    Element(u32),
    /// A port segment: port, link address (route paths).
    Port(u8, u8),
}

/// Encodes segments as a padded EPATH.
pub fn epath(segs: &[Segment]) -> Vec<u8> {
    let mut b = Vec::new();
    let logical = |b: &mut Vec<u8>, base: u8, v: u32| {
        if v <= 0xFF {
            b.extend_from_slice(&[base, v as u8]);
        } else if v <= 0xFFFF {
            b.extend_from_slice(&[base | 1, 0]);
            b.extend_from_slice(&(v as u16).to_le_bytes());
        } else {
            b.extend_from_slice(&[base | 2, 0]);
            b.extend_from_slice(&v.to_le_bytes());
        }
    };
    for s in segs {
        match s {
            Segment::Class(c) => logical(&mut b, 0x20, u32::from(*c)),
            Segment::Instance(i) => logical(&mut b, 0x24, *i),
            Segment::Attribute(a) => logical(&mut b, 0x30, u32::from(*a)),
            Segment::Element(e) => logical(&mut b, 0x28, *e),
            Segment::Symbol(name) => {
                b.push(0x91);
                b.push(name.len() as u8);
                b.extend_from_slice(name.as_bytes());
                if name.len() % 2 == 1 {
                    b.push(0);
                }
            }
            Segment::Port(p, l) => b.extend_from_slice(&[*p & 0x0F, *l]),
        }
    }
    b
}

/// Decodes a padded EPATH of logical, symbolic and port segments.
pub fn parse_epath(b: &[u8]) -> Result<Vec<Segment>, WireError> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while r.left() > 0 {
        let t = r.u8()?;
        let logical = |r: &mut Reader, t: u8| -> Result<u32, WireError> {
            Ok(match t & 0x03 {
                0 => u32::from(r.u8()?),
                1 => {
                    r.u8()?;
                    u32::from(r.u16()?)
                }
                2 => {
                    r.u8()?;
                    r.u32()?
                }
                _ => return Err(garbage(format!("segment 0x{t:02x}"))),
            })
        };
        match t & 0xFC {
            0x20 => out.push(Segment::Class(logical(&mut r, t)? as u16)),
            0x24 => out.push(Segment::Instance(logical(&mut r, t)?)),
            0x30 => out.push(Segment::Attribute(logical(&mut r, t)? as u16)),
            0x28 => out.push(Segment::Element(logical(&mut r, t)?)),
            0x90 if t == 0x91 => {
                let n = usize::from(r.u8()?);
                let name = r.take(n)?;
                if n % 2 == 1 {
                    r.u8()?;
                }
                let name =
                    std::str::from_utf8(name).map_err(|_| garbage("a symbol that is not text"))?;
                out.push(Segment::Symbol(name.to_string()));
            }
            _ if t & 0xE0 == 0 && t & 0x10 == 0 => {
                out.push(Segment::Port(t & 0x0F, r.u8()?));
            }
            _ => return Err(garbage(format!("segment type 0x{t:02x}"))),
        }
    }
    Ok(out)
}

/// A CIP request: service, path, data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub service: u8,
    pub path: Vec<u8>,
    pub data: Vec<u8>,
}

impl Request {
    pub fn new(service: u8, path: &[Segment], data: Vec<u8>) -> Request {
        Request {
            service,
            path: epath(path),
            data,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![self.service, (self.path.len() / 2) as u8];
        b.extend_from_slice(&self.path);
        b.extend_from_slice(&self.data);
        b
    }

    /// Fails when the path runs past the message.
    pub fn decode(b: &[u8]) -> Result<Request, WireError> {
        let mut r = Reader::new(b);
        let service = r.u8()?;
        let words = usize::from(r.u8()?);
        let path = r.take(words * 2)?.to_vec();
        Ok(Request {
            service,
            path,
            data: r.rest().to_vec(),
        })
    }
}

/// A CIP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The request's service (the reply bit cleared).
    pub service: u8,
    pub status: u8,
    pub extended: Vec<u16>,
    pub data: Vec<u8>,
}

impl Reply {
    pub fn ok(service: u8, data: Vec<u8>) -> Reply {
        Reply {
            service,
            status: ST_OK,
            extended: Vec::new(),
            data,
        }
    }

    pub fn error(service: u8, status: u8) -> Reply {
        Reply {
            service,
            status,
            extended: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![
            self.service | 0x80,
            0,
            self.status,
            self.extended.len() as u8,
        ];
        for e in &self.extended {
            b.extend_from_slice(&e.to_le_bytes());
        }
        b.extend_from_slice(&self.data);
        b
    }

    /// Fails when it is not a reply or its status words run past it.
    pub fn decode(b: &[u8]) -> Result<Reply, WireError> {
        let mut r = Reader::new(b);
        let service = r.u8()?;
        if service & 0x80 == 0 {
            return Err(garbage(format!("service 0x{service:02x} is not a reply")));
        }
        r.u8()?;
        let status = r.u8()?;
        let n = r.u8()?;
        let mut extended = Vec::new();
        for _ in 0..n {
            extended.push(r.u16()?);
        }
        Ok(Reply {
            service: service & 0x7F,
            status,
            extended,
            data: r.rest().to_vec(),
        })
    }
}

/// An Unconnected Send to the Connection Manager carrying `inner` along `route`.
pub fn unconnected_send(inner: &Request, route: &[(u8, u8)]) -> Request {
    let msg = inner.encode();
    // Priority/tick time 0x0A (1,024 ms ticks) and 5 ticks: about 5 s for the target to
    // answer, as pycomm3 sends.
    let mut d = vec![0x0A, 0x05];
    d.extend_from_slice(&(msg.len() as u16).to_le_bytes());
    d.extend_from_slice(&msg);
    if msg.len() % 2 == 1 {
        d.push(0);
    }
    let path: Vec<Segment> = route.iter().map(|&(p, l)| Segment::Port(p, l)).collect();
    let rp = epath(&path);
    d.push((rp.len() / 2) as u8);
    d.push(0);
    d.extend_from_slice(&rp);
    Request::new(
        SVC_UNCONNECTED_SEND,
        &[
            Segment::Class(CLASS_CONNECTION_MANAGER),
            Segment::Instance(1),
        ],
        d,
    )
}

/// The transport of the connections plcvault opens: class 3 (explicit messaging),
/// application triggered, server side. Never class 0 or 1 (I/O: outputs).
pub const TRANSPORT_CLASS3: u8 = 0xA3;
/// Who opens the connection (the originator's vendor id and serial number).
pub const ORIGINATOR_VENDOR: u16 = 0xFFFE;
pub const ORIGINATOR_SERIAL: u32 = 0x504C_5654;
/// The largest message a Large Forward Open asks for, and a Forward Open.
pub const LARGE_CONNECTION_SIZE: u16 = 4002;
pub const CONNECTION_SIZE: u16 = 504;
/// What an unconnected message carries at most (Logix).
pub const UNCONNECTED_SIZE: usize = 504;

/// A (Large) Forward Open to the Connection Manager for an explicit-messaging connection
/// (transport class 3) to the Message Router along `route`, with our connection id
/// `t_o_id`, serial `serial` and message size `size`.
pub fn forward_open(
    large: bool,
    t_o_id: u32,
    serial: u16,
    size: u16,
    route: &[(u8, u8)],
) -> Request {
    // Priority/tick time and timeout ticks: about 5 s for the open itself.
    let mut d = vec![0x0A, 0x05];
    d.extend_from_slice(&0u32.to_le_bytes()); // O->T id: the target chooses
    d.extend_from_slice(&t_o_id.to_le_bytes());
    d.extend_from_slice(&serial.to_le_bytes());
    d.extend_from_slice(&ORIGINATOR_VENDOR.to_le_bytes());
    d.extend_from_slice(&ORIGINATOR_SERIAL.to_le_bytes());
    // Timeout multiplier 0 (x4 of the 2 s RPI): the controller drops the connection by
    // itself within 8 s if plcvault vanishes without a Forward Close.
    d.extend_from_slice(&[0, 0, 0, 0]);
    let rpi = 2_000_000u32.to_le_bytes();
    for _ in 0..2 {
        d.extend_from_slice(&rpi);
        // Point to point, low priority, variable size.
        if large {
            d.extend_from_slice(&(0x4200_0000u32 | u32::from(size)).to_le_bytes());
        } else {
            d.extend_from_slice(&(0x4200u16 | (size & 0x01FF)).to_le_bytes());
        }
    }
    d.push(TRANSPORT_CLASS3);
    let mut path: Vec<Segment> = route.iter().map(|&(p, l)| Segment::Port(p, l)).collect();
    path.push(Segment::Class(CLASS_MESSAGE_ROUTER));
    path.push(Segment::Instance(1));
    let cp = epath(&path);
    d.push((cp.len() / 2) as u8);
    d.extend_from_slice(&cp);
    Request::new(
        if large {
            SVC_LARGE_FORWARD_OPEN
        } else {
            SVC_FORWARD_OPEN
        },
        &[
            Segment::Class(CLASS_CONNECTION_MANAGER),
            Segment::Instance(1),
        ],
        d,
    )
}

/// The connection ids (O->T, T->O) a Forward Open reply gives.
///
/// Fails when the reply is too short.
pub fn parse_forward_open_reply(d: &[u8]) -> Result<(u32, u32), WireError> {
    let mut r = Reader::new(d);
    Ok((r.u32()?, r.u32()?))
}

/// A Forward Close of the connection with serial `serial` along `route`.
pub fn forward_close(serial: u16, route: &[(u8, u8)]) -> Request {
    let mut d = vec![0x0A, 0x05];
    d.extend_from_slice(&serial.to_le_bytes());
    d.extend_from_slice(&ORIGINATOR_VENDOR.to_le_bytes());
    d.extend_from_slice(&ORIGINATOR_SERIAL.to_le_bytes());
    let mut path: Vec<Segment> = route.iter().map(|&(p, l)| Segment::Port(p, l)).collect();
    path.push(Segment::Class(CLASS_MESSAGE_ROUTER));
    path.push(Segment::Instance(1));
    let cp = epath(&path);
    d.push((cp.len() / 2) as u8);
    d.push(0);
    d.extend_from_slice(&cp);
    Request::new(
        SVC_FORWARD_CLOSE,
        &[
            Segment::Class(CLASS_CONNECTION_MANAGER),
            Segment::Instance(1),
        ],
        d,
    )
}

/// A Multiple Service Packet to the Message Router carrying `reqs`.
pub fn multiple(reqs: &[Request]) -> Request {
    let bodies: Vec<Vec<u8>> = reqs.iter().map(Request::encode).collect();
    let mut d = (reqs.len() as u16).to_le_bytes().to_vec();
    let mut at = 2 + 2 * reqs.len();
    for b in &bodies {
        d.extend_from_slice(&(at as u16).to_le_bytes());
        at += b.len();
    }
    for b in bodies {
        d.extend_from_slice(&b);
    }
    Request::new(
        SVC_MULTIPLE,
        &[Segment::Class(CLASS_MESSAGE_ROUTER), Segment::Instance(1)],
        d,
    )
}

/// The bytes a Multiple Service Packet of requests of these encoded sizes takes.
pub fn multiple_size(sizes: impl Iterator<Item = usize>) -> usize {
    // Service, path size, class and instance, the count; per request its offset.
    6 + 2 + sizes.map(|n| n + 2).sum::<usize>()
}

/// The `n` replies of a Multiple Service Packet reply's data: a count of `n`, offsets
/// that run forwards inside the data, each a reply.
///
/// Fails when any of that does not hold.
pub fn parse_multiple(d: &[u8], n: usize) -> Result<Vec<Reply>, WireError> {
    let mut r = Reader::new(d);
    let count = usize::from(r.u16()?);
    if count != n {
        return Err(garbage(format!("{count} replies to {n} requests")));
    }
    let mut offs = Vec::with_capacity(n);
    for _ in 0..n {
        offs.push(usize::from(r.u16()?));
    }
    let mut out = Vec::with_capacity(n);
    for (i, &o) in offs.iter().enumerate() {
        let end = offs.get(i + 1).copied().unwrap_or(d.len());
        if o < 2 + 2 * n || end < o || end > d.len() {
            return Err(garbage(format!("reply offset {o} out of place")));
        }
        out.push(Reply::decode(&d[o..end])?);
    }
    Ok(out)
}

/// The embedded request and the route of an Unconnected Send's data.
pub fn parse_unconnected_send(d: &[u8]) -> Result<(Request, Vec<(u8, u8)>), WireError> {
    let mut r = Reader::new(d);
    r.take(2)?;
    let n = usize::from(r.u16()?);
    let inner = Request::decode(r.take(n)?)?;
    if n % 2 == 1 {
        r.u8()?;
    }
    let words = usize::from(r.u8()?);
    r.u8()?;
    let route = parse_epath(r.take(words * 2)?)?
        .into_iter()
        .map(|s| match s {
            Segment::Port(p, l) => Ok((p, l)),
            other => Err(garbage(format!("{other:?} in a route path"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((inner, route))
}

/// What a general status means, as the Logix manuals name it.
pub fn status_text(status: u8, extended: &[u16]) -> String {
    let name = match status {
        ST_CONNECTION_FAILURE => "connection failure",
        0x02 => "resource unavailable",
        0x03 => "invalid parameter value",
        ST_PATH_SEGMENT => "path segment error",
        ST_PATH_UNKNOWN => "path destination unknown",
        ST_PARTIAL => "partial transfer",
        0x07 => "connection lost",
        ST_NOT_SUPPORTED => "service not supported",
        0x09 => "invalid attribute value",
        0x0A => "attribute list error",
        0x0C => "object state conflict",
        0x0E => "attribute not settable",
        ST_PRIVILEGE => "privilege violation",
        0x10 => "device state conflict",
        0x11 => "reply data too large",
        ST_NOT_ENOUGH_DATA => "not enough data",
        ST_ATTRIBUTE_UNSUPPORTED => "attribute not supported",
        ST_TOO_MUCH_DATA => "too much data",
        ST_OBJECT_MISSING => "object does not exist",
        ST_EMBEDDED => "embedded service error",
        0x20 => "invalid parameter",
        0x26 => "path size invalid",
        ST_GENERAL => "general error",
        _ => "",
    };
    let ext = if extended.is_empty() {
        String::new()
    } else {
        let e: Vec<String> = extended.iter().map(|x| format!("0x{x:04x}")).collect();
        format!(" [{}]", e.join(" "))
    };
    if name.is_empty() {
        format!("status 0x{status:02x}{ext}")
    } else {
        format!("0x{status:02x} {name}{ext}")
    }
}

/// A Logix atomic type: its code, name and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Atomic {
    pub code: u16,
    pub name: &'static str,
    pub size: usize,
}

pub const ATOMICS: &[Atomic] = &[
    Atomic {
        code: 0xC1,
        name: "BOOL",
        size: 1,
    },
    Atomic {
        code: 0xC2,
        name: "SINT",
        size: 1,
    },
    Atomic {
        code: 0xC3,
        name: "INT",
        size: 2,
    },
    Atomic {
        code: 0xC4,
        name: "DINT",
        size: 4,
    },
    Atomic {
        code: 0xC5,
        name: "LINT",
        size: 8,
    },
    Atomic {
        code: 0xC6,
        name: "USINT",
        size: 1,
    },
    Atomic {
        code: 0xC7,
        name: "UINT",
        size: 2,
    },
    Atomic {
        code: 0xC8,
        name: "UDINT",
        size: 4,
    },
    Atomic {
        code: 0xC9,
        name: "ULINT",
        size: 8,
    },
    Atomic {
        code: 0xCA,
        name: "REAL",
        size: 4,
    },
    Atomic {
        code: 0xCB,
        name: "LREAL",
        size: 8,
    },
    Atomic {
        code: 0xD1,
        name: "BYTE",
        size: 1,
    },
    Atomic {
        code: 0xD2,
        name: "WORD",
        size: 2,
    },
    Atomic {
        code: 0xD3,
        name: "DWORD",
        size: 4,
    },
    Atomic {
        code: 0xD4,
        name: "LWORD",
        size: 8,
    },
];

pub fn atomic(code: u16) -> Option<Atomic> {
    ATOMICS.iter().copied().find(|a| a.code == code)
}

pub fn atomic_named(name: &str) -> Option<Atomic> {
    ATOMICS.iter().copied().find(|a| a.name == name)
}

/// The structure type marker a Read Tag reply starts with, before the structure handle.
pub const STRUCT_MARKER: u16 = 0x02A0;

/// A symbol's type word, as the Symbol object's attribute 2 holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolType(pub u16);

impl SymbolType {
    pub fn is_struct(self) -> bool {
        self.0 & 0x8000 != 0
    }
    pub fn is_system(self) -> bool {
        self.0 & 0x1000 != 0
    }
    /// The number of array dimensions (0 to 3).
    pub fn dims(self) -> usize {
        usize::from((self.0 >> 13) & 0x03)
    }
    /// The template instance of a structure, or the atomic type code.
    pub fn code(self) -> u16 {
        if self.is_struct() {
            self.0 & 0x0FFF
        } else {
            self.0 & 0x00FF
        }
    }
    /// The bit of a BOOL tag in its host byte.
    pub fn bit(self) -> u16 {
        (self.0 >> 8) & 0x07
    }
}

/// The type header of a Read Tag reply: an atomic code, or the structure marker and the
/// structure handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Atomic(u16),
    Struct(u16),
}

impl DataType {
    pub fn encode(self) -> Vec<u8> {
        match self {
            DataType::Atomic(c) => c.to_le_bytes().to_vec(),
            DataType::Struct(h) => {
                let mut b = STRUCT_MARKER.to_le_bytes().to_vec();
                b.extend_from_slice(&h.to_le_bytes());
                b
            }
        }
    }

    /// The type header at the start of `b` and the bytes after it.
    pub fn split(b: &[u8]) -> Result<(DataType, &[u8]), WireError> {
        let mut r = Reader::new(b);
        let t = r.u16()?;
        let dt = if t == STRUCT_MARKER {
            DataType::Struct(r.u16()?)
        } else {
            DataType::Atomic(t)
        };
        Ok((dt, r.rest()))
    }
}

/// The identity fields of a Get_Attribute_All reply on the Identity object (and the same
/// layout inside a ListIdentity item).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub vendor: u16,
    pub device_type: u16,
    pub product_code: u16,
    pub revision: (u8, u8),
    pub status: u16,
    pub serial: u32,
    pub product_name: Vec<u8>,
}

impl Identity {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.vendor.to_le_bytes());
        b.extend_from_slice(&self.device_type.to_le_bytes());
        b.extend_from_slice(&self.product_code.to_le_bytes());
        b.extend_from_slice(&[self.revision.0, self.revision.1]);
        b.extend_from_slice(&self.status.to_le_bytes());
        b.extend_from_slice(&self.serial.to_le_bytes());
        b.push(self.product_name.len() as u8);
        b.extend_from_slice(&self.product_name);
        b
    }

    /// Parses the fields in the order the Identity object's instance attributes 1 to 7
    /// have them; what follows (state, configuration consistency) is ignored.
    pub fn decode(b: &[u8]) -> Result<Identity, WireError> {
        let mut r = Reader::new(b);
        let vendor = r.u16()?;
        let device_type = r.u16()?;
        let product_code = r.u16()?;
        let revision = (r.u8()?, r.u8()?);
        let status = r.u16()?;
        let serial = r.u32()?;
        let n = usize::from(r.u8()?);
        Ok(Identity {
            vendor,
            device_type,
            product_code,
            revision,
            status,
            serial,
            product_name: r.take(n)?.to_vec(),
        })
    }
}

/// A ListIdentity item's data: protocol version, socket address, identity, state.
pub fn list_identity_item(id: &Identity, addr: std::net::SocketAddrV4, state: u8) -> Vec<u8> {
    let mut b = 1u16.to_le_bytes().to_vec();
    b.extend_from_slice(&2u16.to_be_bytes());
    b.extend_from_slice(&addr.port().to_be_bytes());
    b.extend_from_slice(&addr.ip().octets());
    b.extend_from_slice(&[0u8; 8]);
    b.extend_from_slice(&id.encode());
    b.push(state);
    b
}

/// The identity and state in a ListIdentity item.
pub fn parse_list_identity_item(b: &[u8]) -> Result<(Identity, Option<u8>), WireError> {
    if b.len() < 18 {
        return Err(garbage(format!("a ListIdentity item of {} bytes", b.len())));
    }
    let id = Identity::decode(&b[18..])?;
    let used = 18 + 15 + id.product_name.len();
    Ok((id, b.get(used).copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epaths_round_trip() {
        let segs = vec![
            Segment::Symbol("Program:MainProgram".into()),
            Segment::Symbol("Counter".into()),
            Segment::Element(3),
            Segment::Element(70_000),
            Segment::Class(CLASS_SYMBOL),
            Segment::Instance(0x1234),
            Segment::Attribute(1),
        ];
        assert_eq!(parse_epath(&epath(&segs)).unwrap(), segs);
        assert_eq!(
            epath(&[Segment::Class(6), Segment::Instance(1)]),
            [0x20, 6, 0x24, 1]
        );
        assert_eq!(epath(&[Segment::Port(1, 0)]), [0x01, 0x00]);
    }

    #[test]
    fn unconnected_send_round_trips_with_its_route() {
        let inner = Request::new(
            SVC_READ_TAG,
            &[Segment::Symbol("Abc".into())],
            1u16.to_le_bytes().to_vec(),
        );
        let us = unconnected_send(&inner, &[(1, 3)]);
        let back = Request::decode(&us.encode()).unwrap();
        assert_eq!(back.service, SVC_UNCONNECTED_SEND);
        let (i, route) = parse_unconnected_send(&back.data).unwrap();
        assert_eq!(i, inner);
        assert_eq!(route, vec![(1, 3)]);
    }

    #[test]
    fn short_or_lying_input_is_an_error_never_a_panic() {
        assert!(parse_cpf(&[2, 0, 0xB2, 0, 10, 0, 1]).is_err());
        assert!(Reply::decode(&[0xCC, 0, 0, 3, 0]).is_err());
        assert!(Reply::decode(&[0x4C, 0, 0, 0]).is_err());
        assert!(Identity::decode(&[1, 0, 14, 0]).is_err());
        assert!(parse_epath(&[0x91, 9, b'a']).is_err());
        for n in 0..40 {
            let _ = parse_unconnected_send(&vec![0xFF; n]);
            let _ = parse_list_identity_item(&vec![0xFF; n]);
        }
    }
}
