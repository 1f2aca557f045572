//! What the engine hands its caller: stanzas to send and events for the application
//! ([`Output`], [`GlueEvent`]), and the counters of what it refused ([`EngineStats`]).

use minidom::Element;
use otr4::InstanceTag;
use otr4::{ConversationError, ErrorCode, Event, SmpUpdate};

use crate::devices::{DeviceChange, ListIssue};
use crate::error::{GlueError, NotSentReason};
use crate::file::FileError;
use crate::heal::RepairAction;
use crate::state::ServerPin;
use crate::transfer::{Download, ReceivedFile, TransferId, Upload};
use crate::trust::Trust;

/// What the application is told.
#[derive(Debug)]
#[non_exhaustive]
pub enum GlueEvent {
    /// Catch-up is done and we are available.
    Online,
    /// A decrypted message.
    Message {
        /// The sender's bare JID.
        from: String,
        /// The sending device.
        device: InstanceTag,
        /// The text.
        text: String,
        /// For a copy from another device of ours: the contact it was sent to.
        sent_to: Option<String>,
        /// How much the sending device's key is trusted: [`Trust::Changed`] when the
        /// session's key is not the pinned one (the user has not accepted it), whatever
        /// the device list says.
        trust: Trust,
        /// Whether the device is on the sender's current device list (a device the
        /// contact — or our account — does not list may be stale or foreign).
        listed: bool,
    },
    /// An encrypted session with a device is up.
    Secure {
        /// The peer's bare JID.
        peer: String,
        /// The device.
        device: InstanceTag,
        /// Its fingerprint (hex).
        fingerprint: String,
        /// How much it is trusted.
        trust: Trust,
        /// Whether the session came from the non-interactive DAKE (through the prekey
        /// server; otrv4.md §"Non-Interactive DAKE": the responder has no online
        /// deniability).
        non_interactive: bool,
    },
    /// An OTRv3 session is up with a contact whose client offers only OTRv3 (otrv4.md
    /// §"OTRv3-compatible mode"; [`crate::Engine::enable_otrv3`]). Weaker than
    /// [`GlueEvent::Secure`], and the application must say so: one device only (no device
    /// list, no copies to our other devices), no offline start, the DSA signature of the v3
    /// AKE is not deniable the way OTRv4's ring signature is, and the keys are 1536-bit
    /// Diffie-Hellman and DSA-1024.
    SecureV3 {
        /// The contact's bare JID.
        peer: String,
        /// The contact's OTRv3 instance tag.
        device: InstanceTag,
        /// The contact's OTRv3 fingerprint: 40 hex digits (libotr and Pidgin show them
        /// upper-case, in five groups of eight).
        fingerprint: String,
        /// How much the key is trusted (pinned per JID on first use).
        trust: Trust,
    },
    /// A contact's (or our own account's) device set changed.
    DevicesChanged {
        /// Whose list.
        jid: String,
        /// What changed.
        change: DeviceChange,
    },
    /// Something in a device list was dropped.
    DeviceListIssue {
        /// Whose list.
        jid: String,
        /// What.
        issue: ListIssue,
    },
    /// Trust in a device changed.
    TrustChanged {
        /// The contact.
        jid: String,
        /// The device.
        device: InstanceTag,
        /// The new trust.
        trust: Trust,
        /// A warning for the user (new device, changed key, verified).
        note: String,
    },
    /// SMP progress with a device.
    Smp {
        /// The peer.
        peer: String,
        /// The device.
        device: InstanceTag,
        /// What happened.
        update: SmpUpdate,
        /// The device's trust (as for [`GlueEvent::Message`]).
        trust: Trust,
        /// Whether the device is on the peer's current device list.
        listed: bool,
    },
    /// A payload for this device could not be processed (never dropped silently). When
    /// it was a data message of a session this device cannot read (e.g. restored from an
    /// old backup: `error` is [`ConversationError::Unreadable`] or
    /// [`ConversationError::NotInPrivateState`]), the sender was told with an OTR error
    /// message and repairs the session ([`GlueEvent::SessionRepair`] on its side).
    Undecryptable {
        /// The sender.
        from: String,
        /// The sending device, if known.
        device: Option<InstanceTag>,
        /// Why.
        error: ConversationError,
        /// The message's XEP-0359 origin id (the sender's stanza id), if it had one.
        message: Option<String>,
    },
    /// A device could not read a message we sent it: it answered with an OTR error
    /// message (otrv4.md §"OTR Error Messages"), e.g. because it was restored from an old
    /// backup. The message is not sent again; `action` says how the session is repaired
    /// (a [`GlueEvent::Secure`] follows when the new session is up, and texts written
    /// meanwhile wait for it).
    SessionRepair {
        /// The peer's bare JID.
        peer: String,
        /// Its device.
        device: InstanceTag,
        /// What the device reported.
        code: ErrorCode,
        /// The origin id (our stanza id) of the message it could not read, if it said.
        message: Option<String>,
        /// What was done.
        action: RepairAction,
    },
    /// A user message came that was not encrypted for this device: its stanza names the
    /// devices its sender knows, and not this one ("not encrypted for this device"). Our own device list is read again and
    /// our entry published again (added if missing), so the sender's next message
    /// includes this device.
    NotForThisDevice {
        /// The sender's bare JID.
        from: String,
        /// The sending device.
        device: InstanceTag,
        /// The message's XEP-0359 origin id, if it had one.
        message: Option<String>,
        /// Whether our entry is announced again (at most once per
        /// [`crate::REANNOUNCE_INTERVAL_SECS`]; never after another device of ours
        /// removed this one).
        reannounced: bool,
    },
    /// A message was not sent to a device.
    NotSent {
        /// The contact.
        to: String,
        /// The device, if one.
        device: Option<InstanceTag>,
        /// Why.
        reason: NotSentReason,
    },
    /// Our prekeys were published.
    Published {
        /// How many prekey messages.
        prekeys: usize,
    },
    /// Our device is now on our account's device list.
    Listed,
    /// A prekey server was found and pinned (or its new key accepted by the user).
    PrekeyServer(ServerPin),
    /// A domain's prekey server rotated its key and the pinned key signed the new one
    /// (docs/spec-notes.md §"Prekey server key rotation"): the new key is pinned.
    PrekeyServerKeyRotated {
        /// The domain.
        domain: String,
        /// The fingerprint pinned before (hex).
        old: String,
        /// The fingerprint pinned now (hex).
        new: String,
    },
    /// A domain's prekey server shows another key, not signed by the pinned one (a lost
    /// key, or an impostor): no offline message goes to that domain until the user
    /// confirms `offered` ([`crate::Engine::accept_prekey_server_key`]).
    PrekeyServerKeyChanged {
        /// The domain.
        domain: String,
        /// The fingerprint pinned (hex).
        pinned: String,
        /// The fingerprint the server shows now (hex).
        offered: String,
    },
    /// A file arrived and verified (docs/xmpp-glue.md §9).
    File(Box<ReceivedFile>),
    /// A file was uploaded and its offer sent to every device of the contact (and our
    /// other devices).
    FileSent {
        /// The transfer ([`crate::Engine::send_file`]).
        transfer: TransferId,
        /// The contact.
        to: String,
    },
    /// A file transfer failed; nothing of the file is handed out.
    FileFailed {
        /// The transfer.
        transfer: TransferId,
        /// The contact (sending) or the sender (receiving).
        peer: String,
        /// Why.
        error: FileError,
    },
    /// An error of the glue.
    Error(GlueError),
    /// Any other otr4 event (warnings, state changes), passed through.
    Otr(Event),
}

/// What the engine asks its caller to do: send a stanza, or show an event. Persist the
/// state ([`crate::Engine::export`]) before sending the stanzas of a call.
#[derive(Debug)]
pub enum Output {
    /// Send this stanza (`jabber:client`).
    Stanza(Element),
    /// Tell the application.
    Event(GlueEvent),
    /// Upload a file's ciphertext, then call [`crate::Engine::upload_done`].
    Upload(Upload),
    /// Download a file's ciphertext, then call [`crate::Engine::download_done`].
    Download(Download),
}

/// What the engine refused because of who sent it (security counters; see
/// [`crate::Engine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// IQ results or errors with a known id from another entity than the one asked.
    pub spoofed_replies: u64,
    /// MAM results or carbons whose outer `from` is not our own account.
    pub spoofed_forwards: u64,
    /// Device-list notifications not from a bare JID.
    pub spoofed_lists: u64,
    /// Prekey-server messages from a server the exchange did not go to.
    pub spoofed_prekey_replies: u64,
    /// Prekey ensembles whose Client Profile is not the pinned key of that device.
    pub rejected_ensembles: u64,
    /// Stanzas over the size, depth or element-count limits of `crate::xml`.
    pub oversized_stanzas: u64,
    /// Genuine carbons (from our own account), ignored: every device has its own copy.
    pub carbons_ignored: u64,
    /// Plain OTR text (OTRv3) from a contact known to have OTRv4 devices, dropped: a
    /// downgrade to OTRv3 (docs/xmpp-glue.md §11).
    pub otrv3_refused: u64,
}
