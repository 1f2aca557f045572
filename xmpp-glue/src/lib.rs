//! OTRv4 over XMPP: device lists over PEP, prekey-server discovery and stanza carriage.
//!
//! Not built yet: this lands with the xmpp-glue issue. The crate exists so the workspace
//! layout is final from the start.

pub mod sim;
