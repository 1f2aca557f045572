//! The OTRv4 conversation layer (otrv4.md §"The Protocol State Machine", §"OTRv4 Modes"):
//! accounts, per-instance conversations, and a sans-IO client that turns messages into events.
//!
//! Modelled on rustls' unbuffered API and vodozemac: a [`Client`] owns an [`Account`] (keys,
//! instance tag, Client Profiles, [`Policy`]) and one [`Conversation`] per peer instance,
//! grouped by bare JID ([`Peer`]). Every input — a received message, a user action,
//! [`Client::tick`] — takes the current time `now` (seconds) and a `&mut impl CryptoRng`,
//! and returns [`Event`]s: text to [`Event::Send`] (already encoded and fragmented),
//! messages [`Event::Received`], [`Event::Secure`] when a DAKE completes, SMP progress,
//! warnings and typed errors. Nothing inside reads a clock, a socket or a global RNG.
//!
//! A conversation reaches `ENCRYPTED_MESSAGES` only through a
//! [`crate::dake::DakeComplete`] (the interactive DAKE's proof that both ring signatures
//! verified) or a [`crate::dake::non_interactive::NonInteractiveComplete`] (the
//! non-interactive DAKE's: ring signature and Auth MAC), whose keys initialise the
//! [`crate::ratchet::DoubleRatchet`].
//!
//! Offline conversations (otrv4.md §"Offline Conversation Initialization"): the caller keeps
//! a [`crate::prekey::PrekeyStore`] (the secrets of our Prekey messages) beside the client
//! and passes it in; [`Client::set_prekey_server`], [`Client::prekey_publication`],
//! [`Client::prekey_maintenance`] and [`Client::receive_prekey_server`] publish Prekey
//! Ensembles and keep the server stocked; [`Client::ensemble_query`] and
//! [`Client::send_offline`] start a conversation with a Non-Interactive-Auth message;
//! [`Client::receive`] accepts one.
//!
//! # Modules
//!
//! Each imports only those above it (data flows wire → validate → state → events):
//!
//! | module | holds |
//! |---|---|
//! | `persisted` | the `Persist` trait each persisted type implements; [`PersistError`] |
//! | `events`, `policy` | [`Event`] and the errors and warnings; [`Policy`] |
//! | `account` | [`Account`]: keys, instance tag, Client Profiles, policy |
//! | `session` | the live encrypted session (double ratchet, SMP, timers) |
//! | `context` | `Ctx` (what every step needs) and the events it emits; queued messages |
//! | `state` | [`Conversation`]: one peer instance's protocol state |
//! | `handshake`, `messaging` | its transitions: the DAKEs; data messages, SMP, timers |
//! | `peer` | [`Peer`]: one bare JID's instances, untargeted DAKE, queue, selection |
//! | `incoming` | a peer's incoming path: classify, decode, check, dispatch by instance |
//! | `offline` | the offline start: ensembles → Non-Interactive-Auth per instance |
//! | `v3` | the OTRv3 half of the compatible mode: v3 AKE, session and SMP per peer |
//! | `prekey_link` | publishing to / retrieving from a prekey server ([`PrekeyOutcome`]) |
//! | `client` | [`Client`]: the router and the public entry points |
//! | `persist` | the encrypted export and import of an account or a client |
//!
//! The example is in the crate docs (`lib.rs`).

mod account;
mod client;
mod context;
mod events;
mod handshake;
mod incoming;
mod messaging;
mod offline;
mod peer;
mod persist;
mod persisted;
mod policy;
mod prekey_link;
mod session;
mod state;
#[cfg(feature = "v3")]
mod v3;

pub use account::Account;
pub use client::{Client, DEFAULT_MAX_INSTANCES};
pub use events::{
    ConversationError, ConversationState, DisconnectReason, Event, NotSentReason, SmpUpdate,
    Warning,
};
pub use offline::OfflineEnsembles;
pub use peer::Peer;
pub use persist::PERSIST_KEY_LEN;
pub use persisted::PersistError;
pub use policy::{DEFAULT_PADDING_BUCKET, Mode, Padding, Policy, Selection};
pub use prekey_link::PrekeyOutcome;
pub use state::Conversation;

// The layer's constants and digests, for the tests and fuzz targets (`otr4::hazmat`); the
// crate root exports the client's API above.
#[cfg(feature = "hazmat")]
pub use {
    account::{MAX_PREVIOUS_PROFILES, PROFILE_EXTRA_VALIDITY_SECS, PROFILE_VERSIONS},
    persist::{ACCOUNT_MAGIC, CLIENT_MAGIC, PERSIST_VERSION, SALT_LEN, TAG_LEN},
    policy::{
        DEFAULT_DAKE_TIMEOUT_SECS, DEFAULT_HEARTBEAT_SECS, DEFAULT_MAX_QUEUED_MESSAGES,
        DEFAULT_MAX_STORED_MESSAGES, DEFAULT_PROFILE_LIFETIME_SECS,
        DEFAULT_PROFILE_RENEW_MARGIN_SECS, DEFAULT_SESSION_EXPIRY_SECS,
        DEFAULT_STORED_MESSAGE_SECS,
    },
    prekey_link::PREKEY_PROFILE_LIFETIME_SECS,
    session::{IDENTITY_DIGEST_LEN, identity_digest, non_interactive_digest},
    state::MAX_REMEMBERED_IDENTITIES,
};
