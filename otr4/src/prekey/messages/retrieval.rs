//! Retrieving Prekey Ensembles (otrv4-prekey-server.md §"Retrieving Prekey Ensembles"): the
//! query, the ensembles, and the answer when there are none.

use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::prekey::messages::*;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::messages::{MIN_ENSEMBLE_LEN, PrekeyEnsemble};
use crate::wire::messages::{read_header, write_header};
use alloc::vec::Vec;

/// The Prekey Ensemble Query Retrieval message (otrv4-prekey-server.md §"Prekey Ensemble
/// Query Retrieval Message"), type 0x10.
#[derive(Clone, PartialEq, Eq)]
pub struct EnsembleQuery {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// The identity asked about (e.g. a bare JID).
    pub identity: Vec<u8>,
    /// The requested version string (unrecognised versions are kept; callers ignore them).
    pub versions: Vec<u8>,
}

impl Codec for EnsembleQuery {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_ENSEMBLE_QUERY);
        w.u32(self.sender_tag.0);
        data(w, &self.identity);
        data(w, &self.versions);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_ENSEMBLE_QUERY)?;
        Ok(EnsembleQuery {
            sender_tag: r.sender_tag("sender instance tag")?,
            identity: r.data("participant identity")?.to_vec(),
            versions: r.data("versions")?.to_vec(),
        })
    }
}

redacted_debug!(EnsembleQuery {
    sender_tag,
    identity: hex,
    versions: hex
});

/// The Prekey Ensemble Retrieval message (otrv4-prekey-server.md §"Prekey Ensemble
/// Retrieval Message"), type 0x13. `L` is an INT and must be > 0.
#[derive(Clone, PartialEq, Eq)]
pub struct EnsembleRetrieval {
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The identity the ensembles belong to.
    pub identity: Vec<u8>,
    ensembles: Vec<PrekeyEnsemble>,
}

impl EnsembleRetrieval {
    /// Builds the message; fails with [`DecodeError::BadValue`] if `ensembles` is empty or
    /// has more than `u32::MAX` entries.
    #[cfg(feature = "hazmat")]
    pub fn new(
        receiver_tag: InstanceTag,
        identity: Vec<u8>,
        ensembles: Vec<PrekeyEnsemble>,
    ) -> Result<EnsembleRetrieval, DecodeError> {
        if ensembles.is_empty() || u32::try_from(ensembles.len()).is_err() {
            return Err(DecodeError::BadValue("L"));
        }
        Ok(EnsembleRetrieval {
            receiver_tag,
            identity,
            ensembles,
        })
    }

    hazmat_pub! {
        /// The ensembles (never empty).
        fn ensembles(&self) -> &[PrekeyEnsemble] {
            &self.ensembles
        }
    }

    /// Unwraps the ensembles.
    #[cfg(feature = "hazmat")]
    pub fn into_ensembles(self) -> Vec<PrekeyEnsemble> {
        self.ensembles
    }
}

impl Codec for EnsembleRetrieval {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_ENSEMBLE_RETRIEVAL);
        w.u32(self.receiver_tag.0);
        data(w, &self.identity);
        w.u32(u32::try_from(self.ensembles.len()).unwrap_or(u32::MAX));
        for e in &self.ensembles {
            e.write(w);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_ENSEMBLE_RETRIEVAL)?;
        let receiver_tag = r.receiver_tag("receiver instance tag")?;
        let identity = r.data("participant identity")?.to_vec();
        let l = r.u32("L")?;
        if l == 0 {
            return Err(DecodeError::BadValue("L"));
        }
        check_count(r, l.into(), MIN_ENSEMBLE_LEN, "L prekey ensembles")?;
        let mut ensembles = Vec::with_capacity(l as usize);
        for _ in 0..l {
            ensembles.push(PrekeyEnsemble::read(r)?);
        }
        Ok(EnsembleRetrieval {
            receiver_tag,
            identity,
            ensembles,
        })
    }
}

redacted_debug!(EnsembleRetrieval {
    receiver_tag,
    identity: hex,
    ensembles
});

/// The No Prekey Ensembles in Storage message (otrv4-prekey-server.md §"No Prekey Ensembles
/// in Storage Message"), type 0x0E.
#[derive(Clone, PartialEq, Eq)]
pub struct NoPrekeyEnsembles {
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The identity the ensembles were requested for.
    pub identity: Vec<u8>,
    /// The human-readable explanation (by convention "No Prekey Messages available for
    /// this identity").
    pub message: Vec<u8>,
}

/// The explanation the spec puts in a No Prekey Ensembles message.
#[cfg(feature = "hazmat")]
pub const NO_PREKEY_ENSEMBLES_TEXT: &[u8] = b"No Prekey Messages available for this identity";

impl Codec for NoPrekeyEnsembles {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_NO_PREKEY_ENSEMBLES);
        w.u32(self.receiver_tag.0);
        data(w, &self.identity);
        data(w, &self.message);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_NO_PREKEY_ENSEMBLES)?;
        Ok(NoPrekeyEnsembles {
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            identity: r.data("participant identity")?.to_vec(),
            message: r.data("no prekey messages message")?.to_vec(),
        })
    }
}

redacted_debug!(NoPrekeyEnsembles {
    receiver_tag,
    identity: hex,
    message: hex
});
