//! EdDSA (Ed448, RFC 8032 §5.2, empty context) vectors: signing from a symmetric key and
//! verification, including the malleated and non-canonical signatures verify must reject.

use super::{draw, draw_arr, expect, expect_bool};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::hazmat::crypto::ed448::{KeyPair, ORDER_BYTES_BE, Point, SymmetricKey};
use otr4::hazmat::crypto::eddsa::{Signature, sign, verify};

const SIGN: &str = "otrv4.md §\"Create a Client Profile Signature\" (RFC 8032 §5.2.6)";
const VERIFY: &str = "otrv4.md §\"Verify a Client Profile Signature\" (RFC 8032 §5.2.7)";

/// RFC 8032 §7.4 "Blank" and "1 octet": (secret, message, signature).
const RFC8032: [(&str, &str, &str, &str); 2] = [
    (
        "rfc8032_blank",
        "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b",
        "",
        "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f2b233f034f628281f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cdda8530a113a0f4dbb61149f05a7363268c71d95808ff2e652600",
    ),
    (
        "rfc8032_1_octet",
        "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463afbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        "03",
        "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f4352541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cbcee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0ff3348ab21aa4adafd1d234441cf807c03a00",
    ),
];

fn sign_vector(name: String, sym: [u8; 57], msg: &[u8]) -> (Vector, KeyPair, Signature) {
    let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym));
    let sig = sign(&kp, msg);
    let v = Vector::new(name, SIGN)
        .input("sym_key", &sym)
        .input("message", msg)
        .output("public", &kp.public().encode())
        .output("signature", &sig.0);
    (v, kp, sig)
}

fn verify_vector(name: &str, public: &[u8], msg: &[u8], sig: &[u8; 114], valid: bool) -> Vector {
    Vector::new(format!("verify/{name}"), VERIFY)
        .input("public", public)
        .input("message", msg)
        .input("signature", sig)
        .output("valid", &[u8::from(valid)])
}

/// `a + b` for 57-byte little-endian integers, without reduction.
fn add_le(a: &[u8], b: &[u8]) -> [u8; 57] {
    let mut out = [0u8; 57];
    let mut carry = 0u16;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let t = u16::from(*x) + u16::from(*y) + carry;
        *o = t as u8;
        carry = t >> 8;
    }
    out
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 eddsa vectors");
    let mut vectors = Vec::new();
    for (name, secret, msg, want) in RFC8032 {
        let sym: [u8; 57] = hex::decode(secret)
            .unwrap_or_default()
            .try_into()
            .unwrap_or([0; 57]);
        let msg = hex::decode(msg).unwrap_or_default();
        let (v, _, sig) = sign_vector(format!("sign/{name}"), sym, &msg);
        assert_eq!(hex::encode(sig.0), want, "RFC 8032 §7.4 {name}");
        vectors.push(v);
    }
    let mut signed = Vec::new();
    for (i, len) in [0usize, 1, 57, 200, 1000].into_iter().enumerate() {
        let sym = draw_arr(&mut rng);
        let msg = draw(&mut rng, len);
        let (v, kp, sig) = sign_vector(format!("sign/{i}"), sym, &msg);
        vectors.push(v);
        signed.push((kp, msg, sig));
    }

    // Verification cases built from sign/0 (empty message) and sign/1 (one byte).
    signed.truncate(2);
    let (kp2, msg2, sig2) = signed.swap_remove(1);
    let (kp, msg, sig) = signed.swap_remove(0);
    let msg2 = &msg2;
    let public = kp.public().encode();
    let public2 = kp2.public().encode();
    vectors.push(verify_vector("valid_0", &public, &msg, &sig.0, true));
    vectors.push(verify_vector("valid_1", &public2, msg2, &sig2.0, true));

    let mut bad = sig2.0;
    if let Some(b) = bad.get_mut(3) {
        *b ^= 0x01;
    }
    vectors.push(verify_vector(
        "flipped_bit_in_r",
        &public2,
        msg2,
        &bad,
        false,
    ));
    let mut bad = sig2.0;
    if let Some(b) = bad.get_mut(60) {
        *b ^= 0x08;
    }
    vectors.push(verify_vector(
        "flipped_bit_in_s",
        &public2,
        msg2,
        &bad,
        false,
    ));

    // S + q: the same residue, not canonical.
    let mut q = [0u8; 57];
    for (d, s) in q.iter_mut().zip(ORDER_BYTES_BE.iter().rev()) {
        *d = *s;
    }
    let (r_part, s_part) = sig2.0.split_at(57);
    let s_plus_q = add_le(s_part, &q);
    let mut bad = [0u8; 114];
    for (d, s) in bad.iter_mut().zip(r_part.iter().chain(s_plus_q.iter())) {
        *d = *s;
    }
    vectors.push(verify_vector("s_plus_q", &public2, msg2, &bad, false));

    let mut bad = sig2.0;
    if let Some(b) = bad.get_mut(113) {
        *b = 0x01;
    }
    vectors.push(verify_vector("stray_bit_in_s", &public2, msg2, &bad, false));
    let mut bad = sig2.0;
    if let Some(b) = bad.get_mut(56) {
        *b |= 0x01;
    }
    vectors.push(verify_vector("stray_bit_in_r", &public2, msg2, &bad, false));

    let mut other_msg = msg2.clone();
    other_msg.push(0);
    vectors.push(verify_vector(
        "other_message",
        &public2,
        &other_msg,
        &sig2.0,
        false,
    ));
    vectors.push(verify_vector("other_key", &public, msg2, &sig2.0, false));

    Suite {
        suite: "eddsa".into(),
        description: "Ed448 EdDSA, flag 0, empty context (dom4 = \"SigEd448\" || 0x00 || 0x00). \
            sign: derive the key pair from sym_key as in keygen/derive; \
            r = SHAKE-256(dom4 || prefix || message, 114) mod q; R = G*r; \
            k = SHAKE-256(dom4 || R || public || message, 114) mod q; S = r + k*s mod q; \
            signature = R || S (57 + 57 bytes). verify: valid = 01 iff public decodes as a \
            valid POINT, S < q, and G*S - k*public encodes to exactly R."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    match v.name.split('/').next().unwrap_or("") {
        "sign" => {
            let sym = v.arr_in::<57>("sym_key")?;
            let msg = v.hex_in("message")?;
            let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym));
            let sig = sign(&kp, &msg);
            expect(v, "public", &kp.public().encode())?;
            expect(v, "signature", &sig.0)?;
            if verify(kp.public(), &msg, &sig).is_err() {
                return Err("own signature does not verify".into());
            }
            Ok(())
        }
        "verify" => {
            let public = v.arr_in::<57>("public")?;
            let msg = v.hex_in("message")?;
            let sig = Signature(v.arr_in::<114>("signature")?);
            let valid = Point::decode(&public)
                .map(|p| verify(&p, &msg, &sig).is_ok())
                .unwrap_or(false);
            expect_bool(v, "valid", valid)
        }
        other => Err(format!("unknown operation {other}")),
    }
}
