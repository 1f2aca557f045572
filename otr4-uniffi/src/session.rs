//! `otr4.Session`: the session level (`otr4_ffi::core::session::SessionCore`) for clients
//! that do their own transport: OTR messages as text in (`receive`) and out (`SEND`
//! events).

use std::sync::{Arc, Mutex};

use otr4_ffi::core::env::{Clock, Rng};
use otr4_ffi::core::session::SessionCore;
use xmpp_glue::sealed::Secret;

use crate::error::{Result, guarded, raw_key, with};
use crate::events::Event;

/// One OTRv4 account and its conversations, keyed by peer and instance tag (otr4's default
/// policy: query messages and whitespace tags start the DAKE). What to send arrives as
/// `SEND` events; what arrives goes to `receive`. Usable from any thread; calls on one
/// session wait for each other.
#[derive(Debug, uniffi::Object)]
pub struct Session {
    core: Mutex<SessionCore>,
}

impl Session {
    fn wrap(core: SessionCore) -> Arc<Session> {
        Arc::new(Session {
            core: Mutex::new(core),
        })
    }
}

#[uniffi::export]
impl Session {
    /// A new account named `name` (non-empty; the name peers know us by): fresh keys.
    #[uniffi::constructor]
    pub fn new(name: String) -> Result<Arc<Session>> {
        guarded(|| {
            Ok(Session::wrap(SessionCore::new(
                &name,
                Rng::Os,
                Clock::System,
            )?))
        })
    }

    /// Restores a session saved by `save` under `passphrase`. Raises `Otr4Error.WrongKey`,
    /// `.Tampered`, `.Truncated` or `.NotABlob`.
    #[uniffi::constructor]
    pub fn load(blob: Vec<u8>, passphrase: Vec<u8>) -> Result<Arc<Session>> {
        guarded(|| {
            let secret = Secret::Passphrase(&passphrase);
            Ok(Session::wrap(SessionCore::load(
                &blob,
                &secret,
                Rng::Os,
                Clock::System,
            )?))
        })
    }

    /// Restores a session saved by `save_with_key` under a raw 32-byte `key`.
    #[uniffi::constructor]
    pub fn load_with_key(blob: Vec<u8>, key: Vec<u8>) -> Result<Arc<Session>> {
        guarded(|| {
            let secret = Secret::Key(raw_key(&key)?);
            Ok(Session::wrap(SessionCore::load(
                &blob,
                &secret,
                Rng::Os,
                Clock::System,
            )?))
        })
    }

    /// The account and every conversation, encrypted under `passphrase`.
    pub fn save(&self, passphrase: Vec<u8>) -> Result<Vec<u8>> {
        with(
            &self.core,
            |c| Ok(c.save(&Secret::Passphrase(&passphrase))?),
        )
    }

    /// As `save`, under a raw 32-byte `key`.
    pub fn save_with_key(&self, key: Vec<u8>) -> Result<Vec<u8>> {
        with(&self.core, |c| Ok(c.save(&Secret::Key(raw_key(&key)?))?))
    }

    /// A message `text` arrived from `sender` (problems become events, never exceptions).
    pub fn receive(&self, sender: String, text: String) -> Result<()> {
        with(&self.core, |c| {
            c.receive(&sender, &text);
            Ok(())
        })
    }

    /// Asks `to` for a private conversation (a query message as a `SEND` event).
    pub fn start(&self, to: String) -> Result<()> {
        with(&self.core, |c| {
            c.start(&to);
            Ok(())
        })
    }

    /// Sends `text` to `to`: to instance `device`, or (0) as the policy selects.
    #[uniffi::method(default(device = 0))]
    pub fn send(&self, to: String, text: String, device: u32) -> Result<()> {
        with(&self.core, |c| Ok(c.send(&to, device, &text)?))
    }

    /// Ends the conversation with `to` (instance `device`, or every one with 0).
    #[uniffi::method(default(device = 0))]
    pub fn end(&self, to: String, device: u32) -> Result<()> {
        with(&self.core, |c| Ok(c.end(&to, device)?))
    }

    /// Starts SMP with `peer`'s instance `device` on `secret`, optionally asking
    /// `question`.
    #[uniffi::method(default(question = None))]
    pub fn smp_start(
        &self,
        peer: String,
        device: u32,
        secret: Vec<u8>,
        question: Option<String>,
    ) -> Result<()> {
        with(&self.core, |c| {
            Ok(c.smp_start(&peer, device, &secret, question.as_deref())?)
        })
    }

    /// Answers SMP from `peer`'s instance `device` with `secret`.
    pub fn smp_respond(&self, peer: String, device: u32, secret: Vec<u8>) -> Result<()> {
        with(&self.core, |c| Ok(c.smp_respond(&peer, device, &secret)?))
    }

    /// Runs the timers (heartbeats, session expiry, DAKE timeouts).
    pub fn tick(&self) -> Result<()> {
        with(&self.core, |c| {
            c.tick();
            Ok(())
        })
    }

    /// The next event, or `None`.
    pub fn next_event(&self) -> Result<Option<Event>> {
        with(&self.core, |c| Ok(c.next_event().map(Event::from)))
    }

    /// Every queued event, in order.
    pub fn drain_events(&self) -> Result<Vec<Event>> {
        with(&self.core, |c| {
            Ok(std::iter::from_fn(|| c.next_event())
                .map(Event::from)
                .collect())
        })
    }

    /// Our instance tag.
    pub fn tag(&self) -> Result<u32> {
        with(&self.core, |c| Ok(c.tag()))
    }

    /// Our fingerprint (hex).
    pub fn fingerprint(&self) -> Result<String> {
        with(&self.core, |c| Ok(c.fingerprint()))
    }
}
