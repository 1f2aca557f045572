//! The Data message (otrv4.md §"Data Message Format"), type 0x03: what a double-ratchet
//! session sends.

use alloc::vec::Vec;

use super::*;
use crate::crypto::dh::{DH_MODULUS_LEN, DhPublic};
use crate::crypto::ed448::{POINT_LEN, Point};
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
        DataMessage::read_memo(r, None)
    }
}

impl DataMessage {
    /// [`Codec::read`], reusing the validation of an ECDH or DH key that `memo` saw before
    /// (the keys repeat in every message of a chain) and remembering the new ones.
    pub(crate) fn read_memo(
        r: &mut Reader<'_>,
        mut memo: Option<&mut KeyMemo>,
    ) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DATA)?;
        let sender_tag = r.sender_tag("sender instance tag")?;
        let receiver_tag = r.receiver_tag("receiver instance tag")?;
        let flags = r.u8("flags")?;
        let pn = r.u32("previous chain message number")?;
        let i = r.u32("ratchet id")?;
        let j = r.u32("message id")?;
        let ecdh_bytes = r.array::<POINT_LEN>("public ECDH key")?;
        let ecdh = match memo.as_deref_mut() {
            Some(m) => m.point(&ecdh_bytes),
            None => decode_point(&ecdh_bytes),
        }?;
        let dh_bytes = r.mpi_max("public DH key", DH_MODULUS_LEN)?;
        let dh = if dh_bytes.is_empty() {
            None
        } else {
            Some(match memo {
                Some(m) => m.dh(dh_bytes),
                None => decode_dh(dh_bytes),
            }?)
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

/// The Data message's ECDH key: a strictly validated POINT (otrv4.md §"Data Message
/// Format", §"Verifying that a point is on the curve").
fn decode_point(b: &[u8; POINT_LEN]) -> Result<Point, DecodeError> {
    Point::decode(b).map_err(|_| DecodeError::BadPoint("public ECDH key"))
}

/// The Data message's DH key: in the group (otrv4.md §"Verifying that an integer is in the
/// DH group").
fn decode_dh(b: &[u8]) -> Result<DhPublic, DecodeError> {
    DhPublic::from_be_bytes(b).map_err(|_| DecodeError::BadDhValue("public DH key"))
}

/// Most ECDH keys a [`KeyMemo`] keeps (a peer's instances each send from one chain).
const MEMO_POINTS: usize = 4;
/// Most DH keys a [`KeyMemo`] keeps.
const MEMO_DH: usize = 2;

/// The last public keys a peer's Data messages carried, with their decoded values: every
/// message of a chain repeats the sender's ECDH key (and, on every third ratchet, its DH
/// key), so decoding one again costs a comparison of its bytes instead of a point
/// decompression with a subgroup check (≈ 0.9 M instructions) or a Jacobi symbol
/// (≈ 1.2 M). Validation is a function of the bytes alone, so a remembered value is
/// exactly what decoding would return; only values that passed are kept. Bounded (least
/// recently added first out), no clock; the keys are public.
#[derive(Default)]
pub(crate) struct KeyMemo {
    points: Vec<([u8; POINT_LEN], Point)>,
    dh: Vec<(Vec<u8>, DhPublic)>,
}

impl KeyMemo {
    /// The point `b` encodes, from the memo or by [`Point::decode`].
    fn point(&mut self, b: &[u8; POINT_LEN]) -> Result<Point, DecodeError> {
        if let Some((_, p)) = self.points.iter().find(|(k, _)| k == b) {
            return Ok(*p);
        }
        let p = decode_point(b)?;
        if self.points.len() == MEMO_POINTS {
            self.points.remove(0);
        }
        self.points.push((*b, p));
        Ok(p)
    }

    /// The DH value of the MPI body `b`, from the memo or by [`DhPublic::from_be_bytes`].
    fn dh(&mut self, b: &[u8]) -> Result<DhPublic, DecodeError> {
        if let Some((_, v)) = self.dh.iter().find(|(k, _)| k.as_slice() == b) {
            return Ok(v.clone());
        }
        let v = decode_dh(b)?;
        if self.dh.len() == MEMO_DH {
            self.dh.remove(0);
        }
        self.dh.push((b.to_vec(), v.clone()));
        Ok(v)
    }

    /// How many keys it holds (points, DH values).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.points.len(), self.dh.len())
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
