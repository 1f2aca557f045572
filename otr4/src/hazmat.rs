//! The protocol's layers themselves, for otr4's own tools: the test vectors, the fuzz
//! targets, the benches, the prekey server and the integration tests (feature `hazmat`).
//!
//! Nothing here is a supported API: these are the building blocks under [`crate::Client`],
//! public so that they can be tested and measured one by one, and so that the prekey server
//! can speak the other side of the prekey protocol. They change without notice, and misused
//! they lose the protocol's guarantees (nonces, key erasure, the order of the checks). A
//! client uses the crate root. Without the feature the same modules are crate-private.

#[path = "conversation/mod.rs"]
pub mod conversation;
#[path = "crypto/mod.rs"]
pub mod crypto;
#[path = "dake/mod.rs"]
pub mod dake;
#[path = "instance_tag.rs"]
pub mod instance_tag;
#[path = "prekey/mod.rs"]
pub mod prekey;
#[path = "profile/mod.rs"]
pub mod profile;
#[path = "ratchet/mod.rs"]
pub mod ratchet;
#[path = "smp/mod.rs"]
pub mod smp;
#[cfg(feature = "v3")]
#[path = "v3/mod.rs"]
pub mod v3;
#[path = "wire/mod.rs"]
pub mod wire;
