//! The modbus collector against our own simulated PLC (tokio-modbus server) on loopback.

use std::time::Duration;

mod common;

use adapters::modbus::sim::{Faults, SimConfig, SimMap, SimPlc};
use adapters::modbus::{ModbusCollector, ModbusOptions, RangeSpec, Table};
use adapters::{ArtifactKind, Collector};
use common::{body, values};

fn ranges() -> Vec<RangeSpec> {
    let r = |table, start, count, kind| RangeSpec {
        table,
        start,
        count,
        kind,
        label: format!("{table}"),
    };
    vec![
        r(Table::Holding, 0, 300, ArtifactKind::Recipe),
        r(Table::Input, 10, 20, ArtifactKind::Values),
        r(Table::Coils, 0, 2100, ArtifactKind::Config),
        r(Table::Discrete, 5, 9, ArtifactKind::Values),
    ]
}

fn options(sim: &SimPlc, ranges: Vec<RangeSpec>) -> ModbusOptions {
    ModbusOptions {
        device: "plc1".into(),
        address: sim.addr().to_string(),
        unit: 1,
        identify: true,
        timeout: Duration::from_millis(300),
        retries: 1,
        max_requests_per_second: 200.0,
        ranges,
    }
}

#[tokio::test]
async fn reads_all_four_tables_and_identification() {
    let map = SimMap::generated(3000, 7);
    let sim = SimPlc::start("127.0.0.1:0", SimConfig::new(map.clone()))
        .await
        .unwrap();
    let c = ModbusCollector::new(options(&sim, ranges()))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(c.complete, "{:?}", c.warnings);
    assert_eq!(c.artifacts.len(), 5);
    let holding = values(&body(&c, "holding/0-299.csv"));
    assert_eq!(holding.len(), 300);
    assert!(holding.iter().all(|(a, v)| map.holding[*a] == *v));
    let coils = values(&body(&c, "coils/0-2099.csv"));
    assert_eq!(coils.len(), 2100);
    assert!(coils.iter().all(|(a, v)| map.coils[*a] == (*v == 1)));
    let input = values(&body(&c, "input/10-29.csv"));
    assert_eq!(input[0], (10, map.input[10]));
    let discrete = values(&body(&c, "discrete/5-13.csv"));
    assert_eq!(discrete.len(), 9);
    let id = body(&c, "identity/device-identification.txt");
    assert!(
        id.contains("vendor_name=plcvault") && id.contains("product_name=Simulated PLC"),
        "{id}"
    );
    let kinds: Vec<ArtifactKind> = c.artifacts.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&ArtifactKind::Identity));
}

#[tokio::test]
async fn collection_is_read_only_one_at_a_time_and_under_the_rate_cap() {
    let mut cfg = SimConfig::new(SimMap::generated(3000, 1));
    // A slow device makes overlapping requests visible if there were any.
    cfg.response_delay = Duration::from_millis(2);
    let sim = SimPlc::start("127.0.0.1:0", cfg).await.unwrap();
    let mut o = options(&sim, ranges());
    o.max_requests_per_second = 40.0;
    let c = ModbusCollector::new(o).unwrap().collect().await.unwrap();
    assert!(c.complete);
    let reqs = sim.requests();
    // 3 holding + 1 input + 2 coils + 1 discrete + identification.
    assert!(reqs.len() >= 8, "{}", reqs.len());
    for r in &reqs {
        assert!(
            [1, 2, 3, 4, 43].contains(&r.function),
            "write or unknown function {r:?}"
        );
    }
    assert_eq!(sim.max_in_flight(), 1, "two requests in flight at once");
    for (i, r) in reqs.iter().enumerate() {
        let in_window = reqs[i..]
            .iter()
            .filter(|q| q.at.duration_since(r.at) < Duration::from_secs(1))
            .count();
        assert!(in_window <= 40, "{in_window} requests within one second");
    }
    for w in reqs.windows(2) {
        // 1/40 s apart, less a little for the two timestamps being taken on different
        // sides of the socket.
        assert!(
            w[1].at.duration_since(w[0].at) >= Duration::from_millis(24),
            "{w:?}"
        );
    }
}

#[tokio::test]
async fn an_exception_names_the_range_and_makes_the_snapshot_incomplete() {
    let sim = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(100, 2)))
        .await
        .unwrap();
    let c = ModbusCollector::new(options(&sim, ranges()))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(!c.complete);
    let w = c.warnings.join("\n");
    assert!(
        w.contains("holding (holding 0-299)") && w.contains("exception 2 (illegal data address)"),
        "{w}"
    );
    // What could be read is still there; what could not is absent, never partial.
    assert!(c.artifacts.iter().any(|a| a.name == "discrete/5-13.csv"));
    assert!(!c.artifacts.iter().any(|a| a.name.starts_with("holding/")));
}

#[tokio::test]
async fn a_device_that_stops_answering_mid_range_times_out() {
    let mut cfg = SimConfig::new(SimMap::generated(3000, 3));
    cfg.faults = Faults {
        silent_after: Some(2),
        drop_after: None,
    };
    cfg.identity = None;
    let sim = SimPlc::start("127.0.0.1:0", cfg).await.unwrap();
    let e = ModbusCollector::new(options(&sim, ranges()))
        .unwrap()
        .collect()
        .await
        .expect_err("nothing read is a failed collection");
    // A timeout (what alerting tells apart), naming the range; the later ranges are not
    // asked of a device that stopped answering.
    assert_eq!(e.kind(), "timeout", "{e}");
    let w = e.to_string();
    assert!(
        w.contains("holding")
            && w.contains("no answer within")
            && w.contains("3 later reads skipped"),
        "{w}"
    );
    let asked = sim.requests().len();
    let o = options(&sim, ranges());
    assert!(
        asked <= 2 + (o.retries as usize + 1),
        "{asked} requests to a device that stopped answering"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_retried_on_a_new_one() {
    let mut cfg = SimConfig::new(SimMap::generated(3000, 4));
    cfg.faults = Faults {
        silent_after: None,
        drop_after: Some(3),
    };
    let sim = SimPlc::start("127.0.0.1:0", cfg).await.unwrap();
    let c = ModbusCollector::new(options(&sim, ranges()))
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(sim.drops(), 1);
    assert!(c.complete, "{:?}", c.warnings);
    assert_eq!(c.artifacts.len(), 5);
    // Without retries the same drop leaves the range incomplete.
    let mut cfg = SimConfig::new(SimMap::generated(3000, 4));
    cfg.faults = Faults {
        silent_after: None,
        drop_after: Some(3),
    };
    let sim = SimPlc::start("127.0.0.1:0", cfg).await.unwrap();
    let mut o = options(&sim, ranges());
    o.retries = 0;
    let c = ModbusCollector::new(o).unwrap().collect().await.unwrap();
    assert!(!c.complete);
    assert!(
        c.warnings.join("\n").contains("holding"),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn a_wrong_unit_id_is_an_error_not_data() {
    let sim = SimPlc::start("127.0.0.1:0", SimConfig::new(SimMap::generated(3000, 5)))
        .await
        .unwrap();
    let mut o = options(&sim, ranges());
    o.unit = 9;
    let c = ModbusCollector::new(o).unwrap().collect().await.unwrap();
    assert!(!c.complete);
    assert!(c.artifacts.is_empty(), "{:?}", c.artifacts);
    assert!(
        c.warnings.join("\n").contains("exception 11"),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let o = ModbusOptions {
        device: "ghost".into(),
        address: addr.to_string(),
        unit: 1,
        identify: false,
        timeout: Duration::from_millis(200),
        retries: 1,
        max_requests_per_second: 100.0,
        ranges: ranges(),
    };
    let e = ModbusCollector::new(o)
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ghost") && e.contains("unreachable") && e.contains("fix:"),
        "{e}"
    );
}
