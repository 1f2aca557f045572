//! The events both levels hand Python: `otr4_ffi::core::events::Event` as a record whose
//! kind, trust, SMP state and device change are enums instead of numbers.

use otr4_ffi::core::events::{
    Event as CoreEvent, otr4_device_change, otr4_event_kind, otr4_smp, otr4_trust,
};

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EventKind {
    /// A message: `peer` sent `text` from `device` (session level: `encrypted` says
    /// whether it was); `sent_to` is set for a copy of a message one of our own devices
    /// sent.
    Message,
    /// An encrypted session with `peer`'s `device` is up; `text` is its fingerprint (hex);
    /// `non_interactive` if it came through the prekey server.
    Secure,
    /// The session with `peer`'s `device` ended (`text`: why, may be empty).
    Finished,
    /// Trust in `peer`'s `device` changed to `trust`; `text` a note for the user. With
    /// `Trust.CHANGED` the user must decide: `accept_fingerprint` or verify by SMP.
    Trust,
    /// SMP progress with `peer`'s `device`: `smp`; `text` the question for `ASK_SECRET`.
    Smp,
    /// `peer`'s device list changed: `device_change`, `device` the tag, `text` its
    /// fingerprint.
    Devices,
    /// A message was not sent to `peer` (`device` if one): `text` why.
    NotSent,
    /// A message from `peer` could not be decrypted: `text` why.
    Undecryptable,
    /// An error to show (`text`; `peer` when it concerns one).
    Error,
    /// A warning or notice (`text`).
    Info,
    /// XMPP level: catch-up is done and we are available.
    Online,
    /// Session level: send `text` (an OTR message) to `peer`, instance `device` (0: any).
    Send,
    /// The state changed: save it before sending what this call produced. Comes last.
    SaveState,
    /// The prekey server of domain `peer` rotated its key, signed by the pinned one: the
    /// new key (`text`) is pinned.
    PrekeyServerKeyRotated,
    /// The prekey server of domain `peer` shows another key (`text`) the pinned one did not
    /// sign: no offline message to that domain until `accept_prekey_server_key`.
    PrekeyServerKeyChanged,
    /// Session level: an OTRv3 session with `peer`'s `device` is up (the peer offered only
    /// version 3); `text` its DSA fingerprint. Show it as OTRv3: no offline start, no
    /// ring-signature deniability, DSA-1024, one session per contact.
    SecureV3,
}

/// Trust in a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Trust {
    /// Not applicable (session level, or no device).
    None,
    /// Pinned on first use, not verified.
    Tofu,
    /// Verified by SMP.
    Verified,
    /// The device shows another key than the pinned one: the user must decide.
    Changed,
}

/// SMP progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SmpState {
    /// The peer asks for the secret (`text`: the question): call `smp_respond`.
    AskSecret,
    /// A step passed.
    InProgress,
    /// The secrets matched: the device is verified.
    Succeeded,
    /// The secrets differ.
    Failed,
    /// Aborted (`text`: why, may be empty).
    Aborted,
}

/// A device-list change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DeviceChange {
    /// A device appeared.
    Added,
    /// A device left the list.
    Removed,
    /// A device lists another fingerprint (`text`: the new one).
    FingerprintChanged,
    /// The list became empty (nothing is revoked).
    ListEmptied,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Event {
    /// What it is.
    pub kind: EventKind,
    /// The contact (bare JID at the XMPP level, the account name at the session level) it
    /// concerns, or empty.
    pub peer: String,
    /// The device (instance tag), or 0.
    pub device: u32,
    /// The message, fingerprint, question or explanation (per kind).
    pub text: String,
    /// Trust in the device.
    pub trust: Trust,
    /// Whether the device is on its owner's current device list (XMPP level).
    pub listed: bool,
    /// `Message`: whether it was encrypted (always at the XMPP level).
    pub encrypted: bool,
    /// `Secure`: whether the session came from the non-interactive DAKE.
    pub non_interactive: bool,
    /// `Smp`: the progress.
    pub smp: Option<SmpState>,
    /// `Devices`: the change.
    pub device_change: Option<DeviceChange>,
    /// For a copy of our own message: the contact it was sent to.
    pub sent_to: Option<String>,
}

fn kind(k: otr4_event_kind) -> EventKind {
    use otr4_event_kind::*;
    match k {
        OTR4_EVENT_MESSAGE => EventKind::Message,
        OTR4_EVENT_SECURE => EventKind::Secure,
        OTR4_EVENT_FINISHED => EventKind::Finished,
        OTR4_EVENT_TRUST => EventKind::Trust,
        OTR4_EVENT_SMP => EventKind::Smp,
        OTR4_EVENT_DEVICES => EventKind::Devices,
        OTR4_EVENT_NOT_SENT => EventKind::NotSent,
        OTR4_EVENT_UNDECRYPTABLE => EventKind::Undecryptable,
        OTR4_EVENT_ERROR => EventKind::Error,
        OTR4_EVENT_INFO => EventKind::Info,
        OTR4_EVENT_ONLINE => EventKind::Online,
        OTR4_EVENT_SEND => EventKind::Send,
        OTR4_EVENT_SAVE_STATE => EventKind::SaveState,
        OTR4_EVENT_PREKEY_SERVER_KEY_ROTATED => EventKind::PrekeyServerKeyRotated,
        OTR4_EVENT_PREKEY_SERVER_KEY_CHANGED => EventKind::PrekeyServerKeyChanged,
        OTR4_EVENT_SECURE_V3 => EventKind::SecureV3,
    }
}

fn trust(t: otr4_trust) -> Trust {
    match t {
        otr4_trust::OTR4_TRUST_NONE => Trust::None,
        otr4_trust::OTR4_TRUST_TOFU => Trust::Tofu,
        otr4_trust::OTR4_TRUST_VERIFIED => Trust::Verified,
        otr4_trust::OTR4_TRUST_CHANGED => Trust::Changed,
    }
}

fn smp(detail: u32) -> Option<SmpState> {
    use otr4_smp::*;
    [
        (OTR4_SMP_ASK_SECRET, SmpState::AskSecret),
        (OTR4_SMP_IN_PROGRESS, SmpState::InProgress),
        (OTR4_SMP_SUCCEEDED, SmpState::Succeeded),
        (OTR4_SMP_FAILED, SmpState::Failed),
        (OTR4_SMP_ABORTED, SmpState::Aborted),
    ]
    .into_iter()
    .find(|(c, _)| *c as u32 == detail)
    .map(|(_, s)| s)
}

fn device_change(detail: u32) -> Option<DeviceChange> {
    use otr4_device_change::*;
    [
        (OTR4_DEVICE_ADDED, DeviceChange::Added),
        (OTR4_DEVICE_REMOVED, DeviceChange::Removed),
        (
            OTR4_DEVICE_FINGERPRINT_CHANGED,
            DeviceChange::FingerprintChanged,
        ),
        (OTR4_DEVICE_LIST_EMPTIED, DeviceChange::ListEmptied),
    ]
    .into_iter()
    .find(|(c, _)| *c as u32 == detail)
    .map(|(_, s)| s)
}

impl From<CoreEvent> for Event {
    fn from(e: CoreEvent) -> Event {
        let k = kind(e.kind);
        Event {
            kind: k,
            peer: e.peer,
            device: e.device,
            text: e.text,
            trust: trust(e.trust),
            listed: e.listed,
            encrypted: k == EventKind::Message && e.detail == 1,
            non_interactive: k == EventKind::Secure && e.detail == 1,
            smp: (k == EventKind::Smp).then(|| smp(e.detail)).flatten(),
            device_change: (k == EventKind::Devices)
                .then(|| device_change(e.detail))
                .flatten(),
            sent_to: (!e.sent_to.is_empty()).then_some(e.sent_to),
        }
    }
}
