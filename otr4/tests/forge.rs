//! The forging toolkit (otrv4.md §"Forging Transcripts"; feature `forge`): each tool does
//! what the spec says it does, shown against the honest code — a modified or re-MACed data
//! message is accepted as authentic by an honest receiver, a transcript forged with one
//! party's long-term key passes the honest checks of both sides, a false Prekey Ensemble
//! validates, and impersonation with a forging key fools the honest client.
#![cfg(feature = "forge")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::forge::{
    self, ForgeError, ImpersonatedInitiator, Party, Side, data_message, forge_dake,
    forge_entire_transcript, forge_non_interactive_dake, message_keys, modify_data_message,
    read_and_forge, remac_message, sending_chain_key, show_mac_key,
};
use otr4::hazmat::crypto::ed448::KeyPair;
use otr4::hazmat::crypto::keys::ForgingPublicKey;
use otr4::hazmat::dake::PhiPrime;
use otr4::hazmat::dake::interactive::{LocalParty, receive_identity, start};
use otr4::hazmat::dake::non_interactive::{
    receive_non_interactive_auth, send_non_interactive_auth,
};
use otr4::hazmat::profile::client::ClientProfile;
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::{decode_otr, encode_otr};
use otr4::hazmat::wire::messages::Message;
use otr4::hazmat::wire::tlv::parse_plaintext;
use otr4::{Account, Client, Event, InstanceTag, Padding, Policy, PrekeyStore, ValidatedEnsemble};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const WEEK: i64 = 7 * 86_400;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// A party with its long-term key, its forging key pair (kept) and its Client Profile.
struct Keys {
    long_term: KeyPair,
    forging: KeyPair,
    profile: ClientProfile,
}

fn keys(rng: &mut StdRng, tag: u32) -> Keys {
    let long_term = KeyPair::generate(rng);
    let forging = KeyPair::generate(rng);
    let profile = ClientProfile::build_and_sign(
        InstanceTag(tag),
        &long_term,
        &ForgingPublicKey(*forging.public()),
        b"4",
        NOW + 2 * WEEK,
    );
    Keys {
        long_term,
        forging,
        profile,
    }
}

fn phi() -> PhiPrime {
    PhiPrime::from_strings(&[ALICE, BOB])
}

fn text_of(plaintext: &[u8]) -> String {
    parse_plaintext(plaintext).text().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// Data messages: Modify, Read and Forge, Show MAC Key, ReMAC.

fn sends(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// Delivers `texts` from `from` to `to` and every answer back and forth until quiet.
fn deliver(
    rng: &mut StdRng,
    a: (&mut Client, &mut PrekeyStore),
    b: (&mut Client, &mut PrekeyStore),
    texts: Vec<String>,
) -> Vec<Event> {
    let (ca, sa) = a;
    let (cb, sb) = b;
    let mut wire: Vec<(bool, String)> = texts.into_iter().map(|t| (true, t)).collect();
    let mut seen = Vec::new();
    while !wire.is_empty() {
        let (to_b, text) = wire.remove(0);
        let events = if to_b {
            cb.receive(ca.own_jid().to_owned().as_str(), &text, sb, NOW, rng)
        } else {
            ca.receive(cb.own_jid().to_owned().as_str(), &text, sa, NOW, rng)
        };
        for t in sends(&events) {
            wire.push((!to_b, t));
        }
        seen.extend(events);
    }
    seen
}

/// The one message received, checked to come without warning or error.
fn received_text(events: &[Event]) -> String {
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Warning { .. } | Event::Error { .. })),
        "{events:?}"
    );
    let got: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Received {
                text,
                encrypted: true,
                ..
            } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "{events:?}");
    got[0].clone()
}

#[test]
fn a_data_message_modified_with_its_revealed_mac_key_is_accepted_as_authentic() {
    let mut rng = StdRng::seed_from_u64(1);
    let policy = Policy::standalone();
    let mut alice = Client::new(Account::generate(&mut rng, policy, NOW).unwrap(), ALICE);
    let mut bob = Client::new(Account::generate(&mut rng, policy, NOW).unwrap(), BOB);
    let mut sa = PrekeyStore::new(alice.account().instance_tag());
    let mut sb = PrekeyStore::new(bob.account().instance_tag());
    let first = sends(&alice.start(BOB, NOW, &mut rng));
    deliver(&mut rng, (&mut alice, &mut sa), (&mut bob, &mut sb), first);

    // Bob as he is before Alice's message arrives: an honest receiver of it.
    let key = [5u8; 32];
    let before = bob.export(&sb, &key, &mut rng);

    let original = "hi Bob, the meeting is at noon";
    let wire = sends(&alice.send(BOB, original, &[], NOW, &mut rng));
    let m1 = data_message(&decode_otr(&wire[0]).unwrap()).unwrap();
    let got = deliver(&mut rng, (&mut alice, &mut sa), (&mut bob, &mut sb), wire);
    assert_eq!(received_text(&got), original);

    // The conversation goes on; Bob reveals the MAC key of m1 in a later message (otrv4.md
    // §"Revealing MAC Keys"). Anyone watching the wire now holds it.
    let mut revealed = None;
    for round in 0..4 {
        let reply = sends(&bob.send(ALICE, &format!("reply {round}"), &[], NOW, &mut rng));
        let d = data_message(&decode_otr(&reply[0]).unwrap()).unwrap();
        revealed = d
            .revealed_mac_keys
            .chunks(64)
            .map(|k| <[u8; 64]>::try_from(k).unwrap())
            .find(|k| remac_message(&m1, k).mac == m1.mac);
        deliver(&mut rng, (&mut bob, &mut sb), (&mut alice, &mut sa), reply);
        if revealed.is_some() {
            break;
        }
        let more = sends(&alice.send(BOB, "and?", &[], NOW, &mut rng));
        deliver(&mut rng, (&mut alice, &mut sa), (&mut bob, &mut sb), more);
    }
    let mac_key = revealed.expect("Bob revealed the MAC key of m1");

    // Modify Data Message: "hi" → "yo" at offset 0, re-MACed with the revealed key.
    let forged = modify_data_message(&m1, 0, b"hi", b"yo", &mac_key).unwrap();
    let (mut honest, mut store) = Client::import(&key, &before).unwrap();
    let got = honest.receive(
        ALICE,
        &encode_otr(&forged.encode()),
        &mut store,
        NOW,
        &mut rng,
    );
    assert_eq!(received_text(&got), "yo Bob, the meeting is at noon");

    // Without the MAC key the same change is refused: the key is what makes it authentic.
    let mut tampered = m1.clone();
    tampered.encrypted[0] ^= b'h' ^ b'y';
    let (mut honest, mut store) = Client::import(&key, &before).unwrap();
    let got = honest.receive(
        ALICE,
        &encode_otr(&tampered.encode()),
        &mut store,
        NOW,
        &mut rng,
    );
    assert!(
        !got.iter().any(|e| matches!(e, Event::Received { .. })),
        "{got:?}"
    );
    assert!(matches!(
        modify_data_message(&m1, m1.encrypted.len() - 1, b"hi", b"yo", &mac_key),
        Err(ForgeError::OutOfRange { .. })
    ));
    assert!(matches!(
        modify_data_message(&m1, 0, b"hi", b"you", &mac_key),
        Err(ForgeError::LengthMismatch { .. })
    ));
}

/// A session forged (or run) between two parties, from the toolkit: both ratchets.
fn session(seed: u64) -> (forge::ForgedDake, Keys, Keys) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let dake = forge_dake(
        &mut rng,
        &Party {
            profile: &bob.profile,
            long_term: Some(&bob.long_term),
        },
        &Party {
            profile: &alice.profile,
            long_term: Some(&alice.long_term),
        },
        Side::Alice,
        &phi(),
        NOW,
    )
    .unwrap();
    (dake, bob, alice)
}

#[test]
fn read_and_forge_with_a_chain_key_decrypts_and_replaces_the_text() {
    let mut rng = StdRng::seed_from_u64(2);
    let (mut s, _, _) = session(2);
    let chain_key = sending_chain_key(&s.alice).unwrap();
    let pt = forge::plaintext("meet me at the station", &[], Padding::Buckets).unwrap();
    let sent = s
        .alice
        .encrypt(
            InstanceTag(0x200),
            InstanceTag(0x100),
            0,
            pt.as_slice(),
            &mut rng,
        )
        .unwrap();
    let new = forge::plaintext("meet me at the harbour", &[], Padding::Buckets).unwrap();
    let (old, forged) = read_and_forge(&sent.message, &chain_key, Some(new.as_slice())).unwrap();
    assert_eq!(text_of(old.as_slice()), "meet me at the station");
    let forged = forged.unwrap();
    // Bob's honest ratchet accepts the forgery (it never saw the original).
    let got = s.bob.decrypt(&forged).unwrap();
    assert_eq!(text_of(got.plaintext.as_slice()), "meet me at the harbour");
    // A wrong chain key is reported, not read as noise.
    let next = message_keys(&chain_key).next_chain_key;
    let wrong: [u8; 64] = next.as_slice().try_into().unwrap();
    assert_eq!(
        read_and_forge(&sent.message, &wrong, None).err(),
        Some(ForgeError::WrongKey)
    );
}

#[test]
fn show_mac_key_and_remac_make_a_changed_message_verify() {
    let mut rng = StdRng::seed_from_u64(3);
    let (mut s, _, _) = session(3);
    let chain_key = sending_chain_key(&s.alice).unwrap();
    let k = message_keys(&chain_key);
    let mk_enc: [u8; 64] = k.message_key.as_slice().try_into().unwrap();
    assert_eq!(show_mac_key(&mk_enc).as_slice(), k.mac_key.as_slice());
    let pt = forge::plaintext("yes", &[], Padding::Buckets).unwrap();
    let sent = s
        .alice
        .encrypt(
            InstanceTag(0x200),
            InstanceTag(0x100),
            0,
            pt.as_slice(),
            &mut rng,
        )
        .unwrap();
    // "yes" → "no!" by XOR, without the MAC key: refused (and Bob's state is unchanged).
    let mut changed = sent.message.clone();
    for (c, (o, n)) in changed.encrypted.iter_mut().zip(b"yes".iter().zip(b"no!")) {
        *c ^= o ^ n;
    }
    assert!(s.bob.decrypt(&changed).is_err());
    // ReMAC with the MAC key shown from the message key: accepted.
    let remaced = remac_message(&changed, &show_mac_key(&mk_enc));
    let got = s.bob.decrypt(&remaced).unwrap();
    assert_eq!(text_of(got.plaintext.as_slice()), "no!");
}

// ---------------------------------------------------------------------------------------
// DAKEs and whole transcripts with one long-term key.

#[test]
fn a_transcript_forged_with_one_long_term_key_passes_the_honest_checks() {
    for holder in [Side::Alice, Side::Bob] {
        let mut rng = StdRng::seed_from_u64(4);
        let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
        // Only the holder's long-term secret key; the other party is a Client Profile.
        fn with_key(k: &Keys, side: Side, holder: Side) -> Party<'_> {
            Party {
                profile: &k.profile,
                long_term: (side == holder).then_some(&k.long_term),
            }
        }
        let lines = [
            (Side::Alice, "hello Bob"),
            (Side::Bob, "hello Alice"),
            (Side::Bob, "I confess everything"),
            (Side::Alice, "noted"),
        ];
        let (ssid, messages) = forge_entire_transcript(
            &mut rng,
            &with_key(&bob, Side::Bob, holder),
            &with_key(&alice, Side::Alice, holder),
            holder,
            &phi(),
            &lines,
            Padding::Buckets,
            NOW,
        )
        .unwrap();
        assert_eq!(messages.len(), 3 + lines.len());
        let kinds: Vec<u8> = messages
            .iter()
            .map(|m| Message::decode(&m.bytes).unwrap().message_type())
            .collect();
        assert_eq!(kinds, [0x35, 0x36, 0x37, 3, 3, 3, 3], "{holder:?}");

        // Replay the DAKE through both honest state machines again, as a verifier holding
        // the other's ephemerals would: every check passes. Bob's side: the Identity
        // message is his, Auth-R verifies; Alice's side: Auth-I verifies.
        let decode = |i: usize| Message::decode(&messages[i].bytes).unwrap();
        let (Message::Identity(identity), Message::AuthR(auth_r), Message::AuthI(auth_i)) =
            (decode(0), decode(1), decode(2))
        else {
            panic!("not a DAKE");
        };
        assert!(identity.client_profile == bob.profile && auth_r.client_profile == alice.profile);
        identity
            .client_profile
            .validate(identity.sender_tag, NOW)
            .unwrap();
        auth_r
            .client_profile
            .validate(auth_r.sender_tag, NOW)
            .unwrap();
        assert_eq!(
            (auth_i.sender_tag, auth_i.receiver_tag),
            (InstanceTag(0x100), InstanceTag(0x200))
        );
        assert_eq!(ssid.0.len(), 8);

        // A genuine transcript has the same shape: nothing tells them apart.
        let mut rng2 = StdRng::seed_from_u64(5);
        let (genuine_ssid, genuine) = forge_entire_transcript(
            &mut rng2,
            &Party {
                profile: &bob.profile,
                long_term: Some(&bob.long_term),
            },
            &Party {
                profile: &alice.profile,
                long_term: Some(&alice.long_term),
            },
            Side::Bob,
            &phi(),
            &lines,
            Padding::Buckets,
            NOW,
        )
        .unwrap();
        assert_ne!(genuine_ssid, ssid);
        let lens = |m: &[forge::ForgedMessage]| m.iter().map(|m| m.bytes.len()).collect::<Vec<_>>();
        assert_eq!(lens(&messages), lens(&genuine));
    }
}

#[test]
fn forge_dake_needs_the_holders_key_and_it_must_match_the_profile() {
    let mut rng = StdRng::seed_from_u64(6);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    fn profile_only(k: &Keys) -> Party<'_> {
        Party {
            profile: &k.profile,
            long_term: None,
        }
    }
    for holder in [Side::Alice, Side::Bob] {
        assert!(matches!(
            forge_dake(
                &mut rng,
                &profile_only(&bob),
                &profile_only(&alice),
                holder,
                &phi(),
                NOW
            ),
            Err(ForgeError::KeyMismatch)
        ));
    }
    let wrong = Party {
        profile: &alice.profile,
        long_term: Some(&bob.long_term),
    };
    assert!(matches!(
        forge_dake(
            &mut rng,
            &profile_only(&bob),
            &wrong,
            Side::Alice,
            &phi(),
            NOW
        ),
        Err(ForgeError::KeyMismatch)
    ));
}

// ---------------------------------------------------------------------------------------
// Non-interactive: False Prekey Ensemble, Forge DAKE.

#[test]
fn a_false_prekey_ensemble_validates_and_its_device_completes_the_dake() {
    let mut rng = StdRng::seed_from_u64(7);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let mut device = PrekeyStore::new(InstanceTag(0x100));
    let ensemble = forge::false_prekey_ensemble(
        &mut rng,
        &bob.long_term,
        &bob.profile,
        &mut device,
        NOW + WEEK,
        NOW,
    )
    .unwrap();
    let validated = ValidatedEnsemble::validate(&ensemble, NOW).unwrap();
    // Alice answers it honestly; the forging device (not Bob's client) reads the answer.
    let (nia, alice_done) = send_non_interactive_auth(
        &mut rng,
        &validated,
        &alice.long_term,
        &alice.profile,
        &phi(),
    )
    .unwrap();
    let bob_done = receive_non_interactive_auth(
        &nia,
        &bob.long_term,
        std::slice::from_ref(&bob.profile),
        &mut device,
        &phi(),
        NOW,
    )
    .unwrap();
    assert_eq!(alice_done.ssid(), bob_done.ssid());
    // A key that is not the profile's cannot sign it.
    let mut other = PrekeyStore::new(InstanceTag(0x100));
    assert!(matches!(
        forge::false_prekey_ensemble(
            &mut rng,
            &alice.long_term,
            &bob.profile,
            &mut other,
            NOW + WEEK,
            NOW
        ),
        Err(ForgeError::KeyMismatch)
    ));
}

#[test]
fn a_non_interactive_dake_forged_with_bobs_key_only_verifies() {
    let mut rng = StdRng::seed_from_u64(8);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let mut f = forge_non_interactive_dake(
        &mut rng,
        &bob.long_term,
        &bob.profile,
        &alice.profile,
        &phi(),
        NOW + WEEK,
        NOW,
    )
    .unwrap();
    assert_eq!(f.auth.client_profile, alice.profile);
    ValidatedEnsemble::validate(&f.ensemble, NOW).unwrap();
    // "Alice's" first message decrypts on Bob's honest ratchet, and back.
    let pt = forge::plaintext("sent while you were away", &[], Padding::Buckets).unwrap();
    let m = f
        .alice
        .encrypt(
            InstanceTag(0x200),
            InstanceTag(0x100),
            0,
            pt.as_slice(),
            &mut rng,
        )
        .unwrap();
    let got = f.bob.decrypt(&m.message).unwrap();
    assert_eq!(
        text_of(got.plaintext.as_slice()),
        "sent while you were away"
    );
}

// ---------------------------------------------------------------------------------------
// Impersonation with a forging key.

#[test]
fn impersonate_responder_fools_bobs_honest_dake() {
    let mut rng = StdRng::seed_from_u64(9);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let p = phi();
    let bob_local = LocalParty::new(&bob.long_term, &bob.profile, &p).unwrap();
    let (waiting, identity) = start(&mut rng, &bob_local, InstanceTag::UNKNOWN);
    // The owner of Bob's forging key answers as Alice.
    let (alice_side, auth_r) =
        forge::impersonate_responder(&mut rng, &identity, &alice.profile, &bob.forging, &p, NOW)
            .unwrap();
    let (done, auth_i) = waiting
        .receive_auth_r(&mut rng, &bob_local, &auth_r, NOW)
        .unwrap();
    assert_eq!(
        done.their_profile().profile(),
        &alice.profile,
        "Bob thinks it is Alice"
    );
    let other = alice_side.receive_auth_i(&auth_i).unwrap();
    assert_eq!(done.ssid(), other.ssid());
    // Without Bob's forging key (Alice's own instead, not in the ring) it cannot be done.
    let (_, identity) = start(&mut rng, &bob_local, InstanceTag::UNKNOWN);
    assert!(matches!(
        forge::impersonate_responder(&mut rng, &identity, &alice.profile, &alice.forging, &p, NOW),
        Err(ForgeError::Dake(_))
    ));
}

#[test]
fn impersonate_responder_non_interactive_fools_bobs_client() {
    let mut rng = StdRng::seed_from_u64(10);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let account = Account::from_keys(
        bob.long_term.clone(),
        ForgingPublicKey(*bob.forging.public()),
        Some(bob.forging.clone()),
        InstanceTag(0x100),
        Policy::standalone(),
        NOW,
    )
    .unwrap();
    let mut client = Client::new(account, BOB);
    // Bob's client publishes an ensemble (as otr4-peer's `ensemble` does).
    let mut store = PrekeyStore::new(InstanceTag(0x100));
    let prekey_profile = store.new_prekey_profile(&mut rng, &bob.long_term, NOW + WEEK);
    let message = store
        .generate_prekey_messages(&mut rng, 1, NOW)
        .unwrap()
        .remove(0);
    let ensemble = otr4::hazmat::wire::messages::PrekeyEnsemble {
        client_profile: client.account().profile().clone(),
        prekey_profile,
        prekey_message: message,
    };
    let validated = ValidatedEnsemble::validate(&ensemble, NOW).unwrap();
    let (nia, _) = forge::impersonate_responder_non_interactive(
        &mut rng,
        &validated,
        &alice.profile,
        &bob.forging,
        &PhiPrime::from_strings(&[ALICE, BOB]),
    )
    .unwrap();
    let events = client.receive(ALICE, &encode_otr(&nia.encode()), &mut store, NOW, &mut rng);
    let alice_fp =
        otr4::Fingerprint::otrv4(alice.profile.public_key(), alice.profile.forging_key());
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Secure { their_fingerprint, .. } if *their_fingerprint == alice_fp
        )),
        "{events:?}"
    );
}

#[test]
fn impersonate_initiator_fools_alices_honest_dake() {
    let mut rng = StdRng::seed_from_u64(11);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let p = phi();
    // The owner of Alice's forging key plays Bob.
    let imp = ImpersonatedInitiator::start(
        &mut rng,
        &bob.profile,
        &alice.forging,
        InstanceTag(0x200),
        &p,
    );
    let alice_local = LocalParty::new(&alice.long_term, &alice.profile, &p).unwrap();
    let (waiting, auth_r) = receive_identity(&mut rng, &alice_local, &imp.identity, NOW).unwrap();
    let (auth_i, bob_side) = imp.receive_auth_r(&mut rng, &auth_r, NOW).unwrap();
    let done = waiting.receive_auth_i(&auth_i).unwrap();
    assert_eq!(
        done.their_profile().profile(),
        &bob.profile,
        "Alice thinks it is Bob"
    );
    assert_eq!(done.ssid(), bob_side.ssid());
}

// ---------------------------------------------------------------------------------------
// Parse.

#[test]
fn parse_lists_the_fields_of_every_dake_and_data_message() {
    let mut rng = StdRng::seed_from_u64(12);
    let (bob, alice) = (keys(&mut rng, 0x100), keys(&mut rng, 0x200));
    let (_, messages) = forge_entire_transcript(
        &mut rng,
        &Party {
            profile: &bob.profile,
            long_term: Some(&bob.long_term),
        },
        &Party {
            profile: &alice.profile,
            long_term: None,
        },
        Side::Bob,
        &phi(),
        &[(Side::Alice, "hi")],
        Padding::Buckets,
        NOW,
    )
    .unwrap();
    let names = |i: usize| -> Vec<&'static str> {
        forge::parse(&messages[i].bytes)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    assert!(names(0).contains(&"Y") && names(0).contains(&"client profile forging key"));
    assert!(names(1).contains(&"sigma") && names(1).contains(&"X"));
    assert_eq!(
        names(2),
        [
            "type",
            "sender instance tag",
            "receiver instance tag",
            "sigma"
        ]
    );
    let data = forge::parse(&messages[3].bytes).unwrap();
    assert_eq!(data[0], ("type", "Data (0x03)".to_owned()));
    assert!(
        data.iter()
            .any(|(n, v)| *n == "encrypted message" && v.len() == 2 * 261)
    );
    assert!(matches!(
        forge::parse(b"\x00\x04\x99"),
        Err(ForgeError::Decode(_))
    ));
    assert!(matches!(
        data_message(&messages[0].bytes),
        Err(ForgeError::NotDataMessage)
    ));
}
