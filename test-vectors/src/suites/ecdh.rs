//! ECDH vectors (OTRv4 and the prekey server's cofactor variant) and the strict POINT and
//! SCALAR decoding every received key goes through first.

use super::{draw_arr, expect, expect_text};
use crate::format::{Suite, Vector};
use crate::rng::RecordingRng;
use otr4::hazmat::crypto::ecdh::{ecdh, prekey_ecdh};
use otr4::hazmat::crypto::ed448::{
    GENERATOR_BYTES, KeyPair, ORDER_BYTES_BE, Point, Scalar, SymmetricKey,
};

const OTR: &str = "otrv4.md §\"Generating Shared Secrets\"";
const PREKEY: &str = "otrv4-prekey-server.md §\"Generating Shared Secrets\"";
const DECODE: &str =
    "otrv4.md §\"Encoding and Decoding\", §\"Verifying that a point is on the curve\"";

/// `a` with byte `i` set to `v`.
fn set(mut a: [u8; 57], i: usize, v: u8) -> [u8; 57] {
    if let Some(b) = a.get_mut(i) {
        *b = v;
    }
    a
}

/// p = 2^448 - 2^224 - 1 as 57 little-endian bytes.
fn p_le() -> [u8; 57] {
    set(set([0xff; 57], 28, 0xfe), 56, 0)
}

/// `a - b` for 57-byte little-endian integers with `a >= b`.
fn sub_le(a: &[u8; 57], b: &[u8; 57]) -> [u8; 57] {
    let mut out = [0u8; 57];
    let mut borrow = 0i16;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let t = i16::from(*x) - i16::from(*y) - borrow;
        borrow = i16::from(t < 0);
        *o = (t + 256 * borrow) as u8;
    }
    out
}

/// `a + b` for 57-byte little-endian integers (no overflow for the values used here).
fn add_le(a: &[u8; 57], b: &[u8; 57]) -> [u8; 57] {
    let mut out = [0u8; 57];
    let mut carry = 0u16;
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        let t = u16::from(*x) + u16::from(*y) + carry;
        *o = t as u8;
        carry = t >> 8;
    }
    out
}

fn pair(name: String, section: &str, sym_a: [u8; 57], sym_b: [u8; 57], prekey: bool) -> Vector {
    let a = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym_a));
    let b = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym_b));
    let f = if prekey { prekey_ecdh } else { ecdh };
    let k = f(a.secret(), b.public())
        .map(|k| *k.as_bytes())
        .unwrap_or([0; 57]);
    Vector::new(name, section)
        .input("sym_key_a", &sym_a)
        .input("sym_key_b", &sym_b)
        .output("public_a", &a.public().encode())
        .output("public_b", &b.public().encode())
        .output("k_ecdh", &k)
}

fn point_case(name: &str, bytes: &[u8; 57]) -> Vector {
    let result = match Point::decode(bytes) {
        Ok(_) => "valid".to_string(),
        Err(e) => format!("{e:?}"),
    };
    Vector::new(format!("point_decode/{name}"), DECODE)
        .input("point", bytes)
        .output_text("result_text", &result)
}

fn scalar_case(name: &str, bytes: &[u8; 57]) -> Vector {
    let result = match Scalar::decode(bytes) {
        Ok(_) => "valid".to_string(),
        Err(e) => format!("{e:?}"),
    };
    Vector::new(
        format!("scalar_decode/{name}"),
        "otrv4.md §\"Encoding and Decoding\"",
    )
    .input("scalar", bytes)
    .output_text("result_text", &result)
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 ecdh vectors");
    let mut vectors = Vec::new();
    for i in 0..3 {
        let (a, b) = (draw_arr(&mut rng), draw_arr(&mut rng));
        vectors.push(pair(format!("ecdh/{i}"), OTR, a, b, false));
    }
    for i in 0..2 {
        let (a, b) = (draw_arr(&mut rng), draw_arr(&mut rng));
        vectors.push(pair(format!("prekey_ecdh/{i}"), PREKEY, a, b, true));
    }

    let g = GENERATOR_BYTES;
    vectors.push(point_case("generator", &g));
    let neg_g = Point::generator().negate().encode();
    vectors.push(point_case("minus_generator", &neg_g));
    let kp = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(draw_arr(&mut rng)));
    let public = kp.public().encode();
    vectors.push(point_case("random_public", &public));
    let one = set([0; 57], 0, 1);
    vectors.push(point_case("identity", &one));
    vectors.push(point_case("identity_with_sign_bit", &set(one, 56, 0x80)));
    // (0, -1) has order 2, (±1, 0) order 4.
    let minus_one = sub_le(&p_le(), &one);
    vectors.push(point_case("order_2", &minus_one));
    vectors.push(point_case("order_4", &[0u8; 57]));
    // P + (0, -1) = (-x, -y): same y negated mod p and the sign bit flipped; order 2q.
    let sign = public.last().copied().unwrap_or(0) & 0x80;
    let mixed = set(sub_le(&p_le(), &set(public, 56, 0)), 56, sign ^ 0x80);
    vectors.push(point_case("order_2q", &mixed));
    // y = p and y = p + 1 (≡ 1): not canonical.
    vectors.push(point_case("y_equals_p", &p_le()));
    let p1 = add_le(&p_le(), &one);
    vectors.push(point_case("y_equals_p_plus_1", &p1));
    vectors.push(point_case("stray_bit_in_last_byte", &set(g, 56, 0x01)));

    let mut q = [0u8; 57];
    for (d, s) in q.iter_mut().zip(ORDER_BYTES_BE.iter().rev()) {
        *d = *s;
    }
    vectors.push(scalar_case("zero", &[0u8; 57]));
    vectors.push(scalar_case("q_minus_1", &sub_le(&q, &one)));
    vectors.push(scalar_case("q", &q));
    vectors.push(scalar_case("stray_byte_56", &set([0; 57], 56, 1)));
    vectors.push(scalar_case("random_secret", &kp.secret().encode()));

    Suite {
        suite: "ecdh".into(),
        description: "ecdh: key pairs a, b derived from sym_key_a, sym_key_b as in keygen/derive; \
            k_ecdh = POINT encoding of a * B (and b * A, the same); an identity result is an error. \
            prekey_ecdh: k_ecdh = a * (4 * B). point_decode / scalar_decode: the strict \
            decoding of a received POINT / SCALAR; result_text is `valid` or the rejection \
            (InvalidPointEncoding, IdentityPoint, PointNotInSubgroup, NonCanonicalScalar)."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    let op = v.name.split('/').next().unwrap_or("");
    match op {
        "ecdh" | "prekey_ecdh" => {
            let a = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(v.arr_in("sym_key_a")?));
            let b = KeyPair::from_symmetric_key(SymmetricKey::from_bytes(v.arr_in("sym_key_b")?));
            let f = if op == "ecdh" { ecdh } else { prekey_ecdh };
            let ab = f(a.secret(), b.public()).map_err(|e| format!("a*B: {e:?}"))?;
            let ba = f(b.secret(), a.public()).map_err(|e| format!("b*A: {e:?}"))?;
            if ab.as_bytes() != ba.as_bytes() {
                return Err("a*B != b*A".into());
            }
            expect(v, "public_a", &a.public().encode())?;
            expect(v, "public_b", &b.public().encode())?;
            expect(v, "k_ecdh", ab.as_bytes())
        }
        "point_decode" => {
            let result = match Point::decode(&v.arr_in("point")?) {
                Ok(p) => {
                    if p.encode() != v.arr_in::<57>("point")? {
                        return Err("decoded point does not re-encode".into());
                    }
                    "valid".to_string()
                }
                Err(e) => format!("{e:?}"),
            };
            expect_text(v, "result_text", &result)
        }
        "scalar_decode" => {
            let result = match Scalar::decode(&v.arr_in("scalar")?) {
                Ok(s) => {
                    if s.encode() != v.arr_in::<57>("scalar")? {
                        return Err("decoded scalar does not re-encode".into());
                    }
                    "valid".to_string()
                }
                Err(e) => format!("{e:?}"),
            };
            expect_text(v, "result_text", &result)
        }
        other => Err(format!("unknown operation {other}")),
    }
}
