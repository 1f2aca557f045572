//! ECDH over Ed448 (otrv4.md §"Generating Shared Secrets", otrv4-prekey-server.md
//! §"Generating Shared Secrets"): `K_ecdh = a * B` as a POINT, rejecting the identity.
//!
//! The identity check is constant time; only its failure is observable.

use crate::debug::redacted_debug;

use crate::crypto::edwards::EdwardsPoint;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::CryptoError;
use crate::crypto::ed448::{POINT_LEN, Point, Scalar, encode_point};

/// An ECDH shared secret `K_ecdh` / `SK_ecdh`, serialized as a POINT (otrv4.md §"Shared
/// Secrets"). Zeroized on drop; `Debug` prints nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SharedSecret([u8; POINT_LEN]);

impl SharedSecret {
    /// The 57-byte POINT encoding of the shared point, to feed into the KDF.
    pub fn as_bytes(&self) -> &[u8; POINT_LEN] {
        &self.0
    }
}

redacted_debug!(SharedSecret);

/// Encodes `k`, failing if it is the identity or encodes to all zeros, without branching
/// on the secret before the final decision.
fn finish(k: EdwardsPoint) -> Result<SharedSecret, CryptoError> {
    let out = SharedSecret(encode_point(&k));
    let is_identity = k.ct_eq(&EdwardsPoint::IDENTITY);
    let all_zero = out.0.ct_eq(&[0u8; POINT_LEN]);
    if bool::from(is_identity | all_zero) {
        Err(CryptoError::ZeroSharedSecret)
    } else {
        Ok(out)
    }
}

/// `ECDH(a, B)` of otrv4.md §"Generating Shared Secrets": `K_ecdh = a * B`, an error if it
/// is the identity ("all-zero") element. `their` is a [`Point`], so it was already checked
/// to be on the curve, not the identity and in the prime-order subgroup.
pub fn ecdh(secret: &Scalar, their: &Point) -> Result<SharedSecret, CryptoError> {
    finish(their.0.mul(&secret.0))
}

/// `ECDH(a, B)` of otrv4-prekey-server.md §"Generating Shared Secrets": `B` is first
/// multiplied by the cofactor 4, then `SK_ecdh = a * (4·B)`, an error if it is the identity.
pub fn prekey_ecdh(secret: &Scalar, their: &Point) -> Result<SharedSecret, CryptoError> {
    finish(their.0.double().double().mul(&secret.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ed448::KeyPair;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ecdh_is_symmetric() {
        let mut rng = StdRng::seed_from_u64(11);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        let ab = ecdh(a.secret(), b.public()).unwrap();
        let ba = ecdh(b.secret(), a.public()).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes());
        // It is the encoding of a·b·G.
        let abg = Point::mul_base(&(a.secret() * b.secret())).unwrap();
        assert_eq!(*ab.as_bytes(), abg.encode());
        let c = KeyPair::generate(&mut rng);
        assert_ne!(
            ecdh(a.secret(), c.public()).unwrap().as_bytes(),
            ab.as_bytes()
        );
    }

    #[test]
    fn prekey_ecdh_multiplies_by_the_cofactor() {
        let mut rng = StdRng::seed_from_u64(12);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        let ab = prekey_ecdh(a.secret(), b.public()).unwrap();
        let ba = prekey_ecdh(b.secret(), a.public()).unwrap();
        assert_eq!(ab.as_bytes(), ba.as_bytes());
        let four_ab = &Scalar::from(4) * &(a.secret() * b.secret());
        assert_eq!(*ab.as_bytes(), Point::mul_base(&four_ab).unwrap().encode());
        assert_ne!(
            ab.as_bytes(),
            ecdh(a.secret(), b.public()).unwrap().as_bytes()
        );
    }

    #[test]
    fn identity_result_is_rejected() {
        let mut rng = StdRng::seed_from_u64(13);
        let b = KeyPair::generate(&mut rng);
        // A zero scalar (e.g. a pruned value equal to 4q) gives the identity.
        assert_eq!(
            ecdh(&Scalar::ZERO, b.public()).map(|_| ()),
            Err(CryptoError::ZeroSharedSecret)
        );
        assert_eq!(
            prekey_ecdh(&Scalar::ZERO, b.public()).map(|_| ()),
            Err(CryptoError::ZeroSharedSecret)
        );
        // The identity check in isolation, on the raw group element.
        assert_eq!(
            finish(EdwardsPoint::IDENTITY).map(|_| ()),
            Err(CryptoError::ZeroSharedSecret)
        );
        assert!(finish(EdwardsPoint::GENERATOR).is_ok());
        assert_eq!(
            alloc::format!("{:?}", finish(EdwardsPoint::GENERATOR).unwrap()),
            "SharedSecret(..)"
        );
    }
}
