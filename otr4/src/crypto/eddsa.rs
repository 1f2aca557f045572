//! EdDSA over Ed448 (RFC 8032 §5.2, empty context) for profile signatures
//! (otrv4.md §"Create a Client Profile Signature", §"Verify a Client Profile Signature").

use crate::crypto::CryptoError;
use crate::crypto::ed448::{KeyPair, Point};

/// Bytes in an EDDSA-SIG.
pub const SIGNATURE_LEN: usize = 114;

/// A 114-byte Ed448 signature `R || S`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

/// Signs `msg` with `key` (flag f = 0, empty context).
pub fn sign(key: &KeyPair, msg: &[u8]) -> Signature {
    let _ = (key, msg);
    todo!("H1")
}

/// Verifies `sig` over `msg` under `public`.
pub fn verify(public: &Point, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
    let _ = (public, msg, sig);
    todo!("H1")
}
