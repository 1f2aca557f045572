//! Ring-signature vectors: RSig with the signer in each ring position, in both KDF domains,
//! from recorded random bytes; RVrf on valid and tampered statements; signing errors.

use super::{draw, draw_arr, expect, expect_bool, expect_text, replay};
use crate::format::{Suite, Vector};
use crate::rng::{RecordingRng, ReplayRng};
use otr4::CryptoError;
use otr4::hazmat::crypto::ed448::{KeyPair, Point, Scalar, SymmetricKey};
use otr4::hazmat::crypto::kdf::{Otrv4, PrekeyServer};
use otr4::hazmat::crypto::rsig::{RING_SIG_LEN, RingSignature};
use otr4::hazmat::wire::codec::Codec;
use otr4::hazmat::wire::codec::Reader;

const SIGN: &str = "otrv4.md §\"Authentication: RSig(A1, a1, {A1, A2, A3}, m):\"";
const VERIFY: &str = "otrv4.md §\"Verification: RVrf({A1, A2, A3}, sigma, m)\"";
const PREKEY: &str =
    "otrv4-prekey-server.md §\"DAKE-2 Message\" (usage_auth of the prekey-server domain)";

fn keypair(sym: [u8; 57]) -> KeyPair {
    KeyPair::from_symmetric_key(SymmetricKey::from_bytes(sym))
}

fn sigma_bytes(s: &RingSignature) -> Vec<u8> {
    let mut w = Vec::new();
    s.write(&mut w);
    w
}

/// RSig in the named domain.
fn sign<R: rand_core::CryptoRng>(
    domain: &str,
    rng: &mut R,
    key: &KeyPair,
    ring: [&Point; 3],
    msg: &[u8],
) -> Result<Result<RingSignature, CryptoError>, String> {
    match domain {
        "OTRv4" => Ok(RingSignature::sign::<Otrv4, _>(rng, key, ring, msg)),
        "OTR-Prekey-Server" => Ok(RingSignature::sign::<PrekeyServer, _>(rng, key, ring, msg)),
        d => Err(format!("unknown domain {d}")),
    }
}

/// RVrf in the named domain.
fn verify(
    domain: &str,
    sig: &RingSignature,
    ring: [&Point; 3],
    msg: &[u8],
) -> Result<bool, String> {
    match domain {
        "OTRv4" => Ok(sig.verify::<Otrv4>(ring, msg).is_ok()),
        "OTR-Prekey-Server" => Ok(sig.verify::<PrekeyServer>(ring, msg).is_ok()),
        d => Err(format!("unknown domain {d}")),
    }
}

fn ring_inputs(v: Vector, ring: [&Point; 3]) -> Vector {
    let [a1, a2, a3] = ring;
    v.input("ring_a1", &a1.encode())
        .input("ring_a2", &a2.encode())
        .input("ring_a3", &a3.encode())
}

fn read_ring(v: &Vector) -> Result<[Point; 3], String> {
    let p = |k: &str| -> Result<Point, String> {
        Point::decode(&v.arr_in(k)?).map_err(|e| format!("{k}: {e:?}"))
    };
    Ok([p("ring_a1")?, p("ring_a2")?, p("ring_a3")?])
}

fn section(domain: &str, base: &str) -> String {
    if domain == "OTRv4" {
        base.to_string()
    } else {
        format!("{base}; {PREKEY}")
    }
}

pub fn generate() -> Suite {
    let mut rng = RecordingRng::new("otr4 rsig vectors");
    let mut vectors = Vec::new();
    let syms: [[u8; 57]; 3] = [draw_arr(&mut rng), draw_arr(&mut rng), draw_arr(&mut rng)];
    let keys = syms.map(keypair);
    let [k1, k2, k3] = &keys;
    let ring = [k1.public(), k2.public(), k3.public()];
    let mut first = None;
    for domain in ["OTRv4", "OTR-Prekey-Server"] {
        for (pos, (key, sym)) in keys.iter().zip(&syms).enumerate() {
            let msg = draw(&mut rng, 20 + 37 * pos);
            let sig = match sign(domain, &mut rng, key, ring, &msg) {
                Ok(Ok(s)) => s,
                _ => continue,
            };
            let random = rng.take();
            let name = format!(
                "sign/{}_signer_a{}",
                if domain == "OTRv4" { "otrv4" } else { "prekey" },
                pos + 1
            );
            vectors.push(
                ring_inputs(Vector::new(name, section(domain, SIGN)), ring)
                    .input_text("domain_text", domain)
                    .input("signer_sym_key", sym)
                    .input("message", &msg)
                    .input("random", &random)
                    .output("sigma", &sigma_bytes(&sig)),
            );
            if first.is_none() {
                first = Some((msg, sig));
            }
        }
    }

    // A ring where another key appears twice: still a unique signer position.
    let msg = draw(&mut rng, 5);
    if let Ok(Ok(sig)) = sign(
        "OTRv4",
        &mut rng,
        k1,
        [k2.public(), k1.public(), k2.public()],
        &msg,
    ) {
        let random = rng.take();
        vectors.push(
            ring_inputs(
                Vector::new("sign/otrv4_repeated_other_key", SIGN),
                [k2.public(), k1.public(), k2.public()],
            )
            .input_text("domain_text", "OTRv4")
            .input("signer_sym_key", &syms[0])
            .input("message", &msg)
            .input("random", &random)
            .output("sigma", &sigma_bytes(&sig)),
        );
    }

    // Signing errors: nothing is drawn.
    let outsider = draw_arr::<57>(&mut rng);
    for (name, sym, r) in [
        ("not_in_ring", outsider, ring),
        (
            "signer_twice",
            syms[0],
            [k1.public(), k2.public(), k1.public()],
        ),
    ] {
        let result = match sign("OTRv4", &mut rng, &keypair(sym), r, b"m") {
            Ok(Ok(_)) => "ok".to_string(),
            Ok(Err(e)) => format!("{e:?}"),
            Err(e) => e,
        };
        vectors.push(
            ring_inputs(Vector::new(format!("sign_error/{name}"), SIGN), r)
                .input_text("domain_text", "OTRv4")
                .input("signer_sym_key", &sym)
                .input("message", b"m")
                .input("random", &rng.take())
                .output_text("result_text", &result),
        );
    }

    if let Some((msg, sig)) = first {
        let sigma = sigma_bytes(&sig);
        let mut verify_case = |name: &str, domain: &str, r: [&Point; 3], m: &[u8], s: &[u8]| {
            let valid = RingSignature::read(&mut Reader::new(s))
                .ok()
                .and_then(|sig| verify(domain, &sig, r, m).ok())
                .unwrap_or(false);
            vectors.push(
                ring_inputs(
                    Vector::new(format!("verify/{name}"), section(domain, VERIFY)),
                    r,
                )
                .input_text("domain_text", domain)
                .input("message", m)
                .input("sigma", s)
                .output("valid", &[u8::from(valid)]),
            );
        };
        verify_case("valid", "OTRv4", ring, &msg, &sigma);
        verify_case("other_domain", "OTR-Prekey-Server", ring, &msg, &sigma);
        verify_case(
            "ring_reordered",
            "OTRv4",
            [ring[1], ring[0], ring[2]],
            &msg,
            &sigma,
        );
        let mut other = msg.clone();
        other.push(0);
        verify_case("other_message", "OTRv4", ring, &other, &sigma);
        let mut parts = sig.parts.clone();
        parts[2] = &parts[2] + &Scalar::ONE;
        let tweaked = sigma_bytes(&RingSignature { parts });
        verify_case("c2_plus_one", "OTRv4", ring, &msg, &tweaked);
    }

    Suite {
        suite: "rsig".into(),
        description: "RSig/RVrf over Ed448. sign: the signer's key pair is derived from \
            signer_sym_key (keygen/derive); ring = (ring_a1, ring_a2, ring_a3); `random` holds \
            the 9 * 57 bytes drawn: t1, t2, t3, c1, c2, c3, r1, r2, r3 in that order, each \
            57 bytes x mapped to the scalar SHAKE-256(x, 114) mod q (little-endian). For the \
            signer position i: T_i = G*t_i, and for j != i: T_j = G*r_j + A_j*c_j; \
            c = HashToScalar(usage_auth || G || q || A1 || A2 || A3 || T1 || T2 || T3 || m) \
            with G the 57-byte POINT, q 56 bytes big-endian, HashToScalar = KDF(..., 57) \
            little-endian mod q, usage_auth 0x1A in the OTRv4 domain and 0x11 in the \
            OTR-Prekey-Server domain; c_i = c - sum of the other c_j; r_i = t_i - c_i*a_i. \
            The random t_j, c_i, r_i that the formulas do not use are drawn and discarded. \
            sigma = c1 || r1 || c2 || r2 || c3 || r3 (six 57-byte SCALARs). verify: valid = 01 \
            iff c1 + c2 + c3 = HashToScalar(...) with T_j = G*r_j + A_j*c_j. sign_error: \
            the signer must be exactly one ring member (KeyNotInRing, DuplicateRingKey); \
            nothing is drawn."
            .into(),
        vectors,
    }
}

pub fn check(v: &Vector) -> Result<(), String> {
    let domain = v.text_in("domain_text")?;
    let ring_points = read_ring(v)?;
    let [a1, a2, a3] = &ring_points;
    let ring = [a1, a2, a3];
    let msg = v.hex_in("message")?;
    match v.name.split('/').next().unwrap_or("") {
        "sign" => {
            let key = keypair(v.arr_in("signer_sym_key")?);
            let sig = replay(v, |r: &mut ReplayRng| {
                sign(domain, r, &key, ring, &msg)?.map_err(|e| format!("sign: {e:?}"))
            })?;
            let sigma = sigma_bytes(&sig);
            if sigma.len() != RING_SIG_LEN {
                return Err("sigma has the wrong length".into());
            }
            if !verify(domain, &sig, ring, &msg)? {
                return Err("own signature does not verify".into());
            }
            expect(v, "sigma", &sigma)
        }
        "sign_error" => {
            let key = keypair(v.arr_in("signer_sym_key")?);
            let result = replay(v, |r: &mut ReplayRng| {
                Ok(match sign(domain, r, &key, ring, &msg)? {
                    Ok(_) => "ok".to_string(),
                    Err(e) => format!("{e:?}"),
                })
            })?;
            expect_text(v, "result_text", &result)
        }
        "verify" => {
            let sigma = v.hex_in("sigma")?;
            let mut r = Reader::new(&sigma);
            let valid = match RingSignature::read(&mut r) {
                Ok(sig) if r.is_empty() => verify(domain, &sig, ring, &msg)?,
                _ => false,
            };
            expect_bool(v, "valid", valid)
        }
        other => Err(format!("unknown operation {other}")),
    }
}
