//! The ring signature RSig/RVrf (otrv4.md §"Ring Signature Authentication"), generic over
//! the KDF domain so the prekey server's DAKE can use its own `usage_auth`.

use crate::crypto::CryptoError;
use crate::crypto::ed448::{KeyPair, Point, Scalar};
use crate::crypto::kdf::Domain;
use crate::wire::codec::{DecodeError, Reader, Writer};

/// RING-SIG: `(c1, r1, c2, r2, c3, r3)`.
#[derive(Clone)]
pub struct RingSignature {
    /// c1, r1, c2, r2, c3, r3 in wire order.
    pub parts: [Scalar; 6],
}

impl RingSignature {
    /// `RSig(A_i, a_i, {A1, A2, A3}, m)`: `key` must be one of the three ring keys; its
    /// position is chosen in constant time.
    pub fn sign<D: Domain, R: rand_core::CryptoRng + ?Sized>(
        rng: &mut R,
        key: &KeyPair,
        ring: [&Point; 3],
        msg: &[u8],
    ) -> Result<RingSignature, CryptoError> {
        let _ = (rng, key, ring, msg);
        todo!("H1")
    }

    /// `RVrf({A1, A2, A3}, sigma, m)`.
    pub fn verify<D: Domain>(&self, ring: [&Point; 3], msg: &[u8]) -> Result<(), CryptoError> {
        let _ = (ring, msg);
        todo!("H1")
    }

    /// Reads a RING-SIG field.
    pub fn read(r: &mut Reader<'_>) -> Result<RingSignature, DecodeError> {
        let _ = r;
        todo!("H1")
    }

    /// Writes the RING-SIG field.
    pub fn write(&self, w: &mut Writer) {
        let _ = w;
        todo!("H1")
    }
}
