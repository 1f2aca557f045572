//! Ed448-Goldilocks points and scalars (otrv4.md §"Elliptic Curve Parameters",
//! §"Encoding and Decoding") with the strict decoding and validation OTRv4 requires.
//!
//! `ed448-goldilocks` decodes too laxly for OTRv4 (it accepts y = p+1 and stray bits), so
//! [`Point::decode`] decodes, re-encodes and compares, then checks identity and `q·X = I`.

use crate::crypto::CryptoError;
use crate::wire::codec::{DecodeError, Reader, Writer};

/// Bytes in a POINT.
pub const POINT_LEN: usize = 57;
/// Bytes in a SCALAR (otrv4.md §"Data Types"; see docs/spec-notes.md on 56 vs 57).
pub const SCALAR_LEN: usize = 57;

/// A validated Ed448 point: canonically encoded, not the identity, in the prime-order
/// subgroup. The only way to get one from bytes is [`Point::decode`].
#[derive(Clone, Copy)]
pub struct Point(pub(crate) ed448_goldilocks::EdwardsPoint);

impl Point {
    /// Strictly decodes and validates a received POINT (otrv4.md §"Verifying that a point
    /// is on the curve").
    pub fn decode(bytes: &[u8; POINT_LEN]) -> Result<Point, CryptoError> {
        let _ = bytes;
        todo!("H1")
    }

    /// The 57-byte POINT encoding.
    pub fn encode(&self) -> [u8; POINT_LEN] {
        todo!("H1")
    }

    /// The base point G.
    pub fn generator() -> Point {
        todo!("H1")
    }

    /// Reads a POINT field.
    pub fn read(r: &mut Reader<'_>, what: &'static str) -> Result<Point, DecodeError> {
        let b = r.array::<POINT_LEN>(what)?;
        Point::decode(&b).map_err(|_| DecodeError::BadPoint(what))
    }

    /// Writes a POINT field.
    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.encode());
    }
}

/// A scalar mod q. Zeroized on drop (it may be secret); `Debug` prints nothing.
#[derive(Clone)]
pub struct Scalar(pub(crate) ed448_goldilocks::EdwardsScalar);

impl Scalar {
    /// Decodes a canonical SCALAR (value `< q`).
    pub fn decode(bytes: &[u8; SCALAR_LEN]) -> Result<Scalar, CryptoError> {
        let _ = bytes;
        todo!("H1")
    }

    /// The 57-byte little-endian SCALAR encoding.
    pub fn encode(&self) -> [u8; SCALAR_LEN] {
        todo!("H1")
    }

    /// Reads a SCALAR field.
    pub fn read(r: &mut Reader<'_>, what: &'static str) -> Result<Scalar, DecodeError> {
        let b = r.array::<SCALAR_LEN>(what)?;
        Scalar::decode(&b).map_err(|_| DecodeError::BadScalar(what))
    }

    /// Writes a SCALAR field.
    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.encode());
    }
}

/// The 57-byte symmetric key a long-term key pair, shared prekey or ECDH key pair is
/// derived from (otrv4.md §"Public keys, Shared Prekeys, Forging keys and Fingerprints").
/// Zeroized on drop; `Debug` prints nothing.
pub struct SymmetricKey(pub(crate) [u8; 57]);

/// An Ed448 key pair derived from a [`SymmetricKey`]: `h = SHAKE-256(sym, 114)`, the lower
/// half pruned into the secret scalar, the upper half the EdDSA `prefix`. Used for the
/// long-term key `H`, the shared prekey `D`, forging keys and ECDH ephemerals alike.
pub struct KeyPair {
    pub(crate) sym: SymmetricKey,
    pub(crate) secret: Scalar,
    pub(crate) prefix: [u8; 57],
    pub(crate) public: Point,
}

impl KeyPair {
    /// Derives the key pair from `sym`.
    pub fn from_symmetric_key(sym: SymmetricKey) -> KeyPair {
        let _ = sym;
        todo!("H1")
    }

    /// Draws 57 random bytes and derives the key pair (generateECDH / key generation).
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> KeyPair {
        let _ = rng;
        todo!("H1")
    }

    /// The public point.
    pub fn public(&self) -> &Point {
        &self.public
    }

    /// The secret scalar.
    pub fn secret(&self) -> &Scalar {
        &self.secret
    }
}
