//! 3072-bit DH vectors: 80-byte secrets to public values and `k_dh` (both ways), key
//! generation from random bytes, and the group-membership check on received values.

use super::{draw, draw_arr, expect, expect_bool, replay};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::hazmat::crypto::dh::{DH_MODULUS_LEN, DhKeyPair, DhPublic, is_in_group_literal};

const KEYS: &str = "otrv4.md §\"Generating ECDH and DH keys\", §\"Generating Shared Secrets\"";
const CHECK: &str = "otrv4.md §\"Verifying that an integer is in the DH group\"";

/// dh_p (RFC 3526 §4), big-endian.
pub(super) const DH_P_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// `x` left-padded with zeros to 384 bytes (x has at most 384 bytes).
fn fixed(x: &[u8]) -> [u8; DH_MODULUS_LEN] {
    let mut out = [0u8; DH_MODULUS_LEN];
    let start = DH_MODULUS_LEN.saturating_sub(x.len());
    for (d, s) in out.iter_mut().skip(start).zip(x) {
        *d = *s;
    }
    out
}

/// `a - b` on 384-byte big-endian integers, `a >= b`, as a minimal big-endian string.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let (a, b) = (fixed(a), fixed(b));
    let mut out = [0u8; DH_MODULUS_LEN];
    let mut borrow = 0i16;
    for ((o, x), y) in out.iter_mut().zip(&a).zip(&b).rev() {
        let t = i16::from(*x) - i16::from(*y) - borrow;
        borrow = i16::from(t < 0);
        *o = (t + 256 * borrow) as u8;
    }
    let start = out.iter().position(|b| *b != 0).unwrap_or(out.len());
    out.get(start..).unwrap_or_default().to_vec()
}

/// The key pair of 80 secret bytes (refused if zero).
fn keypair(secret: [u8; 80]) -> Result<DhKeyPair, String> {
    DhKeyPair::from_secret_bytes(secret).map_err(|e| format!("DH secret: {e}"))
}

fn shared(name: &str, secret_a: [u8; 80], secret_b: [u8; 80]) -> Result<Vector, String> {
    let a = keypair(secret_a)?;
    let b = keypair(secret_b)?;
    let k = a.shared_secret(b.public());
    Ok(Vector::new(format!("shared/{name}"), KEYS)
        .input("secret_a", &secret_a)
        .input("secret_b", &secret_b)
        .output("public_a", &a.public().to_be_bytes())
        .output("public_b", &b.public().to_be_bytes())
        .output("k_dh", k.k_dh()))
}

fn group_case(name: &str, value: &[u8]) -> Vector {
    Vector::new(format!("group_check/{name}"), CHECK)
        .input("value", value)
        .output("valid", &[u8::from(DhPublic::from_be_bytes(value).is_ok())])
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 dh3072 vectors");
    let mut vectors = Vec::new();
    for i in 0..2 {
        match shared(&i.to_string(), draw_arr(&mut rng), draw_arr(&mut rng)) {
            Ok(v) => vectors.push(v),
            Err(e) => eprintln!("dh3072: cannot generate a vector: {e}"),
        }
    }
    // k_dh with a leading zero byte: its minimal encoding is 383 bytes.
    let mut r = [0xa5u8; 80];
    if let Some([x, y]) = r.last_chunk_mut::<2>() {
        (*x, *y) = (0x01, 0x61);
    }
    match shared("leading_zero_k_dh", r, [0x5a; 80]) {
        Ok(v) => {
            assert_eq!(v.outputs.get("k_dh").map(String::len), Some(2 * 383));
            vectors.push(v);
        }
        Err(e) => eprintln!("dh3072: cannot generate a vector: {e}"),
    }

    for i in 0..2 {
        let kp = DhKeyPair::generate(&mut rng);
        vectors.push(
            Vector::new(format!("generate_dh/{i}"), KEYS)
                .input("random", &rng.take())
                .output("secret", kp.secret_bytes())
                .output("public", &kp.public().to_be_bytes()),
        );
    }

    let p = hex::decode(DH_P_HEX).unwrap_or_default();
    let public = keypair(draw_arr(&mut rng))
        .map(|k| k.public().to_be_bytes())
        .unwrap_or_default();
    vectors.push(group_case("zero", &[0]));
    vectors.push(group_case("empty", &[]));
    vectors.push(group_case("one", &[1]));
    vectors.push(group_case("two", &[2]));
    vectors.push(group_case("three", &[3]));
    vectors.push(group_case("four", &[4]));
    vectors.push(group_case("p_minus_2", &sub_be(&p, &[2])));
    vectors.push(group_case("p_minus_1", &sub_be(&p, &[1])));
    vectors.push(group_case("p", &p));
    vectors.push(group_case("all_ff", &[0xff; DH_MODULUS_LEN]));
    vectors.push(group_case("random_public", &public));
    vectors.push(group_case("p_minus_random_public", &sub_be(&p, &public)));
    vectors.push(group_case("random_public_zero_padded", &fixed(&public)));
    let mut long = vec![0u8];
    long.extend_from_slice(&fixed(&public));
    vectors.push(group_case("385_bytes", &long));
    vectors.push(group_case(
        "random_384_bytes",
        &draw(&mut rng, DH_MODULUS_LEN),
    ));

    Suite {
        suite: "dh3072".into(),
        description: "RFC 3526 3072-bit group, g3 = 2. Secrets are 80 bytes read as a \
            big-endian integer r; public = g3^r mod dh_p; k_dh = public_b^secret_a mod dh_p \
            (= public_a^secret_b). Public values and k_dh are minimal big-endian byte strings \
            (no leading zero bytes; MPI bodies). generate_dh: secret = the 80 random bytes. \
            group_check: valid = 01 iff 2 <= value <= dh_p - 2 and value^dh_q = 1 mod dh_p \
            (value: big-endian, at most 384 bytes, leading zeros allowed)."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    match v.name.split('/').next().unwrap_or("") {
        "shared" => {
            let a = keypair(v.arr_in("secret_a")?)?;
            let b = keypair(v.arr_in("secret_b")?)?;
            let ab = a.shared_secret(b.public());
            let ba = b.shared_secret(a.public());
            if ab.k_dh() != ba.k_dh() {
                return Err("k_dh differs between the two sides".into());
            }
            expect(v, "public_a", &a.public().to_be_bytes())?;
            expect(v, "public_b", &b.public().to_be_bytes())?;
            expect(v, "k_dh", ab.k_dh())
        }
        "generate_dh" => {
            let kp = replay(v, |r| Ok(DhKeyPair::generate(r)))?;
            expect(v, "secret", kp.secret_bytes())?;
            expect(v, "public", &kp.public().to_be_bytes())
        }
        "group_check" => {
            let value = v.hex_in("value")?;
            let fast = DhPublic::from_be_bytes(&value).is_ok();
            if fast != is_in_group_literal(&value) {
                return Err("Legendre-symbol check and literal exponentiation disagree".into());
            }
            expect_bool(v, "valid", fast)
        }
        other => Err(format!("unknown operation {other}")),
    }
}
