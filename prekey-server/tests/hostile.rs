//! A hostile-client run against a live service (SQLite store, default limits except the
//! DAKE slots, scaled down 4× so that fewer signatures — the test's cost — fill them;
//! 40 of the JIDs flood DAKE-1s):
//! 1 000 JIDs in 40 domains (25 each) drain prekeys, flood DAKE-1s, fill the fragment buffers and
//! send garbage while honest publishers and retrievers keep working. Checks that honest clients are
//! served, memory stays bounded (peak RSS of this test process) and no stored prekey is
//! lost or handed out twice. Alone in its test binary so that the peak RSS is its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::InstanceTag;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::prekey::client::ServerReply;
use otr4::hazmat::prekey::messages::EnsembleQuery;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::encode_prekey;
use otr4::hazmat::wire::fragment::{FragmentKind, fragment};
use prekey_server::limits::{LimitKind, Limits};
use prekey_server::service::{Event, Service, ServiceOptions};
use prekey_server::storage::DeviceKey;
use prekey_server::storage::sqlite::{Durability, SqliteStorage};
use prekey_server::testkit::Device;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const SERVER: &str = "prekey.test";
const ATTACKERS: usize = 1000;
const PUBLISHERS: usize = 20;
const PREKEYS: usize = 20;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Peak resident set size of this process in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn query(target: &str) -> String {
    encode_prekey(
        &EnsembleQuery {
            sender_tag: InstanceTag(0x4242),
            identity: target.as_bytes().to_vec(),
            versions: b"4".to_vec(),
        }
        .encode(),
    )
}

fn exchange<'a>(s: &'a Service, from: &'a str) -> impl FnMut(&str) -> Vec<String> + 'a {
    move |text| s.handle(from, text).replies
}

fn count(s: &Service, d: &Device) -> u32 {
    s.storage()
        .count(&DeviceKey {
            jid: d.jid.clone(),
            instance_tag: d.instance_tag().0,
            long_term_key: d.long_term.public().encode(),
        })
        .unwrap()
}

#[test]
fn thousand_hostile_jids_honest_clients_served_memory_bounded_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path().join("p.db"), Durability::Normal).unwrap();
    let mut options = ServiceOptions::new(SERVER);
    options.limits = Limits {
        max_concurrent_dakes: 256,
        ..Limits::default()
    };
    let limits = options.limits.clone();
    let svc = Arc::new(Service::new(
        KeyPair::generate(&mut rand::rng()),
        Arc::new(storage),
        options,
    ));
    let t0 = now();

    // Honest publishers, before the attack.
    let mut publishers: Vec<Device> = (0..PUBLISHERS)
        .map(|i| {
            Device::new(
                &format!("pub{i}@good.example"),
                SERVER,
                svc.fingerprint(),
                t0,
            )
            .unwrap()
        })
        .collect();
    let mut published: HashMap<String, HashSet<u32>> = HashMap::new();
    for d in &mut publishers {
        let jid = d.jid.clone();
        let (ids, reply) = d
            .publish(PREKEYS, true, t0, &mut exchange(&svc, &jid))
            .unwrap();
        assert!(matches!(reply, ServerReply::Published { .. }));
        published.insert(jid, ids.into_iter().collect());
    }
    let baseline_kib = peak_rss_kib();

    // Material for the attack, made once (the client side is not what is measured).
    let dake1s: Vec<String> = (0..8)
        .map(|_| {
            let mut d = Device::new("x@evil0.example", SERVER, svc.fingerprint(), t0).unwrap();
            encode_prekey(
                &d.client
                    .request_storage_status(&mut rand::rng())
                    .unwrap()
                    .encode(),
            )
        })
        .collect();
    let big = format!("{}.", "A".repeat(250_000));
    let frags = fragment(
        &big,
        10_000,
        7,
        InstanceTag(0x100),
        InstanceTag::UNKNOWN,
        FragmentKind::Prekey,
    )
    .unwrap();
    let oversized = "B".repeat(300_000);
    // Half the publishers are the drain's victims.
    let victims: Vec<String> = (0..PUBLISHERS / 2)
        .map(|i| format!("pub{i}@good.example"))
        .collect();

    let handed_out: Mutex<Vec<(String, u32)>> = Mutex::default();
    let record = |target: &str, e: &Event| {
        if let Event::EnsemblesSent { prekey_ids } = e {
            let mut h = handed_out.lock().unwrap();
            h.extend(prekey_ids.iter().map(|id| (target.to_owned(), *id)));
        }
    };
    let started = Instant::now();
    let honest_ok = std::thread::scope(|scope| {
        for worker in 0..3 {
            let (svc, dake1s, frags, victims, oversized, record) =
                (&svc, &dake1s, &frags, &victims, &oversized, &record);
            scope.spawn(move || {
                for i in (worker..ATTACKERS).step_by(3) {
                    let jid = format!("m{i}@evil{}.example", i / 25);
                    // Everyone sends garbage, oversized messages and fragments.
                    for text in ["garbage", "?OTRP|1|2|3", "AAQ=.", oversized.as_str()] {
                        assert!(svc.handle(&jid, text).replies.is_empty());
                    }
                    // All but the last fragment: the reassembly stays open.
                    for f in frags.iter().take(frags.len() - 1) {
                        let _ = svc.handle(&jid, f);
                    }
                    match i % 25 {
                        0 | 2 | 4 | 6 | 8 | 10 | 12 | 14 | 16 | 18 | 20 | 22 | 24 => {
                            // Drain the victims.
                            for v in victims {
                                let e = svc.handle(&jid, &query(v)).event;
                                record(v, &e);
                            }
                        }
                        1 => {
                            // Hold DAKE slots and restart DAKEs (40 JIDs, 40 DAKE-1s
                            // each: 30 signed, then rate-limited).
                            for _ in 0..5 {
                                for d in dake1s.iter() {
                                    let _ = svc.handle(&jid, d);
                                }
                            }
                        }
                        _ => {
                            // Queries for what is not a JID, DAKE-3 without a DAKE.
                            let _ = svc.handle(&jid, &query(&"z".repeat(5000)));
                            let _ = svc.handle(&jid, &query(&jid));
                        }
                    }
                }
            });
        }
        // Honest clients during the attack: non-victims are retrieved from, everyone tops up.
        let honest = scope.spawn(|| {
            let mut ok = 0usize;
            for round in 0..3 {
                for (i, d) in publishers.iter_mut().enumerate() {
                    let target = d.jid.clone();
                    if i >= PUBLISHERS / 2 {
                        let e = svc
                            .handle(&format!("alice{round}@good.example"), &query(&target))
                            .event;
                        assert!(
                            matches!(e, Event::EnsemblesSent { .. }),
                            "honest retrieval of {target}: {e:?}"
                        );
                        record(&target, &e);
                    }
                    let (ids, reply) = d
                        .publish(1, false, t0, &mut exchange(&svc, &target))
                        .unwrap();
                    assert!(
                        matches!(reply, ServerReply::Published { .. }),
                        "honest publication during the attack: {reply:?}"
                    );
                    published.get_mut(&target).unwrap().extend(ids);
                    ok += 1;
                }
            }
            ok
        });
        honest.join().unwrap()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let peak_kib = peak_rss_kib();
    eprintln!(
        "hostile run: {elapsed:.1} s, peak RSS {} MiB (before the attack {} MiB), reassembly buffer now {} KiB, DAKEs in flight {}",
        peak_kib / 1024,
        baseline_kib / 1024,
        svc.reassembly_bytes() / 1024,
        svc.dakes_in_flight()
    );
    for k in LimitKind::ALL {
        eprintln!("  limit {:<22} {}", k.as_str(), svc.limit_hits().count(k));
    }
    assert_eq!(honest_ok, 3 * PUBLISHERS);

    // Memory bounded: without the global reassembly cap the fragment flood alone would
    // hold 1 000 × 250 KB.
    assert!(svc.reassembly_bytes() <= limits.max_reassembly_bytes);
    assert!(svc.dakes_in_flight() <= limits.max_concurrent_dakes);
    assert!(
        peak_kib.saturating_sub(baseline_kib) < 128 * 1024,
        "peak RSS grew by {} MiB",
        (peak_kib - baseline_kib) / 1024
    );
    let hits = svc.limit_hits();
    for k in [
        LimitKind::MessageTooLarge,
        LimitKind::RetrievalTarget,
        LimitKind::DakeStartRate,
        LimitKind::DakeEvicted,
        LimitKind::ReassemblyEvicted,
    ] {
        assert!(hits.count(k) > 0, "{} never hit", k.as_str());
    }

    // Nothing lost, nothing handed out twice: per publisher, handed out + still stored =
    // published, and the drain took at most the target bucket's allowance.
    let handed = handed_out.into_inner().unwrap();
    let unique: HashSet<&(String, u32)> = handed.iter().collect();
    assert_eq!(unique.len(), handed.len(), "a prekey handed out twice");
    let l = &limits;
    let allowance =
        f64::from(l.target_retrieval_burst) + l.target_retrieval_rate_per_sec * (elapsed + 2.0);
    for d in &publishers {
        let out: Vec<u32> = handed
            .iter()
            .filter(|(t, _)| *t == d.jid)
            .map(|(_, id)| *id)
            .collect();
        let pubs = &published[&d.jid];
        assert!(out.iter().all(|id| pubs.contains(id)));
        assert_eq!(
            out.len() + count(&svc, d) as usize,
            pubs.len(),
            "{}: handed out {} + stored {} != published {}",
            d.jid,
            out.len(),
            count(&svc, d),
            pubs.len()
        );
        assert!(
            out.len() as f64 <= allowance,
            "{} drained: {}",
            d.jid,
            out.len()
        );
    }
}
