//! Length-hiding padding (issue 15, item 2; otrv4.md §"TLV Record Types", type 0): the
//! policy's buckets make messages of different lengths equally long on the wire, the
//! padding never reaches the application, and a peer's padding of any length is accepted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU16;

use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::encoded::decode_otr;
use otr4::hazmat::wire::messages::{DataMessage, Message};
use otr4::hazmat::wire::tlv::MAX_TLV_VALUE_LEN;
use otr4::{Account, Client, Event, Padding, Policy, PrekeyStore, Tlv, TlvType};
use rand::SeedableRng;
use rand::rngs::StdRng;

const NOW: i64 = 1_700_000_000;
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

struct Side {
    client: Client,
    store: PrekeyStore,
}

struct Pair {
    alice: Side,
    bob: Side,
    rng: StdRng,
}

fn side(rng: &mut StdRng, jid: &str, policy: Policy) -> Side {
    let account = Account::generate(rng, policy, NOW).unwrap();
    Side {
        store: PrekeyStore::new(account.instance_tag()),
        client: Client::new(account, jid),
    }
}

fn sends(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

impl Pair {
    /// Alice and Bob with an encrypted session (interactive DAKE, both directions used).
    fn connected(seed: u64, alice: Policy, bob: Policy) -> Pair {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut p = Pair {
            alice: side(&mut rng, ALICE, alice),
            bob: side(&mut rng, BOB, bob),
            rng,
        };
        let first = p.alice.client.start(BOB, NOW, &mut p.rng);
        p.deliver_all(true, sends(&first));
        assert!(
            p.alice.client.instances(BOB).iter().any(|t| p
                .alice
                .client
                .conversation(BOB, *t)
                .unwrap()
                .is_encrypted())
        );
        p
    }

    /// Delivers `texts` (from Alice if `from_alice`) and every answer until quiet; returns
    /// every non-send event the receivers produced, in order.
    fn deliver_all(&mut self, from_alice: bool, texts: Vec<String>) -> Vec<Event> {
        let mut wire: Vec<(bool, String)> = texts.into_iter().map(|t| (from_alice, t)).collect();
        let mut seen = Vec::new();
        while !wire.is_empty() {
            let (to_bob, text) = wire.remove(0);
            let (rx, from) = if to_bob {
                (&mut self.bob, ALICE)
            } else {
                (&mut self.alice, BOB)
            };
            let events = rx
                .client
                .receive(from, &text, &mut rx.store, NOW, &mut self.rng);
            for t in sends(&events) {
                wire.push((!to_bob, t));
            }
            seen.extend(
                events
                    .into_iter()
                    .filter(|e| !matches!(e, Event::Send { .. })),
            );
        }
        seen
    }

    /// Alice sends `text` with `tlvs`; returns the wire texts (not yet delivered).
    fn alice_sends(&mut self, text: &str, tlvs: &[Tlv]) -> Vec<String> {
        let events = self.alice.client.send(BOB, text, tlvs, NOW, &mut self.rng);
        let out = sends(&events);
        assert_eq!(out.len(), 1, "{events:?}");
        out
    }
}

fn data(text: &str) -> DataMessage {
    match Message::decode(&decode_otr(text).unwrap()).unwrap() {
        Message::Data(d) => d,
        other => panic!("not a data message: {other:?}"),
    }
}

/// The one `Received` event: its text and TLVs. Nothing else but no warnings or errors.
fn received(events: &[Event]) -> (String, Vec<Tlv>) {
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Warning { .. } | Event::Error { .. })),
        "{events:?}"
    );
    let mut got = events.iter().filter_map(|e| match e {
        Event::Received {
            text,
            tlvs,
            encrypted: true,
            ..
        } => Some((text.clone(), tlvs.clone())),
        _ => None,
    });
    let one = got.next().expect("a received message");
    assert!(got.next().is_none());
    one
}

#[test]
fn messages_of_1_200_and_255_bytes_give_equally_long_ciphertexts() {
    let policy = Policy::standalone();
    assert_eq!(policy.padding, Padding::Buckets, "padding is on by default");
    assert_eq!(Policy::default().padding, Padding::Buckets);
    assert_eq!(Policy::interactive_only().padding, Padding::Buckets);
    let mut p = Pair::connected(1, policy, policy);
    let mut lengths = Vec::new();
    for n in [1usize, 200, 255, 256, 257, 600] {
        let text = "x".repeat(n);
        let wire = p.alice_sends(&text, &[]);
        let d = data(&wire[0]);
        lengths.push(d.encrypted.len());
        let (got, tlvs) = received(&p.deliver_all(true, wire));
        assert_eq!(got, text, "padding is stripped");
        assert!(tlvs.is_empty(), "padding is never shown: {tlvs:?}");
    }
    // 1, 200, 255 and 256 bytes of text fill one 256-byte bucket (+ the NUL and the padding
    // record's header); 257 and 600 bytes take two and three.
    assert_eq!(lengths, [261, 261, 261, 261, 517, 773]);
}

#[test]
fn without_padding_the_ciphertext_follows_the_text() {
    let policy = Policy {
        padding: Padding::None,
        ..Policy::standalone()
    };
    let mut p = Pair::connected(2, policy, Policy::standalone());
    for n in [1usize, 200, 255] {
        let text = "y".repeat(n);
        let wire = p.alice_sends(&text, &[]);
        assert_eq!(data(&wire[0]).encrypted.len(), n);
        assert_eq!(received(&p.deliver_all(true, wire)).0, text);
    }
}

#[test]
fn custom_buckets_and_padding_with_other_tlvs() {
    let policy = Policy {
        padding: Padding::Custom(NonZeroU16::new(64).unwrap()),
        ..Policy::standalone()
    };
    let mut p = Pair::connected(3, policy, Policy::standalone());
    for (n, len) in [(1usize, 69usize), (64, 69), (65, 133)] {
        let wire = p.alice_sends(&"z".repeat(n), &[]);
        assert_eq!(data(&wire[0]).encrypted.len(), len);
        p.deliver_all(true, wire);
    }
    // With another TLV the content counts its NUL and record too; the padding record comes
    // last and is stripped, the other TLV is delivered.
    let other = Tlv::new(TlvType::Unknown(0x4242), b"value".to_vec());
    let wire = p.alice_sends("hi", std::slice::from_ref(&other));
    // content = 2 + 1 + 4 + 5 = 12 → one bucket: 64 + 5.
    assert_eq!(data(&wire[0]).encrypted.len(), 69);
    let events = p.deliver_all(true, wire);
    let tlvs = events
        .iter()
        .find_map(|e| match e {
            Event::Received { text, tlvs, .. } if text == "hi" => Some(tlvs.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(tlvs, [other]);
}

#[test]
fn a_peers_padding_of_any_allowed_length_is_accepted() {
    // Bob pads nothing himself; Alice sends records of every edge length, several at once,
    // and with padding from her policy on top.
    let none = Policy {
        padding: Padding::None,
        ..Policy::standalone()
    };
    let mut p = Pair::connected(4, none, none);
    for lens in [
        vec![0usize],
        vec![1],
        vec![255],
        vec![MAX_TLV_VALUE_LEN],
        vec![3, 0, 1000],
    ] {
        let tlvs: Vec<Tlv> = lens
            .iter()
            .map(|&l| Tlv::new(TlvType::Padding, vec![0xa5; l]))
            .collect();
        let wire = p.alice_sends("padded by the peer", &tlvs);
        let (text, shown) = received(&p.deliver_all(true, wire));
        assert_eq!(text, "padded by the peer");
        assert!(shown.is_empty(), "{lens:?}: {shown:?}");
    }
    for bucket in [1u16, 7, 4096, u16::MAX] {
        let policy = Policy {
            padding: Padding::Custom(NonZeroU16::new(bucket).unwrap()),
            ..Policy::standalone()
        };
        p.alice.client.set_policy(policy).unwrap();
        let wire = p.alice_sends("bucket", &[]);
        let len = data(&wire[0]).encrypted.len();
        assert_eq!((len - 5) % usize::from(bucket), 0, "bucket {bucket}: {len}");
        assert_eq!(received(&p.deliver_all(true, wire)).0, "bucket");
    }
}

#[test]
fn heartbeats_and_control_messages_are_padded_too() {
    let mut p = Pair::connected(5, Policy::standalone(), Policy::standalone());
    let tag = p.bob.client.account().instance_tag();
    // SMP message 1 (a TLV with an empty text) is one bucket or more, a multiple plus 5.
    let events = p
        .alice
        .client
        .smp_start(BOB, tag, b"secret", None, NOW, &mut p.rng);
    let wire = sends(&events);
    let len = data(&wire[0]).encrypted.len();
    assert_eq!((len - 5) % 256, 0, "{len}");
}

#[test]
fn the_padding_policy_survives_export_and_import() {
    let mut rng = StdRng::seed_from_u64(6);
    for padding in [
        Padding::None,
        Padding::Buckets,
        Padding::Custom(NonZeroU16::new(1000).unwrap()),
    ] {
        let policy = Policy {
            padding,
            ..Policy::standalone()
        };
        let s = side(&mut rng, ALICE, policy);
        let key = [7u8; 32];
        let bytes = s.client.export(&s.store, &key, &mut rng);
        let (back, _) = Client::import(&key, &bytes).unwrap();
        assert_eq!(back.account().policy().padding, padding);
    }
}
