//! The modbus collector against the pymodbus server, a peer nobody on this team wrote,
//! on loopback. With `PLCVAULT_REQUIRE_PEERS=1` (set by tests/run.sh) a missing peer fails.

mod common;

use std::time::Duration;

use adapters::modbus::{ModbusCollector, ModbusOptions, RangeSpec, Table};
use adapters::{ArtifactKind, Collector};
use common::{Proxy, ProxyFaults, Pymodbus, body, expected, pymodbus_available, values};
use serde_json::json;

fn ranges() -> Vec<RangeSpec> {
    let r = |table, start, count| RangeSpec {
        table,
        start,
        count,
        kind: ArtifactKind::Values,
        label: String::new(),
    };
    vec![
        r(Table::Holding, 0, 400),
        r(Table::Input, 100, 130),
        r(Table::Coils, 0, 2500),
        r(Table::Discrete, 7, 33),
    ]
}

fn options(addr: std::net::SocketAddr) -> ModbusOptions {
    ModbusOptions {
        device: "pm".into(),
        address: addr.to_string(),
        unit: 1,
        identify: true,
        timeout: Duration::from_millis(500),
        retries: 1,
        max_requests_per_second: 200.0,
        ranges: ranges(),
    }
}

#[tokio::test]
async fn all_four_tables_and_identification_match_what_pymodbus_serves() {
    let Some(py) = pymodbus_available("all_four_tables") else {
        return;
    };
    let peer = Pymodbus::start(&py, json!({"size": 3000, "seed": 7}));
    let c = ModbusCollector::new(options(peer.addr))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    let (holding, input, coils, discrete) = expected(3000, 7);
    let h = values(&body(&c, "holding/0-399.csv"));
    assert_eq!(h.len(), 400);
    assert!(h.iter().all(|(a, v)| holding[*a] == *v));
    let i = values(&body(&c, "input/100-229.csv"));
    assert_eq!(i.len(), 130);
    assert!(i.iter().all(|(a, v)| input[*a] == *v));
    let co = values(&body(&c, "coils/0-2499.csv"));
    assert_eq!(co.len(), 2500);
    assert!(co.iter().all(|(a, v)| coils[*a] == (*v == 1)));
    let d = values(&body(&c, "discrete/7-39.csv"));
    assert!(d.iter().all(|(a, v)| discrete[*a] == (*v == 1)));
    let id = body(&c, "identity/device-identification.txt");
    assert!(
        id.contains("vendor_name=pymodbus peer")
            && id.contains("product_code=PM-316")
            && id.contains("revision=3.16"),
        "{id}"
    );

    // The server saw read functions only, split at the protocol limits.
    let reqs = peer.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        let fc = r["fc"].as_u64().unwrap();
        assert!([1, 2, 3, 4, 43].contains(&fc), "function {fc} sent: {r}");
        let count = r["count"].as_u64().unwrap();
        match fc {
            3 | 4 => assert!(count <= 125, "{r}"),
            1 | 2 => assert!(count <= 2000, "{r}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_exception_response_names_the_range() {
    let Some(py) = pymodbus_available("exception") else {
        return;
    };
    // Only 200 registers exist: holding 0-399 runs past them.
    let peer = Pymodbus::start(&py, json!({"size": 200, "seed": 1}));
    let mut o = options(peer.addr);
    o.ranges = vec![ranges()[0].clone(), ranges()[3].clone()];
    let c = ModbusCollector::new(o).unwrap().collect().await.unwrap();
    assert!(!c.complete);
    let w = c.warnings.join("\n");
    assert!(
        w.contains("holding 0-399") && w.contains("exception 2 (illegal data address)"),
        "{w}"
    );
    assert!(c.artifacts.iter().any(|a| a.name == "discrete/7-39.csv"));
}

#[tokio::test]
async fn a_device_that_stops_answering_mid_range_times_out() {
    let Some(py) = pymodbus_available("stops answering") else {
        return;
    };
    let peer = Pymodbus::start(&py, json!({"size": 3000}));
    let proxy = Proxy::start(
        peer.addr,
        ProxyFaults {
            silent_after: Some(2),
            drop_at: None,
        },
    )
    .await;
    let mut o = options(proxy.addr);
    o.identify = false;
    o.timeout = Duration::from_millis(200);
    // Nothing read whole (the later ranges are not asked once it stopped answering): a
    // timeout, never a partial range stored.
    let e = ModbusCollector::new(o)
        .unwrap()
        .collect()
        .await
        .expect_err("nothing read is a failed collection");
    assert_eq!(e.kind(), "timeout", "{e}");
    let w = e.to_string();
    assert!(
        w.contains("holding 0-399")
            && w.contains("no answer within")
            && w.contains("later reads skipped"),
        "{w}"
    );
}

#[tokio::test]
async fn a_connection_dropped_mid_collection_is_retried() {
    let Some(py) = pymodbus_available("dropped connection") else {
        return;
    };
    let peer = Pymodbus::start(&py, json!({"size": 3000, "seed": 7}));
    let proxy = Proxy::start(
        peer.addr,
        ProxyFaults {
            silent_after: None,
            drop_at: Some(3),
        },
    )
    .await;
    let c = ModbusCollector::new(options(proxy.addr))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    let (holding, ..) = expected(3000, 7);
    assert!(
        values(&body(&c, "holding/0-399.csv"))
            .iter()
            .all(|(a, v)| holding[*a] == *v)
    );

    // With no retries the same drop leaves the range incomplete, and says so.
    let proxy = Proxy::start(
        peer.addr,
        ProxyFaults {
            silent_after: None,
            drop_at: Some(3),
        },
    )
    .await;
    let mut o = options(proxy.addr);
    o.retries = 0;
    let c = ModbusCollector::new(o).unwrap().collect().await.unwrap();
    assert!(!c.complete);
    assert!(
        c.warnings.join("\n").contains("connection"),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn a_wrong_unit_id_never_becomes_data() {
    let Some(py) = pymodbus_available("wrong unit") else {
        return;
    };
    let peer = Pymodbus::start(&py, json!({"size": 3000, "unit": 1}));
    let mut o = options(peer.addr);
    o.unit = 9;
    o.timeout = Duration::from_millis(300);
    o.retries = 0;
    let c = ModbusCollector::new(o).unwrap().collect().await.unwrap();
    eprintln!("wrong unit: {:?}", c.warnings);
    // pymodbus either ignores the unknown unit or answers with an exception: either way
    // nothing is stored as the device's data.
    assert!(!c.complete);
    assert!(
        c.artifacts.iter().all(|a| a.kind == ArtifactKind::Identity) || c.artifacts.is_empty(),
        "{:?}",
        c.artifacts
    );
}
