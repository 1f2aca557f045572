//! `otr4-wasm`: the JavaScript binding (wasm-bindgen) of the XMPP-level engine, over
//! otr4-ffi's safe core (`EngineCore`); the npm package is `pkg/` (docs/bindings.md).
//!
//! Stanzas, JIDs and text are JS strings; secrets, keys and saved blobs `Uint8Array`s; the
//! time (Unix seconds) is an argument of every call that may need it, because the engine is
//! sans-IO and `SystemTime` does not exist on `wasm32-unknown-unknown`; randomness comes from
//! the host's Web Crypto API (`crypto.getRandomValues`, through `getrandom`'s `wasm_js`).
//! Failures throw an `Error` whose `name` is `"Otr4Error"` and whose `code` names the C status
//! (`WrongKey`, `BadStanza`, …); problems in what peers send are events, never exceptions.
#![deny(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod error;
mod events;

use otr4_ffi::core::engine::EngineCore;
use otr4_ffi::core::env::{Clock, Rng};
use wasm_bindgen::prelude::*;
use xmpp_glue::sealed::Secret;
use zeroize::Zeroizing;

use error::{JsResult, js_error, raw_key};

/// The TypeScript of the events and errors (the generated `.d.ts` refers to these names).
#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = include_str!("types.d.ts");

/// Seconds since the Unix epoch as the engine's clock: JS numbers are doubles; a time that
/// is not finite or out of range is refused rather than wrapped.
fn seconds(now: f64) -> JsResult<i64> {
    // 2^53: the largest integer a double holds exactly; the engine needs whole seconds.
    const MAX: f64 = 9_007_199_254_740_992.0;
    if !now.is_finite() || !(0.0..=MAX).contains(&now) {
        return Err(js_error(
            "InvalidArgument",
            otr4_ffi::core::status::otr4_status::OTR4_INVALID_ARGUMENT as u32,
            &format!("`now` must be Unix seconds (a finite number ≥ 0), not {now}"),
        ));
    }
    // Whole seconds; the range check above keeps the conversion exact.
    #[allow(clippy::cast_possible_truncation)]
    Ok(now.floor() as i64)
}

/// The engine's clock at `now`.
fn clock(now: f64) -> JsResult<Clock> {
    Ok(Clock::Fixed(seconds(now)?))
}

/// One device of an XMPP account: OTRv4 over XMPP with MULTICASTING to every device of a
/// contact, a device list and prekeys published via PEP and the prekey server, trust on
/// first use, SMP. Sans-IO: feed it every stanza (`feed`), send every string `drainStanzas`
/// returns, act on `drainEvents`. Call `free()` when done (or let the `FinalizationRegistry`
/// do it).
#[wasm_bindgen]
pub struct Engine {
    core: EngineCore,
}

impl Engine {
    /// Sets the clock to `now`, then runs `f` on the core.
    fn at<R>(
        &mut self,
        now: f64,
        f: impl FnOnce(&mut EngineCore) -> otr4_ffi::core::status::Result<R>,
    ) -> JsResult<R> {
        self.core.set_now(seconds(now)?);
        f(&mut self.core).map_err(error::from_core)
    }
}

#[wasm_bindgen]
impl Engine {
    /// A new device of `jid` (a bare JID, `local@domain`) labelled `label` (e.g. the
    /// resource): fresh keys, empty state. `now`: Unix seconds (`Date.now() / 1000`).
    #[wasm_bindgen(constructor)]
    pub fn new(jid: &str, label: &str, now: f64) -> JsResult<Engine> {
        let core = EngineCore::new(jid, label, Rng::Os, clock(now)?).map_err(error::from_core)?;
        Ok(Engine { core })
    }

    /// Restores an engine saved by `save` under `passphrase`. Throws `WrongKey`,
    /// `Tampered`, `Truncated` or `NotABlob`.
    pub fn load(blob: &[u8], passphrase: Vec<u8>, now: f64) -> JsResult<Engine> {
        let passphrase = Zeroizing::new(passphrase);
        let secret = Secret::Passphrase(&passphrase);
        let core =
            EngineCore::load(blob, &secret, Rng::Os, clock(now)?).map_err(error::from_core)?;
        Ok(Engine { core })
    }

    /// Restores an engine saved by `saveWithKey` under a raw 32-byte `key`.
    #[wasm_bindgen(js_name = loadWithKey)]
    pub fn load_with_key(blob: &[u8], key: Vec<u8>, now: f64) -> JsResult<Engine> {
        let key = Zeroizing::new(key);
        let secret = Secret::Key(raw_key(&key)?);
        let core =
            EngineCore::load(blob, &secret, Rng::Os, clock(now)?).map_err(error::from_core)?;
        Ok(Engine { core })
    }

    /// The whole engine (keys, sessions, device lists, trust, archive position) encrypted
    /// under `passphrase` (Argon2id m=19 MiB, XChaCha20-Poly1305). Save on every
    /// `saveState` event, before sending that call's stanzas.
    pub fn save(&mut self, passphrase: Vec<u8>) -> JsResult<Vec<u8>> {
        let passphrase = Zeroizing::new(passphrase);
        self.core
            .save(&Secret::Passphrase(&passphrase))
            .map_err(error::from_core)
    }

    /// Like `save`, under a raw 32-byte `key` (no passphrase stretching: cheap).
    #[wasm_bindgen(js_name = saveWithKey)]
    pub fn save_with_key(&mut self, key: Vec<u8>) -> JsResult<Vec<u8>> {
        let key = Zeroizing::new(key);
        let k = raw_key(&key)?;
        self.core.save(&Secret::Key(k)).map_err(error::from_core)
    }

    /// One incoming stanza (`<message/>`, `<presence/>` or `<iq/>`) as XML text with its
    /// namespace. Throws `BadStanza` if it is refused before processing (not XML, over
    /// 1 MiB, too deep; an `error` event says the same).
    pub fn feed(&mut self, xml: &str, now: f64) -> JsResult<()> {
        self.at(now, |c| c.feed(xml))
    }

    /// The stream is up, bound to `fullJid` (`jid/resource`): the engine sends presence,
    /// publishes its device list and prekeys, finds the prekey server, catches up (MAM).
    pub fn online(&mut self, full_jid: &str, now: f64) -> JsResult<()> {
        self.at(now, |c| c.online(full_jid))
    }

    /// The stream went down.
    pub fn offline(&mut self) {
        self.core.offline();
    }

    /// Sends `text` to every device of `to` (a bare JID) and our other devices: a DAKE
    /// first where needed (interactive, or through the prekey server if the device is
    /// offline).
    pub fn send(&mut self, to: &str, text: &str, now: f64) -> JsResult<()> {
        self.at(now, |c| c.send(to, text))
    }

    /// Starts SMP with `device` of `peer` on `secret`, with an optional `question`.
    #[wasm_bindgen(js_name = smpStart)]
    pub fn smp_start(
        &mut self,
        peer: &str,
        device: u32,
        secret: Vec<u8>,
        question: Option<String>,
        now: f64,
    ) -> JsResult<()> {
        let secret = Zeroizing::new(secret);
        self.at(now, |c| {
            c.smp_start(peer, device, &secret, question.as_deref())
        })
    }

    /// Answers SMP from `device` of `peer` (after an `smp` event with `smp: "askSecret"`).
    #[wasm_bindgen(js_name = smpRespond)]
    pub fn smp_respond(
        &mut self,
        peer: &str,
        device: u32,
        secret: Vec<u8>,
        now: f64,
    ) -> JsResult<()> {
        let secret = Zeroizing::new(secret);
        self.at(now, |c| c.smp_respond(peer, device, &secret))
    }

    /// Accepts the changed key of `device` of `jid` (after a `trust` event with trust
    /// `"changed"`).
    #[wasm_bindgen(js_name = acceptFingerprint)]
    pub fn accept_fingerprint(&mut self, jid: &str, device: u32, now: f64) -> JsResult<()> {
        self.at(now, |c| c.accept_fingerprint(jid, device))
    }

    /// Accepts the new key `fingerprint` (hex) of the prekey server of `domain` (after a
    /// `prekeyServerKeyChanged` event, once the user compared it).
    #[wasm_bindgen(js_name = acceptPrekeyServerKey)]
    pub fn accept_prekey_server_key(
        &mut self,
        domain: &str,
        fingerprint: &str,
        now: f64,
    ) -> JsResult<()> {
        self.at(now, |c| c.accept_prekey_server_key(domain, fingerprint))
    }

    /// Removes another device of ours (its instance tag) from our device list.
    #[wasm_bindgen(js_name = removeDevice)]
    pub fn remove_device(&mut self, device: u32, now: f64) -> JsResult<()> {
        self.at(now, |c| c.remove_device(device))
    }

    /// Timers (session expiry, retries, prekey refill): call every few seconds.
    pub fn tick(&mut self, now: f64) -> JsResult<()> {
        self.at(now, |c| c.tick())
    }

    /// The stanzas to send, in order (XML text; send each unchanged).
    #[wasm_bindgen(js_name = drainStanzas)]
    pub fn drain_stanzas(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.core.next_stanza()).collect()
    }

    /// What happened since the last call, in order (`saveState` last of a call's events).
    #[wasm_bindgen(js_name = drainEvents, unchecked_return_type = "Otr4Event[]")]
    pub fn drain_events(&mut self) -> js_sys::Array {
        std::iter::from_fn(|| self.core.next_event())
            .map(|e| events::to_js(&e))
            .collect()
    }

    /// Our instance tag (the device id).
    #[wasm_bindgen(getter)]
    pub fn tag(&self) -> u32 {
        self.core.tag()
    }

    /// Our long-term key's fingerprint (hex).
    #[wasm_bindgen(getter)]
    pub fn fingerprint(&self) -> String {
        self.core.fingerprint()
    }

    /// The devices (instance tags) of `jid` the engine knows from its device list; for our
    /// own JID, our other devices.
    #[wasm_bindgen(js_name = devicesOf)]
    pub fn devices_of(&self, jid: &str) -> JsResult<Vec<u32>> {
        self.core.devices_of(jid).map_err(error::from_core)
    }
}
