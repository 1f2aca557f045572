//! Transports around the [`crate::service::Service`]: in-process (tests, demos), a
//! line-based stdio mode (tests, process supervision) and the XEP-0114 component.
//!
//! Each transport only moves `(bare JID, text)` pairs; all protocol work is in the service.

pub mod component;
pub mod inprocess;
pub mod stdio;
pub mod xml;
