//! The enip collector against our own simulated Logix controller on loopback: identity,
//! the tag directory in both scopes, values, fragmented reads, the route path, the
//! writer, and every fault the issue names.

use std::time::Duration;

use adapters::enip::sim::{EnipSim, EnipSimConfig, SimTag};
use adapters::enip::{EnipCollector, EnipOptions, NamedTag, READ_FUNCTIONS};
use adapters::{ArtifactKind, Collection, Collector, RestoreItem, SourceData};

fn options(sim: &EnipSim) -> EnipOptions {
    EnipOptions {
        device: "plc1".into(),
        address: sim.addr().to_string(),
        route: vec![(1, 0)],
        timeout: Duration::from_millis(400),
        retries: 1,
        max_requests_per_second: 1000.0,
        tags: Vec::new(),
        programs: true,
        max_tags: 100_000,
        kinds: vec![
            ("Recipe".into(), ArtifactKind::Recipe),
            ("Setpoint*".into(), ArtifactKind::Recipe),
        ],
        connected: true,
    }
}

fn text(c: &Collection, name: &str) -> String {
    match &c
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", names(c)))
        .data
    {
        SourceData::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn names(c: &Collection) -> Vec<String> {
    c.artifacts.iter().map(|a| a.name.clone()).collect()
}

/// The line of tag `name` in a tag file.
fn line<'a>(csv: &'a str, name: &str) -> &'a str {
    csv.lines()
        .find(|l| l.split(',').next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{csv}"))
}

async fn collect(o: EnipOptions) -> Collection {
    EnipCollector::new(o).unwrap().collect().await.unwrap()
}

#[tokio::test]
async fn identity_directory_and_values_match_what_the_controller_holds() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(5, 1))
        .await
        .unwrap();
    let c = collect(options(&sim)).await;
    assert!(c.complete, "{:?}", c.warnings);
    assert_eq!(
        names(&c),
        [
            "identity.txt",
            "tags/controller.csv",
            "tags/program-MainProgram.csv"
        ]
    );
    let id = text(&c, "identity.txt");
    for want in [
        "# plcvault enip identity v1",
        "vendor=1 (Rockwell Automation/Allen-Bradley)",
        "device-type=14 (Programmable Logic Controller)",
        "product-code=55",
        "revision=20.011",
        "serial-number=0x00c0ffef",
        "product-name=1756-L61/B LOGIX5561",
        "module-product-name=1756-EN2T/D",
        "module-revision=5.028",
    ] {
        assert!(id.lines().any(|l| l == want), "{want} not in\n{id}");
    }
    let ident = c
        .artifacts
        .iter()
        .find(|a| a.name == "identity.txt")
        .unwrap();
    assert_eq!(ident.meta.extra["state-status"], "0x3060 key REMOTE");

    let csv = text(&c, "tags/controller.csv");
    assert!(
        csv.starts_with(
            "# plcvault enip tags v1\n# scope=controller\nname,type,dimensions,kind,value\n"
        ),
        "{csv}"
    );
    let recipe: Vec<String> = (0..100).map(|i| (i * 10 + 1).to_string()).collect();
    assert_eq!(
        line(&csv, "Recipe"),
        format!("Recipe,DINT,100,recipe,{}", recipe.join(" "))
    );
    assert_eq!(
        line(&csv, "Setpoint"),
        "Setpoint,REAL,4,recipe,12.5 80 0.25 -3"
    );
    assert_eq!(line(&csv, "LineSpeed"), "LineSpeed,DINT,,values,1201");
    assert_eq!(line(&csv, "Enable"), "Enable,BOOL,,values,1");
    assert_eq!(
        line(&csv, "Motor1"),
        "Motor1,STRUCT template 0x0123 handle 0x4f2a,,values,aa0500000000604002000100"
    );
    assert!(line(&csv, "Motors").contains(",3,values,"), "{csv}");
    assert_eq!(
        line(&csv, "Motors")
            .split(',')
            .nth(4)
            .unwrap()
            .split(' ')
            .count(),
        3
    );
    assert!(line(&csv, "Tag00005").ends_with(",values,125"));
    // System, module and program symbols are not user tags.
    for hidden in ["__SYS_Status", "Local:1:I", "Program:MainProgram"] {
        assert!(!csv.contains(hidden), "{hidden} in\n{csv}");
    }
    let prog = text(&c, "tags/program-MainProgram.csv");
    assert!(prog.contains("# scope=Program:MainProgram\n"), "{prog}");
    assert_eq!(line(&prog, "StepNo"), "StepNo,DINT,,values,3");
    assert_eq!(line(&prog, "Gain"), "Gain,REAL,,values,0.75");
    assert_eq!(
        line(&prog, "Mask"),
        "Mask,DWORD,2,values,0x000000f0 0x04030201"
    );
    let tags = c
        .artifacts
        .iter()
        .find(|a| a.name == "tags/controller.csv")
        .unwrap();
    assert_eq!(tags.meta.extra["format"], "enip-tags");

    // Only the read functions, one session, one request at a time; over one class 3
    // connection, small tags many to a packet.
    let unconnected = [
        "ListIdentity",
        "RegisterSession",
        "UnRegisterSession",
        "SendRRData",
        "Unconnected Send",
        "Get_Attribute_All",
        "Get_Instance_Attribute_List",
        "Read Tag",
        "Read Tag Fragmented",
    ];
    let connected = [
        "Large Forward Open",
        "SendUnitData",
        "Forward Close",
        "Multiple Service Packet",
    ];
    let got = sim.requests();
    for r in &got {
        assert!(
            unconnected.contains(&r.function.as_str()) || connected.contains(&r.function.as_str()),
            "{} sent",
            r.function
        );
        assert_eq!(r.connection, 1, "{r:?}");
    }
    for f in connected {
        assert!(got.iter().any(|r| r.function == f), "no {f}");
    }
    assert_eq!(sim.max_in_flight(), 1);
    assert_eq!(READ_FUNCTIONS.len(), 12);

    // Unconnected, the same artifacts from the unconnected services alone.
    let plain = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(5, 1))
        .await
        .unwrap();
    let u = collect(EnipOptions {
        connected: false,
        ..options(&plain)
    })
    .await;
    assert!(u.complete, "{:?}", u.warnings);
    for a in [
        "identity.txt",
        "tags/controller.csv",
        "tags/program-MainProgram.csv",
    ] {
        assert_eq!(text(&u, a), text(&c, a), "{a}");
    }
    for r in plain.requests() {
        assert!(
            unconnected.contains(&r.function.as_str()),
            "{} sent",
            r.function
        );
    }
    assert!(plain.requests().len() > got.len());

    // A controller with no connection to spare: unconnected, with a warning that says so.
    let full = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(5, 1))
        .await
        .unwrap();
    full.update(|c| c.refuse_connections = true);
    let f = collect(options(&full)).await;
    assert!(f.complete, "{:?}", f.warnings);
    assert_eq!(
        text(&f, "tags/controller.csv"),
        text(&c, "tags/controller.csv")
    );
    assert!(
        f.warnings
            .iter()
            .any(|w| w.contains("opened no connection") && w.contains("0x01 connection failure")),
        "{:?}",
        f.warnings
    );
}

#[tokio::test]
async fn a_connection_dropped_in_a_fragmented_read_is_read_again_never_kept_short() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 2))
        .await
        .unwrap();
    sim.update(|c| {
        c.fragment = 100;
        c.faults.drop_in_fragment = Some(2);
    });
    let c = collect(options(&sim)).await;
    assert!(c.complete, "{:?}", c.warnings);
    let recipe: Vec<String> = (0..100).map(|i| (i * 10 + 2).to_string()).collect();
    assert_eq!(
        line(&text(&c, "tags/controller.csv"), "Recipe"),
        format!("Recipe,DINT,100,recipe,{}", recipe.join(" "))
    );
    assert!(
        sim.requests().iter().any(|r| r.connection == 2),
        "no new session"
    );
}

#[tokio::test]
async fn program_scope_path_destination_unknown_is_noted_with_the_fix_and_the_rest_kept() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 3))
        .await
        .unwrap();
    sim.update(|c| c.faults.program_scope_unknown = true);
    let c = collect(options(&sim)).await;
    assert!(!c.complete);
    assert!(
        c.warnings.iter().any(|w| w.contains("program MainProgram")
            && w.contains("0x05 path destination unknown")
            && w.contains("programs = false")),
        "{:?}",
        c.warnings
    );
    assert_eq!(names(&c), ["identity.txt", "tags/controller.csv"]);
    // Told not to, it does not ask.
    let o = EnipOptions {
        programs: false,
        ..options(&sim)
    };
    let c = collect(o).await;
    assert!(c.complete, "{:?}", c.warnings);
}

#[tokio::test]
async fn lying_lengths_wrong_sessions_and_switched_types_are_never_stored() {
    for fault in 0..3 {
        let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 4))
            .await
            .unwrap();
        sim.update(|c| {
            c.fragment = 64;
            match fault {
                0 => c.faults.lying_length = true,
                1 => c.faults.wrong_session = true,
                _ => c.faults.type_switch = true,
            }
        });
        let clean = {
            let s2 = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 4))
                .await
                .unwrap();
            text(&collect(options(&s2)).await, "tags/controller.csv")
        };
        // With a retry, the answer is read again whole; without, the tag is not stored.
        let c = collect(options(&sim)).await;
        assert!(c.complete, "fault {fault}: {:?}", c.warnings);
        assert_eq!(text(&c, "tags/controller.csv"), clean, "fault {fault}");
        sim.update(|c| match fault {
            0 => c.faults.lying_length = true,
            1 => c.faults.wrong_session = true,
            _ => c.faults.type_switch = true,
        });
        let c = collect(EnipOptions {
            retries: 0,
            ..options(&sim)
        })
        .await;
        assert!(!c.complete, "fault {fault}");
        assert!(
            c.warnings.iter().any(|w| w.contains("malformed reply")),
            "fault {fault}: {:?}",
            c.warnings
        );
    }
}

#[tokio::test]
async fn an_answer_of_another_type_than_the_directory_is_never_stored() {
    for connected in [true, false] {
        let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(3, 5))
            .await
            .unwrap();
        sim.update(|c| c.faults.wrong_type = true);
        let c = collect(EnipOptions {
            connected,
            ..options(&sim)
        })
        .await;
        assert!(!c.complete);
        let csv = text(&c, "tags/controller.csv");
        assert_eq!(
            line(&csv, "LineSpeed"),
            "LineSpeed,DINT,,values,!not read: no valid answer"
        );
        assert_eq!(
            line(&csv, "Tag00002"),
            "Tag00002,DINT,,values,!not read: no valid answer"
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("LineSpeed not read")
                    && w.contains("an answer of type REAL for a tag the directory lists as DINT")),
            "{:?}",
            c.warnings
        );
        let prog = text(&c, "tags/program-MainProgram.csv");
        assert_eq!(
            line(&prog, "Gain"),
            "Gain,REAL,,values,!not read: no valid answer"
        );
    }
}

#[tokio::test]
async fn a_refusing_status_is_recorded_as_not_read_never_as_a_value() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 5))
        .await
        .unwrap();
    sim.update(|c| c.faults.read_status = Some(0x0F));
    let c = collect(options(&sim)).await;
    let csv = text(&c, "tags/controller.csv");
    assert_eq!(
        line(&csv, "LineSpeed"),
        "LineSpeed,DINT,,values,!not read: 0x0f privilege violation"
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("LineSpeed not read"))
    );
}

#[tokio::test]
async fn endless_fragments_are_refused_in_bounded_memory() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 6))
        .await
        .unwrap();
    sim.update(|c| c.faults.endless_fragments = true);
    let c = collect(EnipOptions {
        retries: 0,
        ..options(&sim)
    })
    .await;
    assert!(!c.complete);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("Recipe not read") && w.contains("longer than 400 bytes")),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn a_stalled_controller_times_out_and_is_not_asked_again() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(100, 7))
        .await
        .unwrap();
    sim.update(|c| c.faults.silent_after = Some(2));
    let e = EnipCollector::new(options(&sim))
        .unwrap()
        .collect()
        .await
        .expect_err("nothing read");
    assert_eq!(e.kind(), "timeout", "{e}");
    let n = sim.requests().len();
    assert!(
        n <= 8,
        "{n} requests to a stalled controller: {:?}",
        sim.requests()
    );
}

#[tokio::test]
async fn a_wrong_route_path_is_refused_naming_the_route() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 8))
        .await
        .unwrap();
    let c = collect(EnipOptions {
        route: vec![(1, 3)],
        ..options(&sim)
    })
    .await;
    assert!(!c.complete);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("route path 1,3 was not delivered")),
        "{:?}",
        c.warnings
    );
}

#[tokio::test]
async fn fifty_thousand_tags_are_listed_in_pages_and_max_tags_bounds_the_directory() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(50_000, 9))
        .await
        .unwrap();
    let c = collect(EnipOptions {
        max_tags: 10_000,
        ..options(&sim)
    })
    .await;
    assert!(!c.complete);
    assert!(
        c.warnings.iter().any(|w| w
            .contains("more tags than `max-tags` leaves for this scope (10000)")
            && w.contains("raise `max-tags`")),
        "{:?}",
        c.warnings
    );
    // No value was read past the refused directory.
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.function.starts_with("Read Tag"))
    );
}

#[tokio::test]
async fn fifty_thousand_tags_are_read_whole_in_packets_within_the_rate_cap() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(50_000, 3))
        .await
        .unwrap();
    let c = collect(EnipOptions {
        max_requests_per_second: 400.0,
        ..options(&sim)
    })
    .await;
    assert!(c.complete, "{:?}", c.warnings);
    let csv = text(&c, "tags/controller.csv");
    assert_eq!(csv.lines().count(), 3 + 50_000 + 7, "{}", &csv[..300]);
    assert_eq!(line(&csv, "Tag50000"), "Tag50000,DINT,,values,1549972");
    assert!(!csv.contains("!not read"));
    // Requests on the wire, in any one second: never more than the cap; far fewer
    // than one per tag.
    let frames: Vec<_> = sim
        .requests()
        .iter()
        .filter(|r| r.frame)
        .map(|r| r.at)
        .collect();
    let mut most = 0;
    let mut j = 0;
    for i in 0..frames.len() {
        while frames[i].duration_since(frames[j]) >= Duration::from_secs(1) {
            j += 1;
        }
        most = most.max(i - j + 1);
    }
    assert!(most <= 400, "{most} requests in one second");
    assert!(
        frames.len() < 2_000,
        "{} requests for 50,000 tags",
        frames.len()
    );
    assert_eq!(sim.max_in_flight(), 1);
}

#[tokio::test]
async fn named_tags_are_read_without_the_directory() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 10))
        .await
        .unwrap();
    sim.update(|c| c.faults.no_symbol_object = true);
    let c = collect(EnipOptions {
        tags: [
            "Recipe[100]",
            "LineSpeed",
            "Program:MainProgram.Gain",
            "Missing",
        ]
        .iter()
        .map(|t| NamedTag::parse(t).unwrap())
        .collect(),
        ..options(&sim)
    })
    .await;
    assert!(c.complete, "{:?}", c.warnings);
    let csv = text(&c, "tags/controller.csv");
    assert!(line(&csv, "Recipe").starts_with("Recipe,DINT,100,recipe,10 20 30"));
    assert_eq!(line(&csv, "LineSpeed"), "LineSpeed,DINT,,values,1210");
    assert_eq!(
        line(&csv, "Missing"),
        "Missing,?,,values,!not read: 0x05 path destination unknown"
    );
    assert_eq!(
        line(&text(&c, "tags/program-MainProgram.csv"), "Gain"),
        "Gain,REAL,,values,0.75"
    );
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.function == "Get_Instance_Attribute_List")
    );
}

#[tokio::test]
async fn the_writer_writes_tags_back_and_reads_them_back_only_on_a_writable_controller() {
    let sim = EnipSim::start("127.0.0.1:0", EnipSimConfig::generated(0, 11))
        .await
        .unwrap();
    let c = collect(options(&sim)).await;
    let items: Vec<RestoreItem> = c
        .artifacts
        .iter()
        .filter(|a| a.name.starts_with("tags/"))
        .map(|a| RestoreItem {
            name: a.name.clone(),
            kind: a.kind,
            bytes: match &a.data {
                SourceData::Bytes(b) => b.clone(),
                _ => unreachable!(),
            },
        })
        .collect();
    // The controller changes; writing the snapshot back restores it.
    sim.update(|c| {
        *c.tag_mut("Recipe").unwrap() = SimTag::dints("Recipe", &[100], &[7; 100]);
        *c.tag_mut("Program:MainProgram.StepNo").unwrap() = SimTag::dints("StepNo", &[], &[99]);
        c.tag_mut("Motor1").unwrap().bytes[0] = 0;
    });
    let table = format!(
        "[[device]]\naddress = \"{}\"\nwritable = true\nmax-requests-per-second = 1000\n",
        sim.addr()
    );
    let doc = toml::de::DeTable::parse(&table).unwrap();
    let toml::de::DeValue::Array(list) = doc.get_ref()["device"].get_ref() else {
        unreachable!()
    };
    let device = adapters::registry::build(
        "enip",
        list[0].clone(),
        &adapters::settings::Context {
            device: "plc1",
            base: std::path::Path::new("."),
        },
    )
    .unwrap();
    let permit = device
        .permit
        .clone()
        .expect("writable = true grants the permit");
    let w = device.writer.clone().unwrap();
    let r = w.restore(&items, &permit).await.unwrap();
    // Refused while the controller is not writable: each tag says so.
    assert!(!r.failures.is_empty());
    assert!(
        r.failures[0].error.contains("privilege violation"),
        "{:?}",
        r.failures
    );
    sim.update(|c| c.writable = true);
    let r = w.restore(&items, &permit).await.unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert!(r.items >= 10, "{}", r.items);
    let after = collect(options(&sim)).await;
    for a in &c.artifacts {
        if a.name.starts_with("tags/") {
            assert_eq!(text(&after, &a.name), text(&c, &a.name));
        }
    }
}
