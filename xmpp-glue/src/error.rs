//! The glue's errors: what went wrong for the application ([`GlueError`]) and why a message
//! did not go to a device ([`NotSentReason`]); typed end to end, `Display` for users.

use otr4::{ConversationError, PersistError};

use crate::devices::TooManyDevices;
use crate::file::FileError;
use crate::stanza::StanzaError;
use crate::xml::XmlError;

/// Errors the glue reports. `Display` is a message for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GlueError {
    /// Our device cannot list itself: 8 devices are listed.
    #[error(transparent)]
    TooManyDevices(#[from] TooManyDevices),
    /// No prekey server was found on a domain.
    #[error("no OTRv4 prekey server found on {0}")]
    NoPrekeyServer(String),
    /// Another component than the pinned prekey server of a domain answers as its prekey
    /// server (a changed key of the pinned server itself is
    /// [`crate::GlueEvent::PrekeyServerKeyChanged`]).
    #[error(
        "the prekey server {jid} changed its fingerprint (pinned {pinned}, now {announced}); not used"
    )]
    ServerFingerprintChanged {
        /// The server.
        jid: String,
        /// What we pinned.
        pinned: String,
        /// What it announces now.
        announced: String,
    },
    /// [`crate::Engine::accept_prekey_server_key`] refused the fingerprint: no prekey
    /// server is pinned for the domain, it is not 112 hex digits, or the server offers
    /// another key.
    #[error(
        "cannot pin {fingerprint} for the prekey server of {domain}: no server is known for that domain, the fingerprint is not 112 hex digits, or the server shows another key"
    )]
    PrekeyServerKeyRefused {
        /// The domain.
        domain: String,
        /// The fingerprint given.
        fingerprint: String,
    },
    /// [`crate::Engine::enable_otrv3`] could not set the OTRv3-compatible policy.
    #[error("the OTRv3-compatible mode could not be turned on: {0}")]
    Otrv3(ConversationError),
    /// A prekey-server exchange failed.
    #[error("prekey server: {0}")]
    PrekeyServer(ConversationError),
    /// Publishing our device list failed: the server answered with this error.
    #[error("publishing the device list failed: {0}")]
    DeviceListPublish(IqFailure),
    /// An OTRv4 element did not parse.
    #[error("malformed OTRv4 element from {from}: {error}")]
    Stanza {
        /// The sender.
        from: String,
        /// What was wrong.
        error: StanzaError,
    },
    /// This device was removed from the account's device list by another device.
    #[error("this device was removed from the account's OTRv4 device list")]
    DeviceRemoved,
    /// The device's state could not be saved, so nothing of that call was sent (the
    /// client's call returns the cause).
    #[error("the device state could not be saved; nothing was sent")]
    NotSaved,
    /// The connection to the XMPP server broke (closed by the server, a network or TLS
    /// error). `reconnecting`: the async client connects again by itself and
    /// [`crate::GlueEvent::Online`] follows; otherwise it has stopped and must be connected
    /// anew (docs/xmpp-glue.md §10).
    #[error("the connection to the XMPP server was lost{}", if *.reconnecting { "; reconnecting" } else { "; connect again" })]
    ConnectionLost {
        /// Whether the client is connecting again by itself.
        reconnecting: bool,
    },
    /// A stanza was refused before processing (too large, too deep, malformed).
    #[error("a stanza was refused: {0}")]
    Xml(#[from] XmlError),
    /// A file-transfer call named no transfer under way.
    #[error("file transfer: {0}")]
    File(FileError),
}

/// Why a saved engine state ([`crate::Engine::export`]) did not import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The otr4 client did not open (wrong key, modified or truncated export).
    #[error("the otr4 client: {0}")]
    Client(#[from] PersistError),
    /// The glue state is not the JSON of a [`crate::GlueState`].
    #[error("the glue state is not valid (line {line}, column {column})")]
    Json {
        /// Where the JSON parser stopped.
        line: usize,
        /// The column there.
        column: usize,
    },
}

impl From<serde_json::Error> for StateError {
    fn from(e: serde_json::Error) -> StateError {
        StateError::Json {
            line: e.line(),
            column: e.column(),
        }
    }
}

/// An IQ error answer (RFC 6120 §8.3): its type and defined condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{condition} ({typ})")]
pub struct IqFailure {
    /// The error type (`cancel`, `modify`, `auth`, `wait`, …), empty if absent.
    pub typ: String,
    /// The defined condition's element name (e.g. `forbidden`), or
    /// `undefined-condition` when the answer had none.
    pub condition: String,
}

/// Why a message did not go to a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotSentReason {
    /// The contact lists no OTRv4 device.
    #[error("the contact has no OTRv4 device")]
    NoDevices,
    /// The device's key changed; accept it first.
    #[error("the device's key changed; accept or verify it before writing to it")]
    KeyChanged,
    /// The prekey server has no ensemble for the offline device.
    #[error("the device is offline and has no prekeys left on the server")]
    NoEnsembles,
    /// No prekey server is known for the contact's domain.
    #[error("the device is offline and no prekey server is known for its domain")]
    NoPrekeyServer,
    /// The prekey server of the contact's domain shows a new key its old key did not sign:
    /// confirm it first ([`crate::Engine::accept_prekey_server_key`]).
    #[error(
        "the device is offline and the prekey server of its domain changed its key without the old key's signature; check and accept the new key to send offline messages"
    )]
    PrekeyServerKeyChanged,
    /// otr4 refused it (e.g. the session is finished).
    #[error("{0:?}")]
    Otr(otr4::NotSentReason),
    /// Too many messages were waiting.
    #[error("too many messages waiting for this contact")]
    QueueFull,
    /// The device answered with another key than the pinned one: the message is held and
    /// sent only if the user accepts the new key ([`crate::Engine::accept_fingerprint`]).
    #[error("held: the device's key changed; it is sent only if you accept the new key")]
    HeldUntilAccepted,
}
