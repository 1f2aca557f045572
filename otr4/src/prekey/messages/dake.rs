//! The prekey server's DAKE messages (otrv4-prekey-server.md §"Key Exchange": §"DAKE-1
//! Message", §"DAKE-2 Message", §"DAKE-3 Message") and the message DAKE-3 encloses.

use crate::crypto::ed448::Point;
use crate::crypto::keys::Ed448PublicKey;
use crate::crypto::rsig::RingSignature;
use crate::debug::redacted_debug;
use crate::instance_tag::InstanceTag;
use crate::prekey::messages::*;
use crate::profile::client::ClientProfile;
use crate::wire::codec::{Codec, DecodeError, Reader, Writer};
use crate::wire::messages::{read_header, write_header};
use alloc::boxed::Box;
use alloc::vec::Vec;

/// The Prekey Server Composite Identity (otrv4-prekey-server.md §"Prekey Server Composite
/// Identity"): the server identity (e.g. its bare JID) and its ED448-PUBKEY.
#[derive(Clone, PartialEq, Eq)]
pub struct CompositeIdentity {
    /// The server identity, UTF-8 by convention (not checked).
    pub identity: Vec<u8>,
    /// The server's long-term public key `H_s`.
    pub public_key: Ed448PublicKey,
}

impl Codec for CompositeIdentity {
    fn write(&self, w: &mut Vec<u8>) {
        data(w, &self.identity);
        self.public_key.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CompositeIdentity {
            identity: r.data("server identity")?.to_vec(),
            public_key: Ed448PublicKey::read(r)?,
        })
    }
}

redacted_debug!(CompositeIdentity {
    identity: hex,
    public_key
});

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

impl Codec for Dake1 {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_DAKE1);
        w.u32(self.sender_tag.0);
        self.client_profile.write(w);
        w.point(&self.i);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DAKE1)?;
        Ok(Dake1 {
            sender_tag: r.sender_tag("sender instance tag")?,
            client_profile: ClientProfile::read(r)?,
            i: r.point("I")?,
        })
    }
}

redacted_debug!(Dake1 {
    sender_tag,
    client_profile,
    i
});

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

impl Codec for Dake2 {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_DAKE2);
        w.u32(self.receiver_tag.0);
        self.composite_identity.write(w);
        w.point(&self.s);
        self.sigma.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DAKE2)?;
        Ok(Dake2 {
            receiver_tag: r.receiver_tag("receiver instance tag")?,
            composite_identity: CompositeIdentity::read(r)?,
            s: r.point("S")?,
            sigma: RingSignature::read(r)?,
        })
    }
}

redacted_debug!(Dake2 {
    receiver_tag,
    composite_identity,
    s,
    sigma
});

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

    /// Decodes the enclosed message.
    pub fn inner(&self) -> Result<Dake3Inner, DecodeError> {
        Dake3Inner::decode(&self.message)
    }
}

impl Codec for Dake3 {
    fn write(&self, w: &mut Vec<u8>) {
        write_header(w, TYPE_DAKE3);
        w.u32(self.sender_tag.0);
        self.sigma.write(w);
        data(w, &self.message);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        read_header(r, TYPE_DAKE3)?;
        Ok(Dake3 {
            sender_tag: r.sender_tag("sender instance tag")?,
            sigma: RingSignature::read(r)?,
            message: r.data("DAKE-3 message")?.to_vec(),
        })
    }
}

redacted_debug!(Dake3 {
    sender_tag,
    sigma,
    message: hex
});

/// The message enclosed in a DAKE-3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dake3Inner {
    /// A Prekey Publication message (0x08), boxed: it is large.
    Publication(Box<PrekeyPublication>),
    /// A Storage Information Request message (0x09).
    StorageInfoRequest(StorageInfoRequest),
}

/// Dispatches on the type byte after checking the version.
impl Codec for Dake3Inner {
    fn write(&self, w: &mut Vec<u8>) {
        match self {
            Dake3Inner::Publication(m) => m.write(w),
            Dake3Inner::StorageInfoRequest(m) => m.write(w),
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match peek_header(r)? {
            TYPE_PUBLICATION => {
                PrekeyPublication::read(r).map(|p| Dake3Inner::Publication(Box::new(p)))
            }
            TYPE_STORAGE_INFO_REQUEST => {
                StorageInfoRequest::read(r).map(Dake3Inner::StorageInfoRequest)
            }
            t => Err(DecodeError::BadMessageType(t)),
        }
    }
}
