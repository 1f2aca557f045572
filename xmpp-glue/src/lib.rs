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

pub mod client;
pub mod devices;
pub mod engine;
pub mod guard;
pub mod ns;
pub mod sim;
pub mod stanza;
pub mod store;
pub mod trust;
pub mod xml;

pub use engine::{Engine, EngineConfig, GlueEvent, GlueState, Output};
