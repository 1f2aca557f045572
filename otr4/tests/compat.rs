//! The OTRv3-compatible mode through [`Client`] (otrv4.md §"OTRv3-compatible mode", §"OTRv3
//! Protocol State Machine"): version negotiation by query messages and whitespace tags, v4
//! preferred, a v3 session with a peer that allows only version 3 (both roles), messages,
//! fragments, SMP, ending, tampering, and what persists. The peer that "only speaks v3" is an
//! otr4 client whose policy allows version 3 alone; libotr and the JavaScript library are the
//! peers in test-vectors' interop suites.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::hazmat::wire::encoded::decode_otr;
use otr4::hazmat::wire::query::{Versions, find_whitespace_tag};
use otr4::otrv3::{DsaPrivateKey, V3Fingerprint, read_private_keys};
use otr4::{
    Account, Client, ConversationError, ConversationState, Event, NotSentReason, Policy,
    PrekeyStore, SmpUpdate, Warning,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: i64 = 1_700_000_000;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// Two DSA keys written by libotr 4.1.1 (the key-migration fixture).
fn keys() -> (DsaPrivateKey, DsaPrivateKey) {
    let file = include_bytes!("../src/v3/testdata/two.private_key");
    let mut accounts = read_private_keys(file).unwrap().into_iter();
    (accounts.next().unwrap().key, accounts.next().unwrap().key)
}

struct Side {
    jid: &'static str,
    client: Client,
    prekeys: PrekeyStore,
    seen: Vec<Event>,
}

/// Alice and Bob and the messages in flight.
struct Pair {
    sides: [Side; 2],
    wire: Vec<(usize, String)>,
    rng: StdRng,
    now: i64,
    /// Every message sent, by sender.
    sent: Vec<(usize, String)>,
}

/// The OTRv3-compatible policy allowing `versions`.
fn compatible(versions: Versions) -> Policy {
    Policy {
        versions,
        ..Policy::default()
    }
}

impl Pair {
    fn new(alice: (Policy, Option<DsaPrivateKey>), bob: (Policy, Option<DsaPrivateKey>)) -> Pair {
        let mut rng = StdRng::seed_from_u64(3);
        let mut side = |jid, (policy, key): (Policy, Option<DsaPrivateKey>)| {
            let mut account = Account::generate(&mut rng, policy, T0).unwrap();
            if let Some(k) = key {
                account.set_v3_key(k);
            }
            Side {
                jid,
                prekeys: PrekeyStore::new(account.instance_tag()),
                client: Client::new(account, jid),
                seen: Vec::new(),
            }
        };
        let sides = [side(ALICE, alice), side(BOB, bob)];
        Pair {
            sides,
            wire: Vec::new(),
            rng,
            now: T0,
            sent: Vec::new(),
        }
    }

    /// Both allow versions 3 and 4 but Bob only 3: Bob is "an OTRv3 client".
    fn v4_and_v3_only() -> Pair {
        let (a, b) = keys();
        Pair::new(
            (compatible(Versions::V3_AND_V4), Some(a)),
            (compatible(Versions::V3), Some(b)),
        )
    }

    fn absorb(&mut self, n: usize, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Send { text, .. } => {
                    self.sent.push((n, text.clone()));
                    self.wire.push((n, text));
                }
                other => self.sides[n].seen.push(other),
            }
        }
    }

    /// Delivers everything in flight, in order, until nothing is left.
    fn run(&mut self) {
        while !self.wire.is_empty() {
            let (from, text) = self.wire.remove(0);
            self.deliver(from, &text);
        }
    }

    fn deliver(&mut self, from: usize, text: &str) {
        let to = 1 - from;
        let jid = self.sides[from].jid;
        let s = &mut self.sides[to];
        let ev = s
            .client
            .receive(jid, text, &mut s.prekeys, self.now, &mut self.rng);
        self.absorb(to, ev);
    }

    fn other(&self, n: usize) -> &'static str {
        self.sides[1 - n].jid
    }

    fn start(&mut self, n: usize) {
        let peer = self.other(n);
        let ev = self.sides[n].client.start(peer, self.now, &mut self.rng);
        self.absorb(n, ev);
    }

    fn send(&mut self, n: usize, text: &str) {
        let peer = self.other(n);
        let ev = self.sides[n]
            .client
            .send(peer, text, &[], self.now, &mut self.rng);
        self.absorb(n, ev);
    }

    fn take(&mut self, n: usize) -> Vec<Event> {
        core::mem::take(&mut self.sides[n].seen)
    }

    /// The texts `n` received encrypted.
    fn received(&mut self, n: usize) -> Vec<String> {
        self.take(n)
            .into_iter()
            .filter_map(|e| match e {
                Event::Received {
                    text,
                    encrypted: true,
                    ..
                } => Some(text),
                _ => None,
            })
            .collect()
    }

    fn v3_state(&self, n: usize) -> (ConversationState, Option<otr4::InstanceTag>) {
        let peer = self.other(n);
        self.sides[n]
            .client
            .peer(peer)
            .map(|p| p.v3_session())
            .unwrap_or((ConversationState::Start, None))
    }

    fn tag(&self, n: usize) -> otr4::InstanceTag {
        self.sides[n].client.account().instance_tag()
    }

    /// Runs the AKE started by `starter` and checks both sides' `SecureV3` events.
    fn secure_v3(&mut self) -> [([u8; 8], usize, V3Fingerprint); 2] {
        self.run();
        let mut out = Vec::new();
        for n in 0..2 {
            // Take the SecureV3 events, leave the rest (messages flushed from a queue).
            let (events, rest): (Vec<Event>, Vec<Event>) = self
                .take(n)
                .into_iter()
                .partition(|e| matches!(e, Event::SecureV3 { .. } | Event::Secure { .. }));
            self.sides[n].seen = rest;
            let found = events.iter().find_map(|e| match e {
                Event::SecureV3 {
                    instance,
                    ssid,
                    bold_half,
                    their_fingerprint,
                    ..
                } => Some((*instance, *ssid, *bold_half, *their_fingerprint)),
                _ => None,
            });
            let (instance, ssid, bold, fp) =
                found.unwrap_or_else(|| panic!("side {n} got no SecureV3: {events:?}"));
            assert_eq!(instance, self.tag(1 - n));
            assert!(
                !events.iter().any(|e| matches!(e, Event::Secure { .. })),
                "an OTRv3 session must never be announced as OTRv4"
            );
            assert_eq!(
                self.v3_state(n),
                (ConversationState::Encrypted, Some(self.tag(1 - n)))
            );
            out.push((ssid, bold, fp));
        }
        [out[0], out[1]]
    }
}

fn is_v3_encoded(text: &str) -> bool {
    decode_otr(text).is_ok_and(|b| b.starts_with(&[0, 3]))
}

#[test]
fn query_offers_both_versions_and_a_v3_only_peer_answers_with_v3() {
    let mut p = Pair::v4_and_v3_only();
    p.start(0);
    // otrv4.md §"Query Messages": both versions offered.
    let query = p.wire[0].1.clone();
    assert!(
        query.starts_with("?OTRv34?") || query.starts_with("?OTRv43?"),
        "{query}"
    );
    let [a, b] = p.secure_v3();
    // Same SSID; each side bolds a different half.
    assert_eq!(a.0, b.0);
    assert_ne!(a.1, b.1);
    let (ka, kb) = keys();
    assert_eq!(a.2, kb.fingerprint());
    assert_eq!(b.2, ka.fingerprint());
    // Bob (the v3-only side) started the AKE: every AKE message on the wire is v3.
    assert!(p.sent.iter().skip(1).all(|(_, t)| is_v3_encoded(t)));

    // Messages both ways, with key rotations.
    for i in 0..12 {
        p.send(0, &format!("a{i}"));
        p.send(1, &format!("b{i}"));
        p.run();
        assert_eq!(p.received(1), [format!("a{i}")]);
        assert_eq!(p.received(0), [format!("b{i}")]);
    }
    assert!(p.sent.iter().skip(1).all(|(_, t)| is_v3_encoded(t)));
}

#[test]
fn v3_only_peer_query_gets_a_d_h_commit_and_we_complete_as_responder() {
    let mut p = Pair::v4_and_v3_only();
    // Bob (v3 only) asks; Alice answers with a D-H Commit.
    p.start(1);
    assert!(p.wire[0].1.starts_with("?OTRv3?"), "{}", p.wire[0].1);
    let (_, q) = p.wire.remove(0);
    p.deliver(1, &q);
    assert_eq!(p.wire.len(), 1);
    let commit = decode_otr(&p.wire[0].1).unwrap();
    assert_eq!(&commit[..3], &[0, 3, 0x02], "a version 3 D-H Commit");
    p.secure_v3();
    p.send(1, "from the v3 side");
    p.run();
    assert_eq!(p.received(0), ["from the v3 side"]);
}

#[test]
fn v4_is_preferred_when_both_sides_allow_it() {
    let (a, b) = keys();
    let mut p = Pair::new(
        (compatible(Versions::V3_AND_V4), Some(a)),
        (compatible(Versions::V3_AND_V4), Some(b)),
    );
    p.start(0);
    p.run();
    for n in 0..2 {
        let events = p.take(n);
        assert!(events.iter().any(|e| matches!(e, Event::Secure { .. })));
        assert!(!events.iter().any(|e| matches!(e, Event::SecureV3 { .. })));
        assert_eq!(p.v3_state(n).0, ConversationState::Start);
    }
    assert!(!p.sent.iter().any(|(_, t)| is_v3_encoded(t)));
}

#[test]
fn whitespace_tag_of_a_v3_only_peer_starts_a_v3_ake() {
    let mut p = Pair::v4_and_v3_only();
    // Bob's plaintext carries the base tag and the v3 tag only.
    p.send(1, "hello");
    let (_, tagged) = p.wire[0].clone();
    let (text, offered) = find_whitespace_tag(&tagged);
    assert_eq!((text.as_ref(), offered), ("hello", Some(Versions::V3)));
    p.secure_v3();
    // Alice's tagged plaintext offers both versions.
    let mut q = Pair::v4_and_v3_only();
    q.send(0, "hi");
    assert_eq!(
        find_whitespace_tag(&q.wire[0].1).1,
        Some(Versions::V3_AND_V4)
    );
}

#[test]
fn without_a_v3_key_or_permission_version_3_is_neither_offered_nor_answered() {
    let (_, b) = keys();
    for (versions, key) in [(Versions::V3_AND_V4, None), (Versions::V4, Some(keys().0))] {
        let mut p = Pair::new(
            (compatible(versions), key),
            (compatible(Versions::V3), Some(keys().1)),
        );
        p.start(0);
        assert!(p.wire[0].1.starts_with("?OTRv4?"), "{}", p.wire[0].1);
        p.wire.clear();
        p.sent.clear();
        p.start(1);
        p.run();
        let events = p.take(0);
        assert!(
            events.iter().any(|e| matches!(
                e,
                Event::Warning {
                    warning: Warning::Otrv3Unsupported,
                    ..
                }
            )),
            "{events:?}"
        );
        assert!(!p.sent.iter().any(|(n, _)| *n == 0), "Alice sent nothing");
    }
    // A v3 message to an account without a key is ignored with the same warning.
    let mut p = Pair::new(
        (compatible(Versions::V3_AND_V4), None),
        (compatible(Versions::V3), Some(b)),
    );
    p.send(1, "hello"); // tagged plaintext: Alice does not answer
    p.run();
    assert!(!p.sent.iter().any(|(n, _)| *n == 0));
}

#[test]
fn smp_over_v3_both_outcomes() {
    for (same, want) in [(true, SmpUpdate::Succeeded), (false, SmpUpdate::Failed)] {
        let mut p = Pair::v4_and_v3_only();
        p.start(0);
        p.secure_v3();
        let bob_tag = p.tag(1);
        let ev = p.sides[0].client.smp_start(
            BOB,
            bob_tag,
            b"shared",
            Some("Our secret?"),
            p.now,
            &mut p.rng,
        );
        p.absorb(0, ev);
        p.run();
        let asked = p.take(1).into_iter().any(|e| {
            matches!(e, Event::Smp { update: SmpUpdate::AskForSecret { question: Some(q) }, .. } if q == "Our secret?")
        });
        assert!(asked);
        let alice_tag = p.tag(0);
        let secret: &[u8] = if same { b"shared" } else { b"other" };
        let ev = p.sides[1]
            .client
            .smp_respond(ALICE, alice_tag, secret, p.now, &mut p.rng);
        p.absorb(1, ev);
        p.run();
        for n in 0..2 {
            let got: Vec<SmpUpdate> = p
                .take(n)
                .into_iter()
                .filter_map(|e| match e {
                    Event::Smp { update, .. } => Some(update),
                    _ => None,
                })
                .collect();
            assert_eq!(got.last(), Some(&want), "side {n}: {got:?}");
        }
    }
}

#[test]
fn ending_a_v3_session_finishes_the_peer_and_nothing_leaks_afterwards() {
    let mut p = Pair::v4_and_v3_only();
    p.start(0);
    p.secure_v3();
    let ev = p.sides[0].client.end(BOB, None, p.now, &mut p.rng);
    p.absorb(0, ev);
    assert!(
        p.take(0)
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. }))
    );
    assert_eq!(p.v3_state(0).0, ConversationState::Start);
    p.run();
    assert!(
        p.take(1)
            .iter()
            .any(|e| matches!(e, Event::Finished { .. }))
    );
    assert_eq!(p.v3_state(1).0, ConversationState::Finished);
    // Bob's next message is not sent in plaintext.
    p.send(1, "are you there?");
    assert!(p.wire.is_empty());
    assert!(p.take(1).iter().any(|e| matches!(
        e,
        Event::NotSent {
            reason: NotSentReason::Finished,
            ..
        }
    )));
    // Ending his side too returns to plaintext; a new query restarts v3.
    let ev = p.sides[1].client.end(ALICE, None, p.now, &mut p.rng);
    p.absorb(1, ev);
    assert_eq!(p.v3_state(1).0, ConversationState::Start);
    p.start(0);
    p.secure_v3();
}

#[test]
fn tampered_v3_data_message_is_refused_and_reported() {
    let mut p = Pair::v4_and_v3_only();
    p.start(0);
    p.secure_v3();
    p.send(0, "untouched");
    let (_, wire) = p.wire.remove(0);
    let mut bytes = decode_otr(&wire).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 1; // inside the encrypted message or the MAC
    let forged = otr4::hazmat::wire::encoded::encode_otr(&bytes);
    p.deliver(0, &forged);
    let events = p.take(1);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Error {
                error: ConversationError::Otrv3(_),
                ..
            }
        )),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Received { .. })));
    // An OTR error message went back to Alice.
    assert!(
        p.wire
            .iter()
            .any(|(n, t)| *n == 1 && t.starts_with("?OTR Error:"))
    );
    // The genuine message still decrypts.
    p.wire.clear();
    p.deliver(0, &wire);
    assert_eq!(p.received(1), ["untouched"]);
}

#[test]
fn v3_ake_and_messages_in_fragments() {
    let (a, b) = keys();
    let small = |v| Policy {
        max_message_size: 150,
        ..compatible(v)
    };
    let mut p = Pair::new(
        (small(Versions::V3_AND_V4), Some(a)),
        (small(Versions::V3), Some(b)),
    );
    p.start(0);
    p.secure_v3();
    assert!(p.sent.iter().all(|(_, t)| t.len() <= 150));
    assert!(p.sent.iter().any(|(_, t)| t.starts_with("?OTR|")));
    let long = "x".repeat(700);
    p.send(1, &long);
    p.run();
    assert_eq!(p.received(0), [long]);
}

#[test]
fn queued_messages_go_out_when_the_v3_session_is_up() {
    let (a, b) = keys();
    let strict = Policy {
        require_encryption: true,
        ..compatible(Versions::V3_AND_V4)
    };
    let mut p = Pair::new((strict, Some(a)), (compatible(Versions::V3), Some(b)));
    p.send(0, "secret one");
    p.send(0, "secret two");
    // Queued, and a query went out instead of the plaintext.
    assert_eq!(p.wire.len(), 1);
    assert!(p.wire[0].1.starts_with("?OTRv"));
    p.secure_v3();
    assert_eq!(p.received(1), ["secret one", "secret two"]);
}

#[test]
fn the_v3_key_survives_export_but_the_v3_session_does_not() {
    let mut p = Pair::v4_and_v3_only();
    p.start(0);
    p.secure_v3();
    let key = [7u8; 32];
    let blob = p.sides[0]
        .client
        .export(&p.sides[0].prekeys, &key, &mut p.rng);
    let (client, prekeys) = Client::import(&key, &blob).unwrap();
    assert_eq!(
        client.account().v3_fingerprint(),
        Some(keys().0.fingerprint())
    );
    p.sides[0].client = client;
    p.sides[0].prekeys = prekeys;
    assert_eq!(p.v3_state(0).0, ConversationState::Start);
    // Bob's next message cannot be read; Alice says so and a new query brings v3 back.
    p.send(1, "still there?");
    p.run();
    assert!(p.take(0).iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::NotInPrivateState,
            ..
        }
    )));
    p.start(0);
    p.secure_v3();
}
