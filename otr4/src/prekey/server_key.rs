//! A prekey server's long-term public key as a client meets it outside the protocol's DAKE:
//! in the server's key-rotation announcement (docs/spec-notes.md, Prekey server §15).
//!
//! Decoded strictly (otrv4.md §"Verifying that a point is on the curve"), with its
//! fingerprint (otrv4-prekey-server.md §"Prekey server's fingerprint") and the check of an
//! Ed448 signature it made (RFC 8032), so that `xmpp-glue` needs no `hazmat` layer.

use alloc::vec::Vec;

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

    /// The domain-separation label at the start of a key-rotation announcement's signed
    /// bytes (docs/spec-notes.md, Prekey server §15).
    pub const ROTATION_LABEL: &'static [u8] = b"OTR4 prekey server key rotation v1\0";

    /// The bytes the old key signs in a key-rotation announcement: the label, the server's
    /// JID (INT length, UTF-8), the old and the new fingerprint, and the last second the
    /// announcement is valid (8 bytes, big-endian). One home for the server that signs and
    /// the clients that verify.
    pub fn rotation_message(
        jid: &str,
        old_fp: &[u8; 56],
        new_fp: &[u8; 56],
        not_after: u64,
    ) -> Vec<u8> {
        let label = Self::ROTATION_LABEL;
        let mut m = Vec::with_capacity(label.len() + 4 + jid.len() + 112 + 8);
        m.extend_from_slice(label);
        m.extend_from_slice(&u32::try_from(jid.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(jid.as_bytes());
        m.extend_from_slice(old_fp);
        m.extend_from_slice(new_fp);
        m.extend_from_slice(&not_after.to_be_bytes());
        m
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
