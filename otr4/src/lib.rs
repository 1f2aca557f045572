//! `otr4`: the OTRv4 secure-messaging protocol (otrv4.md) as a sans-IO library.
//!
//! The crate is `no_std` + `alloc`: callers pass received bytes, the current time and an
//! RNG in, and get bytes and events out. It never touches sockets, clocks or a global RNG.
//!
//! Layers, bottom up; a module imports only from layers below it (and its own), never
//! upward (`tests/layering.rs` checks it):
//! 1. `debug` (the secret-redacting `Debug` macro) and [`instance_tag`].
//! 2. [`crypto`]: Ed448 points and scalars with strict decoding, EdDSA, ECDH, the 3072-bit
//!    DH group, the SHAKE-256 KDFs of both domains, ChaCha20, the ring signature (RSig).
//! 3. [`wire::codec`]: the [`wire::codec::Codec`] trait every wire type implements, the
//!    bounded `Reader`, the `Writer`, and the wire forms of the primitives.
//! 4. [`profile`]: Client Profiles and Prekey Profiles: build, sign, parse, validate.
//! 5. The rest of [`wire`]: every OTRv4 message, the `?OTR:` encoding, fragments, query
//!    messages, whitespace tags, TLVs and error messages.
//! 6. [`dake`] (the interactive DAKE as typestates, the non-interactive one, Prekey Ensemble
//!    validation), [`ratchet`] (the mixed double ratchet) and [`smp`] (the Socialist
//!    Millionaires Protocol over Ed448).
//! 7. [`prekey`]: the prekey-server protocol (both sides): its messages, their framing,
//!    batch proofs, the client's prekey store.
//! 8. [`conversation`]: accounts, clients and conversations, the API client authors use.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub(crate) mod debug;
#[cfg(feature = "hazmat")]
pub mod hazmat;
#[cfg(not(feature = "hazmat"))]
mod hazmat;
#[cfg(test)]
mod testutil;

// The layers' names inside the crate (their one public path is `otr4::hazmat::*`).
use hazmat::{conversation, crypto, dake, instance_tag, prekey, profile, ratchet, smp, wire};

pub use conversation::{
    Account, Client, Conversation, ConversationError, ConversationState, DEFAULT_MAX_INSTANCES,
    DisconnectReason, Event, Mode, NotSentReason, OfflineEnsembles, PERSIST_KEY_LEN, Peer,
    PersistError, Policy, PrekeyOutcome, Selection, SmpUpdate, Warning,
};
pub use crypto::CryptoError;
pub use crypto::fingerprint::{FINGERPRINT_LEN, Fingerprint};
pub use crypto::kdf::shake_into;
pub use dake::ensemble::{ChosenEnsembles, EnsembleError, ValidatedEnsemble};
pub use dake::non_interactive::NonInteractiveError;
pub use dake::{DakeError, Ssid};
pub use instance_tag::InstanceTag;
pub use prekey::framing::{PrekeyFraming, UnframeError};
pub use prekey::messages::{EnsembleRetrieval, NoPrekeyEnsembles, PrekeyServerMessage};
pub use prekey::{PrekeyError, PrekeyStore, ProofError, RefillPolicy};
pub use profile::ProfileError;
pub use ratchet::{ExtraSymmetricKey, RatchetError};
pub use smp::SmpError;
pub use wire::codec::DecodeError;
pub use wire::error_msg::ErrorCode;
pub use wire::fragment::FragmentError;
pub use wire::tlv::{Tlv, TlvType};
