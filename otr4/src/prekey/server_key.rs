//! A prekey server's long-term public key as a client meets it outside the protocol's DAKE:
//! in the server's key-rotation announcement (docs/spec-notes.md, Prekey server §15).
//!
//! Decoded strictly (otrv4.md §"Verifying that a point is on the curve"), with its
//! fingerprint (otrv4-prekey-server.md §"Prekey server's fingerprint") and the check of an
//! Ed448 signature it made (RFC 8032), so that `xmpp-glue` needs no `hazmat` layer.

use crate::crypto::CryptoError;
use crate::crypto::ed448::{POINT_LEN, Point};
use crate::crypto::eddsa::{self, SIGNATURE_LEN, Signature};
use crate::crypto::fingerprint::Fingerprint;
use crate::crypto::keys::Ed448PublicKey;

/// A prekey server's Ed448 long-term public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrekeyServerKey(Point);

impl PrekeyServerKey {
    /// Bytes of the encoded key.
    pub const LEN: usize = POINT_LEN;
    /// Bytes of a signature.
    pub const SIGNATURE_LEN: usize = SIGNATURE_LEN;

    /// Decodes the 57-byte key; fails on a non-canonical encoding, a point off the curve or
    /// outside the prime-order subgroup.
    pub fn decode(bytes: &[u8; POINT_LEN]) -> Result<PrekeyServerKey, CryptoError> {
        Point::decode(bytes).map(PrekeyServerKey)
    }

    /// The server's fingerprint, as clients pin it.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::prekey_server(&Ed448PublicKey(self.0))
    }

    /// Whether `signature` is this key's Ed448 signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> bool {
        eddsa::verify(&self.0, message, &Signature(*signature)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ed448::KeyPair;
    use rand::SeedableRng;

    #[test]
    fn verifies_its_own_signatures_only() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let k = KeyPair::generate(&mut rng);
        let key = PrekeyServerKey::decode(&k.public().encode()).unwrap();
        assert_eq!(
            key.fingerprint(),
            Fingerprint::prekey_server(&Ed448PublicKey(*k.public()))
        );
        let sig = eddsa::sign(&k, b"rotation").0;
        assert!(key.verify(b"rotation", &sig));
        assert!(!key.verify(b"rotatioN", &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!key.verify(b"rotation", &bad));
        assert!(PrekeyServerKey::decode(&[0xff; POINT_LEN]).is_err());
    }
}
