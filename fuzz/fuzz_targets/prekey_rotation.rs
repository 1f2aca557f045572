//! Fuzzes the decoder of a prekey server's key-rotation announcement in xmpp-glue (the
//! `fingerprint-rotation` disco item name): never panics; what verifies has 112-digit
//! fingerprints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_glue::verify_announcement;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Some((old, new, _)) = verify_announcement(text, "prekey.example.org") {
        assert_eq!((old.len(), new.len()), (112, 112));
    }
});
