//! OTRv4 over XMPP (docs/xmpp-glue.md, xep-draft/): device lists over PEP, prekey-server
//! discovery, MULTICASTING stanza carriage across up to 8 devices, and an async client.
//!
//! [`engine::Engine`] is the sans-IO core (stanzas, time and an RNG in; stanzas and
//! [`engine::GlueEvent`]s out); `client` runs it over tokio-xmpp with persistence.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

#[cfg(feature = "tokio-client")]
pub mod client;
pub mod devices;
pub mod engine;
#[cfg(feature = "tokio-client")]
pub mod guard;
pub mod ns;
pub mod stanza;
pub mod store;
pub mod trust;
pub mod xml;

// The third-party crates of the public API, so callers use the same versions: stanzas are
// `minidom::Element`s, RNGs `rand_core::CryptoRng`s, accounts and clients otr4's.
pub use minidom;
pub use otr4;
pub use rand_core;

pub use engine::{Engine, EngineConfig, GlueEvent, GlueState, Output};
