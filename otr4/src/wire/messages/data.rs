//! The Data message (otrv4.md §"Data Message Format"), type 0x03: what a double-ratchet
//! session sends.

use alloc::vec::Vec;

use super::*;
use crate::crypto::dh::{DH_MODULUS_LEN, DhPublic};
use crate::crypto::ed448::Point;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};

/// A Data message (otrv4.md §"Data Message Format"), type 0x03.
#[derive(Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// Bitwise OR of flags ([`FLAG_IGNORE_UNREADABLE`]); unknown bits are kept.
    pub flags: u8,
    /// Previous chain message number `pn`.
    pub pn: u32,
    /// Ratchet id `i`.
    pub i: u32,
    /// Message id `j`.
    pub j: u32,
    /// The sender's ECDH public key.
    pub ecdh: Point,
    /// The sender's DH public key; `None` is encoded as an empty (length 0) MPI.
    pub dh: Option<DhPublic>,
    /// The ChaCha20 ciphertext.
    pub encrypted: Vec<u8>,
    /// The authenticator over [`DataMessage::authenticated_bytes`].
    pub mac: [u8; MAC_LEN],
    /// Old MAC keys revealed: concatenated 64-byte keys (length a multiple of 64).
    pub revealed_mac_keys: Vec<u8>,
}

impl DataMessage {
    fn write_authenticated(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_DATA);
        w.u32(self.sender_tag.0)
            .u32(self.receiver_tag.0)
            .u8(self.flags);
        w.u32(self.pn).u32(self.i).u32(self.j);
        w.point(&self.ecdh);
        match &self.dh {
            Some(dh) => {
                w.dh_public(dh);
            }
            None => {
                w.mpi(&[]);
            }
        }
        w.data(&self.encrypted);
    }

    /// The bytes the authenticator covers: from the protocol version through the
    /// encrypted message (otrv4.md §"Data Message Format", Authenticator).
    pub fn authenticated_bytes(&self) -> Vec<u8> {
        let mut w = Vec::new();
        self.write_authenticated(&mut w);
        w
    }

    /// The revealed MAC keys as 64-byte chunks.
    #[cfg(feature = "hazmat")]
    pub fn revealed_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.revealed_mac_keys.chunks_exact(MAC_LEN)
    }
}

impl Codec for DataMessage {
    fn write(&self, w: &mut Vec<u8>) {
        self.write_authenticated(w);
        w.bytes(&self.mac).data(&self.revealed_mac_keys);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DATA)?;
        let sender_tag = r.sender_tag("sender instance tag")?;
        let receiver_tag = r.receiver_tag("receiver instance tag")?;
        let flags = r.u8("flags")?;
        let pn = r.u32("previous chain message number")?;
        let i = r.u32("ratchet id")?;
        let j = r.u32("message id")?;
        let ecdh = r.point("public ECDH key")?;
        let dh_bytes = r.mpi_max("public DH key", DH_MODULUS_LEN)?;
        let dh = if dh_bytes.is_empty() {
            None
        } else {
            Some(
                DhPublic::from_be_bytes(dh_bytes)
                    .map_err(|_| DecodeError::BadDhValue("public DH key"))?,
            )
        };
        let encrypted = r.data("encrypted message")?.to_vec();
        let mac = read_mac(r, "authenticator")?;
        let revealed = r.data("revealed MAC keys")?;
        if revealed.len() % MAC_LEN != 0 {
            return Err(DecodeError::BadValue("revealed MAC keys"));
        }
        Ok(DataMessage {
            sender_tag,
            receiver_tag,
            flags,
            pn,
            i,
            j,
            ecdh,
            dh,
            encrypted,
            mac,
            revealed_mac_keys: revealed.to_vec(),
        })
    }
}

redacted_debug!(DataMessage {
    sender_tag,
    receiver_tag,
    flags,
    pn,
    i,
    j,
    ecdh,
    dh,
    encrypted_len = |s| s.encrypted.len(),
    mac: hex,
    revealed_mac_keys: hex,
});
