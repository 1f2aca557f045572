//! Criterion benches of the Ed448 arithmetic behind `otr4::hazmat::crypto::ed448` (issue 13; RFC 8032
//! §5.2, otrv4.md §"Elliptic Curve Parameters"): G·s, P·s, double mult, decode, EdDSA, ring sig.

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use criterion::{Criterion, criterion_main};
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar};
use otr4::hazmat::crypto::eddsa::{sign, verify};
use otr4::hazmat::crypto::kdf::Otrv4;
use otr4::hazmat::crypto::rsig::RingSignature;
use rand_core::SeedableRng;

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([13; 32])
}

fn scalar_mult(c: &mut Criterion) {
    let mut rng = rng();
    let a = Scalar::random(&mut rng);
    let b = Scalar::random(&mut rng);
    let p = *KeyPair::generate(&mut rng).public();
    let mut g = c.benchmark_group("ed448");
    g.bench_function("fixed-base G*s (Point::mul_base)", |bn| {
        bn.iter(|| Point::mul_base(black_box(&a)))
    });
    g.bench_function("variable-base P*s (Point::checked_mul)", |bn| {
        bn.iter(|| black_box(&p).checked_mul(black_box(&a)))
    });
    g.bench_function(
        "double mult G*a + P*b, constant time (Point::base_mul_add)",
        |bn| bn.iter(|| Point::base_mul_add(black_box(&a), black_box(&p), black_box(&b))),
    );
    g.bench_function(
        "double mult G*a + P*b, variable time (verify-style)",
        |bn| bn.iter(|| Point::vartime_base_mul_add(black_box(&a), black_box(&p), black_box(&b))),
    );
    let enc = p.encode();
    g.bench_function("point decode + validation (Point::decode)", |bn| {
        bn.iter(|| Point::decode(black_box(&enc)))
    });
    g.bench_function("point encode", |bn| bn.iter(|| black_box(&p).encode()));
    g.finish();
}

fn signatures(c: &mut Criterion) {
    let mut rng = rng();
    let kp = KeyPair::generate(&mut rng);
    let msg = [0x5au8; 64];
    let mut g = c.benchmark_group("ed448");
    g.bench_function("eddsa sign (64 B)", |bn| {
        bn.iter(|| sign(black_box(&kp), black_box(&msg)))
    });
    let sig = sign(&kp, &msg);
    g.bench_function("eddsa verify (64 B)", |bn| {
        bn.iter(|| verify(black_box(kp.public()), black_box(&msg), black_box(&sig)))
    });
    let keys: [KeyPair; 3] = core::array::from_fn(|_| KeyPair::generate(&mut rng));
    let [k1, k2, k3] = &keys;
    let ring = [k1.public(), k2.public(), k3.public()];
    let msg = [0x33u8; 200];
    g.bench_function("ring sig sign", |bn| {
        bn.iter(|| RingSignature::sign::<Otrv4, _>(&mut rng, k2, ring, black_box(&msg)))
    });
    if let Ok(sig) = RingSignature::sign::<Otrv4, _>(&mut rng, k2, ring, &msg) {
        g.bench_function("ring sig verify", |bn| {
            bn.iter(|| sig.verify::<Otrv4>(ring, black_box(&msg)))
        });
    }
    g.finish();
}

mod group {
    use super::{scalar_mult, signatures};
    criterion::criterion_group!(benches, scalar_mult, signatures);
}
criterion_main!(group::benches);
