//! Between otr4 and the application: otr4's events become [`GlueEvent`]s and payloads to
//! carry, with the device directory's trust (TOFU pins told to otr4 as the accepted keys).

use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::{Client, ConversationError, Event, Mode, SmpUpdate, Warning};
use rand_core::CryptoRng;

use crate::carriage::{Carriage, ExtraTlvs, SENT_TO_CONTEXT, sent_to_of, sent_to_tlv};
use crate::directory::Directory;
use crate::error::NotSentReason;
use crate::events::GlueEvent;
use crate::file::{FILE_CONTEXT, FileOffer};
use crate::heal::Healing;
use crate::stanza::Payload;
use crate::transfer::OfferIn;
use crate::trust::{Trust, hex_fp, parse_fp};

/// The otr4 client with the directory and the carriage of the current call, borrowed from
/// the engine for the length of one step.
pub(crate) struct Bridge<'a> {
    /// Our bare JID.
    pub jid: &'a str,
    /// The otr4 client.
    pub client: &'a mut Client,
    /// The secrets of our published Prekey messages (otr4's caller owns them).
    pub prekeys: &'a mut PrekeyStore,
    /// Device lists and trust.
    pub dir: &'a mut Directory,
    /// The call's outputs.
    pub car: &'a mut Carriage,
    /// Session repairs under way.
    pub heal: &'a mut Healing,
}

impl Bridge<'_> {
    /// Our instance tag.
    pub fn tag(&self) -> InstanceTag {
        self.client.account().instance_tag()
    }

    /// Sees `fp` for a device: pins it on first use (and tells otr4 it is the accepted
    /// key), or marks the device changed — otr4 keeps expecting the pinned key, so
    /// nothing is encrypted to `fp` until the user accepts it.
    pub fn pin<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        fp: &str,
        now: i64,
        rng: &mut R,
    ) {
        let Some(p) = self.dir.pin(jid, tag, fp) else {
            return;
        };
        if p.new {
            self.expect(jid, tag, now, rng);
        }
        self.car.emit(GlueEvent::TrustChanged {
            jid: jid.to_owned(),
            device: tag,
            trust: p.trust,
            note: p.note,
        });
    }

    /// Tells otr4 the accepted (pinned) key of a device; what was held for it goes out
    /// if its session now uses that key.
    pub fn expect<R: CryptoRng + ?Sized>(
        &mut self,
        jid: &str,
        tag: InstanceTag,
        now: i64,
        rng: &mut R,
    ) {
        let fp = self.dir.pinned(jid, tag).and_then(parse_fp);
        if fp.is_some() {
            let evs = self.client.expect_fingerprint(jid, tag, fp, now, rng);
            self.otr_events(evs, false, now, rng);
        }
    }

    /// Whether OTRv3 is on ([`crate::Engine::enable_otrv3`]): an OTRv3 key, the
    /// OTRv3-compatible mode and version 3 in the policy.
    pub fn v3_enabled(&self) -> bool {
        let a = self.client.account();
        a.v3_fingerprint().is_some()
            && a.policy().mode == Mode::Otrv3Compatible
            && a.policy().versions.has_v3()
    }

    /// The instance of `jid`'s OTRv3 session (encrypted or finished) and the fingerprint
    /// of its key (while encrypted), unless an OTRv4 conversation has that instance.
    pub fn v3_session(&self, jid: &str) -> Option<(InstanceTag, Option<String>)> {
        let peer = self.client.peer(jid)?;
        let tag = peer.v3_session().1?;
        if self.client.conversation(jid, tag).is_some() {
            return None;
        }
        Some((tag, peer.v3_fingerprint().map(|f| hex::encode(f.0))))
    }

    /// Whether otr4 text for `to` goes as a plain `<body>` (the OTRv3 encoding, as Pidgin
    /// sends it; docs/xmpp-glue.md §11) rather than in an `<otr4/>` element: OTRv3 is on,
    /// the contact lists no OTRv4 device, and the text is untargeted (a query message, a
    /// D-H Commit) or for an instance without an OTRv4 conversation (the OTRv3 AKE, session
    /// and error messages).
    fn goes_plain(&self, to: &str, to_instance: Option<InstanceTag>) -> bool {
        to != self.jid
            && self.v3_enabled()
            && self.dir.devices_of(to, self.jid, self.tag()).is_empty()
            && to_instance.is_none_or(|t| self.client.conversation(to, t).is_none())
    }

    /// The trust to show for content from device `tag` of `jid` ([`Trust::Changed`] if
    /// the live session's key is not the pinned one), and whether the device is listed.
    pub fn content_trust(&self, jid: &str, tag: InstanceTag) -> (Trust, bool) {
        if let Some((v3, fp)) = self.v3_session(jid)
            && v3 == tag
        {
            let trust = fp.map_or(Trust::Changed, |fp| self.dir.v3_trust(jid, &fp));
            return (trust, false);
        }
        let session = self
            .client
            .conversation(jid, tag)
            .and_then(|c| c.their_fingerprint())
            .map(|f| hex_fp(&f));
        let trust = self.dir.content_trust(jid, tag, session.as_deref());
        (trust, self.dir.is_listed(jid, tag, self.jid, self.tag()))
    }

    /// A type 7 TLV that arrived: our own-copy TLV (the contact a file offer in the same
    /// message went to; a text's copy reads it from `Received`) or a file offer (xep
    /// §"The File Offer"; otr4 reports each type 7 TLV, also of a message with no text).
    fn extra_tlv(
        &mut self,
        peer: String,
        instance: InstanceTag,
        context: [u8; 4],
        data: &[u8],
        offer_sent_to: &mut Option<String>,
    ) {
        if context == SENT_TO_CONTEXT {
            if peer == self.jid {
                *offer_sent_to = String::from_utf8(data.to_vec()).ok();
            }
        } else if context == FILE_CONTEXT {
            let mut value = zeroize::Zeroizing::new(FILE_CONTEXT.to_vec());
            value.extend_from_slice(data);
            let (trust, listed) = self.content_trust(&peer, instance);
            let offer = FileOffer::decode(&value);
            self.car.offer(OfferIn {
                from: peer,
                device: instance,
                sent_to: offer_sent_to.take(),
                trust,
                listed,
                offer,
            });
        }
    }

    /// An OTRv3 session is up (otrv4.md §"OTRv3-compatible mode"): its key is pinned per
    /// JID on first use, the user is told, and the texts that waited for it go out
    /// (unless the key changed: they are then dropped with [`NotSentReason::KeyChanged`]).
    fn secure_v3<R: CryptoRng + ?Sized>(
        &mut self,
        peer: String,
        instance: InstanceTag,
        fp: String,
        now: i64,
        rng: &mut R,
    ) {
        if let Some(p) = self.dir.pin_v3(&peer, &fp) {
            self.car.emit(GlueEvent::TrustChanged {
                jid: peer.clone(),
                device: instance,
                trust: p.trust,
                note: p.note,
            });
        }
        let trust = self.dir.v3_trust(&peer, &fp);
        self.car.emit(GlueEvent::SecureV3 {
            peer: peer.clone(),
            device: instance,
            fingerprint: fp,
            trust,
        });
        for text in self.dir.take_waiting_v3(&peer) {
            self.send_v3(&peer, instance, trust, &text, now, rng);
        }
    }

    /// Sends `text` in the OTRv3 session with `instance` of `to`, whose key has `trust`.
    pub fn send_v3<R: CryptoRng + ?Sized>(
        &mut self,
        to: &str,
        instance: InstanceTag,
        trust: Trust,
        text: &str,
        now: i64,
        rng: &mut R,
    ) {
        if trust == Trust::Changed {
            return self.car.emit(GlueEvent::NotSent {
                to: to.to_owned(),
                device: Some(instance),
                reason: NotSentReason::KeyChanged,
            });
        }
        let evs = self.client.send_to(to, instance, text, &[], now, rng);
        self.otr_events(evs, false, now, rng);
    }

    /// The contact whose OTRv3 AKE failed while texts wait for the session: an AKE message
    /// was refused or did not decode (the JavaScript `otr` library's unpadded `r`,
    /// docs/spec-notes.md), or the AKE timed out. A new query starts another AKE.
    fn v3_ake_failed(&self, e: &Event) -> Option<String> {
        let peer = match e {
            Event::Warning {
                peer,
                warning: Warning::Otrv3MessageIgnored(_) | Warning::DakeTimedOut,
                ..
            }
            | Event::Error {
                peer,
                error: ConversationError::Malformed(_),
                ..
            } => peer,
            _ => return None,
        };
        self.dir.has_waiting_v3(peer).then(|| peer.clone())
    }

    /// Turns otr4's events into payloads to carry and events for the application;
    /// `receiving`: they answer an incoming payload (its errors are `Undecryptable`).
    pub fn otr_events<R: CryptoRng + ?Sized>(
        &mut self,
        evs: Vec<Event>,
        receiving: bool,
        now: i64,
        rng: &mut R,
    ) {
        let mut offer_sent_to: Option<String> = None;
        // The device of the `Send` events just before (see `ExtraSymmetricKey` below).
        let mut last_send: Option<(String, Option<InstanceTag>)> = None;
        for e in evs {
            let after_send = last_send.take();
            if let Some(peer) = self.v3_ake_failed(&e) {
                let evs = self.client.start(&peer, now, rng);
                self.otr_events(evs, false, now, rng);
            }
            match e {
                Event::Send {
                    to,
                    to_instance,
                    text,
                } => {
                    last_send = Some((to.clone(), to_instance));
                    if self.goes_plain(&to, to_instance) {
                        self.car.v3_message(&to, &text);
                        continue;
                    }
                    self.car.payload(
                        to,
                        Payload {
                            to_tag: to_instance,
                            text,
                        },
                    );
                }
                Event::Received {
                    from,
                    from_instance: Some(device),
                    text,
                    tlvs,
                    encrypted: true,
                } => {
                    let sent_to = if from == self.jid {
                        sent_to_of(&tlvs)
                    } else {
                        None
                    };
                    if !text.is_empty() {
                        let (trust, listed) = self.content_trust(&from, device);
                        self.car.emit(GlueEvent::Message {
                            from,
                            device,
                            text,
                            sent_to,
                            trust,
                            listed,
                        });
                    }
                }
                Event::Secure {
                    peer,
                    instance,
                    their_fingerprint,
                    ..
                } => {
                    let fp = hex_fp(&their_fingerprint);
                    self.pin(&peer, instance, &fp, now, rng);
                    let (trust, _) = self.content_trust(&peer, instance);
                    let non_interactive = self
                        .client
                        .conversation(&peer, instance)
                        .and_then(|c| c.non_interactive_role())
                        .is_some();
                    let held = self.heal.established(&peer, instance);
                    self.car.emit(GlueEvent::Secure {
                        peer: peer.clone(),
                        device: instance,
                        fingerprint: fp,
                        trust,
                        non_interactive,
                    });
                    // A repaired session: the texts written meanwhile go out in it.
                    for h in held.unwrap_or_default() {
                        let mut tlvs = ExtraTlvs(sent_to_tlv(h.sent_to.as_deref()));
                        tlvs.0.extend(h.extra.0.iter().cloned());
                        let evs = self
                            .client
                            .send_to(&peer, instance, &h.text, &tlvs.0, now, rng);
                        self.otr_events(evs, false, now, rng);
                    }
                }
                Event::SecureV3 {
                    peer,
                    instance,
                    their_fingerprint,
                    ..
                } => self.secure_v3(peer, instance, hex::encode(their_fingerprint.0), now, rng),
                Event::Smp {
                    peer,
                    instance,
                    update,
                } => {
                    if update == SmpUpdate::Succeeded
                        && let Some((v3, Some(fp))) = self.v3_session(&peer)
                        && v3 == instance
                        && self.dir.verify_v3(&peer, &fp)
                    {
                        self.car.emit(GlueEvent::TrustChanged {
                            jid: peer.clone(),
                            device: instance,
                            trust: Trust::Verified,
                            note: "OTRv3 key verified with SMP".to_owned(),
                        });
                    } else if update == SmpUpdate::Succeeded {
                        let fp = self
                            .client
                            .conversation(&peer, instance)
                            .and_then(|c| c.their_fingerprint())
                            .map(|f| hex_fp(&f));
                        if let Some(fp) = fp
                            && self.dir.verify(&peer, instance, &fp)
                        {
                            self.car.emit(GlueEvent::TrustChanged {
                                jid: peer.clone(),
                                device: instance,
                                trust: Trust::Verified,
                                note: "verified with SMP".to_owned(),
                            });
                        }
                    }
                    let (trust, listed) = self.content_trust(&peer, instance);
                    self.car.emit(GlueEvent::Smp {
                        peer,
                        device: instance,
                        update,
                        trust,
                        listed,
                    });
                }
                Event::Error {
                    peer,
                    instance,
                    error,
                } if receiving => self.car.emit(GlueEvent::Undecryptable {
                    from: peer,
                    device: instance,
                    error,
                    message: None,
                }),
                Event::NotSent {
                    reason: otr4::NotSentReason::Queued,
                    ..
                } => {}
                Event::NotSent {
                    peer,
                    instance,
                    reason: otr4::NotSentReason::KeyNotAccepted,
                    ..
                } => self.car.emit(GlueEvent::NotSent {
                    to: peer,
                    device: instance,
                    reason: NotSentReason::HeldUntilAccepted,
                }),
                // A type 7 TLV. otr4 reports one both when we send it (right after the
                // `Send` events of its message) and when it arrives (before anything else
                // of that message): one right after our `Send` to the same device is ours.
                // The TLV's extra key is not used; the data (a file key) is zeroized here.
                Event::ExtraSymmetricKey {
                    peer,
                    instance,
                    context,
                    mut data,
                    ..
                } => {
                    let ours = after_send
                        .as_ref()
                        .is_some_and(|(p, i)| *p == peer && *i == Some(instance));
                    if receiving && !ours {
                        self.extra_tlv(peer, instance, context, &data, &mut offer_sent_to);
                    }
                    zeroize::Zeroize::zeroize(&mut data);
                    last_send = after_send;
                }
                Event::NotSent {
                    peer,
                    instance,
                    reason,
                    ..
                } => self.car.emit(GlueEvent::NotSent {
                    to: peer,
                    device: instance,
                    reason: NotSentReason::Otr(reason),
                }),
                other => self.car.emit(GlueEvent::Otr(other)),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Output;
    use otr4::{Account, Policy};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn events(car: &mut Carriage) -> Vec<GlueEvent> {
        car.finish(InstanceTag(0x100))
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn with_otrv3_on_untargeted_text_to_a_contact_without_devices_goes_as_a_plain_body() {
        use crate::devices::{DeviceEntry, DeviceList};
        let mut rng = StdRng::seed_from_u64(8);
        let account = Account::generate(&mut rng, Policy::standalone(), 1000).unwrap();
        let mut client = Client::new(account, "alice@x");
        let mut dir = Directory::default();
        dir.set_contact_list(
            "carol@x",
            DeviceList {
                devices: vec![DeviceEntry {
                    tag: 0x300,
                    fingerprint: "aa".into(),
                    label: "c".into(),
                    seen: 1000,
                }],
            },
        );
        let mut car = Carriage::new(&mut rng);
        let mut prekeys = otr4::PrekeyStore::new(client.account().instance_tag());
        let send = |to: &str, tag: Option<u32>| Event::Send {
            to: to.into(),
            to_instance: tag.map(InstanceTag),
            text: "?OTRv34?".into(),
        };
        let stanzas = |car: &mut Carriage| -> Vec<minidom::Element> {
            car.finish(InstanceTag(0x100))
                .into_iter()
                .filter_map(|o| match o {
                    Output::Stanza(s) => Some(s),
                    _ => None,
                })
                .collect()
        };
        let evs = || {
            vec![
                send("bob@x", None),
                send("carol@x", None),
                send("carol@x", Some(0x300)),
            ]
        };
        {
            let mut b = Bridge {
                jid: "alice@x",
                client: &mut client,
                prekeys: &mut prekeys,
                dir: &mut dir,
                car: &mut car,
                heal: &mut crate::heal::Healing::default(),
            };
            assert!(!b.v3_enabled());
            b.otr_events(evs(), false, 1000, &mut rng);
        }
        let out = stanzas(&mut car);
        assert!(
            out.iter()
                .all(|s| s.get_child("otr4", crate::ns::OTR4).is_some()),
            "OTRv3 off: everything is OTRv4 carriage: {out:?}"
        );
        let policy = otr4::Policy {
            mode: otr4::Mode::Otrv3Compatible,
            versions: otr4::Versions::V3_AND_V4,
            ..*client.account().policy()
        };
        client.set_policy(policy).unwrap();
        client.set_v3_key(otrv3_test_key());
        let mut b = Bridge {
            jid: "alice@x",
            client: &mut client,
            prekeys: &mut prekeys,
            dir: &mut dir,
            car: &mut car,
            heal: &mut crate::heal::Healing::default(),
        };
        assert!(b.v3_enabled());
        b.otr_events(evs(), false, 1000, &mut rng);
        let out = stanzas(&mut car);
        let plain: Vec<_> = out
            .iter()
            .filter(|s| s.get_child("otr4", crate::ns::OTR4).is_none())
            .collect();
        assert_eq!(plain.len(), 1, "{out:?}");
        assert_eq!(plain[0].attr("to"), Some("bob@x"));
        assert_eq!(crate::stanza::body(plain[0]).as_deref(), Some("?OTRv34?"));
        assert!(plain[0].get_child("private", crate::ns::CARBONS).is_some());
        assert!(
            plain[0]
                .get_child("no-permanent-store", crate::ns::HINTS)
                .is_some()
        );
        let carol: Vec<_> = out
            .iter()
            .filter(|s| s.attr("to") == Some("carol@x"))
            .collect();
        assert_eq!(
            carol.len(),
            1,
            "both of carol's texts go in one OTRv4 stanza: {out:?}"
        );
    }

    /// The first key of the libotr key file otr4's migration test keeps.
    pub(crate) fn otrv3_test_key() -> otr4::otrv3::DsaPrivateKey {
        let file = include_bytes!("../../otr4/src/v3/testdata/two.private_key");
        otr4::otrv3::read_private_keys(file).unwrap().remove(0).key
    }

    #[test]
    fn pins_are_announced_once_and_sends_become_payloads() {
        let mut rng = StdRng::seed_from_u64(7);
        let account = Account::generate(&mut rng, Policy::standalone(), 1000).unwrap();
        let mut client = Client::new(account, "alice@x");
        let mut dir = Directory::default();
        let mut car = Carriage::new(&mut rng);
        let mut prekeys = otr4::PrekeyStore::new(client.account().instance_tag());
        let mut b = Bridge {
            jid: "alice@x",
            client: &mut client,
            prekeys: &mut prekeys,
            dir: &mut dir,
            car: &mut car,
            heal: &mut crate::heal::Healing::default(),
        };
        let fp = "ab".repeat(56);
        b.pin("bob@x", InstanceTag(0x200), &fp, 1000, &mut rng);
        b.pin("bob@x", InstanceTag(0x200), &fp, 1000, &mut rng);
        b.otr_events(
            vec![Event::Send {
                to: "bob@x".into(),
                to_instance: Some(InstanceTag(0x200)),
                text: "?OTR:x.".into(),
            }],
            false,
            1000,
            &mut rng,
        );
        assert_eq!(
            b.content_trust("bob@x", InstanceTag(0x200)),
            (Trust::Changed, false)
        );
        let out = car.finish(InstanceTag(0x100));
        let trust_events = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Event(GlueEvent::TrustChanged {
                        trust: Trust::Tofu,
                        ..
                    })
                )
            })
            .count();
        assert_eq!(trust_events, 1, "{out:?}");
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Stanza(s) if s.attr("to") == Some("bob@x"))),
            "the payload is carried"
        );
        assert!(events(&mut car).is_empty());
    }
}
