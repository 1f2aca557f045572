//! The events both levels hand their caller, as one flat owned record ([`Event`]) with a
//! kind and the same few fields, mapped from `xmpp_glue::GlueEvent` and `otr4::Event`.
//!
//! The C layer copies an [`Event`] into `otr4_event`; later bindings (Python, wasm) can map
//! the same record to their own types.
#![forbid(unsafe_code)]

use otr4::{Event as OtrEvent, SmpUpdate};
use xmpp_glue::DeviceChange;
use xmpp_glue::GlueEvent;
use xmpp_glue::Trust;

/// What an event is (`otr4_event.kind`). Values never change meaning.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum otr4_event_kind {
    /// A decrypted (or, session level with `detail` 0, plaintext) message: `peer` sent
    /// `text` from `device`; `trust`, `listed`; `sent_to` set for a copy of a message one
    /// of our own devices sent.
    OTR4_EVENT_MESSAGE = 1,
    /// An encrypted session with `peer`'s `device` is up; `text` its fingerprint (hex);
    /// `detail` 1 if it came from the non-interactive DAKE (the prekey server).
    OTR4_EVENT_SECURE = 2,
    /// The session with `peer`'s `device` ended (`detail`: 0 by the peer, 1 expired, 2
    /// replaced by a new DAKE).
    OTR4_EVENT_FINISHED = 3,
    /// Trust in `peer`'s `device` changed to `trust`; `text` a note for the user. With
    /// `OTR4_TRUST_CHANGED` the user must decide: accept (`otr4_engine_accept_fingerprint`)
    /// or verify by SMP; nothing is encrypted to the device until then.
    OTR4_EVENT_TRUST = 4,
    /// SMP progress with `peer`'s `device`: `detail` an `otr4_smp`; `text` the question
    /// for `OTR4_SMP_ASK_SECRET`.
    OTR4_EVENT_SMP = 5,
    /// `peer`'s device list changed: `detail` an `otr4_device_change`, `device` the tag,
    /// `text` its fingerprint.
    OTR4_EVENT_DEVICES = 6,
    /// A message was not sent to `peer` (`device` if one): `text` why.
    OTR4_EVENT_NOT_SENT = 7,
    /// A message from `peer` (`device` if known) could not be decrypted: `text` why.
    OTR4_EVENT_UNDECRYPTABLE = 8,
    /// An error to show (`text`; `peer` when it concerns one).
    OTR4_EVENT_ERROR = 9,
    /// A warning or notice (`text`), e.g. prekeys published, device listed.
    OTR4_EVENT_INFO = 10,
    /// XMPP level: catch-up is done and we are available.
    OTR4_EVENT_ONLINE = 11,
    /// Session level: send `text` (OTR-encoded bytes) to `peer`, instance `device` (0: any).
    OTR4_EVENT_SEND = 12,
    /// The state changed: save it (`otr4_engine_save`/`otr4_session_save`) before sending
    /// the stanzas or messages this call produced. Comes last in a call's events.
    OTR4_EVENT_SAVE_STATE = 13,
    /// XMPP level: the prekey server of domain `peer` rotated its key and the pinned key
    /// signed the new one (`text`): it is pinned now.
    OTR4_EVENT_PREKEY_SERVER_KEY_ROTATED = 14,
    /// XMPP level: the prekey server of domain `peer` shows another key (`text`, its
    /// fingerprint) that the pinned key did not sign: no offline message goes to that
    /// domain until the user confirms it (`otr4_engine_accept_prekey_server_key`).
    OTR4_EVENT_PREKEY_SERVER_KEY_CHANGED = 15,
    /// Session and XMPP level: an **OTRv3** session with `peer`'s instance `device` is up
    /// (the OTRv3-compatible mode; the peer offered only version 3); `text` the peer's DSA
    /// key fingerprint (40 hex digits); at XMPP level `trust` too (the key is pinned per
    /// JID). Show it as OTRv3, never as `OTR4_EVENT_SECURE`: no
    /// offline start, no ring-signature deniability, DSA-1024, one session per contact.
    OTR4_EVENT_SECURE_V3 = 16,
}

/// Trust in a device (`otr4_event.trust`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum otr4_trust {
    /// Not applicable (session level, or no device).
    OTR4_TRUST_NONE = 0,
    /// Pinned on first use, not verified.
    OTR4_TRUST_TOFU = 1,
    /// Verified by SMP.
    OTR4_TRUST_VERIFIED = 2,
    /// The device shows another key than the pinned one: the user must decide.
    OTR4_TRUST_CHANGED = 3,
}

/// SMP progress (`otr4_event.detail` of `OTR4_EVENT_SMP`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum otr4_smp {
    /// The peer asks for the secret (`text`: the question, may be empty): call
    /// `*_smp_respond`.
    OTR4_SMP_ASK_SECRET = 1,
    /// A step passed.
    OTR4_SMP_IN_PROGRESS = 2,
    /// The secrets matched: the device is verified.
    OTR4_SMP_SUCCEEDED = 3,
    /// The secrets differ.
    OTR4_SMP_FAILED = 4,
    /// Aborted (`text`: why, may be empty).
    OTR4_SMP_ABORTED = 5,
}

/// A device-list change (`otr4_event.detail` of `OTR4_EVENT_DEVICES`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum otr4_device_change {
    /// A device appeared.
    OTR4_DEVICE_ADDED = 1,
    /// A device left the list.
    OTR4_DEVICE_REMOVED = 2,
    /// A device lists another fingerprint (`text`: the new one).
    OTR4_DEVICE_FINGERPRINT_CHANGED = 3,
    /// The list became empty (nothing is revoked).
    OTR4_DEVICE_LIST_EMPTIED = 4,
}

/// One event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What it is.
    pub kind: otr4_event_kind,
    /// The contact (bare JID) it concerns, or empty.
    pub peer: String,
    /// The device (instance tag), or 0.
    pub device: u32,
    /// Text: the message, fingerprint, question or explanation (per kind).
    pub text: String,
    /// Trust in the device.
    pub trust: otr4_trust,
    /// Whether the device is on its owner's current device list.
    pub listed: bool,
    /// A sub-kind (per kind).
    pub detail: u32,
    /// For a copy of our own message: the contact it was sent to; else empty.
    pub sent_to: String,
}

impl Event {
    /// An event of `kind` with every field empty.
    pub fn new(kind: otr4_event_kind) -> Event {
        Event {
            kind,
            peer: String::new(),
            device: 0,
            text: String::new(),
            trust: otr4_trust::OTR4_TRUST_NONE,
            listed: false,
            detail: 0,
            sent_to: String::new(),
        }
    }

    fn about(kind: otr4_event_kind, peer: &str, device: u32, text: String) -> Event {
        Event {
            peer: peer.to_owned(),
            device,
            text,
            ..Event::new(kind)
        }
    }
}

fn trust(t: Trust) -> otr4_trust {
    match t {
        Trust::Tofu => otr4_trust::OTR4_TRUST_TOFU,
        Trust::Verified => otr4_trust::OTR4_TRUST_VERIFIED,
        Trust::Changed => otr4_trust::OTR4_TRUST_CHANGED,
    }
}

fn smp(u: &SmpUpdate) -> (otr4_smp, String) {
    match u {
        SmpUpdate::AskForSecret { question } => (
            otr4_smp::OTR4_SMP_ASK_SECRET,
            question.clone().unwrap_or_default(),
        ),
        SmpUpdate::InProgress => (otr4_smp::OTR4_SMP_IN_PROGRESS, String::new()),
        SmpUpdate::Succeeded => (otr4_smp::OTR4_SMP_SUCCEEDED, String::new()),
        SmpUpdate::Failed => (otr4_smp::OTR4_SMP_FAILED, String::new()),
        SmpUpdate::Aborted { reason } => (
            otr4_smp::OTR4_SMP_ABORTED,
            reason
                .as_ref()
                .map(|r| format!("{r:?}"))
                .unwrap_or_default(),
        ),
    }
}

/// The event for an XMPP-level engine event.
pub fn from_glue(e: GlueEvent) -> Event {
    use otr4_event_kind::*;
    match e {
        GlueEvent::Online => Event::new(OTR4_EVENT_ONLINE),
        GlueEvent::Message {
            from,
            device,
            text,
            sent_to,
            trust: t,
            listed,
        } => Event {
            trust: trust(t),
            listed,
            sent_to: sent_to.unwrap_or_default(),
            detail: 1,
            ..Event::about(OTR4_EVENT_MESSAGE, &from, device.0, text)
        },
        GlueEvent::Secure {
            peer,
            device,
            fingerprint,
            trust: t,
            non_interactive,
        } => Event {
            trust: trust(t),
            detail: u32::from(non_interactive),
            ..Event::about(OTR4_EVENT_SECURE, &peer, device.0, fingerprint)
        },
        GlueEvent::DevicesChanged { jid, change } => {
            let (detail, tag, fp) = match change {
                DeviceChange::Added(d) => {
                    (otr4_device_change::OTR4_DEVICE_ADDED, d.tag, d.fingerprint)
                }
                DeviceChange::Removed(d) => (
                    otr4_device_change::OTR4_DEVICE_REMOVED,
                    d.tag,
                    d.fingerprint,
                ),
                DeviceChange::FingerprintChanged { new, .. }
                | DeviceChange::Replaced { new, .. } => (
                    otr4_device_change::OTR4_DEVICE_FINGERPRINT_CHANGED,
                    new.tag,
                    new.fingerprint,
                ),
                DeviceChange::Emptied => (
                    otr4_device_change::OTR4_DEVICE_LIST_EMPTIED,
                    0,
                    String::new(),
                ),
            };
            Event {
                detail: detail as u32,
                ..Event::about(OTR4_EVENT_DEVICES, &jid, tag, fp)
            }
        }
        GlueEvent::DeviceListIssue { jid, issue } => {
            Event::about(OTR4_EVENT_INFO, &jid, 0, format!("device list: {issue}"))
        }
        GlueEvent::TrustChanged {
            jid,
            device,
            trust: t,
            note,
        } => Event {
            trust: trust(t),
            ..Event::about(OTR4_EVENT_TRUST, &jid, device.0, note)
        },
        GlueEvent::Smp {
            peer,
            device,
            update,
            trust: t,
            listed,
        } => {
            let (d, text) = smp(&update);
            Event {
                trust: trust(t),
                listed,
                detail: d as u32,
                ..Event::about(OTR4_EVENT_SMP, &peer, device.0, text)
            }
        }
        GlueEvent::Undecryptable {
            from,
            device,
            error,
            ..
        } => Event::about(
            OTR4_EVENT_UNDECRYPTABLE,
            &from,
            device.map_or(0, |d| d.0),
            error.to_string(),
        ),
        GlueEvent::NotSent { to, device, reason } => Event::about(
            OTR4_EVENT_NOT_SENT,
            &to,
            device.map_or(0, |d| d.0),
            reason.to_string(),
        ),
        GlueEvent::Published { prekeys } => Event::about(
            OTR4_EVENT_INFO,
            "",
            0,
            format!("{prekeys} prekeys published"),
        ),
        GlueEvent::Listed => Event::about(
            OTR4_EVENT_INFO,
            "",
            0,
            "this device is on the account's device list".to_owned(),
        ),
        GlueEvent::PrekeyServer(pin) => Event::about(
            OTR4_EVENT_INFO,
            &pin.jid,
            0,
            format!("prekey server {} pinned ({})", pin.jid, pin.fingerprint),
        ),
        GlueEvent::PrekeyServerKeyRotated { domain, new, .. } => {
            Event::about(OTR4_EVENT_PREKEY_SERVER_KEY_ROTATED, &domain, 0, new)
        }
        GlueEvent::PrekeyServerKeyChanged {
            domain, offered, ..
        } => Event::about(OTR4_EVENT_PREKEY_SERVER_KEY_CHANGED, &domain, 0, offered),
        GlueEvent::SecureV3 {
            peer,
            device,
            fingerprint,
            trust: t,
        } => Event {
            trust: trust(t),
            ..Event::about(OTR4_EVENT_SECURE_V3, &peer, device.0, fingerprint)
        },
        GlueEvent::Error(e) => Event::about(OTR4_EVENT_ERROR, "", 0, e.to_string()),
        GlueEvent::Otr(e) => from_otr(e),
        other => Event::about(OTR4_EVENT_INFO, "", 0, format!("{other:?}")),
    }
}

/// The event for a session-level (`otr4::Client`) event.
pub fn from_otr(e: OtrEvent) -> Event {
    use otr4_event_kind::*;
    match e {
        OtrEvent::Send {
            to,
            to_instance,
            text,
        } => Event::about(OTR4_EVENT_SEND, &to, to_instance.map_or(0, |t| t.0), text),
        OtrEvent::Received {
            from,
            from_instance,
            text,
            encrypted,
            ..
        } => Event {
            detail: u32::from(encrypted),
            ..Event::about(
                OTR4_EVENT_MESSAGE,
                &from,
                from_instance.map_or(0, |t| t.0),
                text,
            )
        },
        OtrEvent::Secure {
            peer,
            instance,
            their_fingerprint,
            key_accepted,
            ..
        } => Event {
            trust: if key_accepted {
                otr4_trust::OTR4_TRUST_TOFU
            } else {
                otr4_trust::OTR4_TRUST_NONE
            },
            ..Event::about(
                OTR4_EVENT_SECURE,
                &peer,
                instance.0,
                hex::encode(their_fingerprint.0),
            )
        },
        OtrEvent::SecureV3 {
            peer,
            instance,
            their_fingerprint,
            ..
        } => Event::about(
            OTR4_EVENT_SECURE_V3,
            &peer,
            instance.0,
            hex::encode(their_fingerprint.0),
        ),
        OtrEvent::Finished { peer, instance } => {
            Event::about(OTR4_EVENT_FINISHED, &peer, instance.0, String::new())
        }
        OtrEvent::Disconnected {
            peer,
            instance,
            reason,
        } => {
            use otr4::DisconnectReason as D;
            let detail = match reason {
                D::UserEnded => 0,
                D::Expired => 1,
                D::SwitchingDake => 2,
            };
            Event {
                detail,
                ..Event::about(
                    OTR4_EVENT_FINISHED,
                    &peer,
                    instance.0,
                    format!("{reason:?}"),
                )
            }
        }
        OtrEvent::Smp {
            peer,
            instance,
            update,
        } => {
            let (d, text) = smp(&update);
            Event {
                detail: d as u32,
                ..Event::about(OTR4_EVENT_SMP, &peer, instance.0, text)
            }
        }
        OtrEvent::PeerError { peer, code, text } => Event::about(
            OTR4_EVENT_ERROR,
            &peer,
            0,
            format!("the peer reported {code:?}: {text}"),
        ),
        OtrEvent::Warning {
            peer,
            instance,
            warning,
        } => Event::about(
            OTR4_EVENT_INFO,
            &peer,
            instance.map_or(0, |t| t.0),
            format!("{warning:?}"),
        ),
        OtrEvent::Error {
            peer,
            instance,
            error,
        } => Event::about(
            OTR4_EVENT_ERROR,
            &peer,
            instance.map_or(0, |t| t.0),
            error.to_string(),
        ),
        OtrEvent::NotSent {
            peer,
            instance,
            reason,
            ..
        } => Event::about(
            OTR4_EVENT_NOT_SENT,
            &peer,
            instance.map_or(0, |t| t.0),
            format!("{reason:?}"),
        ),
        OtrEvent::ExtraSymmetricKey { peer, instance, .. } => Event::about(
            OTR4_EVENT_INFO,
            &peer,
            instance.0,
            "the peer used the extra symmetric key (not exposed over the C ABI)".to_owned(),
        ),
        other => Event::about(OTR4_EVENT_INFO, "", 0, format!("{other:?}")),
    }
}

#[cfg(test)]
mod v3_tests {
    use super::*;

    /// An OTRv3 session is its own kind at the C ABI, never `OTR4_EVENT_SECURE`.
    #[test]
    fn secure_v3_maps_to_its_own_kind() {
        let e = from_otr(OtrEvent::SecureV3 {
            peer: "bob@example.org".into(),
            instance: otr4::InstanceTag(0x1234),
            ssid: [1; 8],
            bold_half: 0,
            their_fingerprint: otr4::otrv3::V3Fingerprint([0xab; 20]),
        });
        assert_eq!(e.kind, otr4_event_kind::OTR4_EVENT_SECURE_V3);
        assert_eq!(e.text, "ab".repeat(20));
    }
}
