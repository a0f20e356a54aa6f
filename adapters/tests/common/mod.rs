//! Test peers: the pymodbus server (shared with the end-to-end tests) and a
//! fault-injecting TCP proxy.
#![allow(dead_code)]

#[path = "../../../tests/peers/pymodbus.rs"]
mod pymodbus;
#[allow(unused_imports)]
pub use pymodbus::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Faults the proxy injects, counted in Modbus requests from the client.
#[derive(Clone, Copy, Default)]
pub struct ProxyFaults {
    /// Swallow every request after this many (the device "stops answering").
    pub silent_after: Option<u64>,
    /// Close the client's connection instead of forwarding request number N (once).
    pub drop_at: Option<u64>,
}

/// A TCP proxy in front of a Modbus server that injects faults at the frame level.
pub struct Proxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr, faults: ProxyFaults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    loop {
                        // One MBAP frame: 7-byte header, length covers unit id + PDU.
                        let mut head = [0u8; 7];
                        if cr.read_exact(&mut head).await.is_err() {
                            break;
                        }
                        let len = u16::from_be_bytes([head[4], head[5]]) as usize;
                        let mut body = vec![0u8; len.saturating_sub(1)];
                        if cr.read_exact(&mut body).await.is_err() {
                            break;
                        }
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        if faults.drop_at == Some(n) {
                            break;
                        }
                        if faults.silent_after.is_some_and(|k| n > k) {
                            continue;
                        }
                        if sw.write_all(&head).await.is_err() || sw.write_all(&body).await.is_err()
                        {
                            break;
                        }
                    }
                    back.abort();
                });
            }
        });
        Proxy { addr, task }
    }
}

/// The text of an in-memory artifact of a collection.
pub fn body(c: &adapters::Collection, name: &str) -> String {
    let a = c
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no artifact {name} in {:?}", c.warnings));
    match &a.data {
        adapters::SourceData::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// The `address,value` pairs of a canonical range text.
pub fn values(t: &str) -> Vec<(usize, u16)> {
    t.lines()
        .filter(|l| !l.starts_with('#') && *l != "address,value")
        .map(|l| {
            let (a, v) = l.split_once(',').unwrap();
            (a.parse().unwrap(), v.parse().unwrap())
        })
        .collect()
}
