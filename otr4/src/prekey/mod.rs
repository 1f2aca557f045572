//! The prekey-server protocol (otrv4-prekey-server.md) on both sides, sans-IO: publishing
//! and retrieving Prekey Ensembles, storage status, batch proofs and the client's prekey store.
//!
//! - [`messages`]: the protocol's binary messages ([`crate::wire::codec::Codec`] types).
//! - [`framing`]: their text framing, written once: `<base64>.`, `?OTRP|` fragments and
//!   reassembly, decoding and the dispatch on the type byte (§"Encoded Messages",
//!   §"Fragmentation of some Messages").
//! - [`proofs`]: the ECDH and DH batch proofs of knowledge (§"Proofs").
//! - [`ensemble`]: the publisher's [`ensemble::PrekeyStore`] of one-time secrets and shared
//!   prekeys (the retriever's validation is [`crate::dake::ensemble`]).
//! - [`client`]: the publisher/retriever state machine ([`client::PrekeyClient`]).
//! - [`server`]: the server's storage-agnostic protocol core ([`server::PrekeyServer`]).
//! - [`memory`]: an in-memory reference storage for the server.
//! - [`refill`]: when to top up the server's stock of Prekey messages.
//! - `server_key`: [`PrekeyServerKey`], a server's key as its key-rotation announcement
//!   carries it.

pub(crate) mod auth;
pub mod client;
pub mod ensemble;
pub mod framing;
#[cfg(feature = "hazmat")]
pub mod memory;
pub mod messages;
pub mod proofs;
pub mod refill;
#[cfg(feature = "hazmat")]
pub mod server;
mod server_key;
#[cfg(test)]
mod tests;

use crate::crypto::CryptoError;
use crate::instance_tag::InstanceTag;
use crate::profile::ProfileError;
use crate::wire::codec::DecodeError;

pub use client::PrekeyClient;
pub use ensemble::PrekeyStore;
pub use proofs::ProofError;
pub use refill::RefillPolicy;
pub use server_key::PrekeyServerKey;
// The server side and the protocol's pieces, for the prekey server and the tests.
#[cfg(feature = "hazmat")]
pub use {
    client::{PublishItems, Request, ServerReply},
    proofs::ProofContext,
    server::{PrekeyServer, ServerError, ServerSession, StoreRequest},
};

/// Default lifetime of a server session: 5 minutes from DAKE-1 (the Go server's session
/// timeout). A DAKE-3 is a few round trips away; anything older is abandoned, by the server
/// and by the client waiting for its answer.
pub const DEFAULT_SESSION_TTL: i64 = 300;

/// Why the publisher/retriever side rejected a message or a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrekeyError {
    /// The message does not fit the current state (e.g. a DAKE-2 while not in a DAKE, a
    /// Storage Status in reply to a publication); it is ignored (§"State Machine").
    #[error("message not expected in the current state")]
    UnexpectedMessage,
    /// A receiver instance tag is not ours.
    #[error("instance tag {found} is not ours ({expected})")]
    InstanceTagMismatch {
        /// Our instance tag.
        expected: InstanceTag,
        /// The tag in the message.
        found: InstanceTag,
    },
    /// The server's long-term key does not have the configured fingerprint
    /// (§"DAKE-2 Message", "Validate the Prekey Server Composite Identity").
    #[error("prekey server fingerprint does not match the configured one")]
    ServerFingerprintMismatch,
    /// The identity element of the server's composite identity is not the configured one.
    #[error("prekey server identity does not match the configured one")]
    ServerIdentityMismatch,
    /// A ring signature, MAC or shared secret check failed.
    #[error("cryptographic check failed: {0}")]
    Crypto(#[from] CryptoError),
    /// A message could not be decoded.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),
    /// A profile was invalid.
    #[error("invalid profile: {0}")]
    Profile(#[from] ProfileError),
    /// A proof could not be generated.
    #[error("proof error: {0}")]
    Proof(#[from] ProofError),
    /// A retrieval answer is for an identity we have no outstanding query for.
    #[error("no outstanding query for this identity")]
    UnsolicitedRetrieval,
    /// A publication carries items that cannot go together (e.g. prekey messages with
    /// another owner tag than ours, more than 255 Prekey messages, unknown prekey ids).
    #[error("invalid publication request: {0}")]
    BadRequest(&'static str),
    /// The prekey store is full (`ensemble::MAX_STORED_PREKEYS`).
    #[error("prekey store is full")]
    StoreFull,
}
