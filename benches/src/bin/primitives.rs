//! Times otr4's primitives one by one (the same ones `benches/benches/crypto.rs` measures
//! with criterion), for `benches/compare.sh` and `benches/callgrind.sh`: each operation is a
//! non-inlined `prim_*` function, so callgrind reports its instructions per call.
//!
//! Run with `cargo run --release -p otr4-benches --bin primitives [-- --iters N]`; prints
//! one line per operation: its name and the median CPU time per call in microseconds (see
//! [`otr4_benches::thread_cpu_time`]).

use std::hint::black_box;
use std::process::ExitCode;

use chacha20::ChaCha20Rng;
use otr4::hazmat::crypto::dh::{DhKeyPair, DhPublic, SharedDh};
use otr4::hazmat::crypto::ecdh::ecdh;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar};
use otr4::hazmat::crypto::eddsa::{Signature, sign, verify};
use otr4::hazmat::crypto::kdf::Otrv4;
use otr4::hazmat::crypto::rsig::RingSignature;
use otr4_benches::thread_cpu_time as cpu;
use rand_core::SeedableRng;

#[inline(never)]
fn prim_dh_keygen(rng: &mut ChaCha20Rng) -> DhKeyPair {
    DhKeyPair::generate(rng)
}

#[inline(never)]
fn prim_dh_shared(a: &DhKeyPair, b: &DhPublic) -> SharedDh {
    a.shared_secret(b)
}

#[inline(never)]
fn prim_dh_check(bytes: &[u8]) -> bool {
    DhPublic::from_be_bytes(bytes).is_ok()
}

#[inline(never)]
fn prim_ed448_keygen(rng: &mut ChaCha20Rng) -> KeyPair {
    KeyPair::generate(rng)
}

#[inline(never)]
fn prim_eddsa_sign(kp: &KeyPair, msg: &[u8]) -> Signature {
    sign(kp, msg)
}

#[inline(never)]
fn prim_eddsa_verify(kp: &KeyPair, msg: &[u8], sig: &Signature) -> bool {
    verify(kp.public(), msg, sig).is_ok()
}

#[inline(never)]
fn prim_point_decode(enc: &[u8; 57]) -> bool {
    Point::decode(enc).is_ok()
}

#[inline(never)]
fn prim_ecdh(a: &KeyPair, b: &KeyPair) -> bool {
    ecdh(a.secret(), b.public()).is_ok()
}

#[inline(never)]
fn prim_rsig_sign(rng: &mut ChaCha20Rng, keys: &[KeyPair; 3], msg: &[u8]) -> bool {
    let [k1, k2, k3] = keys;
    let ring = [k1.public(), k2.public(), k3.public()];
    RingSignature::sign::<Otrv4, _>(rng, k2, ring, msg).is_ok()
}

#[inline(never)]
fn prim_ed448_mul_base(s: &Scalar) -> bool {
    Point::mul_base(s).is_ok()
}

#[inline(never)]
fn prim_ed448_mul(p: &Point, s: &Scalar) -> bool {
    p.checked_mul(s).is_ok()
}

#[inline(never)]
fn prim_rsig_verify(keys: &[KeyPair; 3], msg: &[u8], sig: &RingSignature) -> bool {
    let [k1, k2, k3] = keys;
    let ring = [k1.public(), k2.public(), k3.public()];
    sig.verify::<Otrv4>(ring, msg).is_ok()
}

/// Median microseconds per call of `f` over 5 batches of `iters` calls.
fn time(iters: usize, mut f: impl FnMut() -> bool) -> Result<f64, String> {
    let mut batches = Vec::new();
    for _ in 0..5 {
        let t = cpu();
        for _ in 0..iters {
            if !black_box(f()) {
                return Err(String::from("operation failed"));
            }
        }
        batches.push((cpu() - t).as_secs_f64() * 1e6 / iters as f64);
    }
    batches.sort_by(f64::total_cmp);
    Ok(batches.get(2).copied().unwrap_or_default())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut iters = 20usize;
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|n| n.parse().ok())) {
            ("--iters", Some(n)) if n > 0 => iters = n,
            _ => {
                eprintln!("usage: primitives [--iters N]");
                return ExitCode::from(2);
            }
        }
    }
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let dh_a = DhKeyPair::generate(&mut rng);
    let dh_b = DhKeyPair::generate(&mut rng);
    let dh_bytes = dh_b.public().to_be_bytes();
    let kp = KeyPair::generate(&mut rng);
    let other = KeyPair::generate(&mut rng);
    let keys: [KeyPair; 3] = core::array::from_fn(|_| KeyPair::generate(&mut rng));
    let msg = [0x5au8; 64];
    let sig = sign(&kp, &msg);
    let enc = kp.public().encode();
    let scalar = Scalar::random(&mut rng);
    let ring_sig = {
        let [k1, k2, k3] = &keys;
        match RingSignature::sign::<Otrv4, _>(
            &mut rng,
            k2,
            [k1.public(), k2.public(), k3.public()],
            &msg,
        ) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ring signature: {e}");
                return ExitCode::FAILURE;
            }
        }
    };

    type Op<'a> = (&'static str, Box<dyn FnMut() -> bool + 'a>);
    let mut r1 = ChaCha20Rng::from_seed([1; 32]);
    let mut r2 = ChaCha20Rng::from_seed([2; 32]);
    let mut r3 = ChaCha20Rng::from_seed([3; 32]);
    let ops: Vec<Op<'_>> = vec![
        (
            "dh3072_keygen",
            Box::new(|| !prim_dh_keygen(&mut r1).public().to_be_bytes().is_empty()),
        ),
        (
            "dh3072_shared",
            Box::new(|| !prim_dh_shared(&dh_a, dh_b.public()).k_dh().is_empty()),
        ),
        ("dh3072_group_check", Box::new(|| prim_dh_check(&dh_bytes))),
        (
            "ed448_keygen",
            Box::new(|| prim_ed448_keygen(&mut r2).public() != other.public()),
        ),
        ("eddsa_sign", Box::new(|| prim_eddsa_sign(&kp, &msg) == sig)),
        (
            "eddsa_verify",
            Box::new(|| prim_eddsa_verify(&kp, &msg, &sig)),
        ),
        ("point_decode", Box::new(|| prim_point_decode(&enc))),
        ("ecdh", Box::new(|| prim_ecdh(&kp, &other))),
        ("ed448_mul_base", Box::new(|| prim_ed448_mul_base(&scalar))),
        (
            "ed448_mul",
            Box::new(|| prim_ed448_mul(other.public(), &scalar)),
        ),
        (
            "rsig_sign",
            Box::new(|| prim_rsig_sign(&mut r3, &keys, &msg)),
        ),
        (
            "rsig_verify",
            Box::new(|| prim_rsig_verify(&keys, &msg, &ring_sig)),
        ),
    ];
    for (name, mut f) in ops {
        match time(iters, &mut f) {
            Ok(us) => println!("{name} {us:.1}"),
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
