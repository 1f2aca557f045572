//! Fuzzes the strict `?OTR:<base64>.` and `<base64>.` decoders: never panic, bounded
//! output, and whatever decodes re-encodes to the identical string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otr4::hazmat::wire::encoded::{decode_otr, decode_prekey, encode_otr, encode_prekey};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(bin) = decode_otr(s) {
        assert!(bin.len() * 4 <= s.len() * 3);
        assert_eq!(encode_otr(&bin), s);
    }
    if let Ok(bin) = decode_prekey(s) {
        assert_eq!(encode_prekey(&bin), s);
    }
    // The same body behind the OTR prefix.
    let prefixed = format!("?OTR:{s}");
    if let Ok(bin) = decode_otr(&prefixed) {
        assert_eq!(encode_otr(&bin), prefixed);
    }
});
