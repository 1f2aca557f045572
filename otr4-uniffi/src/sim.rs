//! Feature `sim` (tests and examples only): `otr4.Sim`, the in-memory XMPP server with the
//! real prekey server as its component (`otr4_ffi::core::sim::SimCore`).

use std::sync::{Arc, Mutex};

use otr4_ffi::core::sim::SimCore;

use crate::error::{Result, guarded, with};

/// An in-memory XMPP server for `domain` with the prekey component `prekey.<domain>`:
/// routes stanzas between engines without a network. Tests only.
#[derive(Debug, uniffi::Object)]
pub struct Sim {
    core: Mutex<SimCore>,
}

#[uniffi::export]
impl Sim {
    /// A server for `domain`.
    #[uniffi::constructor]
    pub fn new(domain: String) -> Result<Arc<Sim>> {
        guarded(|| {
            Ok(Arc::new(Sim {
                core: Mutex::new(SimCore::new(&domain)?),
            }))
        })
    }

    /// Adds the account `bare`.
    pub fn add_user(&self, bare: String) -> Result<()> {
        with(&self.core, |c| Ok(c.add_user(&bare)?))
    }

    /// Opens a session for `full_jid`.
    pub fn connect(&self, full_jid: String) -> Result<()> {
        with(&self.core, |c| Ok(c.connect(&full_jid)?))
    }

    /// Closes the session of `full_jid` (undelivered stanzas are dropped).
    pub fn disconnect(&self, full_jid: String) -> Result<()> {
        with(&self.core, |c| Ok(c.disconnect(&full_jid)?))
    }

    /// The session `sender` (a full JID) sends `stanza`.
    pub fn submit(&self, sender: String, stanza: String) -> Result<()> {
        with(&self.core, |c| Ok(c.submit(&sender, &stanza)?))
    }

    /// Every stanza waiting for the session `full_jid`, in order.
    pub fn drain_stanzas(&self, full_jid: String) -> Result<Vec<String>> {
        with(&self.core, |c| {
            Ok(std::iter::from_fn(|| c.next_stanza(&full_jid)).collect())
        })
    }
}
