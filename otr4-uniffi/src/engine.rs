//! `otr4.Engine`: one device of an XMPP account (`otr4_ffi::core::engine::EngineCore`).
//! The client keeps its XMPP stack: it feeds every incoming stanza and sends what
//! `drain_stanzas` returns; events say what happened.

use std::sync::{Arc, Mutex};

use otr4_ffi::core::engine::EngineCore;
use otr4_ffi::core::env::{Clock, Rng};
use xmpp_glue::sealed::Secret;

use crate::error::{Result, guarded, raw_key, with};
use crate::events::Event;

/// One device of an XMPP account: OTRv4 over XMPP with MULTICASTING to every device of a
/// contact, a device list and prekeys published via PEP and the prekey server, trust on
/// first use, SMP. Sans-IO: feed it stanzas (`feed`), send what `drain_stanzas` returns,
/// act on `drain_events`. Randomness from the OS, time from the system clock. Usable from
/// any thread; calls on one engine wait for each other.
#[derive(Debug, uniffi::Object)]
pub struct Engine {
    core: Mutex<EngineCore>,
}

impl Engine {
    fn wrap(core: EngineCore) -> Arc<Engine> {
        Arc::new(Engine {
            core: Mutex::new(core),
        })
    }
}

#[uniffi::export]
impl Engine {
    /// A new device of `jid` (a bare JID, `local@domain`) labelled `label`: fresh keys,
    /// empty state.
    #[uniffi::constructor]
    pub fn new(jid: String, label: String) -> Result<Arc<Engine>> {
        guarded(|| {
            Ok(Engine::wrap(EngineCore::new(
                &jid,
                &label,
                Rng::Os,
                Clock::System,
            )?))
        })
    }

    /// Restores an engine saved by `save` under `passphrase`. Raises `Otr4Error.WrongKey`,
    /// `.Tampered`, `.Truncated` or `.NotABlob`.
    #[uniffi::constructor]
    pub fn load(blob: Vec<u8>, passphrase: Vec<u8>) -> Result<Arc<Engine>> {
        guarded(|| {
            let secret = Secret::Passphrase(&passphrase);
            Ok(Engine::wrap(EngineCore::load(
                &blob,
                &secret,
                Rng::Os,
                Clock::System,
            )?))
        })
    }

    /// Restores an engine saved by `save_with_key` under a raw 32-byte `key`.
    #[uniffi::constructor]
    pub fn load_with_key(blob: Vec<u8>, key: Vec<u8>) -> Result<Arc<Engine>> {
        guarded(|| {
            let secret = Secret::Key(raw_key(&key)?);
            Ok(Engine::wrap(EngineCore::load(
                &blob,
                &secret,
                Rng::Os,
                Clock::System,
            )?))
        })
    }

    /// The whole engine (keys, sessions, device lists, trust, archive position) encrypted
    /// under `passphrase` (Argon2id, XChaCha20-Poly1305). Save on every `SAVE_STATE` event.
    pub fn save(&self, passphrase: Vec<u8>) -> Result<Vec<u8>> {
        with(
            &self.core,
            |c| Ok(c.save(&Secret::Passphrase(&passphrase))?),
        )
    }

    /// As `save`, under a raw 32-byte `key` (from the platform's key store).
    pub fn save_with_key(&self, key: Vec<u8>) -> Result<Vec<u8>> {
        with(&self.core, |c| Ok(c.save(&Secret::Key(raw_key(&key)?))?))
    }

    /// One incoming stanza as XML text. Raises `Otr4Error.BadStanza` if it is refused
    /// before processing (not XML, too large, too deep); an `ERROR` event says why too.
    pub fn feed(&self, xml: String) -> Result<()> {
        with(&self.core, |c| Ok(c.feed(&xml)?))
    }

    /// The stream is up, bound to `full_jid` (`local@domain/resource`, our bare JID).
    pub fn online(&self, full_jid: String) -> Result<()> {
        with(&self.core, |c| Ok(c.online(&full_jid)?))
    }

    /// The stream went down.
    pub fn offline(&self) -> Result<()> {
        with(&self.core, |c| {
            c.offline();
            Ok(())
        })
    }

    /// Sends `text` to every device of `to` (a bare JID) and to our other devices.
    pub fn send(&self, to: String, text: String) -> Result<()> {
        with(&self.core, |c| Ok(c.send(&to, &text)?))
    }

    /// Starts SMP with `device` of `peer` on the shared `secret`, optionally asking
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

    /// Answers SMP from `device` of `peer` with `secret`.
    pub fn smp_respond(&self, peer: String, device: u32, secret: Vec<u8>) -> Result<()> {
        with(&self.core, |c| Ok(c.smp_respond(&peer, device, &secret)?))
    }

    /// Accepts the changed key of `device` of `jid` (after a `TRUST` event with
    /// `Trust.CHANGED`).
    pub fn accept_fingerprint(&self, jid: String, device: u32) -> Result<()> {
        with(&self.core, |c| Ok(c.accept_fingerprint(&jid, device)?))
    }

    /// Accepts the new key `fingerprint` (hex) of the prekey server of `domain` (after a
    /// `PREKEY_SERVER_KEY_CHANGED` event, once the user compared it).
    pub fn accept_prekey_server_key(&self, domain: String, fingerprint: String) -> Result<()> {
        with(&self.core, |c| {
            Ok(c.accept_prekey_server_key(&domain, &fingerprint)?)
        })
    }

    /// Removes another device of ours from our device list.
    pub fn remove_device(&self, device: u32) -> Result<()> {
        with(&self.core, |c| Ok(c.remove_device(device)?))
    }

    /// Runs the timers; call it every few seconds.
    pub fn tick(&self) -> Result<()> {
        with(&self.core, |c| Ok(c.tick()?))
    }

    /// The next stanza to send, or `None`.
    pub fn next_stanza(&self) -> Result<Option<String>> {
        with(&self.core, |c| Ok(c.next_stanza()))
    }

    /// Every queued stanza to send, in order.
    pub fn drain_stanzas(&self) -> Result<Vec<String>> {
        with(&self.core, |c| {
            Ok(std::iter::from_fn(|| c.next_stanza()).collect())
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

    /// Our instance tag (the device id others see).
    pub fn tag(&self) -> Result<u32> {
        with(&self.core, |c| Ok(c.tag()))
    }

    /// Our fingerprint (hex).
    pub fn fingerprint(&self) -> Result<String> {
        with(&self.core, |c| Ok(c.fingerprint()))
    }

    /// The devices (instance tags) of `jid` (a bare JID) this engine knows from its device
    /// list, in no particular order; for our own JID, our other devices. Raises
    /// `Otr4Error.InvalidArgument` for a JID that is not bare.
    pub fn devices_of(&self, jid: String) -> Result<Vec<u32>> {
        with(&self.core, |c| Ok(c.devices_of(&jid)?))
    }
}
