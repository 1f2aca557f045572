//! Feature `sim` (tests and examples only): the in-memory XMPP server of `xmpp-sim` with
//! the real prekey server as its component, so C programs can route stanzas between
//! engines without a network.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};

use xmpp_glue::parse_stanza;
use xmpp_sim::demo::prekey;
use xmpp_sim::server::SimServer;

use super::env::system_now;
use super::status::{Error, Result, otr4_status};

/// The server, its prekey store's directory and each session's undelivered stanzas.
pub struct SimCore {
    sim: SimServer,
    inboxes: BTreeMap<String, VecDeque<String>>,
    _dir: tempfile::TempDir,
}

impl core::fmt::Debug for SimCore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimCore").finish_non_exhaustive()
    }
}

fn sim_err(e: impl core::fmt::Display) -> Error {
    Error::new(otr4_status::OTR4_INVALID_ARGUMENT, e.to_string())
}

impl SimCore {
    /// A server for `domain` with the prekey component `prekey.<domain>`.
    pub fn new(domain: &str) -> Result<SimCore> {
        let dir = tempfile::tempdir().map_err(|e| {
            Error::new(
                otr4_status::OTR4_REFUSED,
                format!("temporary directory: {e}"),
            )
        })?;
        let mut sim = SimServer::new(domain);
        sim.set_now(system_now());
        let jid = format!("prekey.{domain}");
        let service = prekey::service(&jid, dir.path());
        let j = jid.clone();
        sim.add_component(&jid, Box::new(move |s| prekey::handle(&service, &j, s)))
            .map_err(sim_err)?;
        Ok(SimCore {
            sim,
            inboxes: BTreeMap::new(),
            _dir: dir,
        })
    }

    /// Adds the account `bare`.
    pub fn add_user(&mut self, bare: &str) -> Result<()> {
        self.sim.add_user(bare).map_err(sim_err)
    }

    /// Opens a session for `full_jid`.
    pub fn connect(&mut self, full_jid: &str) -> Result<()> {
        self.sim.connect(full_jid).map_err(sim_err)
    }

    /// Closes the session of `full_jid` (undelivered stanzas are dropped).
    pub fn disconnect(&mut self, full_jid: &str) -> Result<()> {
        self.inboxes.remove(full_jid);
        self.sim.disconnect(full_jid).map(|_| ()).map_err(sim_err)
    }

    /// The session `from` sends a stanza.
    pub fn submit(&mut self, from: &str, stanza: &str) -> Result<()> {
        let e = parse_stanza(stanza)
            .map_err(|e| Error::new(otr4_status::OTR4_BAD_STANZA, e.to_string()))?;
        self.sim.set_now(system_now());
        self.sim.submit(from, e).map_err(sim_err)
    }

    /// The next stanza for the session `full_jid`.
    pub fn next_stanza(&mut self, full_jid: &str) -> Option<String> {
        let q = self.inboxes.entry(full_jid.to_owned()).or_default();
        if q.is_empty() {
            q.extend(self.sim.inbox(full_jid).iter().map(String::from));
        }
        q.pop_front()
    }
}
