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
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::profile::client::{ClientProfile, MIN_CLIENT_PROFILE_LEN};
use crate::profile::prekey::{PREKEY_PROFILE_LEN, PrekeyProfile};
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use alloc::vec::Vec;

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
/// Fewest bytes of a valid Prekey message: header, id, tag, `Y` and a one-byte MPI `B`.
pub const MIN_PREKEY_MESSAGE_LEN: usize = 2 + 1 + 4 + 4 + POINT_LEN + 4 + 1;
/// Fewest bytes of one Prekey Ensemble (client profile, prekey profile, prekey message).
pub const MIN_ENSEMBLE_LEN: usize =
    MIN_CLIENT_PROFILE_LEN + PREKEY_PROFILE_LEN + MIN_PREKEY_MESSAGE_LEN;

// ---------------------------------------------------------------------------------------
// Shared header helpers (also used by the prekey-server messages).

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

/// The message type of the message `r` starts with, after checking its version; reads
/// nothing.
pub(crate) fn peek_header(r: &Reader<'_>) -> Result<u8, DecodeError> {
    let mut peek = r.clone();
    let v = peek.u16("protocol version")?;
    if v != PROTOCOL_VERSION {
        return Err(DecodeError::BadVersion(v));
    }
    peek.u8("message type")
}

/// Writes the protocol version and the message type.
pub(crate) fn write_header(w: &mut Vec<u8>, msg_type: u8) {
    w.u16(PROTOCOL_VERSION).u8(msg_type);
}

/// Reads a 64-byte MAC.
pub(crate) fn read_mac(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<[u8; MAC_LEN], DecodeError> {
    r.array::<MAC_LEN>(what)
}

// ---------------------------------------------------------------------------------------

/// The Identity message, first message of the interactive DAKE (otrv4.md §"Identity
/// Message"), type 0x35.
#[derive(Clone, PartialEq, Eq)]
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

impl Codec for IdentityMessage {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_IDENTITY);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.client_profile.write(w);
        w.point(&self.y);
        w.dh_public(&self.b);
        w.point(&self.our_ecdh_first);
        w.dh_public(&self.our_dh_first);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_IDENTITY)?;
        Ok(IdentityMessage {
            sender_tag: r.sender_tag("sender instance tag")?,
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            client_profile: ClientProfile::read(r)?,
            y: r.point("Y")?,
            b: r.dh_public("B")?,
            our_ecdh_first: r.point("our_ecdh_first")?,
            our_dh_first: r.dh_public("our_dh_first")?,
        })
    }
}

redacted_debug!(IdentityMessage {
    sender_tag,
    receiver_tag,
    client_profile,
    y,
    b,
    our_ecdh_first,
    our_dh_first
});

/// The Auth-R message, second message of the interactive DAKE (otrv4.md §"Auth-R
/// Message"), type 0x36.
#[derive(Clone, PartialEq, Eq)]
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

impl Codec for AuthR {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_AUTH_R);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.client_profile.write(w);
        w.point(&self.x);
        w.dh_public(&self.a);
        self.sigma.write(w);
        w.point(&self.our_ecdh_first);
        w.dh_public(&self.our_dh_first);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_AUTH_R)?;
        Ok(AuthR {
            sender_tag: r.sender_tag("sender instance tag")?,
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            client_profile: ClientProfile::read(r)?,
            x: r.point("X")?,
            a: r.dh_public("A")?,
            sigma: RingSignature::read(r)?,
            our_ecdh_first: r.point("our_ecdh_first")?,
            our_dh_first: r.dh_public("our_dh_first")?,
        })
    }
}

redacted_debug!(AuthR {
    sender_tag,
    receiver_tag,
    client_profile,
    x,
    a,
    sigma,
    our_ecdh_first,
    our_dh_first
});

/// The Auth-I message, last message of the interactive DAKE (otrv4.md §"Auth-I Message"),
/// type 0x37.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthI {
    /// Sender instance tag (`>= 0x100`).
    pub sender_tag: InstanceTag,
    /// Receiver instance tag (0 or `>= 0x100`).
    pub receiver_tag: InstanceTag,
    /// The ring signature `sigma`.
    pub sigma: RingSignature,
}

impl Codec for AuthI {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_AUTH_I);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.sigma.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_AUTH_I)?;
        Ok(AuthI {
            sender_tag: r.sender_tag("sender instance tag")?,
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            sigma: RingSignature::read(r)?,
        })
    }
}

redacted_debug!(AuthI {
    sender_tag,
    receiver_tag,
    sigma
});

/// The Non-Interactive-Auth message, which completes the non-interactive DAKE
/// (otrv4.md §"Non-Interactive-Auth Message"), type 0x0D.
#[derive(Clone, PartialEq, Eq)]
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

impl Codec for NonInteractiveAuth {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_NON_INTERACTIVE_AUTH);
        w.u32(self.sender_tag.0).u32(self.receiver_tag.0);
        self.client_profile.write(w);
        w.point(&self.x);
        w.dh_public(&self.a);
        self.sigma.write(w);
        w.u32(self.prekey_message_id).bytes(&self.auth_mac);
        w.point(&self.our_ecdh_first);
        w.dh_public(&self.our_dh_first);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_NON_INTERACTIVE_AUTH)?;
        Ok(NonInteractiveAuth {
            sender_tag: r.sender_tag("sender instance tag")?,
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            client_profile: ClientProfile::read(r)?,
            x: r.point("X")?,
            a: r.dh_public("A")?,
            sigma: RingSignature::read(r)?,
            prekey_message_id: r.u32("prekey message identifier")?,
            auth_mac: read_mac(r, "auth MAC")?,
            our_ecdh_first: r.point("our_ecdh_first")?,
            our_dh_first: r.dh_public("our_dh_first")?,
        })
    }
}

redacted_debug!(NonInteractiveAuth {
    sender_tag,
    receiver_tag,
    client_profile,
    x,
    a,
    sigma,
    prekey_message_id,
    auth_mac: hex,
    our_ecdh_first,
    our_dh_first
});

/// A Prekey message, published to a prekey server (otrv4.md §"Prekey Message"), type 0x0F.
#[derive(Clone, PartialEq, Eq)]
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

impl Codec for PrekeyMessage {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_PREKEY);
        w.u32(self.id).u32(self.owner_tag.0);
        w.point(&self.y);
        w.dh_public(&self.b);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_PREKEY)?;
        Ok(PrekeyMessage {
            id: r.u32("prekey message identifier")?,
            owner_tag: r.sender_tag("prekey owner instance tag")?,
            y: r.point("Y")?,
            b: r.dh_public("B")?,
        })
    }
}

redacted_debug!(PrekeyMessage {
    id,
    owner_tag,
    y,
    b
});

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

impl Codec for PrekeyEnsemble {
    fn write(&self, w: &mut Vec<u8>) {
        self.client_profile.write(w);
        self.prekey_profile.write(w);
        self.prekey_message.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PrekeyEnsemble {
            client_profile: ClientProfile::read(r)?,
            prekey_profile: PrekeyProfile::read(r)?,
            prekey_message: PrekeyMessage::read(r)?,
        })
    }
}

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
    /// The message type byte.
    #[cfg(feature = "hazmat")]
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

/// Checks the version, then dispatches on the type byte ([`DecodeError::BadMessageType`]
/// for any other type).
impl Codec for Message {
    fn write(&self, w: &mut Vec<u8>) {
        match self {
            Message::Identity(m) => m.write(w),
            Message::AuthR(m) => m.write(w),
            Message::AuthI(m) => m.write(w),
            Message::NonInteractiveAuth(m) => m.write(w),
            Message::Prekey(m) => m.write(w),
            Message::Data(m) => m.write(w),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match peek_header(r)? {
            TYPE_IDENTITY => IdentityMessage::read(r).map(Message::Identity),
            TYPE_AUTH_R => AuthR::read(r).map(Message::AuthR),
            TYPE_AUTH_I => AuthI::read(r).map(Message::AuthI),
            TYPE_NON_INTERACTIVE_AUTH => {
                NonInteractiveAuth::read(r).map(Message::NonInteractiveAuth)
            }
            TYPE_PREKEY => PrekeyMessage::read(r).map(Message::Prekey),
            TYPE_DATA => DataMessage::read(r).map(Message::Data),
            t => Err(DecodeError::BadMessageType(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use core::fmt;
    use proptest::prelude::*;

    fn sender_tag() -> impl Strategy<Value = InstanceTag> {
        (0x100u32..=u32::MAX).prop_map(InstanceTag)
    }

    fn receiver_tag() -> impl Strategy<Value = InstanceTag> {
        prop_oneof![Just(InstanceTag(0)), sender_tag()]
    }

    fn identity(seed: u64, s: InstanceTag, r: InstanceTag, kb: u32, kf: u32) -> IdentityMessage {
        IdentityMessage {
            sender_tag: s,
            receiver_tag: r,
            client_profile: client_profile(seed, s),
            y: point(seed + 1),
            b: dh(kb),
            our_ecdh_first: point(seed + 2),
            our_dh_first: dh(kf),
        }
    }

    fn auth_r(seed: u64, s: InstanceTag, r: InstanceTag, ka: u32, kf: u32) -> AuthR {
        AuthR {
            sender_tag: s,
            receiver_tag: r,
            client_profile: client_profile(seed, s),
            x: point(seed + 1),
            a: dh(ka),
            sigma: ring_sig(seed),
            our_ecdh_first: point(seed + 2),
            our_dh_first: dh(kf),
        }
    }

    fn auth_i(seed: u64, s: InstanceTag, r: InstanceTag) -> AuthI {
        AuthI {
            sender_tag: s,
            receiver_tag: r,
            sigma: ring_sig(seed),
        }
    }

    fn nia(
        seed: u64,
        s: InstanceTag,
        r: InstanceTag,
        ka: u32,
        kf: u32,
        id: u32,
        mac: u8,
    ) -> NonInteractiveAuth {
        NonInteractiveAuth {
            sender_tag: s,
            receiver_tag: r,
            client_profile: client_profile(seed, s),
            x: point(seed + 1),
            a: dh(ka),
            sigma: ring_sig(seed),
            prekey_message_id: id,
            auth_mac: [mac; MAC_LEN],
            our_ecdh_first: point(seed + 2),
            our_dh_first: dh(kf),
        }
    }

    fn prekey_msg(seed: u64, id: u32, owner: InstanceTag, kb: u32) -> PrekeyMessage {
        PrekeyMessage {
            id,
            owner_tag: owner,
            y: point(seed),
            b: dh(kb),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn data_msg(
        seed: u64,
        s: InstanceTag,
        r: InstanceTag,
        flags: u8,
        counters: (u32, u32, u32),
        kdh: Option<u32>,
        enc: Vec<u8>,
        keys: usize,
    ) -> DataMessage {
        DataMessage {
            sender_tag: s,
            receiver_tag: r,
            flags,
            pn: counters.0,
            i: counters.1,
            j: counters.2,
            ecdh: point(seed),
            dh: kdh.map(dh),
            encrypted: enc,
            mac: [seed as u8; MAC_LEN],
            revealed_mac_keys: alloc::vec![0xa5; keys * MAC_LEN],
        }
    }

    /// decode(encode(x)) == x and encode(decode(b)) == b, also through `Message`.
    fn round_trip<T: PartialEq + fmt::Debug>(
        x: &T,
        encode: impl Fn(&T) -> Vec<u8>,
        decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
        wrap: impl Fn(T) -> Message,
    ) {
        let b = encode(x);
        let y = decode(&b).unwrap();
        assert_eq!(&y, x);
        assert_eq!(encode(&y), b);
        let m = Message::decode(&b).unwrap();
        assert_eq!(m.encode(), b);
        assert_eq!(m, wrap(y));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn identity_round_trips(seed in any::<u64>(), s in sender_tag(), r in receiver_tag(), kb in 1u32..3071, kf in 1u32..3071) {
            round_trip(&identity(seed, s, r, kb, kf), IdentityMessage::encode, IdentityMessage::decode, Message::Identity);
        }

        #[test]
        fn auth_r_round_trips(seed in any::<u64>(), s in sender_tag(), r in receiver_tag(), ka in 1u32..3071, kf in 1u32..3071) {
            round_trip(&auth_r(seed, s, r, ka, kf), AuthR::encode, AuthR::decode, Message::AuthR);
        }

        #[test]
        fn auth_i_round_trips(seed in any::<u64>(), s in sender_tag(), r in receiver_tag()) {
            round_trip(&auth_i(seed, s, r), AuthI::encode, AuthI::decode, Message::AuthI);
        }

        #[test]
        fn non_interactive_auth_round_trips(
            seed in any::<u64>(), s in sender_tag(), r in receiver_tag(),
            ka in 1u32..3071, kf in 1u32..3071, id in any::<u32>(), mac in any::<u8>(),
        ) {
            round_trip(&nia(seed, s, r, ka, kf, id, mac), NonInteractiveAuth::encode, NonInteractiveAuth::decode, Message::NonInteractiveAuth);
        }

        #[test]
        fn prekey_message_round_trips(seed in any::<u64>(), id in any::<u32>(), owner in sender_tag(), kb in 1u32..3071) {
            round_trip(&prekey_msg(seed, id, owner, kb), PrekeyMessage::encode, PrekeyMessage::decode, Message::Prekey);
        }

        #[test]
        fn data_message_round_trips(
            seed in any::<u64>(), s in sender_tag(), r in receiver_tag(), flags in any::<u8>(),
            counters in any::<(u32, u32, u32)>(), kdh in proptest::option::of(1u32..3071),
            enc in proptest::collection::vec(any::<u8>(), 0..300), keys in 0usize..4,
        ) {
            let m = data_msg(seed, s, r, flags, counters, kdh, enc, keys);
            round_trip(&m, DataMessage::encode, DataMessage::decode, Message::Data);
            let b = m.encode();
            let auth = m.authenticated_bytes();
            prop_assert_eq!(&b[..auth.len()], &auth[..]);
            prop_assert_eq!(b.len(), auth.len() + MAC_LEN + 4 + keys * MAC_LEN);
            prop_assert_eq!(m.revealed_keys().count(), keys);
        }
    }

    const S: InstanceTag = InstanceTag(0x1234_5678);
    const R: InstanceTag = InstanceTag(0x0000_0100);

    /// Tag, point and DH checks for a message that begins `version, type, sender, receiver,
    /// client profile, point, DH MPI`.
    fn check_profile_message<T: fmt::Debug>(
        b: &[u8],
        decode: impl Fn(&[u8]) -> Result<T, DecodeError> + Copy,
    ) {
        assert_header_checked(b, decode);
        assert_trailing_rejected(b, decode);
        assert_truncations_fail(b, decode);
        assert_bad_tag(b, 3, 0xff, decode);
        assert_bad_tag(b, 3, 0, decode);
        assert_bad_tag(b, 7, 0x01, decode);
        assert_bad_tag(b, 7, 0xff, decode);
        let plen = client_profile(1, S).encode().len();
        // A corrupted profile (unknown field type) fails inside the message too.
        let b2 = splice(b, 11 + 4, 2, &[0, 9]);
        assert_eq!(
            decode(&b2).unwrap_err(),
            DecodeError::BadProfile("unknown field type")
        );
        assert_bad_point(b, 11 + plen, decode);
        assert_bad_dh(b, 11 + plen + POINT_LEN, 1, decode);
    }

    #[test]
    fn identity_malformed() {
        let m = identity(1, S, R, 2, 3);
        let b = m.encode();
        check_profile_message(&b, IdentityMessage::decode);
        // Receiver tag 0 is fine.
        let b0 = splice(&b, 7, 4, &[0; 4]);
        assert_eq!(
            IdentityMessage::decode(&b0).unwrap().receiver_tag,
            InstanceTag(0)
        );
        // our_ecdh_first and our_dh_first are the last two fields.
        let tail = POINT_LEN + 4 + 1;
        assert_bad_point(&b, b.len() - tail, IdentityMessage::decode);
        assert_bad_dh(&b, b.len() - 5, 1, IdentityMessage::decode);
    }

    #[test]
    fn auth_r_malformed() {
        let b = auth_r(1, S, R, 2, 3).encode();
        check_profile_message(&b, AuthR::decode);
        let tail = POINT_LEN + 4 + 1;
        assert_bad_point(&b, b.len() - tail, AuthR::decode);
        assert_bad_dh(&b, b.len() - 5, 1, AuthR::decode);
        // A non-canonical scalar in sigma.
        let sig_at = b.len() - tail - RING_SIG_LEN;
        let b2 = splice(&b, sig_at, 57, &[0xff; 57]);
        assert!(matches!(
            AuthR::decode(&b2).unwrap_err(),
            DecodeError::BadScalar(_)
        ));
    }

    #[test]
    fn auth_i_malformed() {
        let b = auth_i(1, S, R).encode();
        assert_eq!(b.len(), 11 + RING_SIG_LEN);
        assert_eq!(&b[..11], &[0, 4, 0x37, 0x12, 0x34, 0x56, 0x78, 0, 0, 1, 0]);
        assert_header_checked(&b, AuthI::decode);
        assert_trailing_rejected(&b, AuthI::decode);
        assert_truncations_fail(&b, AuthI::decode);
        assert_bad_tag(&b, 3, 0x99, AuthI::decode);
        assert_bad_tag(&b, 7, 0x99, AuthI::decode);
        let b2 = splice(&b, b.len() - 57, 57, &[0xff; 57]);
        assert!(matches!(
            AuthI::decode(&b2).unwrap_err(),
            DecodeError::BadScalar(_)
        ));
    }

    #[test]
    fn non_interactive_auth_malformed() {
        let b = nia(1, S, R, 2, 3, 7, 9).encode();
        check_profile_message(&b, NonInteractiveAuth::decode);
        let tail = POINT_LEN + 4 + 1;
        assert_bad_point(&b, b.len() - tail, NonInteractiveAuth::decode);
        assert_bad_dh(&b, b.len() - 5, 1, NonInteractiveAuth::decode);
        // Layout: ... sigma, prekey id, 64-byte MAC, then the two "first" keys.
        let mac_at = b.len() - tail - MAC_LEN;
        assert_eq!(&b[mac_at..mac_at + MAC_LEN], &[9; MAC_LEN]);
        assert_eq!(&b[mac_at - 4..mac_at], &7u32.to_be_bytes());
    }

    #[test]
    fn prekey_message_malformed() {
        let b = prekey_msg(1, 0xdead_beef, S, 2).encode();
        assert_eq!(b.len(), MIN_PREKEY_MESSAGE_LEN);
        assert_eq!(
            &b[..11],
            &[0, 4, 0x0f, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78]
        );
        assert_header_checked(&b, PrekeyMessage::decode);
        assert_trailing_rejected(&b, PrekeyMessage::decode);
        assert_truncations_fail(&b, PrekeyMessage::decode);
        assert_bad_tag(&b, 7, 0xff, PrekeyMessage::decode);
        assert_bad_tag(&b, 7, 0, PrekeyMessage::decode);
        assert_bad_point(&b, 11, PrekeyMessage::decode);
        assert_bad_dh(&b, 11 + POINT_LEN, 1, PrekeyMessage::decode);
    }

    #[test]
    fn data_message_malformed() {
        let m = data_msg(1, S, R, 1, (1, 2, 3), Some(5), alloc::vec![1, 2, 3], 1);
        let b = m.encode();
        assert_header_checked(&b, DataMessage::decode);
        assert_trailing_rejected(&b, DataMessage::decode);
        assert_truncations_fail(&b, DataMessage::decode);
        assert_bad_tag(&b, 3, 0xff, DataMessage::decode);
        assert_bad_tag(&b, 7, 0xff, DataMessage::decode);
        // version, type, tags, flags, pn, i, j = 24 bytes, then the ECDH point.
        assert_eq!(&b[11..24], &[1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        assert_bad_point(&b, 24, DataMessage::decode);
        let dh_at = 24 + POINT_LEN;
        let b_no_dh = splice(&b, dh_at, 5, &[0, 0, 0, 0]);
        assert!(DataMessage::decode(&b_no_dh).unwrap().dh.is_none());
        let b2 = splice(&b, dh_at, 5, &[0, 0, 0, 1, 1]);
        assert_eq!(
            DataMessage::decode(&b2).unwrap_err(),
            DecodeError::BadDhValue("public DH key")
        );
        let b2 = splice(&b, dh_at, 5, &[0, 0, 0, 2, 0, 4]);
        assert_eq!(
            DataMessage::decode(&b2).unwrap_err(),
            DecodeError::NonMinimalMpi
        );
        // Oversized DATA length of the ciphertext.
        let enc_at = dh_at + 5;
        let b2 = splice(&b, enc_at, 4, &[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            DataMessage::decode(&b2).unwrap_err(),
            DecodeError::LengthTooLarge {
                what: "encrypted message",
                ..
            }
        ));
        // Revealed MAC keys must be whole 64-byte keys.
        let keys_at = enc_at + 4 + 3 + MAC_LEN;
        let mut b2 = splice(&b, keys_at, 4, &65u32.to_be_bytes());
        b2.push(0);
        assert_eq!(
            DataMessage::decode(&b2).unwrap_err(),
            DecodeError::BadValue("revealed MAC keys")
        );
        let b2 = splice(&b, keys_at, 4 + MAC_LEN, &[0, 0, 0, 0]);
        assert!(
            DataMessage::decode(&b2)
                .unwrap()
                .revealed_mac_keys
                .is_empty()
        );
    }

    #[test]
    fn message_dispatch_rejects_unknown_types_and_versions() {
        assert_eq!(
            Message::decode(&[0, 4, 0x02, 0, 0]).unwrap_err(),
            DecodeError::BadMessageType(0x02)
        );
        assert_eq!(
            Message::decode(&[0, 3, 0x35]).unwrap_err(),
            DecodeError::BadVersion(3)
        );
        assert!(matches!(
            Message::decode(&[0, 4]).unwrap_err(),
            DecodeError::Truncated { .. }
        ));
        assert!(matches!(
            Message::decode(&[]).unwrap_err(),
            DecodeError::Truncated { .. }
        ));
        let m = Message::AuthI(auth_i(3, S, R));
        assert_eq!(m.message_type(), TYPE_AUTH_I);
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }
}
