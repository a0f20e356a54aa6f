//! Clock findings against a verifier whose clock moves on: what an approver accepted stays
//! accepted after the wrong date has passed.

mod common;

use std::time::{Duration, SystemTime};

use common::Fixture;
use vault::log::{Accepted, Event, Header};
use vault::{FindingKind, Hash, SecretKey, VerifyOptions};

fn append_at(f: &Fixture, key: &SecretKey, event: &Event, time: SystemTime) -> u64 {
    let (seqs, _) = vault::log::list(f.root()).unwrap();
    let prev = seqs
        .last()
        .map(|s| Hash::of(&std::fs::read(vault::log::entry_path(f.root(), *s)).unwrap()));
    let seq = seqs.last().map_or(1, |s| s + 1);
    let header = Header {
        v: 1,
        vault: f.vault.id().to_string(),
        seq,
        prev,
        time: humantime::format_rfc3339_millis(time).to_string(),
        signer: key.public(),
    };
    let bytes = vault::log::encode(&header, event, key);
    std::fs::write(vault::log::entry_path(f.root(), seq), bytes).unwrap();
    seq
}

fn kinds(f: &Fixture, now: SystemTime) -> Vec<FindingKind> {
    let r = vault::verify(
        &f.vault,
        &f.trust,
        &VerifyOptions {
            now,
            update_state: false,
            ..Default::default()
        },
    )
    .unwrap();
    r.findings.iter().map(|x| x.kind).collect()
}

// Regression (second red-team pass): a clock ten minutes fast, corrected by NTP and
// accepted by an approver, came back as `time-backwards` eleven minutes later.
#[test]
fn an_accepted_future_entry_is_never_a_reference_for_later_ones() {
    let f = Fixture::new();
    let t0 = SystemTime::now();
    let beat = |n: &str| Event::Heartbeat { note: n.into() };
    append_at(&f, &f.collector, &beat("ok"), t0);
    let fast = append_at(
        &f,
        &f.collector,
        &beat("fast clock"),
        t0 + Duration::from_secs(600),
    );
    append_at(
        &f,
        &f.collector,
        &beat("after NTP"),
        t0 + Duration::from_secs(5),
    );
    assert_eq!(
        kinds(&f, t0 + Duration::from_secs(6)),
        [FindingKind::FutureTime]
    );
    append_at(
        &f,
        &f.approver,
        &Event::Recovery {
            accepted: vec![Accepted {
                kind: "future-time".into(),
                seq: Some(fast),
                vault: None,
                hash: None,
                message: "fast clock".into(),
            }],
            reason: "NTP fixed the clock".into(),
        },
        t0 + Duration::from_secs(7),
    );
    for later in [8, 660, 86_400] {
        assert_eq!(
            kinds(&f, t0 + Duration::from_secs(later)),
            [],
            "{later} s later"
        );
    }
    // Entries whose signature fails are not read for their time either.
    let forged = append_at(&f, &f.collector, &beat("x"), t0 + Duration::from_secs(9));
    let path = vault::log::entry_path(f.root(), forged);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"x\"", "\"y\"");
    std::fs::write(&path, text).unwrap();
    assert_eq!(
        kinds(&f, t0 + Duration::from_secs(10)),
        [FindingKind::BadSignature]
    );
}
