//! The README's demo and xmpp-glue's test network (not published): an in-memory XMPP
//! server with Prosody 0.12 semantics ([`server`]) and the demo's scenario ([`demo`]).
//!
//! `cargo run -p xmpp-sim --bin demo` runs the demo in this process; with the feature
//! `xmpp` it can also run against a real XMPP server (`--xmpp`).
#![forbid(unsafe_code)]
#![allow(async_fn_in_trait)]

pub mod demo;
pub mod server;
