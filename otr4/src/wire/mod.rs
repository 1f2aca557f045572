//! The OTRv4 wire format (otrv4.md §"Data Types", message sections) and its text framing.
//!
//! Parsing never decides protocol behaviour: decoders only check syntax and the
//! validity of each field (points, DH values, tags); protocol states live elsewhere.

pub mod codec;
pub mod encoded;
pub mod error_msg;
pub mod fragment;
pub mod messages;
pub mod query;
pub mod tlv;
