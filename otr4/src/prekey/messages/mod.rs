//! The binary messages of the prekey-server protocol (otrv4-prekey-server.md §"DAKE-1
//! Message" … §"No Prekey Ensembles in Storage Message") as [`Codec`] types, and
//! [`PrekeyServerMessage`] to dispatch on the type byte.
//!
//! As for the OTRv4 messages ([`crate::wire::messages`]), decoders check syntax and field
//! validity only; MACs, ring signatures and proofs are checked by the protocol layer. Counts
//! read from the wire are checked against the remaining input before anything is allocated.

mod dake;
mod publication;
mod retrieval;
#[cfg(test)]
mod tests;

pub use dake::{CompositeIdentity, Dake1, Dake2, Dake3, Dake3Inner};
pub use publication::{
    DhProof, EcdhProof, Failure, PrekeyPublication, PublishedPrekeyMessages, StorageInfoRequest,
    StorageStatus, Success,
};
pub use retrieval::{EnsembleQuery, EnsembleRetrieval, NoPrekeyEnsembles};
// The server's answer text (`otr4::hazmat`, for the server and the tests).
#[cfg(feature = "hazmat")]
pub use retrieval::NO_PREKEY_ENSEMBLES_TEXT;

use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::messages::peek_header;
use alloc::vec::Vec;

/// Message type of DAKE-1.
pub const TYPE_DAKE1: u8 = 0x35;
/// Message type of DAKE-2.
pub const TYPE_DAKE2: u8 = 0x36;
/// Message type of DAKE-3.
pub const TYPE_DAKE3: u8 = 0x37;
/// Message type of the Prekey Publication message.
pub const TYPE_PUBLICATION: u8 = 0x08;
/// Message type of the Storage Information Request message.
pub const TYPE_STORAGE_INFO_REQUEST: u8 = 0x09;
/// Message type of the Storage Status message.
pub const TYPE_STORAGE_STATUS: u8 = 0x0B;
/// Message type of the Success message.
pub const TYPE_SUCCESS: u8 = 0x06;
/// Message type of the Failure message.
pub const TYPE_FAILURE: u8 = 0x05;
/// Message type of the Prekey Ensemble Query Retrieval message.
pub const TYPE_ENSEMBLE_QUERY: u8 = 0x10;
/// Message type of the Prekey Ensemble Retrieval message.
pub const TYPE_ENSEMBLE_RETRIEVAL: u8 = 0x13;
/// Message type of the No Prekey Ensembles in Storage message.
pub const TYPE_NO_PREKEY_ENSEMBLES: u8 = 0x0E;

/// Most Prekey messages one publication can carry (N is a BYTE).
pub const MAX_PUBLISHED_PREKEY_MESSAGES: usize = 255;
/// Bytes in the `C` part of a proof.
pub const PROOF_C_LEN: usize = 64;

/// Fails unless `count` items of at least `min_len` bytes each fit in what remains.
pub(crate) fn check_count(
    r: &Reader<'_>,
    count: u64,
    min_len: usize,
    what: &'static str,
) -> Result<(), DecodeError> {
    let limit = (r.remaining() / min_len) as u64;
    if count > limit {
        return Err(DecodeError::LengthTooLarge {
            what,
            len: count,
            limit,
        });
    }
    Ok(())
}

/// Writes a DATA field.
pub(crate) fn data(w: &mut Vec<u8>, d: &[u8]) {
    w.data(d);
}

/// Any prekey-server message that travels on its own (everything except the two messages
/// enclosed in DAKE-3, see `Dake3Inner`), dispatched on its type byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrekeyServerMessage {
    /// DAKE-1 (0x35).
    Dake1(Dake1),
    /// DAKE-2 (0x36).
    Dake2(Dake2),
    /// DAKE-3 (0x37).
    Dake3(Dake3),
    /// Storage Status (0x0B).
    StorageStatus(StorageStatus),
    /// Success (0x06).
    Success(Success),
    /// Failure (0x05).
    Failure(Failure),
    /// Prekey Ensemble Query Retrieval (0x10).
    EnsembleQuery(EnsembleQuery),
    /// Prekey Ensemble Retrieval (0x13).
    EnsembleRetrieval(EnsembleRetrieval),
    /// No Prekey Ensembles in Storage (0x0E).
    NoPrekeyEnsembles(NoPrekeyEnsembles),
}

impl PrekeyServerMessage {
    /// The message type byte.
    #[cfg(feature = "hazmat")]
    pub fn message_type(&self) -> u8 {
        match self {
            PrekeyServerMessage::Dake1(_) => TYPE_DAKE1,
            PrekeyServerMessage::Dake2(_) => TYPE_DAKE2,
            PrekeyServerMessage::Dake3(_) => TYPE_DAKE3,
            PrekeyServerMessage::StorageStatus(_) => TYPE_STORAGE_STATUS,
            PrekeyServerMessage::Success(_) => TYPE_SUCCESS,
            PrekeyServerMessage::Failure(_) => TYPE_FAILURE,
            PrekeyServerMessage::EnsembleQuery(_) => TYPE_ENSEMBLE_QUERY,
            PrekeyServerMessage::EnsembleRetrieval(_) => TYPE_ENSEMBLE_RETRIEVAL,
            PrekeyServerMessage::NoPrekeyEnsembles(_) => TYPE_NO_PREKEY_ENSEMBLES,
        }
    }
}

/// Checks the version (exactly 0x0004), then dispatches on the type byte.
impl Codec for PrekeyServerMessage {
    fn write(&self, w: &mut Vec<u8>) {
        match self {
            PrekeyServerMessage::Dake1(m) => m.write(w),
            PrekeyServerMessage::Dake2(m) => m.write(w),
            PrekeyServerMessage::Dake3(m) => m.write(w),
            PrekeyServerMessage::StorageStatus(m) => m.write(w),
            PrekeyServerMessage::Success(m) => m.write(w),
            PrekeyServerMessage::Failure(m) => m.write(w),
            PrekeyServerMessage::EnsembleQuery(m) => m.write(w),
            PrekeyServerMessage::EnsembleRetrieval(m) => m.write(w),
            PrekeyServerMessage::NoPrekeyEnsembles(m) => m.write(w),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        use PrekeyServerMessage as M;
        match peek_header(r)? {
            TYPE_DAKE1 => Dake1::read(r).map(M::Dake1),
            TYPE_DAKE2 => Dake2::read(r).map(M::Dake2),
            TYPE_DAKE3 => Dake3::read(r).map(M::Dake3),
            TYPE_STORAGE_STATUS => StorageStatus::read(r).map(M::StorageStatus),
            TYPE_SUCCESS => Success::read(r).map(M::Success),
            TYPE_FAILURE => Failure::read(r).map(M::Failure),
            TYPE_ENSEMBLE_QUERY => EnsembleQuery::read(r).map(M::EnsembleQuery),
            TYPE_ENSEMBLE_RETRIEVAL => EnsembleRetrieval::read(r).map(M::EnsembleRetrieval),
            TYPE_NO_PREKEY_ENSEMBLES => NoPrekeyEnsembles::read(r).map(M::NoPrekeyEnsembles),
            t => Err(DecodeError::BadMessageType(t)),
        }
    }
}
