//! The ring signature RSig/RVrf (otrv4.md §"Ring Signature Authentication"), generic over
//! the KDF domain so the prekey server's DAKE can use its own `usage_auth`.
//!
//! Signing follows the spec's generalized, constant-time algorithm: every `T_i` is computed
//! as `G·x_i + A_i·y_i` with the scalars chosen by constant-time selects (`t_i, 0` at the
//! signer's position, `r_i, c_i` elsewhere), so the signer's position never shows.

use crate::crypto::edwards::{EdwardsPoint, vartime_multiscalar_mul};
use subtle::{Choice, ConstantTimeEq};

use crate::crypto::CryptoError;
use crate::crypto::ed448::{
    GENERATOR_BYTES, KeyPair, ORDER_BYTES_BE, Point, Scalar, encode_point, hash_to_scalar,
};
use crate::crypto::kdf::Domain;

/// Bytes in a RING-SIG (six 57-byte SCALARs).
#[cfg(feature = "hazmat")]
pub const RING_SIG_LEN: usize = 6 * crate::crypto::ed448::SCALAR_LEN;

/// RING-SIG: `(c1, r1, c2, r2, c3, r3)` (otrv4.md §"Serializing the Ring Signature Proof of
/// Authentication").
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RingSignature {
    /// c1, r1, c2, r2, c3, r3 in wire order.
    pub parts: [Scalar; 6],
}

/// `c = HashToScalar(usage_auth || G || q || A1 || A2 || A3 || T1 || T2 || T3 || m)` in
/// domain `D`. G is its 57-byte POINT encoding; q is 56 bytes big-endian (see spec notes).
fn challenge<D: Domain>(ring: [&Point; 3], t: [&[u8; 57]; 3], msg: &[u8]) -> Scalar {
    let [a1, a2, a3] = ring.map(Point::encode);
    let [t1, t2, t3] = t;
    hash_to_scalar::<D>(
        D::AUTH,
        &[
            &GENERATOR_BYTES,
            &ORDER_BYTES_BE,
            &a1,
            &a2,
            &a3,
            t1,
            t2,
            t3,
            msg,
        ],
    )
}

impl RingSignature {
    /// `RSig(A_i, a_i, {A1, A2, A3}, m)` (otrv4.md §"Authentication: RSig"): `key` must be
    /// exactly one of the three ring keys, else [`CryptoError::KeyNotInRing`] (none) or
    /// [`CryptoError::DuplicateRingKey`] (more than one). Its position is chosen in constant
    /// time: for each `i`, `T_i = G·x_i + A_i·y_i` with `(x_i, y_i)` selected as `(t_i, 0)`
    /// at the signer's position (`G·t_i`) and `(r_i, c_i)` elsewhere, each multiplication in
    /// constant time (one `G·s` and one `P·s` per position, instead of computing both forms
    /// and selecting the point); `c_i`, `r_i` are selected likewise; only the two error
    /// conditions are branched on.
    ///
    /// The random `t_i, c_i, r_i` are uniform scalars ([`Scalar::random`]), not pruned ones:
    /// the published `c_j, r_j` of the other positions must be distributed like the signer's
    /// `c_i, r_i`, which are uniform (see spec notes).
    pub fn sign<D: Domain, R: rand_core::CryptoRng + ?Sized>(
        rng: &mut R,
        key: &KeyPair,
        ring: [&Point; 3],
        msg: &[u8],
    ) -> Result<RingSignature, CryptoError> {
        let public = key.public();
        let sel = ring.map(|a| a.ct_eq(public));
        let [e1, e2, e3] = sel;
        if !bool::from(e1 | e2 | e3) {
            return Err(CryptoError::KeyNotInRing);
        }
        if bool::from((e1 & e2) | (e1 & e3) | (e2 & e3)) {
            return Err(CryptoError::DuplicateRingKey);
        }

        let t: [Scalar; 3] = core::array::from_fn(|_| Scalar::random(rng));
        let c: [Scalar; 3] = core::array::from_fn(|_| Scalar::random(rng));
        let r: [Scalar; 3] = core::array::from_fn(|_| Scalar::random(rng));

        let big_t: [[u8; 57]; 3] = core::array::from_fn(|i| {
            let (Some(a), Some(ti), Some(ci), Some(ri), Some(s)) =
                (ring.get(i), t.get(i), c.get(i), r.get(i), sel.get(i))
            else {
                return [0u8; 57];
            };
            // Signer: G·t_i + A_i·0 = G·t_i; others: G·r_i + A_i·c_i.
            let x = Scalar::conditional_select(ri, ti, *s);
            let y = Scalar::conditional_select(ci, &Scalar::ZERO, *s);
            encode_point(&(EdwardsPoint::mul_base(&x.0) + a.0.mul(&y.0)))
        });
        let [bt1, bt2, bt3] = &big_t;
        let ch = challenge::<D>(ring, [bt1, bt2, bt3], msg);

        let [c1, c2, c3] = &c;
        let [s1, s2, s3] = sel;
        let c1 = Scalar::conditional_select(c1, &(&(&ch - c2) - c3), s1);
        let c2 = Scalar::conditional_select(c2, &(&(&ch - &c1) - c3), s2);
        let c3 = Scalar::conditional_select(c3, &(&(&ch - &c1) - &c2), s3);
        let sk = key.secret();
        let pick_r = |ri: &Scalar, ti: &Scalar, ci: &Scalar, s: Choice| {
            Scalar::conditional_select(ri, &(ti - &(ci * sk)), s)
        };
        let [r1, r2, r3] = &r;
        let [t1, t2, t3] = &t;
        let r1 = pick_r(r1, t1, &c1, s1);
        let r2 = pick_r(r2, t2, &c2, s2);
        let r3 = pick_r(r3, t3, &c3, s3);
        Ok(RingSignature {
            parts: [c1, r1, c2, r2, c3, r3],
        })
    }

    /// `RVrf({A1, A2, A3}, sigma, m)` (otrv4.md §"Verification: RVrf"): recompute
    /// `T_i = G·r_i + A_i·c_i`, `c = HashToScalar(…)`, and check `c = c1 + c2 + c3 (mod q)`.
    /// The ring keys are [`Point`]s, so already validated. Fails with
    /// [`CryptoError::BadRingSignature`]. Runs in variable time (all inputs are public).
    pub fn verify<D: Domain>(&self, ring: [&Point; 3], msg: &[u8]) -> Result<(), CryptoError> {
        let [c1, r1, c2, r2, c3, r3] = &self.parts;
        let [a1, a2, a3] = ring;
        let t = |a: &Point, c: &Scalar, r: &Scalar| {
            encode_point(&vartime_multiscalar_mul(Some(&r.0), [(&c.0, &a.0)]))
        };
        let (t1, t2, t3) = (t(a1, c1, r1), t(a2, c2, r2), t(a3, c3, r3));
        let ch = challenge::<D>(ring, [&t1, &t2, &t3], msg);
        if bool::from(ch.ct_eq(&(&(c1 + c2) + c3))) {
            Ok(())
        } else {
            Err(CryptoError::BadRingSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kdf::{Otrv4, PrekeyServer};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ring_keys(rng: &mut StdRng) -> [KeyPair; 3] {
        core::array::from_fn(|_| KeyPair::generate(rng))
    }

    #[test]
    fn signs_and_verifies_from_each_position() {
        let mut rng = StdRng::seed_from_u64(31);
        let keys = ring_keys(&mut rng);
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        for (pos, key) in keys.iter().enumerate() {
            let sig = RingSignature::sign::<Otrv4, _>(&mut rng, key, ring, b"message").unwrap();
            assert_eq!(
                sig.verify::<Otrv4>(ring, b"message"),
                Ok(()),
                "position {pos}"
            );
            // c = c1 + c2 + c3 and the signer's T_i = G·t_i is hidden: nothing else to see.
        }
    }

    #[test]
    fn every_tampering_is_rejected() {
        let mut rng = StdRng::seed_from_u64(32);
        let keys = ring_keys(&mut rng);
        let other = KeyPair::generate(&mut rng);
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        for key in &keys {
            let sig = RingSignature::sign::<Otrv4, _>(&mut rng, key, ring, b"m").unwrap();
            for i in 0..6 {
                let mut bad = sig.clone();
                bad.parts[i] = &bad.parts[i] + &Scalar::ONE;
                assert_eq!(
                    bad.verify::<Otrv4>(ring, b"m"),
                    Err(CryptoError::BadRingSignature),
                    "scalar {i}"
                );
            }
            for i in 0..3 {
                let mut bad_ring = ring;
                bad_ring[i] = other.public();
                assert_eq!(
                    sig.verify::<Otrv4>(bad_ring, b"m"),
                    Err(CryptoError::BadRingSignature),
                    "key {i}"
                );
            }
            // Ring order is part of the statement.
            let swapped = [ring[1], ring[0], ring[2]];
            assert_eq!(
                sig.verify::<Otrv4>(swapped, b"m"),
                Err(CryptoError::BadRingSignature)
            );
            assert_eq!(
                sig.verify::<Otrv4>(ring, b"M"),
                Err(CryptoError::BadRingSignature)
            );
            assert_eq!(
                sig.verify::<Otrv4>(ring, b"m\x00"),
                Err(CryptoError::BadRingSignature)
            );
        }
    }

    #[test]
    fn key_not_in_ring() {
        let mut rng = StdRng::seed_from_u64(33);
        let keys = ring_keys(&mut rng);
        let other = KeyPair::generate(&mut rng);
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        assert_eq!(
            RingSignature::sign::<Otrv4, _>(&mut rng, &other, ring, b"m").map(|_| ()),
            Err(CryptoError::KeyNotInRing)
        );
    }

    #[test]
    fn signing_key_twice_in_the_ring_is_rejected() {
        let mut rng = StdRng::seed_from_u64(34);
        let keys = ring_keys(&mut rng);
        let (a, b) = (keys[0].public(), keys[1].public());
        for ring in [[a, a, b], [b, a, a], [a, b, a], [a, a, a]] {
            assert_eq!(
                RingSignature::sign::<Otrv4, _>(&mut rng, &keys[0], ring, b"m").map(|_| ()),
                Err(CryptoError::DuplicateRingKey)
            );
        }
        // Another key repeated is fine: the signer's position is still unique.
        let ring = [b, a, b];
        let sig = RingSignature::sign::<Otrv4, _>(&mut rng, &keys[0], ring, b"m").unwrap();
        assert_eq!(sig.verify::<Otrv4>(ring, b"m"), Ok(()));
    }

    #[test]
    fn domains_are_separated() {
        let mut rng = StdRng::seed_from_u64(35);
        let keys = ring_keys(&mut rng);
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        let sig = RingSignature::sign::<PrekeyServer, _>(&mut rng, &keys[1], ring, b"t").unwrap();
        assert_eq!(sig.verify::<PrekeyServer>(ring, b"t"), Ok(()));
        assert_eq!(
            sig.verify::<Otrv4>(ring, b"t"),
            Err(CryptoError::BadRingSignature)
        );
        let sig = RingSignature::sign::<Otrv4, _>(&mut rng, &keys[1], ring, b"t").unwrap();
        assert_eq!(
            sig.verify::<PrekeyServer>(ring, b"t"),
            Err(CryptoError::BadRingSignature)
        );
    }

    #[test]
    fn challenge_known_layout() {
        // c is HashToScalar over exactly usage_auth || G || q(56, BE) || A1..A3 || T1..T3 || m.
        let mut rng = StdRng::seed_from_u64(36);
        let keys = ring_keys(&mut rng);
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        let t = [[7u8; 57], [8u8; 57], [9u8; 57]];
        let mut body = alloc::vec::Vec::new();
        body.extend_from_slice(&GENERATOR_BYTES);
        body.extend_from_slice(&ORDER_BYTES_BE);
        for a in ring {
            body.extend_from_slice(&a.encode());
        }
        for ti in &t {
            body.extend_from_slice(ti);
        }
        body.extend_from_slice(b"msg");
        assert_eq!(body.len(), 57 + 56 + 6 * 57 + 3);
        for (prefix, got) in [
            (
                &b"OTRv4\x1a"[..],
                challenge::<Otrv4>(ring, [&t[0], &t[1], &t[2]], b"msg"),
            ),
            (
                &b"OTR-Prekey-Server\x11"[..],
                challenge::<PrekeyServer>(ring, [&t[0], &t[1], &t[2]], b"msg"),
            ),
        ] {
            let mut h = [0u8; 57];
            crate::crypto::kdf::shake256(&[prefix, &body], &mut h);
            assert_eq!(got, Scalar::from_bytes_mod_order(&h));
        }
    }

    #[test]
    fn published_scalars_look_uniform_in_every_position() {
        // With pruned random values, c_j/r_j of non-signer positions would only hit two
        // classes mod 4 while the signer's are uniform, revealing the signer's position.
        let mut rng = StdRng::seed_from_u64(38);
        let keys = ring_keys(&mut rng);
        let ring = [keys[0].public(), keys[1].public(), keys[2].public()];
        let mut seen = [[false; 4]; 6];
        for _ in 0..48 {
            let sig = RingSignature::sign::<Otrv4, _>(&mut rng, &keys[0], ring, b"m").unwrap();
            for (i, s) in sig.parts.iter().enumerate() {
                seen[i][(s.encode()[0] & 3) as usize] = true;
            }
        }
        for (i, classes) in seen.iter().enumerate() {
            assert!(classes.iter().all(|c| *c), "scalar {i}: {classes:?}");
        }
    }
}
