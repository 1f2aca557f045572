//! Failures as JS exceptions: an `Error` named `"Otr4Error"` with `code` (the C status's
//! name in PascalCase, as the Python exception classes) and `status` (its number).

use otr4_ffi::core::status::{Error, otr4_status};
use wasm_bindgen::JsValue;

/// The result of every fallible method: the error is the thrown JS value.
pub type JsResult<T> = Result<T, JsValue>;

/// An `Otr4Error` with `code`, the status number `status` and `message`.
pub fn js_error(code: &str, status: u32, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("Otr4Error");
    let obj: &js_sys::Object = e.as_ref();
    // Setting a property on a fresh plain `Error` object cannot fail; were it to, the
    // exception still carries its message.
    let _ = js_sys::Reflect::set(obj, &"code".into(), &code.into());
    let _ = js_sys::Reflect::set(obj, &"status".into(), &status.into());
    e.into()
}

/// The exception for a core error (the same kinds as the Python binding's classes).
pub fn from_core(e: Error) -> JsValue {
    use otr4_status::*;
    let code = match e.status {
        OTR4_WRONG_KEY => "WrongKey",
        OTR4_TAMPERED => "Tampered",
        OTR4_TRUNCATED => "Truncated",
        OTR4_NOT_A_BLOB => "NotABlob",
        OTR4_BAD_STANZA => "BadStanza",
        OTR4_RNG_FAILURE => "RngFailure",
        OTR4_REFUSED => "Refused",
        OTR4_PANIC => "Internal",
        // Null pointers, UTF-8, handles and BUSY cannot come from this layer (JS strings
        // arrive as checked UTF-8, objects are not handles, JS is single-threaded).
        _ => "InvalidArgument",
    };
    js_error(code, e.status as u32, &e.message)
}

/// A raw 32-byte key from `bytes`.
pub fn raw_key(key: &[u8]) -> JsResult<&[u8; xmpp_glue::sealed::KEY_LEN]> {
    key.try_into().map_err(|_| {
        js_error(
            "InvalidArgument",
            otr4_status::OTR4_INVALID_ARGUMENT as u32,
            &format!(
                "a raw key has {} bytes, not {}",
                xmpp_glue::sealed::KEY_LEN,
                key.len()
            ),
        )
    })
}
