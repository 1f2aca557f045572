//! The one error type of the bindings: a kind per `otr4_status` failure, each with its
//! message; Python raises `otr4.Otr4Error.<Kind>` (a subclass of `otr4.Otr4Error`).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use otr4_ffi::core::env::RngFailure;
use otr4_ffi::core::status::{Error, otr4_status};

/// Why a call failed (the C ABI's status codes, less those Python cannot produce: null
/// pointers, invalid UTF-8, stale handles). `str(e)` is the message.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum Otr4Error {
    /// An argument is out of range or malformed (a JID, an instance tag, an empty secret).
    #[error("{0}")]
    InvalidArgument(String),
    /// Loading saved state: wrong passphrase or key.
    #[error("{0}")]
    WrongKey(String),
    /// Loading saved state: it was modified.
    #[error("{0}")]
    Tampered(String),
    /// Loading saved state: it is cut off.
    #[error("{0}")]
    Truncated(String),
    /// Loading saved state: not an otr4 save blob, another version, or of the other level.
    #[error("{0}")]
    NotABlob(String),
    /// A stanza was refused before processing (not XML, too large, too deep).
    #[error("{0}")]
    BadStanza(String),
    /// The operating system's random generator failed; nothing was done.
    #[error("{0}")]
    RngFailure(String),
    /// The protocol layer refused the call.
    #[error("{0}")]
    Refused(String),
    /// An internal error (a caught panic); the object it happened on is unusable.
    #[error("{0}")]
    Internal(String),
}

impl From<Error> for Otr4Error {
    fn from(e: Error) -> Otr4Error {
        use otr4_status::*;
        let m = e.message;
        match e.status {
            OTR4_WRONG_KEY => Otr4Error::WrongKey(m),
            OTR4_TAMPERED => Otr4Error::Tampered(m),
            OTR4_TRUNCATED => Otr4Error::Truncated(m),
            OTR4_NOT_A_BLOB => Otr4Error::NotABlob(m),
            OTR4_BAD_STANZA => Otr4Error::BadStanza(m),
            OTR4_RNG_FAILURE => Otr4Error::RngFailure(m),
            OTR4_REFUSED => Otr4Error::Refused(m),
            OTR4_PANIC => Otr4Error::Internal(m),
            // Null pointers, UTF-8, handles and BUSY cannot come from this layer (Python
            // passes checked `str`, objects are not handles, calls wait on the lock).
            _ => Otr4Error::InvalidArgument(m),
        }
    }
}

/// The result type of every fallible method.
pub type Result<T> = std::result::Result<T, Otr4Error>;

fn panic_error(payload: Box<dyn Any + Send>) -> Otr4Error {
    if payload.downcast_ref::<RngFailure>().is_some() {
        Otr4Error::RngFailure("the operating system's random generator failed".to_owned())
    } else {
        Otr4Error::Internal("internal error (a panic was caught)".to_owned())
    }
}

/// Runs `f`, turning a panic (the OS RNG's failure included) into an error.
pub fn guarded<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(p)))
}

/// Runs `f` on the object behind `m`: a panic becomes an error and leaves the lock
/// poisoned, so every later call on the object is refused (its state may be half-updated).
pub fn with<T, R>(m: &Mutex<T>, f: impl FnOnce(&mut T) -> Result<R>) -> Result<R> {
    // The guard lives inside the caught closure: a panic drops it while unwinding, which
    // poisons the lock.
    guarded(|| {
        let mut guard = m.lock().map_err(|_| {
            Otr4Error::Internal("unusable after an earlier internal error".to_owned())
        })?;
        f(&mut guard)
    })
}

/// A raw 32-byte key from `bytes`.
pub fn raw_key(key: &[u8]) -> Result<&[u8; xmpp_glue::sealed::KEY_LEN]> {
    key.try_into().map_err(|_| {
        Otr4Error::InvalidArgument(format!(
            "a raw key has {} bytes, not {}",
            xmpp_glue::sealed::KEY_LEN,
            key.len()
        ))
    })
}
