//! The session-level object behind an `otr4_session` handle: an `otr4::Client` (one
//! account, conversations per peer instance) with its prekey store, RNG, clock and the
//! event queue the caller polls (bytes to send arrive as `OTR4_EVENT_SEND`).
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use otr4::InstanceTag;
use otr4::PrekeyStore;
use otr4::{Account, Client, Event as OtrEvent, Policy};
use zeroize::Zeroizing;

use xmpp_glue::sealed::{self, Level, Secret};

use super::env::{Clock, Rng};
use super::events::{self, Event, otr4_event_kind};
use super::status::{Error, Result, otr4_status};

/// An account and its conversations.
#[derive(Debug)]
pub struct SessionCore {
    client: Client,
    prekeys: PrekeyStore,
    rng: Rng,
    clock: Clock,
    events: VecDeque<Event>,
}

fn instance(device: u32) -> Result<Option<InstanceTag>> {
    match device {
        0 => Ok(None),
        d if d >= 0x100 => Ok(Some(InstanceTag(d))),
        d => Err(Error::new(
            otr4_status::OTR4_INVALID_ARGUMENT,
            format!("{d:#x} is not a valid instance tag (0 or at least 0x100)"),
        )),
    }
}

fn required(device: u32) -> Result<InstanceTag> {
    instance(device)?.ok_or_else(|| {
        Error::new(
            otr4_status::OTR4_INVALID_ARGUMENT,
            "an instance tag is required",
        )
    })
}

impl SessionCore {
    /// A new account for `jid` with otr4's default policy (OTRv3-compatible mode, version
    /// 4: query messages and whitespace tags start the DAKE).
    pub fn new(jid: &str, mut rng: Rng, clock: Clock) -> Result<SessionCore> {
        if jid.is_empty() {
            return Err(Error::new(
                otr4_status::OTR4_INVALID_ARGUMENT,
                "empty account name",
            ));
        }
        let account = Account::generate(&mut rng, Policy::default(), clock.now())
            .map_err(|e| Error::new(otr4_status::OTR4_REFUSED, format!("account creation: {e}")))?;
        let prekeys = PrekeyStore::new(account.instance_tag());
        Ok(SessionCore {
            client: Client::new(account, jid),
            prekeys,
            rng,
            clock,
            events: VecDeque::new(),
        })
    }

    /// Restores what [`SessionCore::save`] saved.
    pub fn load(
        blob_bytes: &[u8],
        secret: &Secret<'_>,
        rng: Rng,
        clock: Clock,
    ) -> Result<SessionCore> {
        let (plain, inner) = sealed::open(Level::Session, secret, blob_bytes)?;
        let (client, prekeys) = Client::import(&inner, &plain).map_err(|e| {
            Error::new(
                otr4_status::OTR4_TAMPERED,
                format!("the saved account does not import: {e}"),
            )
        })?;
        Ok(SessionCore {
            client,
            prekeys,
            rng,
            clock,
            events: VecDeque::new(),
        })
    }

    /// Saves the account and every conversation into one encrypted blob.
    pub fn save(&mut self, secret: &Secret<'_>) -> Result<Vec<u8>> {
        let (client, prekeys) = (&self.client, &self.prekeys);
        let blob = sealed::seal(Level::Session, secret, &mut self.rng, |key, rng| {
            Zeroizing::new(client.export(prekeys, key, rng))
        })?;
        Ok(blob)
    }

    fn queue(&mut self, evs: Vec<OtrEvent>) {
        let changed = !evs.is_empty();
        self.events.extend(evs.into_iter().map(events::from_otr));
        if changed {
            self.events
                .push_back(Event::new(otr4_event_kind::OTR4_EVENT_SAVE_STATE));
        }
    }

    /// A message arrived from `from`.
    pub fn receive(&mut self, from: &str, text: &str) {
        let now = self.clock.now();
        let evs = self
            .client
            .receive(from, text, &mut self.prekeys, now, &mut self.rng);
        self.queue(evs);
    }

    /// Asks `to` for a private conversation (a query message).
    pub fn start(&mut self, to: &str) {
        let now = self.clock.now();
        let evs = self.client.start(to, now, &mut self.rng);
        self.queue(evs);
    }

    /// Sends `text` to `to`: instance `device`, or (0) as the policy selects.
    pub fn send(&mut self, to: &str, device: u32, text: &str) -> Result<()> {
        let now = self.clock.now();
        let evs = match instance(device)? {
            None => self.client.send(to, text, &[], now, &mut self.rng),
            Some(t) => self.client.send_to(to, t, text, &[], now, &mut self.rng),
        };
        self.queue(evs);
        Ok(())
    }

    /// Ends the conversation with `to` (instance `device`, or every one with 0).
    pub fn end(&mut self, to: &str, device: u32) -> Result<()> {
        let now = self.clock.now();
        let evs = self.client.end(to, instance(device)?, now, &mut self.rng);
        self.queue(evs);
        Ok(())
    }

    /// Starts SMP with `peer`'s instance `device`.
    pub fn smp_start(
        &mut self,
        peer: &str,
        device: u32,
        secret: &[u8],
        question: Option<&str>,
    ) -> Result<()> {
        let t = required(device)?;
        let now = self.clock.now();
        let evs = self
            .client
            .smp_start(peer, t, secret, question, now, &mut self.rng);
        self.queue(evs);
        Ok(())
    }

    /// Answers SMP from `peer`'s instance `device`.
    pub fn smp_respond(&mut self, peer: &str, device: u32, secret: &[u8]) -> Result<()> {
        let t = required(device)?;
        let now = self.clock.now();
        let evs = self.client.smp_respond(peer, t, secret, now, &mut self.rng);
        self.queue(evs);
        Ok(())
    }

    /// Timers (heartbeats, session expiry, DAKE timeouts).
    pub fn tick(&mut self) {
        let now = self.clock.now();
        let evs = self.client.tick(&mut self.prekeys, now, &mut self.rng);
        self.queue(evs);
    }

    /// The next event.
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Our instance tag.
    pub fn tag(&self) -> u32 {
        self.client.account().instance_tag().0
    }

    /// Our fingerprint (hex).
    pub fn fingerprint(&self) -> String {
        hex::encode(self.client.account().fingerprint().0)
    }

    /// Sets the test clock (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn set_now(&mut self, now: i64) {
        self.clock = Clock::Fixed(now);
    }
}
