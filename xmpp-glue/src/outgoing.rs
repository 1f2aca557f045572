//! Sending one text (docs/xmpp-glue.md §4): to every listed device of the contact and a
//! copy to each of our other devices, each in its session, by a new interactive DAKE if it
//! is online, or through its ensembles from the prekey server.

use otr4::InstanceTag;
use otr4::conversation::ConversationState;
use rand_core::CryptoRng;

use crate::carriage::sent_to_tlv;
use crate::error::NotSentReason;
use crate::events::GlueEvent;
use crate::otr_bridge::Bridge;
use crate::prekey_link::{PrekeyLink, Waiting};
use crate::requests::Requests;

/// Sends `text` to every device of `to` and copies to our other devices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch<R: CryptoRng + ?Sized>(
    b: &mut Bridge<'_>,
    link: &mut PrekeyLink,
    reqs: &mut Requests,
    online: bool,
    to: &str,
    text: &str,
    now: i64,
    rng: &mut R,
) {
    let me = b.tag();
    let own = b.jid.to_owned();
    let targets = b.dir.devices_of(to, &own, me);
    if targets.is_empty() && to != own {
        b.car.emit(GlueEvent::NotSent {
            to: to.to_owned(),
            device: None,
            reason: NotSentReason::NoDevices,
        });
    }
    for tag in targets {
        send_device(b, link, reqs, online, to, tag, text, None, now, rng);
    }
    if to != own {
        for tag in b.dir.devices_of(&own, &own, me) {
            send_device(b, link, reqs, online, &own, tag, text, Some(to), now, rng);
        }
    }
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
    sent_to: Option<&str>,
    now: i64,
    rng: &mut R,
) {
    let tlvs = sent_to_tlv(sent_to);
    if !b.dir.usable(to, tag) {
        b.car.emit(GlueEvent::NotSent {
            to: to.to_owned(),
            device: Some(tag),
            reason: NotSentReason::KeyChanged,
        });
        return;
    }
    let state = b.client.conversation(to, tag).map(|c| c.state());
    match state {
        Some(ConversationState::Encrypted)
        | Some(ConversationState::WaitingAuthR)
        | Some(ConversationState::WaitingAuthI) => {
            let evs = b.client.send_to(to, tag, text, &tlvs, now, rng);
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
        let evs = b.client.send_to(to, tag, text, &tlvs, now, rng);
        b.otr_events(evs, false, now, rng);
        return;
    }
    let w = Waiting {
        tag,
        text: text.to_owned(),
        sent_to: sent_to.map(str::to_owned),
    };
    link.send_offline(b, reqs, to, w, online, now, rng);
}
