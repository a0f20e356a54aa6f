//! A simulated Logix controller behind its Ethernet module: ListIdentity, sessions,
//! unconnected messages (SendRRData, with an Unconnected Send checked against the route
//! path it serves) and connected ones (Forward Open, SendUnitData, Forward Close, for
//! clients such as pycomm3), the Identity and program-name objects, a tag directory with
//! controller and program scopes (Get_Instance_Attribute_List, paged), templates of its
//! structures, Read Tag, Read Tag Fragmented, Multiple Service Packet and — only when
//! marked writable — Write Tag. It records every command and service it receives (known
//! or not) and can inject faults. Bound to `127.0.0.1:0` in tests and the demo.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use super::proto::{self, Frame, Identity, Item, Reply, Request, Segment};

/// One request as the simulated controller received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub at: Instant,
    /// `ListIdentity`, `RegisterSession`, `SendRRData`, ..., then for each CIP request
    /// `Unconnected Send`, `Read Tag`, `Write Tag`, ..., or `service 0xNN` /
    /// `command 0xNNNN` for what it does not serve.
    pub function: String,
    /// The connection it came on (1, 2, ...).
    pub connection: u64,
    /// An encapsulation request as it came off the wire (`ListIdentity`, `SendRRData`,
    /// ...), not a CIP request inside one: what a rate cap counts.
    pub frame: bool,
}

/// The type of a simulated tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimType {
    Atomic(u16),
    /// A structure by its template instance.
    Struct(u16),
}

/// One tag the controller holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTag {
    pub name: String,
    pub data_type: SimType,
    /// Up to three dimensions; empty for a scalar.
    pub dims: Vec<u32>,
    /// The whole value, elements in order.
    pub bytes: Vec<u8>,
    /// A system or module symbol (listed, not a user tag).
    pub system: bool,
}

impl SimTag {
    /// An atomic tag of `dims` (empty: scalar) with its value.
    pub fn atomic(name: &str, code: u16, dims: &[u32], bytes: Vec<u8>) -> SimTag {
        SimTag {
            name: name.into(),
            data_type: SimType::Atomic(code),
            dims: dims.to_vec(),
            bytes,
            system: false,
        }
    }

    /// A DINT array (or scalar, `values.len() == 1` and no dims).
    pub fn dints(name: &str, dims: &[u32], values: &[i32]) -> SimTag {
        SimTag::atomic(
            name,
            0xC4,
            dims,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// A REAL array (or scalar).
    pub fn reals(name: &str, dims: &[u32], values: &[f32]) -> SimTag {
        SimTag::atomic(
            name,
            0xCA,
            dims,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    fn symbol_type(&self) -> u16 {
        let dims = (self.dims.len().min(3) as u16) << 13;
        let sys = if self.system { 0x1000 } else { 0 };
        match self.data_type {
            SimType::Atomic(c) => dims | sys | (c & 0xFF),
            SimType::Struct(t) => 0x8000 | dims | sys | (t & 0x0FFF),
        }
    }

    fn elements(&self) -> usize {
        self.dims
            .iter()
            .map(|d| *d as usize)
            .product::<usize>()
            .max(1)
    }
}

/// A structure's template, as the Template object serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTemplate {
    pub instance: u16,
    pub handle: u16,
    pub name: String,
    /// Name, type code, array length (or bit number of a BOOL), byte offset.
    pub members: Vec<(String, u16, u16, u32)>,
    pub size: u32,
}

impl SimTemplate {
    /// The template's definition bytes: member infos, then `NAME;n` and the member names,
    /// each ended by a NUL.
    fn definition(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for (_, t, info, off) in &self.members {
            b.extend_from_slice(&info.to_le_bytes());
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&off.to_le_bytes());
        }
        b.extend_from_slice(format!("{};n", self.name).as_bytes());
        b.push(0);
        for (n, ..) in &self.members {
            b.extend_from_slice(n.as_bytes());
            b.push(0);
        }
        b
    }

    /// Attribute 4: the definition's size in 32-bit words, as clients compute reads from
    /// it (`words * 4 - 21` bytes).
    fn definition_words(&self) -> u32 {
        (self.definition().len() as u32 + 21).div_ceil(4)
    }
}

/// Faults to inject.
#[derive(Clone, Debug, Default)]
pub struct EnipFaults {
    /// Stop answering (requests time out) after this many requests.
    pub silent_after: Option<u64>,
    /// Drop the connection at this fragmented-read reply (counted from start, once).
    pub drop_in_fragment: Option<u64>,
    /// Program scope answers "path destination unknown".
    pub program_scope_unknown: bool,
    /// The next reply carries another session handle (once).
    pub wrong_session: bool,
    /// The next unconnected data item says four bytes more than it holds (once).
    pub lying_length: bool,
    /// Every Read Tag and Read Tag Fragmented answers this general status.
    pub read_status: Option<u8>,
    /// Fragmented reads that never end.
    pub endless_fragments: bool,
    /// The second piece of a fragmented read carries another type (once).
    pub type_switch: bool,
    /// Every whole (not fragmented) read of a DINT answers as REAL and of a REAL as
    /// DINT: values of the right size and the wrong type.
    pub wrong_type: bool,
    /// Get_Instance_Attribute_List is not served: the session is dropped (as cpppo does).
    pub no_symbol_object: bool,
}

/// Where each tag is in its scope's list, by (program, name).
type TagIndex = std::collections::HashMap<(Option<String>, String), usize>;

/// What a simulated controller serves.
#[derive(Clone, Debug)]
pub struct EnipSimConfig {
    /// The controller's Identity object (through the route).
    pub identity: Identity,
    /// The Ethernet module's identity (ListIdentity).
    pub module: Identity,
    /// The route path it accepts in an Unconnected Send; `None` accepts any.
    pub route: Option<Vec<(u8, u8)>>,
    pub program_name: String,
    pub controller: Vec<SimTag>,
    pub programs: Vec<(String, Vec<SimTag>)>,
    pub templates: Vec<SimTemplate>,
    pub writable: bool,
    pub response_delay: Duration,
    /// The most bytes of value in one fragmented-read reply (a reply also stays within
    /// the message size: 488 bytes of value unconnected).
    pub fragment: usize,
    /// Refuse every Forward Open ("no more connections"): only unconnected messages.
    pub refuse_connections: bool,
    /// Where each tag is, by scope and name: built on first use, dropped by `update`.
    index: Arc<std::sync::OnceLock<TagIndex>>,
    pub faults: EnipFaults,
}

/// The template every generated controller has: a motor's data (12 bytes).
pub fn motor_template() -> SimTemplate {
    SimTemplate {
        instance: 0x0123,
        handle: 0x4F2A,
        name: "MotorData".into(),
        members: vec![
            ("Speed".into(), 0xC4, 0, 0),
            ("Current".into(), 0xCA, 0, 4),
            ("Mode".into(), 0xC3, 0, 8),
            ("Flags".into(), 0xC2, 0, 10),
        ],
        size: 12,
    }
}

/// A motor's data as the template lays it out.
pub fn motor_bytes(speed: i32, current: f32, mode: i16, flags: i8) -> Vec<u8> {
    let mut b = speed.to_le_bytes().to_vec();
    b.extend_from_slice(&current.to_le_bytes());
    b.extend_from_slice(&mode.to_le_bytes());
    b.push(flags as u8);
    b.push(0);
    b
}

impl EnipSimConfig {
    /// A 1756-L61 in slot 0 behind a 1756-EN2T, with a recipe (DINT[100]), setpoints
    /// (REAL[4]), a speed, a motor structure, an array of motors, a counter, and a program
    /// `MainProgram` with its own tags, plus the system and module symbols a real
    /// controller lists; `extra` more DINT tags (`Tag00001`, ...) in controller scope.
    pub fn generated(extra: usize, seed: u64) -> EnipSimConfig {
        let s = seed as i32;
        let recipe: Vec<i32> = (0..100).map(|i| i * 10 + s).collect();
        let mut controller = vec![
            SimTag::dints("Recipe", &[100], &recipe),
            SimTag::reals("Setpoint", &[4], &[12.5, 80.0, 0.25, -3.0]),
            SimTag::dints("LineSpeed", &[], &[1200 + s]),
            SimTag {
                name: "Motor1".into(),
                data_type: SimType::Struct(0x0123),
                dims: vec![],
                bytes: motor_bytes(1450, 3.5, 2, 1),
                system: false,
            },
            SimTag {
                name: "Motors".into(),
                data_type: SimType::Struct(0x0123),
                dims: vec![3],
                bytes: [
                    motor_bytes(1000, 1.0, 1, 0),
                    motor_bytes(2000, 2.0, 1, 0),
                    motor_bytes(3000, 3.0, 2, 1),
                ]
                .concat(),
                system: false,
            },
            SimTag::dints("Counter", &[], &[0]),
            SimTag::atomic("Enable", 0xC1, &[], vec![1]),
            SimTag {
                system: true,
                ..SimTag::dints("__SYS_Status", &[], &[7])
            },
            SimTag {
                system: true,
                ..SimTag::dints("Local:1:I", &[], &[0])
            },
            SimTag {
                name: "Program:MainProgram".into(),
                data_type: SimType::Atomic(0x68),
                dims: vec![],
                bytes: vec![],
                system: true,
            },
        ];
        for i in 0..extra {
            controller.push(SimTag::dints(
                &format!("Tag{:05}", i + 1),
                &[],
                &[(i as i32).wrapping_mul(31).wrapping_add(s)],
            ));
        }
        let program = vec![
            SimTag::dints("StepNo", &[], &[3]),
            SimTag::reals("Gain", &[], &[0.75]),
            SimTag::atomic("Mask", 0xD3, &[2], vec![0xF0, 0, 0, 0, 1, 2, 3, 4]),
        ];
        EnipSimConfig {
            identity: Identity {
                vendor: 1,
                device_type: 0x0E,
                product_code: 55,
                revision: (20, 11),
                status: 0x3060,
                serial: 0x00C0_FFEE ^ (seed as u32),
                product_name: b"1756-L61/B LOGIX5561".to_vec(),
            },
            module: Identity {
                vendor: 1,
                device_type: 0x0C,
                product_code: 166,
                revision: (5, 28),
                status: 0x0030,
                serial: 0x0010_2030,
                product_name: b"1756-EN2T/D".to_vec(),
            },
            route: Some(vec![(1, 0)]),
            program_name: "BOTTLING_L3".into(),
            controller,
            programs: vec![("MainProgram".into(), program)],
            templates: vec![motor_template()],
            writable: false,
            response_delay: Duration::ZERO,
            fragment: 4000,
            refuse_connections: false,
            index: Default::default(),
            faults: EnipFaults::default(),
        }
    }

    /// The tag `name` (`Recipe`, `Program:MainProgram.StepNo`), to change it.
    pub fn tag_mut(&mut self, name: &str) -> Option<&mut SimTag> {
        match name
            .strip_prefix("Program:")
            .and_then(|r| r.split_once('.'))
        {
            Some((p, t)) => self
                .programs
                .iter_mut()
                .find(|(n, _)| n == p)?
                .1
                .iter_mut()
                .find(|x| x.name == t),
            None => self.controller.iter_mut().find(|x| x.name == name),
        }
    }

    fn tag(&self, program: Option<&str>, name: &str) -> Option<&SimTag> {
        let index = self.index.get_or_init(|| {
            let mut m = std::collections::HashMap::new();
            for (i, t) in self.controller.iter().enumerate() {
                m.entry((None, t.name.clone())).or_insert(i);
            }
            for (p, tags) in &self.programs {
                for (i, t) in tags.iter().enumerate() {
                    m.entry((Some(p.clone()), t.name.clone())).or_insert(i);
                }
            }
            m
        });
        let i = *index.get(&(program.map(str::to_string), name.to_string()))?;
        match program {
            Some(p) => self.programs.iter().find(|(n, _)| n == p)?.1.get(i),
            None => self.controller.get(i),
        }
    }

    fn template(&self, instance: u16) -> Option<&SimTemplate> {
        self.templates.iter().find(|t| t.instance == instance)
    }

    fn handle_of(&self, t: &SimTag) -> proto::DataType {
        match t.data_type {
            SimType::Atomic(c) => proto::DataType::Atomic(c),
            SimType::Struct(i) => proto::DataType::Struct(self.template(i).map_or(0, |t| t.handle)),
        }
    }
}

struct Shared {
    /// Shared with each request being answered; written copy-on-write.
    cfg: Mutex<Arc<EnipSimConfig>>,
    recorded: Mutex<Vec<Recorded>>,
    served: Mutex<u64>,
    fragments: Mutex<u64>,
    in_flight: Mutex<(usize, usize)>,
    connections: Mutex<u64>,
}

/// A running simulated controller. Dropping it stops the server.
pub struct EnipSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EnipSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EnipSim {
    /// Binds `bind` (use `127.0.0.1:0`) and serves in the background.
    ///
    /// Fails when the address cannot be bound.
    pub async fn start(bind: &str, cfg: EnipSimConfig) -> io::Result<EnipSim> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg: Mutex::new(Arc::new(EnipSimConfig {
                index: Default::default(),
                ..cfg
            })),
            recorded: Mutex::new(Vec::new()),
            served: Mutex::new(0),
            fragments: Mutex::new(0),
            in_flight: Mutex::new((0, 0)),
            connections: Mutex::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                let n = {
                    let mut c = s.connections.lock().expect("sim lock");
                    *c += 1;
                    *c
                };
                tokio::spawn(async move {
                    let _ = serve(stream, s, n).await;
                });
            }
        });
        Ok(EnipSim { shared, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the configuration (tags, identity, faults) while running.
    pub fn update(&self, f: impl FnOnce(&mut EnipSimConfig)) {
        let mut g = self.shared.cfg.lock().expect("sim lock");
        let c = Arc::make_mut(&mut g);
        f(c);
        // Names may have changed: the lookup is built again on first use.
        c.index = Default::default();
    }

    /// A copy of the configuration as it stands (values after writes included).
    pub fn config(&self) -> EnipSimConfig {
        EnipSimConfig::clone(&self.shared.cfg.lock().expect("sim lock"))
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("sim lock").clone()
    }

    /// The most requests ever being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.lock().expect("sim lock").1
    }
}

fn record(s: &Shared, function: String, connection: u64, frame: bool) -> u64 {
    s.recorded.lock().expect("sim lock").push(Recorded {
        at: Instant::now(),
        function,
        connection,
        frame,
    });
    let mut n = s.served.lock().expect("sim lock");
    *n += 1;
    *n
}

fn command_name(c: u16) -> String {
    match c {
        proto::CMD_NOP => "NOP".into(),
        proto::CMD_LIST_SERVICES => "ListServices".into(),
        proto::CMD_LIST_IDENTITY => "ListIdentity".into(),
        proto::CMD_REGISTER_SESSION => "RegisterSession".into(),
        proto::CMD_UNREGISTER_SESSION => "UnRegisterSession".into(),
        proto::CMD_SEND_RR_DATA => "SendRRData".into(),
        proto::CMD_SEND_UNIT_DATA => "SendUnitData".into(),
        c => format!("command 0x{c:04x}"),
    }
}

/// The name a recording gives a CIP service (by its code and the class it goes to).
pub fn service_name(r: &Request) -> String {
    let class = proto::parse_epath(&r.path).ok().and_then(|p| {
        p.iter().find_map(|s| match s {
            Segment::Class(c) => Some(*c),
            _ => None,
        })
    });
    match (r.service, class) {
        (proto::SVC_UNCONNECTED_SEND, Some(proto::CLASS_CONNECTION_MANAGER)) => {
            "Unconnected Send".into()
        }
        (proto::SVC_FORWARD_OPEN, _) => "Forward Open".into(),
        (proto::SVC_LARGE_FORWARD_OPEN, _) => "Large Forward Open".into(),
        (proto::SVC_FORWARD_CLOSE, _) => "Forward Close".into(),
        (proto::SVC_GET_ATTRIBUTE_ALL, _) => "Get_Attribute_All".into(),
        (proto::SVC_GET_ATTRIBUTE_LIST, _) => "Get_Attribute_List".into(),
        (proto::SVC_GET_ATTRIBUTE_SINGLE, _) => "Get_Attribute_Single".into(),
        (proto::SVC_MULTIPLE, _) => "Multiple Service Packet".into(),
        (proto::SVC_GET_INSTANCE_ATTRIBUTE_LIST, _) => "Get_Instance_Attribute_List".into(),
        (proto::SVC_READ_TAG, Some(proto::CLASS_TEMPLATE)) => "Read Template".into(),
        (proto::SVC_READ_TAG, _) => "Read Tag".into(),
        (proto::SVC_READ_TAG_FRAGMENTED, _) => "Read Tag Fragmented".into(),
        (proto::SVC_WRITE_TAG, _) => "Write Tag".into(),
        (proto::SVC_WRITE_TAG_FRAGMENTED, _) => "Write Tag Fragmented".into(),
        (s, _) => format!("service 0x{s:02x}"),
    }
}

/// What one connection remembers.
struct ConnState {
    connection: u64,
    session: u32,
    /// The connection id this side chose in a Forward Open, and the client's.
    connected: Option<(u32, u32)>,
    /// The message size the Forward Open granted.
    size: usize,
    /// The request being answered opens a connection (faults spare it: they are meant
    /// for the data).
    opening: bool,
    /// The most bytes the request being answered may have in its reply: the granted size
    /// when it came connected, else the unconnected limit.
    limit: usize,
}

/// Serves one connection until it closes or a fault drops it.
async fn serve(
    mut stream: TcpStream,
    s: Arc<Shared>,
    connection: u64,
) -> Result<(), proto::WireError> {
    let _ = stream.set_nodelay(true);
    let mut st = ConnState {
        connection,
        session: 0,
        connected: None,
        size: 0,
        opening: false,
        limit: proto::UNCONNECTED_SIZE,
    };
    loop {
        let req = proto::read_frame(&mut stream, proto::MAX_FRAME).await?;
        let n = record(&s, command_name(req.command), connection, true);
        let cfg = s.cfg.lock().expect("sim lock").clone();
        if cfg.faults.silent_after.is_some_and(|a| n > a) {
            std::future::pending::<()>().await;
        }
        {
            let mut f = s.in_flight.lock().expect("sim lock");
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        if !cfg.response_delay.is_zero() {
            tokio::time::sleep(cfg.response_delay).await;
        }
        let reply = frame_reply(&s, &cfg, &req, &mut st, &stream);
        s.in_flight.lock().expect("sim lock").0 -= 1;
        let Some(mut reply) = reply else {
            return Ok(());
        };
        if cfg.faults.wrong_session
            && !st.opening
            && matches!(
                reply.command,
                proto::CMD_SEND_RR_DATA | proto::CMD_SEND_UNIT_DATA
            )
        {
            Arc::make_mut(&mut s.cfg.lock().expect("sim lock"))
                .faults
                .wrong_session = false;
            reply.session = reply.session.wrapping_add(1);
        }
        proto::write_frame(&mut stream, &reply).await?;
    }
}

fn frame_reply(
    s: &Shared,
    cfg: &EnipSimConfig,
    req: &Frame,
    st: &mut ConnState,
    stream: &TcpStream,
) -> Option<Frame> {
    if req.command == proto::CMD_REGISTER_SESSION {
        st.session = 0x1000_0000 | (st.connection as u32);
    }
    let session = st.session;
    let reply = |data: Vec<u8>| Frame {
        command: req.command,
        session,
        status: 0,
        context: req.context,
        options: 0,
        data,
    };
    match req.command {
        proto::CMD_LIST_IDENTITY => {
            let addr = match stream.local_addr() {
                Ok(SocketAddr::V4(a)) => a,
                _ => std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 44818),
            };
            Some(Frame {
                session: req.session,
                ..reply(proto::cpf(&[Item {
                    kind: proto::ITEM_IDENTITY,
                    data: proto::list_identity_item(&cfg.module, addr, 3),
                }]))
            })
        }
        proto::CMD_REGISTER_SESSION => Some(reply(req.data.clone())),
        proto::CMD_UNREGISTER_SESSION => None,
        proto::CMD_SEND_RR_DATA | proto::CMD_SEND_UNIT_DATA => {
            if st.session == 0 || req.session != st.session {
                return Some(Frame {
                    status: proto::ENCAP_INVALID_SESSION,
                    ..reply(Vec::new())
                });
            }
            let items = proto::parse_rr_data(&req.data).ok()?;
            let connected = req.command == proto::CMD_SEND_UNIT_DATA;
            let (body, seq) = match (connected, items.as_slice()) {
                (false, [_, b]) if b.kind == proto::ITEM_UNCONNECTED_DATA => (b.data.clone(), None),
                (true, [a, b])
                    if a.kind == proto::ITEM_CONNECTED_ADDRESS
                        && b.kind == proto::ITEM_CONNECTED_DATA
                        && b.data.len() >= 2 =>
                {
                    let id = u32::from_le_bytes(a.data.get(..4)?.try_into().ok()?);
                    if st.connected.map(|c| c.0) != Some(id) {
                        return Some(Frame {
                            status: proto::ENCAP_INVALID_SESSION,
                            ..reply(Vec::new())
                        });
                    }
                    (b.data[2..].to_vec(), Some([b.data[0], b.data[1]]))
                }
                _ => {
                    return Some(Frame {
                        status: proto::ENCAP_INVALID_LENGTH,
                        ..reply(Vec::new())
                    });
                }
            };
            let cip = Request::decode(&body).ok()?;
            st.opening = matches!(
                cip.service,
                proto::SVC_FORWARD_OPEN | proto::SVC_LARGE_FORWARD_OPEN
            );
            st.limit = if connected {
                st.size
            } else {
                proto::UNCONNECTED_SIZE
            };
            let answer = request_reply(s, cfg, &cip, st)?;
            let data = match seq {
                None => {
                    let mut items = vec![
                        Item {
                            kind: proto::ITEM_NULL,
                            data: Vec::new(),
                        },
                        Item {
                            kind: proto::ITEM_UNCONNECTED_DATA,
                            data: answer.encode(),
                        },
                    ];
                    let mut d = proto::rr_data(0, &items);
                    if cfg.faults.lying_length && !st.opening {
                        Arc::make_mut(&mut s.cfg.lock().expect("sim lock"))
                            .faults
                            .lying_length = false;
                        // The unconnected data item's length field, four more than it holds.
                        let at = d.len() - items[1].data.len() - 2;
                        let v = u16::from_le_bytes([d[at], d[at + 1]]) + 4;
                        d[at..at + 2].copy_from_slice(&v.to_le_bytes());
                    }
                    items.clear();
                    d
                }
                Some(seq) => {
                    let mut b = seq.to_vec();
                    b.extend_from_slice(&answer.encode());
                    if cfg.faults.lying_length {
                        Arc::make_mut(&mut s.cfg.lock().expect("sim lock"))
                            .faults
                            .lying_length = false;
                        // A value four bytes short of what its type holds.
                        b.truncate(b.len().saturating_sub(4));
                    }
                    proto::rr_data(
                        0,
                        &[
                            Item {
                                kind: proto::ITEM_CONNECTED_ADDRESS,
                                data: st.connected.map_or(0, |c| c.1).to_le_bytes().to_vec(),
                            },
                            Item {
                                kind: proto::ITEM_CONNECTED_DATA,
                                data: b,
                            },
                        ],
                    )
                }
            };
            Some(reply(data))
        }
        proto::CMD_NOP => None,
        _ => Some(Frame {
            status: proto::ENCAP_INVALID_COMMAND,
            ..reply(Vec::new())
        }),
    }
}

/// The reply to one CIP request (an Unconnected Send unwrapped), or `None` to drop the
/// connection.
fn request_reply(
    s: &Shared,
    cfg: &EnipSimConfig,
    req: &Request,
    st: &mut ConnState,
) -> Option<Reply> {
    let name = service_name(req);
    record(s, name.clone(), st.connection, false);
    if name == "Unconnected Send" {
        let Ok((inner, route)) = proto::parse_unconnected_send(&req.data) else {
            return Some(Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA));
        };
        if cfg.route.as_ref().is_some_and(|r| *r != route) {
            // Connection Manager: "port not available" / "link address not valid".
            return Some(Reply {
                service: proto::SVC_UNCONNECTED_SEND,
                status: proto::ST_CONNECTION_FAILURE,
                extended: vec![0x0311],
                data: vec![0],
            });
        }
        return request_reply(s, cfg, &inner, st);
    }
    let path = proto::parse_epath(&req.path).ok();
    let Some(path) = path else {
        return Some(Reply::error(req.service, proto::ST_PATH_SEGMENT));
    };
    match name.as_str() {
        "Forward Open" | "Large Forward Open" => Some(forward_open(cfg, req, st)),
        "Forward Close" => {
            st.connected = None;
            let d = req.data.get(2..10).map(<[u8]>::to_vec).unwrap_or_default();
            let mut d = d;
            d.extend_from_slice(&[0, 0]);
            Some(Reply::ok(req.service, d))
        }
        "Get_Attribute_All" => match path.as_slice() {
            [Segment::Class(proto::CLASS_IDENTITY), Segment::Instance(1)] => {
                Some(Reply::ok(req.service, cfg.identity.encode()))
            }
            [
                Segment::Class(proto::CLASS_PROGRAM_NAME),
                Segment::Instance(1),
            ] => {
                let mut d = (cfg.program_name.len() as u16).to_le_bytes().to_vec();
                d.extend_from_slice(cfg.program_name.as_bytes());
                Some(Reply::ok(req.service, d))
            }
            _ => Some(Reply::error(req.service, proto::ST_PATH_UNKNOWN)),
        },
        "Get_Attribute_List" => Some(template_attributes(cfg, req, &path)),
        "Read Template" => Some(read_template(cfg, req, &path)),
        "Get_Instance_Attribute_List" => {
            if cfg.faults.no_symbol_object {
                return None;
            }
            Some(symbol_list(cfg, req, &path, st))
        }
        "Read Tag" | "Read Tag Fragmented" => read_tag(s, cfg, req, &path, st.limit),
        "Write Tag" | "Write Tag Fragmented" => Some(write_tag(s, cfg, req, &path)),
        "Multiple Service Packet" => {
            let d = &req.data;
            let n = usize::from(u16::from_le_bytes([*d.first()?, *d.get(1)?]));
            let offs: Vec<usize> = (0..n)
                .map(|i| {
                    d.get(2 + i * 2..4 + i * 2)
                        .map(|o| usize::from(u16::from_le_bytes([o[0], o[1]])))
                })
                .collect::<Option<_>>()?;
            let mut replies = Vec::new();
            for (i, &o) in offs.iter().enumerate() {
                let end = offs.get(i + 1).copied().unwrap_or(d.len());
                let inner = Request::decode(d.get(o..end)?).ok()?;
                replies.push(request_reply(s, cfg, &inner, st)?.encode());
            }
            let mut out = (n as u16).to_le_bytes().to_vec();
            let mut at = 2 + 2 * n;
            for r in &replies {
                out.extend_from_slice(&(at as u16).to_le_bytes());
                at += r.len();
            }
            if 2 + 2 * n + replies.iter().map(Vec::len).sum::<usize>() > st.limit - 8 {
                // Reply data too large.
                return Some(Reply::error(req.service, 0x11));
            }
            let failed = replies.iter().any(|r| r[2] != proto::ST_OK);
            for r in replies {
                out.extend_from_slice(&r);
            }
            Some(Reply {
                status: if failed {
                    proto::ST_EMBEDDED
                } else {
                    proto::ST_OK
                },
                ..Reply::ok(req.service, out)
            })
        }
        _ => Some(Reply::error(req.service, proto::ST_NOT_SUPPORTED)),
    }
}

fn forward_open(cfg: &EnipSimConfig, req: &Request, st: &mut ConnState) -> Reply {
    let d = &req.data;
    let large = req.service == proto::SVC_LARGE_FORWARD_OPEN;
    // Through the parameters: the transport byte, the path size, the path.
    let at = if large { 38 } else { 34 };
    if d.len() < at + 2 {
        return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA);
    }
    let (transport, words) = (d[at], usize::from(d[at + 1]));
    let Some(Ok(path)) = d.get(at + 2..at + 2 + words * 2).map(proto::parse_epath) else {
        return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA);
    };
    let route: Vec<(u8, u8)> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Port(p, l) => Some((*p, *l)),
            _ => None,
        })
        .collect();
    let connection_failure = |ext: u16| Reply {
        extended: vec![ext],
        ..Reply::error(req.service, proto::ST_CONNECTION_FAILURE)
    };
    if cfg.refuse_connections {
        // "No more connections available".
        return connection_failure(0x0113);
    }
    if cfg.route.as_ref().is_some_and(|r| *r != route) {
        return connection_failure(0x0311);
    }
    // Explicit messaging to the Message Router only: an I/O connection is refused
    // ("transport class not supported").
    if transport != proto::TRANSPORT_CLASS3
        || !path.ends_with(&[
            Segment::Class(proto::CLASS_MESSAGE_ROUTER),
            Segment::Instance(1),
        ])
    {
        return connection_failure(0x0103);
    }
    let size = if large {
        u32::from_le_bytes(d[26..30].try_into().expect("4 bytes")) & 0xFFFF
    } else {
        u32::from(u16::from_le_bytes([d[26], d[27]]) & 0x01FF)
    };
    st.size = (size as usize).clamp(
        proto::UNCONNECTED_SIZE,
        usize::from(proto::LARGE_CONNECTION_SIZE),
    );
    let client_id = u32::from_le_bytes(d[6..10].try_into().expect("4 bytes"));
    let ours = 0x5000_0000 | (st.connection as u32);
    st.connected = Some((ours, client_id));
    let mut r = ours.to_le_bytes().to_vec();
    r.extend_from_slice(&client_id.to_le_bytes());
    r.extend_from_slice(&d[10..18]); // serial, vendor, originator serial
    r.extend_from_slice(&d[22..26]); // O->T RPI as the actual interval
    let t_rpi = if req.service == proto::SVC_LARGE_FORWARD_OPEN {
        &d[30..34]
    } else {
        &d[28..32]
    };
    r.extend_from_slice(t_rpi);
    r.extend_from_slice(&[0, 0]);
    Reply::ok(req.service, r)
}

/// The symbols of a scope, by the path's program symbol.
fn scope<'a>(
    cfg: &'a EnipSimConfig,
    path: &[Segment],
) -> Result<(Option<String>, &'a [SimTag]), u8> {
    match path.first() {
        Some(Segment::Symbol(p)) => {
            let name = p.strip_prefix("Program:").ok_or(proto::ST_PATH_UNKNOWN)?;
            cfg.programs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(n, t)| (Some(n.clone()), t.as_slice()))
                .ok_or(proto::ST_PATH_UNKNOWN)
        }
        _ => Ok((None, cfg.controller.as_slice())),
    }
}

fn symbol_list(cfg: &EnipSimConfig, req: &Request, path: &[Segment], st: &ConnState) -> Reply {
    let (program, tags) = match scope(cfg, path) {
        Ok(x) => x,
        Err(st) => return Reply::error(req.service, st),
    };
    if program.is_some() && cfg.faults.program_scope_unknown {
        return Reply::error(req.service, proto::ST_PATH_UNKNOWN);
    }
    let rest: Vec<&Segment> = path
        .iter()
        .skip_while(|s| matches!(s, Segment::Symbol(_)))
        .collect();
    let start = match rest.as_slice() {
        [Segment::Class(proto::CLASS_SYMBOL), Segment::Instance(i)] => *i,
        _ => return Reply::error(req.service, proto::ST_PATH_UNKNOWN),
    };
    let d = &req.data;
    let Some(n) = d
        .get(..2)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    else {
        return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA);
    };
    let attrs: Option<Vec<u16>> = (0..n)
        .map(|i| {
            d.get(2 + 2 * i..4 + 2 * i)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        })
        .collect();
    let Some(attrs) = attrs.filter(|a| a.iter().all(|x| [1, 2, 3, 5, 6, 8, 10].contains(x))) else {
        return Reply::error(req.service, 0x0A);
    };
    let mut out = Vec::new();
    let mut more = false;
    for (i, t) in tags.iter().enumerate() {
        let instance = i as u32 + 1;
        if instance < start {
            continue;
        }
        let mut e = instance.to_le_bytes().to_vec();
        for a in &attrs {
            match a {
                1 => {
                    e.extend_from_slice(&(t.name.len() as u16).to_le_bytes());
                    e.extend_from_slice(t.name.as_bytes());
                }
                2 => e.extend_from_slice(&t.symbol_type().to_le_bytes()),
                3 | 5 => e.extend_from_slice(&(0x0010_0000u32 + instance * 16).to_le_bytes()),
                6 => e.extend_from_slice(&(1u32 << 26).to_le_bytes()),
                8 => {
                    for k in 0..3 {
                        e.extend_from_slice(&t.dims.get(k).copied().unwrap_or(0).to_le_bytes());
                    }
                }
                _ => e.push(2), // 10: external access read/write
            }
        }
        if out.len() + e.len() > st.limit - 24 {
            more = true;
            break;
        }
        out.extend_from_slice(&e);
    }
    Reply {
        status: if more {
            proto::ST_PARTIAL
        } else {
            proto::ST_OK
        },
        ..Reply::ok(req.service, out)
    }
}

fn template_attributes(cfg: &EnipSimConfig, req: &Request, path: &[Segment]) -> Reply {
    let t = match path {
        [Segment::Class(proto::CLASS_TEMPLATE), Segment::Instance(i)] => cfg.template(*i as u16),
        _ => None,
    };
    let Some(t) = t else {
        return Reply::error(req.service, proto::ST_PATH_UNKNOWN);
    };
    let d = &req.data;
    let n = d
        .get(..2)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let mut out = (n as u16).to_le_bytes().to_vec();
    for i in 0..n {
        let Some(a) = d
            .get(2 + 2 * i..4 + 2 * i)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
        else {
            return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA);
        };
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        match a {
            1 => out.extend_from_slice(&t.handle.to_le_bytes()),
            2 => out.extend_from_slice(&(t.members.len() as u16).to_le_bytes()),
            4 => out.extend_from_slice(&t.definition_words().to_le_bytes()),
            5 => out.extend_from_slice(&t.size.to_le_bytes()),
            _ => return Reply::error(req.service, proto::ST_ATTRIBUTE_UNSUPPORTED),
        }
    }
    Reply::ok(req.service, out)
}

fn read_template(cfg: &EnipSimConfig, req: &Request, path: &[Segment]) -> Reply {
    let t = match path {
        [Segment::Class(proto::CLASS_TEMPLATE), Segment::Instance(i)] => cfg.template(*i as u16),
        _ => None,
    };
    let (Some(t), Some(off), Some(size)) = (
        t,
        req.data
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize),
        req.data
            .get(4..6)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
    ) else {
        return Reply::error(req.service, proto::ST_PATH_UNKNOWN);
    };
    let def = t.definition();
    let end = (off + size).min(def.len()).min(off + 480);
    let piece = def.get(off..end).unwrap_or_default().to_vec();
    Reply {
        status: if end < def.len().min(off + size) {
            proto::ST_PARTIAL
        } else {
            proto::ST_OK
        },
        ..Reply::ok(req.service, piece)
    }
}

/// The tag a Read or Write Tag path names, and the element it starts at.
fn tag_at<'a>(cfg: &'a EnipSimConfig, path: &[Segment]) -> Result<(&'a SimTag, usize), u8> {
    let (program, name, rest) = match path {
        [Segment::Symbol(p), Segment::Symbol(n), rest @ ..] if p.starts_with("Program:") => {
            (Some(&p["Program:".len()..]), n, rest)
        }
        [Segment::Symbol(n), rest @ ..] => (None, n, rest),
        _ => return Err(proto::ST_PATH_SEGMENT),
    };
    let t = cfg
        .tag(program, name)
        .filter(|t| !t.system)
        .ok_or(proto::ST_PATH_UNKNOWN)?;
    let start = match rest {
        [] => 0,
        [Segment::Element(e)] => *e as usize,
        _ => return Err(proto::ST_PATH_SEGMENT),
    };
    Ok((t, start))
}

fn read_tag(
    s: &Shared,
    cfg: &EnipSimConfig,
    req: &Request,
    path: &[Segment],
    limit: usize,
) -> Option<Reply> {
    // The value bytes one reply holds.
    let piece = cfg.fragment.min(limit - 16);
    if let Some(st) = cfg.faults.read_status {
        return Some(Reply::error(req.service, st));
    }
    let (t, start) = match tag_at(cfg, path) {
        Ok(x) => x,
        Err(st) => return Some(Reply::error(req.service, st)),
    };
    let fragmented = req.service == proto::SVC_READ_TAG_FRAGMENTED;
    let d = &req.data;
    let count = usize::from(u16::from_le_bytes([*d.first()?, *d.get(1)?]));
    let offset = if fragmented {
        u32::from_le_bytes(d.get(2..6)?.try_into().ok()?) as usize
    } else {
        0
    };
    let el = t.bytes.len() / t.elements();
    if count == 0 || start + count > t.elements() {
        return Some(Reply {
            extended: vec![0x2105],
            ..Reply::error(req.service, proto::ST_GENERAL)
        });
    }
    let value = &t.bytes[start * el..(start + count) * el];
    let mut head = cfg.handle_of(t).encode();
    if cfg.faults.wrong_type && !fragmented {
        match t.data_type {
            SimType::Atomic(0xC4) => head = proto::DataType::Atomic(0xCA).encode(),
            SimType::Atomic(0xCA) => head = proto::DataType::Atomic(0xC4).encode(),
            _ => {}
        }
    }
    if !fragmented {
        if value.len() > limit - 16 {
            return Some(Reply::error(req.service, 0x11));
        }
        head.extend_from_slice(value);
        return Some(Reply::ok(req.service, head));
    }
    let piece_no = {
        let mut p = s.fragments.lock().expect("sim lock");
        *p += 1;
        *p
    };
    if cfg.faults.drop_in_fragment == Some(piece_no) {
        Arc::make_mut(&mut s.cfg.lock().expect("sim lock"))
            .faults
            .drop_in_fragment = None;
        return None;
    }
    if cfg.faults.type_switch && offset > 0 {
        Arc::make_mut(&mut s.cfg.lock().expect("sim lock"))
            .faults
            .type_switch = false;
        head = proto::DataType::Atomic(0xC3).encode();
    }
    if offset > value.len() {
        return Some(Reply::error(req.service, 0x20));
    }
    let end = (offset + piece).min(value.len());
    head.extend_from_slice(&value[offset..end]);
    let more = end < value.len() || cfg.faults.endless_fragments;
    if cfg.faults.endless_fragments && end == offset {
        head.extend_from_slice(&[0xAA; 8]);
    }
    Some(Reply {
        status: if more {
            proto::ST_PARTIAL
        } else {
            proto::ST_OK
        },
        ..Reply::ok(req.service, head)
    })
}

fn write_tag(s: &Shared, cfg: &EnipSimConfig, req: &Request, path: &[Segment]) -> Reply {
    if !cfg.writable {
        return Reply::error(req.service, proto::ST_PRIVILEGE);
    }
    let (t, start) = match tag_at(cfg, path) {
        Ok(x) => x,
        Err(st) => return Reply::error(req.service, st),
    };
    let Ok((dt, rest)) = proto::DataType::split(&req.data) else {
        return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA);
    };
    if dt != cfg.handle_of(t) {
        // "Data type used in request doesn't match the target tag's".
        return Reply {
            extended: vec![0x2107],
            ..Reply::error(req.service, proto::ST_GENERAL)
        };
    }
    let fragmented = req.service == proto::SVC_WRITE_TAG_FRAGMENTED;
    let Some(count) = rest
        .get(..2)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    else {
        return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA);
    };
    let (offset, data) = if fragmented {
        match rest.get(2..6) {
            Some(o) => (
                u32::from_le_bytes(o.try_into().expect("4")) as usize,
                &rest[6..],
            ),
            None => return Reply::error(req.service, proto::ST_NOT_ENOUGH_DATA),
        }
    } else {
        (0, &rest[2..])
    };
    let el = t.bytes.len() / t.elements();
    let span = count * el;
    if start + count > t.elements()
        || offset + data.len() > span
        || (!fragmented && data.len() != span)
    {
        return Reply::error(req.service, proto::ST_TOO_MUCH_DATA);
    }
    let at = start * el + offset;
    let name = t.name.clone();
    let program = path.first().and_then(|p| match p {
        Segment::Symbol(p) if p.starts_with("Program:") => Some(p.clone()),
        _ => None,
    });
    let mut g = s.cfg.lock().expect("sim lock");
    let c = Arc::make_mut(&mut g);
    let full = match program {
        Some(p) => format!("{p}.{name}"),
        None => name,
    };
    if let Some(t) = c.tag_mut(&full) {
        t.bytes[at..at + data.len()].copy_from_slice(data);
    }
    Reply::ok(req.service, Vec::new())
}
