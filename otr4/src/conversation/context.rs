//! What every step of the conversation layer works with (`Ctx`: our account, `phi'`, the
//! peer, the time, the device limit) and the events it emits; queued and stored messages.

use alloc::string::String;
use alloc::vec::Vec;

use zeroize::Zeroize;

use crate::InstanceTag;
use crate::dake::{LocalParty, PhiPrime};
use crate::ratchet::SecretBytes;
use crate::wire::codec::{Reader, Writer};
use crate::wire::encoded::encode_otr;
use crate::wire::fragment::{FragmentKind, fragment};
use crate::wire::messages::DataMessage;
use crate::wire::tlv::{MAX_TLV_VALUE_LEN, Tlv, TlvType};

use super::account::Account;
use super::events::{ConversationError, Event, NotSentReason, Warning};
use super::persisted::{Persist, PersistError, read_string, u32_of};

/// What every step needs: our account, `phi'`, the peer's bare JID, the time, and how
/// many instances a peer may have ([`super::Client::set_max_instances`]).
pub(crate) struct Ctx<'a> {
    pub(crate) account: &'a Account,
    pub(crate) phi: &'a PhiPrime,
    pub(crate) peer: &'a str,
    pub(crate) now: i64,
    pub(crate) max_instances: usize,
}

impl Ctx<'_> {
    pub(crate) fn local(&self) -> Result<LocalParty<'_>, ConversationError> {
        LocalParty::new(&self.account.long_term, &self.account.profile, self.phi)
            .map_err(ConversationError::Dake)
    }

    pub(crate) fn our_tag(&self) -> InstanceTag {
        self.account.instance_tag
    }

    pub(crate) fn warn(&self, out: &mut Vec<Event>, instance: Option<InstanceTag>, w: Warning) {
        out.push(Event::Warning {
            peer: String::from(self.peer),
            instance,
            warning: w,
        });
    }

    pub(crate) fn error(
        &self,
        out: &mut Vec<Event>,
        instance: Option<InstanceTag>,
        error: ConversationError,
    ) {
        out.push(Event::Error {
            peer: String::from(self.peer),
            instance,
            error,
        });
    }

    pub(crate) fn send_text(
        &self,
        out: &mut Vec<Event>,
        to_instance: Option<InstanceTag>,
        text: String,
    ) {
        out.push(Event::Send {
            to: String::from(self.peer),
            to_instance,
            text,
        });
    }

    pub(crate) fn not_sent(
        &self,
        out: &mut Vec<Event>,
        instance: Option<InstanceTag>,
        text: &str,
        reason: NotSentReason,
    ) {
        out.push(Event::NotSent {
            peer: String::from(self.peer),
            instance,
            text: String::from(text),
            reason,
        });
    }

    /// Encodes a binary OTR message as `?OTR:…​.` and, if longer than
    /// `Policy::max_message_size`, splits it into fragments (otrv4.md §"Transmitting
    /// Fragments") with a random identifier; each piece is one [`Event::Send`].
    pub(crate) fn send_encoded<R: rand_core::CryptoRng + ?Sized>(
        &self,
        out: &mut Vec<Event>,
        to: InstanceTag,
        bytes: &[u8],
        rng: &mut R,
    ) {
        let text = encode_otr(bytes);
        let max = self.account.policy.max_message_size;
        let to_instance = (to != InstanceTag::UNKNOWN).then_some(to);
        if max == 0 || text.len() <= max {
            self.send_text(out, to_instance, text);
            return;
        }
        match fragment(
            &text,
            max,
            rng.next_u32(),
            self.our_tag(),
            to,
            FragmentKind::Otr,
        ) {
            Ok(pieces) => {
                for p in pieces {
                    self.send_text(out, to_instance, p);
                }
            }
            Err(e) => self.error(out, to_instance, ConversationError::Fragment(e)),
        }
    }
}

/// A user message waiting for an encrypted session. The text and TLV values are wiped on
/// drop.
pub(crate) struct Queued {
    pub(crate) text: String,
    pub(crate) tlvs: Vec<Tlv>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.text.zeroize();
        for t in &mut self.tlvs {
            t.value.zeroize();
        }
    }
}

/// `DATA(text) || INT tlv count || (SHORT type || DATA(value))*`, the same in every format
/// version; a queue is `INT count || messages` ([`super::persisted::persist_all`]).
impl Persist for Queued {
    type Context<'a> = ();

    fn persist(&self, w: &mut SecretBytes, _version: u16) {
        w.data(self.text.as_bytes());
        w.u32(u32_of(self.tlvs.len()));
        for t in &self.tlvs {
            w.u16(t.typ.to_u16()).data(&t.value);
        }
    }

    fn restore(r: &mut Reader<'_>, _version: u16, _cx: ()) -> Result<Queued, PersistError> {
        let text = read_string(r, "queued text")?;
        let k = r.u32("queued TLV count")?;
        let mut tlvs = Vec::new();
        for _ in 0..k {
            let typ = TlvType::from_u16(r.u16("TLV type")?);
            let value = r.data("TLV value")?;
            if value.len() > MAX_TLV_VALUE_LEN {
                return Err(PersistError::Invalid("TLV value too long"));
            }
            tlvs.push(Tlv::new(typ, value.to_vec()));
        }
        Ok(Queued { text, tlvs })
    }
}

/// A data message that arrived before the DAKE completed (otrv4.md §"Receiving a Data
/// Message": "store this message for a configurable, short amount of time").
pub(crate) struct Stored {
    pub(crate) msg: DataMessage,
    pub(crate) at: i64,
}
