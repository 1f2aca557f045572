//! The XMPP-level object behind an `otr4_engine` handle: an `xmpp_glue::Engine` with its
//! RNG, clock and the queues the caller polls (stanzas as XML, [`Event`]s).
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::{Account, Client, Policy, Selection};
use xmpp_glue::{Engine, EngineConfig, GlueError, GlueEvent, GlueState, Output};

use xmpp_glue::sealed::{self, Level, Secret};

use super::env::{Clock, Rng};
use super::events::{self, Event, otr4_event_kind};
use super::status::{Error, Result, otr4_status};

/// The policy of an engine's account: OTRv4-standalone (always encrypted), MULTICASTING
/// to every device of a contact, no fragmentation (XMPP carries whole messages).
pub fn engine_policy() -> Policy {
    Policy {
        selection: Selection::Multicasting,
        max_message_size: 0,
        ..Policy::standalone()
    }
}

fn bad_jid(jid: &str) -> Error {
    Error::new(
        otr4_status::OTR4_INVALID_ARGUMENT,
        format!("not a bare JID: {jid:?}"),
    )
}

/// Checks a bare JID (`local@domain`, no resource).
pub fn check_bare_jid(jid: &str) -> Result<()> {
    match jid.split_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && !d.contains('/') && !d.contains('@') => {
            Ok(())
        }
        _ => Err(bad_jid(jid)),
    }
}

fn tag(device: u32) -> Result<InstanceTag> {
    if device < 0x100 {
        return Err(Error::new(
            otr4_status::OTR4_INVALID_ARGUMENT,
            format!("{device:#x} is not a valid instance tag (at least 0x100)"),
        ));
    }
    Ok(InstanceTag(device))
}

/// One device's engine and its queues.
#[derive(Debug)]
pub struct EngineCore {
    engine: Engine,
    rng: Rng,
    clock: Clock,
    stanzas: VecDeque<String>,
    events: VecDeque<Event>,
}

impl EngineCore {
    /// A new device of `jid` labelled `label`: fresh keys, empty state.
    pub fn new(jid: &str, label: &str, mut rng: Rng, clock: Clock) -> Result<EngineCore> {
        check_bare_jid(jid)?;
        let now = clock.now();
        let account = Account::generate(&mut rng, engine_policy(), now)
            .map_err(|e| Error::new(otr4_status::OTR4_REFUSED, format!("account creation: {e}")))?;
        let prekeys = PrekeyStore::new(account.instance_tag());
        let engine = Engine::new(
            EngineConfig::new(jid, label),
            Client::new(account, jid),
            prekeys,
            GlueState::default(),
            &mut rng,
        );
        Ok(EngineCore::wrap(engine, rng, clock))
    }

    fn wrap(engine: Engine, rng: Rng, clock: Clock) -> EngineCore {
        EngineCore {
            engine,
            rng,
            clock,
            stanzas: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Restores an engine saved by [`EngineCore::save`].
    pub fn load(
        blob_bytes: &[u8],
        secret: &Secret<'_>,
        mut rng: Rng,
        clock: Clock,
    ) -> Result<EngineCore> {
        let (plain, inner) = sealed::open(Level::Engine, secret, blob_bytes)?;
        let p = sealed::engine_parts(&plain)?;
        let config = EngineConfig::new(p.jid, p.label);
        let engine = Engine::import(config, &inner, p.client, p.state, &mut rng).map_err(|e| {
            Error::new(
                otr4_status::OTR4_TAMPERED,
                format!("the saved engine does not import: {e}"),
            )
        })?;
        Ok(EngineCore::wrap(engine, rng, clock))
    }

    /// Saves the engine (otr4 client and glue state: device lists, trust, archive position)
    /// into one encrypted blob.
    pub fn save(&mut self, secret: &Secret<'_>) -> Result<Vec<u8>> {
        let engine = &self.engine;
        let blob = sealed::seal(Level::Engine, secret, &mut self.rng, |key, rng| {
            sealed::engine_plaintext(engine, key, rng)
        })?;
        Ok(blob)
    }

    /// Queues what a call returned; `Err(OTR4_BAD_STANZA)` if it refused a stanza.
    fn queue(&mut self, outs: Vec<Output>) -> Result<()> {
        let mut refused = None;
        let changed = !outs.is_empty();
        for o in outs {
            match o {
                Output::Stanza(s) => self.stanzas.push_back(String::from(&s)),
                Output::Event(e) => {
                    if let GlueEvent::Error(GlueError::Xml(x)) = &e {
                        refused = Some(x.to_string());
                    }
                    self.events.push_back(events::from_glue(e));
                }
                // File transfer (xmpp-glue docs §9) is not exposed over the C ABI yet: the
                // application is told, nothing is uploaded or fetched.
                Output::Upload(_) | Output::Download(_) => self.events.push_back(Event {
                    text: "file transfer is not supported by this binding".to_owned(),
                    ..Event::new(otr4_event_kind::OTR4_EVENT_INFO)
                }),
            }
        }
        if changed {
            self.events
                .push_back(Event::new(otr4_event_kind::OTR4_EVENT_SAVE_STATE));
        }
        match refused {
            Some(m) => Err(Error::new(otr4_status::OTR4_BAD_STANZA, m)),
            None => Ok(()),
        }
    }

    /// One incoming stanza as XML text (size, depth and element limits checked first).
    pub fn feed(&mut self, xml: &str) -> Result<()> {
        let now = self.clock.now();
        let outs = self.engine.handle_xml(xml, now, &mut self.rng);
        self.queue(outs)
    }

    /// The stream is up, bound to `full_jid`.
    pub fn online(&mut self, full_jid: &str) -> Result<()> {
        match full_jid.split_once('/') {
            Some((b, r)) if !r.is_empty() && b == self.engine.jid() => {}
            _ => {
                return Err(Error::new(
                    otr4_status::OTR4_INVALID_ARGUMENT,
                    format!("{full_jid:?} is not a full JID of {}", self.engine.jid()),
                ));
            }
        }
        let now = self.clock.now();
        let outs = self.engine.online(full_jid, now, &mut self.rng);
        self.queue(outs)
    }

    /// The stream went down.
    pub fn offline(&mut self) {
        self.engine.offline();
    }

    /// Sends `text` to every device of `to` and our other devices.
    pub fn send(&mut self, to: &str, text: &str) -> Result<()> {
        check_bare_jid(to)?;
        let now = self.clock.now();
        let outs = self.engine.send(to, text, now, &mut self.rng);
        self.queue(outs)
    }

    /// Starts SMP with `device` of `peer`.
    pub fn smp_start(
        &mut self,
        peer: &str,
        device: u32,
        secret: &[u8],
        question: Option<&str>,
    ) -> Result<()> {
        check_bare_jid(peer)?;
        let t = tag(device)?;
        let now = self.clock.now();
        let outs = self
            .engine
            .smp_start(peer, t, secret, question, now, &mut self.rng);
        self.queue(outs)
    }

    /// Answers SMP from `device` of `peer`.
    pub fn smp_respond(&mut self, peer: &str, device: u32, secret: &[u8]) -> Result<()> {
        check_bare_jid(peer)?;
        let t = tag(device)?;
        let now = self.clock.now();
        let outs = self.engine.smp_respond(peer, t, secret, now, &mut self.rng);
        self.queue(outs)
    }

    /// Accepts the changed key of `device` of `jid`.
    pub fn accept_fingerprint(&mut self, jid: &str, device: u32) -> Result<()> {
        check_bare_jid(jid)?;
        let t = tag(device)?;
        let now = self.clock.now();
        let outs = self.engine.accept_fingerprint(jid, t, now, &mut self.rng);
        self.queue(outs)
    }

    /// Accepts the new key `fingerprint` (hex) of the prekey server of `domain` (after
    /// `OTR4_EVENT_PREKEY_SERVER_KEY_CHANGED`).
    pub fn accept_prekey_server_key(&mut self, domain: &str, fingerprint: &str) -> Result<()> {
        let now = self.clock.now();
        let outs = self
            .engine
            .accept_prekey_server_key(domain, fingerprint, now, &mut self.rng)
            .map_err(|e| Error::new(otr4_status::OTR4_INVALID_ARGUMENT, e.to_string()))?;
        self.queue(outs)
    }

    /// Removes another device of ours from our device list.
    pub fn remove_device(&mut self, device: u32) -> Result<()> {
        let t = tag(device)?;
        let now = self.clock.now();
        let outs = self.engine.remove_device(t, now, &mut self.rng);
        self.queue(outs)
    }

    /// Timers.
    pub fn tick(&mut self) -> Result<()> {
        let now = self.clock.now();
        let outs = self.engine.tick(now, &mut self.rng);
        self.queue(outs)
    }

    /// The next stanza to send.
    pub fn next_stanza(&mut self) -> Option<String> {
        self.stanzas.pop_front()
    }

    /// The next event.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Our instance tag.
    pub fn tag(&self) -> u32 {
        self.engine.tag().0
    }

    /// Our fingerprint (hex).
    pub fn fingerprint(&self) -> String {
        self.engine.fingerprint()
    }

    /// The devices (instance tags) of `jid` the engine knows, from its device list; for
    /// our own JID, our other devices.
    pub fn devices_of(&self, jid: &str) -> Result<Vec<u32>> {
        check_bare_jid(jid)?;
        Ok(self
            .engine
            .devices_of(jid)
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    /// Sets the clock to `now` (Unix seconds) until the next call: the test hooks, and the
    /// wasm binding, whose caller passes the time.
    pub fn set_now(&mut self, now: i64) {
        self.clock = Clock::Fixed(now);
    }
}
