//! The s7 collector against our own simulated S7 CPU on loopback: identity, the block
//! directory, uploads, DB reads, the PDU size, and every fault the issue names.

use std::time::Duration;

use adapters::s7::proto::BlockType;
use adapters::s7::sim::{S7Sim, S7SimConfig};
use adapters::s7::{DbSpec, READ_FUNCTIONS, S7Collector, S7Options};
use adapters::{ArtifactKind, Collection, Collector, SourceData};

fn options(sim: &S7Sim) -> S7Options {
    S7Options {
        device: "cpu1".into(),
        address: sim.addr().to_string(),
        local_tsap: 0x0100,
        remote_tsap: 0x0102,
        pdu_size: 960,
        timeout: Duration::from_millis(400),
        retries: 1,
        max_requests_per_second: 1000.0,
        blocks: BlockType::ALL.to_vec(),
        upload: true,
        dbs: vec![DbSpec {
            number: 10,
            start: 0,
            size: 200,
            kind: ArtifactKind::Recipe,
        }],
        kinds: Vec::new(),
    }
}

fn bytes<'a>(c: &'a Collection, name: &str) -> &'a [u8] {
    match &c
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .data
    {
        SourceData::Bytes(b) => b,
        other => panic!("{other:?}"),
    }
}

fn text(c: &Collection, name: &str) -> String {
    String::from_utf8(bytes(c, name).to_vec()).unwrap()
}

async fn collect(o: S7Options) -> Collection {
    S7Collector::new(o).unwrap().collect().await.unwrap()
}

#[tokio::test]
async fn identity_blocks_uploads_and_dbs_match_what_the_cpu_holds() {
    let cfg = S7SimConfig::generated(30, 1);
    let sim = S7Sim::start("127.0.0.1:0", cfg.clone()).await.unwrap();
    let c = collect(options(&sim)).await;
    assert!(c.complete, "{:?}", c.warnings);
    let id = text(&c, "identity.txt");
    for want in [
        "module-order-number=6ES7 315-2EH14-0AB0",
        "firmware-version=V3.2.8",
        "station-name=BOTTLING-LINE",
        "serial-number=S C-X4U",
        "plant-designation=Hall 2",
        "protection-level=1 (no protection)",
        "key-switch=RUN-P",
    ] {
        assert!(id.contains(want), "{want}:\n{id}");
    }
    let meta = &c
        .artifacts
        .iter()
        .find(|a| a.name == "identity.txt")
        .unwrap()
        .meta;
    assert_eq!(meta.extra.get("state-cpu").map(String::as_str), Some("RUN"));
    assert_eq!(
        meta.extra.get("state-pdu-size").map(String::as_str),
        Some("480")
    );
    // Every block uploaded whole, byte for byte, with its info line.
    let csv = text(&c, "blocks.csv");
    for b in &cfg.blocks {
        let name = format!("blocks/{}{}.mc7", b.block_type, b.number);
        assert_eq!(bytes(&c, &name), b.bytes.as_slice(), "{name}");
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{}{},", b.block_type, b.number)))
            .unwrap_or_else(|| panic!("{name} not in\n{csv}"));
        assert!(line.ends_with(",yes"), "{line}");
        assert!(line.contains("PLCVAULT,BOTTLING"), "{line}");
    }
    assert_eq!(csv.lines().count(), cfg.blocks.len() + 1);
    let kind = |n: &str| c.artifacts.iter().find(|a| a.name == n).unwrap().kind;
    assert_eq!(kind("blocks/OB1.mc7"), ArtifactKind::Logic);
    assert_eq!(kind("blocks/SDB0.mc7"), ArtifactKind::Config);
    assert_eq!(kind("blocks/DB10.mc7"), ArtifactKind::Values);
    assert_eq!(kind("blocks.csv"), ArtifactKind::Logic);
    assert_eq!(bytes(&c, "data/DB10.bin"), cfg.dbs[0].1.as_slice());
    assert_eq!(kind("data/DB10.bin"), ArtifactKind::Recipe);
    // Only the read functions the README lists; one request in flight.
    let allowed = [
        "cotp-connect",
        "setup",
        "userdata 4/1",
        "userdata 3/2",
        "userdata 3/3",
        "start-upload",
        "upload",
        "end-upload",
        "read-var",
    ];
    assert_eq!(allowed.len(), READ_FUNCTIONS.len());
    for r in sim.requests() {
        assert!(
            allowed.contains(&r.function.as_str()),
            "sent {}",
            r.function
        );
    }
    assert_eq!(sim.max_in_flight(), 1);
}

#[tokio::test]
async fn the_pdu_size_is_negotiated_and_honoured_both_ways() {
    for (max, want) in [(240u16, "240"), (960, "960")] {
        let mut cfg = S7SimConfig::generated(12, 2);
        cfg.max_pdu = max;
        // A DB larger than several PDUs, read in pieces.
        cfg.dbs[0].1 = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let sim = S7Sim::start("127.0.0.1:0", cfg.clone()).await.unwrap();
        let mut o = options(&sim);
        o.dbs[0].size = 2000;
        let c = collect(o).await;
        assert!(c.complete, "{:?}", c.warnings);
        let meta = &c
            .artifacts
            .iter()
            .find(|a| a.name == "identity.txt")
            .unwrap()
            .meta;
        assert_eq!(
            meta.extra.get("state-pdu-size").map(String::as_str),
            Some(want)
        );
        assert_eq!(bytes(&c, "data/DB10.bin"), cfg.dbs[0].1.as_slice());
        let reads = sim
            .requests()
            .iter()
            .filter(|r| r.function == "read-var")
            .count();
        assert_eq!(
            reads,
            2000usize.div_ceil(usize::from(max) - 18),
            "PDU {max}"
        );
    }
}

#[tokio::test]
async fn a_know_how_protected_block_is_recorded_with_its_info_and_a_warning() {
    let mut cfg = S7SimConfig::generated(12, 3);
    cfg.block_mut(BlockType::Fb, 2).unwrap().protected = true;
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    let c = collect(options(&sim)).await;
    assert!(
        c.complete,
        "a refused block is not missing data: {:?}",
        c.warnings
    );
    assert!(!c.artifacts.iter().any(|a| a.name == "blocks/FB2.mc7"));
    let line = text(&c, "blocks.csv")
        .lines()
        .find(|l| l.starts_with("FB2,"))
        .unwrap()
        .to_string();
    assert!(line.contains(",yes,") && line.contains("refused"), "{line}");
    assert!(
        c.warnings.iter().any(|w| w.contains("FB2 not uploaded")),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn an_szl_the_cpu_does_not_have_is_noted_not_fatal() {
    let mut cfg = S7SimConfig::generated(5, 4);
    cfg.szl_unavailable = vec![0x0232];
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    let c = collect(options(&sim)).await;
    assert!(c.complete);
    let id = text(&c, "identity.txt");
    assert!(id.contains("szl-0232=not available"), "{id}");
    assert!(id.contains("module-order-number="), "{id}");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("0x0232 not available"))
    );
}

#[tokio::test]
async fn a_connection_dropped_in_an_upload_is_uploaded_again_never_kept_short() {
    let mut cfg = S7SimConfig::generated(12, 5);
    // A block of several pieces, dropped in its second.
    let big = adapters::s7::sim::SimBlock::generated(BlockType::Fb, 200, 3000, 9);
    cfg.blocks.push(big.clone());
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    sim.update(|c| c.faults.drop_in_upload = Some(3));
    let c = collect(options(&sim)).await;
    assert!(c.complete, "{:?}", c.warnings);
    assert_eq!(bytes(&c, "blocks/FB200.mc7"), big.bytes.as_slice());
    let connects = sim
        .requests()
        .iter()
        .filter(|r| r.function == "cotp-connect")
        .count();
    assert_eq!(connects, 2, "a new connection after the drop");
}

#[tokio::test]
async fn lying_lengths_and_short_uploads_are_never_stored() {
    for fault in ["lying", "short", "long", "oversized"] {
        let cfg = S7SimConfig::generated(6, 6);
        let sim = S7Sim::start("127.0.0.1:0", cfg.clone()).await.unwrap();
        sim.update(|c| match fault {
            "lying" => c.faults.lying_length = true,
            "short" => c.faults.short_upload = true,
            "long" => c.faults.long_upload = true,
            _ => c.faults.oversized = true,
        });
        let c = collect(options(&sim)).await;
        // The fault hits once; the retry on a new connection gets the block whole.
        assert!(c.complete, "{fault}: {:?}", c.warnings);
        let connects = sim
            .requests()
            .iter()
            .filter(|r| r.function == "cotp-connect")
            .count();
        assert_eq!(connects, 2, "{fault}: the bad reply was not refused");
        for b in &cfg.blocks {
            let name = format!("blocks/{}{}.mc7", b.block_type, b.number);
            assert_eq!(bytes(&c, &name), b.bytes.as_slice(), "{fault}: {name}");
        }
    }
    // A CPU that always lies: the block is not stored, the run says so.
    let cfg = S7SimConfig::generated(3, 7);
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    sim.update(|c| c.faults.wrong_reference = true);
    let e = S7Collector::new(options(&sim)).unwrap().collect().await;
    let msg = match e {
        Err(e) => e.to_string(),
        Ok(c) => panic!(
            "stored from a CPU answering other PDU numbers: {:?}",
            c.warnings
        ),
    };
    assert!(msg.contains("PDU"), "{msg}");
}

#[tokio::test]
async fn endless_answers_are_refused_in_bounded_memory() {
    let cfg = S7SimConfig::generated(3, 8);
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    sim.update(|c| c.faults.endless_szl = true);
    let c = collect(options(&sim)).await;
    assert!(!c.complete);
    assert!(
        c.warnings.iter().any(|w| w.contains("longer than")),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn a_stalled_cpu_times_out_and_is_not_asked_again() {
    let cfg = S7SimConfig::generated(20, 9);
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    sim.update(|c| c.faults.silent_after = Some(2));
    let e = S7Collector::new(options(&sim))
        .unwrap()
        .collect()
        .await
        .expect_err("nothing read");
    assert_eq!(e.kind(), "timeout", "{e}");
    // Connect and setup, then the first SZL and its one retry (each with a connect and
    // setup that are not answered either): a few requests, not one per block.
    let n = sim.requests().len();
    assert!(
        n <= 6,
        "{n} requests to a stalled CPU: {:?}",
        sim.requests()
    );
}

#[tokio::test]
async fn a_wrong_rack_or_slot_is_refused_with_the_fix() {
    // A port that accepts TCP and closes at once, as a CPU does for a TSAP it lacks.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    assert_refused_with_the_rack_fix(addr).await;
}

#[tokio::test]
async fn a_busy_cpu_refusing_an_upload_leaves_the_snapshot_incomplete_not_the_block_refused() {
    let cfg = S7SimConfig::generated(6, 12);
    let sim = S7Sim::start("127.0.0.1:0", cfg).await.unwrap();
    sim.update(|c| c.faults.busy_upload = true);
    let c = collect(options(&sim)).await;
    assert!(!c.complete, "{:?}", c.warnings);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("not uploaded this time") && w.contains("0x0500")),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn a_cpu_answering_the_iso_connection_with_a_disconnect_is_refused_with_the_fix() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A TSAP with no module behind it: the CPU answers the connection request with a DR.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            let dr = [3u8, 0, 0, 11, 6, 0x80, 0, 1, 0, 0x44, 0x80];
            let _ = s.write_all(&dr).await;
        }
    });
    assert_refused_with_the_rack_fix(addr).await;
}

/// Collecting from `addr` (a CPU that will not take the connection) fails as `refused`,
/// naming rack and slot.
async fn assert_refused_with_the_rack_fix(addr: std::net::SocketAddr) {
    let sim = S7Sim::start("127.0.0.1:0", S7SimConfig::generated(1, 1))
        .await
        .unwrap();
    let mut o = options(&sim);
    o.address = addr.to_string();
    let e = S7Collector::new(o)
        .unwrap()
        .collect()
        .await
        .expect_err("refused");
    assert_eq!(e.kind(), "refused", "{e}");
    assert!(e.to_string().contains("rack"), "{e}");
}
