//! The EtherNet/IP client: one TCP connection and one registered session per controller,
//! one request in flight, every request paced and timed out. Explicit messages go over
//! one class 3 connection (Large Forward Open, else Forward Open, to the Message Router
//! along the route path; SendUnitData) when `connected` and the controller grants one,
//! else unconnected (SendRRData through the Connection Manager along the route path). Each
//! read is a transaction that starts again from its first request on a new session when
//! the old one broke: a fragmented read cut in the middle is read again, never kept short.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::proto::{self, DataType, Frame, Identity, Item, Reply, Request, Segment, WireError};
use crate::pace::{Backoff, Failed, Pacer, Tries};

/// Why a request failed, after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnipError {
    /// The controller answered with a CIP error status: final, not retried.
    Refused { status: u8, text: String },
    /// No answer within the timeout.
    Timeout(String),
    /// The connection could not be made or broke, or the session was dropped.
    Transport(String),
    /// A reply the protocol does not allow (never stored).
    Garbage(String),
    /// Past a bound plcvault keeps (`max-tags`): not the controller's doing.
    Bound(String),
}

impl std::fmt::Display for EnipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnipError::Refused { text, .. } => write!(f, "the controller refused: {text}"),
            EnipError::Timeout(e) | EnipError::Transport(e) | EnipError::Bound(e) => f.write_str(e),
            EnipError::Garbage(e) if e.starts_with("malformed") => f.write_str(e),
            EnipError::Garbage(e) => write!(f, "malformed reply ({e})"),
        }
    }
}

impl EnipError {
    /// No answer in time (after every retry): the controller is taken as gone.
    pub fn stalled(&self) -> bool {
        matches!(self, EnipError::Timeout(_))
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Port and link pairs from the Ethernet module to the controller (`1,0`: backplane,
    /// slot 0); empty for a controller reached directly.
    pub route: Vec<(u8, u8)>,
    pub timeout: Duration,
    /// Ask for a class 3 (explicit messaging) connection; unconnected messages if the
    /// controller refuses one, or when `false`.
    pub connected: bool,
}

/// The largest reply frame accepted: unconnected Logix messages stay under 512 bytes of
/// CIP; anything near this is not a controller's answer.
pub const MAX_REPLY_FRAME: usize = 8192;

/// One entry of the Symbol object's instance list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub instance: u32,
    pub name: String,
    pub kind: proto::SymbolType,
    pub dims: [u32; 3],
}

/// A tag's value as read: its type header and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub data_type: DataType,
    pub bytes: Vec<u8>,
}

struct Conn {
    stream: TcpStream,
    session: u32,
}

/// The least a piece of a fragmented read that says more follow may hold.
pub const MIN_PIECE: usize = 32;

/// How a Forward Open refused for its route path starts.
const ROUTE_REFUSED: &str = "route refused:";

/// One tag of a Multiple Service Packet: its path, elements, and the bytes its value has.
pub type BatchRead = (Vec<Segment>, u16, usize);

/// An open class 3 connection.
#[derive(Clone, Copy, Debug)]
struct Link {
    o_t: u32,
    t_o: u32,
    serial: u16,
    size: usize,
    seq: u16,
}

/// A paced, retrying session with one controller.
pub struct Session {
    ep: Endpoint,
    conn: Option<Conn>,
    link: Option<Link>,
    /// Why the controller gave no connection (then every message goes unconnected).
    pub unconnected_why: Option<String>,
    pacer: Pacer,
    backoff: Backoff,
    context: u64,
    /// Requests sent (registering included).
    pub requests: u64,
}

fn io_retry(e: WireError) -> Failed<EnipError> {
    match e {
        WireError::Io(e) => Failed::Retry(EnipError::Transport(e)),
        WireError::Garbage(e) => Failed::Retry(EnipError::Garbage(e)),
    }
}

fn refused(r: &Reply) -> Failed<EnipError> {
    Failed::Final(EnipError::Refused {
        status: r.status,
        text: proto::status_text(r.status, &r.extended),
    })
}

impl Session {
    pub fn new(ep: Endpoint, max_per_second: f64, retries: u32) -> Session {
        Session {
            ep,
            conn: None,
            link: None,
            unconnected_why: None,
            pacer: Pacer::new(max_per_second),
            backoff: Backoff::new(retries),
            context: 0,
            requests: 0,
        }
    }

    /// Connects and registers a session, with the retries.
    ///
    /// Fails when every attempt failed.
    pub async fn open(&mut self) -> Result<(), EnipError> {
        let mut tries = Tries::new(self.backoff);
        loop {
            match self.connect().await {
                Ok(()) => return Ok(()),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    /// The most bytes one message (a request or its reply) may carry.
    pub fn message_size(&self) -> usize {
        self.link.map_or(proto::UNCONNECTED_SIZE, |l| l.size)
    }

    /// Closes the class 3 connection (Forward Close), unregisters the session and closes
    /// the TCP connection.
    pub async fn close(&mut self) {
        if let Some(l) = self.link.take() {
            let _ = self
                .rr(&proto::forward_close(l.serial, &self.ep.route), false)
                .await;
        }
        if let Some(mut c) = self.conn.take() {
            self.pacer.wait().await;
            self.requests += 1;
            let f = Frame::new(proto::CMD_UNREGISTER_SESSION, c.session, [0; 8], Vec::new());
            let _ =
                tokio::time::timeout(self.ep.timeout, proto::write_frame(&mut c.stream, &f)).await;
        }
    }

    fn timeout(&self, what: &str) -> Failed<EnipError> {
        Failed::Retry(EnipError::Timeout(format!(
            "no answer to {what} within {}",
            humantime::format_duration(self.ep.timeout)
        )))
    }

    /// Registers a session, then (when asked and not refused before) opens the class 3
    /// connection every later message goes over.
    async fn connect(&mut self) -> Result<(), Failed<EnipError>> {
        self.register().await?;
        if !self.ep.connected || self.unconnected_why.is_some() {
            return Ok(());
        }
        match self.open_link().await {
            Ok(()) => Ok(()),
            Err(Failed::Final(e)) => {
                // A route the Connection Manager cannot follow is not a lack of
                // connections: the unconnected requests then name the route and the fix.
                self.unconnected_why = Some(match &e {
                    EnipError::Refused { text, .. } if text.starts_with(ROUTE_REFUSED) => {
                        String::new()
                    }
                    e => e.to_string(),
                });
                // A module that refuses by dropping the session (cpppo) gets a new one.
                if self.conn.is_none() {
                    self.register().await?;
                }
                Ok(())
            }
            Err(f) => Err(f),
        }
    }

    /// Large Forward Open, else Forward Open: a class 3 connection to the Message Router.
    async fn open_link(&mut self) -> Result<(), Failed<EnipError>> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
        let t_o = 0x1000_0000 | (stamp & 0x0FFF_FFFF);
        let serial = (stamp >> 8) as u16 | 1;
        let mut last = None;
        for (large, size) in [
            (true, proto::LARGE_CONNECTION_SIZE),
            (false, proto::CONNECTION_SIZE),
        ] {
            let req = proto::forward_open(large, t_o, serial, size, &self.ep.route);
            let r = self.rr(&req, false).await?;
            if r.status == proto::ST_OK {
                let (o_t, echoed) =
                    proto::parse_forward_open_reply(&r.data).map_err(|e| self.garbage(e))?;
                if echoed != t_o {
                    return Err(self.garbage(WireError::Garbage(format!(
                        "a Forward Open reply for connection 0x{echoed:08x}, not 0x{t_o:08x}"
                    ))));
                }
                self.link = Some(Link {
                    o_t,
                    t_o,
                    serial,
                    size: usize::from(size),
                    seq: 0,
                });
                return Ok(());
            }
            last = Some(r);
        }
        let r = last.expect("two attempts");
        if r.status == proto::ST_CONNECTION_FAILURE
            && r.extended
                .first()
                .is_some_and(|x| matches!(x, 0x0311 | 0x0312 | 0x0315 | 0x0316))
        {
            return Err(Failed::Final(EnipError::Refused {
                status: r.status,
                text: format!(
                    "{ROUTE_REFUSED} {}",
                    proto::status_text(r.status, &r.extended)
                ),
            }));
        }
        Err(refused(&r))
    }

    async fn register(&mut self) -> Result<(), Failed<EnipError>> {
        self.conn = None;
        self.link = None;
        self.pacer.wait().await;
        self.requests += 1;
        let t = self.ep.timeout;
        let mut stream = match tokio::time::timeout(t, TcpStream::connect(self.ep.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Failed::Retry(EnipError::Transport(format!(
                    "cannot connect to {}: {e}",
                    self.ep.addr
                ))));
            }
            Err(_) => return Err(self.timeout("the connection")),
        };
        let _ = stream.set_nodelay(true);
        let ctx = self.next_context();
        let reg = Frame::new(proto::CMD_REGISTER_SESSION, 0, ctx, vec![1, 0, 0, 0]);
        let round = async {
            proto::write_frame(&mut stream, &reg).await?;
            proto::read_frame(&mut stream, 64).await
        };
        let reply = match tokio::time::timeout(t, round).await {
            Err(_) => return Err(self.timeout("RegisterSession")),
            Ok(r) => r.map_err(io_retry)?,
        };
        if reply.command != proto::CMD_REGISTER_SESSION || reply.context != ctx {
            return Err(Failed::Retry(EnipError::Garbage(format!(
                "command 0x{:04x} in answer to RegisterSession",
                reply.command
            ))));
        }
        if reply.status != proto::ENCAP_OK {
            return Err(Failed::Final(EnipError::Refused {
                status: 0,
                text: format!("RegisterSession: encapsulation status 0x{:x}", reply.status),
            }));
        }
        if reply.session == 0 {
            return Err(Failed::Retry(EnipError::Garbage(
                "a session handle of 0".into(),
            )));
        }
        self.conn = Some(Conn {
            stream,
            session: reply.session,
        });
        Ok(())
    }

    fn next_context(&mut self) -> [u8; 8] {
        self.context = self.context.wrapping_add(1);
        self.context.to_le_bytes()
    }

    /// One encapsulation exchange on the open connection: the reply must carry the same
    /// command, session handle and sender context, and a success status.
    async fn exchange(&mut self, command: u16, data: Vec<u8>) -> Result<Frame, Failed<EnipError>> {
        if self.conn.is_none() {
            return Err(Failed::Retry(EnipError::Transport(
                "the session is gone".into(),
            )));
        }
        self.pacer.wait().await;
        self.requests += 1;
        let ctx = self.next_context();
        let t = self.ep.timeout;
        let conn = self.conn.as_mut().expect("connected above");
        let req = Frame::new(command, conn.session, ctx, data);
        let round = async {
            proto::write_frame(&mut conn.stream, &req).await?;
            proto::read_frame(&mut conn.stream, MAX_REPLY_FRAME).await
        };
        let r = match tokio::time::timeout(t, round).await {
            Err(_) => Err(self.timeout("a request")),
            Ok(Err(e)) => Err(io_retry(e)),
            Ok(Ok(f)) => {
                if f.command != command || f.context != ctx {
                    Err(Failed::Retry(EnipError::Garbage(format!(
                        "command 0x{:04x} in answer to 0x{command:04x}, or another request's context",
                        f.command
                    ))))
                } else if f.status == proto::ENCAP_INVALID_SESSION {
                    Err(Failed::Retry(EnipError::Transport(
                        "the controller no longer knows the session".into(),
                    )))
                } else if f.status != proto::ENCAP_OK {
                    // The module refused the request itself (cpppo does so for a route
                    // path or a service it does not serve, then drops the session).
                    Err(Failed::Final(EnipError::Refused {
                        status: 0,
                        text: format!(
                            "encapsulation status 0x{:02x}: the module refused the request{}",
                            f.status,
                            if self.ep.route.is_empty() {
                                String::new()
                            } else {
                                format!(" (route path {})", route_text(&self.ep.route))
                            }
                        ),
                    }))
                } else if command != proto::CMD_LIST_IDENTITY && f.session != req.session {
                    Err(Failed::Retry(EnipError::Garbage(format!(
                        "session handle 0x{:08x} in answer to 0x{:08x}",
                        f.session, req.session
                    ))))
                } else {
                    Ok(f)
                }
            }
        };
        if r.is_err() {
            self.conn = None;
            self.link = None;
        }
        r
    }

    /// One CIP request over the class 3 connection, or unconnected without one; its
    /// reply's service must be the request's.
    async fn cip(&mut self, inner: &Request) -> Result<Reply, Failed<EnipError>> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        let Some(mut link) = self.link else {
            return self.unconnected(inner).await;
        };
        link.seq = link.seq.wrapping_add(1);
        self.link = Some(link);
        let mut body = link.seq.to_le_bytes().to_vec();
        body.extend_from_slice(&inner.encode());
        let data = proto::rr_data(
            0,
            &[
                Item {
                    kind: proto::ITEM_CONNECTED_ADDRESS,
                    data: link.o_t.to_le_bytes().to_vec(),
                },
                Item {
                    kind: proto::ITEM_CONNECTED_DATA,
                    data: body,
                },
            ],
        );
        let f = self.exchange(proto::CMD_SEND_UNIT_DATA, data).await?;
        let items = proto::parse_rr_data(&f.data).map_err(|e| self.garbage(e))?;
        let body = match items.as_slice() {
            [a, b]
                // The T->O id, as the spec and Logix have it; cpppo echoes the O->T id.
                if a.kind == proto::ITEM_CONNECTED_ADDRESS
                    && (a.data == link.t_o.to_le_bytes() || a.data == link.o_t.to_le_bytes())
                    && b.kind == proto::ITEM_CONNECTED_DATA
                    && b.data.get(..2) == Some(&link.seq.to_le_bytes()[..]) =>
            {
                &b.data[2..]
            }
            other => {
                let seen: Vec<String> = other
                    .iter()
                    .map(|i| {
                        format!(
                            "item 0x{:04x} {}",
                            i.kind,
                            i.data.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
                        )
                    })
                    .collect();
                return Err(self.garbage(WireError::Garbage(format!(
                    "SendUnitData without this connection's address 0x{:08x} and sequence number {} ({})",
                    link.t_o,
                    link.seq,
                    seen.join(", ")
                ))));
            }
        };
        let reply = Reply::decode(body).map_err(|e| self.garbage(e))?;
        if reply.service != inner.service {
            return Err(self.garbage(WireError::Garbage(format!(
                "a reply to service 0x{:02x} for 0x{:02x}",
                reply.service, inner.service
            ))));
        }
        Ok(reply)
    }

    /// One CIP request through the Connection Manager (or straight to the target when
    /// there is no route), and its reply, whose service must be the request's.
    async fn unconnected(&mut self, inner: &Request) -> Result<Reply, Failed<EnipError>> {
        self.rr(inner, !self.ep.route.is_empty()).await
    }

    /// One CIP request in SendRRData: wrapped in an Unconnected Send along the route, or
    /// to the module itself (a Forward Open or Close, whose own path holds the route).
    async fn rr(&mut self, inner: &Request, wrap: bool) -> Result<Reply, Failed<EnipError>> {
        let msg = if !wrap {
            inner.clone()
        } else {
            proto::unconnected_send(inner, &self.ep.route)
        };
        let data = proto::rr_data(
            0,
            &[
                Item {
                    kind: proto::ITEM_NULL,
                    data: Vec::new(),
                },
                Item {
                    kind: proto::ITEM_UNCONNECTED_DATA,
                    data: msg.encode(),
                },
            ],
        );
        let f = self.exchange(proto::CMD_SEND_RR_DATA, data).await?;
        let items = proto::parse_rr_data(&f.data).map_err(|e| self.garbage(e))?;
        let body = match items.as_slice() {
            [a, b] if a.kind == proto::ITEM_NULL && b.kind == proto::ITEM_UNCONNECTED_DATA => {
                &b.data
            }
            _ => {
                return Err(self.garbage(WireError::Garbage(
                    "SendRRData without an unconnected data item".into(),
                )));
            }
        };
        let reply = Reply::decode(body).map_err(|e| self.garbage(e))?;
        // A Connection Manager that could not deliver answers for the Unconnected Send.
        if wrap
            && reply.service == proto::SVC_UNCONNECTED_SEND
            && inner.service != proto::SVC_READ_TAG_FRAGMENTED
            && reply.status != proto::ST_OK
        {
            return Err(Failed::Final(EnipError::Refused {
                status: reply.status,
                text: format!(
                    "the route path {} was not delivered: {} (check `slot` or `route`: the controller's slot behind this module)",
                    route_text(&self.ep.route),
                    proto::status_text(reply.status, &reply.extended)
                ),
            }));
        }
        if reply.service != inner.service {
            return Err(self.garbage(WireError::Garbage(format!(
                "a reply to service 0x{:02x} for 0x{:02x}",
                reply.service, inner.service
            ))));
        }
        Ok(reply)
    }

    fn garbage(&mut self, e: WireError) -> Failed<EnipError> {
        self.conn = None;
        self.link = None;
        io_retry(match e {
            WireError::Io(x) => WireError::Garbage(x),
            g => g,
        })
    }

    /// Runs `step` as one transaction with the retries: each attempt from its start, on a
    /// new session when the last attempt broke.
    async fn transaction<T, F>(&mut self, mut step: F) -> Result<T, EnipError>
    where
        F: for<'s> FnMut(&'s mut Session) -> crate::BoxFuture<'s, Result<T, Failed<EnipError>>>,
    {
        let mut tries = Tries::new(self.backoff);
        loop {
            match step(self).await {
                Ok(v) => return Ok(v),
                Err(f) => {
                    if matches!(f, Failed::Retry(_)) {
                        self.conn = None;
                        self.link = None;
                    }
                    tries.after(f).await?
                }
            }
        }
    }

    /// ListIdentity: who the Ethernet module at the address says it is, and its state.
    ///
    /// Fails when it does not answer with one identity item.
    pub async fn list_identity(&mut self) -> Result<(Identity, Option<u8>), EnipError> {
        self.transaction(|s| {
            Box::pin(async move {
                if s.conn.is_none() {
                    s.connect().await?;
                }
                let f = s.exchange(proto::CMD_LIST_IDENTITY, Vec::new()).await?;
                let items = proto::parse_cpf(&f.data).map_err(|e| s.garbage(e))?;
                match items.as_slice() {
                    [i] if i.kind == proto::ITEM_IDENTITY => {
                        proto::parse_list_identity_item(&i.data).map_err(|e| s.garbage(e))
                    }
                    _ => Err(s.garbage(WireError::Garbage(
                        "ListIdentity without one identity item".into(),
                    ))),
                }
            })
        })
        .await
    }

    /// Get_Attribute_All on the controller's Identity object (along the route).
    ///
    /// Fails when refused or the answer is not an identity.
    pub async fn identity(&mut self) -> Result<Identity, EnipError> {
        self.transaction(|s| {
            Box::pin(async move {
                let req = Request::new(
                    proto::SVC_GET_ATTRIBUTE_ALL,
                    &[Segment::Class(proto::CLASS_IDENTITY), Segment::Instance(1)],
                    Vec::new(),
                );
                let r = s.cip(&req).await?;
                if r.status != proto::ST_OK {
                    return Err(refused(&r));
                }
                Identity::decode(&r.data).map_err(|e| s.garbage(e))
            })
        })
        .await
    }

    /// Every symbol of the controller's scope, or of a program's, with
    /// Get_Instance_Attribute_List (name, type, dimensions) page by page; at most `max`
    /// symbols.
    ///
    /// Fails when refused (a controller without the service, a program it does not
    /// know), when the list passes `max`, or a page is malformed.
    pub async fn symbols(
        &mut self,
        program: Option<&str>,
        max: usize,
    ) -> Result<Vec<Symbol>, EnipError> {
        let program = program.map(str::to_string);
        self.transaction(move |s| {
            let program = program.clone();
            Box::pin(async move {
                let mut out: Vec<Symbol> = Vec::new();
                let mut start = 0u32;
                loop {
                    let mut path = Vec::new();
                    if let Some(p) = &program {
                        path.push(Segment::Symbol(format!("Program:{p}")));
                    }
                    path.push(Segment::Class(proto::CLASS_SYMBOL));
                    path.push(Segment::Instance(start));
                    // Attributes 1 (name), 2 (type), 8 (dimensions).
                    let data = [3u16, 1, 2, 8]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect();
                    let req = Request::new(proto::SVC_GET_INSTANCE_ATTRIBUTE_LIST, &path, data);
                    let r = s.cip(&req).await?;
                    if r.status != proto::ST_OK && r.status != proto::ST_PARTIAL {
                        return Err(refused(&r));
                    }
                    let page = parse_symbols(&r.data).map_err(|e| s.garbage(e))?;
                    let last = match page.last() {
                        Some(l) => l.instance,
                        None if r.status == proto::ST_PARTIAL => {
                            return Err(s.garbage(WireError::Garbage(
                                "an empty page that says more follow".into(),
                            )));
                        }
                        None => start,
                    };
                    if page.iter().any(|p| p.instance < start)
                        || page.windows(2).any(|w| w[1].instance <= w[0].instance)
                    {
                        return Err(
                            s.garbage(WireError::Garbage("symbol instances out of order".into()))
                        );
                    }
                    if out.len() + page.len() > max {
                        return Err(Failed::Final(EnipError::Bound(format!(
                            "more tags than `max-tags` leaves for this scope ({max}); not read, none kept (raise `max-tags` to read them)"
                        ))));
                    }
                    out.extend(page);
                    if r.status == proto::ST_OK {
                        return Ok(out);
                    }
                    start = last.checked_add(1).ok_or_else(|| {
                        Failed::Final(EnipError::Garbage("symbol instance past 2^32".into()))
                    })?;
                }
            })
        })
        .await
    }

    /// The whole value of a tag: `elements` elements with Read Tag (one reply) or Read Tag
    /// Fragmented (pieces by byte offset), at most `max` bytes, of exactly `exact` bytes
    /// when the type says how many. Every piece must carry the same type.
    ///
    /// Fails when refused, when a piece lies about its place or type, or the value passes
    /// `max` or misses `exact`.
    pub async fn read_tag(
        &mut self,
        path: &[Segment],
        elements: u16,
        exact: Option<usize>,
        max: usize,
        fragmented: bool,
    ) -> Result<Value, EnipError> {
        let path = path.to_vec();
        self.transaction(move |s| {
            let path = path.clone();
            Box::pin(async move {
                let mut bytes = Vec::new();
                let mut data_type: Option<DataType> = None;
                loop {
                    let (service, data) = if fragmented {
                        let mut d = elements.to_le_bytes().to_vec();
                        d.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        (proto::SVC_READ_TAG_FRAGMENTED, d)
                    } else {
                        (proto::SVC_READ_TAG, elements.to_le_bytes().to_vec())
                    };
                    let r = s.cip(&Request::new(service, &path, data)).await?;
                    let more = fragmented && r.status == proto::ST_PARTIAL;
                    if r.status != proto::ST_OK && !more {
                        return Err(refused(&r));
                    }
                    let (t, piece) = DataType::split(&r.data).map_err(|e| s.garbage(e))?;
                    if data_type.is_some_and(|d| d != t) {
                        return Err(s.garbage(WireError::Garbage(format!(
                            "a piece of type {t:?} in a value of type {data_type:?}"
                        ))));
                    }
                    data_type = Some(t);
                    if more && piece.is_empty() {
                        return Err(s.garbage(WireError::Garbage(
                            "an empty piece that says more follow".into(),
                        )));
                    }
                    if bytes.len() + piece.len() > exact.unwrap_or(max).min(max) {
                        return Err(s.garbage(WireError::Garbage(format!(
                            "a value longer than {} bytes",
                            exact.unwrap_or(max).min(max)
                        ))));
                    }
                    // A controller fills each piece but the last; a trickle of small ones
                    // would keep the session busy for ever.
                    if more && piece.len() < MIN_PIECE {
                        return Err(s.garbage(WireError::Garbage(format!(
                            "a piece of {} bytes that says more follow",
                            piece.len()
                        ))));
                    }
                    bytes.extend_from_slice(piece);
                    if !more {
                        break;
                    }
                }
                if let Some(n) = exact
                    && bytes.len() != n
                {
                    return Err(s.garbage(WireError::Garbage(format!(
                        "a value of {} bytes where its type holds {n}",
                        bytes.len()
                    ))));
                }
                Ok(Value {
                    data_type: data_type.expect("set by the first piece"),
                    bytes,
                })
            })
        })
        .await
    }

    /// Several small tags in one Multiple Service Packet of Read Tags, each `(path,
    /// elements, exact bytes)`: each tag's value, or the controller's refusal of it. The
    /// caller keeps the request and its reply within [`Session::message_size`].
    ///
    /// Fails when the packet is refused as a whole (a controller without the service),
    /// when every attempt failed, or a reply lies about a value's size or type.
    pub async fn read_many(
        &mut self,
        reads: &[BatchRead],
    ) -> Result<Vec<Result<Value, EnipError>>, EnipError> {
        let reqs: Vec<Request> = reads
            .iter()
            .map(|(p, n, _)| Request::new(proto::SVC_READ_TAG, p, n.to_le_bytes().to_vec()))
            .collect();
        let packet = proto::multiple(&reqs);
        let reads = reads.to_vec();
        self.transaction(move |s| {
            let packet = packet.clone();
            let reads = reads.clone();
            Box::pin(async move {
                let r = s.cip(&packet).await?;
                if r.status != proto::ST_OK && r.status != proto::ST_EMBEDDED {
                    return Err(refused(&r));
                }
                let replies =
                    proto::parse_multiple(&r.data, reads.len()).map_err(|e| s.garbage(e))?;
                let mut out = Vec::with_capacity(reads.len());
                for (reply, (_, _, exact)) in replies.iter().zip(&reads) {
                    if reply.service != proto::SVC_READ_TAG {
                        return Err(s.garbage(WireError::Garbage(format!(
                            "a reply to service 0x{:02x} in a packet of Read Tags",
                            reply.service
                        ))));
                    }
                    if reply.status != proto::ST_OK {
                        out.push(Err(EnipError::Refused {
                            status: reply.status,
                            text: proto::status_text(reply.status, &reply.extended),
                        }));
                        continue;
                    }
                    let (t, bytes) = DataType::split(&reply.data).map_err(|e| s.garbage(e))?;
                    if bytes.len() != *exact {
                        return Err(s.garbage(WireError::Garbage(format!(
                            "a value of {} bytes where its type holds {exact}",
                            bytes.len()
                        ))));
                    }
                    out.push(Ok(Value {
                        data_type: t,
                        bytes: bytes.to_vec(),
                    }));
                }
                Ok(out)
            })
        })
        .await
    }

    /// Writes a tag's value (restores onto a writable controller only: the caller holds
    /// the device's write permit) with Write Tag, or Write Tag Fragmented when it does not
    /// fit one message.
    ///
    /// Fails when refused or every attempt failed.
    pub async fn write_tag(
        &mut self,
        path: &[Segment],
        value: &Value,
        elements: u16,
    ) -> Result<(), EnipError> {
        const PIECE: usize = 400;
        let path = path.to_vec();
        let value = value.clone();
        self.transaction(move |s| {
            let (path, value) = (path.clone(), value.clone());
            Box::pin(async move {
                let whole = value.bytes.len() <= PIECE;
                let mut at = 0usize;
                loop {
                    let end = (at + PIECE).min(value.bytes.len());
                    let mut d = value.data_type.encode();
                    d.extend_from_slice(&elements.to_le_bytes());
                    let service = if whole {
                        proto::SVC_WRITE_TAG
                    } else {
                        d.extend_from_slice(&(at as u32).to_le_bytes());
                        proto::SVC_WRITE_TAG_FRAGMENTED
                    };
                    d.extend_from_slice(&value.bytes[at..end]);
                    let r = s.cip(&Request::new(service, &path, d)).await?;
                    if r.status != proto::ST_OK {
                        return Err(refused(&r));
                    }
                    at = end;
                    if at >= value.bytes.len() {
                        return Ok(());
                    }
                }
            })
        })
        .await
    }
}

/// `1,0` for a route of one port and link.
pub fn route_text(route: &[(u8, u8)]) -> String {
    route
        .iter()
        .map(|(p, l)| format!("{p},{l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The symbols of one Get_Instance_Attribute_List page (attributes 1, 2, 8).
pub fn parse_symbols(b: &[u8]) -> Result<Vec<Symbol>, WireError> {
    let mut r = proto::Reader::new(b);
    let mut out = Vec::new();
    while r.left() > 0 {
        let instance = r.u32()?;
        let n = usize::from(r.u16()?);
        let raw = r.take(n)?;
        let name = std::str::from_utf8(raw)
            .ok()
            .filter(|s| valid_name(s))
            .ok_or_else(|| {
                WireError::Garbage(format!(
                    "symbol {instance} has a name that is not a Logix name ({})",
                    super::escape(raw)
                ))
            })?
            .to_string();
        let kind = proto::SymbolType(r.u16()?);
        let dims = [r.u32()?, r.u32()?, r.u32()?];
        out.push(Symbol {
            instance,
            name,
            kind,
            dims,
        });
    }
    Ok(out)
}

/// A name as Logix allows it (letters, digits, `_`, and the `:` of program, routine,
/// task and module names), at most 255 bytes.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}
