//! `otr4`: the OTRv4 secure-messaging protocol (otrv4.md) as a sans-IO library.
//!
//! The crate is `no_std` + `alloc`: callers pass received bytes, the current time and an
//! RNG in, and get bytes and events out. It never touches sockets, clocks or a global RNG.
//!
//! Layers, bottom up:
//! - [`crypto`]: Ed448 points and scalars with strict decoding, EdDSA, ECDH, the 3072-bit
//!   DH group, the SHAKE-256 KDFs of both domains, ChaCha20, the ring signature (RSig).
//! - [`wire`]: the byte codec and every OTRv4 and prekey-server message, the `?OTR:`
//!   encoding, fragments, query messages, whitespace tags, TLVs and error messages.
//! - [`profile`]: Client Profiles and Prekey Profiles: build, sign, parse, validate.
//! - [`dake`]: the interactive DAKE (DAKEZ) as typestates, `phi`, `K` and the SSID.
//! - [`ratchet`]: the mixed double ratchet that encrypts and decrypts Data Messages.
//! - [`smp`]: the Socialist Millionaires Protocol over Ed448 (TLVs 2–6).
//! - [`prekey`]: the prekey-server protocol (both sides), batch proofs, the client's prekey
//!   store and Prekey Ensemble validation.
#![no_std]
#![forbid(unsafe_code)]
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

pub mod conversation;
pub mod crypto;
pub mod dake;
pub(crate) mod debug;
pub mod instance_tag;
pub mod prekey;
pub mod profile;
pub mod ratchet;
pub mod smp;
#[cfg(test)]
mod testutil;
pub mod wire;

pub use conversation::{Account, Client, Event, Policy};
pub use instance_tag::InstanceTag;
