//! Fuzzes the decoders of file transfer in xmpp-glue: the file offer inside an OTRv4 type 7
//! TLV (first byte 0; a decoded offer re-encodes to the same bytes) and the XEP-0363 parts
//! of an IQ answer (otherwise: the upload service's disco#info and a slot; only the three
//! allowed headers, no line breaks in their values).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_glue::{parse_stanza, reencode_offer, stanza};

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, value)) => {
            if let Ok(again) = reencode_offer(value) {
                assert_eq!(again.as_slice(), value);
            }
        }
        _ => {
            let Ok(text) = core::str::from_utf8(data) else {
                return;
            };
            let Ok(iq) = parse_stanza(text) else { return };
            let _ = stanza::upload_service(&iq);
            if let Some(slot) = stanza::parse_upload_slot(&iq) {
                assert!(slot.headers.len() <= 3);
                for (name, value) in &slot.headers {
                    assert!(["Authorization", "Cookie", "Expires"].contains(&name.as_str()));
                    assert!(!value.contains(['\r', '\n']));
                }
            }
        }
    }
});
