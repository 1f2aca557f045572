//! The non-interactive DAKE end to end (otrv4.md §"Non-Interactive DAKE Overview"): Bob
//! publishes through the prekey server, Alice retrieves and validates an ensemble, sends a
//! Non-Interactive-Auth message and a data message right after; Bob verifies, both agree on
//! `K` and the SSID and the ratchets talk. Forged messages never burn Bob's prekey.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::InstanceTag;
use otr4::NonInteractiveError;
use otr4::PrekeyStore;
use otr4::ProfileError;
use otr4::ValidatedEnsemble;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::generate_forging_point;
use otr4::hazmat::dake::PhiPrime;
use otr4::hazmat::dake::non_interactive::{
    NonInteractiveRole, receive_non_interactive_auth, send_non_interactive_auth,
};
use otr4::hazmat::prekey::client::{Retrieved, ServerReply};
use otr4::hazmat::prekey::memory::MemoryStorage;
use otr4::hazmat::prekey::server::{Dake3Outcome, QueryOutcome};
use otr4::hazmat::prekey::{PrekeyClient, PrekeyServer};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::messages::PrekeyEnsemble;
use otr4::hazmat::wire::messages::{DataMessage, NonInteractiveAuth};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const WEEK: i64 = 7 * 86_400;
const ALICE_JID: &str = "alice@example.org";
const BOB_JID: &str = "bob@example.org";
const SERVER_ID: &[u8] = b"prekey.example.org";

struct Party {
    long_term: KeyPair,
    profile: ClientProfile,
    store: PrekeyStore,
}

fn party(rng: &mut StdRng, tag: u32, expiration: i64) -> Party {
    let long_term = KeyPair::generate(rng);
    let forging = generate_forging_point(rng);
    let tag = InstanceTag(tag);
    let profile = ClientProfile::build_and_sign(tag, &long_term, &forging, b"4", expiration);
    Party {
        long_term,
        profile,
        store: PrekeyStore::new(tag),
    }
}

fn phi_prime() -> PhiPrime {
    PhiPrime::from_strings(&[ALICE_JID, BOB_JID])
}

/// Bob publishes `n` prekeys (with profiles) through the server; Alice retrieves one
/// ensemble and validates it. Returns the ensemble.
fn via_server(rng: &mut StdRng, bob: &mut Party, alice: &Party, n: usize) -> ValidatedEnsemble {
    let server = PrekeyServer::new(SERVER_ID.to_vec(), KeyPair::generate(rng));
    let mut storage = MemoryStorage::new();
    let mut bob_client = PrekeyClient::new(
        BOB_JID.as_bytes().to_vec(),
        bob.long_term.clone(),
        bob.profile.clone(),
        SERVER_ID.to_vec(),
        server.fingerprint(),
    )
    .unwrap();
    let ids: Vec<u32> = bob
        .store
        .generate_prekey_messages(rng, n, NOW)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    let lt = bob.long_term.clone();
    bob.store.new_prekey_profile(rng, &lt, NOW + WEEK);
    let items = bob
        .store
        .publish_items(&ids, true)
        .unwrap()
        .with_client_profile(bob.profile.clone());
    let d1 = bob_client.publish(rng, items).unwrap();
    let (session, d2) = server
        .receive_dake1(rng, BOB_JID.as_bytes(), &d1, NOW)
        .unwrap();
    let d3 = bob_client.receive_dake2(rng, &d2).unwrap();
    let Dake3Outcome::Publication(p) = server.receive_dake3(session, &d3, NOW).unwrap() else {
        panic!()
    };
    storage.store(p.request()).unwrap();
    let reply = otr4::PrekeyServerMessage::Success(p.stored());
    assert!(matches!(
        bob_client.receive_reply(&reply).unwrap(),
        ServerReply::Published { .. }
    ));

    let mut alice_client = PrekeyClient::new(
        ALICE_JID.as_bytes().to_vec(),
        alice.long_term.clone(),
        alice.profile.clone(),
        SERVER_ID.to_vec(),
        server.fingerprint(),
    )
    .unwrap();
    let q = alice_client.ensemble_query(BOB_JID.as_bytes(), b"4");
    let QueryOutcome::Lookup(req) = server.receive_query(&q) else {
        panic!()
    };
    let answer = req.respond(storage.take_ensembles(BOB_JID.as_bytes(), NOW));
    let Retrieved::Ensembles { mut ensembles, .. } =
        alice_client.receive_ensembles(&answer, NOW).unwrap()
    else {
        panic!()
    };
    assert_eq!(ensembles.chosen.len(), 1);
    ensembles.chosen.remove(0)
}

/// Bob's ensemble built locally (no server), validated at NOW.
fn local_ensemble(rng: &mut StdRng, bob: &mut Party) -> ValidatedEnsemble {
    let lt = bob.long_term.clone();
    if bob.store.current_shared_prekey().is_none() {
        bob.store.new_prekey_profile(rng, &lt, NOW + WEEK);
    }
    let pm = bob
        .store
        .generate_prekey_messages(rng, 1, NOW)
        .unwrap()
        .remove(0);
    let e = PrekeyEnsemble {
        client_profile: bob.profile.clone(),
        prekey_profile: bob.store.current_shared_prekey().unwrap().profile().clone(),
        prekey_message: pm,
    };
    ValidatedEnsemble::validate(&e, NOW).unwrap()
}

fn wire(m: &NonInteractiveAuth) -> NonInteractiveAuth {
    NonInteractiveAuth::decode(&m.encode()).unwrap()
}

#[test]
fn end_to_end_through_the_prekey_server_agrees_and_the_ratchets_talk() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut bob = party(&mut rng, 0x0100_0b0b, NOW + WEEK);
    let alice = party(&mut rng, 0x0100_0a0a, NOW + WEEK);
    let ensemble = via_server(&mut rng, &mut bob, &alice, 3);
    let id = ensemble.prekey_message().id;
    assert!(bob.store.get(id).is_some());

    let (nia, a_done) = send_non_interactive_auth(
        &mut rng,
        &ensemble,
        &alice.long_term,
        &alice.profile,
        &phi_prime(),
    )
    .unwrap();
    assert_eq!(nia.receiver_tag, bob.store.owner_tag());
    assert_eq!(nia.prekey_message_id, id);
    assert_eq!(a_done.role(), NonInteractiveRole::Sender);

    // Alice sends a data message right away, on the initial chain.
    let a_tag = a_done.our_tag();
    let b_tag = a_done.their_tag();
    let a_ssid = a_done.ssid();
    let a_k = *a_done.shared_secret().as_bytes();
    let mut a_ratchet = a_done.into_double_ratchet();
    let first = a_ratchet
        .encrypt(a_tag, b_tag, 0, b"hello offline bob", &mut rng)
        .unwrap();

    let b_done = receive_non_interactive_auth(
        &wire(&nia),
        &bob.long_term,
        std::slice::from_ref(&bob.profile),
        &mut bob.store,
        &phi_prime(),
        NOW + 60,
    )
    .unwrap();
    assert_eq!(b_done.role(), NonInteractiveRole::Receiver);
    assert_eq!(b_done.shared_secret().as_bytes(), &a_k);
    assert_eq!(b_done.ssid(), a_ssid);
    assert_eq!(b_done.their_tag(), a_tag);
    assert_eq!(b_done.their_profile().profile(), &alice.profile);
    assert_ne!(
        b_done.role().ssid_bold_half(),
        NonInteractiveRole::Sender.ssid_bold_half()
    );
    // The one-time prekey is used up; the other two remain.
    assert!(bob.store.get(id).is_none());
    assert_eq!(bob.store.len(), 2);

    let mut b_ratchet = b_done.into_double_ratchet();
    let m = DataMessage::decode(&first.message.encode()).unwrap();
    assert_eq!(
        b_ratchet.decrypt(&m).unwrap().plaintext.as_slice(),
        b"hello offline bob"
    );
    let second = a_ratchet
        .encrypt(a_tag, b_tag, 0, b"and again", &mut rng)
        .unwrap();
    assert_eq!(
        b_ratchet
            .decrypt(&second.message)
            .unwrap()
            .plaintext
            .as_slice(),
        b"and again"
    );
    // Bob replies (his first send performs a DH ratchet); Alice reads it and answers.
    let reply = b_ratchet
        .encrypt(b_tag, a_tag, 0, b"hi alice", &mut rng)
        .unwrap();
    assert_eq!(
        a_ratchet
            .decrypt(&reply.message)
            .unwrap()
            .plaintext
            .as_slice(),
        b"hi alice"
    );
    let back = a_ratchet.encrypt(a_tag, b_tag, 0, b"ok", &mut rng).unwrap();
    assert_eq!(
        b_ratchet
            .decrypt(&back.message)
            .unwrap()
            .plaintext
            .as_slice(),
        b"ok"
    );

    // A replay of the Non-Interactive-Auth message finds no prekey.
    assert_eq!(
        receive_non_interactive_auth(
            &nia,
            &bob.long_term,
            std::slice::from_ref(&bob.profile),
            &mut bob.store,
            &phi_prime(),
            NOW + 60,
        )
        .unwrap_err(),
        NonInteractiveError::UnknownPrekey(id)
    );
}

#[test]
fn forged_messages_do_not_burn_the_prekey() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut bob = party(&mut rng, 0x0100_0b0b, NOW + WEEK);
    let alice = party(&mut rng, 0x0100_0a0a, NOW + WEEK);
    let ensemble = local_ensemble(&mut rng, &mut bob);
    let id = ensemble.prekey_message().id;
    let (nia, a_done) = send_non_interactive_auth(
        &mut rng,
        &ensemble,
        &alice.long_term,
        &alice.profile,
        &phi_prime(),
    )
    .unwrap();

    let recv = |store: &mut PrekeyStore, m: &NonInteractiveAuth, phi: &PhiPrime| {
        receive_non_interactive_auth(
            m,
            &bob.long_term,
            std::slice::from_ref(&bob.profile),
            store,
            phi,
            NOW,
        )
    };

    // Tampered Auth MAC: the ring signature holds, the MAC does not.
    let mut forged = nia.clone();
    forged.auth_mac[0] ^= 1;
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::BadAuthMac
    );
    // Tampered sigma, X, A, first keys, or another phi': the ring signature fails.
    let mut forged = nia.clone();
    forged.sigma = {
        let mut s = forged.sigma.clone();
        s.parts.swap(0, 2);
        s
    };
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    let mut forged = nia.clone();
    forged.x = *KeyPair::generate(&mut rng).public();
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    let mut forged = nia.clone();
    forged.our_ecdh_first = *KeyPair::generate(&mut rng).public();
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    let mut forged = nia.clone();
    forged.a = otr4::hazmat::crypto::dh::DhKeyPair::generate(&mut rng)
        .public()
        .clone();
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    assert_eq!(
        recv(
            &mut bob.store,
            &nia,
            &PhiPrime::from_strings(&["mallory@example.org", BOB_JID])
        )
        .unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    // A message made by someone else (Mallory, own valid profile) with Bob's public ensemble
    // but claiming Alice's profile: sigma is by Mallory's key, not in the ring.
    let mallory = party(&mut rng, 0x0100_0a0a, NOW + WEEK);
    let (m_nia, _) = send_non_interactive_auth(
        &mut rng,
        &ensemble,
        &mallory.long_term,
        &mallory.profile,
        &phi_prime(),
    )
    .unwrap();
    let mut forged = m_nia;
    forged.client_profile = alice.profile.clone();
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    // Wrong receiver tag, expired sender profile, unknown prekey id.
    let mut forged = nia.clone();
    forged.receiver_tag = InstanceTag(0x0100_0c0c);
    assert!(matches!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::WrongReceiverTag { .. }
    ));
    assert!(matches!(
        receive_non_interactive_auth(
            &nia,
            &bob.long_term,
            std::slice::from_ref(&bob.profile),
            &mut bob.store,
            &phi_prime(),
            NOW + WEEK,
        )
        .unwrap_err(),
        NonInteractiveError::Profile(ProfileError::Expired { .. })
    ));
    let mut forged = nia.clone();
    forged.prekey_message_id = id.wrapping_add(1);
    assert_eq!(
        recv(&mut bob.store, &forged, &phi_prime()).unwrap_err(),
        NonInteractiveError::UnknownPrekey(id.wrapping_add(1))
    );

    // None of that burnt the prekey: the genuine message still works.
    assert!(bob.store.get(id).is_some());
    let b_done = recv(&mut bob.store, &nia, &phi_prime()).unwrap();
    assert_eq!(b_done.ssid(), a_done.ssid());
    assert!(bob.store.get(id).is_none());
}

#[test]
fn receiver_falls_back_to_older_profiles_and_shared_prekeys() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut bob = party(&mut rng, 0x0100_0b0b, NOW + WEEK);
    let alice = party(&mut rng, 0x0100_0a0a, NOW + WEEK);
    let ensemble = local_ensemble(&mut rng, &mut bob);
    let (nia, a_done) = send_non_interactive_auth(
        &mut rng,
        &ensemble,
        &alice.long_term,
        &alice.profile,
        &phi_prime(),
    )
    .unwrap();
    // Meanwhile Bob renewed both profiles (same long-term key).
    let old_profile = bob.profile.clone();
    let forging = generate_forging_point(&mut rng);
    let new_profile = ClientProfile::build_and_sign(
        bob.store.owner_tag(),
        &bob.long_term,
        &forging,
        b"4",
        NOW + 2 * WEEK,
    );
    let lt = bob.long_term.clone();
    bob.store.new_prekey_profile(&mut rng, &lt, NOW + 2 * WEEK);
    assert_eq!(bob.store.shared_prekeys().len(), 2);

    // Only the new Client Profile: sigma does not verify, the prekey is kept.
    let id = nia.prekey_message_id;
    assert_eq!(
        receive_non_interactive_auth(
            &nia,
            &bob.long_term,
            std::slice::from_ref(&new_profile),
            &mut bob.store,
            &phi_prime(),
            NOW,
        )
        .unwrap_err(),
        NonInteractiveError::BadRingSignature
    );
    assert!(bob.store.get(id).is_some());
    // No usable profile at all.
    assert_eq!(
        receive_non_interactive_auth(&nia, &bob.long_term, &[], &mut bob.store, &phi_prime(), NOW,)
            .unwrap_err(),
        NonInteractiveError::NoClientProfile
    );
    // New and old: the old pair (old Client Profile, old shared prekey) verifies.
    let b_done = receive_non_interactive_auth(
        &nia,
        &bob.long_term,
        &[new_profile, old_profile],
        &mut bob.store,
        &phi_prime(),
        NOW,
    )
    .unwrap();
    assert_eq!(
        b_done.shared_secret().as_bytes(),
        a_done.shared_secret().as_bytes()
    );
}

#[test]
fn receiver_without_shared_prekey_aborts() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut bob = party(&mut rng, 0x0100_0b0b, NOW + WEEK);
    let alice = party(&mut rng, 0x0100_0a0a, NOW + WEEK);
    let ensemble = local_ensemble(&mut rng, &mut bob);
    let (nia, _) = send_non_interactive_auth(
        &mut rng,
        &ensemble,
        &alice.long_term,
        &alice.profile,
        &phi_prime(),
    )
    .unwrap();
    // Bob's shared prekeys expired out of the store.
    assert_eq!(bob.store.expire_shared_prekeys(NOW + 3 * WEEK, 86_400), 1);
    assert_eq!(
        receive_non_interactive_auth(
            &nia,
            &bob.long_term,
            std::slice::from_ref(&bob.profile),
            &mut bob.store,
            &phi_prime(),
            NOW,
        )
        .unwrap_err(),
        NonInteractiveError::NoPrekeyProfile
    );
    assert!(bob.store.get(nia.prekey_message_id).is_some());
}

#[test]
fn sender_rejects_a_profile_for_another_key() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut bob = party(&mut rng, 0x0100_0b0b, NOW + WEEK);
    let alice = party(&mut rng, 0x0100_0a0a, NOW + WEEK);
    let ensemble = local_ensemble(&mut rng, &mut bob);
    let other = KeyPair::generate(&mut rng);
    assert_eq!(
        send_non_interactive_auth(&mut rng, &ensemble, &other, &alice.profile, &phi_prime())
            .unwrap_err(),
        NonInteractiveError::OwnProfileKeyMismatch
    );
}
