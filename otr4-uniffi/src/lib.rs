//! The Python package `otr4` (and the Kotlin and Swift bindings) over `otr4_ffi::core`:
//! UniFFI objects, records and one error enum; the generated glue does the FFI.
//!
//! Objects: [`Engine`] (XMPP level: stanzas as XML text in and out), [`Session`] (session
//! level: OTR messages as text in and out) and, feature `sim`, [`Sim`] (the in-memory XMPP
//! server with a prekey server, for tests). Each holds its core in a `Mutex`: an object may
//! be used from any thread; calls on one object wait for each other.
//!
//! Hand-written code here has no `unsafe`; UniFFI's macros generate the `extern "C"`
//! scaffolding (docs/bindings.md §"From Python, Kotlin and Swift").

#![deny(unsafe_code)]

mod engine;
mod error;
mod events;
mod session;
#[cfg(feature = "sim")]
mod sim;

pub use engine::Engine;
pub use error::Otr4Error;
pub use events::{DeviceChange, Event, EventKind, SmpState, Trust};
pub use session::Session;
#[cfg(feature = "sim")]
pub use sim::Sim;

// The namespace is the Python module's name (`import otr4`), Kotlin's package suffix
// (`uniffi.otr4`) and Swift's module name.
uniffi::setup_scaffolding!("otr4");
