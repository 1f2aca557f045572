//! `otr4_test_*` (feature `test-hooks`, never in a release build): seeded randomness, a
//! clock the test sets, and a deliberate panic to prove none crosses the boundary.

use crate::core::engine::EngineCore;
use crate::core::env::{Clock, Rng};
use crate::core::session::SessionCore;
use crate::core::status::otr4_status;

use super::engine::{new_engine, otr4_engine, with_engine};
use super::session::{new_session, otr4_session, with_session};
use super::{entry, out_ok, put, text};

/// As `otr4_engine_new`, with a ChaCha20 generator seeded from `seed` and the clock fixed
/// at `now` (Unix seconds) until `otr4_test_engine_set_now`.
///
/// # Safety
/// As for `otr4_engine_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_test_engine_new(
    jid: *const u8,
    jid_len: usize,
    label: *const u8,
    label_len: usize,
    seed: u64,
    now: i64,
    out: *mut otr4_engine,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let (j, l) = unsafe { (text(jid, jid_len, "jid")?, text(label, label_len, "label")?) };
        out_ok(out, "out")?;
        let h = new_engine(EngineCore::new(j, l, Rng::seeded(seed), Clock::Fixed(now))?)?;
        // SAFETY: the caller's contract.
        unsafe { put(out, h, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Sets the engine's clock to `now`.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_test_engine_set_now(engine: otr4_engine, now: i64) -> otr4_status {
    entry(|| {
        with_engine(engine, |e| {
            e.set_now(now);
            Ok(())
        })?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// As `otr4_session_new`, seeded and with a fixed clock.
///
/// # Safety
/// As for `otr4_session_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_test_session_new(
    jid: *const u8,
    jid_len: usize,
    seed: u64,
    now: i64,
    out: *mut otr4_session,
) -> otr4_status {
    entry(|| {
        // SAFETY: the caller's contract.
        let j = unsafe { text(jid, jid_len, "jid") }?;
        out_ok(out, "out")?;
        let h = new_session(SessionCore::new(j, Rng::seeded(seed), Clock::Fixed(now))?)?;
        // SAFETY: the caller's contract.
        unsafe { put(out, h, "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Sets the session's clock to `now`.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_test_session_set_now(session: otr4_session, now: i64) -> otr4_status {
    entry(|| {
        with_session(session, |s| {
            s.set_now(now);
            Ok(())
        })?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Panics inside an entry point: returns `OTR4_PANIC`.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_test_panic() -> otr4_status {
    entry(|| {
        #[allow(clippy::panic)]
        {
            panic!("otr4_test_panic: a deliberate panic")
        }
    })
}
