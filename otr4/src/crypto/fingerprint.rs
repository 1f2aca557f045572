//! Public-key fingerprints: OTRv4's over the long-term and forging keys (otrv4.md §"Public
//! keys, Shared Prekeys, Forging keys and Fingerprints") and the prekey server's
//! (otrv4-prekey-server.md §"Public keys and Fingerprints"), with a human-readable form.

use crate::debug::redacted_debug;
use core::fmt;

use crate::crypto::kdf::{Usage, hwc, kdf};
use crate::crypto::keys::{Ed448PublicKey, ForgingPublicKey};

/// Bytes in a fingerprint (224-bit security level).
pub const FINGERPRINT_LEN: usize = 56;

/// A 56-byte fingerprint. `Display` gives the human-readable form: 14 groups of 8
/// upper-case hex digits separated by spaces.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl Fingerprint {
    hazmat_pub! {
        /// The OTRv4 fingerprint `HWC(usage_fingerprint || byte(H) || byte(F), 56)`, where
        /// `byte(H)` and `byte(F)` are the typed 59-byte ED448-PUBKEY and ED448-FORGING-KEY
        /// encodings (see spec notes; as libotr-ng does).
        fn otrv4(h: &Ed448PublicKey, f: &ForgingPublicKey) -> Fingerprint {
            Fingerprint(hwc::<FINGERPRINT_LEN>(
                Usage::Fingerprint,
                &[&h.encode(), &f.encode()],
            ))
        }
    }

    hazmat_pub! {
        /// The prekey server's fingerprint `KDF_1(usage_fingerprint || byte(H), 56)`, with the
        /// OTRv4 KDF (`"OTRv4"` domain, usage 0x00) as that section says, and `byte(H)` the typed
        /// ED448-PUBKEY encoding (as the Go prekey server does).
        fn prekey_server(h: &Ed448PublicKey) -> Fingerprint {
            Fingerprint(kdf::<FINGERPRINT_LEN>(Usage::Fingerprint, &[&h.encode()]))
        }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.chunks(4).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for b in group {
                write!(f, "{b:02X}")?;
            }
        }
        Ok(())
    }
}

redacted_debug!(Fingerprint(|s| format_args!("{s}")));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ed448::{KeyPair, SymmetricKey};
    use crate::crypto::kdf::shake256;
    use alloc::string::ToString;

    fn keys() -> (Ed448PublicKey, ForgingPublicKey) {
        let h = KeyPair::from_symmetric_key(SymmetricKey::from_bytes([1; 57]));
        let f = KeyPair::from_symmetric_key(SymmetricKey::from_bytes([2; 57]));
        (Ed448PublicKey(*h.public()), ForgingPublicKey(*f.public()))
    }

    #[test]
    fn otrv4_fingerprint_hashes_typed_keys() {
        let (h, f) = keys();
        let mut input = alloc::vec::Vec::new();
        input.extend_from_slice(b"OTRv4");
        input.push(0x00);
        input.extend_from_slice(&[0x10, 0x00]);
        input.extend_from_slice(&h.0.encode());
        input.extend_from_slice(&[0x12, 0x00]);
        input.extend_from_slice(&f.0.encode());
        let mut expected = [0u8; 56];
        shake256(&[&input], &mut expected);
        assert_eq!(Fingerprint::otrv4(&h, &f).0, expected);
        // Order matters: H then F.
        let swapped = Fingerprint::otrv4(&Ed448PublicKey(f.0), &ForgingPublicKey(h.0));
        assert_ne!(swapped, Fingerprint::otrv4(&h, &f));
    }

    #[test]
    fn prekey_server_fingerprint_uses_the_otrv4_kdf() {
        let (h, _) = keys();
        let mut input = alloc::vec::Vec::new();
        input.extend_from_slice(b"OTRv4\x00\x10\x00");
        input.extend_from_slice(&h.0.encode());
        let mut expected = [0u8; 56];
        shake256(&[&input], &mut expected);
        assert_eq!(Fingerprint::prekey_server(&h).0, expected);
    }

    #[test]
    fn human_readable_form() {
        let mut b = [0u8; 56];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(5);
        }
        let s = Fingerprint(b).to_string();
        assert_eq!(s.len(), 14 * 8 + 13);
        assert!(s.starts_with("00050A0F 14191E23 "));
        assert!(s.ends_with(" 04090E13"));
        assert_eq!(s.split(' ').count(), 14);
        assert!(alloc::format!("{:?}", Fingerprint(b)).starts_with("Fingerprint(00050A0F"));
    }
}
