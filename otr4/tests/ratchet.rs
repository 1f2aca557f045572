//! Integration tests of the double ratchet through its public API and the Data Message wire
//! encoding: random interleavings with reordering, loss, replays and tampering; long runs
//! across many DH and brace-key ratchets; persistence mid-conversation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::hazmat::wire::codec::Codec;
use std::cell::Cell;
use std::collections::HashSet;

use otr4::InstanceTag;
use otr4::RatchetError;
use otr4::hazmat::crypto::dh::DhKeyPair;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::ratchet::{DoubleRatchet, RatchetLimits};
use otr4::hazmat::wire::messages::DataMessage;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

const A_TAG: InstanceTag = InstanceTag(0x0000_0A11);
const B_TAG: InstanceTag = InstanceTag(0x0000_0B0B);

/// Two freshly initialised parties: `[alice, bob]`. Interactive: Alice receives Auth-I and
/// Bob sends it. Non-interactive: Alice sends the Non-Interactive-Auth message.
fn pair(rng: &mut StdRng, interactive: bool) -> [DoubleRatchet; 2] {
    let mut k = [0u8; 64];
    rng.fill_bytes(&mut k);
    let (a_ecdh, a_dh) = (KeyPair::generate(rng), DhKeyPair::generate(rng));
    let (b_ecdh, b_dh) = (KeyPair::generate(rng), DhKeyPair::generate(rng));
    let (a_pub, a_dh_pub) = (*a_ecdh.public(), a_dh.public().clone());
    let (b_pub, b_dh_pub) = (*b_ecdh.public(), b_dh.public().clone());
    if interactive {
        let alice =
            DoubleRatchet::init_after_receiving_auth_i(&k, a_ecdh, a_dh, b_pub, b_dh_pub).unwrap();
        let bob = DoubleRatchet::init_after_sending_auth_i(&k, b_ecdh, b_dh, a_pub, a_dh_pub, rng)
            .unwrap();
        [alice, bob]
    } else {
        let mut brace = [0u8; 32];
        rng.fill_bytes(&mut brace);
        let alice = DoubleRatchet::init_after_sending_non_interactive_auth(
            &k, &brace, a_ecdh, a_dh, b_pub, b_dh_pub,
        );
        let bob =
            DoubleRatchet::init_after_receiving_non_interactive_auth(&k, &brace, a_pub, a_dh_pub);
        [alice, bob]
    }
}

fn tags(from: usize) -> (InstanceTag, InstanceTag) {
    if from == 0 {
        (A_TAG, B_TAG)
    } else {
        (B_TAG, A_TAG)
    }
}

/// Encrypts and encodes to wire bytes.
fn send(r: &mut DoubleRatchet, from: usize, text: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let (s, t) = tags(from);
    r.encrypt(s, t, 0, text, rng).unwrap().message.encode()
}

/// Decodes wire bytes and decrypts.
fn recv(r: &mut DoubleRatchet, bytes: &[u8]) -> Result<Vec<u8>, RatchetError> {
    let m = DataMessage::decode(bytes).unwrap();
    r.decrypt(&m).map(|d| d.plaintext.to_vec())
}

#[test]
fn long_conversation_rotates_dh_and_brace_keys() {
    for interactive in [true, false] {
        let mut rng = StdRng::seed_from_u64(100 + u64::from(interactive));
        let mut p = pair(&mut rng, interactive);
        let mut first_ids = Vec::new();
        let mut dh_ratchets = 0;
        // The non-interactive receiver (Bob) speaks second, like the interactive Bob.
        for round in 0..16usize {
            let from = round % 2;
            let batch: Vec<(Vec<u8>, Vec<u8>)> = (0..2 + round % 3)
                .map(|n| {
                    let text = format!("round {round} message {n}").into_bytes();
                    (send(&mut p[from], from, &text, &mut rng), text)
                })
                .collect();
            let msgs: Vec<DataMessage> = batch
                .iter()
                .map(|(b, _)| DataMessage::decode(b).unwrap())
                .collect();
            first_ids.push(msgs[0].i);
            for m in &msgs {
                assert_eq!(m.i, msgs[0].i, "one ratchet id per chain");
                assert_eq!(
                    m.dh.is_some(),
                    m.i % 3 == 0,
                    "DH key exactly on 3rd ratchets"
                );
            }
            dh_ratchets += usize::from(msgs[0].dh.is_some());
            // Deliver in reverse order: all but the last go through the skipped store.
            for (bytes, text) in batch.iter().rev() {
                assert_eq!(&recv(&mut p[1 - from], bytes).unwrap(), text);
                assert_eq!(recv(&mut p[1 - from], bytes), Err(RatchetError::Duplicate));
            }
            assert_eq!(p[1 - from].stored_keys(), 0);
        }
        let expected: Vec<u32> = if interactive {
            core::iter::once(0).chain(0..15).collect()
        } else {
            (0..16).collect()
        };
        assert_eq!(first_ids, expected, "interactive = {interactive}");
        assert!(dh_ratchets >= 5, "{dh_ratchets} DH brace-key ratchets");
    }
}

/// One step of a random schedule. `to` is the receiving party (0 = Alice, 1 = Bob).
#[derive(Debug, Clone)]
enum Op {
    /// The party sends a new message.
    Send(usize),
    /// One in-flight message (picked by index) is delivered.
    Deliver(usize, usize),
    /// One in-flight message is lost.
    Lose(usize, usize),
    /// A delivered message is delivered again.
    Replay(usize, usize),
    /// An in-flight message is delivered with one authenticated byte flipped; the
    /// original stays in flight.
    Tamper(usize, usize, usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let party = 0usize..2;
    prop_oneof![
        5 => party.clone().prop_map(Op::Send),
        5 => (party.clone(), any::<usize>()).prop_map(|(t, i)| Op::Deliver(t, i)),
        1 => (party.clone(), any::<usize>()).prop_map(|(t, i)| Op::Lose(t, i)),
        1 => (party.clone(), any::<usize>()).prop_map(|(t, i)| Op::Replay(t, i)),
        1 => (party, any::<usize>(), any::<usize>(), 1u8..).prop_map(|(t, i, p, x)| Op::Tamper(t, i, p, x)),
    ]
}

/// Runs one schedule; returns (messages sent, messages decrypted).
fn run_schedule(seed: u64, interactive: bool, ops: &[Op]) -> Result<(usize, usize), TestCaseError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut p = pair(&mut rng, interactive);
    // No expiry or eviction here, so that every delivered message must decrypt.
    for r in &mut p {
        r.set_limits(RatchetLimits {
            max_skipped_key_age: u32::MAX,
            max_stored_keys: u32::MAX,
            ..RatchetLimits::default()
        });
    }
    // in_flight[to]: (wire bytes, plaintext); delivered[to]: wire bytes.
    let mut in_flight: [Vec<(Vec<u8>, Vec<u8>)>; 2] = [Vec::new(), Vec::new()];
    let mut delivered: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut sent = 0usize;
    let deliver = |p: &mut [DoubleRatchet; 2],
                   to: usize,
                   bytes: Vec<u8>,
                   text: Vec<u8>,
                   seen: &mut HashSet<Vec<u8>>,
                   delivered: &mut [Vec<Vec<u8>>; 2]|
     -> Result<(), TestCaseError> {
        let got = recv(&mut p[to], &bytes);
        prop_assert_eq!(got.as_ref(), Ok(&text), "genuine message did not decrypt");
        prop_assert!(seen.insert(text), "plaintext delivered twice");
        delivered[to].push(bytes);
        Ok(())
    };
    for o in ops {
        match *o {
            Op::Send(from) => {
                let text = format!("{seed}/{sent}/{}", "x".repeat(sent % 7)).into_bytes();
                let bytes = send(&mut p[from], from, &text, &mut rng);
                in_flight[1 - from].push((bytes, text));
                sent += 1;
            }
            Op::Deliver(to, i) if !in_flight[to].is_empty() => {
                let n = in_flight[to].len();
                let (bytes, text) = in_flight[to].remove(i % n);
                deliver(&mut p, to, bytes, text, &mut seen, &mut delivered)?;
            }
            Op::Lose(to, i) if !in_flight[to].is_empty() => {
                let n = in_flight[to].len();
                in_flight[to].remove(i % n);
            }
            Op::Replay(to, i) if !delivered[to].is_empty() => {
                let bytes = delivered[to][i % delivered[to].len()].clone();
                let before = p[to].export();
                prop_assert_eq!(recv(&mut p[to], &bytes), Err(RatchetError::Duplicate));
                prop_assert!(
                    p[to].export().as_slice() == before.as_slice(),
                    "state changed"
                );
            }
            Op::Tamper(to, i, pos, x) if !in_flight[to].is_empty() => {
                let mut bytes = in_flight[to][i % in_flight[to].len()].0.clone();
                let revealed = DataMessage::decode(&bytes).unwrap().revealed_mac_keys.len();
                let covered = bytes.len() - 4 - revealed; // through the MAC
                bytes[pos % covered] ^= x;
                if let Ok(m) = DataMessage::decode(&bytes) {
                    let before = p[to].export();
                    prop_assert!(p[to].decrypt(&m).is_err(), "tampered message accepted");
                    prop_assert!(
                        p[to].export().as_slice() == before.as_slice(),
                        "state changed"
                    );
                }
            }
            _ => {}
        }
    }
    // Finally the network delivers everything still in flight, in a random order.
    for (to, queue) in in_flight.iter_mut().enumerate() {
        while !queue.is_empty() {
            let n = queue.len();
            let (bytes, text) = queue.remove(rng.random_range(0..n));
            deliver(&mut p, to, bytes, text, &mut seen, &mut delivered)?;
        }
    }
    Ok((sent, seen.len()))
}

#[test]
fn random_interleavings_deliver_every_message_exactly_once() {
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    let sent = Cell::new(0usize);
    let decrypted = Cell::new(0usize);
    let strategy = (
        any::<u64>(),
        any::<bool>(),
        proptest::collection::vec(op(), 60..160),
    );
    runner
        .run(&strategy, |(seed, interactive, ops)| {
            let (s, d) = run_schedule(seed, interactive, &ops)?;
            sent.set(sent.get() + s);
            decrypted.set(decrypted.get() + d);
            Ok(())
        })
        .unwrap();
    assert!(sent.get() >= 1000, "only {} messages", sent.get());
    assert!(decrypted.get() >= 800, "only {} decrypted", decrypted.get());
}

#[test]
fn export_import_mid_conversation_then_continue() {
    let mut rng = StdRng::seed_from_u64(7);
    let [mut alice, mut bob] = pair(&mut rng, true);
    let early: Vec<Vec<u8>> = (0..5)
        .map(|n| send(&mut alice, 0, format!("a{n}").as_bytes(), &mut rng))
        .collect();
    assert_eq!(recv(&mut bob, &early[4]).unwrap(), b"a4");
    let reply = send(&mut bob, 1, b"b0", &mut rng);
    // Persist both mid-stream (Bob with four stored keys), restore, and carry on.
    let (sa, sb) = (alice.export(), bob.export());
    drop((alice, bob));
    let mut alice = DoubleRatchet::import(&sa).unwrap();
    let mut bob = DoubleRatchet::import(&sb).unwrap();
    assert_eq!(bob.stored_keys(), 4);
    assert_eq!(recv(&mut alice, &reply).unwrap(), b"b0");
    for (n, m) in early.iter().enumerate().take(4) {
        assert_eq!(recv(&mut bob, m).unwrap(), format!("a{n}").as_bytes());
    }
    for round in 0..6 {
        let m = send(&mut alice, 0, b"ping", &mut rng);
        assert_eq!(recv(&mut bob, &m).unwrap(), b"ping", "round {round}");
        let m = send(&mut bob, 1, b"pong", &mut rng);
        assert_eq!(recv(&mut alice, &m).unwrap(), b"pong");
    }
    // The export is a faithful snapshot: the old bytes still hold the key of `a0`, which
    // the live state has consumed (so callers must discard superseded snapshots).
    let mut old_bob = DoubleRatchet::import(&sb).unwrap();
    assert_eq!(recv(&mut old_bob, &early[0]).unwrap(), b"a0");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn import_of_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(DoubleRatchet::import(&bytes).is_err());
    }

    #[test]
    fn import_of_corrupted_export_never_panics(pos in any::<usize>(), x in 1u8.., cut in any::<usize>()) {
        let mut rng = StdRng::seed_from_u64(42);
        let [mut alice, mut bob] = pair(&mut rng, false);
        let m0 = send(&mut alice, 0, b"0", &mut rng);
        let m1 = send(&mut alice, 0, b"1", &mut rng);
        recv(&mut bob, &m1).unwrap();
        let _ = m0;
        let good = bob.export();
        let mut bad = good.to_vec();
        let p = pos % bad.len();
        bad[p] ^= x;
        // Either rejected, or accepted as a (different) well-formed state that re-exports
        // to exactly these bytes.
        if let Ok(r) = DoubleRatchet::import(&bad) {
            let again = r.export();
            prop_assert_eq!(again.as_slice(), &bad[..]);
        }
        let cut = cut % good.len();
        prop_assert!(DoubleRatchet::import(&good[..cut]).is_err());
    }
}
