//! The messages of the interactive DAKE (otrv4.md §"Identity Message", §"Auth-R Message",
//! §"Auth-I Message"): Identity (0x35), Auth-R (0x36) and Auth-I (0x37).

use alloc::vec::Vec;

use super::*;
use crate::crypto::dh::DhPublic;
use crate::crypto::ed448::Point;
use crate::crypto::rsig::RingSignature;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::profile::client::ClientProfile;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};

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
