//! Unit tests of the double ratchet: spec derivations recomputed independently, ratchet-id
//! and DH bookkeeping, ordering, loss, replays, tampering, limits, MAC-key revealing and
//! persistence.

use super::*;
use crate::crypto::ed448::POINT_LEN;
use crate::crypto::kdf::{Usage, kdf};
use crate::wire::codec::DecodeError;
use crate::wire::messages::FLAG_IGNORE_UNREADABLE;
use crate::wire::tlv::{Tlv, encode_plaintext, parse_plaintext};
use alloc::format;
use alloc::string::String;
use rand::SeedableRng;
use rand::rngs::StdRng;

const A_TAG: InstanceTag = InstanceTag(0x1111_1111);
const B_TAG: InstanceTag = InstanceTag(0x2222_2222);

/// The DAKE's outputs for both parties.
struct DakeOut {
    k: [u8; 64],
    a_ecdh: KeyPair,
    a_dh: DhKeyPair,
    b_ecdh: KeyPair,
    b_dh: DhKeyPair,
}

fn dake(rng: &mut StdRng) -> DakeOut {
    let mut k = [0u8; 64];
    rand::Rng::fill_bytes(rng, &mut k);
    DakeOut {
        k,
        a_ecdh: KeyPair::generate(rng),
        a_dh: DhKeyPair::generate(rng),
        b_ecdh: KeyPair::generate(rng),
        b_dh: DhKeyPair::generate(rng),
    }
}

/// (alice, bob): Alice receives Auth-I, Bob sends it.
fn interactive(rng: &mut StdRng) -> (DoubleRatchet, DoubleRatchet) {
    let d = dake(rng);
    let alice = DoubleRatchet::init_after_receiving_auth_i(
        &d.k,
        d.a_ecdh.clone(),
        d.a_dh.clone(),
        *d.b_ecdh.public(),
        d.b_dh.public().clone(),
    )
    .unwrap();
    let bob = DoubleRatchet::init_after_sending_auth_i(
        &d.k,
        d.b_ecdh.clone(),
        d.b_dh.clone(),
        *d.a_ecdh.public(),
        d.a_dh.public().clone(),
        rng,
    )
    .unwrap();
    (alice, bob)
}

/// (alice, bob): Alice sends the Non-Interactive-Auth message, Bob receives it.
fn non_interactive(rng: &mut StdRng) -> (DoubleRatchet, DoubleRatchet) {
    let d = dake(rng);
    let brace = [0x5Au8; 32];
    let alice = DoubleRatchet::init_after_sending_non_interactive_auth(
        &d.k,
        &brace,
        d.a_ecdh.clone(),
        d.a_dh.clone(),
        *d.b_ecdh.public(),
        d.b_dh.public().clone(),
    );
    let bob = DoubleRatchet::init_after_receiving_non_interactive_auth(
        &d.k,
        &brace,
        *d.a_ecdh.public(),
        d.a_dh.public().clone(),
    );
    (alice, bob)
}

fn send(r: &mut DoubleRatchet, rng: &mut StdRng, from_alice: bool, text: &str) -> DataMessage {
    let (s, t) = if from_alice {
        (A_TAG, B_TAG)
    } else {
        (B_TAG, A_TAG)
    };
    r.encrypt(s, t, 0, text.as_bytes(), rng).unwrap().message
}

fn recv(r: &mut DoubleRatchet, m: &DataMessage) -> String {
    let d = r.decrypt(m).unwrap();
    String::from_utf8(d.plaintext.to_vec()).unwrap()
}

/// Decrypt must fail with `err` and leave the state byte-for-byte unchanged.
fn reject(r: &mut DoubleRatchet, m: &DataMessage, err: RatchetError) {
    let before = r.export();
    assert_eq!(r.decrypt(m).map(|_| ()), Err(err));
    assert_eq!(r.export().as_slice(), before.as_slice(), "state changed");
}

#[test]
fn interactive_init_matches_the_spec_derivation() {
    let mut rng = StdRng::seed_from_u64(1);
    let d = dake(&mut rng);
    let mut alice = DoubleRatchet::init_after_receiving_auth_i(
        &d.k,
        d.a_ecdh.clone(),
        d.a_dh.clone(),
        *d.b_ecdh.public(),
        d.b_dh.public().clone(),
    )
    .unwrap();
    let mut bob = DoubleRatchet::init_after_sending_auth_i(
        &d.k,
        d.b_ecdh.clone(),
        d.b_dh.clone(),
        *d.a_ecdh.public(),
        d.a_dh.public().clone(),
        &mut rng,
    )
    .unwrap();
    // Independently: prev_root = KDF(0x0B || K); K1 from the first keys; chain = KDF(0x13 ||
    // prev_root || K1).
    let prev_root = kdf::<64>(Usage::FirstRootKey, &[&d.k]);
    let k_ecdh = ecdh(d.a_ecdh.secret(), d.b_ecdh.public()).unwrap();
    let k_dh = d.a_dh.shared_secret(d.b_dh.public());
    let brace = kdf::<32>(Usage::ThirdBraceKey, &[k_dh.k_dh()]);
    let k1 = kdf::<64>(Usage::SharedSecret, &[k_ecdh.as_bytes(), &brace]);
    let chain0 = kdf::<64>(Usage::ChainKey, &[&prev_root, &k1]);
    let root1 = kdf::<64>(Usage::RootKey, &[&prev_root, &k1]);
    assert_eq!(alice.state.i, 0);
    assert_eq!(bob.state.i, 1);
    assert_eq!(bob.state.max_remote_i_seen, None);

    // Alice's first two messages: ratchet id 0 (= i, the exception), j = 0, 1.
    let m0 = alice.encrypt(A_TAG, B_TAG, 0, b"hello", &mut rng).unwrap();
    let m1 = send(&mut alice, &mut rng, true, "second");
    for (m, chain, text) in [
        (&m0.message, chain0, &b"hello"[..]),
        (&m1, kdf::<64>(Usage::NextChainKey, &[&chain0]), b"second"),
    ] {
        let mk_enc = kdf::<64>(Usage::MessageKey, &[&chain]);
        let mk_mac = kdf::<64>(Usage::MacKey, &[&mk_enc]);
        let auth = kdf::<64>(Usage::Authenticator, &[&mk_mac, &m.authenticated_bytes()]);
        assert_eq!(m.mac, auth);
        assert_eq!(chacha::decrypt(&mk_enc, &m.encrypted), text);
        assert_eq!(m.i, 0);
        assert_eq!(m.ecdh, *d.a_ecdh.public());
        assert_eq!(m.dh.as_ref(), Some(d.a_dh.public()));
    }
    assert_eq!((m0.message.j, m1.j), (0, 1));
    assert_eq!(
        m0.extra_symm_key.as_bytes(),
        &kdf::<64>(Usage::ExtraSymmKey, &[&[0xFF], &chain0])
    );

    // Bob's first message: new ECDH and DH keys, ratchet id i - 1 = 0, chain from root1.
    let bm = send(&mut bob, &mut rng, false, "from bob");
    let snd = bob.state.sending.clone().unwrap();
    let b_dh2 = bob.state.our_dh.clone().unwrap();
    assert_ne!(bm.ecdh, *d.b_ecdh.public());
    assert_eq!(bm.ecdh, *snd.our_ecdh.public());
    assert_eq!(bm.dh.as_ref(), Some(b_dh2.public()));
    assert_ne!(b_dh2.public(), d.b_dh.public());
    assert_eq!((bm.i, bm.j, bm.pn), (0, 0, 0));
    let k_ecdh2 = ecdh(snd.our_ecdh.secret(), d.a_ecdh.public()).unwrap();
    let k_dh2 = b_dh2.shared_secret(d.a_dh.public());
    let brace2 = kdf::<32>(Usage::ThirdBraceKey, &[k_dh2.k_dh()]);
    let k2 = kdf::<64>(Usage::SharedSecret, &[k_ecdh2.as_bytes(), &brace2]);
    let chain_b = kdf::<64>(Usage::ChainKey, &[&root1, &k2]);
    let mk_enc = kdf::<64>(Usage::MessageKey, &[&chain_b]);
    let mk_mac = kdf::<64>(Usage::MacKey, &[&mk_enc]);
    assert_eq!(
        bm.mac,
        kdf::<64>(Usage::Authenticator, &[&mk_mac, &bm.authenticated_bytes()])
    );

    // Both directions decrypt; Alice's receipt is a DH ratchet with id 0.
    assert_eq!(recv(&mut bob, &m1), "second");
    assert_eq!(recv(&mut bob, &m0.message), "hello");
    assert_eq!(recv(&mut alice, &bm), "from bob");
    assert_eq!(alice.state.i, 1);
    assert!(alice.needs_sending_ratchet());
    assert_eq!(alice.state.pn, 2);
    assert_eq!(alice.state.their_dh, *b_dh2.public());
    assert!(alice.state.our_dh.is_none(), "DH secret deleted after use");
    // Alice's reply is a symmetric brace ratchet with id 1, pn = 2.
    let reply = send(&mut alice, &mut rng, true, "reply");
    assert_eq!((reply.i, reply.j, reply.pn), (1, 0, 2));
    assert!(reply.dh.is_none());
    assert_eq!(recv(&mut bob, &reply), "reply");
}

#[test]
fn non_interactive_init_matches_the_spec_derivation() {
    let mut rng = StdRng::seed_from_u64(2);
    let (mut alice, mut bob) = non_interactive(&mut rng);
    let a_first = *alice.state.sending.as_ref().unwrap().our_ecdh.public();
    let root = *alice.state.root_key;
    assert_eq!(alice.state.i, 1);
    assert_eq!(bob.state.i, 1);
    assert!(bob.needs_sending_ratchet());
    assert_eq!(root, *bob.state.root_key);
    assert_eq!(
        *alice.state.sending.as_ref().unwrap().chain_key,
        *bob.state.receiving.as_ref().unwrap().chain_key
    );
    let m = send(&mut alice, &mut rng, true, "offline hello");
    assert_eq!((m.i, m.j, m.pn), (0, 0, 0));
    assert_eq!(m.ecdh, a_first);
    assert!(m.dh.is_some());
    assert_eq!(recv(&mut bob, &m), "offline hello");
    // Bob's first send is a DH ratchet with id 1: no DH key (brace key hashed forward
    // from the DAKE's brace key).
    let r = send(&mut bob, &mut rng, false, "got it");
    assert_eq!((r.i, r.j, r.pn), (1, 0, 0));
    assert!(r.dh.is_none());
    let expected_brace = kdf::<32>(Usage::BraceKey, &[&[0x5Au8; 32]]);
    assert_eq!(*bob.state.brace_key, expected_brace);
    assert_eq!(recv(&mut alice, &r), "got it");
    assert_eq!(*alice.state.brace_key, expected_brace);
    // Continue through the first DH brace ratchet (id 3, sent by Bob).
    let mut ids = Vec::new();
    for round in 0..4 {
        let a = send(&mut alice, &mut rng, true, "a");
        ids.push((a.i, a.dh.is_some()));
        assert_eq!(recv(&mut bob, &a), "a");
        let b = send(&mut bob, &mut rng, false, "b");
        ids.push((b.i, b.dh.is_some()));
        assert_eq!(recv(&mut alice, &b), "b", "round {round}");
    }
    assert_eq!(
        ids,
        [
            (2, false),
            (3, true),
            (4, false),
            (5, false),
            (6, true),
            (7, false),
            (8, false),
            (9, true)
        ]
    );
}

#[test]
fn ratchet_ids_and_dh_keys_across_many_rotations() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut alice, mut bob) = interactive(&mut rng);
    let mut seen = Vec::new();
    let mut dh_keys = Vec::new();
    // Alice's initial chain, then 12 alternating ratchets, 3 messages each.
    for round in 0..13u32 {
        let alice_turn = round % 2 == 0;
        let mut batch = Vec::new();
        for n in 0..3 {
            let text = format!("r{round} m{n}");
            let m = if alice_turn {
                send(&mut alice, &mut rng, true, &text)
            } else {
                send(&mut bob, &mut rng, false, &text)
            };
            batch.push((m, text));
        }
        let first = &batch[0].0;
        seen.push(first.i);
        for (m, _) in &batch {
            assert_eq!(m.i, first.i);
            assert_eq!(m.dh.is_some(), m.i % 3 == 0, "DH key iff 3rd ratchet");
            assert_eq!(m.ecdh, first.ecdh);
        }
        assert_eq!(first.revealed_mac_keys.is_empty(), round == 0);
        assert!(batch[1].0.revealed_mac_keys.is_empty());
        if let Some(dh) = &first.dh {
            dh_keys.push(dh.clone());
        }
        let rx = if alice_turn { &mut bob } else { &mut alice };
        for (m, text) in &batch {
            assert_eq!(&recv(rx, m), text);
        }
    }
    // Alice C0 = 0 (the Auth-I exception), Bob's first = 0, then one per ratchet.
    assert_eq!(seen, [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    // DH keys: Alice's first, Bob's new one, then at ids 3, 6, 9: all distinct.
    assert_eq!(dh_keys.len(), 5);
    for (x, a) in dh_keys.iter().enumerate() {
        for b in dh_keys.iter().skip(x + 1) {
            assert_ne!(a, b);
        }
    }
    // Both sides agree on the brace key and root key after the last ratchet.
    assert_eq!(*alice.state.brace_key, *bob.state.brace_key);
    assert_eq!(*alice.state.root_key, *bob.state.root_key);
}

#[test]
fn out_of_order_within_and_across_chains_and_loss() {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut alice, mut bob) = interactive(&mut rng);
    let a: Vec<DataMessage> = (0..5)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    // Within a chain: 3, 0, 4 (1 and 2 stored).
    assert_eq!(recv(&mut bob, &a[3]), "a3");
    assert_eq!(bob.stored_keys(), 3);
    assert_eq!(recv(&mut bob, &a[0]), "a0");
    assert_eq!(recv(&mut bob, &a[4]), "a4");
    assert_eq!(bob.stored_keys(), 2);
    // Across chains: Bob replies, Alice ratchets and sends a new chain; Bob reads it before
    // a1 and a2.
    let b0 = send(&mut bob, &mut rng, false, "b0");
    assert_eq!(recv(&mut alice, &b0), "b0");
    let c: Vec<DataMessage> = (0..4)
        .map(|n| send(&mut alice, &mut rng, true, &format!("c{n}")))
        .collect();
    assert_eq!(c[0].pn, 5);
    assert_eq!(recv(&mut bob, &c[2]), "c2");
    assert_eq!(bob.stored_keys(), 4); // a1, a2, c0, c1
    assert_eq!(recv(&mut bob, &a[2]), "a2");
    assert_eq!(recv(&mut bob, &c[0]), "c0");
    assert_eq!(recv(&mut bob, &a[1]), "a1");
    // c1 is lost; c3 arrives.
    assert_eq!(recv(&mut bob, &c[3]), "c3");
    assert_eq!(bob.stored_keys(), 1);
    // The previous chain's tail is stored when the new ratchet's first message is lost too.
    let a_tail = send(&mut alice, &mut rng, true, "c4");
    let b1 = send(&mut bob, &mut rng, false, "b1");
    assert_eq!(recv(&mut alice, &b1), "b1");
    let d0 = send(&mut alice, &mut rng, true, "d0");
    let d1 = send(&mut alice, &mut rng, true, "d1");
    assert_eq!(recv(&mut bob, &d1), "d1");
    assert_eq!(recv(&mut bob, &a_tail), "c4");
    assert_eq!(recv(&mut bob, &d0), "d0");
    assert_eq!(bob.stored_keys(), 1); // c1, still lost
}

#[test]
fn duplicates_and_replays_are_rejected() {
    let mut rng = StdRng::seed_from_u64(5);
    let (mut alice, mut bob) = interactive(&mut rng);
    let a0 = send(&mut alice, &mut rng, true, "a0");
    let a1 = send(&mut alice, &mut rng, true, "a1");
    let a2 = send(&mut alice, &mut rng, true, "a2");
    recv(&mut bob, &a0);
    reject(&mut bob, &a0, RatchetError::Duplicate); // same chain, j < k
    recv(&mut bob, &a2);
    recv(&mut bob, &a1); // from the store
    reject(&mut bob, &a1, RatchetError::Duplicate); // stored key already used
    reject(&mut bob, &a2, RatchetError::Duplicate);
    // After two more ratchets, a replay from the old chain (different ECDH, old id).
    let b0 = send(&mut bob, &mut rng, false, "b0");
    recv(&mut alice, &b0);
    reject(&mut alice, &b0, RatchetError::Duplicate);
    let c0 = send(&mut alice, &mut rng, true, "c0");
    recv(&mut bob, &c0);
    reject(&mut bob, &a0, RatchetError::Duplicate);
    reject(&mut bob, &c0, RatchetError::Duplicate);
    let b1 = send(&mut bob, &mut rng, false, "b1");
    recv(&mut alice, &b1);
    reject(&mut alice, &b0, RatchetError::Duplicate);
    // The genuine conversation goes on.
    let c1 = send(&mut alice, &mut rng, true, "c1");
    assert_eq!(recv(&mut bob, &c1), "c1");
}

/// Every authenticated field of `m`, one at a time, must make decryption fail without
/// changing the state; afterwards the genuine message still decrypts.
fn tamper_all_fields(rx: &mut DoubleRatchet, m: &DataMessage, rng: &mut StdRng, text: &str) {
    let other_point = *KeyPair::generate(rng).public();
    let other_dh = DhKeyPair::generate(rng).public().clone();
    let mut cases: Vec<(&str, DataMessage)> = Vec::new();
    let mut t = m.clone();
    t.flags ^= FLAG_IGNORE_UNREADABLE;
    cases.push(("flags", t));
    let mut t = m.clone();
    t.sender_tag = InstanceTag(t.sender_tag.0 ^ 0x100);
    cases.push(("sender tag", t));
    let mut t = m.clone();
    t.receiver_tag = InstanceTag(t.receiver_tag.0 ^ 0x100);
    cases.push(("receiver tag", t));
    let mut t = m.clone();
    t.pn += 1;
    cases.push(("pn", t));
    let mut t = m.clone();
    t.i ^= 1;
    cases.push(("ratchet id", t));
    let mut t = m.clone();
    t.i = t.i.wrapping_add(3);
    cases.push(("ratchet id + 3", t));
    let mut t = m.clone();
    t.j += 1;
    cases.push(("message id", t));
    let mut t = m.clone();
    t.ecdh = other_point;
    cases.push(("ECDH key", t));
    let mut t = m.clone();
    t.dh = match &m.dh {
        Some(_) => None,
        None => Some(other_dh.clone()),
    };
    cases.push(("DH key presence", t));
    if m.dh.is_some() {
        let mut t = m.clone();
        t.dh = Some(other_dh);
        cases.push(("DH key value", t));
    }
    let mut t = m.clone();
    t.encrypted[0] ^= 1;
    cases.push(("ciphertext", t));
    let mut t = m.clone();
    t.encrypted.push(0);
    cases.push(("ciphertext length", t));
    let mut t = m.clone();
    t.mac[63] ^= 0x80;
    cases.push(("MAC", t));
    for (what, t) in &cases {
        let before = rx.export();
        let res = rx.decrypt(t);
        assert!(res.is_err(), "tampered {what} accepted");
        assert_eq!(
            rx.export().as_slice(),
            before.as_slice(),
            "{what}: state changed"
        );
    }
    // The revealed MAC keys are outside the MAC (otrv4.md §"Data Message Format"):
    // changing them does not affect decryption, so test that on a copy.
    let mut copy = DoubleRatchet::import(&rx.export()).unwrap();
    let mut t = m.clone();
    t.revealed_mac_keys.extend_from_slice(&[7u8; 64]);
    assert_eq!(recv(&mut copy, &t), text);
    assert_eq!(recv(rx, m), text);
}

#[test]
fn tampered_messages_are_rejected_without_state_change() {
    let mut rng = StdRng::seed_from_u64(6);
    let (mut alice, mut bob) = interactive(&mut rng);
    // Same-chain message (Alice's initial chain, with DH key).
    let a0 = send(&mut alice, &mut rng, true, "a0");
    tamper_all_fields(&mut bob, &a0, &mut rng, "a0");
    // New ratchet with a DH key (Bob's first chain, id 0).
    let b0 = send(&mut bob, &mut rng, false, "b0");
    let b1 = send(&mut bob, &mut rng, false, "b1");
    tamper_all_fields(&mut alice, &b1, &mut rng, "b1");
    // Skipped-key path: b0 is now stored.
    assert_eq!(alice.stored_keys(), 1);
    tamper_all_fields(&mut alice, &b0, &mut rng, "b0");
    // New ratchet without a DH key (id 1), with a skipped message before it.
    let c0 = send(&mut alice, &mut rng, true, "c0");
    let c1 = send(&mut alice, &mut rng, true, "c1");
    tamper_all_fields(&mut bob, &c1, &mut rng, "c1");
    assert_eq!(recv(&mut bob, &c0), "c0");
    // Specific errors.
    let d0 = send(&mut bob, &mut rng, false, "d0");
    let mut t = d0.clone();
    t.mac[0] ^= 1;
    reject(&mut alice, &t, RatchetError::BadMac);
    let mut t = d0.clone();
    t.i += 1;
    reject(&mut alice, &t, RatchetError::UnexpectedRatchetId);
    let mut t = d0.clone();
    t.dh = Some(DhKeyPair::generate(&mut rng).public().clone());
    reject(&mut alice, &t, RatchetError::UnexpectedDhKey);
    assert_eq!(recv(&mut alice, &d0), "d0");
    let e0 = send(&mut alice, &mut rng, true, "e0"); // id 3: DH
    assert!(e0.dh.is_some());
    let mut t = e0.clone();
    t.dh = None;
    reject(&mut bob, &t, RatchetError::MissingDhKey);
    assert_eq!(recv(&mut bob, &e0), "e0");
}

#[test]
fn max_skip_is_enforced_without_state_change() {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut alice, mut bob) = interactive(&mut rng);
    let limits = RatchetLimits {
        max_skip: 4,
        ..RatchetLimits::default()
    };
    bob.set_limits(limits);
    alice.set_limits(limits);
    let a: Vec<DataMessage> = (0..8)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    // j = 5 would skip 5 keys: refused. j = 4 skips exactly 4: accepted.
    reject(&mut bob, &a[5], RatchetError::TooManySkipped);
    assert_eq!(recv(&mut bob, &a[4]), "a4");
    assert_eq!(bob.stored_keys(), 4);
    // A new ratchet whose pn asks to skip too many in the old chain.
    let b0 = send(&mut bob, &mut rng, false, "b0");
    recv(&mut alice, &b0);
    let c: Vec<DataMessage> = (0..6)
        .map(|n| send(&mut alice, &mut rng, true, &format!("c{n}")))
        .collect();
    assert_eq!(c[0].pn, 8);
    // Old chain: k = 5, pn = 8 skips 3: fine; but c5 also skips 5 in the new chain.
    reject(&mut bob, &c[5], RatchetError::TooManySkipped);
    assert_eq!(recv(&mut bob, &c[4]), "c4");
    assert_eq!(recv(&mut bob, &a[7]), "a7");
    // pn itself too large: forge nothing, just use a fresh pair where k = 0 and pn = 6.
    let (mut alice, mut bob) = interactive(&mut rng);
    bob.set_limits(limits);
    let first: Vec<DataMessage> = (0..6)
        .map(|n| send(&mut alice, &mut rng, true, &format!("x{n}")))
        .collect();
    recv(&mut bob, &first[0]);
    let b = send(&mut bob, &mut rng, false, "b");
    recv(&mut alice, &b);
    let y = send(&mut alice, &mut rng, true, "y");
    assert_eq!(y.pn, 6);
    // k = 1, pn = 6: 5 to skip > 4.
    reject(&mut bob, &y, RatchetError::TooManySkipped);
    // Once a few of the old chain arrive, the same message goes through.
    assert_eq!(recv(&mut bob, &first[1]), "x1");
    assert_eq!(recv(&mut bob, &y), "y");
}

#[test]
fn full_store_evicts_oldest_and_reveals_their_mac_keys() {
    let mut rng = StdRng::seed_from_u64(8);
    let (mut alice, mut bob) = interactive(&mut rng);
    bob.set_limits(RatchetLimits {
        max_stored_keys: 3,
        ..RatchetLimits::default()
    });
    let a: Vec<DataMessage> = (0..6)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    assert_eq!(recv(&mut bob, &a[5]), "a5");
    // Skipped 0..5; a0 and a1 evicted.
    assert_eq!(bob.stored_keys(), 3);
    // Pending: the MAC keys of a0, a1 (evicted) and a5 (received).
    assert_eq!(bob.pending_mac_keys(), 3);
    reject(&mut bob, &a[0], RatchetError::Duplicate);
    assert_eq!(recv(&mut bob, &a[2]), "a2");
    let revealed = send(&mut bob, &mut rng, false, "b").revealed_mac_keys;
    let keys: Vec<&[u8]> = revealed.chunks(64).collect();
    assert_eq!(keys.len(), 4);
    for (key, m) in keys.iter().zip([&a[0], &a[1], &a[5], &a[2]]) {
        let key: &[u8; 64] = (*key).try_into().unwrap();
        assert_eq!(keys::authenticator(key, &m.authenticated_bytes()), m.mac);
    }
    assert_eq!(bob.pending_mac_keys(), 0);
}

#[test]
fn stored_keys_expire_after_max_age_ratchets() {
    let mut rng = StdRng::seed_from_u64(9);
    let (mut alice, mut bob) = interactive(&mut rng);
    bob.set_limits(RatchetLimits {
        max_skipped_key_age: 2,
        ..RatchetLimits::default()
    });
    let lost = send(&mut alice, &mut rng, true, "lost"); // id 0
    let a1 = send(&mut alice, &mut rng, true, "a1");
    recv(&mut bob, &a1);
    assert_eq!(bob.stored_keys(), 1);
    // Bob's chain id 0, Alice 1, Bob 2, Alice 3: entering id 3 > 0 + 2 expires `lost`.
    let mut last = None;
    for round in 0..4 {
        let m = if round % 2 == 0 {
            let m = send(&mut bob, &mut rng, false, "b");
            recv(&mut alice, &m);
            m
        } else {
            let m = send(&mut alice, &mut rng, true, "a");
            let before = bob.stored_keys();
            recv(&mut bob, &m);
            if m.i == 1 {
                assert_eq!(before, 1);
                assert_eq!(bob.stored_keys(), 1, "id 1 is within age 2 of id 0");
            }
            m
        };
        last = Some(m);
    }
    assert_eq!(last.unwrap().i, 3);
    assert_eq!(bob.stored_keys(), 0);
    reject(&mut bob, &lost, RatchetError::Duplicate);
    // The explicit hook.
    let (mut alice, mut bob) = interactive(&mut rng);
    let lost = send(&mut alice, &mut rng, true, "lost");
    let a1 = send(&mut alice, &mut rng, true, "a1");
    recv(&mut bob, &a1);
    assert_eq!(bob.expire_skipped_keys(0), 0, "same ratchet: kept");
    let b = send(&mut bob, &mut rng, false, "b");
    recv(&mut alice, &b);
    let c = send(&mut alice, &mut rng, true, "c");
    recv(&mut bob, &c);
    assert_eq!(bob.expire_skipped_keys(1), 0);
    assert_eq!(bob.expire_skipped_keys(0), 1);
    reject(&mut bob, &lost, RatchetError::Duplicate);
}

#[test]
fn mac_keys_are_revealed_in_the_first_message_of_each_ratchet() {
    let mut rng = StdRng::seed_from_u64(10);
    let (mut alice, mut bob) = interactive(&mut rng);
    let a: Vec<DataMessage> = (0..3)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    for m in &a {
        recv(&mut bob, m);
    }
    let b0 = send(&mut bob, &mut rng, false, "b0");
    let b1 = send(&mut bob, &mut rng, false, "b1");
    assert_eq!(b0.revealed_mac_keys.len(), 3 * 64);
    assert!(b1.revealed_mac_keys.is_empty());
    for (key, m) in b0.revealed_mac_keys.chunks(64).zip(&a) {
        let key: &[u8; 64] = (*key).try_into().unwrap();
        assert_eq!(keys::authenticator(key, &m.authenticated_bytes()), m.mac);
    }
    recv(&mut alice, &b1);
    recv(&mut alice, &b0);
    let c0 = send(&mut alice, &mut rng, true, "c0");
    let revealed: Vec<&[u8]> = c0.revealed_mac_keys.chunks(64).collect();
    assert_eq!(revealed.len(), 2);
    let k1: &[u8; 64] = revealed[0].try_into().unwrap();
    assert_eq!(keys::authenticator(k1, &b1.authenticated_bytes()), b1.mac);
}

#[test]
fn session_expiry_reveals_all_mac_keys() {
    let mut rng = StdRng::seed_from_u64(11);
    let (mut alice, mut bob) = interactive(&mut rng);
    let a: Vec<DataMessage> = (0..4)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    recv(&mut bob, &a[3]); // a0..a2 stored
    let b0 = send(&mut bob, &mut rng, false, "b0"); // reveals a3's key
    assert_eq!(b0.revealed_mac_keys.len(), 64);
    recv(&mut bob, &a[1]); // pending: a1's key; stored: a0, a2
    let plaintext = encode_plaintext(b"", &[Tlv::disconnected()]).unwrap();
    let mut copy = DoubleRatchet::import(&bob.export()).unwrap();
    let bye = bob
        .encrypt_revealing_all(B_TAG, A_TAG, FLAG_IGNORE_UNREADABLE, &plaintext, &mut rng)
        .unwrap()
        .message;
    assert_eq!(
        bye.j, 1,
        "not the first message of the chain, still revealing"
    );
    let keys: Vec<&[u8]> = bye.revealed_mac_keys.chunks(64).collect();
    assert_eq!(keys.len(), 3);
    for (key, m) in keys.iter().zip([&a[1], &a[0], &a[2]]) {
        let key: &[u8; 64] = (*key).try_into().unwrap();
        assert_eq!(keys::authenticator(key, &m.authenticated_bytes()), m.mac);
    }
    assert_eq!((bob.stored_keys(), bob.pending_mac_keys()), (0, 0));
    recv(&mut alice, &b0);
    let d = alice.decrypt(&bye).unwrap();
    let parsed = parse_plaintext(&d.plaintext);
    assert_eq!(parsed.tlvs, [Tlv::disconnected()]);
    // The plain primitive gives the same keys.
    assert_eq!(copy.reveal_all_mac_keys(), bye.revealed_mac_keys);
    assert_eq!((copy.stored_keys(), copy.pending_mac_keys()), (0, 0));
    assert!(copy.reveal_all_mac_keys().is_empty());
}

#[test]
fn extra_symmetric_keys_agree_on_both_sides() {
    let mut rng = StdRng::seed_from_u64(12);
    let (mut alice, mut bob) = interactive(&mut rng);
    let e0 = alice.encrypt(A_TAG, B_TAG, 0, b"x", &mut rng).unwrap();
    let e1 = alice.encrypt(A_TAG, B_TAG, 0, b"y", &mut rng).unwrap();
    assert_ne!(e0.extra_symm_key, e1.extra_symm_key);
    let d1 = bob.decrypt(&e1.message).unwrap();
    let d0 = bob.decrypt(&e0.message).unwrap(); // via the skipped store
    assert_eq!(d0.extra_symm_key, e0.extra_symm_key);
    assert_eq!(d1.extra_symm_key, e1.extra_symm_key);
    let tlv = Tlv::extra_symmetric_key([0, 0, 0, 1], b"file.txt");
    let ks = d1
        .extra_symm_key
        .derive_for_tlvs(core::slice::from_ref(&tlv));
    assert_eq!(ks, e1.extra_symm_key.derive_for_tlvs(&[tlv]));
    assert_eq!(ks.len(), 1);
    assert_ne!(ks[0].key, e1.extra_symm_key);
}

#[test]
fn export_import_round_trip_mid_conversation() {
    let mut rng = StdRng::seed_from_u64(13);
    let (mut alice, mut bob) = interactive(&mut rng);
    let a: Vec<DataMessage> = (0..4)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    recv(&mut bob, &a[3]);
    let b0 = send(&mut bob, &mut rng, false, "b0");
    bob.set_limits(RatchetLimits {
        max_skip: 77,
        ..RatchetLimits::default()
    });
    for r in [&alice, &bob] {
        let bytes = r.export();
        assert_eq!(&bytes[..8], b"OTR4DRAT");
        let back = DoubleRatchet::import(&bytes).unwrap();
        assert_eq!(back.export().as_slice(), bytes.as_slice());
        assert_eq!(back.limits(), r.limits());
    }
    let mut alice = DoubleRatchet::import(&alice.export()).unwrap();
    let mut bob = DoubleRatchet::import(&bob.export()).unwrap();
    assert_eq!(bob.stored_keys(), 3);
    assert_eq!(recv(&mut alice, &b0), "b0");
    assert_eq!(recv(&mut bob, &a[1]), "a1");
    let c0 = send(&mut alice, &mut rng, true, "c0");
    assert_eq!(recv(&mut bob, &c0), "c0");
    assert_eq!(recv(&mut bob, &a[0]), "a0");
}

#[test]
fn import_rejects_malformed_bytes() {
    let mut rng = StdRng::seed_from_u64(14);
    let (mut alice, mut bob) = interactive(&mut rng);
    let _lost = send(&mut alice, &mut rng, true, "a0");
    let a1 = send(&mut alice, &mut rng, true, "a1");
    recv(&mut bob, &a1);
    recv(&mut bob, &send(&mut alice, &mut rng, true, "a2"));
    let good = bob.export();
    let macs = 64 * bob.pending_mac_keys();
    assert_eq!(macs, 128);
    for n in 0..good.len() {
        assert!(
            DoubleRatchet::import(&good[..n]).is_err(),
            "truncation at {n} accepted"
        );
    }
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(
        DoubleRatchet::import(&long).map(|_| ()),
        Err(DecodeError::TrailingBytes(1))
    );
    let mut bad = good.to_vec();
    bad[0] ^= 1;
    assert_eq!(
        DoubleRatchet::import(&bad).map(|_| ()),
        Err(DecodeError::BadValue("ratchet export magic"))
    );
    let mut bad = good.to_vec();
    bad[9] = 2;
    assert_eq!(
        DoubleRatchet::import(&bad).map(|_| ()),
        Err(DecodeError::BadVersion(2))
    );
    // The max_remote_i_seen flag sits after magic, version, 4 limits and 4 counters.
    let flag_at = 8 + 2 + 16 + 16;
    let mut bad = good.to_vec();
    bad[flag_at] = 2;
    assert_eq!(
        DoubleRatchet::import(&bad).map(|_| ()),
        Err(DecodeError::BadValue("max_remote_i_seen flag"))
    );
    // their_ecdh follows root and brace keys.
    let point_at = flag_at + 5 + 64 + 32;
    let mut bad = good.to_vec();
    bad[point_at..point_at + POINT_LEN].fill(0);
    assert_eq!(
        DoubleRatchet::import(&bad).map(|_| ()),
        Err(DecodeError::BadPoint("their ECDH key"))
    );
    // A skipped-key count larger than the bytes left.
    let count_at = good.len() - 4 - macs - 193 - 4;
    assert_eq!(&good[count_at..count_at + 4], &[0, 0, 0, 1]);
    let mut bad = good.to_vec();
    bad[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        DoubleRatchet::import(&bad),
        Err(DecodeError::LengthTooLarge { .. })
    ));
    // MAC keys to reveal not a multiple of 64.
    let mut bad = good[..good.len() - macs - 4].to_vec();
    bad.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
    assert_eq!(
        DoubleRatchet::import(&bad).map(|_| ()),
        Err(DecodeError::BadValue("MAC keys to reveal"))
    );
}

#[test]
fn counter_exhaustion_is_an_error_without_state_change() {
    let mut rng = StdRng::seed_from_u64(15);
    let (mut alice, _) = interactive(&mut rng);
    alice.state.j = u32::MAX;
    let before = alice.export();
    assert_eq!(
        alice.encrypt(A_TAG, B_TAG, 0, b"x", &mut rng).map(|_| ()),
        Err(RatchetError::CounterExhausted)
    );
    assert_eq!(alice.export().as_slice(), before.as_slice());
}

#[test]
fn no_receiving_chain_before_the_first_ratchet() {
    let mut rng = StdRng::seed_from_u64(16);
    let (mut alice, mut bob) = interactive(&mut rng);
    // A message claiming Bob's first (DAKE) ECDH key: Alice has no chain for it.
    let mut m = send(&mut bob, &mut rng, false, "b");
    m.ecdh = alice.state.their_ecdh;
    reject(&mut alice, &m, RatchetError::NoReceivingChain);
}

#[test]
fn debug_prints_no_secrets() {
    let mut rng = StdRng::seed_from_u64(17);
    let (mut alice, mut bob) = interactive(&mut rng);
    let e = alice
        .encrypt(A_TAG, B_TAG, 0, b"secret text", &mut rng)
        .unwrap();
    let d = bob.decrypt(&e.message).unwrap();
    let shown = format!("{alice:?} {bob:?} {d:?} {e:?} {:?}", bob.export());
    let root = &alice.state.root_key[..8];
    let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!shown.contains(&hex));
    assert!(!shown.contains("secret text"));
    assert!(shown.contains("DoubleRatchet { i: 0, j: 1, k: 0, pn: 0"));
    assert!(shown.contains("ExtraSymmetricKey(..)"));
    assert!(shown.contains("Decrypted { plaintext_len: 11"));
}

#[test]
fn secret_bytes_grow_and_shrink() {
    let mut s = SecretBytes::default();
    for n in 0..10u8 {
        s.extend(&[n; 3]);
    }
    assert_eq!(s.len(), 30);
    s.remove_front(6);
    assert_eq!(&s[..3], &[2, 2, 2]);
    assert_eq!(s.len(), 24);
    s.remove_front(100);
    assert!(s.is_empty());
    s.extend(&[1]);
    s.clear();
    assert!(s.as_slice().is_empty());
    assert_eq!(format!("{s:?}"), "SecretBytes(0 bytes)");
}

#[test]
fn secret_bytes_write_what_a_vec_writes_across_growth() {
    use crate::wire::codec::Writer;
    let mut rng = StdRng::seed_from_u64(19);
    let owner = crate::crypto::ed448::KeyPair::generate(&mut rng);
    let mut plain = Vec::new();
    // Starts with no capacity: every kind of write below makes it grow.
    let mut secret = SecretBytes::default();
    for n in 0..200u32 {
        plain
            .u32(n)
            .data(&[n as u8; 7])
            .i64(-1)
            .point(owner.public());
        secret
            .u32(n)
            .data(&[n as u8; 7])
            .i64(-1)
            .point(owner.public());
    }
    let key = crate::crypto::keys::Ed448PublicKey(*owner.public());
    plain.put(&key);
    secret.put(&key);
    assert_eq!(secret.as_slice(), plain.as_slice());
}

#[test]
fn pending_mac_keys_are_capped() {
    let mut rng = StdRng::seed_from_u64(18);
    let (mut alice, mut bob) = interactive(&mut rng);
    bob.set_limits(RatchetLimits {
        max_mac_keys_to_reveal: 2,
        ..RatchetLimits::default()
    });
    let a: Vec<DataMessage> = (0..4)
        .map(|n| send(&mut alice, &mut rng, true, &format!("a{n}")))
        .collect();
    for m in &a {
        recv(&mut bob, m);
    }
    assert_eq!(bob.pending_mac_keys(), 2);
    let b = send(&mut bob, &mut rng, false, "b");
    let newest: Vec<&[u8]> = b.revealed_mac_keys.chunks(64).collect();
    for (key, m) in newest.iter().zip(&a[2..]) {
        let key: &[u8; 64] = (*key).try_into().unwrap();
        assert_eq!(keys::authenticator(key, &m.authenticated_bytes()), m.mac);
    }
}
