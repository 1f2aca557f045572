//! The binary OTRv4 conversation messages (otrv4.md §"Identity Message" … §"Data Message
//! Format"): one type per message with `encode`/`decode`, and [`Message`] to dispatch.
//! One file per family: `interactive` (the interactive DAKE), `offline` (the offline start:
//! Non-Interactive-Auth, Prekey message, Prekey Ensemble), `data` (the Data message); the
//! header helpers and the dispatch are here.
//!
//! Decoders check syntax and field validity only (version, type, instance-tag ranges,
//! strict points, DH group membership, bounded lengths, no trailing bytes). Whether a
//! receiver tag matches *our* tag, profiles validate, or MACs and signatures verify is the
//! protocol layer's job.

use crate::crypto::ed448::POINT_LEN;
use crate::profile::client::MIN_CLIENT_PROFILE_LEN;
use crate::profile::prekey::PREKEY_PROFILE_LEN;
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

mod data;
mod interactive;
mod offline;

pub use data::DataMessage;
pub(crate) use data::KeyMemo;
pub use interactive::{AuthI, AuthR, IdentityMessage};
pub use offline::{NonInteractiveAuth, PrekeyEnsemble, PrekeyMessage};

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
    /// [`Codec::decode`] for a message from a peer whose earlier Data-message keys `memo`
    /// remembers: a Data message repeating one reuses its validation ([`KeyMemo`]).
    pub(crate) fn decode_memo(bytes: &[u8], memo: &mut KeyMemo) -> Result<Message, DecodeError> {
        let mut r = Reader::new(bytes);
        let m = if peek_header(&r)? == TYPE_DATA {
            Message::Data(DataMessage::read_memo(&mut r, Some(memo))?)
        } else {
            Message::read(&mut r)?
        };
        r.finish()?;
        Ok(m)
    }

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
mod tests;
