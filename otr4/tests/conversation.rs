//! End-to-end tests of the conversation layer: clients exchanging messages over a simulated
//! network that relays every message to every device of the addressed bare JID.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::hazmat::wire::codec::Codec;
use std::collections::VecDeque;

use otr4::ErrorCode;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::{DataMessage, Message};
use otr4::hazmat::wire::query::find_whitespace_tag;
use otr4::{
    Account, Client, ConversationError, ConversationState, DEFAULT_MAX_INSTANCES, DisconnectReason,
    Event, NotSentReason, PersistError, Policy, Selection, SmpUpdate, Warning,
};
use otr4::{Tlv, TlvType};
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: i64 = 1_700_000_000;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

struct Node {
    jid: String,
    client: Client,
    prekeys: PrekeyStore,
    seen: Vec<Event>,
}

impl Node {
    fn receive(&mut self, from: &str, text: &str, now: i64, rng: &mut StdRng) -> Vec<Event> {
        self.client.receive(from, text, &mut self.prekeys, now, rng)
    }

    fn export(&self, key: &[u8; 32], rng: &mut StdRng) -> Vec<u8> {
        self.client.export(&self.prekeys, key, rng)
    }

    fn import(&mut self, key: &[u8; 32], bytes: &[u8]) {
        (self.client, self.prekeys) = Client::import(key, bytes).unwrap();
    }
}

/// One message in flight.
#[derive(Clone)]
struct Packet {
    from: usize,
    to_jid: String,
    to_instance: Option<InstanceTag>,
    text: String,
}

struct Net {
    nodes: Vec<Node>,
    wire: VecDeque<Packet>,
    now: i64,
    rng: StdRng,
    /// Every packet ever sent, for replays.
    log: Vec<Packet>,
}

impl Net {
    fn new(seed: u64) -> Net {
        Net {
            nodes: Vec::new(),
            wire: VecDeque::new(),
            now: T0,
            rng: StdRng::seed_from_u64(seed),
            log: Vec::new(),
        }
    }

    fn add(&mut self, jid: &str, policy: Policy) -> usize {
        let account = Account::generate(&mut self.rng, policy, self.now).unwrap();
        self.nodes.push(Node {
            jid: jid.to_string(),
            prekeys: PrekeyStore::new(account.instance_tag()),
            client: Client::new(account, jid),
            seen: Vec::new(),
        });
        self.nodes.len() - 1
    }

    fn tag(&self, n: usize) -> InstanceTag {
        self.nodes[n].client.account().instance_tag()
    }

    fn client(&self, n: usize) -> &Client {
        &self.nodes[n].client
    }

    /// Routes a node's events: sends to the wire, the rest to its `seen` list.
    fn absorb(&mut self, n: usize, events: Vec<Event>) {
        for e in events {
            match e {
                Event::Send {
                    to,
                    to_instance,
                    text,
                } => {
                    let p = Packet {
                        from: n,
                        to_jid: to,
                        to_instance,
                        text,
                    };
                    self.log.push(p.clone());
                    self.wire.push_back(p);
                }
                other => self.nodes[n].seen.push(other),
            }
        }
    }

    /// Lets node `n` act on its client.
    fn act(&mut self, n: usize, f: impl FnOnce(&mut Client, i64, &mut StdRng) -> Vec<Event>) {
        let now = self.now;
        let events = f(&mut self.nodes[n].client, now, &mut self.rng);
        self.absorb(n, events);
    }

    /// Lets time pass for node `n` (`Client::tick`).
    fn tick(&mut self, n: usize) {
        let now = self.now;
        let node = &mut self.nodes[n];
        let events = node.client.tick(&mut node.prekeys, now, &mut self.rng);
        self.absorb(n, events);
    }

    /// Delivers one packet to every node of its bare JID (except the sender).
    fn deliver(&mut self, p: Packet) {
        let from_jid = self.nodes[p.from].jid.clone();
        let targets: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != p.from && self.nodes[i].jid == p.to_jid)
            .collect();
        for i in targets {
            let now = self.now;
            let events = self.nodes[i].receive(&from_jid, &p.text, now, &mut self.rng);
            self.absorb(i, events);
        }
    }

    /// Delivers everything until the network is quiet.
    fn run(&mut self) {
        while let Some(p) = self.wire.pop_front() {
            self.deliver(p);
        }
    }

    fn take_wire(&mut self) -> Vec<Packet> {
        self.wire.drain(..).collect()
    }

    fn take_seen(&mut self, n: usize) -> Vec<Event> {
        std::mem::take(&mut self.nodes[n].seen)
    }

    fn texts(&mut self, n: usize) -> Vec<String> {
        self.take_seen(n)
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

    fn state(&self, n: usize, peer_jid: &str, peer: usize) -> Option<ConversationState> {
        self.client(n)
            .conversation(peer_jid, self.tag(peer))
            .map(|c| c.state())
    }

    fn send(&mut self, n: usize, to: &str, text: &str) {
        let to = to.to_string();
        let text = text.to_string();
        self.act(n, |c, now, rng| c.send(&to, &text, &[], now, rng));
    }
}

fn secure_ssids(events: &[Event]) -> Vec<otr4::Ssid> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Secure { ssid, .. } => Some(*ssid),
            _ => None,
        })
        .collect()
}

fn has_warning(events: &[Event], pred: impl Fn(&Warning) -> bool) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Warning { warning, .. } if pred(warning)))
}

/// Alice and Bob (default policy) through a query message; returns (net, alice, bob).
fn connected(seed: u64, alice_policy: Policy, bob_policy: Policy) -> (Net, usize, usize) {
    let mut net = Net::new(seed);
    let a = net.add(ALICE, alice_policy);
    let b = net.add(BOB, bob_policy);
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    net.run();
    let (sa, sb) = (net.take_seen(a), net.take_seen(b));
    let (ssa, ssb) = (secure_ssids(&sa), secure_ssids(&sb));
    assert_eq!(ssa.len(), 1, "{sa:?}");
    assert_eq!(ssa, ssb);
    (net, a, b)
}

fn data_message(text: &str) -> DataMessage {
    match Message::decode(&decode_otr(text).unwrap()).unwrap() {
        Message::Data(d) => d,
        other => panic!("not a data message: {other:?}"),
    }
}

#[test]
fn query_message_dake_then_messages_both_ways() {
    let mut net = Net::new(1);
    let a = net.add(ALICE, Policy::default());
    let b = net.add(BOB, Policy::default());
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    let query = net.take_wire();
    assert_eq!(query.len(), 1);
    assert_eq!(query[0].text, "?OTRv4?");
    assert_eq!(query[0].to_instance, None);
    for p in query {
        net.deliver(p);
    }
    // Bob answers with an Identity message without a receiver tag.
    let identity = net.take_wire();
    assert_eq!(identity.len(), 1);
    assert!(matches!(
        Message::decode(&decode_otr(&identity[0].text).unwrap()).unwrap(),
        Message::Identity(m) if m.receiver_tag == InstanceTag::UNKNOWN && m.sender_tag == net.tag(b)
    ));
    for p in identity {
        net.deliver(p);
    }
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::WaitingAuthI));
    net.run();
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
    let (sa, sb) = (net.take_seen(a), net.take_seen(b));
    assert_eq!(secure_ssids(&sa), secure_ssids(&sb));
    // Fingerprints in the Secure events are the peers' account fingerprints.
    assert!(sa.iter().any(
        |e| matches!(e, Event::Secure { their_fingerprint, instance, .. }
        if *their_fingerprint == net.client(b).account().fingerprint() && *instance == net.tag(b))
    ));
    assert_eq!(
        net.client(a).conversation(BOB, net.tag(b)).unwrap().ssid(),
        net.client(b)
            .conversation(ALICE, net.tag(a))
            .unwrap()
            .ssid()
    );

    net.send(a, BOB, "hi Bob");
    let wire = net.take_wire();
    assert!(wire[0].text.starts_with("?OTR:AAQD"), "a data message");
    assert_eq!(wire[0].to_instance, Some(net.tag(b)));
    net.wire.extend(wire);
    net.run();
    assert_eq!(net.texts(b), ["hi Bob"]);
    net.send(b, ALICE, "hi Alice");
    net.send(b, ALICE, "how are you?");
    net.run();
    assert_eq!(net.texts(a), ["hi Alice", "how are you?"]);
}

#[test]
fn whitespace_tag_starts_the_dake_and_stops_after_plaintext() {
    let mut net = Net::new(2);
    let a = net.add(ALICE, Policy::default());
    let b = net.add(BOB, Policy::default());
    net.send(a, BOB, "hello in plaintext");
    let wire = net.take_wire();
    assert_eq!(wire.len(), 1);
    let (stripped, tag) = find_whitespace_tag(&wire[0].text);
    assert_eq!(stripped, "hello in plaintext");
    assert!(tag.unwrap().has_v4());
    net.wire.extend(wire);
    net.run();
    let sb = net.take_seen(b);
    assert!(sb.iter().any(
        |e| matches!(e, Event::Received { text, encrypted: false, from_instance: None, .. }
        if text == "hello in plaintext")
    ));
    assert_eq!(secure_ssids(&sb).len(), 1);
    assert_eq!(secure_ssids(&net.take_seen(a)), secure_ssids(&sb));
    net.send(b, ALICE, "secret");
    net.run();
    assert_eq!(net.texts(a), ["secret"]);

    // A peer that answers with plaintext: stop sending the tag.
    let mut net = Net::new(3);
    let quiet = Policy {
        whitespace_start_dake: false,
        send_whitespace_tag: false,
        ..Policy::default()
    };
    let a = net.add(ALICE, Policy::default());
    let b = net.add(BOB, quiet);
    net.send(a, BOB, "one");
    net.run();
    assert!(net.client(b).instances(ALICE).is_empty());
    assert!(net.client(a).peer(BOB).unwrap().sends_whitespace_tag());
    net.send(b, ALICE, "plain reply");
    let wire = net.take_wire();
    assert_eq!(
        wire[0].text, "plain reply",
        "no tag from a client that does not send them"
    );
    net.wire.extend(wire);
    net.run();
    assert!(!net.client(a).peer(BOB).unwrap().sends_whitespace_tag());
    net.send(a, BOB, "two");
    let wire = net.take_wire();
    assert_eq!(wire[0].text, "two");
}

#[test]
fn messages_queued_during_the_dake_are_delivered_after_it() {
    for (seed, policy) in [
        (
            4,
            Policy {
                require_encryption: true,
                ..Policy::default()
            },
        ),
        (5, Policy::standalone()),
        (6, Policy::interactive_only()),
    ] {
        let mut net = Net::new(seed);
        let a = net.add(ALICE, policy);
        let b = net.add(BOB, policy);
        net.send(a, BOB, "first");
        net.send(a, BOB, "second");
        let seen = net.take_seen(a);
        assert_eq!(
            seen.iter()
                .filter(|e| matches!(
                    e,
                    Event::NotSent {
                        reason: NotSentReason::Queued,
                        ..
                    }
                ))
                .count(),
            2
        );
        // One DAKE start (a query, or an Identity message), no plaintext leaked.
        let wire = net.take_wire();
        assert_eq!(wire.len(), 1, "{:?}", policy.mode);
        assert!(!wire[0].text.contains("first"));
        assert_eq!(net.client(a).peer(BOB).unwrap().queued(), 2);
        net.wire.extend(wire);
        net.run();
        assert_eq!(net.texts(b), ["first", "second"]);
        assert_eq!(net.client(a).peer(BOB).unwrap().queued(), 0);
        // While the DAKE of a known instance runs, messages queue on the conversation.
        net.act(a, |c, now, rng| c.end(BOB, None, now, rng));
        net.run();
        net.act(b, |c, now, rng| c.end(ALICE, None, now, rng));
        net.run();
        net.take_seen(a);
        net.take_seen(b);
        net.send(a, BOB, "third");
        net.run();
        assert_eq!(net.texts(b), ["third"]);
        assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    }
}

#[test]
fn six_ratchet_rotations_and_more() {
    let (mut net, a, b) = connected(7, Policy::default(), Policy::default());
    let mut expected_a = Vec::new();
    let mut expected_b = Vec::new();
    for round in 0..8 {
        let (from, to, jid, exp) = if round % 2 == 0 {
            (a, b, BOB, &mut expected_b)
        } else {
            (b, a, ALICE, &mut expected_a)
        };
        let _ = to;
        let text = format!("message {round}");
        exp.push(text.clone());
        net.send(from, jid, &text);
        net.run();
    }
    assert_eq!(net.texts(a), expected_a);
    assert_eq!(net.texts(b), expected_b);
    let ia = net
        .client(a)
        .conversation(BOB, net.tag(b))
        .unwrap()
        .ratchet_id()
        .unwrap();
    let ib = net
        .client(b)
        .conversation(ALICE, net.tag(a))
        .unwrap()
        .ratchet_id()
        .unwrap();
    assert!(ia >= 6 && ib >= 6, "ratchet ids {ia} {ib}");
}

#[test]
fn replayed_or_stray_identity_does_not_break_the_live_session() {
    let mut net = Net::new(8);
    let a = net.add(ALICE, Policy::default());
    let b = net.add(BOB, Policy::default());
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    net.run();
    let ssid = net.client(a).conversation(BOB, net.tag(b)).unwrap().ssid();
    net.take_seen(a);
    // Bob's Identity message, replayed into Alice's encrypted conversation: ignored.
    let identity = net
        .log
        .iter()
        .find(|p| p.from == b && p.text.starts_with("?OTR:AAQ1"))
        .unwrap()
        .clone();
    net.deliver(identity.clone());
    assert!(net.take_wire().is_empty(), "no Auth-R for a replay");
    assert!(has_warning(&net.take_seen(a), |w| *w == Warning::ReplayedIdentity));
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    net.send(b, ALICE, "still here");
    net.run();
    assert_eq!(net.texts(a), ["still here"]);

    // A stray but valid Identity message claiming Bob's instance (someone else's keys):
    // Alice answers it (WAITING_AUTH_I) but the live session keeps working both ways.
    let mut mallory_rng = StdRng::seed_from_u64(99);
    let mallory_key = otr4::hazmat::crypto::ed448::KeyPair::generate(&mut mallory_rng);
    let mallory = Account::from_keys(
        mallory_key,
        otr4::hazmat::crypto::keys::generate_forging_point(&mut mallory_rng),
        None,
        net.tag(b),
        Policy::default(),
        net.now,
    )
    .unwrap();
    let mut mallory = Client::new(mallory, BOB);
    let ev = mallory.start_dake(ALICE, Some(net.tag(a)), net.now, &mut mallory_rng);
    let Event::Send { text, .. } = &ev[0] else {
        panic!()
    };
    let now = net.now;
    let ev = net.nodes[a].receive(BOB, text, now, &mut net.rng);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Send { .. })),
        "Auth-R sent"
    );
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::WaitingAuthI));
    let conv = net.client(a).conversation(BOB, net.tag(b)).unwrap();
    assert!(conv.is_encrypted());
    assert_eq!(conv.ssid(), ssid);
    net.send(a, BOB, "through the old session");
    net.send(b, ALICE, "reply through the old session");
    // Drop Alice's Auth-R (it went to Mallory) and deliver the data messages only.
    net.wire.retain(|p| p.text.starts_with("?OTR:AAQD"));
    net.run();
    assert_eq!(net.texts(b), ["through the old session"]);
    assert_eq!(net.texts(a), ["reply through the old session"]);
    // The stalled DAKE times out and the session is plain ENCRYPTED_MESSAGES again.
    net.now += Policy::default().dake_timeout_secs;
    net.tick(a);
    assert!(has_warning(&net.take_seen(a), |w| *w == Warning::DakeTimedOut));
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    net.take_wire();

    // A genuine new DAKE from Bob while encrypted: both keep talking, then switch keys.
    let alice_tag = net.tag(a);
    net.act(b, |c, now, rng| {
        c.start_dake(ALICE, Some(alice_tag), now, rng)
    });
    assert_eq!(
        net.state(b, ALICE, a),
        Some(ConversationState::WaitingAuthR)
    );
    net.send(b, ALICE, "during the new DAKE");
    net.run();
    assert_eq!(net.texts(a), ["during the new DAKE"]);
    let new_ssid = net.client(a).conversation(BOB, net.tag(b)).unwrap().ssid();
    assert_ne!(new_ssid, ssid);
    assert_eq!(
        new_ssid,
        net.client(b)
            .conversation(ALICE, net.tag(a))
            .unwrap()
            .ssid()
    );
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    // The first Identity message, replayed again, is still ignored.
    net.deliver(identity);
    assert!(net.take_wire().is_empty());
    net.send(a, BOB, "new keys");
    net.run();
    assert_eq!(net.texts(b), ["new keys"]);
}

#[test]
fn tampered_data_message_gives_error_1_and_the_next_one_decrypts() {
    let (mut net, a, b) = connected(9, Policy::default(), Policy::default());
    net.send(a, BOB, "genuine 1");
    let mut wire = net.take_wire();
    let mut d = data_message(&wire[0].text);
    d.encrypted[0] ^= 0x80;
    wire[0].text = encode_otr(&d.encode());
    net.wire.extend(wire);
    net.run();
    let sb = net.take_seen(b);
    assert!(sb.iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::Unreadable(_),
            ..
        }
    )));
    let sa = net.take_seen(a);
    assert!(sa.iter().any(|e| matches!(
        e,
        Event::PeerError {
            code: ErrorCode::UnreadableMessage,
            ..
        }
    )));
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
    net.send(a, BOB, "genuine 2");
    net.run();
    assert_eq!(net.texts(b), ["genuine 2"]);

    // With IGNORE_UNREADABLE set (the flag is authenticated, so set it on a fresh
    // heartbeat-style message): no error message is sent.
    net.act(a, |c, now, rng| {
        c.send(BOB, "", &[Tlv::padding(3)], now, rng)
    });
    let mut wire = net.take_wire();
    let mut d = data_message(&wire[0].text);
    assert_eq!(d.flags, 1);
    d.mac[0] ^= 1;
    wire[0].text = encode_otr(&d.encode());
    net.wire.extend(wire);
    net.run();
    assert!(net.take_seen(b).is_empty(), "no error and no notification");
    assert!(net.take_seen(a).is_empty(), "no error message sent");

    // A replay of an already decrypted message: ERROR_1, nothing displayed.
    let old = net
        .log
        .iter()
        .filter(|p| p.from == a && p.text.starts_with("?OTR:AAQD"))
        .nth(1)
        .unwrap()
        .clone();
    net.deliver(old);
    assert!(net.texts(b).is_empty());
    net.run();
    assert!(
        net.take_seen(a)
            .iter()
            .any(|e| matches!(e, Event::PeerError { .. }))
    );
}

#[test]
fn data_message_without_a_session_gives_error_2() {
    // Interactive-only: no Non-Interactive-Auth message can make the session, so a data
    // message of a first ratchet is not kept for one (docs/spec-notes.md); in the other
    // modes the error comes when the stored message expires (tests/offline.rs).
    let policy = Policy::interactive_only();
    let (mut net, a, b) = connected(10, policy, policy);
    let ta = net.tag(a);
    assert!(net.nodes[b].client.forget_instance(ALICE, ta));
    net.send(a, BOB, "into the void");
    net.run();
    let sb = net.take_seen(b);
    assert!(sb.iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::NotInPrivateState,
            ..
        }
    )));
    let sa = net.take_seen(a);
    assert!(sa.iter().any(|e| matches!(
        e,
        Event::PeerError {
            code: ErrorCode::NotInPrivateState,
            ..
        }
    )));
    // Nothing was restarted: Alice is still encrypted, Bob has no conversation.
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    assert!(net.client(b).instances(ALICE).is_empty());
}

#[test]
fn data_messages_arriving_before_auth_i_are_stored_then_read() {
    let mut net = Net::new(11);
    let a = net.add(ALICE, Policy::default());
    let b = net.add(BOB, Policy::default());
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    // query → Bob's Identity → Alice's Auth-R
    for _ in 0..2 {
        let w = net.take_wire();
        for p in w {
            net.deliver(p);
        }
    }
    // Bob receives Auth-R: sends Auth-I; then sends a data message at once.
    let auth_r = net.take_wire();
    for p in auth_r {
        net.deliver(p);
    }
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
    net.send(b, ALICE, "early bird");
    let mut w = net.take_wire();
    assert_eq!(w.len(), 2);
    w.reverse(); // data before Auth-I
    let data = w.remove(0);
    net.deliver(data);
    assert_eq!(
        net.client(a)
            .conversation(BOB, net.tag(b))
            .unwrap()
            .stored(),
        1
    );
    assert!(
        net.take_wire().is_empty(),
        "no error message for a stored message"
    );
    net.wire.extend(w);
    net.run();
    assert_eq!(net.texts(a), ["early bird"]);
    assert_eq!(
        net.client(a)
            .conversation(BOB, net.tag(b))
            .unwrap()
            .stored(),
        0
    );
}

#[test]
fn stored_early_messages_expire_via_tick() {
    let mut net = Net::new(12);
    // The DAKE (stalled before Auth-I) must outlive the stored messages here: its timeout
    // would drop them all at once.
    let policy = Policy {
        dake_timeout_secs: 2 * Policy::default().stored_message_secs,
        ..Policy::default()
    };
    let a = net.add(ALICE, policy);
    let b = net.add(BOB, Policy::default());
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    for _ in 0..3 {
        let w = net.take_wire();
        for p in w {
            net.deliver(p);
        }
    }
    net.send(b, ALICE, "early");
    let w = net.take_wire();
    let data = w
        .into_iter()
        .find(|p| p.text.starts_with("?OTR:AAQD"))
        .unwrap();
    net.deliver(data);
    assert_eq!(
        net.client(a)
            .conversation(BOB, net.tag(b))
            .unwrap()
            .stored(),
        1
    );
    // A second early message, ten seconds younger.
    let stored_at = net.now;
    net.now += 10;
    net.send(b, ALICE, "later");
    let data = net
        .take_wire()
        .into_iter()
        .find(|p| p.text.starts_with("?OTR:AAQD"))
        .unwrap();
    net.deliver(data);
    let stored = |net: &Net| {
        net.client(a)
            .conversation(BOB, net.tag(b))
            .unwrap()
            .stored()
    };
    assert_eq!(stored(&net), 2);
    // One second before its lifetime ends, the first is kept and nothing is reported.
    net.now = stored_at + Policy::default().stored_message_secs - 1;
    net.tick(a);
    let seen = net.take_seen(a);
    assert!(
        !has_warning(&seen, |w| matches!(w, Warning::StoredMessagesExpired(_))),
        "{seen:?}"
    );
    assert_eq!(stored(&net), 2);
    // At its end, the first goes and the second stays.
    net.now += 1;
    net.tick(a);
    assert!(has_warning(&net.take_seen(a), |w| *w
        == Warning::StoredMessagesExpired(1)));
    assert_eq!(stored(&net), 1);
    net.now += 10;
    net.tick(a);
    assert_eq!(
        net.client(a)
            .conversation(BOB, net.tag(b))
            .unwrap()
            .stored(),
        0
    );
}

fn smp_updates(events: &[Event]) -> Vec<SmpUpdate> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Smp { update, .. } => Some(update.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn smp_success_failure_and_abort_through_the_conversation() {
    let (mut net, a, b) = connected(13, Policy::default(), Policy::default());
    let (ta, tb) = (net.tag(a), net.tag(b));
    for (answer, expect) in [("blue", SmpUpdate::Succeeded), ("red", SmpUpdate::Failed)] {
        net.act(a, |c, now, rng| {
            c.smp_start(BOB, tb, b"blue", Some("favourite colour?"), now, rng)
        });
        net.run();
        let sb = smp_updates(&net.take_seen(b));
        assert_eq!(
            sb,
            [SmpUpdate::AskForSecret {
                question: Some("favourite colour?".into())
            }]
        );
        net.act(b, |c, now, rng| {
            c.smp_respond(ALICE, ta, answer.as_bytes(), now, rng)
        });
        net.run();
        let sa = smp_updates(&net.take_seen(a));
        let sb = smp_updates(&net.take_seen(b));
        assert_eq!(sa.last(), Some(&expect), "{sa:?}");
        assert_eq!(sb.last(), Some(&expect), "{sb:?}");
        // No SMP message was shown as a chat message.
        assert!(net.texts(a).is_empty());
    }
    // Abort in the middle.
    net.act(a, |c, now, rng| c.smp_start(BOB, tb, b"x", None, now, rng));
    net.run();
    assert_eq!(
        smp_updates(&net.take_seen(b)),
        [SmpUpdate::AskForSecret { question: None }]
    );
    net.act(b, |c, now, rng| c.smp_abort(ALICE, ta, now, rng));
    net.run();
    assert_eq!(
        smp_updates(&net.take_seen(a)),
        [SmpUpdate::InProgress, SmpUpdate::Aborted { reason: None }]
    );
    assert_eq!(
        net.client(a).conversation(BOB, tb).unwrap().smp_state(),
        Some(otr4::hazmat::smp::SmpState::Expect1)
    );
    // Responding with nothing pending is a typed error, and nothing is sent (there is no
    // exchange to abort).
    net.take_seen(b);
    net.take_wire();
    net.act(b, |c, now, rng| c.smp_respond(ALICE, ta, b"late", now, rng));
    assert!(net.take_seen(b).iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::Smp(otr4::SmpError::NoPendingRequest),
            ..
        }
    )));
    assert!(
        net.take_wire().is_empty(),
        "an SMP abort was sent for nothing"
    );
    // The conversation still works.
    net.send(b, ALICE, "after SMP");
    net.run();
    assert_eq!(net.texts(a), ["after SMP"]);
}

#[test]
fn extra_symmetric_key_is_the_same_on_both_sides() {
    let (mut net, a, b) = connected(14, Policy::default(), Policy::default());
    let tb = net.tag(b);
    net.act(a, |c, now, rng| {
        c.use_extra_symmetric_key(BOB, tb, *b"FILE", b"report.pdf", now, rng)
    });
    net.run();
    let key_of = |events: Vec<Event>| {
        events
            .into_iter()
            .find_map(|e| match e {
                Event::ExtraSymmetricKey {
                    key, context, data, ..
                } => Some((key.as_bytes().to_vec(), context, data)),
                _ => None,
            })
            .unwrap()
    };
    let ka = key_of(net.take_seen(a));
    let kb = key_of(net.take_seen(b));
    assert_eq!(ka, kb);
    assert_eq!(ka.1, *b"FILE");
    assert_eq!(ka.2, b"report.pdf");
}

#[test]
fn session_expiry_sends_tlv_1_and_the_peer_goes_finished() {
    let policy = Policy {
        session_expiry_secs: 3600,
        ..Policy::default()
    };
    let (mut net, a, b) = connected(15, policy, Policy::default());
    net.send(a, BOB, "hello");
    net.run();
    net.send(b, ALICE, "hi");
    net.run();
    net.take_seen(a);
    net.take_seen(b);
    // Before the expiry: nothing but maybe a heartbeat.
    net.now += 1800;
    net.tick(a);
    assert!(
        !net.take_seen(a)
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. }))
    );
    net.take_wire();
    net.now += 3600;
    net.tick(a);
    let sa = net.take_seen(a);
    assert!(sa.iter().any(|e| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::Expired,
            ..
        }
    )));
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Finished));
    let wire = net.take_wire();
    assert_eq!(wire.len(), 1);
    let d = data_message(&wire[0].text);
    assert_eq!(d.flags, 1, "IGNORE_UNREADABLE");
    net.wire.extend(wire);
    net.run();
    let sb = net.take_seen(b);
    assert!(sb.iter().any(|e| matches!(e, Event::Finished { .. })));
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Finished));
    // FINISHED: nothing is sent, the user is told.
    net.send(b, ALICE, "anyone?");
    assert!(net.take_wire().is_empty());
    assert!(net.take_seen(b).iter().any(|e| matches!(
        e,
        Event::NotSent {
            reason: NotSentReason::Finished,
            ..
        }
    )));
}

#[test]
fn heartbeat_after_a_quiet_period() {
    let (mut net, a, b) = connected(16, Policy::default(), Policy::default());
    net.send(a, BOB, "ping");
    net.run();
    net.take_seen(b);
    // Bob received and has not sent for longer than the heartbeat interval.
    net.now += Policy::default().heartbeat_secs + 1;
    net.tick(b);
    let wire = net.take_wire();
    assert_eq!(wire.len(), 1);
    let d = data_message(&wire[0].text);
    assert_eq!(d.flags, 1);
    let before = net
        .client(a)
        .conversation(BOB, net.tag(b))
        .unwrap()
        .ratchet_id();
    net.wire.extend(wire);
    net.run();
    assert!(net.texts(a).is_empty(), "heartbeats are not displayed");
    let after = net
        .client(a)
        .conversation(BOB, net.tag(b))
        .unwrap()
        .ratchet_id();
    assert!(after > before, "the heartbeat ratcheted");
    // Another tick: nothing received since, no heartbeat.
    net.tick(b);
    assert!(net.take_wire().is_empty());
}

#[test]
fn fragments_with_a_small_max_size_out_of_order() {
    let small = Policy {
        max_message_size: 120,
        ..Policy::default()
    };
    let mut net = Net::new(17);
    let a = net.add(ALICE, small);
    let b = net.add(BOB, small);
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    let mut rounds = 0;
    while !net.wire.is_empty() {
        let mut w = net.take_wire();
        for p in &w {
            assert!(p.text.len() <= 120, "{}", p.text.len());
        }
        w.reverse();
        if w.len() > 2 {
            let mid = w.len() / 2;
            w.swap(0, mid);
        }
        for p in w {
            net.deliver(p);
        }
        rounds += 1;
    }
    assert!(rounds >= 4);
    assert_eq!(secure_ssids(&net.take_seen(a)).len(), 1);
    assert_eq!(secure_ssids(&net.take_seen(b)).len(), 1);
    let long = "a long message ".repeat(20);
    net.send(a, BOB, &long);
    let mut w = net.take_wire();
    assert!(w.len() > 3);
    assert!(w.iter().all(|p| p.text.starts_with("?OTR|")));
    w.reverse();
    for p in w {
        net.deliver(p);
    }
    assert_eq!(net.texts(b), [long]);
}

#[test]
fn three_devices_of_bob_and_multicasting_to_all_including_our_own() {
    let multicast = Policy {
        selection: Selection::Multicasting,
        ..Policy::default()
    };
    let mut net = Net::new(18);
    let a = net.add(ALICE, multicast);
    let bobs = [
        net.add(BOB, Policy::default()),
        net.add(BOB, Policy::default()),
        net.add(BOB, Policy::default()),
    ];
    let a2 = net.add(ALICE, Policy::default());
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    net.run();
    assert_eq!(net.client(a).instances(BOB).len(), 3);
    for &b in &bobs {
        assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
        assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
        let sb = net.take_seen(b);
        // Each Bob saw the other devices' Auth-R messages and discarded them.
        assert!(has_warning(&sb, |w| matches!(w, Warning::NotForUs { .. })));
    }
    // Alice's second device: a conversation with her own bare JID.
    let a_tag = net.tag(a);
    net.act(a2, |c, now, rng| c.start_dake(ALICE, Some(a_tag), now, rng));
    net.run();
    assert_eq!(net.state(a, ALICE, a2), Some(ConversationState::Encrypted));
    net.take_seen(a);
    net.take_seen(a2);

    net.send(a, BOB, "to every device");
    let wire = net.take_wire();
    assert_eq!(wire.len(), 4, "three Bobs and Alice's other device");
    net.wire.extend(wire);
    net.run();
    for &b in &bobs {
        assert_eq!(net.texts(b), ["to every device"]);
    }
    assert_eq!(net.texts(a2), ["to every device"]);

    // Each device answers through its own session; RECENT_RECEIVED then picks the last.
    for (i, &b) in bobs.iter().enumerate() {
        net.now += 1;
        net.send(b, ALICE, &format!("from device {i}"));
        net.run();
    }
    assert_eq!(
        net.texts(a),
        ["from device 0", "from device 1", "from device 2"]
    );
    let mut recent = multicast;
    recent.selection = Selection::RecentReceived;
    net.nodes[a].client.set_policy(recent).unwrap();
    net.send(a, BOB, "just the last one");
    net.run();
    assert!(net.texts(bobs[0]).is_empty());
    assert!(net.texts(bobs[1]).is_empty());
    assert_eq!(net.texts(bobs[2]), ["just the last one"]);
    // BEST: all encrypted and equally recent in sending; the most recently received wins.
    recent.selection = Selection::RecentSent;
    net.nodes[a].client.set_policy(recent).unwrap();
    net.send(a, BOB, "recent sent");
    net.run();
    assert_eq!(net.texts(bobs[2]), ["recent sent"]);
}

#[test]
fn ninth_device_is_refused() {
    let mut net = Net::new(19);
    let a = net.add(ALICE, Policy::default());
    let bobs: Vec<usize> = (0..=DEFAULT_MAX_INSTANCES)
        .map(|_| net.add(BOB, Policy::default()))
        .collect();
    let a_tag = net.tag(a);
    for &b in &bobs {
        net.act(b, |c, now, rng| c.start_dake(ALICE, Some(a_tag), now, rng));
    }
    // Deliver only the Identity messages to Alice.
    let identities = net.take_wire();
    assert_eq!(identities.len(), DEFAULT_MAX_INSTANCES + 1);
    for p in identities {
        net.deliver(p);
    }
    assert_eq!(net.client(a).instances(BOB).len(), DEFAULT_MAX_INSTANCES);
    let sa = net.take_seen(a);
    let refused: Vec<_> = sa
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Error {
                    error: ConversationError::TooManyDevices { max: 8, .. },
                    ..
                }
            )
        })
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(net.client(a).conversation(BOB, net.tag(bobs[8])).is_none());
    // Forgetting one frees a slot.
    let first = net.tag(bobs[0]);
    assert!(net.nodes[a].client.forget_instance(BOB, first));
    let p = net.log.iter().find(|p| p.from == bobs[8]).unwrap().clone();
    net.deliver(p);
    assert_eq!(
        net.state(a, BOB, bobs[8]),
        Some(ConversationState::WaitingAuthI)
    );
}

#[test]
fn the_caller_sets_the_instance_limit() {
    let mut net = Net::new(23);
    let a = net.add(ALICE, Policy::default());
    net.nodes[a].client.set_max_instances(2);
    assert_eq!(net.client(a).max_instances(), 2);
    let bobs: Vec<usize> = (0..3).map(|_| net.add(BOB, Policy::default())).collect();
    let a_tag = net.tag(a);
    for &b in &bobs {
        net.act(b, |c, now, rng| c.start_dake(ALICE, Some(a_tag), now, rng));
    }
    for p in net.take_wire() {
        net.deliver(p);
    }
    assert_eq!(net.client(a).instances(BOB).len(), 2);
    assert!(net.take_seen(a).iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::TooManyDevices { max: 2, .. },
            ..
        }
    )));
    // Not persisted: an import has the default again, and keeps every conversation.
    let key = [3u8; 32];
    let e = net.nodes[a].export(&key, &mut net.rng);
    net.nodes[a].import(&key, &e);
    assert_eq!(net.client(a).max_instances(), DEFAULT_MAX_INSTANCES);
    assert_eq!(net.client(a).instances(BOB).len(), 2);
}

#[test]
fn persistence_round_trip_mid_conversation_rejects_replays() {
    let (mut net, a, b) = connected(20, Policy::default(), Policy::default());
    net.send(a, BOB, "before restart");
    net.run();
    net.send(b, ALICE, "reply before restart");
    net.run();
    assert_eq!(net.texts(a), ["reply before restart"]);
    assert_eq!(net.texts(b), ["before restart"]);
    // A message in flight during the restart.
    net.send(a, BOB, "in flight");
    let in_flight = net.take_wire();
    let replay = net
        .log
        .iter()
        .find(|p| p.from == a && p.text.starts_with("?OTR:AAQD"))
        .unwrap()
        .clone();

    let (ka, kb) = ([1u8; 32], [2u8; 32]);
    let now = net.now;
    let ea = net.nodes[a].export(&ka, &mut net.rng);
    let eb = net.nodes[b].export(&kb, &mut net.rng);
    let ssid = net.client(a).conversation(BOB, net.tag(b)).unwrap().ssid();
    net.nodes[a].import(&ka, &ea);
    net.nodes[b].import(&kb, &eb);
    assert_eq!(
        net.client(a).conversation(BOB, net.tag(b)).unwrap().ssid(),
        ssid
    );
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));

    net.wire.extend(in_flight);
    net.run();
    assert_eq!(net.texts(b), ["in flight"]);
    // The first message, replayed after the import: rejected (ERROR_1), not shown again.
    net.deliver(replay);
    assert!(net.texts(b).is_empty());
    net.run();
    assert!(
        net.take_seen(a)
            .iter()
            .any(|e| matches!(e, Event::PeerError { .. }))
    );
    // The conversation continues with ratchets on both sides.
    for i in 0..3 {
        net.send(b, ALICE, &format!("after {i}"));
        net.run();
        net.send(a, BOB, &format!("back {i}"));
        net.run();
    }
    assert_eq!(net.texts(a), ["after 0", "after 1", "after 2"]);
    assert_eq!(net.texts(b), ["back 0", "back 1", "back 2"]);
    let _ = now;

    // Queued messages survive too.
    let mut net2 = Net::new(21);
    let c = net2.add(
        ALICE,
        Policy {
            require_encryption: true,
            ..Policy::default()
        },
    );
    net2.send(c, BOB, "queued across restart");
    let e = net2.nodes[c].export(&ka, &mut net2.rng);
    let (restored, _) = Client::import(&ka, &e).unwrap();
    assert_eq!(restored.peer(BOB).unwrap().queued(), 1);
}

#[test]
fn wrong_persistence_key_and_garbage_are_rejected() {
    let (mut net, a, _b) = connected(22, Policy::default(), Policy::default());
    let e = net.nodes[a].export(&[5u8; 32], &mut net.rng);
    assert_eq!(
        Client::import(&[6u8; 32], &e).unwrap_err(),
        PersistError::Authentication
    );
    assert_eq!(
        Account::import(&[5u8; 32], &e).unwrap_err(),
        PersistError::BadMagic
    );
    let mut flipped = e.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 4;
    assert_eq!(
        Client::import(&[5u8; 32], &flipped).unwrap_err(),
        PersistError::Authentication
    );
    for n in [0, 5, 10, 42, e.len() - 1] {
        assert!(Client::import(&[5u8; 32], &e[..n]).is_err());
    }
    assert!(Client::import(&[5u8; 32], &e).is_ok());
}

#[test]
fn standalone_mode_ignores_queries_and_flags_plaintext() {
    let mut net = Net::new(23);
    let a = net.add(ALICE, Policy::default());
    let b = net.add(BOB, Policy::standalone());
    net.act(a, |c, now, rng| c.start(BOB, now, rng));
    net.run();
    assert!(has_warning(&net.take_seen(b), |w| *w == Warning::QueryIgnored));
    assert!(net.client(b).instances(ALICE).is_empty());
    net.send(a, BOB, "plain");
    net.run();
    let sb = net.take_seen(b);
    assert!(sb.iter().any(|e| matches!(
        e,
        Event::Received {
            encrypted: false,
            ..
        }
    )));
    assert!(has_warning(&sb, |w| *w == Warning::Unencrypted
        || *w == Warning::QueryIgnored));
    assert!(
        net.client(b).instances(ALICE).is_empty() && net.take_wire().is_empty(),
        "the whitespace tag of Alice's plaintext started a DAKE in standalone mode"
    );
    // Bob starts with an Identity message; Alice (compatible mode) completes the DAKE.
    net.act(b, |c, now, rng| c.start(ALICE, now, rng));
    net.run();
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
    // A plaintext now: warned as unencrypted while encrypted.
    net.nodes[a]
        .client
        .set_policy(Policy {
            send_whitespace_tag: false,
            ..Policy::default()
        })
        .unwrap();
    net.send(a, BOB, "plain again");
    // Alice sends encrypted (she is encrypted): force a plaintext through the wire.
    net.wire.clear();
    let now = net.now;
    let ev = net.nodes[b].receive(ALICE, "sneaky plaintext", now, &mut net.rng);
    assert!(has_warning(&ev, |w| *w == Warning::UnencryptedWhileEncrypted));
}

#[test]
fn interactive_only_rejects_offline_messages() {
    let mut net = Net::new(24);
    let b = net.add(BOB, Policy::interactive_only());
    let s = net.add(BOB, Policy::standalone());
    // A syntactically valid Prekey message.
    let mut rng = StdRng::seed_from_u64(1);
    let y = *otr4::hazmat::crypto::ed448::KeyPair::generate(&mut rng).public();
    let bdh = otr4::hazmat::crypto::dh::DhKeyPair::generate(&mut rng);
    let prekey = otr4::hazmat::wire::messages::PrekeyMessage {
        id: 1,
        owner_tag: InstanceTag(0x1234),
        y,
        b: bdh.public().clone(),
    };
    let text = encode_otr(&prekey.encode());
    let now = net.now;
    let ev = net.nodes[b].receive(ALICE, &text, now, &mut net.rng);
    assert!(has_warning(&ev, |w| *w == Warning::OfflineRejected));
    let ev = net.nodes[s].receive(ALICE, &text, now, &mut net.rng);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::NonInteractiveUnsupported,
            ..
        }
    )));
}

#[test]
fn messages_for_another_instance_are_discarded_with_a_warning() {
    let (mut net, a, b) = connected(25, Policy::default(), Policy::default());
    net.send(a, BOB, "for bob");
    let mut w = net.take_wire();
    let mut d = data_message(&w[0].text);
    d.receiver_tag = InstanceTag(0x999);
    w[0].text = encode_otr(&d.encode());
    net.wire.extend(w);
    net.run();
    let sb = net.take_seen(b);
    assert!(has_warning(&sb, |w| *w
        == Warning::NotForUs {
            receiver: InstanceTag(0x999)
        }));
    assert!(!sb.iter().any(|e| matches!(e, Event::Error { .. })));
    assert!(net.take_wire().is_empty(), "no error message");
}

#[test]
fn received_error_messages_are_reported_and_never_restart() {
    let (mut net, a, b) = connected(26, Policy::default(), Policy::default());
    let now = net.now;
    let ev = net.nodes[a].receive(
        BOB,
        "?OTR Error: ERROR_2: Not in private state message",
        now,
        &mut net.rng,
    );
    assert_eq!(ev.len(), 1);
    assert!(
        matches!(&ev[0], Event::PeerError { code: ErrorCode::NotInPrivateState, text, .. }
        if text == "Not in private state message")
    );
    let ev = net.nodes[a].receive(BOB, "?OTR Error: ERROR_9: nope", now, &mut net.rng);
    assert!(ev.is_empty(), "unknown codes are ignored");
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
}

#[test]
fn end_sends_tlv_1_and_goes_to_start() {
    let (mut net, a, b) = connected(27, Policy::default(), Policy::default());
    net.act(a, |c, now, rng| c.end(BOB, None, now, rng));
    let sa = net.take_seen(a);
    assert!(sa.iter().any(|e| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::UserEnded,
            ..
        }
    )));
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Start));
    let w = net.take_wire();
    assert_eq!(w.len(), 1);
    net.wire.extend(w);
    net.run();
    assert!(
        net.take_seen(b)
            .iter()
            .any(|e| matches!(e, Event::Finished { .. }))
    );
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Finished));
    // From FINISHED, end goes to START.
    net.act(b, |c, now, rng| c.end(ALICE, None, now, rng));
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Start));
    assert!(net.take_wire().is_empty());
    let _ = TlvType::Disconnected;
}

#[test]
fn untargeted_identity_reaches_two_devices_in_standalone_mode() {
    let mut net = Net::new(28);
    let a = net.add(ALICE, Policy::standalone());
    let b1 = net.add(BOB, Policy::standalone());
    let b2 = net.add(BOB, Policy::standalone());
    net.send(a, BOB, "to whichever device answers");
    net.run();
    // The first Auth-R completes the untargeted DAKE; the second device gets its own DAKE.
    for b in [b1, b2] {
        assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
        assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
    }
    let (t1, t2) = (net.texts(b1), net.texts(b2));
    assert_eq!(
        t1.len() + t2.len(),
        1,
        "the queued message went to one device"
    );
    let ssid1 = net.client(a).conversation(BOB, net.tag(b1)).unwrap().ssid();
    let ssid2 = net.client(a).conversation(BOB, net.tag(b2)).unwrap().ssid();
    assert_ne!(ssid1, ssid2, "each instance has its own session");
}

#[test]
fn simultaneous_start_resolves_to_one_dake() {
    for seed in 29..33 {
        let mut net = Net::new(seed);
        let a = net.add(ALICE, Policy::standalone());
        let b = net.add(BOB, Policy::standalone());
        net.act(a, |c, now, rng| c.start(BOB, now, rng));
        net.act(b, |c, now, rng| c.start(ALICE, now, rng));
        net.run();
        assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
        assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
        let (sa, sb) = (net.take_seen(a), net.take_seen(b));
        assert_eq!(secure_ssids(&sa).len(), 1, "{sa:?}");
        assert_eq!(secure_ssids(&sa), secure_ssids(&sb));
        assert!(
            !sa.iter()
                .chain(&sb)
                .any(|e| matches!(e, Event::Error { .. }))
        );
        net.send(b, ALICE, "works");
        net.run();
        assert_eq!(net.texts(a), ["works"]);
    }
}

/// A data message for a conversation that has no session any more (the peer ended it,
/// and an older message arrives late): ERROR_2 and an error event, except for a message
/// flagged IGNORE_UNREADABLE, which is dropped silently (otrv4.md §"Receiving a Data
/// Message").
#[test]
fn data_message_outside_a_session_gives_error_2_unless_flagged_ignore_unreadable() {
    // Interactive only: a late first-ratchet message is not taken for an early offline one.
    let (mut net, a, b) = connected(45, Policy::interactive_only(), Policy::interactive_only());
    // Two messages that arrive late: a heartbeat-style one (padding only, flagged) and
    // one the user wrote.
    net.act(a, |c, now, rng| {
        c.send(BOB, "", &[Tlv::padding(3)], now, rng)
    });
    net.send(a, BOB, "are you there?");
    let late = net.take_wire();
    assert_eq!(late.len(), 2);
    assert_eq!(data_message(&late[0].text).flags, 1);
    assert_eq!(data_message(&late[1].text).flags, 0);
    // Alice ends the conversation: Bob is FINISHED, with no session.
    net.act(a, |c, now, rng| c.end(BOB, None, now, rng));
    net.run();
    assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Finished));
    net.take_seen(a);
    net.take_seen(b);
    let mut late = late.into_iter();
    let (flagged, written) = (late.next().unwrap(), late.next().unwrap());
    net.deliver(flagged);
    assert!(net.take_seen(b).is_empty(), "no error and no notification");
    assert!(net.take_wire().is_empty(), "no error message sent");
    net.deliver(written);
    assert!(net.take_seen(b).iter().any(|e| matches!(
        e,
        Event::Error {
            error: ConversationError::NotInPrivateState,
            ..
        }
    )));
    net.run();
    assert!(net.take_seen(a).iter().any(|e| matches!(
        e,
        Event::PeerError {
            code: ErrorCode::NotInPrivateState,
            ..
        }
    )));
}

/// Both sides start with an untargeted Identity message (receiver tag 0) at once: on one
/// side the tie-break hands the DAKE to the peer, whose Identity message that side then
/// answers as responder (otrv4.md §"Receiving an Identity Message").
#[test]
fn simultaneous_untargeted_identity_messages_resolve_to_one_dake() {
    for seed in 40..44 {
        let mut net = Net::new(seed);
        let a = net.add(ALICE, Policy::standalone());
        let b = net.add(BOB, Policy::standalone());
        net.act(a, |c, now, rng| c.start_dake(BOB, None, now, rng));
        net.act(b, |c, now, rng| c.start_dake(ALICE, None, now, rng));
        // The side that loses the tie-break answers the Identity message it received
        // with an Auth-R at once (it does not wait for the winner to send it again).
        for p in net.take_wire() {
            net.deliver(p);
        }
        let next = net.take_wire();
        let auth_rs = next
            .iter()
            .filter(|p| {
                let bytes = decode_otr(&p.text).unwrap();
                matches!(Message::decode(&bytes), Ok(Message::AuthR(_)))
            })
            .count();
        assert_eq!(auth_rs, 1, "seed {seed}");
        net.wire.extend(next);
        net.run();
        assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
        assert_eq!(net.state(b, ALICE, a), Some(ConversationState::Encrypted));
        let (sa, sb) = (net.take_seen(a), net.take_seen(b));
        assert_eq!(secure_ssids(&sa).len(), 1, "{sa:?}");
        assert_eq!(secure_ssids(&sa), secure_ssids(&sb));
        net.send(a, BOB, "one");
        net.send(b, ALICE, "two");
        net.run();
        assert_eq!(net.texts(b), ["one"]);
        assert_eq!(net.texts(a), ["two"]);
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn receive_of_arbitrary_text(text in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut rng = StdRng::seed_from_u64(1);
            let account = Account::generate(&mut rng, Policy::default(), T0).unwrap();
            let mut store = PrekeyStore::new(account.instance_tag());
            let mut c = Client::new(account, ALICE);
            let _ = c.receive(BOB, &text, &mut store, T0, &mut rng);
            let _ = c.receive(BOB, &encode_otr(&bytes), &mut store, T0, &mut rng);
            let frag = format!("?OTR|00000001|00000100|00000000,1,2,{text},");
            let _ = c.receive(BOB, &frag, &mut store, T0, &mut rng);
        }

        #[test]
        fn import_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(Client::import(&[0u8; 32], &bytes).is_err());
            prop_assert!(Account::import(&[0u8; 32], &bytes).is_err());
        }
    }
}

#[test]
fn mutated_messages_never_break_the_session() {
    use rand::RngExt;
    let (mut net, a, b) = connected(40, Policy::default(), Policy::default());
    net.send(a, BOB, "original");
    let original = net.take_wire().remove(0);
    let bytes = decode_otr(&original.text).unwrap();
    let dake_msgs: Vec<Vec<u8>> = net
        .log
        .iter()
        .filter(|p| p.text.starts_with("?OTR:") && !p.text.starts_with("?OTR:AAQD"))
        .map(|p| decode_otr(&p.text).unwrap())
        .collect();
    let mut mrng = StdRng::seed_from_u64(41);
    for round in 0..150 {
        let mut m = if round % 3 == 0 {
            dake_msgs[round % dake_msgs.len()].clone()
        } else {
            bytes.clone()
        };
        let i = mrng.random_range(0..m.len());
        m[i] ^= 1 << mrng.random_range(0..8);
        let now = net.now;
        let _ = net.nodes[b].receive(ALICE, &encode_otr(&m), now, &mut net.rng);
    }
    net.wire.clear();
    net.take_seen(b);
    // A mutated DAKE message may still be valid and start a new DAKE: the live session
    // must survive whatever happened.
    let ta = net.tag(a);
    assert!(
        net.client(b)
            .conversation(ALICE, ta)
            .unwrap()
            .is_encrypted()
    );
    net.deliver(original);
    assert_eq!(net.texts(b), ["original"]);
    net.send(b, ALICE, "and back");
    net.run();
    assert_eq!(net.texts(a), ["and back"]);
}

/// The DAKE timeout fires once it has elapsed, not a second before, never outside a DAKE,
/// and never when the policy turns it off (0): for a DAKE with one instance (the
/// conversation's) and for an untargeted one (the contact's pending Identity message).
#[test]
fn dake_timeouts_fire_at_the_limit_not_before_and_never_when_disabled() {
    let limit = Policy::default().dake_timeout_secs;
    let timed_out =
        |net: &mut Net, n: usize| has_warning(&net.take_seen(n), |w| *w == Warning::DakeTimedOut);
    for targeted in [true, false] {
        for enabled in [true, false] {
            let policy = Policy {
                dake_timeout_secs: if enabled { limit } else { 0 },
                ..Policy::default()
            };
            let mut net = Net::new(21);
            let a = net.add(ALICE, policy);
            let b = net.add(BOB, Policy::default());
            let bob_tag = net.tag(b);
            let start = net.now;
            net.act(a, |c, now, rng| {
                c.start_dake(BOB, targeted.then_some(bob_tag), now, rng)
            });
            assert!(!net.take_wire().is_empty(), "an Identity message went out");
            net.take_seen(a);
            // Bob never answers.
            net.now = start + limit - 1;
            net.tick(a);
            assert!(!timed_out(&mut net, a), "targeted {targeted}: early");
            net.now = start + limit;
            net.tick(a);
            assert_eq!(timed_out(&mut net, a), enabled, "targeted {targeted}");
            net.now = start + 50 * limit;
            net.tick(a);
            assert!(!timed_out(&mut net, a), "targeted {targeted}: twice");
        }
    }
    // A session whose DAKE ended long ago is not in a DAKE: nothing times out.
    let (mut net, a, b) = connected(23, Policy::default(), Policy::default());
    net.now += limit;
    net.tick(a);
    assert!(!timed_out(&mut net, a));
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
}

/// After an untargeted DAKE completes with the first device of the contact that answered,
/// another device's answer still gets its own DAKE while the window lasts (the DAKE
/// timeout), also after a `tick` inside it, and not after the window.
#[test]
fn a_second_device_answering_an_untargeted_dake_is_served_within_the_window_only() {
    for late in [false, true] {
        let mut net = Net::new(29);
        let a = net.add(ALICE, Policy::standalone());
        let b1 = net.add(BOB, Policy::standalone());
        let b2 = net.add(BOB, Policy::standalone());
        net.send(a, BOB, "to whichever device answers");
        for p in net.take_wire() {
            net.deliver(p); // the Identity message reaches both devices
        }
        let answers = net.take_wire();
        assert_eq!(answers.len(), 2, "both devices answered");
        let (first, second): (Vec<_>, Vec<_>) = answers.into_iter().partition(|p| p.from == b1);
        for p in first {
            net.deliver(p);
        }
        net.run();
        assert_eq!(net.state(a, BOB, b1), Some(ConversationState::Encrypted));
        net.now += if late {
            Policy::standalone().dake_timeout_secs
        } else {
            1
        };
        net.tick(a);
        for p in second {
            net.deliver(p);
        }
        net.run();
        let b2_state = net.state(a, BOB, b2);
        if late {
            assert_ne!(
                b2_state,
                Some(ConversationState::Encrypted),
                "after the window"
            );
        } else {
            assert_eq!(
                b2_state,
                Some(ConversationState::Encrypted),
                "within the window"
            );
        }
    }
}

/// Expiry 0 turns session expiry off: a quiet session stays encrypted however long.
#[test]
fn session_expiry_zero_never_expires() {
    let policy = Policy {
        session_expiry_secs: 0,
        ..Policy::default()
    };
    let (mut net, a, b) = connected(16, policy, Policy::default());
    net.send(a, BOB, "hello");
    net.run();
    net.send(b, ALICE, "hi");
    net.run();
    net.take_seen(a);
    net.now += 5 * 24 * 3600;
    net.tick(a);
    assert!(
        !net.take_seen(a)
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. }))
    );
    assert_eq!(net.state(a, BOB, b), Some(ConversationState::Encrypted));
}

/// A heartbeat interval of 0 turns heartbeats off: a device that received and stays quiet
/// sends nothing, however long.
#[test]
fn heartbeat_zero_sends_no_heartbeat() {
    let quiet = Policy {
        heartbeat_secs: 0,
        ..Policy::default()
    };
    let (mut net, a, b) = connected(17, Policy::default(), quiet);
    net.send(a, BOB, "ping");
    for p in net.take_wire() {
        net.deliver(p);
    }
    assert_eq!(net.texts(b), ["ping"]);
    assert!(net.take_wire().is_empty(), "a heartbeat in reply");
    net.now += 10 * Policy::default().heartbeat_secs;
    net.tick(b);
    assert!(
        net.take_wire().is_empty(),
        "a heartbeat with heartbeats off"
    );
}
