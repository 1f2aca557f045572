//! What the conversation layer reports to the application (otrv4.md §"Protocol Events"):
//! messages to send, received messages, state changes, SMP progress, warnings and errors.

use alloc::string::String;
use alloc::vec::Vec;

use crate::InstanceTag;
use crate::crypto::fingerprint::Fingerprint;
use crate::dake::ensemble::EnsembleError;
use crate::dake::non_interactive::NonInteractiveError;
use crate::dake::{DakeError, Ssid};
use crate::prekey::PrekeyError;
use crate::ratchet::{ExtraSymmetricKey, RatchetError};
use crate::smp::SmpError;
use crate::wire::codec::DecodeError;
use crate::wire::error_msg::ErrorCode;
use crate::wire::fragment::FragmentError;
use crate::wire::tlv::Tlv;

/// The protocol states of otrv4.md §"Protocol States".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationState {
    /// `START`: no session; messages are plaintext (where the mode allows it).
    Start,
    /// `WAITING_AUTH_R`: we sent an Identity message.
    WaitingAuthR,
    /// `WAITING_AUTH_I`: we sent an Auth-R message.
    WaitingAuthI,
    /// `ENCRYPTED_MESSAGES`: the DAKE completed; messages are encrypted.
    Encrypted,
    /// `FINISHED`: the peer ended the session; nothing is sent until the user starts over.
    Finished,
}

/// One thing the application must do or show. Every variant names the peer's bare JID.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Send `text` to `to` (a bare JID). Already encoded and, if longer than
    /// `Policy::max_message_size`, one fragment of several (send them in order).
    /// `to_instance` is the peer instance it is meant for (`None`: any/all, e.g. a query
    /// message or plaintext); networks that address clients individually may route by it.
    Send {
        /// The bare JID to send to.
        to: String,
        /// The peer instance the message is addressed to, if any.
        to_instance: Option<InstanceTag>,
        /// The text to put on the wire.
        text: String,
    },
    /// A message to display. `encrypted` says whether it arrived in a data message of an
    /// encrypted session (`from_instance` is then the sender's instance tag) or as plaintext.
    /// Heartbeats (empty data messages) are not reported.
    Received {
        /// The sender's bare JID.
        from: String,
        /// The sender's instance, for encrypted messages.
        from_instance: Option<InstanceTag>,
        /// The human-readable part (UTF-8; invalid sequences replaced).
        text: String,
        /// Every TLV the data message carried, in order (the layer already acted on
        /// types 1–7).
        tlvs: Vec<Tlv>,
        /// Whether the message was encrypted.
        encrypted: bool,
    },
    /// The DAKE completed: the conversation is `ENCRYPTED_MESSAGES` (otrv4.md §"Secure
    /// Session ID": show the SSID, the half in `bold_half` highlighted).
    Secure {
        /// The peer's bare JID.
        peer: String,
        /// The peer's instance tag.
        instance: InstanceTag,
        /// The Secure Session ID.
        ssid: Ssid,
        /// Which half (0 or 1) of the SSID to show in bold for our role.
        bold_half: usize,
        /// The fingerprint of the peer's long-term and forging keys.
        their_fingerprint: Fingerprint,
        /// Whether `their_fingerprint` is the one the caller expects for this instance
        /// ([`super::Client::expect_fingerprint`]; `true` when nothing is expected). When
        /// `false`, nothing with user content is encrypted in this session — queued
        /// messages stay queued ([`NotSentReason::KeyNotAccepted`]), SMP and extra keys
        /// are refused — until the caller accepts this fingerprint.
        key_accepted: bool,
    },
    /// An **OTRv3** session is established with the peer (otrv4.md §"OTRv3-compatible
    /// mode": the peer offered only version 3). Show it as encrypted but as OTRv3, never as
    /// an OTRv4 session: OTRv3 has no offline (non-interactive) start, no ring-signature
    /// (participation) deniability — the AKE is signed with DSA — only 1536-bit D-H and
    /// DSA-1024 (about 80-bit security) with SHA-1 MACs, and one session per contact (no
    /// multi-device). Messages of this session arrive as [`Event::Received`] from
    /// `instance`; [`super::Client::send`] uses it while the peer has no OTRv4 session;
    /// SMP and [`super::Client::end`] work as for OTRv4.
    #[cfg(feature = "v3")]
    SecureV3 {
        /// The peer's bare JID.
        peer: String,
        /// The peer's instance tag.
        instance: InstanceTag,
        /// The OTRv3 secure session id (Protocol-v3.html §"Secure Session ID").
        ssid: [u8; 8],
        /// Which half (0 or 1) of the SSID to show in bold for our role.
        bold_half: usize,
        /// The fingerprint of the peer's DSA key, to compare with the one the user
        /// verified (e.g. imported from `otr.fingerprints`).
        their_fingerprint: crate::v3::pubkey::V3Fingerprint,
    },
    /// The peer ended its side (a TLV type 1 arrived): the conversation is `FINISHED`;
    /// end ours too ([`super::Client::end`]) before talking again.
    Finished {
        /// The peer's bare JID.
        peer: String,
        /// The peer's instance tag.
        instance: InstanceTag,
    },
    /// Our side of a session ended and its keys were deleted.
    Disconnected {
        /// The peer's bare JID.
        peer: String,
        /// The peer's instance tag.
        instance: InstanceTag,
        /// Why.
        reason: DisconnectReason,
    },
    /// Progress of the Socialist Millionaires Protocol.
    Smp {
        /// The peer's bare JID.
        peer: String,
        /// The peer's instance tag.
        instance: InstanceTag,
        /// What happened.
        update: SmpUpdate,
    },
    /// An extra symmetric key for the application (otrv4.md §"Extra Symmetric Key"): one
    /// per type 7 TLV, derived from the data message's extra symmetric key with the TLV's
    /// index and context. Reported both when we send the TLV and when it arrives.
    ExtraSymmetricKey {
        /// The peer's bare JID.
        peer: String,
        /// The peer's instance tag.
        instance: InstanceTag,
        /// The key; zeroized on drop.
        key: ExtraSymmetricKey,
        /// The TLV's 4-byte use indication.
        context: [u8; 4],
        /// The use-specific data after the context.
        data: Vec<u8>,
    },
    /// The peer sent an OTR error message with one of the spec's codes (otrv4.md
    /// §"Receiving an Error Message": display it). Nothing is restarted.
    PeerError {
        /// The peer's bare JID.
        peer: String,
        /// The error code.
        code: ErrorCode,
        /// The human-readable text.
        text: String,
    },
    /// Something to tell the user that is not an error of ours (an unencrypted message in
    /// an encrypted conversation, a message for another instance, …).
    Warning {
        /// The peer's bare JID.
        peer: String,
        /// The instance concerned, if known.
        instance: Option<InstanceTag>,
        /// What happened.
        warning: Warning,
    },
    /// An operation failed or a received message could not be processed.
    Error {
        /// The peer's bare JID.
        peer: String,
        /// The instance concerned, if known.
        instance: Option<InstanceTag>,
        /// What went wrong (its `Display` is a message for users).
        error: ConversationError,
    },
    /// A message of the user was not sent now.
    NotSent {
        /// The peer's bare JID.
        peer: String,
        /// The instance concerned, if known.
        instance: Option<InstanceTag>,
        /// The message text.
        text: String,
        /// Why, and whether it will still be sent.
        reason: NotSentReason,
    },
}

/// Why a user message was not sent immediately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotSentReason {
    /// Queued: it is sent as soon as a session is encrypted (otrv4.md §"Sending a Data
    /// Message": states `START`, `WAITING_AUTH_R`, `WAITING_AUTH_I`).
    Queued,
    /// The conversation is `FINISHED` (otrv4.md §"Sending a Data Message": "Inform the
    /// user that the message cannot be sent at this time"); keep it to resend after
    /// starting a new conversation.
    Finished,
    /// The queue is full; the message was dropped.
    QueueFull,
    /// A queued message was dropped because the user ended the conversation.
    Discarded,
    /// Encryption is required but OTR version 4 is not allowed by the policy.
    EncryptionUnavailable,
    /// Queued: the instance's session is encrypted to a key other than the one the
    /// caller expects ([`super::Client::expect_fingerprint`]); it is sent once the caller
    /// accepts that key, and dropped if the conversation ends first.
    KeyNotAccepted,
}

/// Why our side of a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The user ended it: a TLV type 1 was sent; the conversation is back in `START`.
    UserEnded,
    /// The session expired (otrv4.md §"Session Expiration"): a TLV type 1 with every
    /// remaining MAC key was sent; the conversation is `FINISHED`.
    Expired,
    /// The session was ended to start the other kind of DAKE (otrv4.md §"Starting an
    /// online conversation after an offline one", §"Starting an offline conversation after
    /// an online one"): a TLV type 1 was sent, then an Identity or Non-Interactive-Auth
    /// message.
    SwitchingDake,
}

/// SMP progress (otrv4.md §"The SMP State Machine").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmpUpdate {
    /// The peer started SMP: ask the user for the secret (showing the question) and call
    /// [`super::Client::smp_respond`].
    AskForSecret {
        /// The peer's question, if any.
        question: Option<String>,
    },
    /// The exchange is under way (we sent the next SMP message).
    InProgress,
    /// The secrets matched: the peer is verified.
    Succeeded,
    /// The secrets differ.
    Failed,
    /// The exchange was aborted: by the peer (`reason` is `None`), or by us because a
    /// message was out of order or its proofs failed (an abort TLV was sent).
    Aborted {
        /// Why we aborted; `None` when the peer aborted.
        reason: Option<SmpError>,
    },
}

/// Non-fatal events worth telling the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A plaintext message arrived while a session is encrypted or finished (otrv4.md
    /// §"Receiving plaintext without the whitespace tag").
    UnencryptedWhileEncrypted,
    /// A plaintext message arrived although the policy requires encryption.
    Unencrypted,
    /// A message or fragment addressed to another instance of ours was discarded
    /// (otrv4.md §"Protocol Events", §"Instance Tags").
    NotForUs {
        /// The receiver instance tag it carried.
        receiver: InstanceTag,
    },
    /// A DAKE message failed validation and was ignored (the state did not change).
    DakeMessageIgnored(DakeError),
    /// A DAKE message arrived in a state that does not expect it and was ignored.
    UnexpectedDakeMessage(&'static str),
    /// An Identity message of a DAKE that already completed arrived again; it was
    /// ignored and the live session continues.
    ReplayedIdentity,
    /// A fragment was discarded (malformed, duplicate, inconsistent, …).
    FragmentDiscarded(FragmentError),
    /// Stored early data messages expired before the DAKE completed.
    StoredMessagesExpired(usize),
    /// A DAKE did not complete within `Policy::dake_timeout_secs` and was abandoned.
    DakeTimedOut,
    /// A data message carried a corrupted TLV; the rest was processed.
    CorruptedTlv,
    /// A query message or whitespace tag was ignored: the mode does not handle them.
    QueryIgnored,
    /// A request for OTR version 3 (only) arrived, or an OTRv3 message, and version 3 is not
    /// usable: the policy does not allow it, the mode is not OTRv3-compatible, or the
    /// account has no OTRv3 key ([`super::Account::set_v3_key`]). Nothing was sent.
    Otrv3Unsupported,
    /// An OTRv3 AKE message failed validation or arrived in a state that does not expect
    /// it, and was ignored (Protocol-v3.html §"The protocol state machine").
    #[cfg(feature = "v3")]
    Otrv3MessageIgnored(crate::v3::V3Error),
    /// A request for an offline conversation was rejected (interactive-only mode).
    OfflineRejected,
    /// A Non-Interactive-Auth message failed validation and was ignored (otrv4.md
    /// §"Receiving a Non-Interactive-Auth Message"); the prekey it names was not used up.
    NonInteractiveAuthIgnored(NonInteractiveError),
    /// A Prekey Ensemble given to [`super::Client::send_offline`] was discarded (invalid,
    /// expired, duplicate or another instance's duplicate; otrv4.md §"Validating Prekey
    /// Ensembles", §"Receiving Prekey Ensembles").
    EnsembleDiscarded(EnsembleError),
    /// An OTR message arrived but version 4 is not allowed by the policy.
    VersionNotAllowed,
}

/// Errors of the conversation layer. `Display` gives a message for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConversationError {
    /// A received message could not be decoded.
    #[error("received a malformed OTR message: {0}")]
    Malformed(DecodeError),
    /// A data message could not be read (MAC, duplicate, keys gone); `ERROR_1` was sent
    /// unless the message had `IGNORE_UNREADABLE`.
    #[error("received an unreadable encrypted message: {0}")]
    Unreadable(RatchetError),
    /// A data message arrived outside an encrypted session; `ERROR_2` was sent.
    #[error("received an encrypted message, but no private conversation is established")]
    NotInPrivateState,
    /// No conversation exists with that peer instance.
    #[error("no conversation with instance {0}")]
    NoSuchConversation(InstanceTag),
    /// The operation needs an encrypted session.
    #[error("the conversation is not encrypted")]
    NotEncrypted,
    /// The session's key is not the one the caller expects for this instance: accept it
    /// (or verify it out of band) first ([`super::Client::expect_fingerprint`]).
    #[error("the device's key is not the accepted one; accept or verify it first")]
    KeyNotAccepted,
    /// The peer already has as many instances as allowed
    /// ([`super::Client::set_max_instances`]); the new one was refused.
    #[error("too many devices for {peer}: at most {max} instances per user")]
    TooManyDevices {
        /// The bare JID.
        peer: String,
        /// The limit.
        max: usize,
    },
    /// Our own DAKE step failed (e.g. signing).
    #[error("key exchange failed: {0}")]
    Dake(DakeError),
    /// The double ratchet refused to encrypt.
    #[error("encryption failed: {0}")]
    Ratchet(RatchetError),
    /// An SMP operation failed.
    #[error("SMP: {0}")]
    Smp(SmpError),
    /// The message could not be encoded (NUL in the text, oversized TLV).
    #[error("message cannot be encoded: {0}")]
    Encoding(DecodeError),
    /// The message could not be fragmented to the maximum size.
    #[error("message cannot be fragmented: {0}")]
    Fragment(FragmentError),
    /// The policy does not allow OTR version 4.
    #[error("OTR version 4 is not allowed by the policy")]
    VersionNotAllowed,
    /// A Prekey message arrived from a peer. Prekey messages are only published to a
    /// prekey server (otrv4.md §"Prekey Message"); one received in a conversation is
    /// ignored.
    #[error("a prekey message cannot start a conversation")]
    NonInteractiveUnsupported,
    /// The mode does not allow offline conversations ([`super::Mode::InteractiveOnly`]).
    #[error("offline conversations are not allowed by the policy")]
    OfflineNotAllowed,
    /// No prekey server is configured ([`super::Client::set_prekey_server`]).
    #[error("no prekey server is configured")]
    NoPrekeyServer,
    /// The prekey-server exchange failed or a message from the server was rejected.
    #[error("prekey server: {0}")]
    Prekey(PrekeyError),
    /// No usable Prekey Ensemble: nothing was sent (otrv4.md §"Receiving Prekey
    /// Ensembles": "the non-interactive DAKE must wait").
    #[error("no usable prekey ensemble for this peer")]
    NoPrekeyEnsembles,
    /// A Prekey Ensemble Retrieval message is for another identity or instance than the
    /// one it was used for.
    #[error("the prekey ensembles are for another identity or instance")]
    EnsemblesNotForPeer,
    /// Making our Non-Interactive-Auth message failed.
    #[error("offline key exchange failed: {0}")]
    NonInteractive(NonInteractiveError),
    /// The policy is inconsistent.
    #[error("invalid policy: {0}")]
    InvalidPolicy(&'static str),
    /// An OTRv3 data message could not be read, or ours could not be made; for a
    /// received one an OTR error message was sent unless it had `IGNORE_UNREADABLE`.
    #[cfg(feature = "v3")]
    #[error("OTRv3: {0}")]
    Otrv3(crate::v3::V3Error),
    /// The keys given to build an account do not match.
    #[error("invalid account keys: {0}")]
    InvalidKeys(&'static str),
}
