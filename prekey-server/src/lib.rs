//! The OTRv4 prekey server (otrv4-prekey-server.md).
//!
//! Not built yet: the server side of the prekey protocol lands with the offline-conversation
//! issue. The crate exists so the workspace layout is final from the start.
