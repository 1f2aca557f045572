//! Key-generation vectors: a 57-byte symmetric key to its pruned secret scalar, EdDSA
//! prefix and public point, and every way otr4 turns random bytes into keys or scalars.

use super::{draw_arr, expect, replay};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::hazmat::crypto::ed448::{KeyPair, Scalar, SymmetricKey, prune, random_pruned_scalar};
use otr4::hazmat::crypto::kdf::shake256;
use otr4::hazmat::crypto::keys::generate_forging_point;

const KEYS: &str = "otrv4.md §\"Public keys, Shared Prekeys, Forging keys and Fingerprints\"";
const ECDH: &str = "otrv4.md §\"Generating ECDH and DH keys\"";
const PRUNED: &str = "otrv4.md §\"Considerations while working with elliptic curve parameters\"";
const UNIFORM: &str =
    "otrv4.md §\"Ring Signature Authentication\" (random scalars; docs/spec-notes.md)";

/// RFC 8032 §7.4 "Blank": secret key and public key.
const RFC8032_BLANK_SECRET: &str = "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b";
const RFC8032_BLANK_PUBLIC: &str = "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180";

/// The outputs of deriving a key pair from `sym`: h = SHAKE-256(sym, 114), the pruned lower
/// half, its reduction mod q, the upper half (prefix) and the public point.
fn derived(sym: &[u8; 57]) -> ([u8; 57], [u8; 57], [u8; 57], [u8; 57]) {
    let mut h = [0u8; 114];
    shake256(&[sym], &mut h);
    let mut pruned = [0u8; 57];
    let mut prefix = [0u8; 57];
    let (lo, hi) = h.split_at(57);
    pruned.copy_from_slice(lo);
    prefix.copy_from_slice(hi);
    prune(&mut pruned);
    let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(*sym));
    (pruned, kp.secret().encode(), prefix, kp.public().encode())
}

fn derive_vector(name: String, sym: [u8; 57]) -> Vector {
    let (pruned, secret, prefix, public) = derived(&sym);
    Vector::new(name, KEYS)
        .input("sym_key", &sym)
        .output("pruned", &pruned)
        .output("secret_scalar", &secret)
        .output("prefix", &prefix)
        .output("public", &public)
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 keygen vectors");
    let mut vectors = Vec::new();

    let blank: [u8; 57] = hex::decode(RFC8032_BLANK_SECRET)
        .unwrap_or_default()
        .try_into()
        .unwrap_or([0; 57]);
    let v = derive_vector("derive/rfc8032_blank".into(), blank);
    assert_eq!(
        v.outputs.get("public").map(String::as_str),
        Some(RFC8032_BLANK_PUBLIC),
        "RFC 8032 §7.4 key derivation"
    );
    vectors.push(v);
    for i in 0..4 {
        vectors.push(derive_vector(format!("derive/{i}"), draw_arr(&mut rng)));
    }

    for i in 0..3 {
        let kp = KeyPair::generate(&mut rng);
        vectors.push(
            Vector::new(format!("generate_ecdh/{i}"), ECDH)
                .input("random", &rng.take())
                .output("secret_scalar", &kp.secret().encode())
                .output("public", &kp.public().encode()),
        );
    }

    for i in 0..3 {
        let s = random_pruned_scalar(&mut rng);
        vectors.push(
            Vector::new(format!("random_pruned_scalar/{i}"), PRUNED)
                .input("random", &rng.take())
                .output("scalar", &s.encode()),
        );
    }

    for i in 0..3 {
        let s = Scalar::random(&mut rng);
        vectors.push(
            Vector::new(format!("uniform_scalar/{i}"), UNIFORM)
                .input("random", &rng.take())
                .output("scalar", &s.encode()),
        );
    }

    // Forging points drawn directly: keep going until one vector rejected candidates.
    let mut with_retries = 0;
    let mut i = 0;
    while i < 3 || with_retries == 0 {
        let f = generate_forging_point(&mut rng);
        let random = rng.take();
        if random.len() > 57 {
            with_retries += 1;
        }
        vectors.push(
            Vector::new(format!("forging_point/{i}"), KEYS)
                .input("random", &random)
                .output("public", &f.0.encode()),
        );
        i += 1;
    }

    Suite {
        suite: "keygen".into(),
        description:
            "Ed448 key derivation and random scalars. derive: h = SHAKE-256(sym_key, 114); \
            pruned = prune(h[0..57]); secret_scalar = pruned (little-endian) mod q; \
            prefix = h[57..114]; public = G * secret_scalar. generate_ecdh: derive with \
            sym_key = random (57 bytes). random_pruned_scalar: prune(SHAKE-256(random, 57)) mod q. \
            uniform_scalar: SHAKE-256(random, 114) (little-endian) mod q. forging_point: \
            57-byte candidates, last byte masked with 0x80, first one that decodes as a valid \
            POINT."
                .into(),
        vectors,
    }
}

fn op(v: &Vector) -> &str {
    v.name.split('/').next().unwrap_or("")
}

pub fn check(v: &Vector) -> Result<(), String> {
    match op(v) {
        "derive" => {
            let sym = v.arr_in::<57>("sym_key")?;
            let (pruned, secret, prefix, public) = derived(&sym);
            // The secret scalar is the pruned buffer reduced mod q.
            if Scalar::from_bytes_mod_order(&pruned).encode() != secret {
                return Err("secret scalar is not the reduced pruned buffer".into());
            }
            expect(v, "pruned", &pruned)?;
            expect(v, "secret_scalar", &secret)?;
            expect(v, "prefix", &prefix)?;
            expect(v, "public", &public)
        }
        "generate_ecdh" => {
            let kp = replay(v, |r| Ok(KeyPair::generate(r)))?;
            expect(v, "secret_scalar", &kp.secret().encode())?;
            expect(v, "public", &kp.public().encode())
        }
        "random_pruned_scalar" => {
            let s = replay(v, |r| Ok(random_pruned_scalar(r)))?;
            expect(v, "scalar", &s.encode())
        }
        "uniform_scalar" => {
            let s = replay(v, |r| Ok(Scalar::random(r)))?;
            expect(v, "scalar", &s.encode())
        }
        "forging_point" => {
            let f = replay(v, |r| Ok(generate_forging_point(r)))?;
            expect(v, "public", &f.0.encode())
        }
        other => Err(format!("unknown operation {other}")),
    }
}
