//! Prekey server benches: ensemble retrievals per second and their latency percentiles
//! against the SQLite store (both durabilities), and a publication of 100 Prekey messages
//! with proofs (end to end, and the server's DAKE-3 handling alone).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::prekey::messages::EnsembleQuery;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::encode_prekey;
use prekey_server::service::{Event, Service, ServiceOptions, unix_now};
use prekey_server::storage::sqlite::{Durability, SqliteStorage};
use prekey_server::storage::{
    ClientProfileRecord, DeviceKey, PrekeyMessageRecord, PrekeyProfileRecord, StoreRequest,
};
use prekey_server::testkit::{Device, decode_replies};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVER: &str = "prekey.bench";
const BOB: &str = "bob@bench.example";

/// A service over a fresh SQLite file, with retrieval rate limiting out of the way.
fn sqlite_service(dir: &std::path::Path, durability: Durability) -> Arc<Service> {
    let st = SqliteStorage::open(dir.join("bench.db"), durability).unwrap();
    let mut o = ServiceOptions::new(SERVER);
    o.limits.retrieval_burst = u32::MAX;
    o.limits.retrieval_rate_per_sec = 1e9;
    o.limits.pair_retrieval_burst = u32::MAX;
    o.limits.pair_retrieval_rate_per_sec = 1e9;
    o.limits.target_retrieval_burst = u32::MAX;
    o.limits.target_retrieval_rate_per_sec = 1e9;
    o.limits.max_prekeys_per_device = u32::MAX;
    Arc::new(Service::new(
        KeyPair::generate(&mut rand::rng()),
        Arc::new(st),
        o,
    ))
}

/// Real profiles and a real Prekey message of one device, published once through the
/// protocol; more messages are then added directly to storage as copies with fresh ids.
struct Stock {
    device: DeviceKey,
    client_profile: ClientProfileRecord,
    prekey_profile: PrekeyProfileRecord,
    message: otr4::hazmat::wire::messages::PrekeyMessage,
    next_id: u32,
}

impl Stock {
    fn new(s: &Service) -> Stock {
        let now = unix_now() as i64;
        let mut bob = Device::new(BOB, SERVER, s.fingerprint(), now).unwrap();
        let (ids, _) = bob
            .publish(1, true, now, &mut |t: &str| s.handle(BOB, t).replies)
            .unwrap();
        let taken = s.storage().take_ensembles(BOB, b"4", now).unwrap();
        assert_eq!(taken[0].prekey_message_id, ids[0]);
        let cp = bob.client.client_profile();
        Stock {
            device: DeviceKey {
                jid: BOB.into(),
                instance_tag: bob.instance_tag().0,
                long_term_key: bob.long_term.public().encode(),
            },
            client_profile: ClientProfileRecord {
                bytes: taken[0].client_profile.clone(),
                versions: cp.versions().to_vec(),
                expires: cp.expiration(),
            },
            prekey_profile: PrekeyProfileRecord {
                bytes: taken[0].prekey_profile.clone(),
                expires: now + 3600,
            },
            message: otr4::hazmat::wire::messages::PrekeyMessage::decode(&taken[0].prekey_message)
                .unwrap(),
            next_id: 1,
        }
    }

    /// Adds `n` Prekey messages in batches.
    fn refill(&mut self, s: &Service, n: u64) {
        let mut left = n;
        while left > 0 {
            let batch = left.min(5000);
            let mut req = StoreRequest::new(self.device.clone());
            req.client_profile = Some(self.client_profile.clone());
            req.prekey_profile = Some(self.prekey_profile.clone());
            for _ in 0..batch {
                let mut m = self.message.clone();
                m.id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1).max(1);
                req.prekey_messages.push(PrekeyMessageRecord {
                    id: m.id,
                    version: 4,
                    bytes: m.encode(),
                });
            }
            s.storage()
                .store(&req, u32::MAX, unix_now() as i64)
                .unwrap();
            left -= batch;
        }
    }
}

fn query_text() -> String {
    encode_prekey(
        &EnsembleQuery {
            sender_tag: InstanceTag(0x1234_5678),
            identity: BOB.as_bytes().to_vec(),
            versions: b"4".to_vec(),
        }
        .encode(),
    )
}

fn retrieve_once(s: &Service, text: &str, from: &str) {
    let h = s.handle(from, text);
    assert!(
        matches!(h.event, Event::EnsemblesSent { .. }),
        "{:?}",
        h.event
    );
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux; 0 when
/// unavailable). Less sensitive than wall time to other jobs on the machine; resolution one
/// clock tick (assumed 10 ms), so measure thousands of operations.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Throughput and latency percentiles outside criterion (criterion reports means).
fn latency_report(durability: Durability, threads: usize, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let s = sqlite_service(dir.path(), durability);
    let mut stock = Stock::new(&s);
    stock.refill(&s, n as u64);
    let text = query_text();
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let per = n / threads;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (s, text) = (s.clone(), text.clone());
            std::thread::spawn(move || {
                let from = format!("alice{t}@bench.example");
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t0 = Instant::now();
                    retrieve_once(&s, &text, &from);
                    lat.push(t0.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = start.elapsed();
    let cpu = cpu_secs() - cpu0;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "prekey_server retrieval sqlite/{durability:?} threads={threads}: {} retrievals in {:.2?} = {:.0}/s; p50 {:.1?} p99 {:.1?} max {:.1?}; CPU {:.0} µs/retrieval",
        lat.len(),
        total,
        lat.len() as f64 / total.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1],
        cpu * 1e6 / lat.len() as f64,
    );
}

/// The storage transaction alone (no decoding, encoding or batching), one thread.
fn storage_only_report(durability: Durability, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let s = sqlite_service(dir.path(), durability);
    let mut stock = Stock::new(&s);
    stock.refill(&s, n as u64);
    let now = unix_now() as i64;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    for _ in 0..n {
        assert_eq!(s.storage().take_ensembles(BOB, b"4", now).unwrap().len(), 1);
    }
    let total = t0.elapsed();
    let cpu = cpu_secs() - cpu0;
    eprintln!(
        "prekey_server storage-only take sqlite/{durability:?}: {n} in {total:.2?} = {:.0}/s; CPU {:.0} µs/take",
        n as f64 / total.as_secs_f64(),
        cpu * 1e6 / n as f64
    );
}

fn retrieval(c: &mut Criterion) {
    for d in [Durability::Full, Durability::Normal] {
        storage_only_report(d, 3000);
    }
    for d in [Durability::Full, Durability::Normal] {
        for threads in [1, 8, 64] {
            latency_report(d, threads, 6400);
        }
    }
    let mut g = c.benchmark_group("prekey_server/retrieval");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    for d in [Durability::Full, Durability::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let s = sqlite_service(dir.path(), d);
        let mut stock = Stock::new(&s);
        let text = query_text();
        g.bench_function(BenchmarkId::new("sqlite", format!("{d:?}")), |b| {
            b.iter_custom(|iters| {
                stock.refill(&s, iters);
                let t0 = Instant::now();
                for _ in 0..iters {
                    retrieve_once(&s, &text, "alice@bench.example");
                }
                t0.elapsed()
            })
        });
    }
    g.finish();
}

fn publication(c: &mut Criterion) {
    let mut g = c.benchmark_group("prekey_server/publication_100");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let dir = tempfile::tempdir().unwrap();
    let s = sqlite_service(dir.path(), Durability::Full);
    let now = unix_now() as i64;
    // End to end: client generates 100 Prekey messages and the proofs, server verifies and
    // commits, client checks the Success MAC.
    g.bench_function("end_to_end", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut d = Device::new(BOB, SERVER, s.fingerprint(), now).unwrap();
                let t0 = Instant::now();
                let (_, reply) = d
                    .publish(100, true, now, &mut |t: &str| s.handle(BOB, t).replies)
                    .unwrap();
                total += t0.elapsed();
                assert!(matches!(
                    reply,
                    otr4::hazmat::prekey::client::ServerReply::Published { .. }
                ));
            }
            total
        })
    });
    // Server side only: handling the DAKE-3 (MAC, profiles, three proofs, commit).
    g.bench_function("server_dake3", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let rng = &mut rand::rng();
            for _ in 0..iters {
                let mut d = Device::new(BOB, SERVER, s.fingerprint(), now).unwrap();
                let ids: Vec<u32> = d
                    .store
                    .generate_prekey_messages(rng, 100, now)
                    .unwrap()
                    .iter()
                    .map(|m| m.id)
                    .collect();
                d.store.new_prekey_profile(rng, &d.long_term, now + 3600);
                let items = d
                    .store
                    .publish_items(&ids, true)
                    .unwrap()
                    .with_client_profile(d.client.client_profile().clone());
                let dake1 = d.client.publish(rng, items).unwrap();
                let r = s.handle(BOB, &encode_prekey(&dake1.encode())).replies;
                let PrekeyServerMessage::Dake2(dake2) = &decode_replies(&r).unwrap()[0] else {
                    panic!("no DAKE-2")
                };
                let dake3 = encode_prekey(&d.client.receive_dake2(rng, dake2).unwrap().encode());
                let t0 = Instant::now();
                let h = s.handle(BOB, &dake3);
                total += t0.elapsed();
                assert!(matches!(h.event, Event::Published { added: 100, .. }));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, retrieval, publication);
criterion_main!(benches);
