//! No user content to an unaccepted key (`Client::expect_fingerprint`): a peer instance
//! that authenticates with another key than the expected one gets a session, but no queued
//! or new message, no SMP and no extra symmetric key until the caller accepts that key; a
//! prekey ensemble with another key is never used.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::Fingerprint;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::generate_forging_point;
use otr4::{Account, Client, ConversationError, ConversationState, Event, NotSentReason, Policy};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

fn account(rng: &mut StdRng, tag: Option<InstanceTag>) -> Account {
    match tag {
        None => Account::generate(rng, Policy::standalone(), NOW).unwrap(),
        Some(t) => Account::from_keys(
            KeyPair::generate(rng),
            generate_forging_point(rng),
            None,
            t,
            Policy::standalone(),
            NOW,
        )
        .unwrap(),
    }
}

/// Delivers Alice's (`a`) sends to Bob's side (`b`) and back, until quiet, starting from
/// `first`, events of `a` (or of `b` when `from_b`). Returns every non-send event of each.
fn pump_from(
    rng: &mut StdRng,
    a: &mut Client,
    b: &mut Client,
    first: Vec<Event>,
    from_b: bool,
) -> (Vec<Event>, Vec<Event>) {
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    // Nobody here publishes Prekey Ensembles: empty prekey stores.
    let mut store_a = PrekeyStore::new(a.account().instance_tag());
    let mut store_b = PrekeyStore::new(b.account().instance_tag());
    let mut to_b: Vec<String> = Vec::new();
    let mut to_a: Vec<String> = Vec::new();
    let split = |evs: Vec<Event>, out: &mut Vec<String>, seen: &mut Vec<Event>| {
        for e in evs {
            match e {
                Event::Send { text, .. } => out.push(text),
                other => seen.push(other),
            }
        }
    };
    if from_b {
        split(first, &mut to_a, &mut seen_b);
    } else {
        split(first, &mut to_b, &mut seen_a);
    }
    for _ in 0..50 {
        if to_a.is_empty() && to_b.is_empty() {
            break;
        }
        for t in std::mem::take(&mut to_b) {
            let evs = b.receive(ALICE, &t, &mut store_b, NOW, rng);
            split(evs, &mut to_a, &mut seen_b);
        }
        for t in std::mem::take(&mut to_a) {
            let evs = a.receive(BOB, &t, &mut store_a, NOW, rng);
            split(evs, &mut to_b, &mut seen_a);
        }
    }
    (seen_a, seen_b)
}

fn pump(
    rng: &mut StdRng,
    a: &mut Client,
    b: &mut Client,
    first: Vec<Event>,
) -> (Vec<Event>, Vec<Event>) {
    pump_from(rng, a, b, first, false)
}

fn texts(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Received { text, .. } if !text.is_empty() => Some(text.clone()),
            _ => None,
        })
        .collect()
}

struct Setup {
    rng: StdRng,
    alice: Client,
    rogue: Client,
    tag: InstanceTag,
    genuine: Fingerprint,
}

/// Alice expects Bob's device `tag` to have the genuine key; the rogue client has that
/// tag and another key.
fn setup(seed: u64) -> Setup {
    let mut rng = StdRng::seed_from_u64(seed);
    let bob = account(&mut rng, None);
    let tag = bob.instance_tag();
    let genuine = bob.fingerprint();
    let alice = Client::new(account(&mut rng, None), ALICE);
    let rogue = Client::new(account(&mut rng, Some(tag)), BOB);
    let mut s = Setup {
        rng,
        alice,
        rogue,
        tag,
        genuine,
    };
    let evs = s
        .alice
        .expect_fingerprint(BOB, tag, Some(genuine), NOW, &mut s.rng);
    assert!(evs.is_empty());
    s
}

#[test]
fn queued_and_new_messages_wait_for_the_accepted_key() {
    let mut s = setup(1);
    let mut evs = s.alice.start_dake(BOB, Some(s.tag), NOW, &mut s.rng);
    evs.extend(
        s.alice
            .send_to(BOB, s.tag, "queued secret", &[], NOW, &mut s.rng),
    );
    let (seen_a, seen_b) = pump(&mut s.rng, &mut s.alice, &mut s.rogue, evs);
    // The DAKE completed, and said the key is not the accepted one …
    let secure = seen_a
        .iter()
        .find_map(|e| match e {
            Event::Secure {
                key_accepted,
                their_fingerprint,
                ..
            } => Some((*key_accepted, *their_fingerprint)),
            _ => None,
        })
        .expect("the DAKE completed");
    assert!(!secure.0);
    let rogue_fp = secure.1;
    assert_ne!(rogue_fp, s.genuine);
    // … and the queued message stayed queued.
    assert!(
        texts(&seen_b).is_empty(),
        "the rogue read {:?}",
        texts(&seen_b)
    );
    assert!(seen_a.iter().any(|e| matches!(
        e,
        Event::NotSent {
            reason: NotSentReason::KeyNotAccepted,
            ..
        }
    )));
    let conv = s.alice.conversation(BOB, s.tag).unwrap();
    assert_eq!(conv.state(), ConversationState::Encrypted);
    assert!(!conv.key_accepted());
    assert_eq!(conv.queued(), 1);
    // A new message is held too.
    let evs = s
        .alice
        .send_to(BOB, s.tag, "second secret", &[], NOW, &mut s.rng);
    let (_, seen_b) = pump(&mut s.rng, &mut s.alice, &mut s.rogue, evs);
    assert!(texts(&seen_b).is_empty());
    assert_eq!(s.alice.conversation(BOB, s.tag).unwrap().queued(), 2);
    // Saying again which key is expected (the glue does so on every call) neither sends
    // nor reports the held messages again.
    let evs = s
        .alice
        .expect_fingerprint(BOB, s.tag, Some(s.genuine), NOW, &mut s.rng);
    assert!(evs.is_empty(), "{evs:?}");
    assert_eq!(s.alice.conversation(BOB, s.tag).unwrap().queued(), 2);
    // SMP and extra symmetric keys are refused.
    for evs in [
        s.alice
            .smp_start(BOB, s.tag, b"secret", None, NOW, &mut s.rng),
        s.alice
            .use_extra_symmetric_key(BOB, s.tag, *b"file", b"x", NOW, &mut s.rng),
    ] {
        assert!(
            evs.iter().any(|e| matches!(
                e,
                Event::Error {
                    error: ConversationError::KeyNotAccepted,
                    ..
                }
            )),
            "{evs:?}"
        );
        assert!(!evs.iter().any(|e| matches!(e, Event::Send { .. })));
    }
    // What the rogue sends is still readable (shown with its state by the caller).
    let evs = s.rogue.send_to(
        ALICE,
        s.alice.account().instance_tag(),
        "hi",
        &[],
        NOW,
        &mut s.rng,
    );
    let (seen_alice, _) = pump_from(&mut s.rng, &mut s.alice, &mut s.rogue, evs, true);
    assert_eq!(texts(&seen_alice), vec!["hi".to_owned()]);
    // The caller accepts the new key: what was held goes out, in order.
    let evs = s
        .alice
        .expect_fingerprint(BOB, s.tag, Some(rogue_fp), NOW, &mut s.rng);
    let (_, seen_b) = pump(&mut s.rng, &mut s.alice, &mut s.rogue, evs);
    assert_eq!(
        texts(&seen_b),
        vec!["queued secret".to_owned(), "second secret".to_owned()]
    );
    assert_eq!(s.alice.conversation(BOB, s.tag).unwrap().queued(), 0);
}

#[test]
fn the_expected_key_flows_as_before() {
    let mut s = setup(2);
    // Expecting the rogue's own key: nothing is held.
    let rogue_fp = s.rogue.account().fingerprint();
    s.alice
        .expect_fingerprint(BOB, s.tag, Some(rogue_fp), NOW, &mut s.rng);
    let mut evs = s.alice.start_dake(BOB, Some(s.tag), NOW, &mut s.rng);
    evs.extend(s.alice.send_to(BOB, s.tag, "hello", &[], NOW, &mut s.rng));
    let (seen_a, seen_b) = pump(&mut s.rng, &mut s.alice, &mut s.rogue, evs);
    assert_eq!(texts(&seen_b), vec!["hello".to_owned()]);
    assert!(seen_a.iter().any(|e| matches!(
        e,
        Event::Secure {
            key_accepted: true,
            ..
        }
    )));
    assert!(s.alice.conversation(BOB, s.tag).unwrap().key_accepted());
}

#[test]
fn no_expectation_means_no_gate() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut alice = Client::new(account(&mut rng, None), ALICE);
    let mut bob = Client::new(account(&mut rng, None), BOB);
    let tag = bob.account().instance_tag();
    let mut evs = alice.start_dake(BOB, Some(tag), NOW, &mut rng);
    evs.extend(alice.send_to(BOB, tag, "hello", &[], NOW, &mut rng));
    let (_, seen_b) = pump(&mut rng, &mut alice, &mut bob, evs);
    assert_eq!(texts(&seen_b), vec!["hello".to_owned()]);
    // Clearing an expectation reopens a closed gate.
    let mut s = setup(4);
    let mut evs = s.alice.start_dake(BOB, Some(s.tag), NOW, &mut s.rng);
    evs.extend(s.alice.send_to(BOB, s.tag, "held", &[], NOW, &mut s.rng));
    let (_, seen_b) = pump(&mut s.rng, &mut s.alice, &mut s.rogue, evs);
    assert!(texts(&seen_b).is_empty());
    let evs = s
        .alice
        .expect_fingerprint(BOB, s.tag, None, NOW, &mut s.rng);
    let (_, seen_b) = pump(&mut s.rng, &mut s.alice, &mut s.rogue, evs);
    assert_eq!(texts(&seen_b), vec!["held".to_owned()]);
}

/// Messages queued while the DAKE runs stay queued, silently, when the caller states its
/// expectation before the session exists.
#[test]
fn an_expectation_before_the_session_leaves_the_queue_alone() {
    let mut s = setup(5);
    let mut evs = s.alice.start_dake(BOB, Some(s.tag), NOW, &mut s.rng);
    evs.extend(s.alice.send_to(BOB, s.tag, "waiting", &[], NOW, &mut s.rng));
    assert!(!evs.is_empty());
    assert_eq!(s.alice.conversation(BOB, s.tag).unwrap().queued(), 1);
    let evs = s
        .alice
        .expect_fingerprint(BOB, s.tag, Some(s.genuine), NOW, &mut s.rng);
    assert!(evs.is_empty(), "{evs:?}");
    let conv = s.alice.conversation(BOB, s.tag).unwrap();
    assert_ne!(conv.state(), ConversationState::Encrypted);
    assert_eq!(conv.queued(), 1);
}
