//! The messages of the offline start (otrv4.md §"Non-Interactive-Auth Message", §"Prekey
//! Message", §"Publishing Prekey Ensembles"): Non-Interactive-Auth (0x0D), Prekey (0x0F),
//! and the Prekey Ensemble a prekey server hands out.

use alloc::vec::Vec;

use super::*;
use crate::crypto::dh::DhPublic;
use crate::crypto::ed448::Point;
use crate::crypto::rsig::RingSignature;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::profile::client::ClientProfile;
use crate::profile::prekey::PrekeyProfile;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};

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
