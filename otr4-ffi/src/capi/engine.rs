//! `otr4_engine_*`: the XMPP level (an `xmpp_glue::Engine` per device).
//!
//! Thread rules: an engine handle may be used from any thread and move between threads;
//! one call at a time — a call made while another runs on the same handle returns
//! `OTR4_BUSY` at once (it never blocks). Different handles are independent.

use crate::core::engine::EngineCore;
use crate::core::env::{Clock, Rng};
use crate::core::handles::Kind;
use crate::core::status::{Result, otr4_status};
use crate::core::{self, Object};
use xmpp_glue::sealed::Secret;

use super::{bytes, entry, key, opt_text, otr4_buf, otr4_event, out_ok, put, put_polled, text};

/// An XMPP-level engine: one device of one account. `{0}` is never a valid handle.
/// Threads: usable from any thread, one call at a time (a concurrent call on the same
/// handle returns `OTR4_BUSY`, it never blocks).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct otr4_engine {
    /// The checked table entry (opaque).
    pub id: u64,
}

pub(crate) fn with_engine<R>(
    h: otr4_engine,
    f: impl FnOnce(&mut EngineCore) -> Result<R>,
) -> Result<R> {
    core::with(h.id, Kind::Engine, |o| match o {
        Object::Engine(e) => f(e),
        #[allow(unreachable_patterns)]
        _ => Err(core::wrong_kind()),
    })
}

pub(crate) fn new_engine(core_: EngineCore) -> Result<otr4_engine> {
    Ok(otr4_engine {
        id: core::insert(Object::Engine(Box::new(core_)))?,
    })
}

/// Creates a new device of the account `jid` (a bare JID, UTF-8) with the label `label`
/// (shown in the device list): fresh keys, OS randomness, the system clock.
///
/// # Safety
/// Strings are `ptr` + `len`, valid for reads; `out` is valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_new(
    jid: *const u8,
    jid_len: usize,
    label: *const u8,
    label_len: usize,
    out: *mut otr4_engine,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract, for each argument.
        let (jid, label) =
            unsafe { (text(jid, jid_len, "jid")?, text(label, label_len, "label")?) };
        out_ok(out, "out")?;
        let h = new_engine(EngineCore::new(jid, label, Rng::Os, Clock::System)?)?;
        // SAFETY: the caller's contract.
        unsafe { put(out, h, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

fn load(blob: &[u8], secret: &Secret<'_>) -> Result<otr4_engine> {
    new_engine(EngineCore::load(blob, secret, Rng::Os, Clock::System)?)
}

/// Restores an engine from a blob `otr4_engine_save` made with the passphrase
/// `pass[0..pass_len]` (any bytes). `OTR4_WRONG_KEY`, `OTR4_TAMPERED`, `OTR4_TRUNCATED`,
/// `OTR4_NOT_A_BLOB` say what is wrong with it.
///
/// # Safety
/// `blob` and `pass` valid for reads of their lengths; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_load(
    blob: *const u8,
    blob_len: usize,
    pass: *const u8,
    pass_len: usize,
    out: *mut otr4_engine,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (b, p) = unsafe {
            (
                bytes(blob, blob_len, "blob")?,
                bytes(pass, pass_len, "pass")?,
            )
        };
        out_ok(out, "out")?;
        let h = load(b, &Secret::Passphrase(p))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, h, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// As `otr4_engine_load`, for a blob saved with a raw 32-byte key.
///
/// # Safety
/// `blob` valid for reads of `blob_len`, `key32` of 32 bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_load_with_key(
    blob: *const u8,
    blob_len: usize,
    key32: *const u8,
    out: *mut otr4_engine,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (b, k) = unsafe { (bytes(blob, blob_len, "blob")?, key(key32)?) };
        out_ok(out, "out")?;
        let h = load(b, &Secret::Key(k))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, h, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Saves the whole engine (keys, sessions, device lists, trust, archive position) into
/// `*out`, encrypted under the passphrase (Argon2id, docs/bindings.md). Free `*out` with
/// `otr4_buf_free`.
///
/// # Safety
/// `pass` valid for reads of `pass_len`; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_save(
    engine: otr4_engine,
    pass: *const u8,
    pass_len: usize,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { bytes(pass, pass_len, "pass") }?;
        out_ok(out, "out")?;
        let blob = with_engine(engine, |e| e.save(&Secret::Passphrase(p)))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_vec(blob), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// As `otr4_engine_save`, encrypted under a raw 32-byte key.
///
/// # Safety
/// `key32` valid for reads of 32 bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_save_with_key(
    engine: otr4_engine,
    key32: *const u8,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let k = unsafe { key(key32) }?;
        out_ok(out, "out")?;
        let blob = with_engine(engine, |e| e.save(&Secret::Key(k)))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_vec(blob), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Frees an engine. Its handle (and every copy of it) is invalid afterwards; a call still
/// running on it on another thread finishes first.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_engine_free(engine: otr4_engine) -> otr4_status {
    entry(|| {
        core::remove(engine.id, Kind::Engine)?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Feeds one incoming stanza, as the UTF-8 XML text of a `<message/>`, `<presence/>` or
/// `<iq/>` in `jabber:client`. Its size (1 MiB), depth and element count are checked
/// before a tree is built: a refused stanza returns `OTR4_BAD_STANZA` (and queues an
/// `OTR4_EVENT_ERROR`). Then poll stanzas and events.
///
/// # Safety
/// `xml` valid for reads of `xml_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_feed(
    engine: otr4_engine,
    xml: *const u8,
    xml_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let x = unsafe { text(xml, xml_len, "xml") }?;
        with_engine(engine, |e| e.feed(x))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The XMPP stream is up and bound to `full_jid` (our bare JID + `/resource`): the
/// engine catches up (MAM), announces itself, finds the prekey server, reads device lists.
///
/// # Safety
/// `full_jid` valid for reads of `full_jid_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_online(
    engine: otr4_engine,
    full_jid: *const u8,
    full_jid_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(full_jid, full_jid_len, "full_jid") }?;
        with_engine(engine, |e| e.online(j))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The XMPP stream went down.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_engine_offline(engine: otr4_engine) -> otr4_status {
    entry(|| {
        with_engine(engine, |e| {
            e.offline();
            Ok(())
        })?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Sends `text` to every trusted device of the contact `to` (bare JID) and to our other
/// devices (MULTICASTING); offline devices get it through the prekey server.
///
/// # Safety
/// `to` and `msg` valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_send(
    engine: otr4_engine,
    to: *const u8,
    to_len: usize,
    msg: *const u8,
    msg_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (to, msg) = unsafe { (text(to, to_len, "to")?, text(msg, msg_len, "msg")?) };
        with_engine(engine, |e| e.send(to, msg))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Starts SMP with `device` of `peer`: `secret` (any bytes) and an optional `question`
/// (NULL for none).
///
/// # Safety
/// Pointers valid for reads of their lengths (`question` may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_smp_start(
    engine: otr4_engine,
    peer: *const u8,
    peer_len: usize,
    device: u32,
    secret: *const u8,
    secret_len: usize,
    question: *const u8,
    question_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (p, s, q) = unsafe {
            (
                text(peer, peer_len, "peer")?,
                bytes(secret, secret_len, "secret")?,
                opt_text(question, question_len, "question")?,
            )
        };
        with_engine(engine, |e| e.smp_start(p, device, s, q))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Answers the SMP request (`OTR4_SMP_ASK_SECRET`) of `device` of `peer` with `secret`.
///
/// # Safety
/// Pointers valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_smp_respond(
    engine: otr4_engine,
    peer: *const u8,
    peer_len: usize,
    device: u32,
    secret: *const u8,
    secret_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (p, s) = unsafe {
            (
                text(peer, peer_len, "peer")?,
                bytes(secret, secret_len, "secret")?,
            )
        };
        with_engine(engine, |e| e.smp_respond(p, device, s))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The user accepts the changed key of `device` of `jid` (after `OTR4_TRUST_CHANGED`):
/// it is pinned and the messages held for it are sent.
///
/// # Safety
/// `jid` valid for reads of `jid_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_accept_fingerprint(
    engine: otr4_engine,
    jid: *const u8,
    jid_len: usize,
    device: u32,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(jid, jid_len, "jid") }?;
        with_engine(engine, |e| e.accept_fingerprint(j, device))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The user confirmed the new key `fingerprint` (112 hex digits) of the prekey server of
/// `domain`: the one it offered (`OTR4_EVENT_PREKEY_SERVER_KEY_CHANGED`), or one learnt out
/// of band. It is pinned (saved with the state) and offline messaging to the domain
/// resumes. `OTR4_INVALID_ARGUMENT` if no prekey server is known for `domain`, the
/// fingerprint is not one, or the server offers another key.
///
/// # Safety
/// `domain` valid for reads of `domain_len` bytes, `fingerprint` of `fingerprint_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_accept_prekey_server_key(
    engine: otr4_engine,
    domain: *const u8,
    domain_len: usize,
    fingerprint: *const u8,
    fingerprint_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (d, f) = unsafe {
            (
                text(domain, domain_len, "domain")?,
                text(fingerprint, fingerprint_len, "fingerprint")?,
            )
        };
        with_engine(engine, |e| e.accept_prekey_server_key(d, f))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Removes another device of our account (instance tag `device`) from the device list:
/// it gets no new messages.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_engine_remove_device(engine: otr4_engine, device: u32) -> otr4_status {
    entry(|| {
        with_engine(engine, |e| e.remove_device(device))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Runs the timers (heartbeats, session expiry, DAKE timeouts, prekey refills) at the
/// system clock's time. Call it every few seconds to minutes.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_engine_tick(engine: otr4_engine) -> otr4_status {
    entry(|| {
        with_engine(engine, |e| e.tick())?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The next stanza to send (UTF-8 XML) into `*out`: `OTR4_OK`, or `OTR4_NONE` (and an
/// empty `*out`) when none is queued. Free `*out` with `otr4_buf_free`. Save the state
/// first if the call that produced it queued `OTR4_EVENT_SAVE_STATE`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_next_stanza(
    engine: otr4_engine,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let s = with_engine(engine, |e| Ok(e.next_stanza()))?;
        // SAFETY: the caller's contract.
        unsafe { put_polled(out, s, otr4_buf::from_string, otr4_buf::EMPTY, "out") }
    })
}

/// The next event into `*out`: `OTR4_OK`, or `OTR4_NONE` (and a zeroed `*out`) when none
/// is queued. Free it with `otr4_event_free`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_next_event(
    engine: otr4_engine,
    out: *mut otr4_event,
) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let ev = with_engine(engine, |e| Ok(e.next_event()))?;
        // SAFETY: the caller's contract.
        unsafe { put_polled(out, ev, otr4_event::from_event, otr4_event::EMPTY, "out") }
    })
}

/// Our instance tag (this device's id in device lists) into `*out`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_tag(engine: otr4_engine, out: *mut u32) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let t = with_engine(engine, |e| Ok(e.tag()))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, t, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Our fingerprint (112 hex digits) into `*out`; free it with `otr4_buf_free`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_engine_fingerprint(
    engine: otr4_engine,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let f = with_engine(engine, |e| Ok(e.fingerprint()))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_string(f), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}
