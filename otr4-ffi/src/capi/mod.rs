//! The `extern "C"` layer: pointer + length arguments checked and turned into Rust values,
//! one `catch_unwind` per entry point, results copied into library-owned buffers.
//!
//! Every function returns an [`otr4_status`]; on failure a message is kept per thread for
//! [`otr4_last_error`]. No function keeps a pointer it was given after it returns.

mod engine;
mod session;
#[cfg(feature = "sim")]
mod sim;
#[cfg(feature = "test-hooks")]
mod test_hooks;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::core::env::RngFailure;
use crate::core::events::Event;
use crate::core::status::{self, Error, Result, otr4_status};

pub use engine::*;
pub use session::*;
#[cfg(feature = "sim")]
pub use sim::*;
#[cfg(feature = "test-hooks")]
pub use test_hooks::*;

/// The ABI version: bumped on any incompatible change to this header (docs/bindings.md
/// §"ABI policy"). Compare with `OTR4_ABI_VERSION` from the header you compiled against.
pub const OTR4_ABI_VERSION: u32 = 1;

/// Bytes of a raw key for `*_save_with_key` / `*_load_with_key`.
pub const OTR4_KEY_LEN: usize = 32;

/// A byte string the library allocated: `ptr[0..len]`, followed by a NUL byte that `len`
/// does not count (so text can be printed with `%s`). Free it with [`otr4_buf_free`];
/// never change `ptr` or `len`. A returned buffer always has a non-NULL `ptr` (even with
/// `len == 0`); after `otr4_buf_free`, or when a poll returned `OTR4_NONE`, `ptr` is NULL.
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct otr4_buf {
    /// The bytes (library-owned).
    pub ptr: *mut u8,
    /// Their number, without the trailing NUL.
    pub len: usize,
}

impl otr4_buf {
    pub(crate) const EMPTY: otr4_buf = otr4_buf {
        ptr: std::ptr::null_mut(),
        len: 0,
    };

    pub(crate) fn from_vec(mut v: Vec<u8>) -> otr4_buf {
        let len = v.len();
        v.push(0);
        let b: Box<[u8]> = v.into_boxed_slice();
        otr4_buf {
            ptr: Box::into_raw(b).cast::<u8>(),
            len,
        }
    }

    pub(crate) fn from_string(s: String) -> otr4_buf {
        otr4_buf::from_vec(s.into_bytes())
    }

    /// Frees the bytes (if any) and empties the buffer.
    ///
    /// # Safety
    /// `self` is [`otr4_buf::EMPTY`] or was made by [`otr4_buf::from_vec`] and not changed.
    unsafe fn release(&mut self) {
        if !self.ptr.is_null() {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr, self.len.saturating_add(1));
            // SAFETY: by this function's contract `ptr` came from `Box::into_raw` of a
            // boxed slice of `len + 1` bytes that was not freed yet (the pointer is nulled
            // right after, so a second call is a no-op).
            drop(unsafe { Box::from_raw(slice) });
        }
        *self = otr4_buf::EMPTY;
    }
}

/// One event (see `otr4_event_kind` for what each field means per kind). Filled by
/// `otr4_engine_next_event` / `otr4_session_next_event`; the strings belong to the event:
/// free them all with one [`otr4_event_free`].
#[repr(C)]
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct otr4_event {
    /// An `otr4_event_kind`.
    pub kind: u32,
    /// The contact (bare JID) it concerns; may be empty.
    pub peer: otr4_buf,
    /// The device (instance tag), or 0.
    pub device: u32,
    /// The message, fingerprint, question or explanation; may be empty.
    pub text: otr4_buf,
    /// An `otr4_trust`.
    pub trust: u32,
    /// Whether the device is on its owner's current device list.
    pub listed: bool,
    /// A sub-kind: `otr4_smp`, `otr4_device_change`, … (per kind).
    pub detail: u32,
    /// For a copy of a message one of our devices sent: the contact it went to.
    pub sent_to: otr4_buf,
}

impl otr4_event {
    pub(crate) const EMPTY: otr4_event = otr4_event {
        kind: 0,
        peer: otr4_buf::EMPTY,
        device: 0,
        text: otr4_buf::EMPTY,
        trust: 0,
        listed: false,
        detail: 0,
        sent_to: otr4_buf::EMPTY,
    };

    pub(crate) fn from_event(e: Event) -> otr4_event {
        otr4_event {
            kind: e.kind as u32,
            peer: otr4_buf::from_string(e.peer),
            device: e.device,
            text: otr4_buf::from_string(e.text),
            trust: e.trust as u32,
            listed: e.listed,
            detail: e.detail,
            sent_to: otr4_buf::from_string(e.sent_to),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

/// Runs one entry point: its error becomes the status and the thread's last error; a
/// panic is caught and becomes `OTR4_PANIC` (or `OTR4_RNG_FAILURE`).
fn entry(f: impl FnOnce() -> Result<otr4_status>) -> otr4_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            set_last_error(e.to_string());
            e.status
        }
        Err(payload) => {
            let (status, what) = if payload.is::<RngFailure>() {
                (
                    otr4_status::OTR4_RNG_FAILURE,
                    "the OS random generator failed".to_owned(),
                )
            } else if let Some(s) = payload.downcast_ref::<&str>() {
                (otr4_status::OTR4_PANIC, (*s).to_owned())
            } else if let Some(s) = payload.downcast_ref::<String>() {
                (otr4_status::OTR4_PANIC, s.clone())
            } else {
                (otr4_status::OTR4_PANIC, "a panic".to_owned())
            };
            set_last_error(format!("{}: {what}", status::status_name(status)));
            status
        }
    }
}

fn null(what: &str) -> Error {
    Error::new(otr4_status::OTR4_NULL_POINTER, format!("{what} is NULL"))
}

/// The bytes `ptr[0..len]`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`, not written meanwhile.
unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return Err(null(what));
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            otr4_status::OTR4_INVALID_ARGUMENT,
            format!("{what}: length {len} is too large"),
        ));
    }
    // SAFETY: `ptr` is non-null and, by this function's contract, valid for `len` bytes
    // during `'a`; `len <= isize::MAX`. u8 has alignment 1.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The UTF-8 string `ptr[0..len]`.
///
/// # Safety
/// As for [`bytes`].
unsafe fn text<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a str> {
    // SAFETY: same contract as ours.
    let b = unsafe { bytes(ptr, len, what) }?;
    std::str::from_utf8(b).map_err(|e| {
        Error::new(
            otr4_status::OTR4_INVALID_UTF8,
            format!("{what} is not UTF-8 (byte {})", e.valid_up_to()),
        )
    })
}

/// Like [`text`], but NULL means absent.
///
/// # Safety
/// As for [`bytes`].
unsafe fn opt_text<'a>(ptr: *const u8, len: usize, what: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: same contract as ours.
    unsafe { text(ptr, len, what) }.map(Some)
}

/// A 32-byte key at `ptr`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of 32 bytes.
unsafe fn key<'a>(ptr: *const u8) -> Result<&'a [u8; 32]> {
    // SAFETY: same contract as ours, with len 32.
    let b = unsafe { bytes(ptr, 32, "key") }?;
    b.try_into()
        .map_err(|_| Error::new(otr4_status::OTR4_INVALID_ARGUMENT, "key length"))
}

/// Checks that an out-pointer is not NULL (before any work is done).
fn out_ok<T>(out: *mut T, what: &str) -> Result<()> {
    if out.is_null() {
        Err(null(what))
    } else {
        Ok(())
    }
}

/// Writes `value` to `out`. Check `out` with [`out_ok`] before making a `value` that owns
/// memory: on NULL the value is returned to nobody (an `otr4_buf` has no `Drop`).
///
/// # Safety
/// `out` is NULL or valid for a write of a `T` (its old contents are not dropped).
unsafe fn put<T>(out: *mut T, value: T, what: &str) -> Result<()> {
    out_ok(out, what)?;
    // SAFETY: non-null and, by this function's contract, valid for a write of a T;
    // `write` does not read or drop the old value.
    unsafe { out.write(value) };
    Ok(())
}

/// Writes a polled value, or empties `out` and returns `OTR4_NONE`.
///
/// # Safety
/// As for [`put`].
unsafe fn put_polled<T, U>(
    out: *mut U,
    value: Option<T>,
    make: impl FnOnce(T) -> U,
    empty: U,
    what: &str,
) -> Result<otr4_status> {
    match value {
        Some(v) => {
            // SAFETY: same contract as ours.
            unsafe { put(out, make(v), what) }?;
            Ok(otr4_status::OTR4_OK)
        }
        None => {
            // SAFETY: same contract as ours.
            unsafe { put(out, empty, what) }?;
            Ok(otr4_status::OTR4_NONE)
        }
    }
}

/// The ABI version of the loaded library (`OTR4_ABI_VERSION` when it was built).
#[unsafe(no_mangle)]
pub extern "C" fn otr4_abi_version() -> u32 {
    OTR4_ABI_VERSION
}

/// A static, NUL-terminated description of a status value (`"unknown status"` for a value
/// that is not one). Never freed.
#[unsafe(no_mangle)]
pub extern "C" fn otr4_status_str(status: i32) -> *const c_char {
    let s = status::status_from_i32(status)
        .map(status::status_description)
        .unwrap_or("unknown status\0");
    s.as_ptr().cast::<c_char>()
}

/// Copies the message of this thread's last failed call into `*out` (empty if none); free
/// it with `otr4_buf_free`. Successful calls do not clear it.
///
/// # Safety
/// `out` is NULL or points to writable memory for an `otr4_buf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_last_error(out: *mut otr4_buf) -> otr4_status {
    entry(|| {
        // Checked before the buffer is made: a buffer not handed out would leak (Miri
        // caught exactly that).
        out_ok(out, "out")?;
        let m = LAST_ERROR.with(|e| e.borrow().clone());
        // SAFETY: the caller's contract.
        unsafe { put(out, otr4_buf::from_string(m), "out") }?;
        Ok(otr4_status::OTR4_OK)
    })
}

/// Frees a buffer the library returned and sets it to empty (`ptr = NULL`, `len = 0`), so
/// freeing it twice is harmless. NULL `buf` is ignored.
///
/// # Safety
/// `buf` is NULL, or points to an `otr4_buf` that the library filled (or that is empty)
/// and whose fields were not changed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_buf_free(buf: *mut otr4_buf) {
    if buf.is_null() {
        return;
    }
    let _ = entry(|| {
        // SAFETY: non-null and, by the caller's contract, a valid library-made otr4_buf.
        unsafe { (*buf).release() };
        Ok(otr4_status::OTR4_OK)
    });
}

/// Frees the strings of an event and empties them, so freeing it twice is harmless. NULL
/// `event` is ignored.
///
/// # Safety
/// `event` is NULL, or points to an `otr4_event` that the library filled (or that is
/// zero-initialised) and whose buffers were not changed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn otr4_event_free(event: *mut otr4_event) {
    if event.is_null() {
        return;
    }
    let _ = entry(|| {
        // SAFETY: non-null and, by the caller's contract, a valid library-made event whose
        // three buffers are library-made or empty.
        let e = unsafe { &mut *event };
        // SAFETY: as above, for each buffer.
        unsafe {
            e.peer.release();
            e.text.release();
            e.sent_to.release();
        }
        Ok(otr4_status::OTR4_OK)
    });
}
