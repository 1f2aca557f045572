//! The one status enum every C entry point returns, and the library's error type (a
//! status with a message for `otr4_last_error`).
#![forbid(unsafe_code)]

use core::fmt;

/// What a call did. `OTR4_OK` and `OTR4_NONE` are not failures; every other value is, and
/// `otr4_last_error` then holds a message. Values never change meaning (docs/bindings.md).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum otr4_status {
    /// Success.
    OTR4_OK = 0,
    /// A poll found nothing queued (not an error).
    OTR4_NONE = 1,
    /// A required pointer argument was NULL.
    OTR4_NULL_POINTER = 2,
    /// The handle is null, freed, stale, of another type, or was never issued.
    OTR4_INVALID_HANDLE = 3,
    /// A string argument is not valid UTF-8.
    OTR4_INVALID_UTF8 = 4,
    /// An argument is out of range or malformed (e.g. a JID, an instance tag of 0).
    OTR4_INVALID_ARGUMENT = 5,
    /// Another call on the same handle is running (calls on one handle never block).
    OTR4_BUSY = 6,
    /// A panic inside the library was caught; the handle it happened on is unusable.
    OTR4_PANIC = 7,
    /// Loading a saved blob: wrong passphrase or key.
    OTR4_WRONG_KEY = 8,
    /// Loading a saved blob: it was modified (authentication failed with the right key).
    OTR4_TAMPERED = 9,
    /// Loading a saved blob: it is shorter than it says (cut off).
    OTR4_TRUNCATED = 10,
    /// Loading a saved blob: not an otr4 save blob, an unknown version, or of the other
    /// level (engine vs session).
    OTR4_NOT_A_BLOB = 11,
    /// A stanza was refused before processing (not XML, too large, too deep); an
    /// `OTR4_EVENT_ERROR` event says why as well.
    OTR4_BAD_STANZA = 12,
    /// The operating system's random generator failed.
    OTR4_RNG_FAILURE = 13,
    /// The protocol layer refused the call (e.g. an account could not be created).
    OTR4_REFUSED = 14,
}

/// A failure: the status code and a message for `otr4_last_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The code returned to the caller.
    pub status: otr4_status,
    /// A message for people.
    pub message: String,
}

impl Error {
    /// An error with `status` and `message`.
    pub fn new(status: otr4_status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", status_name(self.status), self.message)
    }
}

impl std::error::Error for Error {}

/// The result type of the core.
pub type Result<T> = core::result::Result<T, Error>;

/// The name of a status (its C enumerator), for messages.
pub fn status_name(s: otr4_status) -> &'static str {
    use otr4_status::*;
    match s {
        OTR4_OK => "OTR4_OK",
        OTR4_NONE => "OTR4_NONE",
        OTR4_NULL_POINTER => "OTR4_NULL_POINTER",
        OTR4_INVALID_HANDLE => "OTR4_INVALID_HANDLE",
        OTR4_INVALID_UTF8 => "OTR4_INVALID_UTF8",
        OTR4_INVALID_ARGUMENT => "OTR4_INVALID_ARGUMENT",
        OTR4_BUSY => "OTR4_BUSY",
        OTR4_PANIC => "OTR4_PANIC",
        OTR4_WRONG_KEY => "OTR4_WRONG_KEY",
        OTR4_TAMPERED => "OTR4_TAMPERED",
        OTR4_TRUNCATED => "OTR4_TRUNCATED",
        OTR4_NOT_A_BLOB => "OTR4_NOT_A_BLOB",
        OTR4_BAD_STANZA => "OTR4_BAD_STANZA",
        OTR4_RNG_FAILURE => "OTR4_RNG_FAILURE",
        OTR4_REFUSED => "OTR4_REFUSED",
    }
}

/// The status with numeric value `v`, if there is one.
pub fn status_from_i32(v: i32) -> Option<otr4_status> {
    use otr4_status::*;
    [
        OTR4_OK,
        OTR4_NONE,
        OTR4_NULL_POINTER,
        OTR4_INVALID_HANDLE,
        OTR4_INVALID_UTF8,
        OTR4_INVALID_ARGUMENT,
        OTR4_BUSY,
        OTR4_PANIC,
        OTR4_WRONG_KEY,
        OTR4_TAMPERED,
        OTR4_TRUNCATED,
        OTR4_NOT_A_BLOB,
        OTR4_BAD_STANZA,
        OTR4_RNG_FAILURE,
        OTR4_REFUSED,
    ]
    .into_iter()
    .find(|s| *s as i32 == v)
}

/// A description of a status (`otr4_status_str`), NUL-terminated for C.
pub fn status_description(s: otr4_status) -> &'static str {
    use otr4_status::*;
    match s {
        OTR4_OK => "success\0",
        OTR4_NONE => "nothing queued\0",
        OTR4_NULL_POINTER => "a required pointer was NULL\0",
        OTR4_INVALID_HANDLE => "invalid handle (null, freed, stale or of another type)\0",
        OTR4_INVALID_UTF8 => "a string is not valid UTF-8\0",
        OTR4_INVALID_ARGUMENT => "invalid argument\0",
        OTR4_BUSY => "another call on this handle is running\0",
        OTR4_PANIC => "internal error (a panic was caught)\0",
        OTR4_WRONG_KEY => "wrong passphrase or key\0",
        OTR4_TAMPERED => "the saved state was modified\0",
        OTR4_TRUNCATED => "the saved state is truncated\0",
        OTR4_NOT_A_BLOB => "not an otr4 saved state of this kind or version\0",
        OTR4_BAD_STANZA => "the stanza was refused (malformed or over the limits)\0",
        OTR4_RNG_FAILURE => "the operating system's random generator failed\0",
        OTR4_REFUSED => "the operation was refused\0",
    }
}

impl From<xmpp_glue::sealed::SealError> for Error {
    fn from(e: xmpp_glue::sealed::SealError) -> Error {
        use xmpp_glue::sealed::SealError as S;
        let status = match &e {
            S::EmptyPassphrase => otr4_status::OTR4_INVALID_ARGUMENT,
            S::NotSealed(_) => otr4_status::OTR4_NOT_A_BLOB,
            S::Truncated => otr4_status::OTR4_TRUNCATED,
            S::WrongSecret | S::WrongSecretKind => otr4_status::OTR4_WRONG_KEY,
            S::Tampered(_) => otr4_status::OTR4_TAMPERED,
            _ => otr4_status::OTR4_PANIC,
        };
        Error::new(status, e.to_string())
    }
}
