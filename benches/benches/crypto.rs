//! Criterion benches of otr4's cryptographic primitives: key generation, EdDSA, point
//! validation, ECDH, the 3072-bit DH group, the ring signature, the KDF and ChaCha20.

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use criterion::{Criterion, criterion_main};
use otr4::hazmat::crypto::chacha::apply_keystream;
use otr4::hazmat::crypto::dh::{DhKeyPair, DhPublic, is_in_group_literal};
use otr4::hazmat::crypto::ecdh::ecdh;
use otr4::hazmat::crypto::ed448::{KeyPair, Point};
use otr4::hazmat::crypto::eddsa::{sign, verify};
use otr4::hazmat::crypto::kdf::{DOMAIN_OTRV4, Otrv4};
use otr4::hazmat::crypto::rsig::RingSignature;
use otr4::shake_into;
use rand_core::SeedableRng;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

fn ed448(c: &mut Criterion) {
    let mut rng = rng();
    c.bench_function("ed448/keygen (KeyPair::generate)", |b| {
        b.iter(|| KeyPair::generate(&mut rng))
    });
    let kp = KeyPair::generate(&mut rng);
    let msg = [0x5au8; 64];
    c.bench_function("ed448/eddsa sign (64 B)", |b| {
        b.iter(|| sign(black_box(&kp), black_box(&msg)))
    });
    let sig = sign(&kp, &msg);
    c.bench_function("ed448/eddsa verify (64 B)", |b| {
        b.iter(|| verify(black_box(kp.public()), black_box(&msg), black_box(&sig)))
    });
    let enc = kp.public().encode();
    c.bench_function("ed448/point decode + validation", |b| {
        b.iter(|| Point::decode(black_box(&enc)))
    });
    let other = KeyPair::generate(&mut rng);
    c.bench_function("ed448/ecdh", |b| {
        b.iter(|| ecdh(black_box(kp.secret()), black_box(other.public())))
    });
}

fn rsig(c: &mut Criterion) {
    let mut rng = rng();
    let keys: [KeyPair; 3] = core::array::from_fn(|_| KeyPair::generate(&mut rng));
    let [k1, k2, k3] = &keys;
    let ring = [k1.public(), k2.public(), k3.public()];
    let msg = [0x33u8; 200];
    c.bench_function("rsig/sign", |b| {
        b.iter(|| RingSignature::sign::<Otrv4, _>(&mut rng, k2, ring, black_box(&msg)))
    });
    if let Ok(sig) = RingSignature::sign::<Otrv4, _>(&mut rng, k2, ring, &msg) {
        c.bench_function("rsig/verify", |b| {
            b.iter(|| sig.verify::<Otrv4>(ring, black_box(&msg)))
        });
    }
}

fn dh(c: &mut Criterion) {
    let mut rng = rng();
    let mut g = c.benchmark_group("dh3072");
    g.sample_size(20);
    g.bench_function("keygen (DhKeyPair::generate)", |b| {
        b.iter(|| DhKeyPair::generate(&mut rng))
    });
    let a = DhKeyPair::generate(&mut rng);
    let other = DhKeyPair::generate(&mut rng);
    g.bench_function("shared secret", |b| {
        b.iter(|| a.shared_secret(black_box(other.public())))
    });
    let bytes = other.public().to_be_bytes();
    g.bench_function("group check (DhPublic::from_be_bytes, Legendre)", |b| {
        b.iter(|| DhPublic::from_be_bytes(black_box(&bytes)))
    });
    g.bench_function("group check literal (x^q mod p)", |b| {
        b.iter(|| is_in_group_literal(black_box(&bytes)))
    });
    g.finish();
}

fn symmetric(c: &mut Criterion) {
    let mut out = [0u8; 64];
    for len in [64usize, 1024] {
        let input = vec![0xa5u8; len];
        c.bench_function(&format!("kdf/64-byte output over {len} B"), |b| {
            b.iter(|| shake_into(DOMAIN_OTRV4, 0x01, &[black_box(&input)], &mut out))
        });
    }
    let key = [0x42u8; 32];
    let mut buf = vec![0u8; 1024];
    c.bench_function("chacha20/1 KiB", |b| {
        b.iter(|| apply_keystream(black_box(&key), black_box(&mut buf)))
    });
}

mod group {
    use super::{dh, ed448, rsig, symmetric};
    criterion::criterion_group!(benches, ed448, rsig, dh, symmetric);
}
criterion_main!(group::benches);
