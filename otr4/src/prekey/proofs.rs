//! The batch zero-knowledge proofs of knowledge of the published prekey secrets
//! (otrv4-prekey-server.md §"Proofs"): ECDH (Prekey messages' `Y_i`, Prekey Profile's `D`) and DH.
//!
//! `lambda = 352` bits = 44 bytes; `p = KDF(usage_proof_c_lambda, c, N * 44)` is cut into
//! `t_1 … t_N`, read little-endian as scalars for ECDH and big-endian for DH
//! (docs/spec-notes.md).

use crate::crypto::dh::{DhKeyPair, DhPublic, SecretExponent};
use crate::crypto::ed448::{KeyPair, Point, SCALAR_LEN, Scalar, encode_point};
use crate::crypto::edwards::EdwardsPoint;
use crate::crypto::kdf::{DOMAIN_PREKEY_SERVER, PrekeyUsage, prekey_kdf, shake_into};
use crate::debug::redacted_debug;
use crate::prekey::messages::{DhProof, EcdhProof, MAX_PUBLISHED_PREKEY_MESSAGES, PROOF_C_LEN};
use crate::wire::codec::Writer;
use alloc::vec;
use alloc::vec::Vec;
use zeroize::{Zeroize, ZeroizeOnDrop};
// The verifiers are the server's side (`hazmat`).
#[cfg(feature = "hazmat")]
use {
    crate::crypto::dh::dh_proof_commitment, crate::crypto::edwards::vartime_multiscalar_mul,
    subtle::ConstantTimeEq,
};

/// `lambda` in bytes (352 bits).
pub const LAMBDA_LEN: usize = 44;

/// Why a proof was not generated or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A batch proof needs at least one value.
    #[error("a proof needs at least one value")]
    Empty,
    /// More values than one publication can carry (255).
    #[error("more than 255 values in one proof")]
    TooMany,
    /// The proof does not verify for the given values.
    #[error("{0:?} proof does not verify")]
    Invalid(ProofKind),
}

/// The three proofs of a Prekey Publication message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofKind {
    /// Prekey messages' ECDH keys `Y_i` (`usage_proof_message_ecdh`).
    PrekeyMessagesEcdh,
    /// Prekey messages' DH keys `B_i` (`usage_proof_message_dh`).
    PrekeyMessagesDh,
    /// The Prekey Profile's shared prekey `D` (`usage_proof_shared_ecdh`).
    SharedPrekey,
}

/// The proofs' context `m = KDF(usage_proof_context, SK, 64)` (§"Proofs"): binds every
/// proof to one DAKE. Zeroized on drop; `Debug` prints nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ProofContext(pub(crate) [u8; 64]);

impl ProofContext {
    /// `m = KDF(usage_proof_context, SK, 64)`.
    pub fn from_shared_secret(sk: &[u8; 64]) -> ProofContext {
        ProofContext(prekey_kdf::<64>(PrekeyUsage::ProofContext, &[sk]))
    }
}

redacted_debug!(ProofContext);

/// Checks `1 <= n <= 255`.
fn check_count(n: usize) -> Result<(), ProofError> {
    match n {
        0 => Err(ProofError::Empty),
        n if n > MAX_PUBLISHED_PREKEY_MESSAGES => Err(ProofError::TooMany),
        _ => Ok(()),
    }
}

/// `p = KDF(usage_proof_c_lambda, c, n * lambda)` cut into `n` pieces of 44 bytes.
fn lambda_pieces(c: &[u8; PROOF_C_LEN], n: usize) -> Vec<[u8; LAMBDA_LEN]> {
    let mut p = vec![0u8; n * LAMBDA_LEN];
    shake_into(
        DOMAIN_PREKEY_SERVER,
        PrekeyUsage::ProofCLambda as u8,
        &[c],
        &mut p,
    );
    p.chunks_exact(LAMBDA_LEN)
        .map(|ch| {
            let mut t = [0u8; LAMBDA_LEN];
            t.copy_from_slice(ch);
            t
        })
        .collect()
}

/// A 44-byte piece read as a little-endian scalar (44 bytes < q: no reduction happens).
fn piece_scalar(t: &[u8; LAMBDA_LEN]) -> Scalar {
    let mut wide = [0u8; SCALAR_LEN];
    if let Some(head) = wide.first_chunk_mut::<LAMBDA_LEN>() {
        *head = *t;
    }
    Scalar::from_bytes_mod_order(&wide)
}

/// The two ECDH batch proofs, which differ only in their usage ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdhProofKind {
    /// Prekey messages' `Y_i` (`usage_proof_message_ecdh`).
    PrekeyMessages,
    /// The Prekey Profile's `D` (`usage_proof_shared_ecdh`).
    SharedPrekey,
}

impl EcdhProofKind {
    fn usage(self) -> PrekeyUsage {
        match self {
            EcdhProofKind::PrekeyMessages => PrekeyUsage::ProofMessageEcdh,
            EcdhProofKind::SharedPrekey => PrekeyUsage::ProofSharedEcdh,
        }
    }
}

impl From<EcdhProofKind> for ProofKind {
    fn from(k: EcdhProofKind) -> ProofKind {
        match k {
            EcdhProofKind::PrekeyMessages => ProofKind::PrekeyMessagesEcdh,
            EcdhProofKind::SharedPrekey => ProofKind::SharedPrekey,
        }
    }
}

/// `c = KDF(usage, A || Y_1 || … || Y_N || m, 64)` with 57-byte POINT encodings.
fn ecdh_challenge(
    usage: PrekeyUsage,
    a: &[u8; 57],
    points: &[&Point],
    m: &ProofContext,
) -> [u8; PROOF_C_LEN] {
    let mut w = Vec::with_capacity(57 * (points.len() + 1) + 64);
    w.bytes(a);
    for p in points {
        w.point(p);
    }
    w.bytes(&m.0);
    prekey_kdf::<PROOF_C_LEN>(usage, &[w.as_slice()])
}

/// Generates an ECDH batch proof for the key pairs `keys` (§"Prekey Messages proofs"
/// §"ECDH" §"Generation"; with one key and [`EcdhProofKind::SharedPrekey`], §"Prekey Profile
/// proof"): `r` uniform and non-zero, `A = G * r`, `c = KDF(usage, A || Y_1 … Y_N || m, 64)`,
/// `v = r + t_1 y_1 + … + t_N y_N mod q`. Constant time in the secrets.
///
/// `r` is a uniform scalar ([`Scalar::random`]) rather than 56 raw bytes: `v` is published
/// and must not leak the secrets through a biased nonce (see docs/spec-notes.md).
pub fn generate_ecdh_proof<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    kind: EcdhProofKind,
    keys: &[&KeyPair],
    m: &ProofContext,
) -> Result<EcdhProof, ProofError> {
    check_count(keys.len())?;
    let r = loop {
        let r = Scalar::random(rng);
        if !bool::from(r.is_zero()) {
            break r;
        }
    };
    let a = encode_point(&EdwardsPoint::mul_base(&r.0));
    let points: Vec<&Point> = keys.iter().map(|k| k.public()).collect();
    let c = ecdh_challenge(kind.usage(), &a, &points, m);
    let mut v = r;
    for (k, t) in keys.iter().zip(lambda_pieces(&c, keys.len()).iter()) {
        v = &v + &(&piece_scalar(t) * k.secret());
    }
    Ok(EcdhProof { c, v })
}

/// Verifies an ECDH batch proof for the points `points` (§"ECDH" §"Verification"):
/// `A = G * v - (t_1 Y_1 + … + t_N Y_N)`, `c2 = KDF(usage, A || Y_1 … Y_N || m, 64)`,
/// `c == c2` (constant-time comparison). All inputs are public.
#[cfg(feature = "hazmat")]
pub fn verify_ecdh_proof(
    proof: &EcdhProof,
    kind: EcdhProofKind,
    points: &[&Point],
    m: &ProofContext,
) -> Result<(), ProofError> {
    check_count(points.len())?;
    let mut sum = EdwardsPoint::IDENTITY;
    for (p, t) in points
        .iter()
        .zip(lambda_pieces(&proof.c, points.len()).iter())
    {
        // Public inputs: variable time.
        sum += vartime_multiscalar_mul(None, [(&piece_scalar(t).0, &p.0)]);
    }
    let a = encode_point(&(vartime_multiscalar_mul(Some(&proof.v.0), []) - sum));
    let c2 = ecdh_challenge(kind.usage(), &a, points, m);
    if bool::from(c2.ct_eq(&proof.c)) {
        Ok(())
    } else {
        Err(ProofError::Invalid(kind.into()))
    }
}

/// `c = KDF(usage_proof_message_dh, A || B_1 || … || B_N || m, 64)` with `A` and the
/// `B_i` as MPIs (docs/spec-notes.md note 3).
fn dh_challenge(a_be: &[u8], values: &[&DhPublic], m: &ProofContext) -> [u8; PROOF_C_LEN] {
    let mut w = Vec::new();
    w.mpi(a_be);
    for b in values {
        w.dh_public(b);
    }
    w.bytes(&m.0);
    prekey_kdf::<PROOF_C_LEN>(PrekeyUsage::ProofMessageDh, &[w.as_slice()])
}

/// Generates the DH batch proof for the key pairs `keys` (§"DH" §"Generation"): `r`
/// uniform in `[1, dh_q)`, `A = g3 ^ r`, `c = KDF(usage_proof_message_dh, A || B_1 … B_N ||
/// m, 64)`, `v = r + t_1 b_1 + … + t_N b_N mod dh_q`, the `t_i` read big-endian.
/// Constant time in `r` and the `b_i`.
pub fn generate_dh_proof<R: rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
    keys: &[&DhKeyPair],
    m: &ProofContext,
) -> Result<DhProof, ProofError> {
    check_count(keys.len())?;
    let mut v = SecretExponent::random(rng);
    let a = v.g3_pow();
    let publics: Vec<&DhPublic> = keys.iter().map(|k| k.public()).collect();
    let c = dh_challenge(&a.to_be_bytes(), &publics, m);
    for (k, t) in keys.iter().zip(lambda_pieces(&c, keys.len()).iter()) {
        v.add_product(t, &SecretExponent::from_dh_secret(k.secret()));
    }
    Ok(DhProof {
        c,
        v: v.to_be_bytes(),
    })
}

/// Verifies the DH batch proof for the values `values` (§"DH" §"Verification"):
/// `A = g3 ^ v * (B_1 ^ t_1 * … * B_N ^ t_N) ^ -1`, `c2 = KDF(…, A || B_1 … B_N || m, 64)`,
/// `c == c2`. `v` must be `< dh_q` (the only values an honest prover produces).
#[cfg(feature = "hazmat")]
pub fn verify_dh_proof(
    proof: &DhProof,
    values: &[&DhPublic],
    m: &ProofContext,
) -> Result<(), ProofError> {
    check_count(values.len())?;
    let pieces = lambda_pieces(&proof.c, values.len());
    let terms: Vec<(&DhPublic, &[u8])> = values
        .iter()
        .zip(pieces.iter())
        .map(|(b, t)| (*b, t.as_slice()))
        .collect();
    let a = dh_proof_commitment(&proof.v, &terms)
        .ok_or(ProofError::Invalid(ProofKind::PrekeyMessagesDh))?;
    let c2 = dh_challenge(&a, values, m);
    if bool::from(c2.ct_eq(&proof.c)) {
        Ok(())
    } else {
        Err(ProofError::Invalid(ProofKind::PrekeyMessagesDh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ctx(b: u8) -> ProofContext {
        ProofContext::from_shared_secret(&[b; 64])
    }

    #[test]
    fn lambda_pieces_are_consecutive_44_byte_slices_of_the_kdf() {
        let c = [9u8; 64];
        let mut p = [0u8; 3 * 44];
        shake_into(b"OTR-Prekey-Server", 0x17, &[&c], &mut p);
        let pieces = lambda_pieces(&c, 3);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), p.to_vec());
        // A longer output is a prefix extension (SHAKE), so t_1 is the same for any N.
        assert_eq!(lambda_pieces(&c, 1)[0], pieces[0]);
    }

    #[test]
    fn piece_scalar_is_little_endian() {
        let mut t = [0u8; 44];
        t[0] = 2;
        t[1] = 1;
        assert_eq!(piece_scalar(&t), Scalar::from(0x0102u64));
    }

    #[test]
    fn ecdh_proof_round_trip_and_rejections() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [1usize, 2, 5] {
            let keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate(&mut rng)).collect();
            let refs: Vec<&KeyPair> = keys.iter().collect();
            let pts: Vec<&Point> = keys.iter().map(|k| k.public()).collect();
            let m = ctx(1);
            let kind = EcdhProofKind::PrekeyMessages;
            let proof = generate_ecdh_proof(&mut rng, kind, &refs, &m).unwrap();
            assert_eq!(verify_ecdh_proof(&proof, kind, &pts, &m), Ok(()));
            // Another context, another usage, tampered c or v, swapped/missing value: reject.
            let bad = Err(ProofError::Invalid(kind.into()));
            assert_eq!(verify_ecdh_proof(&proof, kind, &pts, &ctx(2)), bad);
            assert_eq!(
                verify_ecdh_proof(&proof, EcdhProofKind::SharedPrekey, &pts, &m),
                Err(ProofError::Invalid(ProofKind::SharedPrekey))
            );
            let mut p2 = proof.clone();
            p2.c[0] ^= 1;
            assert_eq!(verify_ecdh_proof(&p2, kind, &pts, &m), bad);
            let mut p3 = proof.clone();
            p3.v = &p3.v + &Scalar::ONE;
            assert_eq!(verify_ecdh_proof(&p3, kind, &pts, &m), bad);
            let other = KeyPair::generate(&mut rng);
            let mut pts2 = pts.clone();
            pts2[n - 1] = other.public();
            assert_eq!(verify_ecdh_proof(&proof, kind, &pts2, &m), bad);
            if n > 1 {
                assert_eq!(verify_ecdh_proof(&proof, kind, &pts[..n - 1], &m), bad);
                let mut rev = pts.clone();
                rev.reverse();
                assert_eq!(verify_ecdh_proof(&proof, kind, &rev, &m), bad);
            }
        }
    }

    #[test]
    fn ecdh_proof_without_knowledge_of_one_secret_fails() {
        // A prover that uses a wrong secret for one key produces a proof that fails.
        let mut rng = StdRng::seed_from_u64(2);
        let keys: Vec<KeyPair> = (0..2).map(|_| KeyPair::generate(&mut rng)).collect();
        let wrong = KeyPair::generate(&mut rng);
        let m = ctx(3);
        let kind = EcdhProofKind::PrekeyMessages;
        let proof = generate_ecdh_proof(&mut rng, kind, &[&keys[0], &wrong], &m).unwrap();
        let pts = [keys[0].public(), keys[1].public()];
        assert_eq!(
            verify_ecdh_proof(&proof, kind, &pts, &m),
            Err(ProofError::Invalid(kind.into()))
        );
    }

    #[test]
    fn shared_prekey_proof_round_trip() {
        let mut rng = StdRng::seed_from_u64(3);
        let d = KeyPair::generate(&mut rng);
        let m = ctx(4);
        let kind = EcdhProofKind::SharedPrekey;
        let proof = generate_ecdh_proof(&mut rng, kind, &[&d], &m).unwrap();
        assert_eq!(verify_ecdh_proof(&proof, kind, &[d.public()], &m), Ok(()));
        assert_eq!(
            verify_ecdh_proof(&proof, EcdhProofKind::PrekeyMessages, &[d.public()], &m),
            Err(ProofError::Invalid(ProofKind::PrekeyMessagesEcdh))
        );
    }

    #[test]
    fn counts_are_bounded() {
        let mut rng = StdRng::seed_from_u64(4);
        let m = ctx(5);
        let kind = EcdhProofKind::PrekeyMessages;
        assert_eq!(
            generate_ecdh_proof(&mut rng, kind, &[], &m),
            Err(ProofError::Empty)
        );
        assert_eq!(generate_dh_proof(&mut rng, &[], &m), Err(ProofError::Empty));
        let k = KeyPair::generate(&mut rng);
        let many: Vec<&KeyPair> = (0..256).map(|_| &k).collect();
        assert_eq!(
            generate_ecdh_proof(&mut rng, kind, &many, &m),
            Err(ProofError::TooMany)
        );
        let proof = EcdhProof {
            c: [0; 64],
            v: Scalar::ONE,
        };
        assert_eq!(
            verify_ecdh_proof(&proof, kind, &[], &m),
            Err(ProofError::Empty)
        );
    }

    #[test]
    fn dh_proof_round_trip_and_rejections() {
        let mut rng = StdRng::seed_from_u64(5);
        for n in [1usize, 2, 3] {
            let keys: Vec<DhKeyPair> = (0..n).map(|_| DhKeyPair::generate(&mut rng)).collect();
            let refs: Vec<&DhKeyPair> = keys.iter().collect();
            let pubs: Vec<&DhPublic> = keys.iter().map(|k| k.public()).collect();
            let m = ctx(6);
            let proof = generate_dh_proof(&mut rng, &refs, &m).unwrap();
            assert!(proof.v.len() <= 384 && proof.v.first() != Some(&0));
            assert_eq!(verify_dh_proof(&proof, &pubs, &m), Ok(()));
            let bad = Err(ProofError::Invalid(ProofKind::PrekeyMessagesDh));
            assert_eq!(verify_dh_proof(&proof, &pubs, &ctx(7)), bad);
            let mut p2 = proof.clone();
            p2.c[63] ^= 0x80;
            assert_eq!(verify_dh_proof(&p2, &pubs, &m), bad);
            let mut p3 = proof.clone();
            if let Some(last) = p3.v.last_mut() {
                *last ^= 1;
            }
            assert_eq!(verify_dh_proof(&p3, &pubs, &m), bad);
            let other = DhKeyPair::generate(&mut rng);
            let mut pubs2 = pubs.clone();
            pubs2[0] = other.public();
            assert_eq!(verify_dh_proof(&proof, &pubs2, &m), bad);
        }
    }

    #[test]
    fn dh_proof_response_must_be_below_q() {
        // v + dh_q satisfies the same equation (g3 has order dh_q) but is not canonical.
        let mut rng = StdRng::seed_from_u64(6);
        let k = DhKeyPair::generate(&mut rng);
        let m = ctx(8);
        let proof = generate_dh_proof(&mut rng, &[&k], &m).unwrap();
        let v = crypto_bigint::U3072::from_be_slice(&{
            let mut b = [0u8; 384];
            b[384 - proof.v.len()..].copy_from_slice(&proof.v);
            b
        });
        let (sum, carry) = v.carrying_add(&crate::crypto::dh::DH_Q, crypto_bigint::Limb::ZERO);
        assert_eq!(carry, crypto_bigint::Limb::ZERO);
        let big = DhProof {
            c: proof.c,
            v: sum.to_be_bytes().as_slice().to_vec(),
        };
        let big = DhProof {
            v: big.v.iter().copied().skip_while(|&b| b == 0).collect(),
            ..big
        };
        assert_eq!(
            verify_dh_proof(&big, &[k.public()], &m),
            Err(ProofError::Invalid(ProofKind::PrekeyMessagesDh))
        );
    }
}
