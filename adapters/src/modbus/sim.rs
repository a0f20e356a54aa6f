//! A simulated PLC: a tokio-modbus TCP server with a register map, device identification,
//! a request recorder and fault injection. Used by the demo, the tests and the benchmark,
//! bound to `127.0.0.1:0` (never a fixed port).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_modbus::bytes::Bytes;
use tokio_modbus::prelude::{
    ConformityLevel, DeviceIdObject, ExceptionCode, ReadCode, ReadDeviceIdentificationResponse,
    Request, Response, SlaveRequest,
};
use tokio_modbus::server::tcp::Server;

/// The four tables. An address past a table's length is answered with exception 2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimMap {
    pub holding: Vec<u16>,
    pub input: Vec<u16>,
    pub coils: Vec<bool>,
    pub discrete: Vec<bool>,
}

impl SimMap {
    /// Deterministic values for `size` addresses in each table.
    pub fn generated(size: usize, seed: u64) -> SimMap {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        SimMap {
            holding: (0..size).map(|_| (next() % 1000) as u16).collect(),
            input: (0..size).map(|_| (next() % 4096) as u16).collect(),
            coils: (0..size).map(|_| next() % 3 == 0).collect(),
            discrete: (0..size).map(|_| next() % 2 == 0).collect(),
        }
    }

    /// Parses a small text map: one line per run of values, `TABLE START VALUE...`
    /// (`holding 0 500 82 120`; coils and discrete take 0 or 1); `#` starts a comment.
    ///
    /// Fails with the line number of the first bad line.
    pub fn parse(text: &str) -> Result<SimMap, String> {
        let mut m = SimMap::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: `{line}`", n + 1);
            let mut words = line.split_whitespace();
            let table = words.next().ok_or_else(|| bad("empty"))?;
            let start: usize = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| bad("no start address"))?;
            let values: Vec<u16> = words
                .map(|w| w.parse::<u16>().map_err(|_| bad("not a 16-bit value")))
                .collect::<Result<_, _>>()?;
            if start + values.len() > 65536 {
                return Err(bad("runs past address 65535"));
            }
            fn put<T: Clone + Default>(
                v: &mut Vec<T>,
                start: usize,
                vals: impl Iterator<Item = T>,
            ) {
                for (i, x) in vals.enumerate() {
                    if v.len() <= start + i {
                        v.resize(start + i + 1, T::default());
                    }
                    v[start + i] = x;
                }
            }
            match table {
                "holding" => put(&mut m.holding, start, values.into_iter()),
                "input" => put(&mut m.input, start, values.into_iter()),
                "coils" => put(&mut m.coils, start, values.into_iter().map(|v| v != 0)),
                "discrete" => put(&mut m.discrete, start, values.into_iter().map(|v| v != 0)),
                _ => return Err(bad("the table must be holding, input, coils or discrete")),
            }
        }
        Ok(m)
    }
}

/// One request as the simulator received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub at: Instant,
    pub unit: u8,
    pub function: u8,
    pub address: u16,
    pub count: u16,
}

/// Faults to inject, counted in requests received since start.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Stop answering (requests time out) after this many requests.
    pub silent_after: Option<u64>,
    /// Drop every connection after this many requests (once), then accept new ones.
    pub drop_after: Option<u64>,
}

/// What a simulated PLC serves.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The unit id it answers to; others get exception 11 (gateway target failed).
    pub unit: u8,
    pub map: SimMap,
    /// Identification objects (id, value); `None` answers 43/14 with exception 1.
    pub identity: Option<Vec<(u8, String)>>,
    pub response_delay: Duration,
    pub faults: Faults,
}

impl SimConfig {
    pub fn new(map: SimMap) -> SimConfig {
        SimConfig {
            unit: 1,
            map,
            identity: Some(vec![
                (0, "plcvault".into()),
                (1, "SIM-PLC".into()),
                (2, "V1.0".into()),
                (4, "Simulated PLC".into()),
            ]),
            response_delay: Duration::ZERO,
            faults: Faults::default(),
        }
    }
}

struct Shared {
    cfg: Mutex<SimConfig>,
    recorded: Mutex<Vec<Recorded>>,
    served: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    drop_now: Notify,
    dropped: AtomicU64,
}

/// A running simulated PLC. Dropping it stops the server.
pub struct SimPlc {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SimPlc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SimPlc {
    /// Binds `bind` (use `127.0.0.1:0`) and serves in the background.
    ///
    /// Fails when the address cannot be bound.
    pub async fn start(bind: &str, cfg: SimConfig) -> io::Result<SimPlc> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg: Mutex::new(cfg),
            recorded: Mutex::new(Vec::new()),
            served: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            drop_now: Notify::new(),
            dropped: AtomicU64::new(0),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                let l = match listener.take() {
                    Some(l) => l,
                    None => match TcpListener::bind(addr).await {
                        Ok(l) => l,
                        Err(_) => return,
                    },
                };
                let server = Server::new(l);
                let svc_shared = s.clone();
                let on_connected = move |stream, _peer| {
                    let svc = SimService {
                        shared: svc_shared.clone(),
                    };
                    async move { Ok(Some((svc, stream))) }
                };
                let abort_on = s.clone();
                let abort = async move { abort_on.drop_now.notified().await };
                let _ = server.serve_until(&on_connected, |_err| {}, abort).await;
                s.dropped.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(SimPlc { shared, addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes a holding register behind the collector's back.
    pub fn set_holding(&self, address: u16, value: u16) {
        let mut cfg = self.shared.cfg.lock().expect("sim lock");
        let i = address as usize;
        if cfg.map.holding.len() <= i {
            cfg.map.holding.resize(i + 1, 0);
        }
        cfg.map.holding[i] = value;
    }

    /// Changes the configuration (map, identity, faults) while running.
    pub fn update(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut self.shared.cfg.lock().expect("sim lock"));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("sim lock").clone()
    }

    /// The most requests ever being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// How often connections were dropped by the `drop_after` fault.
    pub fn drops(&self) -> u64 {
        self.shared.dropped.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct SimService {
    shared: Arc<Shared>,
}

type Answer = Result<Option<Response>, ExceptionCode>;

fn bits(v: &[bool], addr: u16, n: u16) -> Result<Vec<bool>, ExceptionCode> {
    let (a, n) = (addr as usize, n as usize);
    if n == 0 || a + n > v.len() {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(v[a..a + n].to_vec())
}

fn words(v: &[u16], addr: u16, n: u16) -> Result<Vec<u16>, ExceptionCode> {
    let (a, n) = (addr as usize, n as usize);
    if n == 0 || a + n > v.len() {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(v[a..a + n].to_vec())
}

fn write<T: Copy>(v: &mut [T], addr: u16, vals: &[T]) -> Result<(), ExceptionCode> {
    let a = addr as usize;
    if vals.is_empty() || a + vals.len() > v.len() {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    v[a..a + vals.len()].copy_from_slice(vals);
    Ok(())
}

fn answer(cfg: &mut SimConfig, req: Request<'static>) -> Answer {
    let m = &mut cfg.map;
    let r = match req {
        Request::ReadCoils(a, n) => Response::ReadCoils(bits(&m.coils, a, n)?),
        Request::ReadDiscreteInputs(a, n) => Response::ReadDiscreteInputs(bits(&m.discrete, a, n)?),
        Request::ReadHoldingRegisters(a, n) => {
            Response::ReadHoldingRegisters(words(&m.holding, a, n)?)
        }
        Request::ReadInputRegisters(a, n) => Response::ReadInputRegisters(words(&m.input, a, n)?),
        Request::WriteSingleCoil(a, v) => {
            write(&mut m.coils, a, &[v])?;
            Response::WriteSingleCoil(a, v)
        }
        Request::WriteMultipleCoils(a, vs) => {
            write(&mut m.coils, a, &vs)?;
            Response::WriteMultipleCoils(a, vs.len() as u16)
        }
        Request::WriteSingleRegister(a, v) => {
            write(&mut m.holding, a, &[v])?;
            Response::WriteSingleRegister(a, v)
        }
        Request::WriteMultipleRegisters(a, vs) => {
            write(&mut m.holding, a, &vs)?;
            Response::WriteMultipleRegisters(a, vs.len() as u16)
        }
        Request::ReadDeviceIdentification(code, first) => {
            let Some(objects) = &cfg.identity else {
                return Err(ExceptionCode::IllegalFunction);
            };
            let last = match code {
                ReadCode::Basic => 2,
                ReadCode::Regular => 6,
                _ => return Err(ExceptionCode::IllegalDataValue),
            };
            Response::ReadDeviceIdentification(ReadDeviceIdentificationResponse {
                read_code: code,
                conformity_level: ConformityLevel::RegularIdentification,
                more_follows: false,
                next_object_id: 0,
                device_id_objects: objects
                    .iter()
                    .filter(|(id, _)| *id >= first && *id <= last)
                    .map(|(id, v)| DeviceIdObject {
                        id: *id,
                        value: Bytes::from(v.clone().into_bytes()),
                    })
                    .collect(),
            })
        }
        _ => return Err(ExceptionCode::IllegalFunction),
    };
    Ok(Some(r))
}

fn describe(req: &Request<'_>) -> (u8, u16, u16) {
    let fc = req.function_code().value();
    match req {
        Request::ReadCoils(a, n)
        | Request::ReadDiscreteInputs(a, n)
        | Request::ReadHoldingRegisters(a, n)
        | Request::ReadInputRegisters(a, n) => (fc, *a, *n),
        Request::WriteSingleCoil(a, _) | Request::WriteSingleRegister(a, _) => (fc, *a, 1),
        Request::WriteMultipleCoils(a, v) => (fc, *a, v.len() as u16),
        Request::WriteMultipleRegisters(a, v) => (fc, *a, v.len() as u16),
        Request::ReadDeviceIdentification(_, obj) => (fc, *obj as u16, 0),
        _ => (fc, 0, 0),
    }
}

impl tokio_modbus::server::Service for SimService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let n = shared.served.fetch_add(1, Ordering::SeqCst) + 1;
            let (function, address, count) = describe(&req.request);
            shared.recorded.lock().expect("sim lock").push(Recorded {
                at: Instant::now(),
                unit: req.slave,
                function,
                address,
                count,
            });
            let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let (delay, faults, unit) = {
                let cfg = shared.cfg.lock().expect("sim lock");
                (cfg.response_delay, cfg.faults.clone(), cfg.unit)
            };
            let result = if faults.silent_after.is_some_and(|k| n > k) {
                Ok(None)
            } else if faults.drop_after == Some(n) {
                shared.drop_now.notify_waiters();
                Ok(None)
            } else {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if req.slave != unit {
                    Err(ExceptionCode::GatewayTargetDevice)
                } else {
                    answer(&mut shared.cfg.lock().expect("sim lock"), req.request)
                }
            };
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_file_parses_and_names_bad_lines() {
        let m = SimMap::parse("# recipes\nholding 10 500 82\ncoils 0 1 0 1\n").unwrap();
        assert_eq!(&m.holding[10..], &[500, 82]);
        assert_eq!(m.coils, vec![true, false, true]);
        let e = SimMap::parse("holding 0 1\nholdin 0 1\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
        assert!(SimMap::parse("holding 0 70000").is_err());
    }
}
