//! Sending one text (docs/xmpp-glue.md §4): to every listed device of the contact and a
//! copy to each of our other devices, each in its session, by a new interactive DAKE if it
//! is online, or through its ensembles from the prekey server.

use otr4::ConversationState;
use otr4::InstanceTag;
use rand_core::CryptoRng;

use crate::carriage::{ExtraTlvs, MAX_WAITING, sent_to_tlv};
use crate::error::NotSentReason;
use crate::events::GlueEvent;
use crate::heal::Held;
use crate::otr_bridge::Bridge;
use crate::prekey_link::{PrekeyLink, Waiting};
use crate::requests::Requests;

/// Sends `text` (with the TLVs `extra`, e.g. a file offer) to every device of `to` and
/// copies to our other devices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch<R: CryptoRng + ?Sized>(
    b: &mut Bridge<'_>,
    link: &mut PrekeyLink,
    reqs: &mut Requests,
    online: bool,
    to: &str,
    text: &str,
    extra: &ExtraTlvs,
    now: i64,
    rng: &mut R,
) {
    let me = b.tag();
    let own = b.jid.to_owned();
    let targets = b.dir.devices_of(to, &own, me);
    if targets.is_empty() && to != own && b.v3_enabled() && extra.0.is_empty() {
        return to_v3(b, to, text, now, rng);
    }
    if targets.is_empty() && to != own {
        b.car.emit(GlueEvent::NotSent {
            to: to.to_owned(),
            device: None,
            reason: NotSentReason::NoDevices,
        });
    }
    b.car.user_message(to, targets.clone());
    for tag in targets {
        send_device(b, link, reqs, online, to, tag, text, extra, None, now, rng);
    }
    if to != own {
        let ours = b.dir.devices_of(&own, &own, me);
        b.car.user_message(&own, ours.clone());
        for tag in ours {
            send_device(
                b,
                link,
                reqs,
                online,
                &own,
                tag,
                text,
                extra,
                Some(to),
                now,
                rng,
            );
        }
    }
}

/// A contact without an OTRv4 device, with OTRv3 on (docs/xmpp-glue.md §11): the text goes
/// in its OTRv3 session, or waits for one — the first waiting text sends a query message
/// offering versions 3 and 4 (otrv4.md §"User requests to start an OTR conversation"); a
/// session the contact finished is ended and started again, as for a device. Nothing is
/// copied to our other devices (each has its own OTRv3 session, if any).
fn to_v3<R: CryptoRng + ?Sized>(b: &mut Bridge<'_>, to: &str, text: &str, now: i64, rng: &mut R) {
    match b.v3_session(to) {
        Some((tag, Some(fp))) => {
            let trust = b.dir.v3_trust(to, &fp);
            return b.send_v3(to, tag, trust, text, now, rng);
        }
        Some((tag, None)) => {
            let evs = b.client.end(to, Some(tag), now, rng);
            b.otr_events(evs, false, now, rng);
        }
        None => {}
    }
    match b.dir.wait_for_v3(to, text, MAX_WAITING) {
        None => b.car.emit(GlueEvent::NotSent {
            to: to.to_owned(),
            device: None,
            reason: NotSentReason::QueueFull,
        }),
        Some(1) => {
            let evs = b.client.start(to, now, rng);
            b.otr_events(evs, false, now, rng);
        }
        Some(_) => {}
    }
}

/// A text held for a repair whose new session never came: sent the usual way.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_one<R: CryptoRng + ?Sized>(
    b: &mut Bridge<'_>,
    link: &mut PrekeyLink,
    reqs: &mut Requests,
    online: bool,
    to: &str,
    tag: InstanceTag,
    h: Held,
    now: i64,
    rng: &mut R,
) {
    let sent_to = h.sent_to.as_deref();
    send_device(
        b, link, reqs, online, to, tag, &h.text, &h.extra, sent_to, now, rng,
    );
}

/// One device (`sent_to`: for a copy to our own device, the contact the text went to).
#[allow(clippy::too_many_arguments)]
fn send_device<R: CryptoRng + ?Sized>(
    b: &mut Bridge<'_>,
    link: &mut PrekeyLink,
    reqs: &mut Requests,
    online: bool,
    to: &str,
    tag: InstanceTag,
    text: &str,
    extra: &ExtraTlvs,
    sent_to: Option<&str>,
    now: i64,
    rng: &mut R,
) {
    let mut tlvs = ExtraTlvs(sent_to_tlv(sent_to));
    tlvs.0.extend(extra.0.iter().cloned());
    if !b.dir.usable(to, tag) {
        b.car.emit(GlueEvent::NotSent {
            to: to.to_owned(),
            device: Some(tag),
            reason: NotSentReason::KeyChanged,
        });
        return;
    }
    if b.heal.in_flight(to, tag) {
        // The device could not read our last message: this one waits for the repaired
        // session (crate::heal), it would be unreadable in the old one.
        let h = Held {
            text: text.to_owned(),
            extra: extra.clone(),
            sent_to: sent_to.map(str::to_owned),
        };
        if !b.heal.hold(to, tag, h) {
            b.car.emit(GlueEvent::NotSent {
                to: to.to_owned(),
                device: Some(tag),
                reason: NotSentReason::QueueFull,
            });
        }
        return;
    }
    let state = b.client.conversation(to, tag).map(|c| c.state());
    match state {
        Some(ConversationState::Encrypted)
        | Some(ConversationState::WaitingAuthR)
        | Some(ConversationState::WaitingAuthI) => {
            let evs = b.client.send_to(to, tag, text, &tlvs.0, now, rng);
            b.otr_events(evs, false, now, rng);
            return;
        }
        Some(ConversationState::Finished) => {
            let evs = b.client.end(to, Some(tag), now, rng);
            b.otr_events(evs, false, now, rng);
        }
        Some(ConversationState::Start) | None => {}
    }
    if b.dir.is_online(to, tag) {
        let evs = b.client.start_dake(to, Some(tag), now, rng);
        b.otr_events(evs, false, now, rng);
        let evs = b.client.send_to(to, tag, text, &tlvs.0, now, rng);
        b.otr_events(evs, false, now, rng);
        return;
    }
    let w = Waiting {
        tag,
        text: text.to_owned(),
        extra: extra.clone(),
        sent_to: sent_to.map(str::to_owned),
    };
    link.send_offline(b, reqs, to, w, online, now, rng);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Output;
    use crate::carriage::Carriage;
    use crate::devices::{DeviceEntry, DeviceList};
    use crate::directory::Directory;
    use otr4::{Account, Client, Policy};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::BTreeMap;

    fn reasons(out: &[Output]) -> Vec<(String, Option<InstanceTag>, NotSentReason)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(GlueEvent::NotSent { to, device, reason }) => {
                    Some((to.clone(), *device, reason.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_devices_changed_keys_and_offline_devices() {
        let mut rng = StdRng::seed_from_u64(5);
        let account = Account::generate(&mut rng, Policy::standalone(), 1000).unwrap();
        let mut client = Client::new(account, "alice@x");
        let mut dir = Directory::default();
        let mut car = Carriage::new(&mut rng);
        let mut reqs = Requests::default();
        let mut link = PrekeyLink::new(
            "alice@x",
            BTreeMap::new(),
            BTreeMap::new(),
            false,
            crate::DEFAULT_REFILL,
        );
        let (t1, t2) = (InstanceTag(0x201), InstanceTag(0x202));
        let entry = |tag: InstanceTag| DeviceEntry {
            tag: tag.0,
            fingerprint: "aa".into(),
            label: "d".into(),
            seen: 1000,
        };
        dir.set_contact_list(
            "bob@y",
            DeviceList {
                devices: vec![entry(t1), entry(t2)],
            },
        );
        dir.pin("bob@y", t1, "aa");
        dir.pin("bob@y", t1, "bb"); // t1's key changed
        let mut prekeys = otr4::PrekeyStore::new(client.account().instance_tag());
        let mut b = Bridge {
            jid: "alice@x",
            client: &mut client,
            prekeys: &mut prekeys,
            dir: &mut dir,
            car: &mut car,
            heal: &mut crate::heal::Healing::default(),
        };
        dispatch(
            &mut b,
            &mut link,
            &mut reqs,
            true,
            "carol@y",
            "hi",
            &ExtraTlvs::default(),
            1000,
            &mut rng,
        );
        dispatch(
            &mut b,
            &mut link,
            &mut reqs,
            true,
            "bob@y",
            "hi",
            &ExtraTlvs::default(),
            1000,
            &mut rng,
        );
        let out = car.finish(InstanceTag(0x100));
        assert_eq!(
            reasons(&out),
            vec![
                ("carol@y".to_owned(), None, NotSentReason::NoDevices),
                ("bob@y".to_owned(), Some(t1), NotSentReason::KeyChanged),
            ]
        );
        // t2 is offline and no prekey server is known for y: its domain is discovered.
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Stanza(s) if s.attr("to") == Some("y"))),
            "{out:?}"
        );
        assert!(reqs.any(|p| p.discovers("y")));
    }

    #[test]
    fn with_otrv3_on_texts_to_a_contact_without_devices_wait_behind_one_query() {
        let mut rng = StdRng::seed_from_u64(6);
        let policy = Policy {
            mode: otr4::Mode::Otrv3Compatible,
            versions: otr4::Versions::V3_AND_V4,
            ..crate::store::device_policy()
        };
        let account = Account::generate(&mut rng, policy, 1000).unwrap();
        let mut client = Client::new(account, "alice@x");
        client.set_v3_key(crate::otr_bridge::tests::otrv3_test_key());
        let mut dir = Directory::default();
        let mut car = Carriage::new(&mut rng);
        let mut reqs = Requests::default();
        let mut link = PrekeyLink::new(
            "alice@x",
            BTreeMap::new(),
            BTreeMap::new(),
            false,
            crate::DEFAULT_REFILL,
        );
        let mut prekeys = otr4::PrekeyStore::new(client.account().instance_tag());
        let mut b = Bridge {
            jid: "alice@x",
            client: &mut client,
            prekeys: &mut prekeys,
            dir: &mut dir,
            car: &mut car,
            heal: &mut crate::heal::Healing::default(),
        };
        for text in ["one", "two"] {
            dispatch(
                &mut b,
                &mut link,
                &mut reqs,
                true,
                "carol@y",
                text,
                &ExtraTlvs::default(),
                1000,
                &mut rng,
            );
        }
        let out = car.finish(InstanceTag(0x100));
        assert!(reasons(&out).is_empty(), "{out:?}");
        let bodies: Vec<String> = out
            .iter()
            .filter_map(|o| match o {
                Output::Stanza(s) if s.attr("to") == Some("carol@y") => {
                    assert!(s.get_child("otr4", crate::ns::OTR4).is_none(), "{s:?}");
                    crate::stanza::body(s)
                }
                _ => None,
            })
            .collect();
        assert_eq!(bodies.len(), 1, "one query for both texts: {out:?}");
        assert!(bodies[0].starts_with("?OTRv34?"), "{bodies:?}");
        assert_eq!(dir.take_waiting_v3("carol@y"), vec!["one", "two"]);
    }
}
