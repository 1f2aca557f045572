//! The `Debug` output of every type holding a secret shows none of the secret's bytes: a
//! secret whose bytes are known is formatted (plain and `{:#?}`) and neither its hex nor its
//! decimal byte list appears. The conversation layer's types (account, client, peer,
//! conversation, session) print no key and no queued message text.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use otr4::ExtraSymmetricKey;
use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::hazmat::crypto::dh::DhKeyPair;
use otr4::hazmat::crypto::ecdh::ecdh;
use otr4::hazmat::crypto::ed448::{KeyPair, SymmetricKey};
use otr4::hazmat::crypto::keys::ForgingPublicKey;
use otr4::hazmat::dake::{MixedSecret, PhiPrime};
use otr4::hazmat::ratchet::SecretBytes;
use otr4::{Account, Client, ConversationState, Event, Policy};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Fails if `value`'s Debug output shows (a 12-byte window of) `secret` as hex or as a
/// decimal byte list.
fn assert_hidden<T: std::fmt::Debug>(value: &T, secret: &[u8]) {
    for out in [format!("{value:?}"), format!("{value:#?}")] {
        let lower = out.to_lowercase();
        let flat: String = out.chars().filter(|c| !c.is_whitespace()).collect();
        for window in secret.windows(12.min(secret.len())) {
            let hex = hex::encode(window);
            assert!(!lower.contains(&hex), "{out} shows secret bytes {hex}");
            let dec = format!("{window:?}");
            let dec: String = dec
                .trim_matches(|c| c == '[' || c == ']')
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            assert!(!flat.contains(&dec), "{out} shows secret bytes {dec}");
        }
    }
}

#[test]
fn symmetric_keys_key_pairs_and_scalars() {
    let sym: [u8; 57] = core::array::from_fn(|i| 0x40 + i as u8);
    assert_hidden(&SymmetricKey::from_bytes(sym), &sym);
    let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym));
    let scalar = kp.secret().encode();
    assert_hidden(&kp, &sym);
    assert_hidden(&kp, &scalar);
    assert_hidden(kp.secret(), &scalar);
    assert!(format!("{kp:?}").contains("public"));
}

#[test]
fn dh_and_ecdh_secrets() {
    let secret: [u8; 80] = core::array::from_fn(|i| 0x11 + i as u8);
    let a = DhKeyPair::from_secret_bytes(secret).unwrap();
    assert_hidden(&a, &secret);
    assert_hidden(a.secret(), &secret);
    let b = DhKeyPair::from_secret_bytes([0x5a; 80]).unwrap();
    let k_dh = a.shared_secret(b.public());
    assert_hidden(&k_dh, k_dh.k_dh());
    let mut rng = StdRng::seed_from_u64(1);
    let (x, y) = (KeyPair::generate(&mut rng), KeyPair::generate(&mut rng));
    let k = ecdh(x.secret(), y.public()).unwrap();
    assert_hidden(&k, k.as_bytes());
}

#[test]
fn protocol_secrets() {
    let bytes: [u8; 64] = core::array::from_fn(|i| 0x80 + i as u8);
    assert_hidden(&MixedSecret::from_bytes(bytes), &bytes);
    assert_hidden(&ExtraSymmetricKey::from_bytes(bytes), &bytes);
    assert_hidden(&SecretBytes::new(bytes.to_vec()), &bytes);
    let password: Vec<u8> = (0x20..0x60).collect();
    assert_hidden(&PhiPrime::from_opaque(&password), &password);
}

#[test]
fn prekey_store_secrets() {
    let mut rng = StdRng::seed_from_u64(2);
    let tag = InstanceTag(0x1234_5678);
    let long_term = KeyPair::generate(&mut rng);
    let mut store = PrekeyStore::new(tag);
    store.new_prekey_profile(&mut rng, &long_term, 2_000_000_000);
    let msgs = store
        .generate_prekey_messages(&mut rng, 3, 1_700_000_000)
        .unwrap();
    for m in &msgs {
        let s = store.get(m.id).unwrap();
        assert_hidden(s, s.ecdh().symmetric_key().as_bytes());
        assert_hidden(s, s.dh().secret_bytes());
        assert_hidden(&store, s.ecdh().symmetric_key().as_bytes());
        assert_hidden(&store, s.dh().secret_bytes());
    }
    let shared = store.current_shared_prekey().unwrap();
    assert_hidden(shared, shared.key().symmetric_key().as_bytes());
    assert_hidden(&store, shared.key().symmetric_key().as_bytes());
}

#[test]
fn accounts_clients_and_conversations() {
    let mut rng = StdRng::seed_from_u64(3);
    let now = 1_700_000_000;
    let sym: [u8; 57] = core::array::from_fn(|i| 0x70 + i as u8);
    let forging: [u8; 57] = core::array::from_fn(|i| 0x90 + i as u8);
    let long_term = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym));
    let forging_pair = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(forging));
    let account = Account::from_keys(
        long_term,
        ForgingPublicKey(*forging_pair.public()),
        Some(forging_pair),
        InstanceTag(0x1234_5678),
        Policy::standalone(),
        now,
    )
    .unwrap();
    assert_hidden(&account, &sym);
    assert_hidden(&account, &forging);
    let mut alice = Client::new(account, "alice@x");
    let mut bob = Client::new(
        Account::generate(&mut rng, Policy::standalone(), now).unwrap(),
        "bob@x",
    );
    let mut alice_store = PrekeyStore::new(alice.account().instance_tag());
    let mut bob_store = PrekeyStore::new(bob.account().instance_tag());
    // Queued before any session (standalone mode never sends plaintext), then sent once the
    // DAKE completes.
    let text = "a queued message whose words never appear in Debug";
    let mut wire: Vec<(bool, String)> = Vec::new();
    let push = |ev: Vec<Event>, to_bob: bool, wire: &mut Vec<(bool, String)>| {
        for e in ev {
            if let Event::Send { text, .. } = e {
                wire.push((to_bob, text));
            }
        }
    };
    push(
        alice.send("bob@x", text, &[], now, &mut rng),
        true,
        &mut wire,
    );
    assert_hidden(&alice, text.as_bytes());
    push(alice.start("bob@x", now, &mut rng), true, &mut wire);
    while let Some((to_bob, msg)) = wire.pop() {
        if to_bob {
            let ev = bob.receive("alice@x", &msg, &mut bob_store, now, &mut rng);
            push(ev, false, &mut wire);
        } else {
            let ev = alice.receive("bob@x", &msg, &mut alice_store, now, &mut rng);
            push(ev, true, &mut wire);
        }
    }
    let bob_tag = bob.account().instance_tag();
    let conv = alice.conversation("bob@x", bob_tag).unwrap();
    assert_eq!(conv.state(), ConversationState::Encrypted);
    for shown in [format!("{alice:?}"), format!("{conv:?}")] {
        assert!(shown.contains("session"), "{shown}");
    }
    assert_hidden(&alice, &sym);
    assert_hidden(&alice, &forging);
    assert_hidden(&alice, text.as_bytes());
    assert_hidden(conv, text.as_bytes());
    assert_hidden(alice.peer("bob@x").unwrap(), text.as_bytes());
}
