//! Outgoing stanza carriage (docs/xmpp-glue.md §4): random stanza ids, the otr4 payloads
//! of one call collected into one multicast `<message/>` per recipient, the outputs in order.

use minidom::Element;
use otr4::InstanceTag;
use otr4::{Tlv, TlvType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::{CryptoRng, Rng};

use crate::events::{GlueEvent, Output};
use crate::stanza::{self, Payload};
use crate::transfer::{Download, OfferIn, Upload};

/// Most texts waiting per contact (for its device list or its ensembles).
pub const MAX_WAITING: usize = 100;

/// The use indication (otrv4.md §"Extra Symmetric Key": the first 4 bytes of a type 7 TLV
/// say what the key is for, the rest is use-specific) our own-device copies carry: the rest
/// of the TLV is the bare JID the message was sent to (docs/xmpp-glue.md §4), inside the
/// encryption so the server cannot redirect it. A type 7 TLV is on the spec's list, so other
/// implementations accept it silently (an unassigned type would be a "corrupted TLV").
pub const SENT_TO_CONTEXT: [u8; 4] = *b"O4to";

/// The TLVs of a copy for our own devices of a message sent to `to` (none for others).
pub(crate) fn sent_to_tlv(to: Option<&str>) -> Vec<Tlv> {
    to.map(|t| {
        let mut value = SENT_TO_CONTEXT.to_vec();
        value.extend_from_slice(t.as_bytes());
        Tlv {
            typ: TlvType::ExtraSymmetricKey,
            value,
        }
    })
    .into_iter()
    .collect()
}

/// The contact a copy from another device of ours was sent to.
pub(crate) fn sent_to_of(tlvs: &[Tlv]) -> Option<String> {
    tlvs.iter()
        .filter(|t| t.typ == TlvType::ExtraSymmetricKey)
        .find_map(|t| t.value.strip_prefix(SENT_TO_CONTEXT.as_slice()))
        .and_then(|v| String::from_utf8(v.to_vec()).ok())
}

/// TLVs a message carries besides the own-copy TLV (a file offer, with its key): never
/// printed, zeroized on drop.
#[derive(Clone, Default)]
pub(crate) struct ExtraTlvs(pub Vec<Tlv>);

impl core::fmt::Debug for ExtraTlvs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ExtraTlvs({})", self.0.len())
    }
}

impl Drop for ExtraTlvs {
    fn drop(&mut self) {
        for t in &mut self.0 {
            zeroize::Zeroize::zeroize(&mut t.value);
        }
    }
}

/// What one engine call produces, in order, and the ids it uses.
pub(crate) struct Carriage {
    /// Ids of requests and messages: random (a contact who sees our message ids cannot
    /// predict them), from a generator seeded once from the caller's RNG.
    ids: StdRng,
    out: Vec<Output>,
    /// otr4 payloads by recipient bare JID, sent at the end of the call.
    outbox: Vec<(String, Payload)>,
    /// File offers found in the call's decrypted messages (the engine takes them).
    offers: Vec<OfferIn>,
    /// (recipient, origin id): the recipient's message that a payload of this call could
    /// not read (our OTR error message to it names it, docs/xmpp-glue.md §4).
    unreadable: Vec<(String, String)>,
    /// (recipient, its devices we know): a user message went to them in this call.
    devices: Vec<(String, Vec<InstanceTag>)>,
}

impl Carriage {
    /// A carriage whose ids come from a generator seeded from `rng`.
    pub fn new<R: CryptoRng + ?Sized>(rng: &mut R) -> Carriage {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Carriage {
            ids: StdRng::from_seed(seed),
            out: Vec::new(),
            outbox: Vec::new(),
            offers: Vec::new(),
            unreadable: Vec::new(),
            devices: Vec::new(),
        }
    }

    /// A fresh stanza id (128 random bits, hex).
    pub fn id(&mut self) -> String {
        format!("{:016x}{:016x}", self.ids.next_u64(), self.ids.next_u64())
    }

    /// Tells the application.
    pub fn emit(&mut self, e: GlueEvent) {
        self.out.push(Output::Event(e));
    }

    /// Sends a stanza.
    pub fn stanza(&mut self, s: Element) {
        self.out.push(Output::Stanza(s));
    }

    /// Sends a message whose body is `text` (a prekey-server message) to `to`.
    pub fn body_message(&mut self, to: &str, text: &str) {
        let id = self.id();
        let s = stanza::body_message(to, &id, text);
        self.stanza(s);
    }

    /// Sends OTRv3 text to a contact as a plain body ([`stanza::v3_message`]), now (one
    /// stanza per text: OTRv3 fragments go in order).
    pub fn v3_message(&mut self, to: &str, text: &str) {
        let id = self.id();
        let s = stanza::v3_message(to, &id, text);
        self.stanza(s);
    }

    /// Asks the caller to upload a file.
    pub fn upload(&mut self, u: Upload) {
        self.out.push(Output::Upload(u));
    }

    /// Asks the caller to download a file.
    pub fn download(&mut self, d: Download) {
        self.out.push(Output::Download(d));
    }

    /// A file offer found in a decrypted message.
    pub fn offer(&mut self, o: OfferIn) {
        self.offers.push(o);
    }

    /// The file offers found so far in this call.
    pub fn take_offers(&mut self) -> Vec<OfferIn> {
        core::mem::take(&mut self.offers)
    }

    /// An otr4 payload for `to`, carried at the end of the call.
    pub fn payload(&mut self, to: String, p: Payload) {
        self.outbox.push((to, p));
    }

    /// Our stanza to `to` in this call names `origin_id` as its message we could not read
    /// (the `unreadable` attribute of `<otr4/>`, beside the OTR error message).
    pub fn unreadable(&mut self, to: &str, origin_id: &str) {
        self.unreadable.push((to.to_owned(), origin_id.to_owned()));
    }

    /// A user message to `to` in this call: its stanza names `devices`, the recipient's
    /// devices we know (so a device we do not know can tell, docs/xmpp-glue.md §4).
    pub fn user_message(&mut self, to: &str, devices: Vec<InstanceTag>) {
        match self.devices.iter_mut().find(|(t, _)| t == to) {
            Some((_, d)) => d.extend(devices),
            None => self.devices.push((to.to_owned(), devices)),
        }
    }

    /// Collects the payloads into one stanza per recipient (from our device `tag`) and
    /// returns everything of the call.
    pub fn finish(&mut self, tag: InstanceTag) -> Vec<Output> {
        let mut by_to: Vec<(String, Vec<Payload>)> = Vec::new();
        for (to, p) in core::mem::take(&mut self.outbox) {
            match by_to.iter_mut().find(|(t, _)| *t == to) {
                Some((_, v)) => v.push(p),
                None => by_to.push((to, vec![p])),
            }
        }
        for (to, payloads) in by_to {
            let id = self.id();
            let mut m = stanza::multicast_message(&to, &id, tag, &payloads);
            if let Some((_, re)) = self.unreadable.iter().find(|(t, _)| *t == to) {
                stanza::mark_unreadable(&mut m, re);
            }
            if let Some((_, d)) = self.devices.iter().find(|(t, _)| *t == to) {
                stanza::mark_devices(&mut m, d);
            }
            self.stanza(m);
        }
        self.unreadable.clear();
        self.devices.clear();
        core::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;

    #[test]
    fn sent_to_round_trips_and_ignores_other_keys() {
        let tlvs = sent_to_tlv(Some("bob@example.org"));
        assert_eq!(sent_to_of(&tlvs).as_deref(), Some("bob@example.org"));
        assert!(sent_to_tlv(None).is_empty());
        let other = Tlv {
            typ: TlvType::ExtraSymmetricKey,
            value: b"fileXYZ".to_vec(),
        };
        assert_eq!(sent_to_of(&[other]), None);
    }

    #[test]
    fn one_stanza_per_recipient_after_the_events() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = Carriage::new(&mut rng);
        let p = |t: u32, text: &str| Payload {
            to_tag: Some(InstanceTag(t)),
            text: text.to_owned(),
        };
        c.payload("bob@x".into(), p(0x101, "a"));
        c.payload("alice@x".into(), p(0x102, "b"));
        c.payload("bob@x".into(), p(0x103, "c"));
        c.emit(GlueEvent::Online);
        let out = c.finish(InstanceTag(0x100));
        assert_eq!(out.len(), 3);
        assert!(matches!(
            out.first(),
            Some(Output::Event(GlueEvent::Online))
        ));
        let Some(Output::Stanza(bob)) = out.get(1) else {
            panic!("no stanza to bob")
        };
        assert_eq!(bob.attr("to"), Some("bob@x"));
        let carried = stanza::parse_carried(bob).unwrap().unwrap();
        assert_eq!(carried.payloads, vec![p(0x101, "a"), p(0x103, "c")]);
        assert!(bob.get_child("otr4", ns::OTR4).is_some());
        assert!(
            c.finish(InstanceTag(0x100)).is_empty(),
            "a call's outputs go once"
        );
    }

    #[test]
    fn ids_are_distinct_and_unpredictable_from_the_seed_alone() {
        let mut a = Carriage::new(&mut StdRng::seed_from_u64(2));
        let mut b = Carriage::new(&mut StdRng::seed_from_u64(3));
        let (x, y) = (a.id(), a.id());
        assert_ne!(x, y);
        assert_eq!(x.len(), 32);
        assert_ne!(x, b.id());
    }
}
