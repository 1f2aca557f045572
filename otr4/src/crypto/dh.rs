//! The 3072-bit Diffie-Hellman group of RFC 3526 (otrv4.md §"3072-bit Diffie-Hellman
//! Parameters"): key generation, the group-membership check and shared secrets.

use crate::crypto::CryptoError;
use crate::wire::codec::{DecodeError, Reader, Writer};
use alloc::vec::Vec;

/// Bytes in a DH secret (otrv4.md §"Generating ECDH and DH keys": 80 bytes).
pub const DH_SECRET_LEN: usize = 80;
/// Bytes in a group element.
pub const DH_MODULUS_LEN: usize = 384;

/// A received DH public value that passed the group-membership check.
#[derive(Clone, PartialEq, Eq)]
pub struct DhPublic(pub(crate) crypto_bigint::U3072);

impl DhPublic {
    /// Validates big-endian magnitude bytes (an MPI body) as a group element.
    pub fn from_be_bytes(be: &[u8]) -> Result<DhPublic, CryptoError> {
        let _ = be;
        todo!("H2")
    }

    /// The minimal big-endian magnitude (an MPI body).
    pub fn to_be_bytes(&self) -> Vec<u8> {
        todo!("H2")
    }

    /// Reads an MPI field holding a DH public value.
    pub fn read(r: &mut Reader<'_>, what: &'static str) -> Result<DhPublic, DecodeError> {
        let b = r.mpi_max(what, DH_MODULUS_LEN)?;
        DhPublic::from_be_bytes(b).map_err(|_| DecodeError::BadDhValue(what))
    }

    /// Writes the value as an MPI.
    pub fn write(&self, w: &mut Writer) {
        w.mpi(&self.to_be_bytes());
    }
}
