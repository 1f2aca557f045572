//! End-to-end prekey-server protocol: a publisher and a retriever against the server core
//! with the in-memory storage, every message going through its wire encoding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::CryptoError;
use otr4::DecodeError;
use otr4::Fingerprint;
use otr4::InstanceTag;
use otr4::PrekeyServerMessage;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::{Ed448PublicKey, generate_forging_point};
use otr4::hazmat::prekey::client::{ClientEvent, PublishItems, Retrieved, ServerReply};
use otr4::hazmat::prekey::memory::MemoryStorage;
use otr4::hazmat::prekey::messages::{Dake1, Dake2, Dake3, Dake3Inner, StorageInfoRequest};
use otr4::hazmat::prekey::server::{Dake3Outcome, QueryOutcome, ServerError, ServerSession};
use otr4::hazmat::prekey::{PrekeyClient, PrekeyServer};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{IncomingPrekey, classify_prekey, encode_prekey};
use otr4::hazmat::wire::fragment::{FragmentKind, Reassembler, fragment};
use otr4::{PrekeyError, PrekeyStore, RefillPolicy};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const WEEK: i64 = 7 * 86_400;
const SERVER_ID: &[u8] = b"prekey.example.org";
const ALICE: &[u8] = b"alice@example.org";
const BOB: &[u8] = b"bob@example.org";

/// Sends a message through its binary and `<base64>.` encodings.
fn wire(m: &PrekeyServerMessage) -> PrekeyServerMessage {
    let text = encode_prekey(&m.encode());
    match classify_prekey(&text).unwrap() {
        IncomingPrekey::Encoded(bin) => PrekeyServerMessage::decode(&bin).unwrap(),
        IncomingPrekey::Fragment(_) => unreachable!(),
    }
}

fn dake1(m: Dake1) -> Dake1 {
    match wire(&PrekeyServerMessage::Dake1(m)) {
        PrekeyServerMessage::Dake1(m) => m,
        _ => unreachable!(),
    }
}

fn dake2(m: Dake2) -> Dake2 {
    match wire(&PrekeyServerMessage::Dake2(m)) {
        PrekeyServerMessage::Dake2(m) => m,
        _ => unreachable!(),
    }
}

fn dake3(m: Dake3) -> Dake3 {
    match wire(&PrekeyServerMessage::Dake3(m)) {
        PrekeyServerMessage::Dake3(m) => m,
        _ => unreachable!(),
    }
}

struct User {
    long_term: KeyPair,
    profile: ClientProfile,
    store: PrekeyStore,
    client: PrekeyClient,
}

fn user(rng: &mut StdRng, identity: &[u8], tag: u32, server: &PrekeyServer) -> User {
    let long_term = KeyPair::generate(rng);
    let forging = generate_forging_point(rng);
    let tag = InstanceTag(tag);
    let profile = ClientProfile::build_and_sign(tag, &long_term, &forging, b"4", NOW + WEEK);
    let client = PrekeyClient::new(
        identity.to_vec(),
        long_term.clone(),
        profile.clone(),
        SERVER_ID.to_vec(),
        server.fingerprint(),
    )
    .unwrap();
    User {
        long_term,
        profile,
        store: PrekeyStore::new(tag),
        client,
    }
}

fn setup(seed: u64) -> (StdRng, PrekeyServer, MemoryStorage, User) {
    let mut rng = StdRng::seed_from_u64(seed);
    let server = PrekeyServer::new(SERVER_ID.to_vec(), KeyPair::generate(&mut rng));
    let alice = user(&mut rng, ALICE, 0x0100_0001, &server);
    (rng, server, MemoryStorage::new(), alice)
}

/// Runs DAKE-1 and DAKE-2; returns the server session and the client's DAKE-3.
fn handshake(
    rng: &mut StdRng,
    server: &PrekeyServer,
    u: &mut User,
    identity: &[u8],
    first: Dake1,
) -> (ServerSession, Dake3) {
    let (session, d2) = server
        .receive_dake1(rng, identity, &dake1(first), NOW)
        .unwrap();
    let d3 = u.client.receive_dake2(rng, &dake2(d2)).unwrap();
    (session, dake3(d3))
}

/// Completes a DAKE-3 at the server against `storage`; returns the server's reply.
fn serve(
    server: &PrekeyServer,
    storage: &mut MemoryStorage,
    session: ServerSession,
    d3: &Dake3,
) -> (PrekeyServerMessage, Option<ServerError>) {
    match server.receive_dake3(session, d3, NOW).unwrap() {
        Dake3Outcome::Publication(p) => match storage.store(p.request()) {
            Ok(_) => (PrekeyServerMessage::Success(p.stored()), None),
            Err(_) => (PrekeyServerMessage::Failure(p.failed()), None),
        },
        Dake3Outcome::StorageStatus(s) => {
            let n = storage.stored_count(s.publisher(), s.instance_tag());
            (PrekeyServerMessage::StorageStatus(s.respond(n)), None)
        }
        Dake3Outcome::Rejected { reply, reason } => {
            (PrekeyServerMessage::Failure(reply), Some(reason))
        }
    }
}

fn publish_all(
    rng: &mut StdRng,
    server: &PrekeyServer,
    storage: &mut MemoryStorage,
    u: &mut User,
    n: usize,
) -> ServerReply {
    let ids: Vec<u32> = u
        .store
        .generate_prekey_messages(rng, n, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let lt = u.long_term.clone();
    if u.store.current_shared_prekey().is_none() {
        u.store.new_prekey_profile(rng, &lt, NOW + WEEK);
    }
    let items = u
        .store
        .publish_items(&ids, true)
        .unwrap()
        .with_client_profile(u.profile.clone());
    let d1 = u.client.publish(rng, items).unwrap();
    let (session, d3) = handshake(rng, server, u, ALICE, d1);
    let (reply, reason) = serve(server, storage, session, &d3);
    assert_eq!(reason, None);
    u.client.receive_reply(&wire(&reply)).unwrap()
}

fn storage_status(
    rng: &mut StdRng,
    server: &PrekeyServer,
    storage: &mut MemoryStorage,
    u: &mut User,
) -> ServerReply {
    let d1 = u.client.request_storage_status(rng).unwrap();
    let (session, d3) = handshake(rng, server, u, ALICE, d1);
    let (reply, _) = serve(server, storage, session, &d3);
    u.client.receive_reply(&wire(&reply)).unwrap()
}

#[test]
fn publish_then_storage_status() {
    let (mut rng, server, mut storage, mut alice) = setup(1);
    let reply = publish_all(&mut rng, &server, &mut storage, &mut alice, 10);
    let ServerReply::Published {
        prekey_ids,
        client_profile,
        prekey_profile,
    } = reply
    else {
        panic!("{reply:?}")
    };
    assert_eq!(prekey_ids.len(), 10);
    assert!(client_profile && prekey_profile);
    assert!(!alice.client.is_awaiting_reply() && !alice.client.is_in_dake());
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 10);
    assert_eq!(
        storage_status(&mut rng, &server, &mut storage, &mut alice),
        ServerReply::StorageStatus { stored: 10 }
    );
    // Publishing only prekey messages later adds to the stock.
    let ids: Vec<u32> = alice
        .store
        .generate_prekey_messages(&mut rng, 3, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let items = alice.store.publish_items(&ids, false).unwrap();
    let d1 = alice.client.publish(&mut rng, items).unwrap();
    let (session, d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
    let (reply, _) = serve(&server, &mut storage, session, &d3);
    assert_eq!(
        alice.client.receive_reply(&reply).unwrap(),
        ServerReply::Published {
            prekey_ids: ids,
            client_profile: false,
            prekey_profile: false
        }
    );
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 13);
}

#[test]
fn proofs_verify_for_1_2_and_100_prekey_messages() {
    for (seed, n) in [(2u64, 1usize), (3, 2), (4, 100)] {
        let (mut rng, server, mut storage, mut alice) = setup(seed);
        let reply = publish_all(&mut rng, &server, &mut storage, &mut alice, n);
        assert!(
            matches!(&reply, ServerReply::Published { prekey_ids, .. } if prekey_ids.len() == n),
            "{reply:?}"
        );
        assert_eq!(
            storage.stored_count(ALICE, alice.store.owner_tag()),
            n as u32
        );
    }
}

#[test]
fn large_publication_survives_fragmentation() {
    let (mut rng, server, _, mut alice) = setup(5);
    let ids: Vec<u32> = alice
        .store
        .generate_prekey_messages(&mut rng, 30, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let items = alice.store.publish_items(&ids, false).unwrap();
    let d1 = alice.client.publish(&mut rng, items).unwrap();
    let (session, d2) = server.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    let d3 = alice.client.receive_dake2(&mut rng, &d2).unwrap();
    let text = encode_prekey(&d3.encode());
    let tag = alice.client.instance_tag();
    let frags = fragment(&text, 1000, 77, tag, InstanceTag(0), FragmentKind::Prekey).unwrap();
    assert!(frags.len() > 10);
    let mut re = Reassembler::new(FragmentKind::Prekey);
    let mut whole = None;
    for f in frags.iter().rev() {
        whole = re.push(f, InstanceTag(0), 0).unwrap();
    }
    let whole = whole.unwrap();
    let IncomingPrekey::Encoded(bin) = classify_prekey(&whole).unwrap() else {
        panic!()
    };
    let d3b = Dake3::decode(&bin).unwrap();
    assert_eq!(d3b, d3);
    assert!(matches!(
        server.receive_dake3(session, &d3b, NOW).unwrap(),
        Dake3Outcome::Publication(_)
    ));
}

#[test]
fn retrieval_validates_and_consumes_one_prekey_per_instance() {
    let (mut rng, server, mut storage, mut alice) = setup(6);
    publish_all(&mut rng, &server, &mut storage, &mut alice, 2);
    // A second device of Alice (another instance tag, another long-term key).
    let mut alice2 = user(&mut rng, ALICE, 0x0100_0002, &server);
    publish_all(&mut rng, &server, &mut storage, &mut alice2, 1);
    let mut bob = user(&mut rng, BOB, 0x0200_0000, &server);

    let q = bob.client.ensemble_query(ALICE, b"4");
    let q = match wire(&PrekeyServerMessage::EnsembleQuery(q)) {
        PrekeyServerMessage::EnsembleQuery(q) => q,
        _ => unreachable!(),
    };
    let QueryOutcome::Lookup(req) = server.receive_query(&q) else {
        panic!()
    };
    assert_eq!(req.receiver_tag, bob.client.instance_tag());
    let answer = req
        .clone()
        .respond(storage.take_ensembles(&req.identity, NOW));
    let Retrieved::Ensembles {
        identity,
        ensembles,
    } = bob.client.receive_ensembles(&wire(&answer), NOW).unwrap()
    else {
        panic!()
    };
    assert_eq!(identity, ALICE);
    assert!(ensembles.discarded.is_empty());
    assert_eq!(ensembles.chosen.len(), 2);
    for e in &ensembles.chosen {
        let owner = if e.owner_tag() == alice.store.owner_tag() {
            &alice.store
        } else {
            &alice2.store
        };
        assert!(owner.get(e.prekey_message().id).is_some());
        assert_eq!(
            e.prekey_profile(),
            owner.current_shared_prekey().unwrap().profile()
        );
    }
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 1);
    assert_eq!(storage.stored_count(ALICE, alice2.store.owner_tag()), 0);

    // The same answer again is unsolicited now.
    assert_eq!(
        bob.client.receive_ensembles(&answer, NOW),
        Err(PrekeyError::UnsolicitedRetrieval)
    );

    // Next query: only Alice's first device has a prekey left; then none.
    bob.client.ensemble_query(ALICE, b"45");
    let QueryOutcome::Lookup(req) = server.receive_query(&q) else {
        panic!()
    };
    let answer = req.clone().respond(storage.take_ensembles(ALICE, NOW));
    let Ok(Retrieved::Ensembles { ensembles, .. }) = bob.client.receive_ensembles(&answer, NOW)
    else {
        panic!()
    };
    assert_eq!(ensembles.chosen.len(), 1);
    bob.client.ensemble_query(ALICE, b"4");
    let answer = req.respond(storage.take_ensembles(ALICE, NOW));
    assert!(matches!(answer, PrekeyServerMessage::NoPrekeyEnsembles(_)));
    let Ok(ClientEvent::Retrieved(Retrieved::NoEnsembles { message, .. })) =
        bob.client.receive(&mut rng, &wire(&answer), NOW)
    else {
        panic!()
    };
    assert_eq!(message, b"No Prekey Messages available for this identity");
}

#[test]
fn retrieval_rejects_wrong_tag_and_expired_ensembles() {
    let (mut rng, server, mut storage, mut alice) = setup(7);
    publish_all(&mut rng, &server, &mut storage, &mut alice, 2);
    let mut bob = user(&mut rng, BOB, 0x0200_0000, &server);
    let q = bob.client.ensemble_query(ALICE, b"4");
    let QueryOutcome::Lookup(mut req) = server.receive_query(&q) else {
        panic!()
    };
    // Addressed to another instance: rejected, query still outstanding.
    req.receiver_tag = InstanceTag(0x0300_0000);
    let wrong = req.clone().respond(storage.take_ensembles(ALICE, NOW));
    assert_eq!(
        bob.client.receive_ensembles(&wrong, NOW),
        Err(PrekeyError::InstanceTagMismatch {
            expected: bob.client.instance_tag(),
            found: InstanceTag(0x0300_0000)
        })
    );
    // Validated at a time after the profiles expired: everything discarded.
    req.receiver_tag = bob.client.instance_tag();
    let late = req.respond(storage.take_ensembles(ALICE, NOW));
    let Ok(Retrieved::Ensembles { ensembles, .. }) =
        bob.client.receive_ensembles(&late, NOW + WEEK)
    else {
        panic!()
    };
    assert!(ensembles.chosen.is_empty());
    assert_eq!(ensembles.discarded.len(), 1);
    // A query without version 4 is answered with No Prekey Ensembles right away.
    let q = bob.client.ensemble_query(ALICE, b"5");
    assert!(matches!(server.receive_query(&q), QueryOutcome::Reply(_)));
}

#[test]
fn tampered_publication_mac_is_rejected_and_nothing_stored() {
    let (mut rng, server, mut storage, mut alice) = setup(8);
    let ids: Vec<u32> = alice
        .store
        .generate_prekey_messages(&mut rng, 2, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let items = alice.store.publish_items(&ids, false).unwrap();
    let d1 = alice.client.publish(&mut rng, items).unwrap();
    let (session, mut d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
    let last = d3.message.len() - 1;
    d3.message[last] ^= 1;
    let (reply, reason) = serve(&server, &mut storage, session, &d3);
    assert_eq!(reason, Some(ServerError::BadMac));
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 0);
    // The client verifies the Failure's MAC and reports which prekeys were not published.
    assert_eq!(
        alice.client.receive_reply(&reply).unwrap(),
        ServerReply::Failed { prekey_ids: ids }
    );
}

#[test]
fn tampered_proofs_counts_and_flags_are_rejected_and_nothing_stored() {
    // Each edit of the enclosed publication: (description, edit).
    type Edit = fn(&mut Vec<u8>);
    let edits: [(&str, Edit); 5] = [
        ("ECDH proof c", |m| {
            let at = m.len() - 64 - (64 + 4 + 384) - (64 + 57) + 3;
            m[at] ^= 1;
        }),
        ("DH proof v", |m| {
            let at = m.len() - 64 - 10;
            m[at] ^= 1;
        }),
        ("N (count)", |m| m[3] = 3),
        ("K = 2", |m| {
            // K follows the N prekey messages; find it by re-encoding offsets.
            let pm_len = (m.len() - 3 - 1 - 1 - 1 - (64 + 57) - (64 + 4 + 384) - 64) / 2;
            m[4 + 2 * pm_len] = 2;
        }),
        ("J = 1 without profile", |m| {
            let pm_len = (m.len() - 3 - 1 - 1 - 1 - (64 + 57) - (64 + 4 + 384) - 64) / 2;
            m[5 + 2 * pm_len] = 1;
        }),
    ];
    let mut ran = 0;
    for (i, (what, edit)) in edits.iter().enumerate() {
        let (mut rng, server, mut storage, mut alice) = setup(20 + i as u64);
        let ids: Vec<u32> = alice
            .store
            .generate_prekey_messages(&mut rng, 2, NOW)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        let items = alice.store.publish_items(&ids, false).unwrap();
        let d1 = alice.client.publish(&mut rng, items).unwrap();
        let (session, mut d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
        // Each B and the DH proof's V are 384 bytes unless their top byte is zero; skip
        // the rare shorter layout so the fixed offsets above hold.
        assert!(matches!(d3.inner().unwrap(), Dake3Inner::Publication(_)));
        if d3.message.len() != 4 + 2 * (3 + 4 + 4 + 57 + 4 + 384) + 2 + 121 + 452 + 64 {
            continue;
        }
        edit(&mut d3.message);
        ran += 1;
        let (reply, reason) = serve(&server, &mut storage, session, &d3);
        assert!(
            matches!(
                reason,
                Some(ServerError::BadMac) | Some(ServerError::Malformed(_))
            ),
            "{what}: {reason:?}"
        );
        assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 0);
        assert!(matches!(
            alice.client.receive_reply(&reply).unwrap(),
            ServerReply::Failed { .. }
        ));
    }
    assert!(ran >= 4, "only {ran} edits ran");
}

#[test]
fn forged_replies_are_ignored_and_the_genuine_one_still_accepted() {
    let (mut rng, server, mut storage, mut alice) = setup(9);
    let d1 = alice.client.request_storage_status(&mut rng).unwrap();
    let (session, d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
    let (reply, _) = serve(&server, &mut storage, session, &d3);
    let PrekeyServerMessage::StorageStatus(genuine) = reply else {
        panic!()
    };
    let mut forged = genuine.clone();
    forged.stored_prekey_messages = 1000;
    assert_eq!(
        alice
            .client
            .receive_reply(&PrekeyServerMessage::StorageStatus(forged)),
        Err(PrekeyError::Crypto(CryptoError::BadMac))
    );
    let mut other_tag = genuine.clone();
    other_tag.receiver_tag = InstanceTag(0x999);
    assert!(matches!(
        alice
            .client
            .receive_reply(&PrekeyServerMessage::StorageStatus(other_tag)),
        Err(PrekeyError::InstanceTagMismatch { .. })
    ));
    // A Success (random MAC) in reply to a storage request does not fit.
    let success = otr4::hazmat::prekey::messages::Success {
        receiver_tag: alice.client.instance_tag(),
        mac: [0; 64],
    };
    assert_eq!(
        alice
            .client
            .receive_reply(&PrekeyServerMessage::Success(success)),
        Err(PrekeyError::UnexpectedMessage)
    );
    assert!(alice.client.is_awaiting_reply());
    assert_eq!(
        alice
            .client
            .receive_reply(&PrekeyServerMessage::StorageStatus(genuine.clone())),
        Ok(ServerReply::StorageStatus { stored: 0 })
    );
    // Once answered, a replay is unexpected.
    assert_eq!(
        alice
            .client
            .receive_reply(&PrekeyServerMessage::StorageStatus(genuine)),
        Err(PrekeyError::UnexpectedMessage)
    );
}

#[test]
fn client_rejects_wrong_server_and_bad_dake2() {
    let (mut rng, server, _, mut alice) = setup(10);
    // A server with another key: fingerprint mismatch.
    let impostor = PrekeyServer::new(SERVER_ID.to_vec(), KeyPair::generate(&mut rng));
    let d1 = alice.client.request_storage_status(&mut rng).unwrap();
    let (_, d2) = impostor.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    assert_eq!(
        alice.client.receive_dake2(&mut rng, &d2),
        Err(PrekeyError::ServerFingerprintMismatch)
    );
    // Right key, but the client expects another server identity.
    let mut c2 = PrekeyClient::new(
        ALICE.to_vec(),
        alice.long_term.clone(),
        alice.profile.clone(),
        b"other.example.org".to_vec(),
        server.fingerprint(),
    )
    .unwrap();
    let d1b = c2.request_storage_status(&mut rng).unwrap();
    let (_, d2b) = server.receive_dake1(&mut rng, ALICE, &d1b, NOW).unwrap();
    assert_eq!(
        c2.receive_dake2(&mut rng, &d2b),
        Err(PrekeyError::ServerIdentityMismatch)
    );
    // Genuine server, but wrong receiver tag / tampered S / other publisher identity in phi.
    let (_, d2) = server.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    let mut bad = d2.clone();
    bad.receiver_tag = InstanceTag(0x777);
    assert!(matches!(
        alice.client.receive_dake2(&mut rng, &bad),
        Err(PrekeyError::InstanceTagMismatch { .. })
    ));
    let mut bad = d2.clone();
    bad.s = *KeyPair::generate(&mut rng).public();
    assert_eq!(
        alice.client.receive_dake2(&mut rng, &bad),
        Err(PrekeyError::Crypto(CryptoError::BadRingSignature))
    );
    let (_, d2_mallory) = server
        .receive_dake1(&mut rng, b"mallory@example.org", &d1, NOW)
        .unwrap();
    assert_eq!(
        alice.client.receive_dake2(&mut rng, &d2_mallory),
        Err(PrekeyError::Crypto(CryptoError::BadRingSignature))
    );
    // All of that left the DAKE in progress: the genuine DAKE-2 still works.
    assert!(alice.client.is_in_dake());
    assert!(alice.client.receive_dake2(&mut rng, &d2).is_ok());
    // A DAKE-2 outside IN_DAKE is ignored.
    assert_eq!(
        alice.client.receive_dake2(&mut rng, &d2),
        Err(PrekeyError::UnexpectedMessage)
    );
}

#[test]
fn server_rejects_bad_dake3_without_answer() {
    let (mut rng, server, _, mut alice) = setup(11);
    let d1 = alice.client.request_storage_status(&mut rng).unwrap();
    let (session, d2) = server.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    let d3 = alice.client.receive_dake2(&mut rng, &d2).unwrap();

    // Expired session.
    let (s2, _) = server.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    assert_eq!(
        server.receive_dake3(s2, &d3, NOW + 300).err(),
        Some(ServerError::SessionExpired)
    );
    // Wrong sender tag.
    let (s3, _) = server.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    let mut bad = d3.clone();
    bad.sender_tag = InstanceTag(0x0100_0009);
    assert!(matches!(
        server.receive_dake3(s3, &bad, NOW),
        Err(ServerError::InstanceTagMismatch { .. })
    ));
    // A DAKE-3 made for another session (different S): the ring signature fails.
    let (s4, _) = server.receive_dake1(&mut rng, ALICE, &d1, NOW).unwrap();
    assert_eq!(
        server.receive_dake3(s4, &d3, NOW).err(),
        Some(ServerError::Crypto(CryptoError::BadRingSignature))
    );
    // Unknown enclosed message type / version: aborted without answer. The enclosed
    // message is not covered by sigma, so a fresh genuine DAKE-3 carries the edit.
    for (v, t) in [(4u16, 0x0Bu8), (5, 0x09)] {
        let mut bad = d3.clone();
        bad.message[0..2].copy_from_slice(&v.to_be_bytes());
        bad.message[2] = t;
        let mut c = PrekeyClient::new(
            ALICE.to_vec(),
            alice.long_term.clone(),
            alice.profile.clone(),
            SERVER_ID.to_vec(),
            server.fingerprint(),
        )
        .unwrap();
        let d1c = c.request_storage_status(&mut rng).unwrap();
        let (sc, d2c) = server.receive_dake1(&mut rng, ALICE, &d1c, NOW).unwrap();
        let mut d3c = c.receive_dake2(&mut rng, &d2c).unwrap();
        d3c.message = bad.message.clone();
        let expect = if v == 4 {
            DecodeError::BadMessageType(t)
        } else {
            DecodeError::BadVersion(v)
        };
        assert_eq!(
            server.receive_dake3(sc, &d3c, NOW).err(),
            Some(ServerError::UnknownInnerMessage(expect))
        );
    }
    // The genuine DAKE-3 with its own session passes.
    assert!(matches!(
        server.receive_dake3(session, &d3, NOW).unwrap(),
        Dake3Outcome::StorageStatus(_)
    ));
}

#[test]
fn storage_request_with_bad_mac_gets_failure() {
    let (mut rng, server, mut storage, mut alice) = setup(12);
    let d1 = alice.client.request_storage_status(&mut rng).unwrap();
    let (session, mut d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
    d3.message = StorageInfoRequest { mac: [1; 64] }.encode();
    let (reply, reason) = serve(&server, &mut storage, session, &d3);
    assert_eq!(reason, Some(ServerError::BadMac));
    assert_eq!(
        alice.client.receive_reply(&reply).unwrap(),
        ServerReply::Failed { prekey_ids: vec![] }
    );
}

#[test]
fn dake1_with_invalid_profile_is_rejected() {
    let (mut rng, server, _, mut alice) = setup(13);
    let mut d1 = alice.client.request_storage_status(&mut rng).unwrap();
    assert!(matches!(
        server.receive_dake1(&mut rng, ALICE, &d1, NOW + WEEK),
        Err(ServerError::InvalidDakeProfile(_))
    ));
    d1.sender_tag = InstanceTag(0x0100_0005);
    assert!(matches!(
        server.receive_dake1(&mut rng, ALICE, &d1, NOW),
        Err(ServerError::InvalidDakeProfile(_))
    ));
}

#[test]
fn storage_full_answers_failure_and_stores_nothing() {
    let (mut rng, server, _, mut alice) = setup(14);
    let mut storage = MemoryStorage::new().with_max_prekeys_per_instance(3);
    let reply = publish_all(&mut rng, &server, &mut storage, &mut alice, 4);
    assert!(matches!(reply, ServerReply::Failed { ref prekey_ids } if prekey_ids.len() == 4));
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 0);
    // The failed prekeys' secrets can now be dropped from the store.
    if let ServerReply::Failed { prekey_ids } = reply {
        for id in prekey_ids {
            assert!(alice.store.remove(id).is_some());
        }
    }
    assert!(alice.store.is_empty());
}

#[test]
fn refill_cycle_tops_up_below_the_watermark() {
    let (mut rng, server, mut storage, mut alice) = setup(15);
    let policy = RefillPolicy {
        batch: 6,
        low_watermark: 3,
        ..RefillPolicy::default()
    };
    let ServerReply::StorageStatus { stored } =
        storage_status(&mut rng, &server, &mut storage, &mut alice)
    else {
        panic!()
    };
    let lt = alice.long_term.clone();
    alice.store.new_prekey_profile(&mut rng, &lt, NOW + WEEK);
    let pp = alice.store.current_shared_prekey().unwrap().clone();
    let items = policy
        .refill(&mut rng, &mut alice.store, stored, NOW)
        .unwrap()
        .unwrap()
        .with_client_profile(alice.profile.clone())
        .with_prekey_profile(pp.profile().clone(), pp.key().clone());
    let d1 = alice.client.publish(&mut rng, items).unwrap();
    let (session, d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
    let (reply, _) = serve(&server, &mut storage, session, &d3);
    alice.client.receive_reply(&reply).unwrap();
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 6);
    // Four retrievals later, 2 < 3 remain: top up by 4 to get back to 6.
    for _ in 0..4 {
        assert_eq!(storage.take_ensembles(ALICE, NOW).len(), 1);
    }
    let ServerReply::StorageStatus { stored } =
        storage_status(&mut rng, &server, &mut storage, &mut alice)
    else {
        panic!()
    };
    assert_eq!(stored, 2);
    let items = policy
        .refill(&mut rng, &mut alice.store, stored, NOW)
        .unwrap()
        .unwrap();
    assert_eq!(items.prekey_ids().len(), 4);
    let d1 = alice.client.publish(&mut rng, items).unwrap();
    let (session, d3) = handshake(&mut rng, &server, &mut alice, ALICE, d1);
    let (reply, _) = serve(&server, &mut storage, session, &d3);
    alice.client.receive_reply(&reply).unwrap();
    assert_eq!(storage.stored_count(ALICE, alice.store.owner_tag()), 6);
}

#[test]
fn client_refuses_inconsistent_publications() {
    let (mut rng, _server, _, mut alice) = setup(16);
    let mut other = PrekeyStore::new(InstanceTag(0x0100_0099));
    let ids: Vec<u32> = other
        .generate_prekey_messages(&mut rng, 1, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let items = other.publish_items(&ids, false).unwrap();
    assert!(matches!(
        alice.client.publish(&mut rng, items),
        Err(PrekeyError::BadRequest(_))
    ));
    // A Client Profile for another key.
    let k = KeyPair::generate(&mut rng);
    let f = generate_forging_point(&mut rng);
    let cp = ClientProfile::build_and_sign(alice.client.instance_tag(), &k, &f, b"4", NOW + WEEK);
    assert!(matches!(
        alice
            .client
            .publish(&mut rng, PublishItems::new().with_client_profile(cp)),
        Err(PrekeyError::BadRequest(_))
    ));
    assert!(!alice.client.is_in_dake());
    // A client whose profile is not for its long-term key cannot be built.
    assert!(matches!(
        PrekeyClient::new(
            ALICE.to_vec(),
            alice.long_term.clone(),
            ClientProfile::build_and_sign(InstanceTag(0x100), &k, &f, b"4", NOW + WEEK),
            SERVER_ID.to_vec(),
            Fingerprint::prekey_server(&Ed448PublicKey(*k.public())),
        ),
        Err(PrekeyError::BadRequest(_))
    ));
}
