//! The binary OTRv4 conversation messages (otrv4.md §"Identity Message" … §"Data Message
//! Format"): one type per message with `encode`/`decode`, and [`Message`] to dispatch.
//!
//! Decoders check syntax and field validity only (version, type, instance-tag ranges,
//! strict points, DH group membership, bounded lengths, no trailing bytes). Whether a
//! receiver tag matches *our* tag, profiles validate, or MACs and signatures verify is the
//! protocol layer's job.

use crate::crypto::dh::{DH_MODULUS_LEN, DhPublic};
use crate::crypto::ed448::{POINT_LEN, Point};
use crate::crypto::rsig::RingSignature;
use crate::instance_tag::InstanceTag;
use crate::profile::client::ClientProfile;
use crate::wire::codec::{DecodeError, Reader, Writer};
use alloc::vec::Vec;
use core::fmt;

/// The protocol version every OTRv4 message carries.
pub const PROTOCOL_VERSION: u16 = 0x0004;
/// Message type of the Identity message.
pub const TYPE_IDENTITY: u8 = 0x35;
/// Message type of the Auth-R message.
pub const TYPE_AUTH_R: u8 = 0x36;
/// Message type of the Auth-I message.
pub const TYPE_AUTH_I: u8 = 0x37;
/// Message type of the Non-Interactive-Auth message.
pub const TYPE_NON_INTERACTIVE_AUTH: u8 = 0x0D;
/// Message type of the Prekey message.
pub const TYPE_PREKEY: u8 = 0x0F;
/// Message type of the Data message.
pub const TYPE_DATA: u8 = 0x03;

/// Bytes in a MAC.
pub const MAC_LEN: usize = 64;
/// The IGNORE_UNREADABLE data-message flag (otrv4.md §"Data Message Format").
pub const FLAG_IGNORE_UNREADABLE: u8 = 0x01;
/// Bytes in an encoded RING-SIG (six SCALARs).
pub const RING_SIG_LEN: usize = 6 * crate::crypto::ed448::SCALAR_LEN;
/// Fewest bytes of a valid Prekey message: header, id, tag, `Y` and a one-byte MPI `B`.
pub const MIN_PREKEY_MESSAGE_LEN: usize = 2 + 1 + 4 + 4 + POINT_LEN + 4 + 1;

// ---------------------------------------------------------------------------------------
// Shared field helpers (also used by the profile and prekey-server modules).

/// Debug-prints bytes as lowercase hex.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Debug-prints owned bytes as lowercase hex.
pub(crate) struct HexVec(pub(crate) Vec<u8>);

impl fmt::Debug for HexVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// Reads the protocol version and the message type; both must match.
pub(crate) fn read_header(r: &mut Reader<'_>, msg_type: u8) -> Result<(), DecodeError> {
    let v = r.u16("protocol version")?;
    if v != PROTOCOL_VERSION {
        return Err(DecodeError::BadVersion(v));
    }
    let t = r.u8("message type")?;
    if t != msg_type {
        return Err(DecodeError::BadMessageType(t));
    }
    Ok(())
}

/// Writes the protocol version and the message type.
pub(crate) fn write_header(w: &mut Writer, msg_type: u8) {
    w.u16(PROTOCOL_VERSION).u8(msg_type);
}

/// Reads a sender instance tag, which must be `>= 0x100` (otrv4.md §"Instance Tags").
pub(crate) fn read_sender_tag(r: &mut Reader<'_>, what: &'static str) -> Result<InstanceTag, DecodeError> {
    let t = InstanceTag(r.u32(what)?);
    if t.is_valid_sender() { Ok(t) } else { Err(DecodeError::BadInstanceTag(t.0)) }
}

/// Reads a receiver instance tag, which must be 0 or `>= 0x100`.
pub(crate) fn read_receiver_tag(r: &mut Reader<'_>, what: &'static str) -> Result<InstanceTag, DecodeError> {
    let t = InstanceTag(r.u32(what)?);
    if t.is_valid_receiver() { Ok(t) } else { Err(DecodeError::BadInstanceTag(t.0)) }
}

/// Reads a public key with its 2-byte little-endian type prefix (ED448-PUBKEY 0x0010,
/// ED448-SHARED-PREKEY 0x0011, ED448-FORGING-KEY 0x0012) and strictly decodes the point.
pub(crate) fn read_typed_point(r: &mut Reader<'_>, key_type: u16, what: &'static str) -> Result<Point, DecodeError> {
    let found = r.u16_le(what)?;
    if found != key_type {
        return Err(DecodeError::BadKeyType { what, found });
    }
    Point::read(r, what)
}

/// Writes a public key with its little-endian type prefix.
pub(crate) fn write_typed_point(w: &mut Writer, key_type: u16, p: &Point) {
    w.u16_le(key_type);
    p.write(w);
}

/// Reads a 64-byte MAC.
pub(crate) fn read_mac(r: &mut Reader<'_>, what: &'static str) -> Result<[u8; MAC_LEN], DecodeError> {
    r.array::<MAC_LEN>(what)
}

/// The RING-SIG encoding (for `Debug` and equality).
pub(crate) fn ring_sig_bytes(s: &RingSignature) -> Vec<u8> {
    let mut w = Writer::with_capacity(RING_SIG_LEN);
    s.write(&mut w);
    w.into_bytes()
}

/// Runs `f` over the whole input and rejects trailing bytes.
pub(crate) fn decode_all<'a, T>(
    bytes: &'a [u8],
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = f(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// Implements `PartialEq`/`Eq` by comparing encodings: every decoder is strict, so two
/// values are equal exactly when they encode to the same bytes.
macro_rules! eq_by_encoding {
    ($($t:ty),* $(,)?) => {$(
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.encode() == other.encode()
            }
        }
        impl Eq for $t {}
    )*};
}
pub(crate) use eq_by_encoding;

// ---------------------------------------------------------------------------------------

/// The Identity message, first message of the interactive DAKE (otrv4.md §"Identity
/// Message"), type 0x35.
#[derive(Clone)]
pub struct IdentityMessage {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// Receiver instance tag (0 or `>= 0x100`; often 0).
    pub receiver_tag: InstanceTag,
    /// The sender's Client Profile.
    pub client_profile: ClientProfile,
    /// The ephemeral ECDH public key `Y`.
    pub y: Point,
    /// The ephemeral DH public key `B`.
    pub b: DhPublic,
    /// `our_ecdh_first.public`, for initialising the double ratchet.
    pub our_ecdh_first: Point,
    /// `our_dh_first.public`, for initialising the double ratchet.
    pub our_dh_first: DhPublic,
}

impl IdentityMessage {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_IDENTITY)?;
        Ok(IdentityMessage {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            client_profile: ClientProfile::parse(r)?,
            y: Point::read(r, "Y")?,
            b: DhPublic::read(r, "B")?,
            our_ecdh_first: Point::read(r, "our_ecdh_first")?,
            our_dh_first: DhPublic::read(r, "our_dh_first")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_IDENTITY);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.client_profile.write(w);
        self.y.write(w);
        self.b.write(w);
        self.our_ecdh_first.write(w);
        self.our_dh_first.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for IdentityMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityMessage")
            .field("sender_tag", &self.sender_tag)
            .field("receiver_tag", &self.receiver_tag)
            .field("client_profile", &self.client_profile)
            .field("y", &Hex(&self.y.encode()))
            .field("b", &Hex(&self.b.to_be_bytes()))
            .field("our_ecdh_first", &Hex(&self.our_ecdh_first.encode()))
            .field("our_dh_first", &Hex(&self.our_dh_first.to_be_bytes()))
            .finish()
    }
}

/// The Auth-R message, second message of the interactive DAKE (otrv4.md §"Auth-R
/// Message"), type 0x36.
#[derive(Clone)]
pub struct AuthR {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The sender's Client Profile.
    pub client_profile: ClientProfile,
    /// The ephemeral ECDH public key `X`.
    pub x: Point,
    /// The ephemeral DH public key `A`.
    pub a: DhPublic,
    /// The ring signature `sigma`.
    pub sigma: RingSignature,
    /// `our_ecdh_first.public`.
    pub our_ecdh_first: Point,
    /// `our_dh_first.public`.
    pub our_dh_first: DhPublic,
}

impl AuthR {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_AUTH_R)?;
        Ok(AuthR {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            client_profile: ClientProfile::parse(r)?,
            x: Point::read(r, "X")?,
            a: DhPublic::read(r, "A")?,
            sigma: RingSignature::read(r)?,
            our_ecdh_first: Point::read(r, "our_ecdh_first")?,
            our_dh_first: DhPublic::read(r, "our_dh_first")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_AUTH_R);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.client_profile.write(w);
        self.x.write(w);
        self.a.write(w);
        self.sigma.write(w);
        self.our_ecdh_first.write(w);
        self.our_dh_first.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for AuthR {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthR")
            .field("sender_tag", &self.sender_tag)
            .field("receiver_tag", &self.receiver_tag)
            .field("client_profile", &self.client_profile)
            .field("x", &Hex(&self.x.encode()))
            .field("a", &Hex(&self.a.to_be_bytes()))
            .field("sigma", &Hex(&ring_sig_bytes(&self.sigma)))
            .field("our_ecdh_first", &Hex(&self.our_ecdh_first.encode()))
            .field("our_dh_first", &Hex(&self.our_dh_first.to_be_bytes()))
            .finish()
    }
}

/// The Auth-I message, last message of the interactive DAKE (otrv4.md §"Auth-I Message"),
/// type 0x37.
#[derive(Clone)]
pub struct AuthI {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The ring signature `sigma`.
    pub sigma: RingSignature,
}

impl AuthI {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_AUTH_I)?;
        Ok(AuthI {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            sigma: RingSignature::read(r)?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_AUTH_I);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.sigma.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(11 + RING_SIG_LEN);
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for AuthI {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthI")
            .field("sender_tag", &self.sender_tag)
            .field("receiver_tag", &self.receiver_tag)
            .field("sigma", &Hex(&ring_sig_bytes(&self.sigma)))
            .finish()
    }
}

/// The Non-Interactive-Auth message, which completes the non-interactive DAKE
/// (otrv4.md §"Non-Interactive-Auth Message"), type 0x0D.
#[derive(Clone)]
pub struct NonInteractiveAuth {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The sender's Client Profile.
    pub client_profile: ClientProfile,
    /// The ephemeral ECDH public key `X`.
    pub x: Point,
    /// The ephemeral DH public key `A`.
    pub a: DhPublic,
    /// The ring signature `sigma`.
    pub sigma: RingSignature,
    /// The identifier of the Prekey message used.
    pub prekey_message_id: u32,
    /// The Auth MAC over `t`.
    pub auth_mac: [u8; MAC_LEN],
    /// `our_ecdh_first.public`.
    pub our_ecdh_first: Point,
    /// `our_dh_first.public`.
    pub our_dh_first: DhPublic,
}

impl NonInteractiveAuth {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_NON_INTERACTIVE_AUTH)?;
        Ok(NonInteractiveAuth {
            sender_tag: read_sender_tag(r, "sender instance tag")?,
            receiver_tag: read_receiver_tag(r, "receiver instance tag")?,
            client_profile: ClientProfile::parse(r)?,
            x: Point::read(r, "X")?,
            a: DhPublic::read(r, "A")?,
            sigma: RingSignature::read(r)?,
            prekey_message_id: r.u32("prekey message identifier")?,
            auth_mac: read_mac(r, "auth MAC")?,
            our_ecdh_first: Point::read(r, "our_ecdh_first")?,
            our_dh_first: DhPublic::read(r, "our_dh_first")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_NON_INTERACTIVE_AUTH);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.client_profile.write(w);
        self.x.write(w);
        self.a.write(w);
        self.sigma.write(w);
        w.u32(self.prekey_message_id).bytes(&self.auth_mac);
        self.our_ecdh_first.write(w);
        self.our_dh_first.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for NonInteractiveAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonInteractiveAuth")
            .field("sender_tag", &self.sender_tag)
            .field("receiver_tag", &self.receiver_tag)
            .field("client_profile", &self.client_profile)
            .field("x", &Hex(&self.x.encode()))
            .field("a", &Hex(&self.a.to_be_bytes()))
            .field("sigma", &Hex(&ring_sig_bytes(&self.sigma)))
            .field("prekey_message_id", &self.prekey_message_id)
            .field("auth_mac", &Hex(&self.auth_mac))
            .field("our_ecdh_first", &Hex(&self.our_ecdh_first.encode()))
            .field("our_dh_first", &Hex(&self.our_dh_first.to_be_bytes()))
            .finish()
    }
}

/// A Prekey message, published to a prekey server (otrv4.md §"Prekey Message"), type 0x0F.
#[derive(Clone)]
pub struct PrekeyMessage {
    /// The Prekey Message Identifier.
    pub id: u32,
    /// The owner's instance tag (`>= 0x100`).
    pub owner_tag: InstanceTag,
    /// The one-time ECDH prekey `Y`.
    pub y: Point,
    /// The one-time DH prekey `B`.
    pub b: DhPublic,
}

impl PrekeyMessage {
    /// Reads the message from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_PREKEY)?;
        Ok(PrekeyMessage {
            id: r.u32("prekey message identifier")?,
            owner_tag: read_sender_tag(r, "prekey owner instance tag")?,
            y: Point::read(r, "Y")?,
            b: DhPublic::read(r, "B")?,
        })
    }

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    /// Appends the encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        write_header(w, TYPE_PREKEY);
        w.u32(self.id).u32(self.owner_tag.0);
        self.y.write(w);
        self.b.write(w);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MIN_PREKEY_MESSAGE_LEN - 1 + DH_MODULUS_LEN);
        self.write(&mut w);
        w.into_bytes()
    }
}

impl fmt::Debug for PrekeyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrekeyMessage")
            .field("id", &self.id)
            .field("owner_tag", &self.owner_tag)
            .field("y", &Hex(&self.y.encode()))
            .field("b", &Hex(&self.b.to_be_bytes()))
            .finish()
    }
}

/// A Data message (otrv4.md §"Data Message Format"), type 0x03.
#[derive(Clone)]
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
    /// Reads the message from `r`. Fails with [`DecodeError::BadValue`] if the revealed
    /// MAC keys are not a whole number of 64-byte keys.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DATA)?;
        let sender_tag = read_sender_tag(r, "sender instance tag")?;
        let receiver_tag = read_receiver_tag(r, "receiver instance tag")?;
        let flags = r.u8("flags")?;
        let pn = r.u32("previous chain message number")?;
        let i = r.u32("ratchet id")?;
        let j = r.u32("message id")?;
        let ecdh = Point::read(r, "public ECDH key")?;
        let dh_bytes = r.mpi_max("public DH key", DH_MODULUS_LEN)?;
        let dh = if dh_bytes.is_empty() {
            None
        } else {
            Some(DhPublic::from_be_bytes(dh_bytes).map_err(|_| DecodeError::BadDhValue("public DH key"))?)
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

    /// Decodes a complete message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_all(bytes, Self::read)
    }

    fn write_authenticated(&self, w: &mut Writer) {
        write_header(w, TYPE_DATA);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0).u8(self.flags);
        w.u32(self.pn).u32(self.i).u32(self.j);
        self.ecdh.write(w);
        match &self.dh {
            Some(dh) => dh.write(w),
            None => {
                w.mpi(&[]);
            }
        }
        w.data(&self.encrypted);
    }

    /// The bytes the authenticator covers: from the protocol version through the
    /// encrypted message (otrv4.md §"Data Message Format", Authenticator).
    pub fn authenticated_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write_authenticated(&mut w);
        w.into_bytes()
    }

    /// Appends the encoding to `w`.
    pub fn write(&self, w: &mut Writer) {
        self.write_authenticated(w);
        w.bytes(&self.mac).data(&self.revealed_mac_keys);
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }

    /// The revealed MAC keys as 64-byte chunks.
    pub fn revealed_keys(&self) -> impl Iterator<Item = &[u8]> {
        self.revealed_mac_keys.chunks_exact(MAC_LEN)
    }
}

impl fmt::Debug for DataMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataMessage")
            .field("sender_tag", &self.sender_tag)
            .field("receiver_tag", &self.receiver_tag)
            .field("flags", &self.flags)
            .field("pn", &self.pn)
            .field("i", &self.i)
            .field("j", &self.j)
            .field("ecdh", &Hex(&self.ecdh.encode()))
            .field("dh", &self.dh.as_ref().map(|d| HexVec(d.to_be_bytes())))
            .field("encrypted_len", &self.encrypted.len())
            .field("mac", &Hex(&self.mac))
            .field("revealed_mac_keys", &Hex(&self.revealed_mac_keys))
            .finish()
    }
}

eq_by_encoding!(IdentityMessage, AuthR, AuthI, NonInteractiveAuth, PrekeyMessage, DataMessage);

/// Any binary OTRv4 conversation message, dispatched on its type byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Identity message (0x35).
    Identity(IdentityMessage),
    /// Auth-R message (0x36).
    AuthR(AuthR),
    /// Auth-I message (0x37).
    AuthI(AuthI),
    /// Non-Interactive-Auth message (0x0D).
    NonInteractiveAuth(NonInteractiveAuth),
    /// Prekey message (0x0F).
    Prekey(PrekeyMessage),
    /// Data message (0x03).
    Data(DataMessage),
}

impl Message {
    /// Decodes a complete message: checks the version, then dispatches on the type byte
    /// ([`DecodeError::BadMessageType`] for any other type).
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u16("protocol version")?;
        if v != PROTOCOL_VERSION {
            return Err(DecodeError::BadVersion(v));
        }
        match r.u8("message type")? {
            TYPE_IDENTITY => IdentityMessage::decode(bytes).map(Message::Identity),
            TYPE_AUTH_R => AuthR::decode(bytes).map(Message::AuthR),
            TYPE_AUTH_I => AuthI::decode(bytes).map(Message::AuthI),
            TYPE_NON_INTERACTIVE_AUTH => NonInteractiveAuth::decode(bytes).map(Message::NonInteractiveAuth),
            TYPE_PREKEY => PrekeyMessage::decode(bytes).map(Message::Prekey),
            TYPE_DATA => DataMessage::decode(bytes).map(Message::Data),
            t => Err(DecodeError::BadMessageType(t)),
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Identity(m) => m.encode(),
            Message::AuthR(m) => m.encode(),
            Message::AuthI(m) => m.encode(),
            Message::NonInteractiveAuth(m) => m.encode(),
            Message::Prekey(m) => m.encode(),
            Message::Data(m) => m.encode(),
        }
    }

    /// The message type byte.
    pub fn message_type(&self) -> u8 {
        match self {
            Message::Identity(_) => TYPE_IDENTITY,
            Message::AuthR(_) => TYPE_AUTH_R,
            Message::AuthI(_) => TYPE_AUTH_I,
            Message::NonInteractiveAuth(_) => TYPE_NON_INTERACTIVE_AUTH,
            Message::Prekey(_) => TYPE_PREKEY,
            Message::Data(_) => TYPE_DATA,
        }
    }
}
