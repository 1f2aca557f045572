//! Offline conversations through the conversation layer (otrv4.md §"Offline Conversation
//! Initialization"): Bob publishes his Prekey Ensembles to an in-process prekey server
//! (`PrekeyServer` + `MemoryStorage`) and goes offline; Alice retrieves one, sends a
//! Non-Interactive-Auth message and data messages; Bob comes back, reads them and replies.
//! Every message goes through its wire encoding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use otr4::InstanceTag;
use otr4::NonInteractiveError;
use otr4::PrekeyServerMessage;
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::dake::Role;
use otr4::hazmat::dake::non_interactive::NonInteractiveRole;
use otr4::hazmat::prekey::PrekeyServer;
use otr4::hazmat::prekey::memory::MemoryStorage;
use otr4::hazmat::prekey::server::{Dake3Outcome, QueryOutcome, ServerSession};
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::{Message, NonInteractiveAuth};
use otr4::{
    Account, Client, ConversationError, ConversationState, DisconnectReason, Event,
    OfflineEnsembles, Policy, PrekeyOutcome, Warning,
};
use otr4::{ChosenEnsembles, ValidatedEnsemble};
use otr4::{PrekeyStore, RefillPolicy};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const SERVER_ID: &[u8] = b"prekey.example.org";
const KEY: [u8; 32] = [0x42; 32];

/// The prekey server: protocol core, storage and the sessions of in-flight DAKEs.
struct Server {
    core: PrekeyServer,
    storage: MemoryStorage,
    sessions: BTreeMap<(String, InstanceTag), ServerSession>,
}

fn wire(m: &PrekeyServerMessage) -> PrekeyServerMessage {
    PrekeyServerMessage::decode(&m.encode()).unwrap()
}

impl Server {
    fn new(rng: &mut StdRng) -> Server {
        Server {
            core: PrekeyServer::new(SERVER_ID.to_vec(), KeyPair::generate(rng)),
            storage: MemoryStorage::new(),
            sessions: BTreeMap::new(),
        }
    }

    /// Answers one message from `from` (its bare JID, authenticated by the transport).
    fn handle(
        &mut self,
        from: &str,
        msg: &PrekeyServerMessage,
        now: i64,
        rng: &mut StdRng,
    ) -> PrekeyServerMessage {
        match wire(msg) {
            PrekeyServerMessage::Dake1(d1) => {
                let (session, d2) = self
                    .core
                    .receive_dake1(rng, from.as_bytes(), &d1, now)
                    .unwrap();
                self.sessions
                    .insert((from.to_string(), d1.sender_tag), session);
                PrekeyServerMessage::Dake2(d2)
            }
            PrekeyServerMessage::Dake3(d3) => {
                let session = self
                    .sessions
                    .remove(&(from.to_string(), d3.sender_tag))
                    .unwrap();
                match self.core.receive_dake3(session, &d3, now).unwrap() {
                    Dake3Outcome::Publication(p) => match self.storage.store(p.request()) {
                        Ok(_) => PrekeyServerMessage::Success(p.stored()),
                        Err(_) => PrekeyServerMessage::Failure(p.failed()),
                    },
                    Dake3Outcome::StorageStatus(s) => {
                        let n = self.storage.stored_count(s.publisher(), s.instance_tag());
                        PrekeyServerMessage::StorageStatus(s.respond(n))
                    }
                    Dake3Outcome::Rejected { reply, reason } => {
                        panic!("publication rejected: {reason:?} {reply:?}")
                    }
                }
            }
            PrekeyServerMessage::EnsembleQuery(q) => match self.core.receive_query(&q) {
                QueryOutcome::Lookup(req) => {
                    let e = self.storage.take_ensembles(&req.identity, now);
                    req.respond(e)
                }
                QueryOutcome::Reply(no) => PrekeyServerMessage::NoPrekeyEnsembles(no),
            },
            other => panic!("unexpected message to the server: {other:?}"),
        }
    }

    /// Runs `first` and every follow-up of `c` against the server until a final outcome.
    fn exchange(
        &mut self,
        c: &mut Dev,
        first: PrekeyServerMessage,
        now: i64,
        rng: &mut StdRng,
    ) -> PrekeyOutcome {
        let jid = c.own_jid().to_string();
        let mut msg = first;
        loop {
            let reply = self.handle(&jid, &msg, now, rng);
            match c.receive_prekey_server(&wire(&reply), now, rng).unwrap() {
                PrekeyOutcome::Send(m) => msg = m,
                other => return other,
            }
        }
    }

    fn stored(&self, jid: &str, tag: InstanceTag) -> u32 {
        self.storage.stored_count(jid.as_bytes(), tag)
    }
}

/// A device: its client and the prekey store it keeps beside it.
struct Dev {
    client: Client,
    prekeys: PrekeyStore,
}

impl std::ops::Deref for Dev {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for Dev {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// The calls that take the prekey store, with this device's.
impl Dev {
    fn receive(&mut self, from: &str, text: &str, now: i64, rng: &mut StdRng) -> Vec<Event> {
        self.client.receive(from, text, &mut self.prekeys, now, rng)
    }

    fn tick(&mut self, now: i64, rng: &mut StdRng) -> Vec<Event> {
        self.client.tick(&mut self.prekeys, now, rng)
    }

    fn prekey_publication(
        &mut self,
        stored: Option<u32>,
        now: i64,
        rng: &mut StdRng,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        self.client
            .prekey_publication(&mut self.prekeys, stored, now, rng)
    }

    fn prekey_maintenance(
        &mut self,
        now: i64,
        rng: &mut StdRng,
    ) -> Result<Option<PrekeyServerMessage>, ConversationError> {
        self.client.prekey_maintenance(&mut self.prekeys, now, rng)
    }

    fn receive_prekey_server(
        &mut self,
        msg: &PrekeyServerMessage,
        now: i64,
        rng: &mut StdRng,
    ) -> Result<PrekeyOutcome, ConversationError> {
        self.client
            .receive_prekey_server(&mut self.prekeys, msg, now, rng)
    }

    fn export(&self, key: &[u8; 32], rng: &mut StdRng) -> Vec<u8> {
        self.client.export(&self.prekeys, key, rng)
    }

    fn import(key: &[u8; 32], bytes: &[u8]) -> Dev {
        let (client, prekeys) = Client::import(key, bytes).unwrap();
        Dev { client, prekeys }
    }
}

fn client(rng: &mut StdRng, jid: &str, policy: Policy, now: i64) -> Dev {
    let account = Account::generate(rng, policy, now).unwrap();
    Dev {
        prekeys: PrekeyStore::new(account.instance_tag()),
        client: Client::new(account, jid),
    }
}

fn refill(batch: usize, low_watermark: u32) -> RefillPolicy {
    RefillPolicy {
        batch,
        low_watermark,
        ..RefillPolicy::default()
    }
}

/// `c` publishes its profiles and a batch of prekeys; returns the published ids.
fn publish(server: &mut Server, c: &mut Dev, batch: usize, now: i64, rng: &mut StdRng) -> Vec<u32> {
    c.set_prekey_server(SERVER_ID, server.core.fingerprint(), refill(batch, 5))
        .unwrap();
    let d1 = c.prekey_publication(None, now, rng).unwrap().unwrap();
    match server.exchange(c, d1, now, rng) {
        PrekeyOutcome::Published {
            prekey_ids,
            client_profile: true,
            prekey_profile: true,
        } => prekey_ids,
        other => panic!("not published: {other:?}"),
    }
}

/// `c` asks the server for `peer`'s ensembles.
fn retrieve(
    server: &mut Server,
    c: &mut Dev,
    peer: &str,
    now: i64,
    rng: &mut StdRng,
) -> ChosenEnsembles {
    if c.ensemble_query(peer).is_err() {
        c.set_prekey_server(
            SERVER_ID,
            server.core.fingerprint(),
            RefillPolicy::default(),
        )
        .unwrap();
    }
    let q = c.ensemble_query(peer).unwrap();
    match server.exchange(c, q, now, rng) {
        PrekeyOutcome::Ensembles { peer: p, ensembles } => {
            assert_eq!(p, peer);
            ensembles
        }
        other => panic!("no ensembles: {other:?}"),
    }
}

/// The texts of the `Send` events (with the instance they are addressed to).
fn sends(ev: &[Event]) -> Vec<(Option<InstanceTag>, String)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Send {
                to_instance, text, ..
            } => Some((*to_instance, text.clone())),
            _ => None,
        })
        .collect()
}

fn texts(ev: &[Event]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Received {
                text,
                encrypted: true,
                ..
            } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn secure(ev: &[Event]) -> Vec<(InstanceTag, otr4::Ssid, usize)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Secure {
                instance,
                ssid,
                bold_half,
                ..
            } => Some((*instance, *ssid, *bold_half)),
            _ => None,
        })
        .collect()
}

fn warnings(ev: &[Event]) -> Vec<Warning> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Warning { warning, .. } => Some(warning.clone()),
            _ => None,
        })
        .collect()
}

fn errors(ev: &[Event]) -> Vec<ConversationError> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Error { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// Delivers `msgs` to `to`; returns every event.
fn deliver(to: &mut Dev, from: &str, msgs: &[String], now: i64, rng: &mut StdRng) -> Vec<Event> {
    let mut ev = Vec::new();
    for m in msgs {
        ev.extend(to.receive(from, m, now, rng));
    }
    ev
}

fn only_texts(s: Vec<(Option<InstanceTag>, String)>) -> Vec<String> {
    s.into_iter().map(|(_, t)| t).collect()
}

fn decode(text: &str) -> Message {
    Message::decode(&decode_otr(text).unwrap()).unwrap()
}

fn nia(text: &str) -> NonInteractiveAuth {
    match decode(text) {
        Message::NonInteractiveAuth(m) => m,
        other => panic!("not a Non-Interactive-Auth message: {other:?}"),
    }
}

/// Sends `text` from `a` to `b` and delivers it; returns `b`'s events.
fn say(a: &mut Dev, b: &mut Dev, text: &str, now: i64, rng: &mut StdRng) -> Vec<Event> {
    let peer = b.own_jid().to_string();
    let ev = a.send(&peer, text, &[], now, rng);
    assert!(errors(&ev).is_empty(), "{ev:?}");
    let msgs = only_texts(sends(&ev));
    assert!(!msgs.is_empty());
    let from = a.own_jid().to_string();
    deliver(b, &from, &msgs, now, rng)
}

struct Setup {
    rng: StdRng,
    server: Server,
    alice: Dev,
    bob: Dev,
    ensembles: ChosenEnsembles,
    published: Vec<u32>,
}

/// Bob publishes 10 prekeys and goes offline; Alice retrieves one ensemble.
fn setup(seed: u64, policy: Policy) -> Setup {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut server = Server::new(&mut rng);
    let mut alice = client(&mut rng, ALICE, policy, NOW);
    let mut bob = client(&mut rng, BOB, policy, NOW);
    let published = publish(&mut server, &mut bob, 10, NOW, &mut rng);
    assert_eq!(published.len(), 10);
    assert_eq!(server.stored(BOB, bob.account().instance_tag()), 10);
    assert_eq!(bob.prekeys.len(), 10);
    let ensembles = retrieve(&mut server, &mut alice, BOB, NOW + 10, &mut rng);
    assert_eq!(ensembles.chosen.len(), 1);
    assert!(ensembles.discarded.is_empty());
    assert_eq!(server.stored(BOB, bob.account().instance_tag()), 9);
    Setup {
        rng,
        server,
        alice,
        bob,
        ensembles,
        published,
    }
}

/// Alice's Non-Interactive-Auth message and data messages for `texts`.
fn alice_sends(s: &mut Setup, texts: &[&str], now: i64) -> Vec<String> {
    let ev = s.alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&s.ensembles.chosen),
        texts[0],
        now,
        &mut s.rng,
    );
    assert!(errors(&ev).is_empty(), "{ev:?}");
    let bob_tag = s.bob.account().instance_tag();
    let mut out = sends(&ev);
    assert!(out.iter().all(|(to, _)| *to == Some(bob_tag)));
    assert_eq!(
        out.len(),
        2,
        "Non-Interactive-Auth then the first data message"
    );
    assert!(matches!(decode(&out[0].1), Message::NonInteractiveAuth(_)));
    assert!(matches!(decode(&out[1].1), Message::Data(_)));
    assert_eq!(secure(&ev).len(), 1);
    for t in &texts[1..] {
        let ev = s.alice.send(BOB, t, &[], now, &mut s.rng);
        out.extend(sends(&ev));
    }
    only_texts(out)
}

#[test]
fn offline_start_then_both_ratchet_on() {
    let mut s = setup(1, Policy::standalone());
    let bob_tag = s.bob.account().instance_tag();
    let alice_tag = s.alice.account().instance_tag();
    let used = s.ensembles.chosen[0].prekey_message().id;
    assert!(s.published.contains(&used));
    let msgs = alice_sends(&mut s, &["one", "two", "three"], NOW + 20);
    assert_eq!(msgs.len(), 4);
    let conv = s.alice.conversation(BOB, bob_tag).unwrap();
    assert_eq!(conv.state(), ConversationState::Encrypted);
    assert_eq!(
        conv.non_interactive_role(),
        Some(NonInteractiveRole::Sender)
    );
    assert_eq!(conv.role(), Some(Role::Alice));
    // The data messages all use the initial sending chain (ratchet id 0, ids 0, 1, 2).
    for (j, m) in msgs[1..].iter().enumerate() {
        let Message::Data(d) = decode(m) else {
            panic!()
        };
        assert_eq!((d.i, d.j), (0, j as u32));
    }

    // Bob comes back online much later and reads everything in order.
    let later = NOW + 3600;
    let ev = deliver(&mut s.bob, ALICE, &msgs, later, &mut s.rng);
    assert!(errors(&ev).is_empty(), "{ev:?}");
    assert_eq!(texts(&ev), ["one", "two", "three"]);
    let sec = secure(&ev);
    assert_eq!(sec.len(), 1);
    assert_eq!(sec[0].0, alice_tag);
    assert_eq!(
        sec[0].2, 1,
        "the receiver shows the second half of the SSID"
    );
    let a_conv = s.alice.conversation(BOB, bob_tag).unwrap();
    let b_conv = s.bob.conversation(ALICE, alice_tag).unwrap();
    assert_eq!(a_conv.ssid(), Some(sec[0].1));
    assert_eq!(b_conv.ssid(), a_conv.ssid());
    assert_eq!(
        b_conv.non_interactive_role(),
        Some(NonInteractiveRole::Receiver)
    );
    // The prekey is used up; the other nine are kept.
    assert!(s.bob.prekeys.get(used).is_none());
    assert_eq!(s.bob.prekeys.len(), 9);

    // Both ratchet on: each reply direction change is a DH ratchet.
    let mut last = s
        .bob
        .conversation(ALICE, alice_tag)
        .unwrap()
        .ratchet_id()
        .unwrap();
    for round in 0..3 {
        let t = later + 10 * round;
        let ev = say(
            &mut s.bob,
            &mut s.alice,
            &format!("bob {round}"),
            t,
            &mut s.rng,
        );
        assert_eq!(texts(&ev), [format!("bob {round}")]);
        let ev = say(
            &mut s.alice,
            &mut s.bob,
            &format!("alice {round}"),
            t + 1,
            &mut s.rng,
        );
        assert_eq!(texts(&ev), [format!("alice {round}")]);
        let now_id = s
            .bob
            .conversation(ALICE, alice_tag)
            .unwrap()
            .ratchet_id()
            .unwrap();
        assert!(
            now_id >= last + 2,
            "two DH ratchets per round: {last} -> {now_id}"
        );
        last = now_id;
    }
    assert!(last >= 6, "at least four rotations after the DAKE");
    assert_eq!(
        s.alice.conversation(BOB, bob_tag).unwrap().ratchet_id(),
        s.bob.conversation(ALICE, alice_tag).unwrap().ratchet_id()
    );
}

#[test]
fn data_messages_before_the_non_interactive_auth_are_stored_then_read() {
    let mut s = setup(2, Policy::standalone());
    let alice_tag = s.alice.account().instance_tag();
    let msgs = alice_sends(&mut s, &["one", "two", "three"], NOW + 20);
    // The network delivers the data messages first (the last one first).
    let early = [msgs[3].clone(), msgs[1].clone(), msgs[2].clone()];
    let ev = deliver(&mut s.bob, ALICE, &early, NOW + 30, &mut s.rng);
    assert!(ev.is_empty(), "stored silently, no error message: {ev:?}");
    assert!(
        s.bob.conversation(ALICE, alice_tag).is_none(),
        "no conversation yet"
    );
    let ev = deliver(&mut s.bob, ALICE, &msgs[..1], NOW + 40, &mut s.rng);
    assert!(errors(&ev).is_empty(), "{ev:?}");
    assert_eq!(texts(&ev), ["three", "one", "two"]);
    assert_eq!(secure(&ev).len(), 1);
    // A replay of a stored message is now a duplicate.
    let ev = deliver(&mut s.bob, ALICE, &msgs[1..2], NOW + 50, &mut s.rng);
    assert!(texts(&ev).is_empty());

    // Stored messages whose Non-Interactive-Auth never comes expire.
    let mut s = setup(3, Policy::standalone());
    let msgs = alice_sends(&mut s, &["lost"], NOW + 20);
    let ev = deliver(&mut s.bob, ALICE, &msgs[1..], NOW + 30, &mut s.rng);
    assert!(ev.is_empty());
    let ev = s.bob.tick(
        NOW + 30 + Policy::standalone().stored_message_secs,
        &mut s.rng,
    );
    assert!(warnings(&ev).contains(&Warning::StoredMessagesExpired(1)));
    // Unreadable after all: ERROR_2 now.
    assert_eq!(errors(&ev), [ConversationError::NotInPrivateState]);
    let out = only_texts(sends(&ev));
    assert_eq!(out.len(), 1);
    assert!(out[0].starts_with("?OTR Error: ERROR_2"), "{out:?}");
    // The Non-Interactive-Auth still works afterwards; the expired message is gone.
    let ev = deliver(&mut s.bob, ALICE, &msgs[..1], NOW + 2000, &mut s.rng);
    assert_eq!(secure(&ev).len(), 1);
    assert!(texts(&ev).is_empty());
}

#[test]
fn forged_non_interactive_auth_does_not_burn_the_prekey() {
    let mut s = setup(4, Policy::standalone());
    let alice_tag = s.alice.account().instance_tag();
    let id = s.ensembles.chosen[0].prekey_message().id;
    let msgs = alice_sends(&mut s, &["genuine"], NOW + 20);
    let genuine = nia(&msgs[0]);

    // Bad Auth MAC.
    let mut bad_mac = genuine.clone();
    bad_mac.auth_mac[7] ^= 1;
    // Bad sigma: a valid ring signature, but over another transcript (Mallory made her own
    // Non-Interactive-Auth message for the same ensemble and spliced its sigma in).
    let mut mallory = client(&mut s.rng, "mallory@example.org", Policy::standalone(), NOW);
    let ev = mallory.send_offline(
        BOB,
        OfflineEnsembles::Validated(&s.ensembles.chosen),
        "",
        NOW + 20,
        &mut s.rng,
    );
    let theirs = nia(&sends(&ev)[0].1);
    let mut bad_sigma = genuine.clone();
    bad_sigma.sigma = theirs.sigma.clone();
    // Unknown prekey id.
    let mut unknown = genuine.clone();
    unknown.prekey_message_id = id.wrapping_add(1);

    for (forged, want) in [
        (&bad_mac, NonInteractiveError::BadAuthMac),
        (&bad_sigma, NonInteractiveError::BadRingSignature),
        (
            &unknown,
            NonInteractiveError::UnknownPrekey(id.wrapping_add(1)),
        ),
    ] {
        let text = encode_otr(&forged.encode());
        let ev = s.bob.receive(ALICE, &text, NOW + 30, &mut s.rng);
        assert_eq!(warnings(&ev), [Warning::NonInteractiveAuthIgnored(want)]);
        assert!(sends(&ev).is_empty(), "nothing is sent for a forgery");
        assert!(s.bob.prekeys.get(id).is_some(), "not burnt");
        assert!(
            s.bob
                .conversation(ALICE, alice_tag)
                .is_none_or(|c| !c.is_encrypted())
        );
    }
    // Mallory's own message, sent as herself, would verify (she is a valid party) — but
    // it is not delivered; the genuine one still works.
    let ev = deliver(&mut s.bob, ALICE, &msgs, NOW + 40, &mut s.rng);
    assert_eq!(texts(&ev), ["genuine"]);
    assert!(s.bob.prekeys.get(id).is_none());
}

#[test]
fn a_prekey_is_used_once() {
    let mut s = setup(5, Policy::standalone());
    let alice_tag = s.alice.account().instance_tag();
    let id = s.ensembles.chosen[0].prekey_message().id;
    let first = alice_sends(&mut s, &["first"], NOW + 20);
    // Alice (or anyone holding the same ensemble) makes a second Non-Interactive-Auth
    // message with the same prekey.
    let ev = s.alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&s.ensembles.chosen),
        "second",
        NOW + 21,
        &mut s.rng,
    );
    let second = only_texts(sends(&ev));
    assert_eq!(
        second.len(),
        3,
        "TLV 1 in the first session, Non-Interactive-Auth, data"
    );
    assert_eq!(nia(&second[1]).prekey_message_id, id);

    let ev = deliver(&mut s.bob, ALICE, &first, NOW + 30, &mut s.rng);
    assert_eq!(texts(&ev), ["first"]);
    let ssid = s.bob.conversation(ALICE, alice_tag).unwrap().ssid();
    // A replay of the first, and the second message with the same prekey id: rejected.
    for m in [&first[0], &second[1]] {
        let ev = s.bob.receive(ALICE, m, NOW + 40, &mut s.rng);
        assert_eq!(
            warnings(&ev),
            [Warning::NonInteractiveAuthIgnored(
                NonInteractiveError::UnknownPrekey(id)
            )]
        );
    }
    assert_eq!(s.bob.conversation(ALICE, alice_tag).unwrap().ssid(), ssid);
}

#[test]
fn export_and_import_between_publishing_and_receiving() {
    let mut s = setup(6, Policy::standalone());
    let alice_tag = s.alice.account().instance_tag();
    let id = s.ensembles.chosen[0].prekey_message().id;
    let before: Vec<u32> = s.bob.prekeys.ids().collect();
    // Bob's client restarts after publishing.
    let saved = s.bob.export(&KEY, &mut s.rng);
    let mut bob = Dev::import(&KEY, &saved);
    assert_eq!(bob.prekeys.ids().collect::<Vec<_>>(), before);
    let msgs = alice_sends(&mut s, &["after restart"], NOW + 20);
    let ev = deliver(&mut bob, ALICE, &msgs, NOW + 30, &mut s.rng);
    assert_eq!(texts(&ev), ["after restart"]);

    // Restarting again after the receipt: the prekey stays used, the session goes on.
    let saved = bob.export(&KEY, &mut s.rng);
    let mut bob = Dev::import(&KEY, &saved);
    assert!(bob.prekeys.get(id).is_none());
    assert_eq!(bob.prekeys.len(), 9);
    let conv = bob.conversation(ALICE, alice_tag).unwrap();
    assert_eq!(
        conv.non_interactive_role(),
        Some(NonInteractiveRole::Receiver)
    );
    let ev = bob.receive(ALICE, &msgs[0], NOW + 40, &mut s.rng);
    assert_eq!(
        warnings(&ev),
        [Warning::NonInteractiveAuthIgnored(
            NonInteractiveError::UnknownPrekey(id)
        )]
    );
    let ev = say(
        &mut bob,
        &mut s.alice,
        "reply after import",
        NOW + 50,
        &mut s.rng,
    );
    assert_eq!(texts(&ev), ["reply after import"]);
    // A refill after the restart makes fresh ids, never the used one.
    bob.set_prekey_server(SERVER_ID, s.server.core.fingerprint(), refill(10, 20))
        .unwrap();
    let d1 = bob
        .prekey_publication(Some(9), NOW + 60, &mut s.rng)
        .unwrap()
        .unwrap();
    let PrekeyOutcome::Published {
        prekey_ids,
        client_profile,
        prekey_profile,
    } = s.server.exchange(&mut bob, d1, NOW + 60, &mut s.rng)
    else {
        panic!()
    };
    assert_eq!(prekey_ids.len(), 1);
    assert!(
        !client_profile && !prekey_profile,
        "already published, not again"
    );
    assert!(!prekey_ids.contains(&id) && !before.contains(&prekey_ids[0]));
}

#[test]
fn two_devices_of_bob_each_receive_their_own_non_interactive_auth() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut server = Server::new(&mut rng);
    let mut alice = client(&mut rng, ALICE, Policy::default(), NOW);
    let mut phone = client(&mut rng, BOB, Policy::standalone(), NOW);
    let mut laptop = client(&mut rng, BOB, Policy::standalone(), NOW);
    publish(&mut server, &mut phone, 3, NOW, &mut rng);
    publish(&mut server, &mut laptop, 3, NOW, &mut rng);
    let ens = retrieve(&mut server, &mut alice, BOB, NOW + 10, &mut rng);
    assert_eq!(ens.chosen.len(), 2, "one ensemble per device");
    let ev = alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&ens.chosen),
        "to both",
        NOW + 20,
        &mut rng,
    );
    assert_eq!(secure(&ev).len(), 2);
    let out = sends(&ev);
    assert_eq!(out.len(), 4);
    // The network hands every message for the bare JID to both devices.
    let all = only_texts(out);
    for dev in [&mut phone, &mut laptop] {
        let ev = deliver(dev, ALICE, &all, NOW + 30, &mut rng);
        assert_eq!(texts(&ev), ["to both"]);
        assert_eq!(secure(&ev).len(), 1);
        let not_for_us = warnings(&ev)
            .into_iter()
            .filter(|w| matches!(w, Warning::NotForUs { .. }))
            .count();
        assert_eq!(not_for_us, 2, "the other device's two messages");
        assert_eq!(dev.prekeys.len(), 2);
    }
    for dev in [&phone, &laptop] {
        let tag = dev.account().instance_tag();
        assert_eq!(
            alice.conversation(BOB, tag).unwrap().ssid(),
            dev.conversation(ALICE, alice.account().instance_tag())
                .unwrap()
                .ssid()
        );
    }
    // Alice's default (compatible) mode allows offline too; both devices answer.
    for dev in [&mut phone, &mut laptop] {
        let ev = say(dev, &mut alice, "hi from a device", NOW + 40, &mut rng);
        assert_eq!(texts(&ev), ["hi from a device"]);
    }
}

#[test]
fn switching_between_offline_and_online_sends_tlv_1_then_the_other_dake() {
    let mut s = setup(8, Policy::standalone());
    let alice_tag = s.alice.account().instance_tag();
    let bob_tag = s.bob.account().instance_tag();
    let msgs = alice_sends(&mut s, &["offline hello"], NOW + 20);
    deliver(&mut s.bob, ALICE, &msgs, NOW + 30, &mut s.rng);

    // Bob comes online and wants an online conversation: TLV 1, then an Identity message
    // (otrv4.md §"Starting an online conversation after an offline one").
    let ev = s
        .bob
        .start_dake(ALICE, Some(alice_tag), NOW + 40, &mut s.rng);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::SwitchingDake,
            ..
        }
    )));
    let out = only_texts(sends(&ev));
    assert_eq!(out.len(), 2);
    assert!(matches!(decode(&out[0]), Message::Data(_)));
    assert!(matches!(decode(&out[1]), Message::Identity(_)));
    assert_eq!(
        s.bob.conversation(ALICE, alice_tag).unwrap().state(),
        ConversationState::WaitingAuthR
    );
    assert!(!s.bob.conversation(ALICE, alice_tag).unwrap().is_encrypted());
    // Alice: TLV 1 ends her offline session, the Identity message is answered.
    let mut to_alice = out;
    let mut to_bob: Vec<String> = Vec::new();
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    while !to_alice.is_empty() || !to_bob.is_empty() {
        let ev = deliver(
            &mut s.alice,
            BOB,
            &std::mem::take(&mut to_alice),
            NOW + 41,
            &mut s.rng,
        );
        to_bob.extend(only_texts(sends(&ev)));
        seen_a.extend(ev);
        let ev = deliver(
            &mut s.bob,
            ALICE,
            &std::mem::take(&mut to_bob),
            NOW + 42,
            &mut s.rng,
        );
        to_alice.extend(only_texts(sends(&ev)));
        seen_b.extend(ev);
    }
    assert!(seen_a.iter().any(|e| matches!(e, Event::Finished { .. })));
    assert_eq!(secure(&seen_a).len(), 1);
    assert_eq!(secure(&seen_b).len(), 1);
    for (c, peer, tag) in [(&s.alice, BOB, bob_tag), (&s.bob, ALICE, alice_tag)] {
        let conv = c.conversation(peer, tag).unwrap();
        assert_eq!(conv.state(), ConversationState::Encrypted);
        assert_eq!(
            conv.non_interactive_role(),
            None,
            "an interactive session now"
        );
    }
    let ev = say(&mut s.alice, &mut s.bob, "online now", NOW + 50, &mut s.rng);
    assert_eq!(texts(&ev), ["online now"]);

    // Bob goes offline again; Alice wants to write offline: TLV 1, then a new
    // Non-Interactive-Auth message (§"Starting an offline conversation after an online one").
    let ens = retrieve(&mut s.server, &mut s.alice, BOB, NOW + 60, &mut s.rng);
    let ev = s.alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&ens.chosen),
        "offline again",
        NOW + 61,
        &mut s.rng,
    );
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Disconnected {
            reason: DisconnectReason::SwitchingDake,
            ..
        }
    )));
    let out = only_texts(sends(&ev));
    assert_eq!(out.len(), 3);
    assert!(matches!(decode(&out[0]), Message::Data(_)));
    assert!(matches!(decode(&out[1]), Message::NonInteractiveAuth(_)));
    assert!(matches!(decode(&out[2]), Message::Data(_)));
    // Bob receives them in order: FINISHED by the TLV 1, then the Non-Interactive-Auth
    // message is accepted in FINISHED (docs/spec-notes.md) and the message read.
    let ev = deliver(&mut s.bob, ALICE, &out, NOW + 70, &mut s.rng);
    assert!(ev.iter().any(|e| matches!(e, Event::Finished { .. })));
    assert_eq!(secure(&ev).len(), 1);
    assert_eq!(texts(&ev), ["offline again"]);
    let conv = s.bob.conversation(ALICE, alice_tag).unwrap();
    assert_eq!(
        conv.non_interactive_role(),
        Some(NonInteractiveRole::Receiver)
    );
}

#[test]
fn interactive_only_rejects_offline_and_the_other_modes_allow_it() {
    let mut s = setup(9, Policy::default());
    let mut strict = client(&mut s.rng, BOB, Policy::interactive_only(), NOW);
    // No publishing, no retrieval, no sending offline.
    let fp = s.server.core.fingerprint();
    assert_eq!(
        strict.set_prekey_server(SERVER_ID, fp, RefillPolicy::default()),
        Err(ConversationError::OfflineNotAllowed)
    );
    assert_eq!(
        strict.prekey_publication(None, NOW, &mut s.rng),
        Err(ConversationError::OfflineNotAllowed)
    );
    let ev = strict.send_offline(
        ALICE,
        OfflineEnsembles::Validated(&s.ensembles.chosen),
        "x",
        NOW,
        &mut s.rng,
    );
    assert_eq!(errors(&ev), [ConversationError::OfflineNotAllowed]);
    assert!(sends(&ev).is_empty());
    // A Non-Interactive-Auth message (the compatible-mode Alice's, readdressed to this
    // instance) is rejected.
    let msgs = alice_sends(&mut s, &["hello"], NOW + 20);
    let strict_tag = strict.account().instance_tag();
    let mut m = nia(&msgs[0]);
    m.receiver_tag = strict_tag;
    let ev = strict.receive(ALICE, &encode_otr(&m.encode()), NOW + 30, &mut s.rng);
    assert_eq!(warnings(&ev), [Warning::OfflineRejected]);
    // In interactive-only mode data messages of a first ratchet are not stored.
    let Message::Data(mut d) = decode(&msgs[1]) else {
        panic!()
    };
    d.receiver_tag = strict_tag;
    let ev = strict.receive(ALICE, &encode_otr(&d.encode()), NOW + 30, &mut s.rng);
    assert_eq!(errors(&ev), [ConversationError::NotInPrivateState]);
    // The real Bob (compatible mode) reads it.
    let ev = deliver(&mut s.bob, ALICE, &msgs, NOW + 30, &mut s.rng);
    assert_eq!(texts(&ev), ["hello"]);
}

#[test]
fn storage_status_drives_the_refill() {
    let mut rng = StdRng::seed_from_u64(10);
    let mut server = Server::new(&mut rng);
    let mut bob = client(&mut rng, BOB, Policy::standalone(), NOW);
    let mut alice = client(&mut rng, ALICE, Policy::standalone(), NOW);
    let tag = bob.account().instance_tag();
    assert_eq!(
        bob.prekey_publication(None, NOW, &mut rng),
        Err(ConversationError::NoPrekeyServer)
    );
    bob.set_prekey_server(SERVER_ID, server.core.fingerprint(), refill(10, 5))
        .unwrap();
    // First maintenance: the stock is unknown, so it asks for the storage status; the
    // answer (0) triggers a full publication with both profiles.
    let m = bob.prekey_maintenance(NOW, &mut rng).unwrap().unwrap();
    assert!(matches!(m, PrekeyServerMessage::Dake1(_)));
    assert!(bob.prekey_exchange_pending(NOW));
    assert_eq!(
        bob.prekey_maintenance(NOW, &mut rng),
        Ok(None),
        "one at a time"
    );
    let PrekeyOutcome::StorageStatus {
        stored: 0,
        publish: Some(d1),
    } = server.exchange(&mut bob, m, NOW, &mut rng)
    else {
        panic!()
    };
    assert!(matches!(
        server.exchange(&mut bob, d1, NOW, &mut rng),
        PrekeyOutcome::Published {
            client_profile: true,
            prekey_profile: true,
            ..
        }
    ));
    assert_eq!(server.stored(BOB, tag), 10);
    // Nothing due within the status interval.
    assert_eq!(bob.prekey_maintenance(NOW + 60, &mut rng), Ok(None));
    // Six retrievals drain the stock to four, below the watermark of five.
    for k in 0..6 {
        retrieve(&mut server, &mut alice, BOB, NOW + 100 + k, &mut rng);
    }
    assert_eq!(server.stored(BOB, tag), 4);
    let later = NOW + RefillPolicy::default().status_interval;
    let m = bob.prekey_maintenance(later, &mut rng).unwrap().unwrap();
    let PrekeyOutcome::StorageStatus {
        stored: 4,
        publish: Some(d1),
    } = server.exchange(&mut bob, m, later, &mut rng)
    else {
        panic!()
    };
    let PrekeyOutcome::Published {
        prekey_ids,
        client_profile: false,
        prekey_profile: false,
    } = server.exchange(&mut bob, d1, later, &mut rng)
    else {
        panic!()
    };
    assert_eq!(prekey_ids.len(), 6, "topped up to the batch size");
    assert_eq!(server.stored(BOB, tag), 10);
    assert_eq!(bob.prekeys.len(), 16);
    // A status at the watermark asks for nothing.
    let later = later + RefillPolicy::default().status_interval;
    let m = bob.prekey_maintenance(later, &mut rng).unwrap().unwrap();
    assert!(matches!(
        server.exchange(&mut bob, m, later, &mut rng),
        PrekeyOutcome::StorageStatus {
            stored: 10,
            publish: None
        }
    ));
    // Close to the Prekey Profile's expiry, the status answer brings a publication of the
    // renewed Prekey Profile (and no prekeys: the stock is full).
    let renew = NOW + otr4::hazmat::conversation::PREKEY_PROFILE_LIFETIME_SECS - 3600;
    let m = bob.prekey_maintenance(renew, &mut rng).unwrap().unwrap();
    let PrekeyOutcome::StorageStatus {
        stored: 10,
        publish: Some(d1),
    } = server.exchange(&mut bob, m, renew, &mut rng)
    else {
        panic!()
    };
    assert_eq!(
        server.exchange(&mut bob, d1, renew, &mut rng),
        PrekeyOutcome::Published {
            prekey_ids: vec![],
            client_profile: false,
            prekey_profile: true
        }
    );
    // The old shared prekey is kept for its extra validity day, then deleted.
    assert_eq!(bob.prekeys.shared_prekeys().len(), 2);
    bob.tick(
        NOW + otr4::hazmat::conversation::PREKEY_PROFILE_LIFETIME_SECS + 86_400,
        &mut rng,
    );
    assert_eq!(bob.prekeys.shared_prekeys().len(), 1);
}

#[test]
fn a_prekey_store_of_another_instance_is_refused() {
    let mut rng = StdRng::seed_from_u64(12);
    let server = Server::new(&mut rng);
    let mut bob = client(&mut rng, BOB, Policy::standalone(), NOW);
    bob.set_prekey_server(SERVER_ID, server.core.fingerprint(), refill(4, 1))
        .unwrap();
    let mut other = PrekeyStore::new(InstanceTag(0x0999_9999));
    assert!(matches!(
        bob.client
            .prekey_publication(&mut other, None, NOW, &mut rng),
        Err(ConversationError::InvalidKeys(_))
    ));
    assert!(other.is_empty());
    assert!(!bob.prekey_exchange_pending(NOW));
}

#[test]
fn failure_answer_deletes_the_unpublished_secrets() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut server = Server::new(&mut rng);
    server.storage = MemoryStorage::new().with_max_prekeys_per_instance(3);
    let mut bob = client(&mut rng, BOB, Policy::standalone(), NOW);
    bob.set_prekey_server(SERVER_ID, server.core.fingerprint(), refill(4, 1))
        .unwrap();
    let d1 = bob
        .prekey_publication(None, NOW, &mut rng)
        .unwrap()
        .unwrap();
    let PrekeyOutcome::PublicationFailed { prekey_ids } =
        server.exchange(&mut bob, d1, NOW, &mut rng)
    else {
        panic!()
    };
    assert_eq!(prekey_ids.len(), 4);
    assert!(bob.prekeys.is_empty());
    // Nothing was confirmed, so the next publication carries the profiles again.
    bob.set_prekey_server(SERVER_ID, server.core.fingerprint(), refill(2, 1))
        .unwrap();
    let d1 = bob
        .prekey_publication(None, NOW, &mut rng)
        .unwrap()
        .unwrap();
    assert!(matches!(
        server.exchange(&mut bob, d1, NOW, &mut rng),
        PrekeyOutcome::Published {
            client_profile: true,
            prekey_profile: true,
            ..
        }
    ));
}

#[test]
fn a_retrieval_message_can_be_used_directly_and_is_checked() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut server = Server::new(&mut rng);
    let mut bob = client(&mut rng, BOB, Policy::standalone(), NOW);
    let mut alice = client(&mut rng, ALICE, Policy::standalone(), NOW);
    publish(&mut server, &mut bob, 3, NOW, &mut rng);
    alice
        .set_prekey_server(
            SERVER_ID,
            server.core.fingerprint(),
            RefillPolicy::default(),
        )
        .unwrap();
    let q = alice.ensemble_query(BOB).unwrap();
    let PrekeyServerMessage::EnsembleRetrieval(r) = server.handle(ALICE, &q, NOW, &mut rng) else {
        panic!()
    };
    // For another peer: refused, nothing sent.
    let ev = alice.send_offline(
        "carol@example.org",
        OfflineEnsembles::Retrieval(&r),
        "x",
        NOW,
        &mut rng,
    );
    assert_eq!(errors(&ev), [ConversationError::EnsemblesNotForPeer]);
    assert!(sends(&ev).is_empty());
    // Expired by the time it is used: discarded with a warning, nothing sent.
    let late = NOW + 30 * 86_400;
    let ev = alice.send_offline(BOB, OfflineEnsembles::Retrieval(&r), "x", late, &mut rng);
    assert!(matches!(warnings(&ev)[..], [Warning::EnsembleDiscarded(_)]));
    assert_eq!(errors(&ev), [ConversationError::NoPrekeyEnsembles]);
    // In time: sent and read.
    let ev = alice.send_offline(
        BOB,
        OfflineEnsembles::Retrieval(&r),
        "direct",
        NOW + 5,
        &mut rng,
    );
    let ev = deliver(&mut bob, ALICE, &only_texts(sends(&ev)), NOW + 6, &mut rng);
    assert_eq!(texts(&ev), ["direct"]);
    // No ensembles left for an empty server answer.
    let q = alice.ensemble_query("carol@example.org").unwrap();
    let reply = server.handle(ALICE, &q, NOW, &mut rng);
    assert!(matches!(
        alice.receive_prekey_server(&reply, NOW, &mut rng),
        Ok(PrekeyOutcome::NoEnsembles { .. })
    ));
}

#[test]
fn a_renewed_client_profile_still_verifies_delayed_messages() {
    // Bob's profile lives 3 days and is renewed 2 days before it expires.
    let policy = Policy {
        profile_lifetime_secs: 3 * 86_400,
        profile_renew_margin_secs: 2 * 86_400,
        ..Policy::standalone()
    };
    let mut rng = StdRng::seed_from_u64(13);
    let mut server = Server::new(&mut rng);
    let mut bob = client(&mut rng, BOB, policy, NOW);
    let mut alice = client(&mut rng, ALICE, Policy::standalone(), NOW);
    publish(&mut server, &mut bob, 2, NOW, &mut rng);
    let published = bob.account().profile().clone();
    let ens = retrieve(&mut server, &mut alice, BOB, NOW + 10, &mut rng);
    let ev = alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&ens.chosen),
        "delayed",
        NOW + 20,
        &mut rng,
    );
    let msgs = only_texts(sends(&ev));
    // Bob reads it a day and a half later, after his profile was renewed.
    let later = NOW + 36 * 3600;
    let ev = deliver(&mut bob, ALICE, &msgs, later, &mut rng);
    assert_ne!(bob.account().profile(), &published);
    assert_eq!(
        bob.account().previous_profiles(),
        std::slice::from_ref(&published)
    );
    assert_eq!(texts(&ev), ["delayed"]);
    // The renewed profile is republished (no prekeys needed).
    let d1 = bob
        .prekey_publication(Some(5), later, &mut rng)
        .unwrap()
        .unwrap();
    assert!(matches!(
        server.exchange(&mut bob, d1, later, &mut rng),
        PrekeyOutcome::Published {
            client_profile: true,
            prekey_profile: false,
            ..
        }
    ));
    // The first profile is deleted one day after it expired.
    bob.tick(NOW + 4 * 86_400 + 1, &mut rng);
    assert!(!bob.account().previous_profiles().contains(&published));
}

#[test]
fn validated_ensembles_are_deduplicated_by_instance() {
    let mut s = setup(14, Policy::standalone());
    let twice: Vec<ValidatedEnsemble> = vec![s.ensembles.chosen[0].clone(); 2];
    let ev = s.alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&twice),
        "once",
        NOW + 20,
        &mut s.rng,
    );
    assert_eq!(secure(&ev).len(), 1);
    assert!(warnings(&ev).contains(&Warning::EnsembleDiscarded(otr4::EnsembleError::Duplicate)));
}

#[test]
fn an_ensemble_with_another_key_than_the_expected_one_is_not_used() {
    let mut s = setup(15, Policy::standalone());
    let tag = s.bob.account().instance_tag();
    // The caller pinned another key for Bob's device (the server substituted a profile).
    let other = client(&mut s.rng, BOB, Policy::standalone(), NOW)
        .account()
        .fingerprint();
    s.alice
        .expect_fingerprint(BOB, tag, Some(other), NOW + 20, &mut s.rng);
    let ev = s.alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&s.ensembles.chosen),
        "secret",
        NOW + 20,
        &mut s.rng,
    );
    assert!(secure(&ev).is_empty(), "{ev:?}");
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Send { .. })),
        "{ev:?}"
    );
    assert!(errors(&ev).contains(&ConversationError::KeyNotAccepted));
    assert!(errors(&ev).contains(&ConversationError::NoPrekeyEnsembles));
    // With Bob's real key expected, the same ensembles are used.
    let real = s.bob.account().fingerprint();
    s.alice
        .expect_fingerprint(BOB, tag, Some(real), NOW + 20, &mut s.rng);
    let ev = s.alice.send_offline(
        BOB,
        OfflineEnsembles::Validated(&s.ensembles.chosen),
        "secret",
        NOW + 20,
        &mut s.rng,
    );
    assert_eq!(secure(&ev).len(), 1, "{ev:?}");
}

/// Configuring the same prekey server again (xmpp-glue re-confirms its key on every
/// connection) keeps an ensemble query in flight: its answer is still expected.
#[test]
fn configuring_the_same_prekey_server_again_keeps_a_query_in_flight() {
    let mut rng = StdRng::seed_from_u64(21);
    let mut server = Server::new(&mut rng);
    let mut alice = client(&mut rng, ALICE, Policy::default(), NOW);
    let mut bob = client(&mut rng, BOB, Policy::standalone(), NOW);
    publish(&mut server, &mut bob, 3, NOW, &mut rng);
    let fp = server.core.fingerprint();
    alice
        .set_prekey_server(SERVER_ID, fp, RefillPolicy::default())
        .unwrap();
    let q = alice.ensemble_query(BOB).unwrap();
    alice
        .set_prekey_server(SERVER_ID, fp, RefillPolicy::default())
        .unwrap();
    match server.exchange(&mut alice, q, NOW + 10, &mut rng) {
        PrekeyOutcome::Ensembles { ensembles, .. } => assert_eq!(ensembles.chosen.len(), 1),
        other => panic!("the answer was not taken: {other:?}"),
    }
}
