//! The binary messages of the prekey-server protocol (otrv4-prekey-server.md §"DAKE-1
//! Message" … §"No Prekey Ensembles in Storage Message"), each with `encode`/`decode`.
//!
//! As in [`crate::wire::messages`], decoders check syntax and field validity only; MACs,
//! ring signatures and proofs are checked by the protocol layer. Counts read from the wire
//! are checked against the remaining input before anything is allocated.

use crate::crypto::dh::DH_MODULUS_LEN;
use crate::crypto::ed448::{Point, SCALAR_LEN, Scalar};
use crate::crypto::keys::Ed448PublicKey;
use crate::crypto::rsig::RingSignature;
use crate::instance_tag::InstanceTag;
use crate::profile::client::{ClientProfile, MIN_CLIENT_PROFILE_LEN};
use crate::profile::prekey::{PREKEY_PROFILE_LEN, PrekeyProfile};
use crate::wire::codec::{DecodeError, Reader, Writer};
use crate::wire::messages::{
    Hex, MAC_LEN, MIN_PREKEY_MESSAGE_LEN, PROTOCOL_VERSION, PrekeyMessage, decode_all, read_header,
    read_mac, read_receiver_tag, read_sender_tag, write_header,
};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

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
/// Fewest bytes of one Prekey Ensemble (client profile, prekey profile, prekey message).
pub const MIN_ENSEMBLE_LEN: usize =
    MIN_CLIENT_PROFILE_LEN + PREKEY_PROFILE_LEN + MIN_PREKEY_MESSAGE_LEN;

/// Fails unless `count` items of at least `min_len` bytes each fit in what remains.
fn check_count(
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
fn data(w: &mut Writer, d: &[u8]) {
    w.data(d);
}

/// A batch proof of knowledge of Ed448 secrets (PROOF-ECDH: 64-byte `C`, SCALAR `V`;
/// otrv4-prekey-server.md §"Data Types").
#[derive(Clone, PartialEq, Eq)]
pub struct EcdhProof {
    /// The challenge `c`.
    pub c: [u8; PROOF_C_LEN],
    /// The response `v`.
    pub v: Scalar,
}

impl EcdhProof {
    /// Reads a PROOF-ECDH; `V` must be a canonical scalar.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(EcdhProof {
            c: r.array::<PROOF_C_LEN>("ECDH proof C")?,
            v: Scalar::read(r, "ECDH proof V")?,
        })
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.c);
        self.v.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(PROOF_C_LEN + SCALAR_LEN);
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for EcdhProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdhProof")
            .field("c", &Hex(&self.c))
            .field("v", &Hex(&self.v.encode()))
            .finish()
    }
}

/// A batch proof of knowledge of DH secrets (PROOF-DH: 64-byte `C`, MPI `V`).
#[derive(Clone, PartialEq, Eq)]
pub struct DhProof {
    /// The challenge `c`.
    pub c: [u8; PROOF_C_LEN],
    /// The response `v` as a minimal big-endian magnitude, at most 384 bytes.
    pub v: Vec<u8>,
}

impl DhProof {
    /// Reads a PROOF-DH; `V` must be a minimal MPI of at most 384 bytes.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DhProof {
            c: r.array::<PROOF_C_LEN>("DH proof C")?,
            v: r.mpi_max("DH proof V", DH_MODULUS_LEN)?.to_vec(),
        })
    }

    /// Appends the encoding (leading zeros of `v` are stripped).
    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.c).mpi(&self.v);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for DhProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhProof")
            .field("c", &Hex(&self.c))
            .field("v", &Hex(&self.v))
            .finish()
    }
}

/// The Prekey Server Composite Identity (otrv4-prekey-server.md §"Prekey Server Composite
/// Identity"): the server identity (e.g. its bare JID) and its ED448-PUBKEY.
#[derive(Clone, PartialEq, Eq)]
pub struct CompositeIdentity {
    /// The server identity, UTF-8 by convention (not checked).
    pub identity: Vec<u8>,
    /// The server's long-term public key `H_s`.
    pub public_key: Ed448PublicKey,
}

impl CompositeIdentity {
    /// Reads a PREKEY-SERVER-COMP-ID.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CompositeIdentity {
            identity: r.data("server identity")?.to_vec(),
            public_key: Ed448PublicKey::read(r)?,
        })
    }

    /// Appends the encoding `DATA(identity) || ED448-PUBKEY`.
    pub fn write(&self, w: &mut Writer) {
        data(w, &self.identity);
        self.public_key.write(w);
    }

    /// The encoding (the input to the DAKE's composite-identity KDF).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for CompositeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositeIdentity")
            .field("identity", &Hex(&self.identity))
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// DAKE-1, sent by the publisher (otrv4-prekey-server.md §"DAKE-1 Message"), type 0x35.
#[derive(Clone, PartialEq, Eq)]
pub struct Dake1 {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// The publisher's Client Profile.
    pub client_profile: ClientProfile,
    /// The ephemeral ECDH key `I`.
    pub i: Point,
}

impl Dake1 {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DAKE1)?;
        Ok(Dake1 {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            client_profile: ClientProfile::parse(r)?,
            i: Point::read(r, "I")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_DAKE1);
        w.u32(self.sender_tag.0);
        self.client_profile.write(w);
        self.i.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for Dake1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dake1")
            .field("sender_tag", &self.sender_tag)
            .field("client_profile", &self.client_profile)
            .field("i", &self.i)
            .finish()
    }
}

/// DAKE-2, sent by the server (otrv4-prekey-server.md §"DAKE-2 Message"), type 0x36.
#[derive(Clone, PartialEq, Eq)]
pub struct Dake2 {
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The server's composite identity.
    pub composite_identity: CompositeIdentity,
    /// The server's ephemeral ECDH key `S`.
    pub s: Point,
    /// The ring signature `sigma`.
    pub sigma: RingSignature,
}

impl Dake2 {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DAKE2)?;
        Ok(Dake2 {
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            composite_identity: CompositeIdentity::read(r)?,
            s: Point::read(r, "S")?,
            sigma: RingSignature::read(r)?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_DAKE2);
        w.u32(self.receiver_tag.0);
        self.composite_identity.write(w);
        self.s.write(w);
        self.sigma.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for Dake2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dake2")
            .field("receiver_tag", &self.receiver_tag)
            .field("composite_identity", &self.composite_identity)
            .field("s", &self.s)
            .field("sigma", &self.sigma)
            .finish()
    }
}

/// DAKE-3, sent by the publisher with the actual request inside (otrv4-prekey-server.md
/// §"DAKE-3 Message"), type 0x37.
#[derive(Clone, PartialEq, Eq)]
pub struct Dake3 {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// The ring signature `sigma`.
    pub sigma: RingSignature,
    /// The enclosed message (a Prekey Publication or Storage Information Request); see
    /// [`Dake3::inner`].
    pub message: Vec<u8>,
}

impl Dake3 {
    /// Builds a DAKE-3 carrying `inner`.
    pub fn new(sender_tag: InstanceTag, sigma: RingSignature, inner: &Dake3Inner) -> Dake3 {
        Dake3 {
            sender_tag,
            sigma,
            message: inner.encode(),
        }
    }

    /// Reads the message from `r` (the enclosed message is kept as bytes).
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DAKE3)?;
        Ok(Dake3 {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            sigma: RingSignature::read(r)?,
            message: r.data("DAKE-3 message")?.to_vec(),
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Decodes the enclosed message.
    pub fn inner(&self) -> Result<Dake3Inner, DecodeError> {
        Dake3Inner::decode(&self.message)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_DAKE3);
        w.u32(self.sender_tag.0);
        self.sigma.write(w);
        data(w, &self.message);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for Dake3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dake3")
            .field("sender_tag", &self.sender_tag)
            .field("sigma", &self.sigma)
            .field("message", &Hex(&self.message))
            .finish()
    }
}

/// The message enclosed in a DAKE-3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dake3Inner {
    /// A Prekey Publication message (0x08), boxed: it is large.
    Publication(Box<PrekeyPublication>),
    /// A Storage Information Request message (0x09).
    StorageInfoRequest(StorageInfoRequest),
}

impl Dake3Inner {
    /// Decodes the enclosed message, dispatching on its type byte.
    pub fn decode(bytes: &[u8]) -> Result<Dake3Inner, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u16("protocol version")?;
        if v != PROTOCOL_VERSION {
            return Err(DecodeError::BadVersion(v));
        }
        match r.u8("message type")? {
            TYPE_PUBLICATION => {
                PrekeyPublication::decode(bytes).map(|p| Dake3Inner::Publication(Box::new(p)))
            }
            TYPE_STORAGE_INFO_REQUEST => {
                StorageInfoRequest::decode(bytes).map(Dake3Inner::StorageInfoRequest)
            }
            t => Err(DecodeError::BadMessageType(t)),
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Dake3Inner::Publication(m) => m.encode(),
            Dake3Inner::StorageInfoRequest(m) => m.encode(),
        }
    }
}

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
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_PUBLICATION)?;
        let n = r.u8("N")?;
        check_count(r, n.into(), MIN_PREKEY_MESSAGE_LEN, "N prekey messages")?;
        let mut messages = Vec::with_capacity(n.into());
        for _ in 0..n {
            messages.push(PrekeyMessage::read(r)?);
        }
        let client_profile = if read_flag(r, "K")? {
            Some(ClientProfile::parse(r)?)
        } else {
            None
        };
        let prekey_profile = if read_flag(r, "J")? {
            Some(PrekeyProfile::parse(r)?)
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

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// N, the number of Prekey messages.
    pub fn n(&self) -> u8 {
        self.prekey_messages
            .as_ref()
            .map_or(0, |m| u8::try_from(m.messages.len()).unwrap_or(u8::MAX))
    }

    /// The concatenated Prekey message encodings (input of the `usage_prekey_message` KDF).
    pub fn prekey_messages_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        if let Some(pm) = &self.prekey_messages {
            for m in &pm.messages {
                m.write(&mut w);
            }
        }
        w.into_bytes()
    }

    /// The concatenated proofs in wire order (input of the `usage_mac_proofs` KDF).
    pub fn proofs_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        if let Some(pm) = &self.prekey_messages {
            pm.ecdh_proof.write(&mut w);
            pm.dh_proof.write(&mut w);
        }
        if let Some((_, proof)) = &self.prekey_profile {
            proof.write(&mut w);
        }
        w.into_bytes()
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
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

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for PrekeyPublication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrekeyPublication")
            .field(
                "prekey_messages",
                &self.prekey_messages.as_ref().map(|p| &p.messages),
            )
            .field("client_profile", &self.client_profile)
            .field(
                "prekey_profile",
                &self.prekey_profile.as_ref().map(|p| &p.0),
            )
            .field("proofs", &Hex(&self.proofs_bytes()))
            .field("mac", &Hex(&self.mac))
            .finish()
    }
}

/// The Storage Information Request message, carried inside DAKE-3
/// (otrv4-prekey-server.md §"Storage Information Request Message"), type 0x09.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageInfoRequest {
    /// The Storage Information MAC.
    pub mac: [u8; MAC_LEN],
}

impl StorageInfoRequest {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_STORAGE_INFO_REQUEST)?;
        Ok(StorageInfoRequest {
            mac: read_mac(r, "storage information MAC")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_STORAGE_INFO_REQUEST);
        w.bytes(&self.mac);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(3 + MAC_LEN);
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for StorageInfoRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageInfoRequest")
            .field("mac", &Hex(&self.mac))
            .finish()
    }
}

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

impl StorageStatus {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_STORAGE_STATUS)?;
        Ok(StorageStatus {
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            stored_prekey_messages: r.u32("stored prekey messages number")?,
            mac: read_mac(r, "status MAC")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_STORAGE_STATUS);
        w.u32(self.receiver_tag.0)
            .u32(self.stored_prekey_messages)
            .bytes(&self.mac);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(11 + MAC_LEN);
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for StorageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageStatus")
            .field("receiver_tag", &self.receiver_tag)
            .field("stored_prekey_messages", &self.stored_prekey_messages)
            .field("mac", &Hex(&self.mac))
            .finish()
    }
}

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

        impl $name {
            /// Reads the message from `r`.
            pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                read_header(r, $ty)?;
                Ok($name {
                    receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
                    mac: read_mac(r, $mac_what)?,
                })
            }

            /// Decodes a complete message.
            pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                decode_all(bytes, Self::read)
            }

            /// Appends the encoding.
            pub fn write(&self, w: &mut Writer) {
                write_header(w, $ty);
                w.u32(self.receiver_tag.0).bytes(&self.mac);
            }

            /// The encoding.
            pub fn encode(&self) -> Vec<u8> {
                let mut w = Writer::with_capacity(7 + MAC_LEN);
                self.write(&mut w);
                w.into_bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("receiver_tag", &self.receiver_tag)
                    .field("mac", &Hex(&self.mac))
                    .finish()
            }
        }
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

impl EnsembleQuery {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_ENSEMBLE_QUERY)?;
        Ok(EnsembleQuery {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            identity: r.data("participant identity")?.to_vec(),
            versions: r.data("versions")?.to_vec(),
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_ENSEMBLE_QUERY);
        w.u32(self.sender_tag.0);
        data(w, &self.identity);
        data(w, &self.versions);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for EnsembleQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsembleQuery")
            .field("sender_tag", &self.sender_tag)
            .field("identity", &Hex(&self.identity))
            .field("versions", &Hex(&self.versions))
            .finish()
    }
}

/// One Prekey Ensemble: a Client Profile, a Prekey Profile and a Prekey message
/// (otrv4.md §"Publishing Prekey Ensembles").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrekeyEnsemble {
    /// The owner's Client Profile.
    pub client_profile: ClientProfile,
    /// The owner's Prekey Profile.
    pub prekey_profile: PrekeyProfile,
    /// One Prekey message.
    pub prekey_message: PrekeyMessage,
}

impl PrekeyEnsemble {
    /// Reads an ensemble.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PrekeyEnsemble {
            client_profile: ClientProfile::parse(r)?,
            prekey_profile: PrekeyProfile::parse(r)?,
            prekey_message: PrekeyMessage::read(r)?,
        })
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        self.client_profile.write(w);
        self.prekey_profile.write(w);
        self.prekey_message.write(w);
    }
}

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

    /// The ensembles (never empty).
    pub fn ensembles(&self) -> &[PrekeyEnsemble] {
        &self.ensembles
    }

    /// Unwraps the ensembles.
    pub fn into_ensembles(self) -> Vec<PrekeyEnsemble> {
        self.ensembles
    }

    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_ENSEMBLE_RETRIEVAL)?;
        let receiver_tag = read_receiver_tag(r, "receiver instance tag")?;
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

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_ENSEMBLE_RETRIEVAL);
        w.u32(self.receiver_tag.0);
        data(w, &self.identity);
        w.u32(u32::try_from(self.ensembles.len()).unwrap_or(u32::MAX));
        for e in &self.ensembles {
            e.write(w);
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for EnsembleRetrieval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsembleRetrieval")
            .field("receiver_tag", &self.receiver_tag)
            .field("identity", &Hex(&self.identity))
            .field("ensembles", &self.ensembles)
            .finish()
    }
}

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
pub const NO_PREKEY_ENSEMBLES_TEXT: &[u8] = b"No Prekey Messages available for this identity";

impl NoPrekeyEnsembles {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_NO_PREKEY_ENSEMBLES)?;
        Ok(NoPrekeyEnsembles {
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            identity: r.data("participant identity")?.to_vec(),
            message: r.data("no prekey messages message")?.to_vec(),
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_NO_PREKEY_ENSEMBLES);
        w.u32(self.receiver_tag.0);
        data(w, &self.identity);
        data(w, &self.message);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for NoPrekeyEnsembles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoPrekeyEnsembles")
            .field("receiver_tag", &self.receiver_tag)
            .field("identity", &Hex(&self.identity))
            .field("message", &Hex(&self.message))
            .finish()
    }
}

impl fmt::Debug for PublishedPrekeyMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishedPrekeyMessages")
            .field("messages", &self.messages)
            .field("ecdh_proof", &self.ecdh_proof)
            .field("dh_proof", &self.dh_proof)
            .finish()
    }
}

/// Any prekey-server message that travels on its own (everything except the two messages
/// enclosed in DAKE-3, see [`Dake3Inner`]), dispatched on its type byte.
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
    /// Decodes a complete message: checks the version (exactly 0x0004), then dispatches on
    /// the type byte.
    pub fn decode(bytes: &[u8]) -> Result<PrekeyServerMessage, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u16("protocol version")?;
        if v != PROTOCOL_VERSION {
            return Err(DecodeError::BadVersion(v));
        }
        use PrekeyServerMessage as M;
        match r.u8("message type")? {
            TYPE_DAKE1 => Dake1::decode(bytes).map(M::Dake1),
            TYPE_DAKE2 => Dake2::decode(bytes).map(M::Dake2),
            TYPE_DAKE3 => Dake3::decode(bytes).map(M::Dake3),
            TYPE_STORAGE_STATUS => StorageStatus::decode(bytes).map(M::StorageStatus),
            TYPE_SUCCESS => Success::decode(bytes).map(M::Success),
            TYPE_FAILURE => Failure::decode(bytes).map(M::Failure),
            TYPE_ENSEMBLE_QUERY => EnsembleQuery::decode(bytes).map(M::EnsembleQuery),
            TYPE_ENSEMBLE_RETRIEVAL => EnsembleRetrieval::decode(bytes).map(M::EnsembleRetrieval),
            TYPE_NO_PREKEY_ENSEMBLES => NoPrekeyEnsembles::decode(bytes).map(M::NoPrekeyEnsembles),
            t => Err(DecodeError::BadMessageType(t)),
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            PrekeyServerMessage::Dake1(m) => m.encode(),
            PrekeyServerMessage::Dake2(m) => m.encode(),
            PrekeyServerMessage::Dake3(m) => m.encode(),
            PrekeyServerMessage::StorageStatus(m) => m.encode(),
            PrekeyServerMessage::Success(m) => m.encode(),
            PrekeyServerMessage::Failure(m) => m.encode(),
            PrekeyServerMessage::EnsembleQuery(m) => m.encode(),
            PrekeyServerMessage::EnsembleRetrieval(m) => m.encode(),
            PrekeyServerMessage::NoPrekeyEnsembles(m) => m.encode(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::testutil::*;
    use proptest::prelude::*;

    const S: InstanceTag = InstanceTag(0x0a0b_0c0d);

    fn sender_tag() -> impl Strategy<Value = InstanceTag> {
        (0x100u32..=u32::MAX).prop_map(InstanceTag)
    }

    fn receiver_tag() -> impl Strategy<Value = InstanceTag> {
        prop_oneof![Just(InstanceTag(0)), sender_tag()]
    }

    fn ecdh_proof(seed: u64) -> EcdhProof {
        EcdhProof {
            c: [seed as u8; PROOF_C_LEN],
            v: scalar(&mut rng(seed)),
        }
    }

    fn dh_proof(seed: u64, len: usize) -> DhProof {
        let mut v = alloc::vec![seed as u8 | 1; len];
        if let Some(f) = v.first_mut() {
            *f = 0x80;
        }
        DhProof {
            c: [!(seed as u8); PROOF_C_LEN],
            v,
        }
    }

    fn pm(seed: u64, tag: InstanceTag) -> PrekeyMessage {
        PrekeyMessage {
            id: seed as u32,
            owner_tag: tag,
            y: point(seed),
            b: dh((seed % 3000) as u32 + 1),
        }
    }

    fn publication(
        seed: u64,
        tag: InstanceTag,
        n: usize,
        k: bool,
        j: bool,
        dh_len: usize,
    ) -> PrekeyPublication {
        let prekey_messages = (n > 0).then(|| {
            PublishedPrekeyMessages::new(
                (0..n as u64).map(|i| pm(seed + i, tag)).collect(),
                ecdh_proof(seed),
                dh_proof(seed, dh_len),
            )
            .unwrap()
        });
        PrekeyPublication {
            prekey_messages,
            client_profile: k.then(|| client_profile(seed, tag)),
            prekey_profile: j.then(|| (prekey_profile(seed, tag), ecdh_proof(seed + 1))),
            mac: [seed as u8; MAC_LEN],
        }
    }

    fn ensemble(seed: u64, tag: InstanceTag) -> PrekeyEnsemble {
        PrekeyEnsemble {
            client_profile: client_profile(seed, tag),
            prekey_profile: prekey_profile(seed, tag),
            prekey_message: pm(seed, tag),
        }
    }

    fn round_trip<T: PartialEq + fmt::Debug>(
        x: &T,
        encode: impl Fn(&T) -> Vec<u8>,
        decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
    ) -> Vec<u8> {
        let b = encode(x);
        let y = decode(&b).unwrap();
        assert_eq!(&y, x);
        assert_eq!(encode(&y), b);
        b
    }

    fn server_round_trip<T: PartialEq + fmt::Debug>(
        x: &T,
        encode: impl Fn(&T) -> Vec<u8>,
        decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
        wrap: impl Fn(T) -> PrekeyServerMessage,
    ) {
        let b = round_trip(x, encode, &decode);
        let m = PrekeyServerMessage::decode(&b).unwrap();
        assert_eq!(m.encode(), b);
        assert_eq!(m, wrap(decode(&b).unwrap()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        #[test]
        fn dake1_round_trips(seed in any::<u64>(), s in sender_tag()) {
            let m = Dake1 { sender_tag: s, client_profile: client_profile(seed, s), i: point(seed + 1) };
            server_round_trip(&m, Dake1::encode, Dake1::decode, PrekeyServerMessage::Dake1);
        }

        #[test]
        fn dake2_round_trips(seed in any::<u64>(), r in receiver_tag(), id in proptest::collection::vec(any::<u8>(), 0..40)) {
            let m = Dake2 {
                receiver_tag: r,
                composite_identity: CompositeIdentity { identity: id, public_key: Ed448PublicKey(point(seed)) },
                s: point(seed + 1),
                sigma: ring_sig(seed),
            };
            server_round_trip(&m, Dake2::encode, Dake2::decode, PrekeyServerMessage::Dake2);
        }

        #[test]
        fn dake3_round_trips(seed in any::<u64>(), s in sender_tag(), n in 0usize..3, k in any::<bool>(), j in any::<bool>(), dh_len in 1usize..=384, mac in any::<[u8; 8]>()) {
            let inner = Dake3Inner::Publication(Box::new(publication(seed, s, n, k, j, dh_len)));
            let m = Dake3::new(s, ring_sig(seed), &inner);
            server_round_trip(&m, Dake3::encode, Dake3::decode, PrekeyServerMessage::Dake3);
            prop_assert_eq!(m.inner().unwrap(), inner);
            let mut full = [0u8; MAC_LEN];
            full[..8].copy_from_slice(&mac);
            let inner = Dake3Inner::StorageInfoRequest(StorageInfoRequest { mac: full });
            let m = Dake3::new(s, ring_sig(seed), &inner);
            prop_assert_eq!(Dake3::decode(&m.encode()).unwrap().inner().unwrap(), inner);
        }

        #[test]
        fn publication_round_trips(seed in any::<u64>(), s in sender_tag(), n in 0usize..4, k in any::<bool>(), j in any::<bool>(), dh_len in 1usize..=384) {
            let p = publication(seed, s, n, k, j, dh_len);
            let b = round_trip(&p, PrekeyPublication::encode, PrekeyPublication::decode);
            prop_assert_eq!(p.n() as usize, n);
            prop_assert_eq!(Dake3Inner::decode(&b).unwrap(), Dake3Inner::Publication(Box::new(p)));
        }

        #[test]
        fn simple_server_messages_round_trip(r in receiver_tag(), s in sender_tag(), count in any::<u32>(), mac in any::<u8>(),
                                            id in proptest::collection::vec(any::<u8>(), 0..40), v in proptest::collection::vec(any::<u8>(), 0..6)) {
            let mac = [mac; MAC_LEN];
            server_round_trip(&StorageStatus { receiver_tag: r, stored_prekey_messages: count, mac }, StorageStatus::encode, StorageStatus::decode, PrekeyServerMessage::StorageStatus);
            server_round_trip(&Success { receiver_tag: r, mac }, Success::encode, Success::decode, PrekeyServerMessage::Success);
            server_round_trip(&Failure { receiver_tag: r, mac }, Failure::encode, Failure::decode, PrekeyServerMessage::Failure);
            server_round_trip(&EnsembleQuery { sender_tag: s, identity: id.clone(), versions: v.clone() }, EnsembleQuery::encode, EnsembleQuery::decode, PrekeyServerMessage::EnsembleQuery);
            server_round_trip(&NoPrekeyEnsembles { receiver_tag: r, identity: id, message: v }, NoPrekeyEnsembles::encode, NoPrekeyEnsembles::decode, PrekeyServerMessage::NoPrekeyEnsembles);
            round_trip(&StorageInfoRequest { mac }, StorageInfoRequest::encode, StorageInfoRequest::decode);
        }

        #[test]
        fn ensemble_retrieval_round_trips(seed in any::<u64>(), r in receiver_tag(), tag in sender_tag(), l in 1usize..3) {
            let m = EnsembleRetrieval::new(r, b"alice@example.org".to_vec(), (0..l as u64).map(|i| ensemble(seed + i, tag)).collect()).unwrap();
            server_round_trip(&m, EnsembleRetrieval::encode, EnsembleRetrieval::decode, PrekeyServerMessage::EnsembleRetrieval);
            prop_assert_eq!(m.ensembles().len(), l);
        }
    }

    fn basic_checks<T: fmt::Debug>(
        b: &[u8],
        decode: impl Fn(&[u8]) -> Result<T, DecodeError> + Copy,
    ) {
        assert_header_checked(b, decode);
        assert_trailing_rejected(b, decode);
        assert_truncations_fail(b, decode);
    }

    #[test]
    fn fixed_layouts() {
        let mac = [0xee; MAC_LEN];
        let b = StorageStatus {
            receiver_tag: S,
            stored_prekey_messages: 0x0102_0304,
            mac,
        }
        .encode();
        assert_eq!(&b[..11], &[0, 4, 0x0b, 0x0a, 0x0b, 0x0c, 0x0d, 1, 2, 3, 4]);
        assert_eq!(&b[11..], &mac);
        basic_checks(&b, StorageStatus::decode);
        assert_bad_tag(&b, 3, 0xff, StorageStatus::decode);

        for (ty, b) in [
            (
                TYPE_SUCCESS,
                Success {
                    receiver_tag: S,
                    mac,
                }
                .encode(),
            ),
            (
                TYPE_FAILURE,
                Failure {
                    receiver_tag: S,
                    mac,
                }
                .encode(),
            ),
        ] {
            assert_eq!(&b[..7], &[0, 4, ty, 0x0a, 0x0b, 0x0c, 0x0d]);
            assert_eq!(b.len(), 7 + MAC_LEN);
        }
        let b = Success {
            receiver_tag: S,
            mac,
        }
        .encode();
        basic_checks(&b, Success::decode);
        assert_bad_tag(&b, 3, 0x01, Success::decode);
        let b = Failure {
            receiver_tag: InstanceTag(0),
            mac,
        }
        .encode();
        basic_checks(&b, Failure::decode);
        assert_bad_tag(&b, 3, 0xfe, Failure::decode);

        let b = StorageInfoRequest { mac }.encode();
        assert_eq!(&b[..3], &[0, 4, 0x09]);
        assert_eq!(b.len(), 3 + MAC_LEN);
        basic_checks(&b, StorageInfoRequest::decode);

        let b = EnsembleQuery {
            sender_tag: S,
            identity: b"bob".to_vec(),
            versions: b"4".to_vec(),
        }
        .encode();
        assert_eq!(
            b,
            [
                0, 4, 0x10, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 3, b'b', b'o', b'b', 0, 0, 0, 1, b'4'
            ]
        );
        basic_checks(&b, EnsembleQuery::decode);
        assert_bad_tag(&b, 3, 0, EnsembleQuery::decode);
        let over = splice(&b, 7, 4, &[0, 0, 0, 100]);
        assert!(matches!(
            EnsembleQuery::decode(&over).unwrap_err(),
            DecodeError::LengthTooLarge { .. }
        ));

        let nope = NoPrekeyEnsembles {
            receiver_tag: S,
            identity: b"bob".to_vec(),
            message: NO_PREKEY_ENSEMBLES_TEXT.to_vec(),
        };
        let b = nope.encode();
        assert_eq!(
            &b[..14],
            &[
                0, 4, 0x0e, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 3, b'b', b'o', b'b'
            ]
        );
        basic_checks(&b, NoPrekeyEnsembles::decode);
        assert_bad_tag(&b, 3, 0x10, NoPrekeyEnsembles::decode);
        let over = splice(&b, 14, 4, &[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            NoPrekeyEnsembles::decode(&over).unwrap_err(),
            DecodeError::LengthTooLarge { .. }
        ));
    }

    #[test]
    fn dake_messages_malformed() {
        let d1 = Dake1 {
            sender_tag: S,
            client_profile: client_profile(1, S),
            i: point(2),
        };
        let b = d1.encode();
        basic_checks(&b, Dake1::decode);
        assert_bad_tag(&b, 3, 0xff, Dake1::decode);
        assert_bad_point(&b, b.len() - 57, Dake1::decode);
        let b2 = splice(&b, 7 + 4, 2, &[0, 0x20]);
        assert_eq!(
            Dake1::decode(&b2).unwrap_err(),
            DecodeError::BadProfile("unknown field type")
        );

        let d2 = Dake2 {
            receiver_tag: S,
            composite_identity: CompositeIdentity {
                identity: b"prekey.example.org".to_vec(),
                public_key: Ed448PublicKey(point(3)),
            },
            s: point(4),
            sigma: ring_sig(5),
        };
        let b = d2.encode();
        basic_checks(&b, Dake2::decode);
        assert_bad_tag(&b, 3, 0xff, Dake2::decode);
        let key_at = 7 + 4 + 18;
        assert_eq!(&b[key_at..key_at + 2], &[0x10, 0x00]);
        assert_eq!(
            d2.composite_identity.encode(),
            b[7..key_at + 2 + 57].to_vec()
        );
        let b2 = splice(&b, key_at, 2, &[0x11, 0x00]);
        assert_eq!(
            Dake2::decode(&b2).unwrap_err(),
            DecodeError::BadKeyType {
                what: "ED448-PUBKEY",
                found: 0x0011
            }
        );
        assert_bad_point(&b, key_at + 2, Dake2::decode);
        assert_bad_point(&b, key_at + 2 + 57, Dake2::decode);
        let over = splice(&b, 7, 4, &[0x10, 0, 0, 0]);
        assert!(matches!(
            Dake2::decode(&over).unwrap_err(),
            DecodeError::LengthTooLarge { .. }
        ));
        let b2 = splice(&b, b.len() - 57, 57, &[0xff; 57]);
        assert!(matches!(
            Dake2::decode(&b2).unwrap_err(),
            DecodeError::BadScalar(_)
        ));

        let d3 = Dake3::new(
            S,
            ring_sig(6),
            &Dake3Inner::StorageInfoRequest(StorageInfoRequest { mac: [1; MAC_LEN] }),
        );
        let b = d3.encode();
        basic_checks(&b, Dake3::decode);
        assert_bad_tag(&b, 3, 0xff, Dake3::decode);
        let data_at = 7 + 6 * 57;
        let over = splice(&b, data_at, 4, &[0, 0, 1, 0]);
        assert!(matches!(
            Dake3::decode(&over).unwrap_err(),
            DecodeError::LengthTooLarge { .. }
        ));
        // The enclosed message is decoded lazily and checked on its own.
        let bad_inner = Dake3 {
            sender_tag: S,
            sigma: ring_sig(6),
            message: alloc::vec![0, 4, 0x0b],
        };
        let back = Dake3::decode(&bad_inner.encode()).unwrap();
        assert_eq!(back.inner().unwrap_err(), DecodeError::BadMessageType(0x0b));
        assert_eq!(
            Dake3Inner::decode(&[0, 5, 8]).unwrap_err(),
            DecodeError::BadVersion(5)
        );
        assert!(matches!(
            Dake3Inner::decode(&[0, 4]).unwrap_err(),
            DecodeError::Truncated { .. }
        ));
    }

    #[test]
    fn publication_malformed() {
        let p = publication(1, S, 2, true, true, 3);
        let b = p.encode();
        basic_checks(&b, PrekeyPublication::decode);
        // Layout: header, N, two prekey messages, K, client profile, J, prekey profile, proofs, MAC.
        assert_eq!(b[3], 2);
        let pm_len = p.prekey_messages_bytes().len();
        assert_eq!(pm_len, 2 * MIN_PREKEY_MESSAGE_LEN); // B = 2^2 and 2^3: one byte each
        let k_at = 4 + pm_len;
        assert_eq!(b[k_at], 1);
        let cp_len = client_profile(1, S).serialize().len();
        let j_at = k_at + 1 + cp_len;
        assert_eq!(b[j_at], 1);
        let proofs_at = j_at + 1 + PREKEY_PROFILE_LEN;
        assert_eq!(&b[proofs_at..b.len() - MAC_LEN], &p.proofs_bytes()[..]);
        assert_eq!(p.proofs_bytes().len(), (64 + 57) + (64 + 4 + 3) + (64 + 57));
        // K and J must be 0 or 1.
        assert_eq!(
            PrekeyPublication::decode(&splice(&b, k_at, 1, &[2])).unwrap_err(),
            DecodeError::BadValue("K")
        );
        assert_eq!(
            PrekeyPublication::decode(&splice(&b, j_at, 1, &[0xff])).unwrap_err(),
            DecodeError::BadValue("J")
        );
        // N larger than the input could hold: rejected before allocating.
        let lie = splice(&b, 3, 1, &[255]);
        assert!(matches!(
            PrekeyPublication::decode(&lie).unwrap_err(),
            DecodeError::LengthTooLarge {
                what: "N prekey messages",
                len: 255,
                ..
            }
        ));
        // Bad point and DH value inside an enclosed prekey message.
        assert_bad_point(&b, 4 + 11, PrekeyPublication::decode);
        assert_bad_dh(&b, 4 + 11 + 57, 1, PrekeyPublication::decode);
        // A bad prekey-message owner tag.
        assert_bad_tag(&b, 4 + 7, 0x50, PrekeyPublication::decode);
        // A non-canonical proof scalar; an oversized / non-minimal DH proof V.
        let v_at = proofs_at + 64;
        let b2 = splice(&b, v_at, 57, &[0xff; 57]);
        assert_eq!(
            PrekeyPublication::decode(&b2).unwrap_err(),
            DecodeError::BadScalar("ECDH proof V")
        );
        let dhv_at = v_at + 57 + 64;
        let b2 = splice(&b, dhv_at, 7, &[0, 0, 0, 2, 0, 1]);
        assert_eq!(
            PrekeyPublication::decode(&b2).unwrap_err(),
            DecodeError::NonMinimalMpi
        );
        let mut huge = alloc::vec![0, 0, 1, 0x81];
        huge.extend(core::iter::repeat_n(1u8, 385));
        let b2 = splice(&b, dhv_at, 7, &huge);
        assert!(matches!(
            PrekeyPublication::decode(&b2).unwrap_err(),
            DecodeError::LengthTooLarge {
                what: "DH proof V",
                ..
            }
        ));

        // Empty publication: N = K = J = 0, no proofs, just the MAC.
        let empty = publication(2, S, 0, false, false, 1);
        let b = empty.encode();
        assert_eq!(&b[..6], &[0, 4, 0x08, 0, 0, 0]);
        assert_eq!(b.len(), 6 + MAC_LEN);
        basic_checks(&b, PrekeyPublication::decode);
        // Only a prekey profile: its proof follows it directly.
        let pp = publication(3, S, 0, false, true, 1);
        assert_eq!(
            pp.encode().len(),
            6 + PREKEY_PROFILE_LEN + 64 + 57 + MAC_LEN
        );

        assert_eq!(
            PublishedPrekeyMessages::new(Vec::new(), ecdh_proof(1), dh_proof(1, 1)).unwrap_err(),
            DecodeError::BadValue("number of published prekey messages")
        );
        let too_many: Vec<_> = (0..256).map(|_| pm(5, S)).collect();
        assert!(PublishedPrekeyMessages::new(too_many, ecdh_proof(1), dh_proof(1, 1)).is_err());
    }

    #[test]
    fn ensemble_retrieval_malformed() {
        let m = EnsembleRetrieval::new(S, b"bob".to_vec(), alloc::vec![ensemble(1, S)]).unwrap();
        let b = m.encode();
        basic_checks(&b, EnsembleRetrieval::decode);
        assert_bad_tag(&b, 3, 0x80, EnsembleRetrieval::decode);
        let l_at = 7 + 4 + 3;
        assert_eq!(&b[l_at..l_at + 4], &[0, 0, 0, 1]);
        assert_eq!(
            EnsembleRetrieval::decode(&splice(&b, l_at, 4, &[0; 4])).unwrap_err(),
            DecodeError::BadValue("L")
        );
        let lie = splice(&b, l_at, 4, &[0xff; 4]);
        assert!(matches!(
            EnsembleRetrieval::decode(&lie).unwrap_err(),
            DecodeError::LengthTooLarge {
                what: "L prekey ensembles",
                len: 0xffff_ffff,
                limit: 1
            }
        ));
        let two = splice(&b, l_at, 4, &[0, 0, 0, 2]);
        assert!(EnsembleRetrieval::decode(&two).is_err());
        // A bad point in the prekey message of the ensemble.
        let pm_at = b.len() - MIN_PREKEY_MESSAGE_LEN;
        assert_bad_point(&b, pm_at + 11, EnsembleRetrieval::decode);
        assert_bad_dh(&b, pm_at + 11 + 57, 1, EnsembleRetrieval::decode);
        // Bad shared prekey in the prekey profile.
        let pp_at = pm_at - PREKEY_PROFILE_LEN;
        assert_bad_point(&b, pp_at + 14, EnsembleRetrieval::decode);
        assert_eq!(
            EnsembleRetrieval::new(S, Vec::new(), Vec::new()).unwrap_err(),
            DecodeError::BadValue("L")
        );
    }

    #[test]
    fn server_dispatch_rejects_unknown_types_and_versions() {
        assert_eq!(
            PrekeyServerMessage::decode(&[0, 4, 0x08]).unwrap_err(),
            DecodeError::BadMessageType(0x08)
        );
        assert_eq!(
            PrekeyServerMessage::decode(&[0, 4, 0x03]).unwrap_err(),
            DecodeError::BadMessageType(0x03)
        );
        assert_eq!(
            PrekeyServerMessage::decode(&[0, 5, 0x35]).unwrap_err(),
            DecodeError::BadVersion(5)
        );
        assert!(matches!(
            PrekeyServerMessage::decode(&[0]).unwrap_err(),
            DecodeError::Truncated { .. }
        ));
    }
}
