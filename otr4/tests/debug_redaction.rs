//! The `Debug` output of every type holding a secret shows none of the secret's bytes: a
//! secret whose bytes are known is formatted (plain and `{:#?}`) and neither its hex nor its
//! decimal byte list appears.
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
use otr4::hazmat::dake::{MixedSecret, PhiPrime};
use otr4::hazmat::ratchet::SecretBytes;
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
