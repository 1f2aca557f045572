//! End-to-end tests of the service with the protocol's own client, over both stores.

use super::*;
use crate::limits::LimitKind;
use crate::storage::memory::MemoryStorage;
use crate::storage::sqlite::{Durability, SqliteStorage};
use crate::testkit::{Device, decode_replies, retrieve, retrieved_ids};
use otr4::hazmat::prekey::client::{Retrieved, ServerReply};
use otr4::hazmat::prekey::messages::{Dake3, EnsembleRetrieval};
use otr4::hazmat::wire::encoded::encode_prekey;
use otr4::hazmat::wire::fragment::fragment;
use otr4::hazmat::wire::messages::PrekeyEnsemble;

const SERVER: &str = "prekey.example.org";
const NOW: i64 = 1_700_000_000;

fn service_with(storage: Arc<dyn Storage>, limits: Limits) -> Service {
    let mut o = ServiceOptions::new(SERVER);
    o.limits = limits;
    Service::new(KeyPair::generate(&mut rand::rng()), storage, o)
}

fn service() -> Service {
    service_with(Arc::new(MemoryStorage::new()), Limits::default())
}

fn device(s: &Service, jid: &str) -> Device {
    Device::new(jid, SERVER, s.fingerprint(), NOW).unwrap()
}

fn exchange<'a>(s: &'a Service, from: &'a str) -> impl FnMut(&str) -> Vec<String> + 'a {
    move |text| s.handle_at(from, text, NOW as f64).replies
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

fn publish_retrieve_status(s: &Service) {
    let mut bob = device(s, "bob@example.org");
    let (ids, reply) = bob
        .publish(5, true, NOW, &mut exchange(s, "bob@example.org"))
        .unwrap();
    assert_eq!(
        reply,
        ServerReply::Published {
            prekey_ids: ids.clone(),
            client_profile: true,
            prekey_profile: true
        }
    );
    assert_eq!(count(s, &bob), 5);
    assert_eq!(
        s.storage().stats().unwrap(),
        crate::storage::StoreStats {
            client_profiles: 1,
            prekey_profiles: 1,
            prekey_messages: 5
        }
    );
    let st = bob
        .storage_status(NOW, &mut exchange(s, "bob@example.org"))
        .unwrap();
    assert_eq!(st, ServerReply::StorageStatus { stored: 5 });

    let mut alice = device(s, "alice@example.org");
    let mut got = Vec::new();
    for _ in 0..5 {
        let r = retrieve(
            &mut alice.client,
            "bob@example.org",
            NOW,
            &mut exchange(s, "alice@example.org"),
        )
        .unwrap();
        if let Retrieved::Ensembles { ensembles, .. } = &r {
            assert!(
                ensembles.discarded.is_empty(),
                "client validated every ensemble"
            );
            assert_eq!(ensembles.chosen[0].owner_tag(), bob.instance_tag());
        }
        got.extend(retrieved_ids(&r));
    }
    got.sort_unstable();
    let mut want = ids.clone();
    want.sort_unstable();
    assert_eq!(got, want, "each published prekey handed out exactly once");
    let r = retrieve(
        &mut alice.client,
        "bob@example.org",
        NOW,
        &mut exchange(s, "alice@example.org"),
    )
    .unwrap();
    assert!(matches!(r, Retrieved::NoEnsembles { .. }));
    let st = bob
        .storage_status(NOW, &mut exchange(s, "bob@example.org"))
        .unwrap();
    assert_eq!(st, ServerReply::StorageStatus { stored: 0 });
    // Messages-only top-up works with the profiles already stored.
    let (ids2, reply) = bob
        .publish(3, false, NOW, &mut exchange(s, "bob@example.org"))
        .unwrap();
    assert!(matches!(
        reply,
        ServerReply::Published {
            client_profile: false,
            ..
        }
    ));
    let r = retrieve(
        &mut alice.client,
        "bob@example.org",
        NOW,
        &mut exchange(s, "alice@example.org"),
    )
    .unwrap();
    assert_eq!(retrieved_ids(&r), vec![ids2[0]]);
}

#[test]
fn publish_retrieve_status_memory() {
    publish_retrieve_status(&service());
}

#[test]
fn publish_retrieve_status_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let st = SqliteStorage::open(dir.path().join("s.db"), Durability::Full).unwrap();
    publish_retrieve_status(&service_with(Arc::new(st), Limits::default()));
}

#[test]
fn retrieval_bytes_equal_core_encoding() {
    let s = service();
    let mut bob = device(&s, "bob@example.org");
    bob.publish(1, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let mut other = device(&s, "bob@example.org");
    other
        .publish(1, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let q = otr4::hazmat::prekey::messages::EnsembleQuery {
        sender_tag: InstanceTag(0x4444),
        identity: b"bob@example.org".to_vec(),
        versions: b"54".to_vec(),
    };
    let h = s.handle_at("carol@example.org", &encode_prekey(&q.encode()), NOW as f64);
    assert!(matches!(&h.event, Event::EnsemblesSent { prekey_ids } if prekey_ids.len() == 2));
    let bin = otr4::hazmat::wire::encoded::decode_prekey(&h.replies[0]).unwrap();
    let decoded = EnsembleRetrieval::decode(&bin).unwrap();
    assert_eq!(decoded.receiver_tag, InstanceTag(0x4444));
    let rebuilt = EnsembleRetrieval::new(
        decoded.receiver_tag,
        decoded.identity.clone(),
        decoded.ensembles().to_vec(),
    )
    .unwrap();
    assert_eq!(
        rebuilt.encode(),
        bin,
        "byte-identical to the core's encoding"
    );
    let tags: Vec<InstanceTag> = decoded
        .ensembles()
        .iter()
        .map(|e: &PrekeyEnsemble| e.prekey_message.owner_tag)
        .collect();
    assert!(tags.contains(&bob.instance_tag()) && tags.contains(&other.instance_tag()));
}

#[test]
fn version_without_4_gets_no_ensembles_and_takes_nothing() {
    let s = service();
    let mut bob = device(&s, "bob@example.org");
    bob.publish(1, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let q = otr4::hazmat::prekey::messages::EnsembleQuery {
        sender_tag: InstanceTag(0x4444),
        identity: b"bob@example.org".to_vec(),
        versions: b"5".to_vec(),
    };
    let h = s.handle_at("carol@example.org", &encode_prekey(&q.encode()), NOW as f64);
    assert_eq!(h.event, Event::NoEnsembles);
    assert!(matches!(
        decode_replies(&h.replies).unwrap()[0],
        PrekeyServerMessage::NoPrekeyEnsembles(_)
    ));
    assert_eq!(count(&s, &bob), 1);
}

/// Runs DAKE-1/DAKE-2 for a publication of `n` messages (with profiles) and returns the
/// ids and the DAKE-3.
fn dake3_for(s: &Service, d: &mut Device, n: usize) -> (Vec<u32>, Dake3) {
    let rng = &mut rand::rng();
    let ids: Vec<u32> = d
        .store
        .generate_prekey_messages(rng, n, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    d.store.new_prekey_profile(rng, &d.long_term, NOW + 1000);
    let items = d
        .store
        .publish_items(&ids, true)
        .unwrap()
        .with_client_profile(d.client.client_profile().clone());
    let dake1 = d.client.publish(rng, items).unwrap();
    let h = s.handle_at(&d.jid, &encode_prekey(&dake1.encode()), NOW as f64);
    assert!(matches!(h.event, Event::Dake2Sent { .. }));
    let PrekeyServerMessage::Dake2(dake2) = &decode_replies(&h.replies).unwrap()[0] else {
        panic!("no DAKE-2")
    };
    (ids, d.client.receive_dake2(rng, dake2).unwrap())
}

fn nothing_stored(s: &Service, d: &Device) {
    assert_eq!(count(s, d), 0);
    assert!(
        s.storage()
            .take_ensembles(&d.jid, b"4", NOW)
            .unwrap()
            .is_empty(),
        "no profile stored either"
    );
}

#[test]
fn bad_mac_rejected_with_failure_store_unchanged() {
    let s = service();
    let mut bob = device(&s, "bob@example.org");
    let (ids, mut dake3) = dake3_for(&s, &mut bob, 3);
    let last = dake3.message.len() - 1;
    dake3.message[last] ^= 1; // the Prekey MAC's last byte
    let h = s.handle_at(&bob.jid, &encode_prekey(&dake3.encode()), NOW as f64);
    assert_eq!(
        h.event,
        Event::Rejected(Rejection::Refused(ServerError::BadMac))
    );
    let reply = &decode_replies(&h.replies).unwrap()[0];
    assert!(matches!(reply, PrekeyServerMessage::Failure(_)));
    assert_eq!(
        bob.client.receive_reply(reply).unwrap(),
        ServerReply::Failed { prekey_ids: ids },
        "the client verifies the Failure MAC"
    );
    nothing_stored(&s, &bob);
    // Replaying the DAKE-3 finds no session.
    let h = s.handle_at(&bob.jid, &encode_prekey(&dake3.encode()), NOW as f64);
    assert_eq!(h.event, Event::Rejected(Rejection::NoSession));
    assert!(h.replies.is_empty());
}

#[test]
fn tampered_publication_bodies_rejected_store_unchanged() {
    let s = service();
    // Flip one byte at several places of the enclosed publication: the count N, a prekey
    // message, the proofs. Each is refused (Failure) or dropped; nothing is stored.
    for pos in [3usize, 10, 200, 400] {
        let mut bob = device(&s, "bob@example.org");
        let (_, mut dake3) = dake3_for(&s, &mut bob, 2);
        let len = dake3.message.len();
        let p = if pos >= len { len - 100 } else { pos };
        dake3.message[p] ^= 0x40;
        let h = s.handle_at(&bob.jid, &encode_prekey(&dake3.encode()), NOW as f64);
        match &h.event {
            Event::Rejected(Rejection::Refused(_)) => {
                assert!(matches!(
                    decode_replies(&h.replies).unwrap()[0],
                    PrekeyServerMessage::Failure(_)
                ))
            }
            Event::Rejected(Rejection::Dake(ServerError::UnknownInnerMessage(_))) => {
                assert!(h.replies.is_empty())
            }
            other => panic!("byte {p}: {other:?}"),
        }
        nothing_stored(&s, &bob);
    }
}

#[test]
fn forged_dake3_signature_dropped_silently() {
    let s = service();
    let mut bob = device(&s, "bob@example.org");
    let (_, dake3) = dake3_for(&s, &mut bob, 1);
    let mut bin = dake3.encode();
    // sigma starts after version (2), type (1), sender tag (4); flip a byte of c1.
    bin[10] ^= 1;
    let h = s.handle_at(&bob.jid, &encode_prekey(&bin), NOW as f64);
    match h.event {
        Event::Rejected(Rejection::Dake(_)) | Event::Rejected(Rejection::Malformed(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(h.replies.is_empty());
    nothing_stored(&s, &bob);
}

#[test]
fn dake3_from_another_jid_finds_no_session() {
    let s = service();
    let mut bob = device(&s, "bob@example.org");
    let (_, dake3) = dake3_for(&s, &mut bob, 1);
    let h = s.handle_at(
        "mallory@example.org",
        &encode_prekey(&dake3.encode()),
        NOW as f64,
    );
    assert_eq!(h.event, Event::Rejected(Rejection::NoSession));
    nothing_stored(&s, &bob);
    // Bob's own DAKE-3 still works afterwards.
    let h = s.handle_at(&bob.jid, &encode_prekey(&dake3.encode()), NOW as f64);
    assert!(matches!(h.event, Event::Published { added: 1, .. }));
}

#[test]
fn malformed_and_oversized_inputs_rejected() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            max_message_bytes: 4096,
            ..Limits::default()
        },
    );
    let cases: Vec<(&str, String)> = vec![
        ("bob@example.org", "hello".into()),
        ("bob@example.org", "AAQ1.".into()),
        ("bob@example.org", "!!!!.".into()),
        ("bob@example.org", encode_prekey(&[0, 4, 0x99, 0, 0, 0, 0])),
        ("bob@example.org", encode_prekey(&[0, 3, 0x35])),
        ("bob@example.org", "?OTRP|1|2|3,0,1,x,".into()),
    ];
    for (from, text) in &cases {
        let h = s.handle_at(from, text, NOW as f64);
        assert!(
            matches!(
                h.event,
                Event::Rejected(Rejection::Malformed(_)) | Event::Rejected(Rejection::Fragment(_))
            ),
            "{text}: {:?}",
            h.event
        );
        assert!(h.replies.is_empty());
    }
    let big = "A".repeat(4097);
    assert_eq!(
        s.handle_at("bob@example.org", &big, NOW as f64).event,
        Event::Rejected(Rejection::TooLarge {
            len: 4097,
            max: 4096
        })
    );
    // A real publication bigger than the limit: rejected before any crypto, nothing stored.
    let mut bob = device(&s, "bob@example.org");
    let err = bob.publish(20, true, NOW, &mut exchange(&s, "bob@example.org"));
    assert!(err.is_err(), "no reply to an oversized DAKE-3");
    assert_eq!(count(&s, &bob), 0);
    for from in ["", "bob@example.org/res", "a b@c"] {
        assert_eq!(
            s.handle_at(from, "AAQ1.", NOW as f64).event,
            Event::Rejected(Rejection::BadSender)
        );
    }
    // Messages only a server sends are not accepted by it.
    let success = otr4::hazmat::prekey::messages::Success {
        receiver_tag: InstanceTag(0x100),
        mac: [0; 64],
    };
    assert_eq!(
        s.handle_at(
            "bob@example.org",
            &encode_prekey(&success.encode()),
            NOW as f64
        )
        .event,
        Event::Rejected(Rejection::Unexpected(0x06))
    );
}

#[test]
fn device_full_answered_with_failure_store_unchanged() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            max_prekeys_per_device: 4,
            ..Limits::default()
        },
    );
    let mut bob = device(&s, "bob@example.org");
    bob.publish(3, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let (ids, dake3) = dake3_for(&s, &mut bob, 2);
    let h = s.handle_at(&bob.jid, &encode_prekey(&dake3.encode()), NOW as f64);
    assert_eq!(
        h.event,
        Event::Rejected(Rejection::DeviceFull {
            would_hold: 5,
            limit: 4
        })
    );
    let reply = &decode_replies(&h.replies).unwrap()[0];
    assert_eq!(
        bob.client.receive_reply(reply).unwrap(),
        ServerReply::Failed { prekey_ids: ids }
    );
    assert_eq!(count(&s, &bob), 3);
}

#[test]
fn retrieval_rate_limited_per_requester() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            retrieval_burst: 2,
            retrieval_rate_per_sec: 0.5,
            ..Limits::default()
        },
    );
    let mut bob = device(&s, "bob@example.org");
    bob.publish(10, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let q = otr4::hazmat::prekey::messages::EnsembleQuery {
        sender_tag: InstanceTag(0x4444),
        identity: b"bob@example.org".to_vec(),
        versions: b"4".to_vec(),
    };
    let text = encode_prekey(&q.encode());
    let t = NOW as f64;
    assert!(matches!(
        s.handle_at("eve@x", &text, t).event,
        Event::EnsemblesSent { .. }
    ));
    assert!(matches!(
        s.handle_at("eve@x", &text, t).event,
        Event::EnsemblesSent { .. }
    ));
    let h = s.handle_at("eve@x", &text, t + 1.0);
    assert_eq!(h.event, Event::Rejected(Rejection::RateLimited));
    assert!(matches!(
        decode_replies(&h.replies).unwrap()[0],
        PrekeyServerMessage::NoPrekeyEnsembles(_)
    ));
    assert_eq!(count(&s, &bob), 8, "a limited request takes nothing");
    assert!(matches!(
        s.handle_at("other@x", &text, t + 1.0).event,
        Event::EnsemblesSent { .. }
    ));
    assert!(matches!(
        s.handle_at("eve@x", &text, t + 2.0).event,
        Event::EnsemblesSent { .. }
    ));
}

#[test]
fn concurrent_dake_limits_and_expiry() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            max_concurrent_dakes: 3,
            max_dakes_per_jid: 2,
            dake_ttl_secs: 60,
            ..Limits::default()
        },
    );
    let start = |jid: &str, t: i64| {
        let mut d = Device::new(jid, SERVER, s.fingerprint(), NOW).unwrap();
        let dake1 = d.client.request_storage_status(&mut rand::rng()).unwrap();
        s.handle_at(jid, &encode_prekey(&dake1.encode()), t as f64)
            .event
    };
    assert!(matches!(start("a@x", NOW), Event::Dake2Sent { .. }));
    assert!(matches!(start("a@x", NOW), Event::Dake2Sent { .. }));
    assert_eq!(
        start("a@x", NOW),
        Event::Rejected(Rejection::DakeLimit),
        "per JID"
    );
    assert!(matches!(start("b@x", NOW), Event::Dake2Sent { .. }));
    assert_eq!(s.dakes_in_flight(), 3);
    // Every slot in use: the oldest half-open DAKE makes room.
    assert!(matches!(start("c@y", NOW), Event::Dake2Sent { .. }));
    assert_eq!(s.dakes_in_flight(), 3);
    assert_eq!(s.limit_hits().count(LimitKind::DakeEvicted), 1);
    assert_eq!(s.limit_hits().count(LimitKind::DakePerJid), 1);
    // After the TTL the stale sessions are dropped to make room.
    assert!(matches!(start("c@x", NOW + 61), Event::Dake2Sent { .. }));
    assert_eq!(s.dakes_in_flight(), 1);
}

/// A DAKE-1 for a storage status request from a new device of `jid`.
fn dake1_text(s: &Service, jid: &str) -> String {
    let mut d = Device::new(jid, SERVER, s.fingerprint(), NOW).unwrap();
    encode_prekey(
        &d.client
            .request_storage_status(&mut rand::rng())
            .unwrap()
            .encode(),
    )
}

#[test]
fn dake_quota_per_domain_and_fair_eviction_of_the_oldest() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            max_concurrent_dakes: 4,
            max_dakes_per_jid: 2,
            max_dakes_per_domain: 3,
            ..Limits::default()
        },
    );
    let t = NOW as f64;
    // An honest publisher starts first.
    let mut bob = device(&s, "bob@good.example");
    let (_, bob_dake3) = dake3_for(&s, &mut bob, 2);
    // One hostile domain holds at most 3 slots, whatever its number of JIDs.
    for i in 0..3 {
        let h = s.handle_at(
            &format!("m{i}@evil.example"),
            &dake1_text(&s, &format!("m{i}@evil.example")),
            t,
        );
        assert!(matches!(h.event, Event::Dake2Sent { .. }), "{i}");
    }
    for i in 3..20 {
        let jid = format!("m{i}@evil.example");
        assert_eq!(
            s.handle_at(&jid, &dake1_text(&s, &jid), t).event,
            Event::Rejected(Rejection::DakeLimit)
        );
    }
    assert_eq!(s.limit_hits().count(LimitKind::DakePerDomain), 17);
    assert_eq!(s.dakes_in_flight(), 4);
    // A new DAKE from elsewhere evicts the oldest half-open one (bob's).
    let h = s.handle_at(
        "carol@other.example",
        &dake1_text(&s, "carol@other.example"),
        t,
    );
    assert!(matches!(h.event, Event::Dake2Sent { .. }));
    assert_eq!(s.limit_hits().count(LimitKind::DakeEvicted), 1);
    assert_eq!(
        s.handle_at(&bob.jid, &encode_prekey(&bob_dake3.encode()), t)
            .event,
        Event::Rejected(Rejection::NoSession),
        "the oldest was evicted"
    );
    // Bob starts again; the evil domain's oldest slot goes now, bob completes.
    let (_, bob_dake3) = dake3_for(&s, &mut bob, 2);
    assert_eq!(s.limit_hits().count(LimitKind::DakeEvicted), 2);
    assert!(matches!(
        s.handle_at(&bob.jid, &encode_prekey(&bob_dake3.encode()), t)
            .event,
        Event::Published { added: 2, .. }
    ));
}

#[test]
fn dake_starts_rate_limited_per_requester() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            dake_start_burst: 3,
            dake_start_rate_per_sec: 0.5,
            ..Limits::default()
        },
    );
    // Restarting the same DAKE (same JID and instance tag) replaces the session but still
    // costs two signatures: it is counted.
    let text = dake1_text(&s, "eve@evil.example");
    let t = NOW as f64;
    for _ in 0..3 {
        assert!(matches!(
            s.handle_at("eve@evil.example", &text, t).event,
            Event::Dake2Sent { .. }
        ));
    }
    for _ in 0..100 {
        assert_eq!(
            s.handle_at("eve@evil.example", &text, t).event,
            Event::Rejected(Rejection::DakeRateLimited)
        );
    }
    assert_eq!(s.limit_hits().count(LimitKind::DakeStartRate), 100);
    assert!(matches!(
        s.handle_at("bob@good.example", &dake1_text(&s, "bob@good.example"), t)
            .event,
        Event::Dake2Sent { .. }
    ));
    assert!(matches!(
        s.handle_at("eve@evil.example", &text, t + 2.0).event,
        Event::Dake2Sent { .. }
    ));
}

fn query_text(target: &str) -> String {
    encode_prekey(
        &otr4::hazmat::prekey::messages::EnsembleQuery {
            sender_tag: InstanceTag(0x4444),
            identity: target.as_bytes().to_vec(),
            versions: b"4".to_vec(),
        }
        .encode(),
    )
}

#[test]
fn draining_bounded_per_pair_and_per_target() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            pair_retrieval_burst: 2,
            pair_retrieval_rate_per_sec: 0.01,
            target_retrieval_burst: 5,
            target_retrieval_rate_per_sec: 0.1,
            ..Limits::default()
        },
    );
    let mut bob = device(&s, "bob@example.org");
    bob.publish(50, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let mut carol = device(&s, "carol@example.org");
    carol
        .publish(5, true, NOW, &mut exchange(&s, "carol@example.org"))
        .unwrap();
    let t = NOW as f64;
    let bob_q = query_text("bob@example.org");
    // One requester: 2 for this target, then limited (its overall budget is not spent).
    let mut events = Vec::new();
    for _ in 0..10 {
        events.push(s.handle_at("eve@evil.example", &bob_q, t).event);
    }
    let sent = events
        .iter()
        .filter(|e| matches!(e, Event::EnsemblesSent { .. }))
        .count();
    assert_eq!(sent, 2);
    assert_eq!(s.limit_hits().count(LimitKind::RetrievalPair), 8);
    // Many requesters together: the target's bucket bounds the drain.
    for i in 0..100 {
        let h = s.handle_at(&format!("sybil{i}@evil.example"), &bob_q, t);
        if matches!(h.event, Event::Rejected(Rejection::RateLimited)) {
            assert!(matches!(
                decode_replies(&h.replies).unwrap()[0],
                PrekeyServerMessage::NoPrekeyEnsembles(_)
            ));
        }
    }
    assert_eq!(count(&s, &bob), 45, "5 handed out in the burst, 45 kept");
    assert!(s.limit_hits().count(LimitKind::RetrievalTarget) >= 97);
    // Another target is unaffected; bob's target refills with time.
    assert!(matches!(
        s.handle_at("alice@example.org", &query_text("carol@example.org"), t)
            .event,
        Event::EnsemblesSent { .. }
    ));
    assert!(matches!(
        s.handle_at("alice@example.org", &bob_q, t + 10.0).event,
        Event::EnsemblesSent { .. }
    ));
    assert_eq!(count(&s, &bob), 44);
}

#[test]
fn reassembly_memory_bounded_globally_oldest_evicted() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            max_reassembly_bytes: 300_000,
            ..Limits::default()
        },
    );
    let t = NOW as f64;
    // 200 senders each start a 200 KB fragmented message (each piece 10 KB).
    let big = format!("{}.", "A".repeat(200_000));
    let frags = fragment(
        &big,
        10_000,
        9,
        InstanceTag(0x100),
        InstanceTag::UNKNOWN,
        FragmentKind::Prekey,
    )
    .unwrap();
    let mut peak = 0usize;
    for i in 0..200 {
        for f in frags.iter().take(5) {
            let h = s.handle_at(&format!("eve{i}@evil.example"), f, t);
            assert_eq!(h.event, Event::FragmentBuffered);
            peak = peak.max(s.reassembly_bytes());
        }
    }
    assert!(peak <= 300_000, "peak {peak}");
    assert!(s.limit_hits().count(LimitKind::ReassemblyEvicted) > 150);
    // An honest fragmented publication still goes through.
    let mut bob = device(&s, "bob@example.org");
    let mut ex = |text: &str| -> Vec<String> {
        let frags = fragment(
            text,
            700,
            0x1234_5678,
            bob_tag_placeholder(),
            InstanceTag::UNKNOWN,
            FragmentKind::Prekey,
        )
        .unwrap();
        let mut out = Vec::new();
        for f in &frags {
            out = s.handle_at("bob@example.org", f, t).replies;
        }
        out
    };
    let (_, reply) = bob.publish(4, true, NOW, &mut ex).unwrap();
    assert!(matches!(reply, ServerReply::Published { .. }));
}

#[test]
fn expired_session_dake3_dropped() {
    let s = service();
    let mut bob = device(&s, "bob@example.org");
    let (_, dake3) = dake3_for(&s, &mut bob, 1);
    let late = (NOW + Limits::default().dake_ttl_secs + 1) as f64;
    let h = s.handle_at(&bob.jid, &encode_prekey(&dake3.encode()), late);
    assert_eq!(
        h.event,
        Event::Rejected(Rejection::Dake(ServerError::SessionExpired))
    );
    nothing_stored(&s, &bob);
}

#[test]
fn fragmented_publication_and_fragmented_replies() {
    let mut o = ServiceOptions::new(SERVER);
    o.fragment_size = Some(500);
    let s = Service::new(
        KeyPair::generate(&mut rand::rng()),
        Arc::new(MemoryStorage::new()),
        o,
    );
    let mut bob = device(&s, "bob@example.org");
    let mut sent_fragments = 0usize;
    let mut ex = |text: &str| -> Vec<String> {
        if text.len() <= 700 {
            return s.handle_at("bob@example.org", text, NOW as f64).replies;
        }
        let frags = fragment(
            text,
            700,
            0x1234_5678,
            bob_tag_placeholder(),
            InstanceTag::UNKNOWN,
            FragmentKind::Prekey,
        )
        .unwrap();
        let mut out = Vec::new();
        let n = frags.len();
        for (i, f) in frags.iter().enumerate() {
            sent_fragments += 1;
            let h = s.handle_at("bob@example.org", f, NOW as f64);
            if i + 1 < n {
                assert_eq!(h.event, Event::FragmentBuffered);
            }
            out = h.replies;
        }
        out
    };
    let (ids, reply) = bob.publish(4, true, NOW, &mut ex).unwrap();
    assert!(matches!(reply, ServerReply::Published { .. }));
    assert!(sent_fragments > 2);
    // The retrieval reply is longer than 500 and comes back fragmented.
    let mut alice = device(&s, "alice@example.org");
    let mut n_replies = 0;
    let r = retrieve(&mut alice.client, "bob@example.org", NOW, &mut |t: &str| {
        let r = s.handle_at("alice@example.org", t, NOW as f64).replies;
        n_replies = r.len();
        r
    })
    .unwrap();
    assert!(n_replies > 1, "reply was fragmented");
    assert!(ids.contains(&retrieved_ids(&r)[0]));
}

fn bob_tag_placeholder() -> InstanceTag {
    InstanceTag(0x100)
}

#[test]
fn concurrent_publications_and_retrievals_threads() {
    let dir = tempfile::tempdir().unwrap();
    let st = SqliteStorage::open(dir.path().join("c.db"), Durability::Full).unwrap();
    let s = Arc::new(service_with(
        Arc::new(st),
        Limits {
            retrieval_burst: 1000,
            ..Limits::default()
        },
    ));
    let mut bob = device(&s, "bob@example.org");
    let (ids, _) = bob
        .publish(20, true, NOW, &mut exchange(&s, "bob@example.org"))
        .unwrap();
    let q = otr4::hazmat::prekey::messages::EnsembleQuery {
        sender_tag: InstanceTag(0x4444),
        identity: b"bob@example.org".to_vec(),
        versions: b"4".to_vec(),
    };
    let text = encode_prekey(&q.encode());
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            let text = text.clone();
            std::thread::spawn(move || s.handle_at(&format!("r{i}@x"), &text, NOW as f64).event)
        })
        .collect();
    let mut got = Vec::new();
    let mut none = 0;
    for h in handles {
        match h.join().unwrap() {
            Event::EnsemblesSent { prekey_ids } => got.extend(prekey_ids),
            Event::NoEnsembles => none += 1,
            other => panic!("{other:?}"),
        }
    }
    got.sort_unstable();
    let mut want = ids;
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(none, 30);
}

#[test]
fn fragment_buffer_bounded_by_message_limit() {
    let s = service_with(
        Arc::new(MemoryStorage::new()),
        Limits {
            max_message_bytes: 4096,
            ..Limits::default()
        },
    );
    let big = format!("{}.", "A".repeat(10_000));
    let frags = fragment(
        &big,
        500,
        7,
        InstanceTag(0x100),
        InstanceTag::UNKNOWN,
        FragmentKind::Prekey,
    )
    .unwrap();
    let mut events = Vec::new();
    for f in &frags {
        events.push(s.handle_at("eve@example.org", f, NOW as f64).event);
    }
    let first_reject = events
        .iter()
        .position(|e| matches!(e, Event::Rejected(Rejection::TooLarge { max: 4096, .. })))
        .expect("rejected once the buffer passed the limit");
    assert!(first_reject < 10, "rejected early ({first_reject})");
    assert!(
        events[..first_reject]
            .iter()
            .all(|e| *e == Event::FragmentBuffered)
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Rejected(Rejection::Malformed(_)))),
        "the whole message was never assembled"
    );
}
