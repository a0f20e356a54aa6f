//! A simulated S7 CPU: ISO-on-TCP with COTP, setup communication (the PDU size it grants
//! is configurable), SZL in Siemens' layout, a block directory of generated MC7 blocks with
//! their info and checksums, uploads in pieces that fit the PDU, read var on DBs, and —
//! only when marked writable — write var into DBs. It records every function it receives
//! (known or not) and can inject faults. Bound to `127.0.0.1:0` in tests and the demo.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use super::proto::{self, BlockType, Pdu};

/// One request as the simulated CPU received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub at: Instant,
    /// `cotp-connect`, `setup`, `read-var`, `write-var`, `start-upload`, `upload`,
    /// `end-upload`, `userdata 4/1` (SZL), `userdata 3/2` ..., or `job 0x28` for a job
    /// function it does not serve.
    pub function: String,
}

/// A block the CPU holds: its whole MC7 image (header, code, footer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimBlock {
    pub block_type: BlockType,
    pub number: u16,
    pub bytes: Vec<u8>,
    /// Know-how protected: listed with its info, upload refused.
    pub protected: bool,
}

/// MC7 header and footer sizes of the generated blocks.
const MC7_HEADER: usize = 36;
const MC7_FOOTER: usize = 36;

impl SimBlock {
    /// A block of `code_len` generated MC7 code bytes (deterministic in `seed`), with an
    /// interface, author, family and name as STEP 7 writes them.
    pub fn generated(block_type: BlockType, number: u16, code_len: usize, seed: u64) -> SimBlock {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // STL-like code: opcode, operand pairs from a small set, as MC7 looks.
        const OPS: [u8; 8] = [0x41, 0x49, 0x30, 0x7E, 0x1E, 0x65, 0xFB, 0x70];
        let code: Vec<u8> = (0..code_len)
            .map(|i| {
                let r = next();
                if i % 2 == 0 {
                    OPS[(r % 8) as usize]
                } else {
                    (r >> 8) as u8
                }
            })
            .collect();
        let interface: Vec<u8> = (0..(8 + (seed % 5) as usize * 4))
            .map(|_| next() as u8)
            .collect();
        let language = match block_type {
            BlockType::Db => 5,
            BlockType::Sdb => 7,
            _ => 1 + (seed % 3) as u8,
        };
        SimBlock::assemble(block_type, number, language, &code, &interface, seed)
    }

    /// A data block whose body is `data` (its actual values).
    pub fn data_block(number: u16, data: &[u8]) -> SimBlock {
        SimBlock::assemble(BlockType::Db, number, 5, data, &[0x05, 0x00], 0)
    }

    fn assemble(
        t: BlockType,
        number: u16,
        language: u8,
        code: &[u8],
        interface: &[u8],
        seed: u64,
    ) -> SimBlock {
        let total = MC7_HEADER + code.len() + interface.len() + MC7_FOOTER;
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&[0x70, 0x70, 0x01, 0x01, language, t.subblock()]);
        b.extend_from_slice(&number.to_be_bytes());
        b.extend_from_slice(&(total as u32).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]); // security
        // Code and interface timestamps: ms since midnight, days since 1984.
        let ms = (seed % 86_400_000) as u32;
        let days = 14_000 + (seed % 500) as u16;
        for _ in 0..2 {
            b.extend_from_slice(&ms.to_be_bytes());
            b.extend_from_slice(&days.to_be_bytes());
        }
        b.extend_from_slice(&(interface.len() as u16).to_be_bytes()); // SBB
        b.extend_from_slice(&0u16.to_be_bytes()); // ADD
        b.extend_from_slice(&(16 + (seed % 64) as u16).to_be_bytes()); // local data
        b.extend_from_slice(&(code.len() as u16).to_be_bytes());
        b.extend_from_slice(code);
        b.extend_from_slice(interface);
        b.extend_from_slice(b"PLCVAULT");
        b.extend_from_slice(b"BOTTLING");
        b.extend_from_slice(format!("{:<8}", format!("{}{number}", t.name())).as_bytes());
        b.push(0x12); // version 1.2
        b.push(0);
        b.extend_from_slice(&checksum(code).to_be_bytes());
        b.extend_from_slice(&[0u8; 8]);
        debug_assert_eq!(b.len(), total);
        SimBlock {
            block_type: t,
            number,
            bytes: b,
            protected: false,
        }
    }

    fn header_u16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    /// The block's MC7 code (what a change of logic changes).
    pub fn code_mut(&mut self) -> &mut [u8] {
        let n = self.header_u16(34) as usize;
        &mut self.bytes[MC7_HEADER..MC7_HEADER + n]
    }

    /// Recomputes the footer checksum after the code changed (a download does).
    pub fn reseal(&mut self) {
        let n = self.header_u16(34) as usize;
        let c = checksum(&self.bytes[MC7_HEADER..MC7_HEADER + n]);
        let at = self.bytes.len() - MC7_FOOTER + 26;
        self.bytes[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// The 78-byte block info answer, from the header and footer.
    pub fn info(&self) -> Vec<u8> {
        let b = &self.bytes;
        let f = b.len() - MC7_FOOTER;
        let mut d = vec![0u8; 78];
        d[0] = 0x01;
        d[1] = self.block_type.code();
        d[2..4].copy_from_slice(&[0x00, 0x4A]);
        d[4..6].copy_from_slice(&[0x00, 0x00]);
        d[6..8].copy_from_slice(&[0x70, 0x70]);
        d[9] = b[3];
        d[10] = b[4];
        d[11] = b[5];
        d[12..14].copy_from_slice(&b[6..8]);
        d[14..18].copy_from_slice(&b[8..12]);
        d[18..22].copy_from_slice(&if self.protected { [0, 0, 0, 3] } else { [0; 4] });
        d[22..34].copy_from_slice(&b[16..28]);
        d[34..42].copy_from_slice(&b[28..36]);
        d[42..66].copy_from_slice(&b[f..f + 24]);
        d[66] = b[f + 24];
        d[68..70].copy_from_slice(&b[f + 26..f + 28]);
        d
    }
}

/// The block checksum the simulated CPU reports: CRC-16/ARC of the code.
pub fn checksum(code: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in code {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Faults to inject.
#[derive(Clone, Debug, Default)]
pub struct S7Faults {
    /// Stop answering (requests time out) after this many requests.
    pub silent_after: Option<u64>,
    /// Drop the connection at this upload piece (counted from start, once).
    pub drop_in_upload: Option<u64>,
    /// The first upload piece's length field says one byte more than it holds (once).
    pub lying_length: bool,
    /// Answer with another PDU reference.
    pub wrong_reference: bool,
    /// SZL answers that always say more pieces follow.
    pub endless_szl: bool,
    /// A start upload that announces ten bytes more than the block has (once).
    pub short_upload: bool,
    /// A start upload that announces ten bytes fewer than the block has (once).
    pub long_upload: bool,
    /// The next reply is padded past the largest PDU (once).
    pub oversized: bool,
    /// The first start upload is answered "resource not available" (a busy CPU, once).
    pub busy_upload: bool,
}

/// What a simulated CPU serves.
#[derive(Clone, Debug)]
pub struct S7SimConfig {
    /// The largest PDU it grants.
    pub max_pdu: u16,
    pub order_number: String,
    pub firmware: (u8, u8, u8),
    pub station: String,
    pub module_name: String,
    pub serial: String,
    pub plant: String,
    /// Protection level (1 none, 2 write, 3 read/write) and key switch (1 RUN, 2 RUN-P, 3 STOP).
    pub protection: (u16, u16),
    /// 0x08 RUN, 0x04 STOP.
    pub cpu_state: u8,
    /// SZL ids answered "not available".
    pub szl_unavailable: Vec<u16>,
    pub blocks: Vec<SimBlock>,
    /// DB contents for read and write var, by DB number.
    pub dbs: Vec<(u16, Vec<u8>)>,
    pub writable: bool,
    pub response_delay: Duration,
    pub faults: S7Faults,
}

impl S7SimConfig {
    /// A CPU 315-2 PN/DP with `blocks` generated logic blocks (OBs, FBs, FCs) and two DBs.
    pub fn generated(blocks: usize, seed: u64) -> S7SimConfig {
        let mut list = Vec::new();
        for i in 0..blocks {
            let (t, n) = match i % 10 {
                0 => (
                    BlockType::Ob,
                    [1u16, 35, 80, 82, 86, 100, 121, 122][(i / 10) % 8],
                ),
                1..=4 => (BlockType::Fb, (i as u16) + 1),
                _ => (BlockType::Fc, (i as u16) + 1),
            };
            if list
                .iter()
                .any(|b: &SimBlock| b.block_type == t && b.number == n)
            {
                continue;
            }
            let len = 60 + ((seed as usize + i * 37) % 400);
            list.push(SimBlock::generated(t, n, len, seed.wrapping_add(i as u64)));
        }
        let recipe: Vec<u8> = (0..200u32).map(|i| (i * 7 + seed as u32) as u8).collect();
        let config: Vec<u8> = (0..64u32).map(|i| (i * 3) as u8).collect();
        list.push(SimBlock::data_block(10, &recipe));
        list.push(SimBlock::data_block(20, &config));
        list.push(SimBlock::generated(BlockType::Sdb, 0, 120, seed ^ 0x5DB));
        S7SimConfig {
            max_pdu: 480,
            order_number: "6ES7 315-2EH14-0AB0".into(),
            firmware: (3, 2, 8),
            station: "BOTTLING-LINE".into(),
            module_name: "CPU 315-2 PN/DP".into(),
            serial: format!("S C-X4U{:09}", seed % 1_000_000_000),
            plant: "Hall 2".into(),
            protection: (1, 2),
            cpu_state: 0x08,
            szl_unavailable: Vec::new(),
            blocks: list,
            dbs: vec![(10, recipe), (20, config)],
            writable: false,
            response_delay: Duration::ZERO,
            faults: S7Faults::default(),
        }
    }

    /// The block `t` `n`, to change it behind the collector's back.
    pub fn block_mut(&mut self, t: BlockType, n: u16) -> Option<&mut SimBlock> {
        self.blocks
            .iter_mut()
            .find(|b| b.block_type == t && b.number == n)
    }
}

struct Shared {
    cfg: Mutex<S7SimConfig>,
    recorded: Mutex<Vec<Recorded>>,
    served: Mutex<u64>,
    upload_pieces: Mutex<u64>,
    in_flight: Mutex<(usize, usize)>,
}

/// A running simulated CPU. Dropping it stops the server.
pub struct S7Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S7Sim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S7Sim {
    /// Binds `bind` (use `127.0.0.1:0`) and serves in the background.
    ///
    /// Fails when the address cannot be bound.
    pub async fn start(bind: &str, cfg: S7SimConfig) -> io::Result<S7Sim> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg: Mutex::new(cfg),
            recorded: Mutex::new(Vec::new()),
            served: Mutex::new(0),
            upload_pieces: Mutex::new(0),
            in_flight: Mutex::new((0, 0)),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, s).await;
                });
            }
        });
        Ok(S7Sim { shared, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the configuration (blocks, identity, faults) while running.
    pub fn update(&self, f: impl FnOnce(&mut S7SimConfig)) {
        f(&mut self.shared.cfg.lock().expect("sim lock"));
    }

    /// A copy of the configuration as it stands (DBs after writes included).
    pub fn config(&self) -> S7SimConfig {
        self.shared.cfg.lock().expect("sim lock").clone()
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

fn record(s: &Shared, function: String) -> u64 {
    s.recorded.lock().expect("sim lock").push(Recorded {
        at: Instant::now(),
        function,
    });
    let mut n = s.served.lock().expect("sim lock");
    *n += 1;
    *n
}

/// Serves one connection until it closes or a fault drops it.
async fn serve(mut stream: TcpStream, s: Arc<Shared>) -> Result<(), proto::WireError> {
    let _ = stream.set_nodelay(true);
    let cr = proto::read_tpkt(&mut stream, 64).await?;
    record(&s, "cotp-connect".into());
    let c = proto::Cotp::decode(&cr)?;
    if c.code != proto::COTP_CR {
        return Ok(());
    }
    let cc = proto::Cotp {
        code: proto::COTP_CC,
        dst_ref: c.src_ref,
        src_ref: 0x0044,
        src_tsap: c.dst_tsap,
        dst_tsap: c.src_tsap,
        tpdu_size: c.tpdu_size,
    };
    proto::write_tpkt(&mut stream, &cc.encode()).await?;
    let mut pdu = proto::MAX_PDU;
    // One upload at a time per connection: the block's bytes and how far it went.
    let mut upload: Option<(u32, Vec<u8>, usize)> = None;
    let mut next_upload_id = 1u32;
    let mut pending: Option<Pending> = None;
    loop {
        let raw = proto::read_pdu(&mut stream, usize::from(proto::MAX_PDU)).await?;
        let req = Pdu::decode(&raw)?;
        let function = match req.rosctr {
            proto::JOB => match req.param.first() {
                Some(&proto::F_SETUP) => "setup".to_string(),
                Some(&proto::F_READ_VAR) => "read-var".into(),
                Some(&proto::F_WRITE_VAR) => "write-var".into(),
                Some(&proto::F_START_UPLOAD) => "start-upload".into(),
                Some(&proto::F_UPLOAD) => "upload".into(),
                Some(&proto::F_END_UPLOAD) => "end-upload".into(),
                Some(f) => format!("job 0x{f:02x}"),
                None => "job".into(),
            },
            proto::USERDATA => match req.param.get(5..7) {
                Some(&[g, sf]) => format!("userdata {}/{}", g & 0x0F, sf),
                _ => "userdata".into(),
            },
            other => format!("rosctr 0x{other:02x}"),
        };
        let n = record(&s, function.clone());
        let cfg = s.cfg.lock().expect("sim lock").clone();
        if cfg.faults.silent_after.is_some_and(|a| n > a) {
            // Never answer again; keep the connection open.
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
        let mut conn = ConnState {
            pdu: &mut pdu,
            upload: &mut upload,
            next_id: &mut next_upload_id,
            pending: &mut pending,
        };
        let reply = answer(&s, &cfg, &req, &function, &mut conn);
        s.in_flight.lock().expect("sim lock").0 -= 1;
        let Some(mut reply) = reply else {
            // A dropped connection (fault) or a request it will not answer.
            return Ok(());
        };
        if cfg.faults.wrong_reference {
            reply.pdu_ref = reply.pdu_ref.wrapping_add(1);
        }
        if cfg.faults.oversized {
            s.cfg.lock().expect("sim lock").faults.oversized = false;
            reply
                .data
                .resize(reply.data.len() + 2 * usize::from(proto::MAX_PDU), 0);
        }
        let mut bytes = reply.encode();
        if cfg.faults.lying_length && function == "upload" {
            let mut c = s.cfg.lock().expect("sim lock");
            if c.faults.lying_length {
                c.faults.lying_length = false;
                // The piece's own length field (data offset 0) one more than it holds.
                let at = bytes.len() - reply.data.len();
                let v = u16::from_be_bytes([bytes[at], bytes[at + 1]]) + 1;
                bytes[at..at + 2].copy_from_slice(&v.to_be_bytes());
            }
        }
        proto::write_pdu(&mut stream, &bytes).await?;
    }
}

fn ack(req: &Pdu, error: u16, param: Vec<u8>, data: Vec<u8>) -> Pdu {
    Pdu {
        rosctr: proto::ACK_DATA,
        pdu_ref: req.pdu_ref,
        error,
        param,
        data,
    }
}

/// A userdata answer longer than one PDU: the rest, sent on follow-ups.
struct Pending {
    group: u8,
    subfunction: u8,
    seq: u8,
    rest: Vec<u8>,
}

/// What one connection remembers between requests.
struct ConnState<'a> {
    pdu: &'a mut u16,
    upload: &'a mut Option<(u32, Vec<u8>, usize)>,
    next_id: &'a mut u32,
    pending: &'a mut Option<Pending>,
}

/// The reply to one request, or `None` to drop the connection.
fn answer(
    s: &Shared,
    cfg: &S7SimConfig,
    req: &Pdu,
    function: &str,
    c: &mut ConnState,
) -> Option<Pdu> {
    let ConnState {
        pdu,
        upload,
        next_id,
        pending,
    } = c;
    match function {
        "setup" => {
            let asked = proto::setup_pdu_size(&req.param).ok()?;
            **pdu = asked.min(cfg.max_pdu).max(proto::MIN_PDU);
            Some(ack(req, 0, proto::setup_param(**pdu), vec![]))
        }
        "read-var" => Some(read_var(cfg, req, **pdu)),
        "write-var" => Some(write_var(s, cfg, req)),
        "start-upload" => {
            let name = req.param.get(9..18)?;
            let t = BlockType::from_code(name[2]);
            let n: Option<u16> = std::str::from_utf8(&name[3..8])
                .ok()
                .and_then(|d| d.parse().ok());
            let block = t.zip(n).and_then(|(t, n)| {
                cfg.blocks
                    .iter()
                    .find(|b| b.block_type == t && b.number == n)
            });
            if cfg.faults.busy_upload {
                s.cfg.lock().expect("sim lock").faults.busy_upload = false;
                return Some(ack(req, 0x0500, vec![proto::F_START_UPLOAD], vec![]));
            }
            match block {
                None => Some(ack(req, 0xD209, vec![proto::F_START_UPLOAD], vec![])),
                Some(b) if b.protected => {
                    Some(ack(req, 0xD241, vec![proto::F_START_UPLOAD], vec![]))
                }
                Some(b) => {
                    // One byte of upload id, as snap7 reads it (1 to 255, then again).
                    let id = **next_id;
                    **next_id = id % 255 + 1;
                    let mut announced = b.bytes.len();
                    if cfg.faults.short_upload {
                        s.cfg.lock().expect("sim lock").faults.short_upload = false;
                        announced += 10;
                    } else if cfg.faults.long_upload {
                        s.cfg.lock().expect("sim lock").faults.long_upload = false;
                        announced -= 10;
                    }
                    **upload = Some((id, b.bytes.clone(), 0));
                    let mut p = vec![proto::F_START_UPLOAD, 0, 1, 0];
                    p.extend_from_slice(&id.to_be_bytes());
                    let digits = format!("{announced:07}");
                    p.push(digits.len() as u8);
                    p.extend_from_slice(digits.as_bytes());
                    Some(ack(req, 0, p, vec![]))
                }
            }
        }
        "upload" => {
            let id = u32::from_be_bytes(req.param.get(4..8)?.try_into().ok()?);
            let Some((uid, bytes, at)) = upload.as_mut().filter(|u| u.0 == id) else {
                return Some(ack(req, 0xD20E, vec![proto::F_UPLOAD], vec![]));
            };
            let _ = uid;
            let piece_no = {
                let mut p = s.upload_pieces.lock().expect("sim lock");
                *p += 1;
                *p
            };
            if cfg.faults.drop_in_upload == Some(piece_no) {
                s.cfg.lock().expect("sim lock").faults.drop_in_upload = None;
                return None;
            }
            let room = usize::from(**pdu) - 18;
            let end = (*at + room).min(bytes.len());
            let piece = bytes[*at..end].to_vec();
            *at = end;
            let more = end < bytes.len();
            Some(ack(
                req,
                0,
                vec![proto::F_UPLOAD, u8::from(more)],
                proto::upload_reply_data(&piece),
            ))
        }
        "end-upload" => {
            **upload = None;
            Some(ack(req, 0, vec![proto::F_END_UPLOAD], vec![]))
        }
        f if f.starts_with("userdata") => Some(userdata(cfg, req, **pdu, pending)),
        // Anything else (a stop, a download, a delete): refused, and recorded above.
        _ => Some(ack(
            req,
            0x8104,
            req.param.first().map(|f| vec![*f]).unwrap_or_default(),
            vec![],
        )),
    }
}

fn read_var(cfg: &S7SimConfig, req: &Pdu, pdu: u16) -> Pdu {
    let item = |rc: u8| ack(req, 0, vec![proto::F_READ_VAR, 1], vec![rc, 0, 0, 0]);
    let Ok((area, db, start, len)) = req.param.get(2..14).map_or(
        Err(proto::WireError::Garbage("item".into())),
        proto::parse_any_item,
    ) else {
        return ack(req, 0x8500, vec![proto::F_READ_VAR, 0], vec![]);
    };
    if req.param.get(1) != Some(&1) || usize::from(len) + 18 > usize::from(pdu) {
        return ack(req, 0x8500, vec![proto::F_READ_VAR, 0], vec![]);
    }
    if area != proto::AREA_DB {
        return item(0x05);
    }
    let Some((_, data)) = cfg.dbs.iter().find(|(n, _)| *n == db) else {
        return item(0x0A);
    };
    let (a, b) = (start as usize, start as usize + usize::from(len));
    if b > data.len() {
        return item(0x05);
    }
    let mut d = vec![proto::RC_OK, 0x04];
    d.extend_from_slice(&(len * 8).to_be_bytes());
    d.extend_from_slice(&data[a..b]);
    ack(req, 0, vec![proto::F_READ_VAR, 1], d)
}

fn write_var(s: &Shared, cfg: &S7SimConfig, req: &Pdu) -> Pdu {
    let reply = |rc: u8| ack(req, 0, vec![proto::F_WRITE_VAR, 1], vec![rc]);
    if !cfg.writable {
        return reply(0x03);
    }
    let Ok((area, db, start, len)) = req.param.get(2..14).map_or(
        Err(proto::WireError::Garbage("item".into())),
        proto::parse_any_item,
    ) else {
        return reply(0x07);
    };
    let d = &req.data;
    if area != proto::AREA_DB || d.len() != 4 + usize::from(len) {
        return reply(0x07);
    }
    let mut c = s.cfg.lock().expect("sim lock");
    let Some((_, data)) = c.dbs.iter_mut().find(|(n, _)| *n == db) else {
        return reply(0x0A);
    };
    let (a, b) = (start as usize, start as usize + usize::from(len));
    if b > data.len() {
        return reply(0x05);
    }
    data[a..b].copy_from_slice(&d[4..]);
    reply(proto::RC_OK)
}

/// SZL records in Siemens' layout: id, index, record length, count, records.
fn szl_list(id: u16, index: u16, len: usize, records: &[Vec<u8>]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&index.to_be_bytes());
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for r in records {
        let mut r = r.clone();
        r.resize(len, 0);
        v.extend_from_slice(&r);
    }
    v
}

fn padded(index: u16, text: &str, len: usize) -> Vec<u8> {
    let mut r = index.to_be_bytes().to_vec();
    let mut t = text.as_bytes().to_vec();
    t.resize(len, 0);
    r.extend_from_slice(&t);
    r
}

fn szl(cfg: &S7SimConfig, id: u16, index: u16) -> Option<Vec<u8>> {
    if cfg.szl_unavailable.contains(&id) {
        return None;
    }
    match id {
        0x0011 => {
            let rec = |i: u16, g: u16, e: u16| {
                let mut r = padded(i, &cfg.order_number, 20);
                r.extend_from_slice(&[0x00, 0xC0]);
                r.extend_from_slice(&g.to_be_bytes());
                r.extend_from_slice(&e.to_be_bytes());
                r
            };
            let (a, b, c) = cfg.firmware;
            Some(szl_list(
                id,
                index,
                28,
                &[
                    rec(1, 0, 4),
                    rec(6, 0, 4),
                    rec(
                        7,
                        (u16::from(b'V') << 8) | u16::from(a),
                        (u16::from(b) << 8) | u16::from(c),
                    ),
                ],
            ))
        }
        0x001C => Some(szl_list(
            id,
            index,
            34,
            &[
                padded(1, &cfg.station, 32),
                padded(2, &cfg.module_name, 32),
                padded(3, &cfg.plant, 32),
                padded(4, "Original Siemens Equipment", 32),
                padded(5, &cfg.serial, 32),
                padded(7, &cfg.module_name, 32),
            ],
        )),
        0x0232 => {
            let mut r = 4u16.to_be_bytes().to_vec();
            for v in [cfg.protection.0, 0, 0, cfg.protection.1, 1] {
                r.extend_from_slice(&v.to_be_bytes());
            }
            Some(szl_list(id, index, 20, &[r]))
        }
        0x0424 => {
            let r = vec![0x43, 0x02, 0xFF, cfg.cpu_state];
            Some(szl_list(id, index, 20, &[r]))
        }
        _ => None,
    }
}

fn userdata(cfg: &S7SimConfig, req: &Pdu, pdu: u16, pending: &mut Option<Pending>) -> Pdu {
    let reply = |g: u8, sf: u8, seq: u8, more: bool, error: u16, payload: &[u8]| Pdu {
        rosctr: proto::USERDATA,
        pdu_ref: req.pdu_ref,
        error: 0,
        param: proto::userdata_reply_param(g, sf, seq, more, error),
        // Success carries its octet string, even an empty one (a type without blocks).
        data: if error != 0 {
            vec![0x0A, 0, 0, 0]
        } else {
            let mut d = vec![proto::RC_OK, 0x09];
            d.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            d.extend_from_slice(payload);
            d
        },
    };
    let Ok(u) = proto::parse_userdata_request(req) else {
        return reply(0, 0, 0, false, 0x8104, &[]);
    };
    // Pieces that fit the PDU: 10 header, 12 parameters, 4 data header.
    let room = usize::from(pdu) - 26;
    let endless = cfg.faults.endless_szl && u.group == proto::G_CPU;
    if u.seq != 0 && u.payload.is_empty() {
        // A follow-up: the next piece of the answer its sequence number names.
        return match pending.take() {
            Some(mut p)
                if p.seq == u.seq && (p.group, p.subfunction) == (u.group, u.subfunction) =>
            {
                let n = room.min(p.rest.len());
                let piece: Vec<u8> = p.rest.drain(..n).collect();
                let more = !p.rest.is_empty() || endless;
                let (g, sf, seq) = (p.group, p.subfunction, p.seq);
                if more {
                    if p.rest.is_empty() {
                        p.rest = vec![0xAA; room];
                    }
                    *pending = Some(p);
                }
                reply(g, sf, seq, more, 0, &piece)
            }
            _ => reply(u.group, u.subfunction, 0, false, 0xD40A, &[]),
        };
    }
    let whole: Option<Vec<u8>> = match (u.group, u.subfunction) {
        (proto::G_CPU, proto::SF_READ_SZL) => match u.payload.as_slice() {
            [a, b, c, d] => szl(
                cfg,
                u16::from_be_bytes([*a, *b]),
                u16::from_be_bytes([*c, *d]),
            ),
            _ => None,
        },
        (proto::G_BLOCK, proto::SF_LIST_ALL) => {
            let mut v = Vec::new();
            for code in [0x38u8, 0x45, 0x43, 0x41, 0x42, 0x44, 0x46] {
                let n = cfg
                    .blocks
                    .iter()
                    .filter(|b| b.block_type.code() == code)
                    .count();
                v.extend_from_slice(&[0x30, code]);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            Some(v)
        }
        (proto::G_BLOCK, proto::SF_LIST_TYPE) => match u.payload.as_slice() {
            [0x30, c] => BlockType::from_code(*c).map(|t| {
                let mut list: Vec<&SimBlock> =
                    cfg.blocks.iter().filter(|b| b.block_type == t).collect();
                list.sort_by_key(|b| b.number);
                list.iter()
                    .flat_map(|b| {
                        let mut e = b.number.to_be_bytes().to_vec();
                        e.extend_from_slice(&[0x22, b.bytes[4]]);
                        e
                    })
                    .collect()
            }),
            _ => None,
        },
        (proto::G_BLOCK, proto::SF_BLOCK_INFO) => {
            let p = &u.payload;
            let t = p.get(1).copied().and_then(BlockType::from_code);
            let n: Option<u16> = p
                .get(2..7)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| d.parse().ok());
            t.zip(n)
                .and_then(|(t, n)| {
                    cfg.blocks
                        .iter()
                        .find(|b| b.block_type == t && b.number == n)
                })
                .map(SimBlock::info)
        }
        _ => None,
    };
    let Some(mut whole) = whole else {
        let error = if u.group == proto::G_CPU {
            0xD401
        } else {
            0xD209
        };
        return reply(u.group, u.subfunction, 0, false, error, &[]);
    };
    let n = room.min(whole.len());
    let rest = whole.split_off(n);
    let more = !rest.is_empty() || endless;
    // Any non-zero number names the answer; follow-ups repeat it.
    let seq = if more { 0x2A } else { 0 };
    if more {
        *pending = Some(Pending {
            group: u.group,
            subfunction: u.subfunction,
            seq,
            rest: if rest.is_empty() {
                vec![0xAA; room]
            } else {
                rest
            },
        });
    }
    reply(u.group, u.subfunction, seq, more, 0, &whole)
}
