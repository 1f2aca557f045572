//! The cryptographic primitives of OTRv4 (otrv4.md §"Notation and Parameters", §"Key
//! Management", §"Appendices"), one module per primitive.
//!
//! Every secret zeroizes on drop and prints nothing in `Debug`; MACs compare in constant time.

pub mod chacha;
pub mod dh;
pub mod ecdh;
pub mod ed448;
pub mod eddsa;
pub(crate) mod edwards;
pub mod fingerprint;
pub mod kdf;
pub mod keys;
pub(crate) mod p448;
pub mod rsig;

/// Why a cryptographic check or operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A 57-byte POINT did not decode strictly (y ≥ p, stray bits, no square root, …).
    #[error("point encoding is invalid")]
    InvalidPointEncoding,
    /// A received point is the identity element.
    #[error("point is the identity element")]
    IdentityPoint,
    /// A received point is not in the prime-order subgroup (q·X ≠ I).
    #[error("point is not in the prime-order subgroup")]
    PointNotInSubgroup,
    /// A 57-byte SCALAR is not canonical (≥ q, or stray bits in the last byte).
    #[error("scalar encoding is not canonical")]
    NonCanonicalScalar,
    /// ECDH gave the all-zero (identity) shared secret.
    #[error("ECDH shared secret is zero")]
    ZeroSharedSecret,
    /// A DH value is outside `[2, dh_p - 2]` or not in the order-q subgroup.
    #[error("DH value is not in the 3072-bit group")]
    DhValueNotInGroup,
    /// An EdDSA signature did not verify.
    #[error("EdDSA signature is invalid")]
    BadSignature,
    /// A ring signature did not verify.
    #[error("ring signature is invalid")]
    BadRingSignature,
    /// The secret key given to RSig matches none of the three ring keys.
    #[error("signing key is not in the ring")]
    KeyNotInRing,
    /// The secret key given to RSig matches more than one of the three ring keys.
    #[error("signing key appears more than once in the ring")]
    DuplicateRingKey,
    /// A MAC did not match.
    #[error("MAC is invalid")]
    BadMac,
    /// A ChaCha20 input is longer than the keystream left before the 32-bit block counter
    /// would wrap.
    #[error("ChaCha20 keystream exhausted")]
    KeystreamExhausted,
}

/// Constant-time equality of two byte strings of equal length (MACs, tags).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
