//! `otr4_session_*`: the session level (an `otr4::Client`: one account, conversations per
//! peer instance, OTR-encoded text in and out) for clients with their own transport.
//!
//! Thread rules as for engines: any thread, one call at a time per handle (`OTR4_BUSY`).

use crate::core::env::{Clock, Rng};
use crate::core::handles::Kind;
use crate::core::session::SessionCore;
use crate::core::status::{Result, otr4_status};
use crate::core::{self, Object};
use xmpp_glue::sealed::Secret;

use super::{bytes, entry, key, opt_text, otr4_buf, otr4_event, out_ok, put, put_polled, text};

/// A session-level account with its conversations. `{0}` is never a valid handle.
/// Threads: usable from any thread, one call at a time (`OTR4_BUSY` otherwise).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct otr4_session {
    /// The checked table entry (opaque).
    pub id: u64,
}

pub(crate) fn with_session<R>(
    h: otr4_session,
    f: impl FnOnce(&mut SessionCore) -> Result<R>,
) -> Result<R> {
    core::with(h.id, Kind::Session, |o| match o {
        Object::Session(s) => f(s),
        #[allow(unreachable_patterns)]
        _ => Err(core::wrong_kind()),
    })
}

pub(crate) fn new_session(s: SessionCore) -> Result<otr4_session> {
    Ok(otr4_session {
        id: core::insert(Object::Session(Box::new(s)))?,
    })
}

/// Creates an account named `jid` (the name peers know it by) with otr4's default policy
/// (a query message or whitespace tag starts the DAKE; plaintext allowed until then).
///
/// # Safety
/// `jid` valid for reads of `jid_len`; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_new(
    jid: *const u8,
    jid_len: usize,
    out: *mut otr4_session,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(jid, jid_len, "jid") }?;
        out_ok(out, "out")?;
        let h = new_session(SessionCore::new(j, Rng::Os, Clock::System)?)?;
        // SAFETY: the caller's contract.
        unsafe { put(out, h, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

fn load(b: &[u8], s: &Secret<'_>) -> Result<otr4_session> {
    new_session(SessionCore::load(b, s, Rng::Os, Clock::System)?)
}

/// Restores an account saved by `otr4_session_save` under a passphrase.
///
/// # Safety
/// `blob`, `pass` valid for reads of their lengths; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_load(
    blob: *const u8,
    blob_len: usize,
    pass: *const u8,
    pass_len: usize,
    out: *mut otr4_session,
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

/// Restores an account saved by `otr4_session_save_with_key`.
///
/// # Safety
/// `blob` valid for reads of `blob_len`, `key32` of 32 bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_load_with_key(
    blob: *const u8,
    blob_len: usize,
    key32: *const u8,
    out: *mut otr4_session,
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

/// Saves the account and every conversation, encrypted under a passphrase.
///
/// # Safety
/// `pass` valid for reads of `pass_len`; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_save(
    session: otr4_session,
    pass: *const u8,
    pass_len: usize,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let p = unsafe { bytes(pass, pass_len, "pass") }?;
        out_ok(out, "out")?;
        let blob = with_session(session, |s| s.save(&Secret::Passphrase(p)))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_vec(blob), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Saves the account, encrypted under a raw 32-byte key.
///
/// # Safety
/// `key32` valid for reads of 32 bytes; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_save_with_key(
    session: otr4_session,
    key32: *const u8,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let k = unsafe { key(key32) }?;
        out_ok(out, "out")?;
        let blob = with_session(session, |s| s.save(&Secret::Key(k)))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_vec(blob), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Frees an account handle.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_session_free(session: otr4_session) -> otr4_status {
    entry(|| {
        core::remove(session.id, Kind::Session)?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// A message arrived from `from`: `data` is what the transport carried (OTR messages are
/// ASCII; it must be UTF-8). Then poll events (`OTR4_EVENT_SEND` carries the replies).
///
/// # Safety
/// `from`, `data` valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_receive(
    session: otr4_session,
    from: *const u8,
    from_len: usize,
    data: *const u8,
    data_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (f, d) = unsafe { (text(from, from_len, "from")?, text(data, data_len, "data")?) };
        with_session(session, |s| {
            s.receive(f, d);
            Ok(())
        })?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Asks `to` for a private conversation (queues an OTRv4 query message to send).
///
/// # Safety
/// `to` valid for reads of `to_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_start(
    session: otr4_session,
    to: *const u8,
    to_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let t = unsafe { text(to, to_len, "to") }?;
        with_session(session, |s| {
            s.start(t);
            Ok(())
        })?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Encrypts `msg` for `to`: to the instance `device`, or (0) as the policy selects.
///
/// # Safety
/// `to`, `msg` valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_send(
    session: otr4_session,
    to: *const u8,
    to_len: usize,
    device: u32,
    msg: *const u8,
    msg_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (t, m) = unsafe { (text(to, to_len, "to")?, text(msg, msg_len, "msg")?) };
        with_session(session, |s| s.send(t, device, m))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Ends the private conversation with `to` (instance `device`, or all with 0).
///
/// # Safety
/// `to` valid for reads of `to_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_end(
    session: otr4_session,
    to: *const u8,
    to_len: usize,
    device: u32,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let t = unsafe { text(to, to_len, "to") }?;
        with_session(session, |s| s.end(t, device))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Starts SMP with `peer`'s instance `device` (`question` may be NULL).
///
/// # Safety
/// Pointers valid for reads of their lengths (`question` may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_smp_start(
    session: otr4_session,
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
        with_session(session, |x| x.smp_start(p, device, s, q))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Answers SMP from `peer`'s instance `device`.
///
/// # Safety
/// Pointers valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_smp_respond(
    session: otr4_session,
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
        with_session(session, |x| x.smp_respond(p, device, s))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Runs the timers at the system clock's time.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_session_tick(session: otr4_session) -> otr4_status {
    entry(|| {
        with_session(session, |s| {
            s.tick();
            Ok(())
        })?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The next event into `*out` (`OTR4_NONE` when none); free it with `otr4_event_free`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_next_event(
    session: otr4_session,
    out: *mut otr4_event,
) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let ev = with_session(session, |s| Ok(s.next_event()))?;
        // SAFETY: the caller's contract.
        unsafe { put_polled(out, ev, otr4_event::from_event, otr4_event::EMPTY, "out") }
    })
}

/// Our instance tag into `*out`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_tag(session: otr4_session, out: *mut u32) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let t = with_session(session, |s| Ok(s.tag()))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, t, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Our fingerprint (hex) into `*out`; free it with `otr4_buf_free`.
///
/// # Safety
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_session_fingerprint(
    session: otr4_session,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        out_ok(out, "out")?;
        let f = with_session(session, |s| Ok(s.fingerprint()))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_string(f), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}
