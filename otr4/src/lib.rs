//! `otr4`: the OTRv4 secure-messaging protocol (otrv4.md) as a sans-IO library.
//!
//! The crate is `no_std` + `alloc`: callers pass received bytes, the current time and an
//! RNG in, and get bytes and events out. It never touches sockets, clocks or a global RNG.
//!
//! # The API
//!
//! A [`Client`] owns an [`Account`] (keys, instance tag, Client Profiles, [`Policy`]) and
//! one [`Conversation`] per peer instance, grouped by bare JID ([`Peer`]). Every input — a
//! received message, a user action, [`Client::tick`] — takes the current time and an RNG
//! and returns [`Event`]s: text to [`Event::Send`], messages [`Event::Received`],
//! [`Event::Secure`] when a key exchange completes, SMP progress ([`SmpUpdate`]),
//! [`Warning`]s and typed errors ([`ConversationError`]).
//!
//! - Persistence: [`Client::export`] / [`Client::import`] (and the same on [`Account`])
//!   under a [`PERSIST_KEY_LEN`]-byte key; failures are [`PersistError`]s.
//! - Identity: [`InstanceTag`], [`Fingerprint`] (compare out of band, or pin with
//!   [`Client::expect_fingerprint`]).
//! - Offline conversations: the caller owns a [`PrekeyStore`] (the secrets of our Prekey
//!   messages) and passes it in; [`Client::set_prekey_server`] with a [`RefillPolicy`],
//!   [`PrekeyServerMessage`]s to and from the server (as text through [`PrekeyFraming`]),
//!   [`PrekeyOutcome`]s back, and [`Client::send_offline`] with [`OfflineEnsembles`].
//!
//! # Features
//!
//! - `std` (default): `std::error::Error` for the error types.
//! - `hazmat`: the protocol's layers as `otr4::hazmat::*` modules (crypto, wire format,
//!   profiles, DAKEs, ratchet, SMP, prekey protocol), for the project's test vectors, fuzz
//!   targets, benches and prekey server. Not a stable API; a client does not need it.
//! - `forge` (implies `hazmat`): `otr4::forge`, the forging toolkit of otrv4.md §"Forging
//!   Transcripts" (the `otr4-forge` command line; docs/deniability.md).
//! - `v3` (default): the OTRv3 protocol for the OTRv3-compatible mode: with an OTRv3 key in
//!   the account ([`Account::set_v3_key`]) and version 3 in the policy, [`Client`] talks
//!   OTRv3 to a peer that offers only version 3 ([`Event::SecureV3`]); [`otrv3`] holds the
//!   key types and the import of libotr's key and fingerprint files.
//!
//! Inside, the layers import only downward (`tests/layering.rs` checks it; the map is
//! docs/ARCHITECTURE.md): `debug`, `instance_tag` → `crypto` → `wire::codec` → `profile` →
//! the rest of `wire` → `dake`, `ratchet`, `smp` → `prekey` → `conversation`.
//!
//! # Example
//!
//! Alice and Bob in the default (OTRv3-compatible, version 4 only) mode: Alice asks for a
//! private conversation with a query message, Bob answers with the DAKE, and they talk.
//!
//! ```
//! use otr4::{Account, Client, ConversationState, Event, Policy, PrekeyStore};
//! use rand::SeedableRng;
//! use rand::rngs::StdRng;
//!
//! let mut rng = StdRng::seed_from_u64(42);
//! let now = 1_700_000_000;
//! let account = |rng: &mut StdRng| Account::generate(rng, Policy::default(), now).unwrap();
//! let mut alice = Client::new(account(&mut rng), "alice@example.org");
//! let mut bob = Client::new(account(&mut rng), "bob@example.org");
//! // Each side's prekey store (empty here: nobody publishes Prekey Ensembles).
//! let mut stores = [alice.account(), bob.account()].map(|a| PrekeyStore::new(a.instance_tag()));
//!
//! /// Delivers every `Send` to the other side until the network is quiet; returns the
//! /// other events each side saw (Alice's first).
//! fn run(
//!     alice: &mut Client,
//!     bob: &mut Client,
//!     stores: &mut [PrekeyStore; 2],
//!     from_alice: Vec<Event>,
//!     now: i64,
//!     rng: &mut StdRng,
//! ) -> (Vec<Event>, Vec<Event>) {
//!     let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
//!     let mut wire: Vec<(bool, String)> = Vec::new(); // (to Bob?, text)
//!     let mut sort = |events: Vec<Event>, from_alice: bool, wire: &mut Vec<(bool, String)>,
//!                     seen_a: &mut Vec<Event>, seen_b: &mut Vec<Event>| {
//!         for e in events {
//!             match e {
//!                 Event::Send { text, .. } => wire.push((from_alice, text)),
//!                 other if from_alice => seen_a.push(other),
//!                 other => seen_b.push(other),
//!             }
//!         }
//!     };
//!     sort(from_alice, true, &mut wire, &mut seen_a, &mut seen_b);
//!     while !wire.is_empty() {
//!         let (to_bob, text) = wire.remove(0);
//!         if to_bob {
//!             let ev = bob.receive("alice@example.org", &text, &mut stores[1], now, rng);
//!             sort(ev, false, &mut wire, &mut seen_a, &mut seen_b);
//!         } else {
//!             let ev = alice.receive("bob@example.org", &text, &mut stores[0], now, rng);
//!             sort(ev, true, &mut wire, &mut seen_a, &mut seen_b);
//!         }
//!     }
//!     (seen_a, seen_b)
//! }
//!
//! // Query message → Identity → Auth-R → Auth-I: both sides are secure with one SSID.
//! let query = alice.start("bob@example.org", now, &mut rng);
//! let (seen_a, seen_b) = run(&mut alice, &mut bob, &mut stores, query, now, &mut rng);
//! let ssid_of = |seen: &[Event]| {
//!     seen.iter().find_map(|e| match e {
//!         Event::Secure { ssid, .. } => Some(*ssid),
//!         _ => None,
//!     })
//! };
//! assert_eq!(ssid_of(&seen_a).unwrap(), ssid_of(&seen_b).unwrap());
//! let bob_tag = bob.account().instance_tag();
//! assert_eq!(
//!     alice.conversation("bob@example.org", bob_tag).unwrap().state(),
//!     ConversationState::Encrypted
//! );
//!
//! // An encrypted message from Alice to Bob.
//! let sent = alice.send("bob@example.org", "hello Bob", &[], now, &mut rng);
//! let (_, seen_b) = run(&mut alice, &mut bob, &mut stores, sent, now, &mut rng);
//! assert!(seen_b.iter().any(|e| matches!(
//!     e,
//!     Event::Received { text, encrypted: true, .. } if text == "hello Bob"
//! )));
//!
//! // Alice ends the conversation: Bob's side is FINISHED.
//! let bye = alice.end("bob@example.org", None, now, &mut rng);
//! let (_, seen_b) = run(&mut alice, &mut bob, &mut stores, bye, now, &mut rng);
//! assert!(seen_b.iter().any(|e| matches!(e, Event::Finished { .. })));
//! let alice_tag = alice.account().instance_tag();
//! assert_eq!(
//!     bob.conversation("alice@example.org", alice_tag).unwrap().state(),
//!     ConversationState::Finished
//! );
//! ```
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

/// Declares a function or constant `pub` with the `hazmat` feature (the project's tools and tests call
/// it) and `pub(crate)` without, so that it stays out of the default public API.
macro_rules! hazmat_pub {
    ($(#[$attr:meta])* fn $($rest:tt)*) => {
        #[cfg(feature = "hazmat")]
        $(#[$attr])*
        pub fn $($rest)*
        #[cfg(not(feature = "hazmat"))]
        $(#[$attr])*
        pub(crate) fn $($rest)*
    };
    ($(#[$attr:meta])* const $($rest:tt)*) => {
        #[cfg(feature = "hazmat")]
        $(#[$attr])*
        pub const $($rest)*
        #[cfg(not(feature = "hazmat"))]
        $(#[$attr])*
        pub(crate) const $($rest)*
    };
}

pub(crate) mod debug;
#[cfg(feature = "forge")]
pub mod forge;
#[cfg(feature = "hazmat")]
pub mod hazmat;
#[cfg(not(feature = "hazmat"))]
mod hazmat;
#[cfg(test)]
mod testutil;

// The layers' names inside the crate (their one public path is `otr4::hazmat::*`).
#[cfg(feature = "v3")]
use hazmat::v3;
use hazmat::{conversation, crypto, dake, instance_tag, prekey, profile, ratchet, smp, wire};

pub use conversation::{
    Account, Client, Conversation, ConversationError, ConversationState, DEFAULT_MAX_INSTANCES,
    DEFAULT_PADDING_BUCKET, DisconnectReason, Event, Mode, NotSentReason, OfflineEnsembles,
    PERSIST_KEY_LEN, Padding, Peer, PersistError, Policy, PrekeyOutcome, Selection, SmpUpdate,
    Warning,
};
pub use crypto::CryptoError;
pub use crypto::fingerprint::{FINGERPRINT_LEN, Fingerprint};
pub use crypto::kdf::shake_into;
pub use dake::ensemble::{ChosenEnsembles, EnsembleError, ValidatedEnsemble};
pub use dake::non_interactive::{NonInteractiveError, NonInteractiveRole};
pub use dake::{DakeError, Ssid};
pub use instance_tag::InstanceTag;
pub use prekey::framing::{PrekeyFraming, UnframeError};
pub use prekey::messages::{EnsembleRetrieval, NoPrekeyEnsembles, PrekeyServerMessage};
pub use prekey::proofs::ProofKind;
pub use prekey::{PrekeyError, PrekeyServerKey, PrekeyStore, ProofError, RefillPolicy};
pub use profile::ProfileError;
pub use ratchet::{ExtraSymmetricKey, RatchetError};
pub use smp::{SmpError, SmpState};
pub use wire::codec::DecodeError;
pub use wire::error_msg::ErrorCode;
pub use wire::fragment::FragmentError;
pub use wire::query::Versions;
pub use wire::tlv::{Tlv, TlvType};

/// OTRv3 for the OTRv3-compatible mode (otrv4.md §"OTRv3-compatible mode"): the long-term DSA
/// key an [`Account`] needs to speak version 3 ([`Account::set_v3_key`]), its fingerprint, the
/// errors of a v3 session, and the import of libotr's key and fingerprint files
/// (`otr.private_key`, `otr.fingerprints`) so a user moving from Pidgin keeps their identity
/// and their verified contacts. The protocol itself runs inside [`Client`].
#[cfg(feature = "v3")]
pub mod otrv3 {
    pub use crate::v3::V3Error;
    pub use crate::v3::migrate::{
        AccountKey, AccountProblem, ImportError, KnownFingerprint, LineProblem,
        MAX_FINGERPRINT_FILE, MAX_KEY_FILE, Trust, read_fingerprints, read_private_keys,
    };
    pub use crate::v3::pubkey::{DsaKeyError, DsaPrivateKey, V3Fingerprint};
    pub use crate::v3::sexp::SexpError;
}

/// The code blocks of the project's Markdown documents compile and run as doctests of this
/// crate (the documents about otr4 and the repository as a whole), so an example cannot
/// drift from the code; blocks that are not Rust are marked (`text`, `sh`, …).
#[cfg(doctest)]
mod markdown_doctests {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[doc = include_str!("../../docs/ARCHITECTURE.md")]
    struct Architecture;
    #[doc = include_str!("../../docs/spec-notes.md")]
    struct SpecNotes;
    #[doc = include_str!("../../docs/validation.md")]
    struct Validation;
    #[doc = include_str!("../../docs/mutants.md")]
    struct Mutants;
    #[doc = include_str!("../../docs/otrv3.md")]
    struct Otrv3;
    #[doc = include_str!("../../test-vectors/README.md")]
    struct TestVectors;
    #[doc = include_str!("../../benches/README.md")]
    struct Benches;
    #[doc = include_str!("../../interop/README.md")]
    struct Interop;
    #[doc = include_str!("../../xep-draft/README.md")]
    struct XepDraft;
}
