//! OTRv4 over XMPP (docs/xmpp-glue.md, xep-draft/): device lists over PEP, prekey-server
//! discovery, MULTICASTING stanza carriage across up to 8 devices, and an async client.
//!
//! [`Engine`] is the sans-IO core (stanzas, time and an RNG in; stanzas and
//! [`GlueEvent`]s out), [`store`] persists a device, and `client` (feature
//! `tokio-client`, on by default) runs it over tokio-xmpp. The engine coordinates parts
//! with one job each: the device directory (device lists, presence, TOFU trust), the
//! prekey link (discovery, the prekey-server protocol), catch-up (MAM), and stanza
//! carriage (each incoming stanza classified once; outgoing stanzas built).
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

mod carriage;
mod catchup;
#[cfg(feature = "tokio-client")]
pub mod client;
mod devices;
mod directory;
mod engine;
mod error;
mod events;
mod file;
#[cfg(feature = "tokio-client")]
mod guard;
mod heal;
mod incoming;
pub mod ns;
mod otr_bridge;
mod outgoing;
mod prekey_link;
mod requests;
pub mod sealed;
// The stanza builders and parsers: public only for the test network (`xmpp-sim`) and the
// tests (feature `stanzas`); a client hands whole stanzas to `Engine::handle`.
#[cfg(feature = "stanzas")]
pub mod stanza;
#[cfg(not(feature = "stanzas"))]
mod stanza;
mod state;
pub mod store;
mod transfer;
mod trust;
mod xml;

// The third-party crates of the public API, so callers use the same versions: stanzas are
// `minidom::Element`s, RNGs `rand_core::CryptoRng`s, accounts and clients otr4's.
pub use minidom;
pub use otr4;
pub use rand_core;

pub use carriage::{MAX_WAITING, SENT_TO_CONTEXT};
pub use catchup::{MAM_PAGE, SEEN_IDS};
pub use devices::{
    DeviceChange, DeviceEntry, DeviceList, ListIssue, MAX_DEVICES_PER_USER, TooManyDevices,
};
pub use engine::Engine;
pub use error::{GlueError, IqFailure, NotSentReason, StateError};
pub use events::{EngineStats, GlueEvent, Output};
pub use file::{DEFAULT_MAX_FILE_SIZE, FILE_CHUNK, FILE_CONTEXT, FileError, ciphertext_len};
pub use heal::{REANNOUNCE_INTERVAL_SECS, REPAIR_INTERVAL_SECS, REPAIR_WAIT_SECS, RepairAction};
// The file-offer decoder, for the fuzz target (feature `stanzas`, like `stanza`).
#[cfg(feature = "stanzas")]
pub use file::reencode_offer;
// The key-rotation announcement decoder, for the fuzz target (feature `stanzas`).
#[cfg(feature = "stanzas")]
pub use prekey_link::verify_announcement;
pub use stanza::StanzaError;
pub use state::{ArchivePos, DEFAULT_REFILL, EngineConfig, GlueState, ServerPin};
pub use transfer::{Download, ReceivedFile, TransferId, UPLOAD_CONTENT_TYPE, Upload};
pub use trust::{Pin, Trust, TrustStore};
/// Parses one stanza's XML text into an element, refusing it before any tree is built when
/// it breaks [`MAX_STANZA_BYTES`], [`MAX_DEPTH`] or [`MAX_ELEMENTS`] (for a caller that
/// needs the element itself; [`Engine::handle_xml`] does this and handles it).
pub use xml::parse as parse_stanza;
pub use xml::{MAX_DEPTH, MAX_ELEMENTS, MAX_STANZA_BYTES, XmlError};

/// The code blocks of docs/xmpp-glue.md and this crate's README compile as doctests, so the
/// API they show cannot drift from the code (the README's needs the async client).
#[cfg(doctest)]
mod markdown_doctests {
    #[doc = include_str!("../../docs/xmpp-glue.md")]
    struct Design;
    #[cfg(feature = "tokio-client")]
    #[doc = include_str!("../README.md")]
    struct Readme;
}
