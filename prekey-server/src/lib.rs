//! The OTRv4 prekey server (otrv4-prekey-server.md): storage, limits, operations and the
//! transports (in-process, stdio, XEP-0114 component) around the sans-IO protocol core.
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

#[cfg(feature = "standalone")]
pub mod config;
pub mod keys;
pub mod limits;
pub mod ops;
pub mod rotation;
pub mod service;
pub mod storage;
pub mod testkit;
pub mod transport;

/// The code blocks of docs/prekey-server.md and docs/operators.md compile as doctests of
/// this crate; blocks that are not Rust are marked (`text`, `sh`, …).
#[cfg(doctest)]
mod markdown_doctests {
    #[doc = include_str!("../../docs/prekey-server.md")]
    struct Design;
    #[doc = include_str!("../../docs/operators.md")]
    struct Operators;
}
