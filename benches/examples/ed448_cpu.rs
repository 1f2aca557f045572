//! Process-CPU-time figures for the Ed448 operations of `otr4::hazmat::crypto::ed448` (issue 13; RFC
//! 8032 §5.2, otrv4.md §"Elliptic Curve Parameters"), comparable with `openssl speed ed448`.
//!
//! `openssl speed` reports CPU time, so on a loaded machine its figures and criterion's
//! wall-clock ones are not comparable; this runs each operation for ≥ 3 s of process CPU time
//! (user + system, from `/proc/self/stat`, in USER_HZ = 100 ticks per second) and prints
//! µs per operation. Run: `cargo run --release -p otr4-benches --example ed448_cpu`.

use std::hint::black_box;

use chacha20::ChaCha20Rng;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar};
use otr4::hazmat::crypto::eddsa::{sign, verify};
use otr4::hazmat::crypto::kdf::Otrv4;
use otr4::hazmat::crypto::rsig::RingSignature;
use rand_core::SeedableRng;

/// Process CPU time (user + system) in ticks of 10 ms.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

fn measure(name: &str, mut f: impl FnMut()) {
    for _ in 0..8 {
        f();
    }
    let Some(start) = cpu_ticks() else {
        println!("{name}: /proc/self/stat unavailable");
        return;
    };
    let mut n: u64 = 0;
    let mut now = start;
    while now.saturating_sub(start) < 300 {
        for _ in 0..8 {
            f();
        }
        n += 8;
        now = cpu_ticks().unwrap_or(u64::MAX);
    }
    let us = now.saturating_sub(start) as f64 * 10_000.0 / n as f64;
    println!("{name:<48} {us:>10.1} µs CPU  ({n} runs)");
}

fn main() {
    let mut rng = ChaCha20Rng::from_seed([13; 32]);
    let a = Scalar::random(&mut rng);
    let b = Scalar::random(&mut rng);
    let kp = KeyPair::generate(&mut rng);
    let p = *kp.public();
    measure("fixed-base G*s (Point::mul_base)", || {
        let _ = black_box(Point::mul_base(black_box(&a)));
    });
    measure("variable-base P*s (Point::checked_mul)", || {
        let _ = black_box(black_box(&p).checked_mul(black_box(&a)));
    });
    measure("G*a + P*b constant time (base_mul_add)", || {
        let _ = black_box(Point::base_mul_add(black_box(&a), &p, black_box(&b)));
    });
    measure("G*a + P*b variable time (verify-style)", || {
        let _ = black_box(Point::vartime_base_mul_add(
            black_box(&a),
            &p,
            black_box(&b),
        ));
    });
    let enc = p.encode();
    measure("point decode + validation", || {
        let _ = black_box(Point::decode(black_box(&enc)));
    });
    let msg = [0x5au8; 64];
    measure("EdDSA sign (64 B)", || {
        black_box(sign(black_box(&kp), black_box(&msg)));
    });
    let sig = sign(&kp, &msg);
    measure("EdDSA verify (64 B)", || {
        let _ = black_box(verify(black_box(&p), black_box(&msg), black_box(&sig)));
    });
    let keys: [KeyPair; 3] = core::array::from_fn(|_| KeyPair::generate(&mut rng));
    let [k1, k2, k3] = &keys;
    let ring = [k1.public(), k2.public(), k3.public()];
    let msg = [0x33u8; 200];
    measure("ring signature sign", || {
        let _ = black_box(RingSignature::sign::<Otrv4, _>(&mut rng, k2, ring, &msg));
    });
    let mut rng2 = ChaCha20Rng::from_seed([14; 32]);
    if let Ok(rs) = RingSignature::sign::<Otrv4, _>(&mut rng2, k2, ring, &msg) {
        measure("ring signature verify", || {
            let _ = black_box(rs.verify::<Otrv4>(ring, black_box(&msg)));
        });
    }
}
