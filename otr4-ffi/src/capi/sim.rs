//! `otr4_sim_*` (feature `sim`, tests and examples only): an in-memory XMPP server with
//! a prekey-server component (`prekey.<domain>`), to route stanzas between engines.
//!
//! Thread rules as for engines.

use crate::core::handles::Kind;
use crate::core::sim::SimCore;
use crate::core::status::{Result, otr4_status};
use crate::core::{self, Object};

use super::{entry, otr4_buf, out_ok, put, put_polled, text};

/// The in-memory XMPP server (tests only). Threads: as for `otr4_engine`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub struct otr4_sim {
    /// The checked table entry (opaque).
    pub id: u64,
}

fn with_sim<R>(h: otr4_sim, f: impl FnOnce(&mut SimCore) -> Result<R>) -> Result<R> {
    core::with(h.id, Kind::Sim, |o| match o {
        Object::Sim(s) => f(s),
        #[allow(unreachable_patterns)]
        _ => Err(core::wrong_kind()),
    })
}

/// A server for `domain` with its prekey component (state in a temporary directory,
/// deleted by `otr4_sim_free`).
///
/// # Safety
/// `domain` valid for reads of `domain_len`; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_sim_new(
    domain: *const u8,
    domain_len: usize,
    out: *mut otr4_sim,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let d = unsafe { text(domain, domain_len, "domain") }?;
        out_ok(out, "out")?;
        let id = core::insert(Object::Sim(Box::new(SimCore::new(d)?)))?;
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_sim { id }, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Frees the server.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_sim_free(sim: otr4_sim) -> otr4_status {
    entry(|| {
        core::remove(sim.id, Kind::Sim)?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Adds the account `bare`.
///
/// # Safety
/// `bare` valid for reads of `bare_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_sim_add_user(
    sim: otr4_sim,
    bare: *const u8,
    bare_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let b = unsafe { text(bare, bare_len, "bare") }?;
        with_sim(sim, |s| s.add_user(b))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Opens a client session bound to `full_jid`.
///
/// # Safety
/// `full_jid` valid for reads of `full_jid_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_sim_connect(
    sim: otr4_sim,
    full_jid: *const u8,
    full_jid_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(full_jid, full_jid_len, "full_jid") }?;
        with_sim(sim, |s| s.connect(j))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Closes the session of `full_jid`.
///
/// # Safety
/// `full_jid` valid for reads of `full_jid_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_sim_disconnect(
    sim: otr4_sim,
    full_jid: *const u8,
    full_jid_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(full_jid, full_jid_len, "full_jid") }?;
        with_sim(sim, |s| s.disconnect(j))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The session `from` (a full JID) sends the stanza `xml`.
///
/// # Safety
/// Pointers valid for reads of their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_sim_submit(
    sim: otr4_sim,
    from: *const u8,
    from_len: usize,
    xml: *const u8,
    xml_len: usize,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (f, x) = unsafe { (text(from, from_len, "from")?, text(xml, xml_len, "xml")?) };
        with_sim(sim, |s| s.submit(f, x))?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// The next stanza the server delivers to the session `full_jid` (`OTR4_NONE` when none);
/// free it with `otr4_buf_free`.
///
/// # Safety
/// `full_jid` valid for reads of `full_jid_len`; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_sim_next_stanza(
    sim: otr4_sim,
    full_jid: *const u8,
    full_jid_len: usize,
    out: *mut otr4_buf,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(full_jid, full_jid_len, "full_jid") }?;
        out_ok(out, "out")?;
        let s = with_sim(sim, |s| Ok(s.next_stanza(j)))?;
        // SAFETY: the caller's contract.
        unsafe { put_polled(out, s, otr4_buf::from_string, otr4_buf::EMPTY, "out") }
    })
}
