//! Publishing (otrv4-prekey-server.md §"Publishing Prekey Values", §"Data Types"): the
//! batch proofs, Prekey Publication, Storage Information Request, Storage Status, Success
//! and Failure messages.

use crate::crypto::dh::DH_MODULUS_LEN;
use crate::crypto::ed448::Scalar;
use crate::debug::{Hex, redacted_debug};
use crate::instance_tag::InstanceTag;
use crate::prekey::messages::*;
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::messages::{
    MAC_LEN, MIN_PREKEY_MESSAGE_LEN, PrekeyMessage, read_header, read_mac, write_header,
};
use alloc::vec::Vec;

/// A batch proof of knowledge of Ed448 secrets (PROOF-ECDH: 64-byte `C`, SCALAR `V`;
/// otrv4-prekey-server.md §"Data Types").
#[derive(Clone, PartialEq, Eq)]
pub struct EcdhProof {
    /// The challenge `c`.
    pub c: [u8; PROOF_C_LEN],
    /// The response `v`.
    pub v: Scalar,
}

impl Codec for EcdhProof {
    fn write(&self, w: &mut Vec<u8>) {
        w.bytes(&self.c);
        w.scalar(&self.v);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EcdhProof {
            c: r.array::<PROOF_C_LEN>("ECDH proof C")?,
            v: r.scalar("ECDH proof V")?,
        })
    }
}

redacted_debug!(EcdhProof { c: hex, v = |s| Hex(&s.v.encode()) });

/// A batch proof of knowledge of DH secrets (PROOF-DH: 64-byte `C`, MPI `V`).
#[derive(Clone, PartialEq, Eq)]
pub struct DhProof {
    /// The challenge `c`.
    pub c: [u8; PROOF_C_LEN],
    /// The response `v` as a minimal big-endian magnitude, at most 384 bytes.
    pub v: Vec<u8>,
}

impl Codec for DhProof {
    fn write(&self, w: &mut Vec<u8>) {
        w.bytes(&self.c).mpi(&self.v);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DhProof {
            c: r.array::<PROOF_C_LEN>("DH proof C")?,
            v: r.mpi_max("DH proof V", DH_MODULUS_LEN)?.to_vec(),
        })
    }
}

redacted_debug!(DhProof { c: hex, v: hex });

/// The Prekey messages of a publication with their two batch proofs. Holds 1 to 255
/// messages; the proofs are present exactly when N > 0, which this type makes structural.
#[derive(Clone, PartialEq, Eq)]
pub struct PublishedPrekeyMessages {
    messages: Vec<PrekeyMessage>,
    /// The batch proof for the `Y_i`.
    pub ecdh_proof: EcdhProof,
    /// The batch proof for the `B_i`.
    pub dh_proof: DhProof,
}

impl PublishedPrekeyMessages {
    /// Groups 1 to [`MAX_PUBLISHED_PREKEY_MESSAGES`] messages with their proofs; fails with
    /// [`DecodeError::BadValue`] for 0 or more than 255 messages.
    pub fn new(
        messages: Vec<PrekeyMessage>,
        ecdh_proof: EcdhProof,
        dh_proof: DhProof,
    ) -> Result<PublishedPrekeyMessages, DecodeError> {
        if messages.is_empty() || messages.len() > MAX_PUBLISHED_PREKEY_MESSAGES {
            return Err(DecodeError::BadValue("number of published prekey messages"));
        }
        Ok(PublishedPrekeyMessages {
            messages,
            ecdh_proof,
            dh_proof,
        })
    }

    /// The Prekey messages (never empty).
    pub fn messages(&self) -> &[PrekeyMessage] {
        &self.messages
    }
}

/// The Prekey Publication message, carried inside DAKE-3 (otrv4-prekey-server.md §"Prekey
/// Publication Message"), type 0x08.
///
/// Wire layout: `N (BYTE) || N Prekey messages || K (BYTE) || [Client Profile] || J (BYTE)
/// || [Prekey Profile] || [ECDH proof || DH proof if N > 0] || [Prekey Profile ECDH proof
/// if J = 1] || MAC`. K and J must be 0 or 1.
#[derive(Clone, PartialEq, Eq)]
pub struct PrekeyPublication {
    /// The published Prekey messages and their proofs (`None` when N = 0).
    pub prekey_messages: Option<PublishedPrekeyMessages>,
    /// The Client Profile (K = 1) or `None` (K = 0).
    pub client_profile: Option<ClientProfile>,
    /// The Prekey Profile and its ECDH proof (J = 1) or `None` (J = 0).
    pub prekey_profile: Option<(PrekeyProfile, EcdhProof)>,
    /// The Prekey MAC.
    pub mac: [u8; MAC_LEN],
}

/// Reads a presence flag that must be 0 or 1.
fn read_flag(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadValue(what)),
    }
}

impl PrekeyPublication {
    /// N, the number of Prekey messages.
    pub fn n(&self) -> u8 {
        self.prekey_messages
            .as_ref()
            .map_or(0, |m| u8::try_from(m.messages.len()).unwrap_or(u8::MAX))
    }

    /// The concatenated Prekey message encodings (input of the `usage_prekey_message` KDF).
    pub fn prekey_messages_bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        if let Some(pm) = &self.prekey_messages {
            for m in &pm.messages {
                m.write(&mut w);
            }
        }
        w
    }

    /// The concatenated proofs in wire order (input of the `usage_mac_proofs` KDF).
    pub fn proofs_bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        if let Some(pm) = &self.prekey_messages {
            pm.ecdh_proof.write(&mut w);
            pm.dh_proof.write(&mut w);
        }
        if let Some((_, proof)) = &self.prekey_profile {
            proof.write(&mut w);
        }
        w
    }
}

impl Codec for PrekeyPublication {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_PUBLICATION);
        w.u8(self.n());
        w.bytes(&self.prekey_messages_bytes());
        match &self.client_profile {
            Some(cp) => {
                w.u8(1);
                cp.write(w);
            }
            None => {
                w.u8(0);
            }
        }
        match &self.prekey_profile {
            Some((pp, _)) => {
                w.u8(1);
                pp.write(w);
            }
            None => {
                w.u8(0);
            }
        }
        w.bytes(&self.proofs_bytes()).bytes(&self.mac);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_PUBLICATION)?;
        let n = r.u8("N")?;
        check_count(r, n.into(), MIN_PREKEY_MESSAGE_LEN, "N prekey messages")?;
        let mut messages = Vec::with_capacity(n.into());
        for _ in 0..n {
            messages.push(PrekeyMessage::read(r)?);
        }
        let client_profile = if read_flag(r, "K")? {
            Some(ClientProfile::read(r)?)
        } else {
            None
        };
        let prekey_profile = if read_flag(r, "J")? {
            Some(PrekeyProfile::read(r)?)
        } else {
            None
        };
        let prekey_messages = if messages.is_empty() {
            None
        } else {
            let ecdh_proof = EcdhProof::read(r)?;
            let dh_proof = DhProof::read(r)?;
            Some(PublishedPrekeyMessages {
                messages,
                ecdh_proof,
                dh_proof,
            })
        };
        let prekey_profile = match prekey_profile {
            Some(p) => Some((p, EcdhProof::read(r)?)),
            None => None,
        };
        let mac = read_mac(r, "prekey MAC")?;
        Ok(PrekeyPublication {
            prekey_messages,
            client_profile,
            prekey_profile,
            mac,
        })
    }
}

redacted_debug!(PrekeyPublication {
    prekey_messages = |s| s.prekey_messages.as_ref().map(|p| &p.messages),
    client_profile,
    prekey_profile = |s| s.prekey_profile.as_ref().map(|p| &p.0),
    proofs = |s| Hex(&s.proofs_bytes()),
    mac: hex,
});

/// The Storage Information Request message, carried inside DAKE-3
/// (otrv4-prekey-server.md §"Storage Information Request Message"), type 0x09.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageInfoRequest {
    /// The Storage Information MAC.
    pub mac: [u8; MAC_LEN],
}

impl Codec for StorageInfoRequest {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_STORAGE_INFO_REQUEST);
        w.bytes(&self.mac);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_STORAGE_INFO_REQUEST)?;
        Ok(StorageInfoRequest {
            mac: read_mac(r, "storage information MAC")?,
        })
    }
}

redacted_debug!(StorageInfoRequest { mac: hex });

/// The Storage Status message (otrv4-prekey-server.md §"Storage Status Message"), type 0x0B.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageStatus {
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// Number of Prekey messages stored.
    pub stored_prekey_messages: u32,
    /// The Status MAC.
    pub mac: [u8; MAC_LEN],
}

impl Codec for StorageStatus {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_STORAGE_STATUS);
        w.u32(self.receiver_tag.0)
            .u32(self.stored_prekey_messages)
            .bytes(&self.mac);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_STORAGE_STATUS)?;
        Ok(StorageStatus {
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            stored_prekey_messages: r.u32("stored prekey messages number")?,
            mac: read_mac(r, "status MAC")?,
        })
    }
}

redacted_debug!(StorageStatus {
    receiver_tag,
    stored_prekey_messages,
    mac: hex
});

/// Declares a `receiver tag || MAC` server response (Success, Failure).
macro_rules! tag_and_mac_message {
    ($(#[$doc:meta])* $name:ident, $ty:expr, $mac_what:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name {
            /// Receiver instance tag (0 or `>= 0x100`).
            pub receiver_tag: InstanceTag,
            /// The MAC.
            pub mac: [u8; MAC_LEN],
        }

        impl Codec for $name {
            fn write(&self, w: &mut Vec<u8>) {
                write_header(w, $ty);
                w.u32(self.receiver_tag.0).bytes(&self.mac);
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                read_header(r, $ty)?;
                Ok($name {
                    receiver_tag: r.receiver_tag("receiver instance tag")?,
                    mac: read_mac(r, $mac_what)?,
                })
            }
        }

        redacted_debug!($name { receiver_tag, mac: hex });
    };
}

tag_and_mac_message!(
    /// The Success message (otrv4-prekey-server.md §"Success Message"), type 0x06.
    Success,
    TYPE_SUCCESS,
    "success MAC"
);
tag_and_mac_message!(
    /// The Failure message (otrv4-prekey-server.md §"Failure Message"), type 0x05.
    Failure,
    TYPE_FAILURE,
    "failure MAC"
);

redacted_debug!(PublishedPrekeyMessages {
    messages,
    ecdh_proof,
    dh_proof
});
